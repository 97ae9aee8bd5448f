//! The application gate: may an application built for these migrations start against this
//! database? Used by `check`, `exec`, `health` and by applications themselves at start-up.

use std::str::FromStr;

use serde::Serialize;

use crate::class::MigrationClass;
use crate::driver::Driver;
use crate::engine::{self, Settings};
use crate::error::Result;
use crate::migration::MigrationSet;
use crate::status::{DriftState, DriftStatus, MigrationState, StatusEntry};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Require {
    /// Every migration file is applied.
    Latest,
    /// Every migration up to and including this version is applied.
    Version(i64),
}

impl FromStr for Require {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "latest" => Ok(Require::Latest),
            v => v
                .parse()
                .map(Require::Version)
                .map_err(|_| format!("`{v}` is neither `latest` nor a version number")),
        }
    }
}

/// What the gate is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub require: Require,
    /// Pass even if the live schema has drifted.
    pub allow_drift: bool,
    /// The database must be exactly at the required version: nothing recorded after it, not
    /// even expand-only migrations.
    pub strict: bool,
}

impl Options {
    pub fn new(require: Require) -> Options {
        Options {
            require,
            allow_drift: false,
            strict: false,
        }
    }
}

/// A migration recorded as applied after the required one: the database is ahead of the
/// release asking.
#[derive(Debug, Clone, Serialize)]
pub struct Ahead {
    pub version: i64,
    pub name: String,
    /// As recorded when it was applied (or classified from its file when the release has it
    /// and the class was not recorded); `unknown` when neither can tell.
    pub class: MigrationClass,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub ok: bool,
    pub current_version: Option<i64>,
    pub required_version: Option<i64>,
    /// Why the check fails, one reason per line; empty when it passes.
    pub reasons: Vec<String>,
    pub drift: DriftStatus,
    /// Migrations applied after the required one (an older release on a newer schema).
    pub ahead: Vec<Ahead>,
}

/// Passes only if the required migrations are applied, nothing is failed, modified or
/// missing, and the live schema has not drifted (unless drift is allowed). Drift that the
/// recorded fingerprint cannot decide is established by replay, never assumed clean.
///
/// A database ahead of the required version passes when every migration after it is recorded
/// as applied and expand-only (an older release keeps working on it): that is what rolling an
/// application back, or old and new replicas side by side, needs. A contract, destructive or
/// unclassified migration after it refuses, naming the version and why; `strict` refuses
/// anything after it.
pub async fn check(
    driver: &mut dyn Driver,
    set: &MigrationSet,
    settings: &Settings,
    opts: Options,
) -> Result<CheckReport> {
    let mut st = engine::status(driver, set, settings, true).await?;
    if !opts.allow_drift {
        engine::establish_drift(
            driver,
            set,
            settings,
            &mut st,
            &mut engine::Quiet,
            engine::Record::Unlocked,
        )
        .await;
    }
    let mut reasons = Vec::new();
    let required_position = match opts.require {
        Require::Latest => set.migrations.len(),
        Require::Version(v) => match set.position(v) {
            Some(p) => p + 1,
            None => {
                reasons.push(format!("there is no migration with version {v}"));
                0
            }
        },
    };
    let required_version = required_position
        .checked_sub(1)
        .map(|p| set.migrations[p].version);
    let not_applied: Vec<i64> = set.migrations[..required_position]
        .iter()
        .filter(|m| {
            st.entries
                .iter()
                .any(|e| e.version == m.version && !e.state.is_applied())
        })
        .map(|m| m.version)
        .collect();
    if !not_applied.is_empty() {
        let list: Vec<String> = not_applied.iter().map(i64::to_string).collect();
        reasons.push(format!(
            "{} required migration(s) not applied: {}",
            not_applied.len(),
            list.join(", ")
        ));
    }
    // Recorded after the boundary: the database is ahead of this release.
    let boundary = required_version.unwrap_or(i64::MIN);
    let is_ahead = |e: &StatusEntry| {
        e.version > boundary && matches!(e.state, MigrationState::Applied | MigrationState::Missing)
    };
    for e in st.problems().filter(|e| !is_ahead(e)) {
        let what = match e.state {
            MigrationState::Failed => "is recorded as failed (half applied)",
            MigrationState::Modified => "was changed after it was applied",
            _ => "is recorded but its file is gone",
        };
        reasons.push(format!("migration {} ({}) {what}", e.version, e.name));
    }
    let mut ahead = Vec::new();
    for e in st.entries.iter().filter(|e| is_ahead(e)) {
        let class = e
            .lint_class
            .or_else(|| {
                set.get(e.version)
                    .and_then(|m| settings.class_of(m, driver.dialect()))
            })
            .unwrap_or(MigrationClass::Unknown);
        if opts.strict {
            reasons.push(format!(
                "migration {} ({}) is applied after the required version {} (--strict wants the database exactly there)",
                e.version,
                e.name,
                required_version.map(|v| v.to_string()).unwrap_or_else(|| "(none)".into())
            ));
        } else if !class.keeps_older_release_working() {
            let why = match (class, e.lint_class) {
                (MigrationClass::Unknown, None) => "its class was not recorded when it was applied (by an older tidemark, by hand or by another tool), so it is treated as a contract change".to_string(),
                (MigrationClass::Unknown, Some(_)) => "it could not be classified, so it is treated as a contract change".to_string(),
                (c, _) => format!("it is {c}: a release built before it may fail on the schema it left"),
            };
            reasons.push(format!(
                "migration {} ({}) is applied after the version this release requires, and {why}; revert it (`tidemark down`) or run a release built for it",
                e.version, e.name
            ));
        }
        ahead.push(Ahead {
            version: e.version,
            name: e.name.clone(),
            class,
        });
    }
    if !opts.allow_drift {
        match st.drift.status {
            DriftState::Drifted => reasons.push(format!(
                "the live schema has drifted: {}{}",
                st.drift.reason.as_deref().unwrap_or("fingerprints differ"),
                st.drift
                    .evidence
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            )),
            DriftState::Unknown => reasons.push(format!(
                "the schema could not be established: {}",
                st.drift
                    .reason
                    .as_deref()
                    .unwrap_or("no fingerprint was recorded")
            )),
            DriftState::Clean => {}
        }
    }
    Ok(CheckReport {
        ok: reasons.is_empty(),
        current_version: st.current_version,
        required_version,
        reasons,
        drift: st.drift,
        ahead,
    })
}

/// The gate runs inside HTTP handlers (`tidemark health`, applications' own probes), which need
/// `Send` futures: this fails to compile when a change makes it otherwise.
#[cfg(test)]
#[allow(dead_code)]
fn gate_future_is_send(d: &mut dyn Driver, s: &MigrationSet, st: &Settings) {
    fn is_send<T: Send>(_: T) {}
    is_send(check(d, s, st, Options::new(Require::Latest)));
}
