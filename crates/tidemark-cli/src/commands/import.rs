use tidemark::engine;
use tidemark::import::{self, Tool};
use tidemark::repair::{self, Decisions};
use tidemark::{Driver, Error, MigrationSet, Result, history};

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
    let mut settings = ctx.settings(args.lock_timeout.as_deref())?;
    if let Some(p) = &args.baseline_schema {
        settings.shadow_baseline = Some(p.clone());
    }
    let shadow = ctx.shadow_url(&args.shadow)?;
    let carry_out = ctx.global.yes && !args.dry_run;
    let mut db = ctx.connect().await?;
    let r = import(
        ctx,
        db.as_mut(),
        &set,
        &settings,
        shadow.as_ref(),
        tool,
        args,
        carry_out,
    )
    .await;
    db.close().await;
    r
}

#[allow(clippy::too_many_arguments)]
async fn import(
    ctx: &Context,
    db: &mut dyn Driver,
    set: &MigrationSet,
    settings: &tidemark::engine::Settings,
    shadow: Option<&tidemark::DatabaseUrl>,
    tool: Tool,
    args: &ImportArgs,
    carry_out: bool,
) -> Result<i32> {
    let guard = if carry_out {
        Some(engine::acquire(db, settings, &mut Progress::new(ctx.out)).await?)
    } else {
        None
    };
    if args.keep_in_sync {
        tidemark::sync::check(tool, set)?;
    }
    let ours = history::read(db).await?;
    if !ours.entries.is_empty() {
        return Err(Error::Inconsistent(format!(
            "tidemark_history already has {} row(s): import takes over from another tool once; `tidemark repair` reconciles an existing history",
            ours.entries.len()
        )));
    }
    let imported = import::read(db, set, tool, args.alembic_dir.as_deref()).await?;
    if let Some(b) = &imported.baseline
        && !b.covered_by_files
        && settings.shadow_baseline.is_none()
    {
        return Err(Error::Usage(format!(
            "{} begins at a baseline (version {}) whose schema no migration file creates, so the migrations after it cannot be replayed on an empty database; \
             give that schema as SQL with --baseline-schema FILE (e.g. `pg_dump --schema-only` of a database at the baseline), and keep it as `[shadow] baseline` in tidemark.toml",
            imported.table, b.version
        )));
    }
    let claimed = imported.history(set);
    let sp = spinner(
        &ctx.out,
        format!(
            "replaying {} migrations on a shadow database",
            set.migrations.len()
        ),
    );
    let ev = repair::gather(db, set, settings, shadow).await;
    drop(sp);
    let ev = ev?;
    let plan = repair::plan(set, &claimed, &ev);
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
            doc["read"] = serde_json::to_value(&imported).unwrap_or_default();
            ctx.out.json(&doc);
        } else {
            super::repair::render(ctx, plan, set, dry_run, applied);
        }
    };
    if !carry_out {
        render(&plan, true, &[]);
        if !ctx.out.is_json() {
            ctx.out.line(paint(DIM, "dry run: nothing was changed; `tidemark import --from … --yes` writes tidemark_history (the other tool's table is left as it is)"));
        }
        return Ok(0);
    }
    history::ensure(db).await?;
    let done = repair::execute(
        db,
        set,
        &plan,
        &Decisions::default(),
        settings,
        "import",
        Some(&claimed),
    )
    .await?;
    // Repeatable migrations the tool ran: recorded as run where the file is unchanged (by the
    // tool's checksum), else as run with the tool's checksum, so `up` runs them again as the
    // tool would.
    for (desc, unchanged) in &imported.repeatables {
        let Some(r) = set.repeatables.iter().find(|r| r.description() == desc) else {
            continue;
        };
        history::ensure_repeatables(db).await?;
        let sum = if *unchanged {
            r.migration.checksum.clone()
        } else {
            format!("{}:changed", args.from)
        };
        history::record_repeatable(db, desc, &sum, 0, &settings.actor).await?;
    }
    let consistent = repair::record_fingerprint_if_consistent(db, set, &ev).await?;
    let synced = if args.keep_in_sync {
        Some(tidemark::sync::set(db, set, Some(tool), settings).await?)
    } else {
        None
    };
    if let Some(g) = guard {
        g.release().await?;
    }
    let applied: Vec<(i64, String)> = done.iter().map(|d| (d.version, d.action.clone())).collect();
    render(&plan, false, &applied);
    if !ctx.out.is_json() {
        ctx.out.line(format!(
            "{} tidemark_history written from {} ({} row(s) recorded, {} corrected by evidence); {} is left as it was",
            paint(GREEN, "✓"),
            imported.table,
            claimed.entries.len(),
            done.len(),
            imported.table
        ));
        if consistent {
            ctx.out.line(format!(
                "{} the history agrees with the live schema",
                paint(GREEN, "✓")
            ));
        }
        if synced.is_some() {
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
