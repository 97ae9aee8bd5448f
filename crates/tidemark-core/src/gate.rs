//! The application gate: may an application built for these migrations start against this
//! database? Used by `check`, `exec`, `health` and by applications themselves at start-up.

use std::str::FromStr;

use serde::Serialize;

use crate::driver::Driver;
use crate::engine::{self, Settings};
use crate::error::Result;
use crate::migration::MigrationSet;
use crate::status::{DriftState, DriftStatus, MigrationState};

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

#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub ok: bool,
    pub current_version: Option<i64>,
    pub required_version: Option<i64>,
    /// Why the check fails, one reason per line; empty when it passes.
    pub reasons: Vec<String>,
    pub drift: DriftStatus,
}

/// Passes only if the required migrations are applied, nothing is failed, modified or
/// missing, and the live schema has not drifted (unless drift is allowed).
pub async fn check(
    driver: &mut dyn Driver,
    set: &MigrationSet,
    settings: &Settings,
    require: Require,
    allow_drift: bool,
) -> Result<CheckReport> {
    let st = engine::status(driver, set, settings, true).await?;
    let mut reasons = Vec::new();
    let required_position = match require {
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
    for e in st.problems() {
        let what = match e.state {
            MigrationState::Failed => "is recorded as failed (half applied)",
            MigrationState::Modified => "was changed after it was applied",
            _ => "is recorded but its file is gone",
        };
        reasons.push(format!("migration {} ({}) {what}", e.version, e.name));
    }
    if st.drift.status == DriftState::Drifted && !allow_drift {
        reasons.push(format!(
            "the live schema has drifted: {}",
            st.drift.reason.as_deref().unwrap_or("fingerprints differ")
        ));
    }
    Ok(CheckReport {
        ok: reasons.is_empty(),
        current_version: st.current_version,
        required_version,
        reasons,
        drift: st.drift,
    })
}
