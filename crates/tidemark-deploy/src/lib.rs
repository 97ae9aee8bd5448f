//! tidemark's deploy pipeline: preflight → backup → migrate → release → verify → promote or
//! rollback → report, journaled step by step, with the release and the database rolled back
//! together when verification fails.
//!
//! The configuration is `deploy.toml` ([`config::DeployConfig`]); releases are immutable
//! records kept in the database (`tidemark_releases`) and in a local state directory
//! ([`state::State`]); the report is a pure function of a run's events ([`report::Report`]).
//! Release strategies implement [`strategy::ReleaseStrategy`].

pub mod check;
pub mod config;
pub mod drill;
pub mod envfile;
pub mod event;
pub mod nginx;
pub mod pipeline;
pub mod releases_table;
pub mod report;
pub mod state;
pub mod strategy;
pub mod template;

pub use config::DeployConfig;
pub use event::{Event, EventKind, Listener, Step};
pub use pipeline::{DeployOptions, Inputs, RunResult, deploy, rollback};
pub use report::Report;
pub use state::{Outcome, Release, State};

use tidemark::{DatabaseUrl, Result};

/// A release as `tidemark releases` lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Listed {
    #[serde(flatten)]
    pub release: Release,
    pub serving: bool,
    /// Where the record was found: `local`, `database` or `both`.
    pub found_in: &'static str,
}

/// Every release of the app: the local records, and the database's when it can be read (a
/// record only in the database, e.g. written from another host, is listed too). Returns the
/// list and, when the database could not be read, why.
pub async fn releases(
    cfg: &DeployConfig,
    url: Option<&DatabaseUrl>,
) -> Result<(Vec<Listed>, Option<String>)> {
    let state = State::existing(&cfg.state_dir);
    let local = state.releases()?;
    let serving = state.serving()?.map(|s| s.release);
    let mut db_note = None;
    let mut remote = Vec::new();
    if let Some(url) = url {
        match tidemark::connect(url).await {
            Ok(mut db) => {
                match releases_table::read(db.as_mut(), &cfg.app).await {
                    Ok(r) => remote = r,
                    Err(e) => db_note = Some(e.to_string()),
                }
                db.close().await;
            }
            Err(e) => db_note = Some(e.to_string()),
        }
    }
    let mut out: Vec<Listed> = local
        .into_iter()
        .map(|r| {
            let in_db = remote.iter().any(|x| x.id == r.id);
            Listed {
                serving: serving.as_deref() == Some(r.id.as_str()),
                found_in: if in_db { "both" } else { "local" },
                release: r,
            }
        })
        .collect();
    for r in remote {
        if !out.iter().any(|l| l.release.id == r.id) {
            out.push(Listed {
                serving: false,
                found_in: "database",
                release: r,
            });
        }
    }
    out.sort_by(|a, b| {
        (&a.release.started_at, &a.release.id).cmp(&(&b.release.started_at, &b.release.id))
    });
    Ok((out, db_note))
}

/// The report of a run (`None`: the newest), rebuilt from its journal.
pub fn report(cfg: &DeployConfig, run: Option<&str>) -> Result<Report> {
    let state = State::existing(&cfg.state_dir);
    let runs = state.runs()?;
    let run = match run {
        Some(r) => {
            if !runs.iter().any(|x| x == r) {
                // Also accept a release id: the run that deployed it.
                match state.release(r)? {
                    Some(rel) => rel.run_id,
                    None => {
                        return Err(tidemark::Error::Usage(format!(
                            "no deploy or release `{r}` in {}",
                            state.dir().display()
                        )));
                    }
                }
            } else {
                r.to_string()
            }
        }
        None => runs.last().cloned().ok_or_else(|| {
            tidemark::Error::Usage(format!(
                "no deploy has run yet ({} is empty)",
                state.dir().display()
            ))
        })?,
    };
    let events = state.events(&run)?;
    Ok(Report::from_events(&cfg.app, &events))
}
