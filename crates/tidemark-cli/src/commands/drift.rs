use tidemark::Result;
use tidemark::drift;
use tidemark::schema::ChangeKind;

use crate::cli::DriftArgs;
use crate::context::Context;
use crate::output::json::DriftReportDoc;
use crate::output::{BOLD, DIM, GREEN, RED, YELLOW, paint};

pub async fn run(ctx: &Context, args: &DriftArgs) -> Result<i32> {
    ctx.database_url()?;
    let set = ctx.migrations()?;
    let settings = ctx.settings(None)?;
    let shadow = ctx.shadow_url(&args.shadow)?;
    let mut db = ctx.connect().await?;
    let report = drift::drift(db.as_mut(), &set, &settings, shadow.as_ref()).await;
    db.close().await;
    let report = report?;
    if ctx.out.is_json() {
        ctx.out.json(&DriftReportDoc::new(&report));
    } else {
        for n in &report.notes {
            ctx.out.warn(n);
        }
        let through = match (report.replayed.first(), report.replayed.last()) {
            (Some(a), Some(b)) if a != b => format!("migrations {a}–{b}"),
            (Some(a), _) => format!("migration {a}"),
            _ => "no migrations (empty history)".into(),
        };
        if report.drifted {
            ctx.out.line(format!(
                "{} {} difference(s) between the live schema and the replay of {through}",
                paint(RED.bold(), "drifted:"),
                report.changes.len()
            ));
            for c in &report.changes {
                let style = match c.kind {
                    ChangeKind::Missing => RED,
                    ChangeKind::Unexpected => YELLOW,
                    ChangeKind::Modified => BOLD,
                };
                ctx.out.line(format!("  {}", paint(style, c)));
            }
            ctx.out.line(paint(DIM, "missing: the migrations create it but the database lacks it · unexpected: only in the database"));
            ctx.out
                .line("`tidemark repair --dry-run` works out which migrations are really applied");
        } else {
            ctx.out.line(format!(
                "{} the live schema equals the replay of {through}",
                paint(GREEN, "clean:")
            ));
        }
    }
    Ok(if report.drifted { 20 } else { 0 })
}
