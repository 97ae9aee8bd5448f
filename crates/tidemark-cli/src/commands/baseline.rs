use tidemark::{Result, baseline, engine};

use crate::cli::BaselineArgs;
use crate::context::Context;
use crate::output::progress::Progress;
use crate::output::{GREEN, YELLOW, paint};

pub async fn run(ctx: &Context, args: &BaselineArgs) -> Result<i32> {
    ctx.database_url()?;
    let set = ctx.migrations()?;
    let settings = ctx.settings(args.lock_timeout.as_deref())?;
    let shadow = ctx.shadow_url(&args.shadow)?;
    let mut db = ctx.connect().await?;
    let r = async {
        let guard = engine::acquire(db.as_mut(), &settings, &mut Progress::new(ctx.out)).await?;
        let report = baseline::baseline(
            db.as_mut(),
            &set,
            args.version,
            args.force,
            &settings,
            shadow.as_ref(),
        )
        .await?;
        // With sync on, the other tool must not run what is now recorded as applied.
        tidemark::sync::follow(db.as_mut(), &set, &settings).await?;
        guard.release().await?;
        Ok::<_, tidemark::Error>(report)
    }
    .await;
    db.close().await;
    let report = r?;
    if ctx.out.is_json() {
        ctx.out.json(&serde_json::json!({
            "version": report.version,
            "recorded": report.recorded,
            "forced": report.forced,
            "changes": crate::output::json::change_docs(&report.changes),
        }));
    } else {
        if report.forced && !report.changes.is_empty() {
            ctx.out.warn(&format!(
                "--force: recorded although the live schema differs in {} place(s):",
                report.changes.len()
            ));
            for c in &report.changes {
                ctx.out.line(format!("  {}", paint(YELLOW, c)));
            }
        }
        ctx.out.line(format!(
            "{} recorded migrations {}–{} as applied (baseline {}), verified against the live schema",
            paint(GREEN, "✓"),
            report.recorded.first().copied().unwrap_or(0),
            report.version,
            report.version
        ));
    }
    Ok(0)
}
