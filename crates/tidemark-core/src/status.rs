//! Status: files and history side by side, migration by migration. Pure: no database here.

use std::path::PathBuf;

use serde::Serialize;

use crate::history::{History, HistoryState};
use crate::migration::MigrationSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationState {
    Applied,
    Pending,
    /// Applied, but the file's checksum differs from the recorded one.
    Modified,
    /// Recorded in history, but its file is gone.
    Missing,
    /// Recorded as failed (half applied, or its process died).
    Failed,
}

impl MigrationState {
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationState::Applied => "applied",
            MigrationState::Pending => "pending",
            MigrationState::Modified => "modified",
            MigrationState::Missing => "missing",
            MigrationState::Failed => "failed",
        }
    }

    /// Counts as applied for ordering and `down` (its effects are in place).
    pub fn is_applied(self) -> bool {
        matches!(
            self,
            MigrationState::Applied | MigrationState::Modified | MigrationState::Missing
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusEntry {
    pub version: i64,
    pub name: String,
    pub state: MigrationState,
    pub applied_at: Option<String>,
    /// The recorded checksum when there is a history row, else the file's.
    pub checksum: Option<String>,
    /// The file's checksum when it differs from the recorded one.
    pub file_checksum: Option<String>,
    pub path: Option<PathBuf>,
    /// Pending although a later migration is applied (e.g. merged from a branch).
    pub out_of_order: bool,
    pub execution_ms: Option<i64>,
    pub error: Option<String>,
    pub statements_applied: Option<i64>,
    /// The class recorded when it was applied (`None`: not recorded, or not applied).
    pub lint_class: Option<crate::class::MigrationClass>,
    /// Taken over from another tool's history by `import`.
    pub imported: Option<crate::history::ImportedFacts>,
}

/// A repeatable migration: `applied` (ran with the file's checksum), `pending` (never ran),
/// `outdated` (ran, and the file changed since: it runs again), `missing` (ran, file gone).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepeatableStatus {
    pub description: String,
    pub state: &'static str,
    pub checksum: Option<String>,
    pub applied_at: Option<String>,
    pub path: Option<PathBuf>,
}

impl RepeatableStatus {
    /// It runs at the next `up`.
    pub fn due(&self) -> bool {
        matches!(self.state, "pending" | "outdated")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftState {
    Clean,
    Drifted,
    Unknown,
}

impl DriftState {
    pub fn as_str(self) -> &'static str {
        match self {
            DriftState::Clean => "clean",
            DriftState::Drifted => "drifted",
            DriftState::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DriftStatus {
    pub status: DriftState,
    pub live_fingerprint: Option<String>,
    pub recorded_fingerprint: Option<String>,
    /// Why the status is what it is, in words.
    pub reason: Option<String>,
    /// When drifted and a replay could tell: which state the live schema is in, in words
    /// ("the live schema equals the state after migration 3; 1 unrecorded migration(s) are
    /// in fact applied").
    pub evidence: Option<String>,
}

impl Default for DriftStatus {
    fn default() -> Self {
        DriftStatus {
            status: DriftState::Unknown,
            live_fingerprint: None,
            recorded_fingerprint: None,
            reason: None,
            evidence: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    pub entries: Vec<StatusEntry>,
    /// Flyway-style repeatable migrations, in order of application.
    pub repeatables: Vec<RepeatableStatus>,
    /// The last applied migration in order of application.
    pub current_version: Option<i64>,
    /// The last migration file.
    pub latest_version: Option<i64>,
    pub drift: DriftStatus,
}

impl Status {
    pub fn compute(set: &MigrationSet, history: &History) -> Status {
        let mut entries: Vec<StatusEntry> = Vec::with_capacity(set.migrations.len());
        for m in &set.migrations {
            let e = match history.get(m.version) {
                None => StatusEntry {
                    version: m.version,
                    name: m.name.clone(),
                    state: MigrationState::Pending,
                    applied_at: None,
                    checksum: Some(m.checksum.clone()),
                    file_checksum: None,
                    path: Some(m.up.path.clone()),
                    out_of_order: false,
                    execution_ms: None,
                    error: None,
                    statements_applied: None,
                    lint_class: None,
                    imported: None,
                },
                Some(h) => {
                    let state = match h.state {
                        HistoryState::Failed => MigrationState::Failed,
                        HistoryState::Applied if h.checksum != m.checksum => {
                            MigrationState::Modified
                        }
                        HistoryState::Applied => MigrationState::Applied,
                    };
                    StatusEntry {
                        version: m.version,
                        name: m.name.clone(),
                        state,
                        applied_at: Some(h.applied_at.clone()),
                        checksum: Some(h.checksum.clone()),
                        file_checksum: (h.checksum != m.checksum).then(|| m.checksum.clone()),
                        path: Some(m.up.path.clone()),
                        out_of_order: false,
                        execution_ms: Some(h.execution_ms),
                        error: h.error.clone(),
                        statements_applied: h.statements_applied,
                        lint_class: h.lint_class,
                        imported: h.imported.clone(),
                    }
                }
            };
            entries.push(e);
        }
        // Recorded migrations whose files are gone, placed by version among the others.
        for h in history
            .entries
            .iter()
            .filter(|h| set.get(h.version).is_none())
        {
            let at = entries
                .iter()
                .position(|e| e.version > h.version)
                .unwrap_or(entries.len());
            entries.insert(
                at,
                StatusEntry {
                    version: h.version,
                    name: h.name.clone(),
                    state: if h.state == HistoryState::Failed {
                        MigrationState::Failed
                    } else {
                        MigrationState::Missing
                    },
                    applied_at: Some(h.applied_at.clone()),
                    checksum: Some(h.checksum.clone()),
                    file_checksum: None,
                    path: None,
                    out_of_order: false,
                    execution_ms: Some(h.execution_ms),
                    error: h.error.clone(),
                    statements_applied: h.statements_applied,
                    lint_class: h.lint_class,
                    imported: h.imported.clone(),
                },
            );
        }
        let last_applied = entries
            .iter()
            .rposition(|e| e.state.is_applied() || e.state == MigrationState::Failed);
        if let Some(last) = last_applied {
            for e in &mut entries[..last] {
                if e.state == MigrationState::Pending {
                    e.out_of_order = true;
                }
            }
        }
        let current_version = entries
            .iter()
            .rev()
            .find(|e| e.state.is_applied())
            .map(|e| e.version);
        let recorded_fingerprint = entries
            .iter()
            .rev()
            .find(|e| e.state.is_applied())
            .and_then(|e| history.get(e.version))
            .and_then(|h| h.schema_fingerprint.clone());
        let mut repeatables: Vec<RepeatableStatus> = set
            .repeatables
            .iter()
            .map(|r| {
                let rec = history
                    .repeatables
                    .iter()
                    .find(|h| h.description == r.description());
                RepeatableStatus {
                    description: r.description().to_string(),
                    state: match rec {
                        None => "pending",
                        Some(h) if h.checksum == r.migration.checksum => "applied",
                        Some(_) => "outdated",
                    },
                    checksum: Some(r.migration.checksum.clone()),
                    applied_at: rec.map(|h| h.applied_at.clone()),
                    path: Some(r.migration.up.path.clone()),
                }
            })
            .collect();
        for h in &history.repeatables {
            if !set
                .repeatables
                .iter()
                .any(|r| r.description() == h.description)
            {
                repeatables.push(RepeatableStatus {
                    description: h.description.clone(),
                    state: "missing",
                    checksum: Some(h.checksum.clone()),
                    applied_at: Some(h.applied_at.clone()),
                    path: None,
                });
            }
        }
        Status {
            entries,
            repeatables,
            current_version,
            latest_version: set.latest().map(|m| m.version),
            drift: DriftStatus {
                recorded_fingerprint,
                ..Default::default()
            },
        }
    }

    pub fn count(&self, state: MigrationState) -> usize {
        self.entries.iter().filter(|e| e.state == state).count()
    }

    pub fn pending(&self) -> impl Iterator<Item = &StatusEntry> {
        self.entries
            .iter()
            .filter(|e| e.state == MigrationState::Pending)
    }

    /// Entries that make the history inconsistent with the files.
    pub fn problems(&self) -> impl Iterator<Item = &StatusEntry> {
        self.entries.iter().filter(|e| {
            matches!(
                e.state,
                MigrationState::Modified | MigrationState::Missing | MigrationState::Failed
            )
        })
    }

    /// Fill in the live fingerprint and decide drift from it cheaply: equal to the fingerprint
    /// recorded after the last run is clean; different is drifted; nothing recorded is unknown,
    /// unless the history is empty and the schema is not, which is drift for sure.
    pub fn set_live_fingerprint(&mut self, live: String, live_is_empty: bool) {
        let any_recorded = self
            .entries
            .iter()
            .any(|e| e.state.is_applied() || e.state == MigrationState::Failed);
        let (status, reason) = match &self.drift.recorded_fingerprint {
            Some(r) if *r == live => (DriftState::Clean, None),
            Some(_) => (
                DriftState::Drifted,
                Some(
                    "the live schema differs from the schema recorded after the last migration run"
                        .to_string(),
                ),
            ),
            None if !any_recorded && !live_is_empty => (
                DriftState::Drifted,
                Some("the history is empty but the database holds a schema".to_string()),
            ),
            None if !any_recorded => (DriftState::Clean, None),
            None => (
                DriftState::Unknown,
                Some("no fingerprint was recorded for the last applied migration".to_string()),
            ),
        };
        self.drift.status = status;
        self.drift.reason = reason;
        self.drift.live_fingerprint = Some(live);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::HistoryEntry;
    use crate::migration::MigrationSet;

    fn set(files: &[(&str, &str)]) -> (tempfile::TempDir, MigrationSet) {
        let d = tempfile::tempdir().unwrap();
        for (n, b) in files {
            std::fs::write(d.path().join(n), b).unwrap();
        }
        let s = MigrationSet::load(d.path(), None).unwrap();
        (d, s)
    }

    fn row(version: i64, checksum: &str, state: HistoryState) -> HistoryEntry {
        HistoryEntry {
            version,
            name: format!("m{version}"),
            checksum: checksum.into(),
            state,
            applied_at: "2026-01-01T00:00:00.000Z".into(),
            execution_ms: 1,
            applied_by: "t@h".into(),
            schema_fingerprint: Some(format!("fp{version}")),
            error: None,
            statements_applied: None,
            lint_class: None,
            imported: None,
        }
    }

    #[test]
    fn every_state() {
        let (_d, s) = set(&[
            ("1_a.sql", "SELECT 1;"),
            ("2_b.sql", "SELECT 2;"),
            ("3_c.sql", "SELECT 3;"),
            ("5_e.sql", "SELECT 5;"),
            ("6_f.sql", "SELECT 6;"),
        ]);
        let c = |v: i64| s.get(v).unwrap().checksum.clone();
        let h = History {
            exists: true,
            repeatables: Vec::new(),
            entries: vec![
                row(1, &c(1), HistoryState::Applied),
                row(2, "other", HistoryState::Applied),
                row(4, "gone", HistoryState::Applied),
                row(5, &c(5), HistoryState::Failed),
            ],
        };
        let st = Status::compute(&s, &h);
        let got: Vec<(i64, &str, bool)> = st
            .entries
            .iter()
            .map(|e| (e.version, e.state.as_str(), e.out_of_order))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, "applied", false),
                (2, "modified", false),
                (3, "pending", true),
                (4, "missing", false),
                (5, "failed", false),
                (6, "pending", false)
            ]
        );
        assert_eq!(st.current_version, Some(4));
        assert_eq!(st.latest_version, Some(6));
        assert_eq!(st.problems().count(), 3);
        assert_eq!(st.drift.recorded_fingerprint.as_deref(), Some("fp4"));
    }

    #[test]
    fn drift_from_fingerprints() {
        let (_d, s) = set(&[("1_a.sql", "SELECT 1;")]);
        let h = History {
            exists: true,
            repeatables: Vec::new(),
            entries: vec![row(1, &s.migrations[0].checksum, HistoryState::Applied)],
        };
        let mut st = Status::compute(&s, &h);
        st.set_live_fingerprint("fp1".into(), false);
        assert_eq!(st.drift.status, DriftState::Clean);
        st.set_live_fingerprint("other".into(), false);
        assert_eq!(st.drift.status, DriftState::Drifted);
        let mut empty = Status::compute(&s, &History::default());
        empty.set_live_fingerprint("x".into(), false);
        assert_eq!(
            empty.drift.status,
            DriftState::Drifted,
            "empty history, non-empty schema"
        );
        empty.set_live_fingerprint("x".into(), true);
        assert_eq!(empty.drift.status, DriftState::Clean);
    }
}
