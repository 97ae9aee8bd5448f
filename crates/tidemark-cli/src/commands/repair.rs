use tidemark::engine::{self, Settings};
use tidemark::repair::{self, Action, Decisions, RepairPlan};
use tidemark::{Driver, MigrationSet, Result, history};

use crate::cli::RepairArgs;
use crate::context::Context;
use crate::output::json::RepairDoc;
use crate::output::progress::{Progress, spinner};
use crate::output::{BOLD, DIM, GREEN, RED, YELLOW, paint};

pub async fn run(ctx: &Context, args: &RepairArgs) -> Result<i32> {
    ctx.database_url()?;
    let set = ctx.migrations()?;
    let settings = ctx.settings(args.lock_timeout.as_deref())?;
    let shadow = ctx.shadow_url(&args.shadow)?;
    let decisions = Decisions {
        adopt: args.adopt.clone(),
        pending: args.pending.clone(),
        forget: args.forget.clone(),
    };
    let carry_out = ctx.global.yes && !args.dry_run;
    let mut db = ctx.connect().await?;
    let r = repair(
        ctx,
        db.as_mut(),
        &set,
        &settings,
        shadow.as_ref(),
        &decisions,
        carry_out,
    )
    .await;
    db.close().await;
    r
}

async fn repair(
    ctx: &Context,
    db: &mut dyn Driver,
    set: &MigrationSet,
    settings: &Settings,
    shadow: Option<&tidemark::DatabaseUrl>,
    decisions: &Decisions,
    carry_out: bool,
) -> Result<i32> {
    let guard = if carry_out {
        let g = engine::acquire(db, settings, &mut Progress::new(ctx.out)).await?;
        history::ensure(db).await?;
        Some(g)
    } else {
        None
    };
    let h = history::read(db).await?;
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
    let plan = repair::plan(set, &h, &ev);
    if !carry_out {
        render(ctx, &plan, set, true, &[]);
        if !ctx.out.is_json() {
            let n = plan.changes().count();
            if n == 0 {
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
    let done = repair::execute(db, set, &plan, decisions, settings, "repair", None).await?;
    let consistent = repair::record_fingerprint_if_consistent(db, set, &ev).await?;
    // With sync on, the other tool must not run what is now recorded as applied.
    tidemark::sync::follow(db, set, settings).await?;
    if let Some(g) = guard {
        g.release().await?;
    }
    let undecided: Vec<i64> = plan
        .undecided()
        .map(|s| s.version)
        .filter(|v| !decisions.adopt.contains(v) && !decisions.pending.contains(v))
        .collect();
    let applied: Vec<(i64, String)> = done.iter().map(|d| (d.version, d.action.clone())).collect();
    render(ctx, &plan, set, false, &applied);
    if !ctx.out.is_json() {
        ctx.out.line(format!(
            "{} {} history change(s) written in one transaction, each journaled",
            paint(GREEN, "✓"),
            done.len()
        ));
        if consistent {
            ctx.out.line(format!("{} the history now agrees with the live schema; `tidemark up` applies what is pending", paint(GREEN, "✓")));
        }
        if !undecided.is_empty() {
            let list: Vec<String> = undecided.iter().map(i64::to_string).collect();
            ctx.out.line(format!(
                "{} half applied or undetermined, recorded as failed until you decide: {} (--adopt V or --pending V)",
                paint(RED.bold(), "!"),
                list.join(", ")
            ));
        }
    }
    Ok(if undecided.is_empty() { 0 } else { 20 })
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
