use tidemark::import::{self, Tool};
use tidemark::{Error, MigrationSet, Result};

use crate::cli::ImportArgs;
use crate::context::Context;
use crate::output::json::RepairDoc;
use crate::output::progress::{Progress, spinner};
use crate::output::{BOLD, DIM, GREEN, YELLOW, paint};

fn short(s: Option<&str>) -> &str {
    s.map(|s| &s[..s.len().min(16)]).unwrap_or("?")
}

pub async fn run(ctx: &Context, args: &ImportArgs) -> Result<i32> {
    ctx.database_url()?;
    let tool: Tool = args.from.parse().map_err(Error::Usage)?;
    let set = ctx.migrations()?;
    let mut settings = ctx.settings_with_shadow(args.lock_timeout.as_deref(), &args.shadow)?;
    if let Some(p) = &args.baseline_schema {
        settings.shadow_baseline = Some(p.clone());
    }
    let carry_out = ctx.global.yes && !args.dry_run;
    let mut db = ctx.connect().await?;
    let sp = spinner(
        &ctx.out,
        format!(
            "replaying {} migrations on a shadow database",
            set.migrations.len()
        ),
    );
    let r = import::import(
        db.as_mut(),
        &set,
        &settings,
        tool,
        args.alembic_dir.as_deref(),
        args.keep_in_sync,
        carry_out,
        &mut Progress::new(ctx.out),
    )
    .await;
    drop(sp);
    let r = match r {
        Ok(outcome) => {
            render_outcome(ctx, db.as_mut(), &set, &settings, args, &outcome, carry_out).await
        }
        Err(e) => Err(e),
    };
    db.close().await;
    r
}

async fn render_outcome(
    ctx: &Context,
    db: &mut dyn tidemark::Driver,
    set: &MigrationSet,
    settings: &tidemark::engine::Settings,
    args: &ImportArgs,
    outcome: &import::ImportOutcome,
    carry_out: bool,
) -> Result<i32> {
    let imported = &outcome.imported;
    let plan = &outcome.plan;
    if !ctx.out.is_json() {
        let list = |v: &[i64]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
            }
        };
        ctx.out.line(format!(
            "{} {} row(s) of {} ({}): applied {}; failed {}",
            paint(BOLD, "Read"),
            imported.rows,
            imported.table,
            args.from,
            list(&imported.applied),
            list(&imported.failed)
        ));
        if !imported.unmatched.is_empty() {
            ctx.out.line(format!(
                "{} rows that match no migration file: {}",
                paint(YELLOW, "!"),
                imported.unmatched.join(", ")
            ));
        }
    }
    // A file changed since the other tool applied it, by that tool's own checksum (what the
    // tool itself would refuse on: sqlx's "previously applied but has been modified").
    for r in imported.changed_files() {
        ctx.out.warn(&format!(
            "{} {}: the file changed since {} applied it ({}'s checksum {} recorded, the file has {}); tidemark records today's file, so check that its effect is what the database has",
            r.version.map(|v| v.to_string()).unwrap_or_else(|| r.raw_version.clone()),
            r.description.as_deref().unwrap_or_default(),
            args.from,
            args.from,
            short(r.checksum.as_deref()),
            short(r.file_checksum.as_deref())
        ));
    }
    let render = |plan: &tidemark::repair::RepairPlan, dry_run: bool, applied: &[(i64, String)]| {
        if ctx.out.is_json() {
            // The plan, and everything read from the other tool's table.
            let mut doc =
                serde_json::to_value(RepairDoc::new(plan, dry_run, applied)).unwrap_or_default();
            doc["read"] = serde_json::to_value(imported).unwrap_or_default();
            ctx.out.json(&doc);
        } else {
            super::repair::render(ctx, plan, set, dry_run, applied);
        }
    };
    if !carry_out {
        render(plan, true, &[]);
        if !ctx.out.is_json() {
            ctx.out.line(paint(DIM, "dry run: nothing was changed; `tidemark import --from … --yes` writes tidemark_history (the other tool's table is left as it is)"));
        }
        return Ok(0);
    }
    let applied: Vec<(i64, String)> = outcome
        .applied
        .iter()
        .map(|d| (d.version, d.action.clone()))
        .collect();
    render(plan, false, &applied);
    if !ctx.out.is_json() {
        ctx.out.line(format!(
            "{} tidemark_history written from {} ({} row(s) recorded, {} corrected by evidence); {} is left as it was",
            paint(GREEN, "✓"),
            imported.table,
            imported.history(set).entries.len(),
            applied.len(),
            imported.table
        ));
        if outcome.consistent {
            ctx.out.line(format!(
                "{} the history agrees with the live schema",
                paint(GREEN, "✓")
            ));
        }
        if args.keep_in_sync {
            let st = tidemark::sync::state(db, settings.sync).await?;
            ctx.out.line(format!(
                "{} {}",
                paint(GREEN, "✓"),
                super::sync::describe(&st)
            ));
        }
    }
    Ok(if plan.undecided().next().is_some() {
        20
    } else {
        0
    })
}
