use tidemark::repair::{self, Action, Decisions, RepairPlan};
use tidemark::{MigrationSet, Result};

use crate::cli::RepairArgs;
use crate::context::Context;
use crate::output::json::RepairDoc;
use crate::output::progress::{Progress, spinner};
use crate::output::{BOLD, DIM, GREEN, RED, YELLOW, paint};

pub async fn run(ctx: &Context, args: &RepairArgs) -> Result<i32> {
    ctx.database_url()?;
    let set = ctx.migrations()?;
    let settings = ctx.settings_with_shadow(args.lock_timeout.as_deref(), &args.shadow)?;
    let decisions = Decisions {
        adopt: args.adopt.clone(),
        pending: args.pending.clone(),
        forget: args.forget.clone(),
    };
    let carry_out = ctx.global.yes && !args.dry_run;
    if let Some(version) = args.resume {
        return resume(ctx, &set, &settings, version, carry_out).await;
    }
    let mut db = ctx.connect().await?;
    let sp = spinner(
        &ctx.out,
        format!(
            "replaying {} migrations on a shadow database",
            set.migrations.len()
        ),
    );
    let r = repair::repair(
        db.as_mut(),
        &set,
        &settings,
        &decisions,
        carry_out,
        &mut Progress::new(ctx.out),
    )
    .await;
    drop(sp);
    db.close().await;
    let outcome = r?;
    let plan = &outcome.plan;
    if !carry_out {
        render(ctx, plan, &set, true, &[]);
        if !ctx.out.is_json() {
            let n = plan.changes().count();
            if n == 0 && plan.matches_state_after.is_none() && !set.migrations.is_empty() {
                // Not a history problem: something was changed by hand.
                ctx.out.line(format!(
                    "{} no history change can reconcile this: the live schema matches no state of the migrations. `tidemark drift` lists what differs; restore it, or capture it in a new migration",
                    paint(YELLOW, "!")
                ));
            } else if n == 0 {
                ctx.out.line(format!(
                    "{} the history agrees with the live schema: nothing to repair",
                    paint(GREEN, "✓")
                ));
            } else {
                ctx.out.line(paint(
                    DIM,
                    "dry run: nothing was changed; `tidemark repair --yes` carries out this plan",
                ));
            }
        }
        return Ok(0);
    }
    let applied: Vec<(i64, String)> = outcome
        .applied
        .iter()
        .map(|d| (d.version, d.action.clone()))
        .collect();
    render(ctx, plan, &set, false, &applied);
    if !ctx.out.is_json() {
        ctx.out.line(format!(
            "{} {} history change(s) written in one transaction, each journaled",
            paint(GREEN, "✓"),
            applied.len()
        ));
        if outcome.consistent {
            ctx.out.line(format!("{} the history now agrees with the live schema; `tidemark up` applies what is pending", paint(GREEN, "✓")));
        } else if outcome.undecided.is_empty() {
            // Adopting records what is there; it does not make the schema what the migrations
            // describe. Say so instead of letting the same plan come back.
            ctx.out.line(format!(
                "{} the live schema still matches no state of the recorded migrations: `tidemark drift` lists what differs (changed by hand); restore it, or capture it in a new migration",
                paint(YELLOW, "!")
            ));
        }
        if !outcome.undecided.is_empty() {
            let list: Vec<String> = outcome.undecided.iter().map(i64::to_string).collect();
            ctx.out.line(format!(
                "{} half applied or undetermined, recorded as failed until you decide: {} (--adopt V or --pending V)",
                paint(RED.bold(), "!"),
                list.join(", ")
            ));
        }
    }
    Ok(if outcome.undecided.is_empty() { 0 } else { 20 })
}

/// The plan for people (or JSON), shared by `repair` and `import`.
pub fn render(
    ctx: &Context,
    plan: &RepairPlan,
    set: &MigrationSet,
    dry_run: bool,
    applied: &[(i64, String)],
) {
    if ctx.out.is_json() {
        ctx.out.json(&RepairDoc::new(plan, dry_run, applied));
        return;
    }
    let out = &ctx.out;
    let evidence = match plan.matches_state_after {
        Some(v) => format!("the live schema equals the state after migration {} exactly", paint(BOLD, v)),
        None => "the live schema equals no state of the replay exactly; each migration is judged by its own objects".into(),
    };
    out.line(format!(
        "{} replayed {} migration(s) on a shadow database: {evidence}",
        paint(BOLD, "Evidence:"),
        set.migrations.len()
    ));
    for n in &plan.notes {
        out.line(paint(DIM, format!("  note: {n}")));
    }
    if plan.steps.is_empty() {
        return;
    }
    out.line("");
    let nw = plan
        .steps
        .iter()
        .map(|s| s.name.chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 40);
    let vw = plan
        .steps
        .iter()
        .map(|s| s.version.to_string().len())
        .max()
        .unwrap_or(1);
    for s in &plan.steps {
        let style = match s.action {
            Action::Adopt | Action::RefreshChecksum => GREEN,
            Action::Replay => YELLOW,
            Action::Forget => YELLOW.bold(),
            Action::HalfApplied | Action::Undetermined => RED.bold(),
        };
        let label = match s.action {
            Action::HalfApplied => "HALF APPLIED".to_string(),
            Action::Undetermined => "UNDETERMINED".to_string(),
            a => a.as_str().to_string(),
        };
        let name: String = s.name.chars().take(nw).collect();
        out.line(format!(
            "  {:>vw$}  {:<nw$}  {}  {}",
            s.version,
            name,
            paint(style, format!("{label:<16}")),
            s.reason
        ));
        if s.action == Action::HalfApplied {
            if !s.present.is_empty() {
                out.line(format!(
                    "  {:vw$}  {:nw$}    present: {}",
                    "",
                    "",
                    s.present.join(", ")
                ));
            }
            if !s.missing.is_empty() {
                out.line(format!(
                    "  {:vw$}  {:nw$}    missing: {}",
                    "",
                    "",
                    s.missing.join(", ")
                ));
            }
            out.line(paint(
                DIM,
                format!(
                    "  {:vw$}  {:nw$}    decide: --adopt {v} (you complete it by hand) or --pending {v} (you remove what exists; `up` runs it)",
                    "",
                    "",
                    v = s.version
                ),
            ));
        }
    }
    if !plan.unexplained.is_empty() {
        let shown: Vec<&str> = plan
            .unexplained
            .iter()
            .take(10)
            .map(String::as_str)
            .collect();
        let more = if plan.unexplained.len() > 10 {
            format!(" … and {} more", plan.unexplained.len() - 10)
        } else {
            String::new()
        };
        out.line(format!(
            "\n{} {}{more}",
            paint(YELLOW, "live objects no migration creates:"),
            shown.join(", ")
        ));
    }
    let pending = plan
        .steps
        .iter()
        .filter(|s| s.action == Action::Replay)
        .count();
    if pending > 0 {
        out.line(paint(DIM, format!("\nreplay: {pending} migration(s) stay pending; `tidemark up` applies them after the repair")));
    }
}

/// `repair --resume V`: run the rest of a migration that failed part way outside a transaction.
async fn resume(
    ctx: &Context,
    set: &MigrationSet,
    settings: &tidemark::engine::Settings,
    version: i64,
    carry_out: bool,
) -> Result<i32> {
    let mut db = ctx.connect().await?;
    let r = repair::resume(
        db.as_mut(),
        set,
        settings,
        version,
        carry_out,
        &mut Progress::new(ctx.out),
    )
    .await;
    db.close().await;
    let done = r?;
    if ctx.out.is_json() {
        ctx.out.json(&serde_json::json!({
            "dry_run": !carry_out,
            "resumed": done,
        }));
        return Ok(0);
    }
    let range = if done.from_statement > done.statements {
        "no statement is left to run".to_string()
    } else if done.from_statement == done.statements {
        format!("statement {} of {}", done.from_statement, done.statements)
    } else {
        format!(
            "statements {}–{} of {}",
            done.from_statement, done.statements, done.statements
        )
    };
    let checksum = if done.checksum_before == done.checksum_after {
        String::new()
    } else {
        format!(
            "; checksum {} → {} (the fixed file)",
            &done.checksum_before[..done.checksum_before.len().min(12)],
            &done.checksum_after[..done.checksum_after.len().min(12)]
        )
    };
    if carry_out {
        ctx.out.line(format!(
            "{} migration {version} resumed: ran {range}, recorded as applied{checksum} (journaled as repair:resume)",
            paint(GREEN, "✓")
        ));
    } else {
        ctx.out.line(format!(
            "migration {version} would be resumed: {range} would run, then it is recorded as applied{checksum}"
        ));
        ctx.out.line(paint(
            DIM,
            format!("dry run: nothing was changed; `tidemark repair --resume {version} --yes` carries it out"),
        ));
    }
    Ok(0)
}
