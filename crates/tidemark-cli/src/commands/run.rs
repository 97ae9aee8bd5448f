//! `up` and `down`: validate, lock, plan, execute, report. `--dry-run` renders the same plan the
//! real run would execute.

use std::time::Instant;

use tidemark::engine::{self, Allow, RunReport};
use tidemark::history::HISTORY_TABLE;
use tidemark::plan::{Direction, DownTarget, Plan, UpTarget};
use tidemark::{Driver, Result};

use crate::cli::{DownArgs, UpArgs};
use crate::context::Context;
use crate::output::json::{RunDoc, done, plan_steps};
use crate::output::progress::Progress;
use crate::output::{BOLD, DIM, GREEN, paint};

pub async fn up(ctx: &Context, args: &UpArgs) -> Result<i32> {
    ctx.database_url()?; // the most basic mistake first
    let set = ctx.migrations()?;
    let settings =
        ctx.settings_for_run(args.lock_timeout.as_deref(), &args.shadow, &args.lock_wait)?;
    let target = UpTarget {
        to: args.to,
        single_transaction: args.single_transaction,
    };
    let allow = Allow {
        modified: args.allow_modified,
        missing: args.allow_missing,
        drift: args.allow_drift,
    };
    let mut db = ctx.connect().await?;
    let result = if args.dry_run {
        let mut progress = Progress::new(ctx.out);
        let planned =
            engine::plan_up(db.as_mut(), &set, &target, allow, &settings, &mut progress).await;
        progress.finish();
        match planned {
            Ok((_, plan)) => {
                render_plan(ctx, db.as_ref(), &plan, &settings);
                Ok(0)
            }
            Err(e) => Err(e),
        }
    } else {
        let started = Instant::now();
        let mut progress = Progress::new(ctx.out);
        let url = db.url().clone();
        let mut backup = super::backup::BackupFirst::new(ctx, &url, args.no_backup, &settings)?;
        let hook = backup.as_mut().map(|b| b as &mut dyn engine::BeforeChange);
        let r = engine::up(
            db.as_mut(),
            &set,
            &target,
            allow,
            &settings,
            &mut progress,
            hook,
        )
        .await;
        progress.finish();
        r.map(|report| {
            summarize(
                ctx,
                db.as_ref(),
                &report,
                Direction::Up,
                started,
                args.single_transaction,
            );
            0
        })
    };
    db.close().await;
    result
}

pub async fn down(ctx: &Context, args: &DownArgs) -> Result<i32> {
    ctx.database_url()?; // the most basic mistake first
    let set = ctx.migrations()?;
    let settings =
        ctx.settings_for_run(args.lock_timeout.as_deref(), &args.shadow, &args.lock_wait)?;
    let target = match (args.target.steps, args.target.to) {
        (Some(n), _) => DownTarget::Steps(n),
        (None, Some(v)) => DownTarget::To(v),
        (None, None) => DownTarget::Steps(1),
    };
    let mut db = ctx.connect().await?;
    let result = if args.dry_run {
        let mut progress = Progress::new(ctx.out);
        let planned = engine::plan_down(
            db.as_mut(),
            &set,
            target,
            args.allow_drift,
            &settings,
            &mut progress,
        )
        .await;
        progress.finish();
        match planned {
            Ok((_, plan)) => {
                render_plan(ctx, db.as_ref(), &plan, &settings);
                Ok(0)
            }
            Err(e) => Err(e),
        }
    } else {
        let started = Instant::now();
        let mut progress = Progress::new(ctx.out);
        let url = db.url().clone();
        let mut backup = super::backup::BackupFirst::new(ctx, &url, args.no_backup, &settings)?;
        let hook = backup.as_mut().map(|b| b as &mut dyn engine::BeforeChange);
        let r = engine::down(
            db.as_mut(),
            &set,
            target,
            args.allow_drift,
            &settings,
            &mut progress,
            hook,
        )
        .await;
        progress.finish();
        r.map(|report| {
            summarize(ctx, db.as_ref(), &report, Direction::Down, started, false);
            0
        })
    };
    db.close().await;
    result
}

fn summarize(
    ctx: &Context,
    db: &dyn Driver,
    report: &RunReport,
    dir: Direction,
    started: Instant,
    single: bool,
) {
    // The version now at the head: the last applied (up) or the one before the last reverted.
    let current = report.current_version;
    if ctx.out.is_json() {
        ctx.out.json(&RunDoc {
            database: db.url().redacted(),
            dry_run: false,
            single_transaction: single,
            plan: Vec::new(),
            done: done(report),
            current_version: current,
            schema_fingerprint: report.fingerprint.clone(),
            run_id: Some(report.run_id.clone()),
            backup: report.backup.clone(),
        });
        return;
    }
    let ms = started.elapsed().as_millis();
    let fp = report
        .fingerprint
        .as_deref()
        .map(|f| {
            paint(
                DIM,
                format!(" · schema fingerprint {}", &f[..12.min(f.len())]),
            )
        })
        .unwrap_or_default();
    match (dir, report.done.len()) {
        (Direction::Up, 0) => ctx.out.line(format!(
            "{} nothing to apply: the database is up to date",
            paint(GREEN, "✓")
        )),
        (Direction::Down, 0) => ctx
            .out
            .line(format!("{} nothing to revert", paint(GREEN, "✓"))),
        (Direction::Up, n) => ctx.out.line(format!(
            "{} applied {n} migration(s) in {ms} ms; now at {}{fp}",
            paint(GREEN, "✓"),
            current.map(|v| v.to_string()).unwrap_or_default()
        )),
        (Direction::Down, n) => ctx.out.line(format!(
            "{} reverted {n} migration(s) in {ms} ms; now at {}{fp}",
            paint(GREEN, "✓"),
            current
                .map(|v| v.to_string())
                .unwrap_or_else(|| "nothing applied".into())
        )),
    }
}

fn render_plan(ctx: &Context, db: &dyn Driver, plan: &Plan, settings: &tidemark::engine::Settings) {
    if ctx.out.is_json() {
        ctx.out.json(&RunDoc {
            database: db.url().redacted(),
            dry_run: true,
            single_transaction: plan.single_transaction,
            plan: plan_steps(plan),
            done: Vec::new(),
            current_version: None,
            schema_fingerprint: None,
            run_id: None,
            backup: None,
        });
        return;
    }
    let out = &ctx.out;
    let verb = match plan.steps.first().map(|s| s.direction) {
        Some(Direction::Down) => "revert",
        _ => "apply",
    };
    out.line(format!(
        "{} {} migration(s) to {verb} on {} {}",
        paint(BOLD, "Plan:"),
        plan.steps.len(),
        db.url().redacted(),
        paint(DIM, "(dry run: nothing was changed)")
    ));
    if !plan.steps.is_empty() && db.dialect() != tidemark::Dialect::Sqlite {
        out.line(paint(
            DIM,
            match settings.statement_lock_timeout {
                Some(t) => format!(
                    "Each statement waits at most {} for a table lock, then the migration is retried (up to {} time(s)); statements outside a transaction on PostgreSQL wait as long as the server says.",
                    tidemark::probe::format_duration(t),
                    settings.lock_retries
                ),
                None => "Statements wait for table locks as long as the server says (no statement lock timeout).".into(),
            },
        ));
    }
    if plan.single_transaction {
        out.line("\nBEGIN;  -- --single-transaction: every migration below commits together");
    }
    for s in &plan.steps {
        let mode = if plan.single_transaction {
            "in the single transaction".to_string()
        } else if s.transactional {
            "one transaction with its history row".to_string()
        } else {
            match &s.outside {
                Some(why) => {
                    format!("statement by statement, progress recorded in history ({why})")
                }
                None => "statement by statement, progress recorded in history".to_string(),
            }
        };
        let ooo = if s.out_of_order {
            " · out of order"
        } else {
            ""
        };
        out.line(format!(
            "\n{}",
            paint(
                BOLD,
                format!(
                    "-- {}{} · {} · {mode}{ooo}",
                    s.label(),
                    if s.repeatable { " (repeatable)" } else { "" },
                    s.path.display()
                )
            )
        ));
        if s.transactional && !plan.single_transaction {
            out.line("BEGIN;");
        }
        if !s.transactional && s.direction == Direction::Up && !s.repeatable {
            out.line(paint(
                DIM,
                format!(
                    "-- INSERT INTO {HISTORY_TABLE}: version {} as 'failed' (in progress)",
                    s.version
                ),
            ));
        }
        for st in &s.statements {
            out.line(paint(DIM, format!("-- {}:{}", s.path.display(), st.line)));
            out.line(format!("{};", st.text));
        }
        let record = match s.direction {
            Direction::Up if s.repeatable => format!(
                "-- tidemark_repeatable: `{}` ran with checksum {}",
                s.name,
                &s.checksum[..12]
            ),
            Direction::Up if s.transactional => format!(
                "-- INSERT INTO {HISTORY_TABLE}: version {} applied, checksum {}",
                s.version,
                &s.checksum[..12]
            ),
            Direction::Up => format!("-- UPDATE {HISTORY_TABLE}: version {} applied", s.version),
            Direction::Down => format!("-- DELETE FROM {HISTORY_TABLE}: version {}", s.version),
        };
        out.line(paint(DIM, record));
        if s.transactional && !plan.single_transaction {
            out.line("COMMIT;");
        }
    }
    if plan.single_transaction {
        out.line("COMMIT;");
    }
    if plan.steps.is_empty() {
        out.line(format!("{} nothing to {verb}", paint(GREEN, "✓")));
    }
}
