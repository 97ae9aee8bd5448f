//! The deploy drill: an A/A "rollback to self" of the serving release through the configured
//! strategy — stop it and start it again exactly as a rollback would return to it — then wait
//! until its checks pass, timed, so that the rollback path is known to work before it is
//! needed. It lives here, beside the strategies it drives; the other drills (scratch copies
//! only) are `tidemark::drill`. It touches the running application, so it runs only when asked.
//!
//! It takes the app's deploy lock (no deploy or rollback runs meanwhile), changes no release
//! record, runs no migration and writes the commands' output to `<state>/drills/RUN/`.

use std::time::Instant;

use tidemark::drill::{DrillReport, Kind, Options, Run};
use tidemark::gate::Require;
use tidemark::{Error, Result};

use crate::config::DeployConfig;
use crate::pipeline::{Inputs, serving_release, shell, target_of, wait_serving};
use crate::state::State;
use crate::strategy;

/// Rehearse a rollback of the serving release to itself. `database_id` files the report.
pub async fn rehearse(
    cfg: &DeployConfig,
    inputs: &Inputs,
    database_id: &str,
    opts: &Options,
) -> Result<DrillReport> {
    let run_id = inputs.settings.run_id.clone();
    let mut run = Run::begin(
        Kind::Deploy,
        &run_id,
        database_id,
        &inputs.url.redacted(),
        opts,
    );
    let t = Instant::now();
    let state = State::existing(&cfg.state_dir);
    if !state.dir().is_dir() {
        return Err(Error::Usage(format!(
            "no release of {} has been deployed ({} does not exist): nothing to rehearse",
            cfg.app,
            state.dir().display()
        )));
    }
    let _lock = state.lock(&format!(
        "deploy drill, run {run_id} by {} (pid {})",
        inputs.settings.actor,
        std::process::id()
    ))?;
    let Some(current) = serving_release(&state)? else {
        return Err(Error::Usage(format!(
            "no release of {} is serving: nothing to rehearse",
            cfg.app
        )));
    };
    run.r.source = Some(format!("release {}", current.id));
    run.r.versions = current.migration_head.into_iter().collect();
    let target = target_of(cfg, &current);
    if !target.dir.is_dir() {
        run.fail(
            "preflight",
            t,
            format!(
                "the directory of release {} ({}) is gone: a rollback to it would fail",
                current.id,
                target.dir.display()
            ),
        );
        return Ok(run.finish());
    }
    let dir = state.dir().join("drills").join(&run_id);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let sh = shell(cfg, &dir);
    run.step(
        "preflight",
        t,
        true,
        Some(format!("release {} serves; deploy lock taken", current.id)),
    );

    let t = Instant::now();
    let strat = strategy::for_config(cfg);
    match strat.switch_back(&sh, &target, &target).await {
        Ok(did) => run.step("switch", t, true, Some(did.join("; "))),
        Err(e) => {
            run.fail(
                "switch",
                t,
                format!(
                    "the rollback path failed on release {}: {e} (log: {})",
                    current.id,
                    sh.log.display()
                ),
            );
            return Ok(run.finish());
        }
    }

    let t = Instant::now();
    let mut db = tidemark::connect(&inputs.url).await?;
    let require = match current.migration_head {
        Some(v) if inputs.set.position(v).is_some() => Require::Version(v),
        _ => Require::Latest,
    };
    let r = wait_serving(cfg, inputs, db.as_mut(), &target, require).await;
    db.close().await;
    match r {
        Ok(()) => run.step(
            "verify",
            t,
            true,
            Some(format!("release {} serves again, checks pass", current.id)),
        ),
        Err(f) => run.fail(
            "verify",
            t,
            format!(
                "release {} does not pass its checks after the switch: {}: {}",
                current.id, f.check, f.detail
            ),
        ),
    }
    Ok(run.finish())
}
