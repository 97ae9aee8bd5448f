use tidemark::Result;
use tidemark::engine;
use tidemark::repair::{self, RepairPlan};
use tidemark::status::{DriftState, MigrationState, Status};

use crate::cli::StatusArgs;
use crate::context::Context;
use crate::output::json::StatusDoc;
use crate::output::progress::spinner;
use crate::output::{BOLD, DIM, GREEN, RED, YELLOW, paint};

fn state_style(s: MigrationState) -> anstyle::Style {
    match s {
        MigrationState::Applied => GREEN,
        MigrationState::Pending => YELLOW,
        _ => RED.bold(),
    }
}

pub async fn run(ctx: &Context, args: &StatusArgs) -> Result<i32> {
    ctx.database_url()?; // the most basic mistake first
    let set = ctx.migrations()?;
    let settings = ctx.settings(None)?;
    let mut db = ctx.connect().await?;
    let st = engine::status(db.as_mut(), &set, &settings, true).await;
    let caps = db.caps().clone();
    let sync = tidemark::sync::state(db.as_mut(), settings.sync).await;
    let url = db.url().redacted();
    // Read only: a database without an identity gets none from `status`.
    let ident = Identity {
        id: tidemark::identity::read(db.as_mut()).await.ok().flatten(),
        server: tidemark::identity::server_identity(db.as_mut()).await.ok(),
        moved: tidemark::identity::moved(db.as_mut()).await.ok().flatten(),
    };
    // Only when something is wrong: replay on a shadow database to say which state the live
    // schema is in. The happy path stays one inspection.
    let evidence = match &st {
        Ok(st)
            if st.drift.status != DriftState::Clean
                && !args.no_shadow
                && !set.migrations.is_empty() =>
        {
            let shadow = ctx.shadow_url(&args.shadow)?;
            let sp = spinner(
                &ctx.out,
                "checking the schema: replaying the migrations on a shadow database".into(),
            );
            let r = explain(db.as_mut(), &set, &settings, shadow.as_ref()).await;
            drop(sp);
            match r {
                Ok(p) => Some(p),
                Err(e) => {
                    ctx.out.warn(&format!(
                        "could not replay the migrations to explain the drift: {e}"
                    ));
                    None
                }
            }
        }
        _ => None,
    };
    db.close().await;
    let mut st = st?;
    let sync = sync?;
    if let Some(p) = &evidence {
        establish_from_evidence(&mut st, p);
    }
    if ctx.out.is_json() {
        let mut doc = StatusDoc::new(url.clone(), &st);
        doc.database_id = ident.id.clone();
        doc.server_identity = ident.server.clone();
        doc.identity_moved_from = ident.moved.as_ref().map(|(from, _)| from.clone());
        doc.sync = Some(sync.clone());
        if let Some(p) = &evidence {
            doc.drift.matches_state_after = p.matches_state_after;
            doc.drift.repair_needed = Some(p.changes().next().is_some());
            doc.drift.replay = Some(p.replay);
        }
        ctx.out.json(&doc);
    } else {
        print_text(ctx, &url, &caps, &ident, &set, &st, evidence.as_ref());
        if sync.tool.is_some() {
            ctx.out.line(format!(
                "{} {}",
                paint(BOLD, "Sync      "),
                super::sync::describe(&sync)
            ));
        }
    }
    Ok(if !args.exit_code {
        0
    } else if st.problems().next().is_some() || st.drift.status == DriftState::Drifted {
        20
    } else if st.pending().next().is_some() || st.repeatables.iter().any(|r| r.due()) {
        10
    } else {
        0
    })
}

/// "Unknown" is never shown as if it were clean: with the replay's evidence at hand, a history
/// nobody fingerprinted is clean when the live schema is exactly the state after its head and
/// nothing needs repair, and drifted otherwise. `status` writes nothing; `up` and `check`
/// record the fingerprint they establish.
fn establish_from_evidence(st: &mut Status, p: &RepairPlan) {
    st.drift.evidence = Some(p.summary());
    if st.drift.status != DriftState::Unknown {
        return;
    }
    let undetermined: Vec<String> = p
        .steps
        .iter()
        .filter(|s| s.action == repair::Action::Undetermined)
        .map(|s| s.version.to_string())
        .collect();
    if p.matches_state_after == st.current_version && !undetermined.is_empty() {
        st.drift.reason = Some(format!(
            "no fingerprint was recorded, and the schema cannot tell whether {} ran (no schema change of its own): `tidemark repair --adopt V` or `--pending V` records what happened",
            undetermined.join(", ")
        ));
    } else if p.matches_state_after == st.current_version && p.changes().next().is_none() {
        st.drift.status = DriftState::Clean;
        st.drift.reason = Some(
            "no fingerprint was recorded; a replay shows the live schema is the state after the last recorded migration (`up` or `check` records it)".into(),
        );
    } else {
        st.drift.status = DriftState::Drifted;
        st.drift.reason = Some(
            "no fingerprint was recorded, and a replay shows the live schema is not the state the history describes".into(),
        );
    }
}

struct Identity {
    id: Option<String>,
    server: Option<String>,
    /// Where the identity was assigned, and where the database is now, when they differ.
    moved: Option<(String, String)>,
}

async fn explain(
    db: &mut dyn tidemark::Driver,
    set: &tidemark::MigrationSet,
    settings: &tidemark::engine::Settings,
    shadow: Option<&tidemark::DatabaseUrl>,
) -> Result<RepairPlan> {
    let h = tidemark::history::read(db).await?;
    let ev = repair::gather(db, set, settings, shadow).await?;
    Ok(repair::plan(set, &h, &ev))
}

fn print_text(
    ctx: &Context,
    url: &str,
    caps: &tidemark::Capabilities,
    ident: &Identity,
    set: &tidemark::MigrationSet,
    st: &Status,
    evidence: Option<&RepairPlan>,
) {
    let out = &ctx.out;
    let pending = st.count(MigrationState::Pending);
    out.line(format!(
        "{} {url} {}",
        paint(BOLD, "Database  "),
        paint(DIM, format!("({} {})", caps.flavor, caps.server_version))
    ));
    let server = ident
        .server
        .as_deref()
        .map(|s| paint(DIM, format!(" ({s})")))
        .unwrap_or_default();
    match &ident.id {
        Some(id) => out.line(format!("{} {id}{server}", paint(BOLD, "Identity  "))),
        None => out.line(format!(
            "{} not assigned yet {}{server}",
            paint(BOLD, "Identity  "),
            paint(DIM, "(with the first change or backup)")
        )),
    }
    if let Some((from, _)) = &ident.moved {
        out.line(format!(
            "{} {}",
            paint(BOLD, "          "),
            paint(YELLOW, super::backup::moved_note(from))
        ));
    }
    out.line(format!(
        "{} {} {}",
        paint(BOLD, "Migrations"),
        set.dir.display(),
        paint(
            DIM,
            format!("({} layout, {} files)", set.layout, set.migrations.len())
        )
    ));
    let at = st
        .current_version
        .map(|v| v.to_string())
        .unwrap_or_else(|| "nothing applied".into());
    let latest = st
        .latest_version
        .map(|v| v.to_string())
        .unwrap_or_else(|| "-".into());
    let pend = if pending > 0 {
        paint(YELLOW, format!(" · {pending} pending"))
    } else {
        String::new()
    };
    out.line(format!(
        "{} {at} of {latest}{pend}",
        paint(BOLD, "Version   ")
    ));
    let drift = match st.drift.status {
        DriftState::Clean => paint(GREEN, "clean"),
        DriftState::Drifted => paint(RED.bold(), "drifted"),
        DriftState::Unknown => paint(YELLOW, "unknown"),
    };
    let fp = st
        .drift
        .live_fingerprint
        .as_deref()
        .map(|f| paint(DIM, format!(" (fingerprint {})", &f[..12.min(f.len())])))
        .unwrap_or_default();
    let reason = st
        .drift
        .reason
        .as_deref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    out.line(format!("{} {drift}{reason}{fp}", paint(BOLD, "Drift     ")));
    if let Some(p) = evidence {
        out.line(format!(
            "{} {} — `tidemark repair --dry-run` shows the plan",
            paint(BOLD, "Evidence  "),
            p.summary()
        ));
    }
    if st.entries.is_empty() {
        out.line("\nno migrations yet: `tidemark new NAME` creates one");
        return;
    }
    let vw = st
        .entries
        .iter()
        .map(|e| e.version.to_string().len())
        .max()
        .unwrap_or(7)
        .max(7);
    let nw = st
        .entries
        .iter()
        .map(|e| e.name.chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 48);
    out.line("");
    out.line(paint(
        DIM,
        format!(
            "  {:<vw$}  {:<nw$}  {:<9}  {:<23}  {}",
            "VERSION", "NAME", "STATE", "APPLIED AT", "CLASS"
        ),
    ));
    for e in &st.entries {
        let name: String = if e.name.chars().count() > nw {
            e.name.chars().take(nw - 1).chain(['…']).collect()
        } else {
            e.name.clone()
        };
        let state = format!("{:<9}", e.state.as_str());
        let when = e
            .applied_at
            .as_deref()
            .map(|a| a.replace('T', " ").trim_end_matches('Z').to_string())
            .unwrap_or_default();
        let mut note = String::new();
        if e.out_of_order {
            note.push_str("  out of order");
        }
        if e.state == MigrationState::Failed {
            let n = e
                .statements_applied
                .map(|n| format!("{n} statement(s) ran; "))
                .unwrap_or_default();
            note.push_str(&format!("  {n}{}", e.error.as_deref().unwrap_or("")));
        }
        if e.state == MigrationState::Modified {
            note.push_str("  file changed since it was applied");
        }
        // What the migration does to a release running beside it, as recorded when applied.
        let class = e.lint_class.map(|c| c.as_str()).unwrap_or("");
        out.line(format!(
            "  {:<vw$}  {:<nw$}  {}  {:<23}  {}{}",
            e.version,
            name,
            paint(state_style(e.state), state),
            when,
            paint(DIM, class),
            paint(DIM, note)
        ));
    }
    for r in &st.repeatables {
        let when = r
            .applied_at
            .as_deref()
            .map(|a| a.replace('T', " ").trim_end_matches('Z').to_string())
            .unwrap_or_default();
        let style = match r.state {
            "applied" => GREEN,
            "missing" => RED.bold(),
            _ => YELLOW,
        };
        out.line(format!(
            "  {:<vw$}  {:<nw$}  {}  {}",
            "R",
            r.description,
            paint(style, format!("{:<9}", r.state)),
            when
        ));
    }
    let problems = st.problems().count();
    if problems > 0 {
        out.line(format!("\n{} {problems} migration(s) need attention: run `tidemark repair --dry-run` to see what is really applied", paint(RED.bold(), "!")));
    }
}
