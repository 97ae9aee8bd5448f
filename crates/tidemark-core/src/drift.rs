//! `drift`: the schema the history says the database should have (the recorded migrations
//! replayed on a shadow database) against the live schema, object by object.

use serde::Serialize;
use tidemark_schema::{Change, diff};

use crate::driver::Driver;
use crate::engine::Settings;
use crate::error::Result;
use crate::history;
use crate::migration::{Migration, MigrationSet};
use crate::replay::{self, ReplayStats};
use crate::status::{MigrationState, Status};
use crate::url::DatabaseUrl;

#[derive(Debug, Clone, Serialize)]
pub struct DriftReport {
    pub drifted: bool,
    /// Expected = the replay, actual = live: `missing` is expected but absent live.
    pub changes: Vec<Change>,
    /// Versions replayed on the shadow, in order.
    pub replayed: Vec<i64>,
    pub expected_fingerprint: String,
    pub live_fingerprint: String,
    /// Things that make the comparison less than exact, in words.
    pub notes: Vec<String>,
    /// Where the expected schema came from: the replay cache, or a replay.
    pub replay: ReplayStats,
}

/// The recorded migrations that can be replayed, in order of application, with notes on the
/// ones that cannot.
pub fn recorded_migrations<'a>(
    set: &'a MigrationSet,
    st: &Status,
    notes: &mut Vec<String>,
) -> Vec<&'a Migration> {
    let mut out = Vec::new();
    for e in &st.entries {
        match e.state {
            MigrationState::Applied => out.extend(set.get(e.version)),
            MigrationState::Modified => {
                notes.push(format!("migration {} ({}) was changed after it was applied; replayed as the file is now", e.version, e.name));
                out.extend(set.get(e.version));
            }
            MigrationState::Missing => {
                notes.push(format!("migration {} ({}) is recorded but its file is gone; it could not be replayed", e.version, e.name))
            }
            MigrationState::Failed => notes.push(format!(
                "migration {} ({}) is recorded as failed; not replayed, so whatever of it took effect shows as unexpected",
                e.version, e.name
            )),
            MigrationState::Pending => {}
        }
    }
    out
}

pub async fn drift(
    live: &mut dyn Driver,
    set: &MigrationSet,
    settings: &Settings,
    shadow_url: Option<&DatabaseUrl>,
) -> Result<DriftReport> {
    set.validate(live.dialect())?;
    let h = history::read(live).await?;
    let st = Status::compute(set, &h);
    let mut notes = Vec::new();
    let recorded = recorded_migrations(set, &st, &mut notes);
    // Then the repeatable migrations that ran, after all versioned ones as they run.
    let mut to_replay = recorded.clone();
    for r in &st.repeatables {
        match r.state {
            "applied" | "outdated" => {
                if r.state == "outdated" {
                    notes.push(format!(
                        "repeatable migration `{}` changed since it ran; replayed as the file is now (`up` runs it again)",
                        r.description
                    ));
                }
                to_replay.extend(
                    set.repeatables
                        .iter()
                        .filter(|x| x.description() == r.description)
                        .map(|x| &x.migration),
                );
            }
            "missing" => notes.push(format!(
                "repeatable migration `{}` ran but its file is gone; it could not be replayed",
                r.description
            )),
            _ => {}
        }
    }
    let (expected, replay) =
        replay::final_schema_cached(live, settings, shadow_url, &to_replay).await?;
    let actual = live.inspect(&settings.inspect).await?;
    let d = diff(&expected, &actual);
    Ok(DriftReport {
        drifted: !d.is_empty(),
        changes: d.changes,
        replayed: recorded.iter().map(|m| m.version).collect(),
        expected_fingerprint: expected.fingerprint().0,
        live_fingerprint: actual.fingerprint().0,
        notes,
        replay,
    })
}
