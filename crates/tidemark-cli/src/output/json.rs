//! The JSON documents of `--format json`: dedicated structs, so an internal refactor cannot
//! rename a field users script against. Field names are snake_case and documented in
//! docs/json.md.

use serde::Serialize;
use tidemark::engine::RunReport;
use tidemark::plan::{Direction, Plan};
use tidemark::status::{MigrationState, Status};

#[derive(Serialize)]
pub struct ErrorDoc {
    pub error: ErrorBody,
}

#[derive(Serialize)]
pub struct ErrorBody {
    /// `usage`, `operational`, `pending`, `inconsistent`, `rolled_back`, `rollback_failed`.
    pub code: &'static str,
    pub exit_code: i32,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migration: Option<FailedMigration>,
}

#[derive(Serialize)]
pub struct FailedMigration {
    pub version: i64,
    pub name: String,
    pub statement_index: usize,
    pub statement: String,
    pub database_message: String,
    pub sqlstate: Option<String>,
    /// Versions this run applied before the failure.
    pub applied_before_failure: Vec<i64>,
    /// True when the migration is now recorded as `failed` (it ran outside a transaction and
    /// part of it may be in place); false when it was rolled back entirely.
    pub recorded_failed: bool,
}

#[derive(Serialize)]
pub struct StatusDoc {
    pub database: String,
    /// The database's identity (backups are filed under it); null until tidemark first changes
    /// or backs up the database.
    pub database_id: Option<String>,
    /// Where the database lives (server and database, or the SQLite file).
    pub server_identity: Option<String>,
    /// Where the database lived when its identity was assigned, if it has been moved, renamed
    /// or copied since (a copy shares the original's backups); null otherwise.
    pub identity_moved_from: Option<String>,
    pub current_version: Option<i64>,
    pub latest_version: Option<i64>,
    pub pending: usize,
    pub migrations: Vec<MigrationDoc>,
    /// Flyway-style repeatable migrations (absent when there are none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub repeatables: Vec<tidemark::status::RepeatableStatus>,
    pub drift: DriftDoc,
    /// Whether another tool's table is kept in step: `{"tool", "table", "source"}` (`tool`
    /// null when off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync: Option<tidemark::sync::SyncState>,
}

#[derive(Serialize)]
pub struct MigrationDoc {
    pub version: i64,
    pub name: String,
    pub state: MigrationState,
    pub applied_at: Option<String>,
    pub checksum: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_checksum: Option<String>,
    pub file: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub out_of_order: bool,
    pub execution_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statements_applied: Option<i64>,
    /// The migration's class as recorded when it was applied (expand-only, contract,
    /// destructive, unknown); absent when not recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lint_class: Option<tidemark::MigrationClass>,
    /// Taken over from another tool by `import`: `{"tool", "at", "source_checksum"}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imported: Option<tidemark::history::ImportedFacts>,
}

#[derive(Serialize)]
pub struct DriftDoc {
    pub status: &'static str,
    pub live_fingerprint: Option<String>,
    pub recorded_fingerprint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When drifted and a replay could tell: which state the live schema is in, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
    /// `status` only, when not clean: the migration after which the replayed schema equals the
    /// live one exactly (null: no state matches), from a replay on a shadow database.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matches_state_after: Option<i64>,
    /// `status` only, when not clean: whether `repair` has history changes to make.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repair_needed: Option<bool>,
    /// `status` only, when a replay was needed: how many migrations' states came from the
    /// replay cache and how many were applied on a shadow database.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay: Option<tidemark::replay::ReplayStats>,
}

impl StatusDoc {
    pub fn new(database: String, st: &Status) -> StatusDoc {
        StatusDoc {
            database,
            database_id: None,
            server_identity: None,
            identity_moved_from: None,
            current_version: st.current_version,
            latest_version: st.latest_version,
            pending: st.count(MigrationState::Pending),
            repeatables: st.repeatables.clone(),
            sync: None,
            migrations: st
                .entries
                .iter()
                .map(|e| MigrationDoc {
                    version: e.version,
                    name: e.name.clone(),
                    state: e.state,
                    applied_at: e.applied_at.clone(),
                    checksum: e.checksum.clone(),
                    file_checksum: e.file_checksum.clone(),
                    file: e.path.as_ref().map(|p| p.display().to_string()),
                    out_of_order: e.out_of_order,
                    execution_ms: e.execution_ms,
                    error: e.error.clone(),
                    statements_applied: e.statements_applied,
                    lint_class: e.lint_class,
                    imported: e.imported.clone(),
                })
                .collect(),
            drift: DriftDoc {
                status: st.drift.status.as_str(),
                live_fingerprint: st.drift.live_fingerprint.clone(),
                recorded_fingerprint: st.drift.recorded_fingerprint.clone(),
                reason: st.drift.reason.clone(),
                evidence: st.drift.evidence.clone(),
                matches_state_after: None,
                repair_needed: None,
                replay: None,
            },
        }
    }
}

#[derive(Serialize)]
pub struct PlanStepDoc {
    pub version: i64,
    pub name: String,
    pub direction: Direction,
    pub file: String,
    pub transactional: bool,
    /// Why the step runs outside a transaction, when it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outside_transaction: Option<String>,
    /// A Flyway-style repeatable migration (`version` 0, `name` its description).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub repeatable: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub out_of_order: bool,
    pub statements: Vec<StatementDoc>,
}

#[derive(Serialize)]
pub struct StatementDoc {
    pub index: usize,
    pub line: usize,
    pub sql: String,
}

pub fn plan_steps(plan: &Plan) -> Vec<PlanStepDoc> {
    plan.steps
        .iter()
        .map(|s| PlanStepDoc {
            version: s.version,
            name: s.name.clone(),
            direction: s.direction,
            file: s.path.display().to_string(),
            transactional: s.transactional,
            outside_transaction: s.outside.clone(),
            repeatable: s.repeatable,
            out_of_order: s.out_of_order,
            statements: s
                .statements
                .iter()
                .map(|st| StatementDoc {
                    index: st.index,
                    line: st.line,
                    sql: st.text.clone(),
                })
                .collect(),
        })
        .collect()
}

/// `up` and `down`: what was planned and what was done.
#[derive(Serialize)]
pub struct RunDoc {
    pub database: String,
    pub dry_run: bool,
    pub single_transaction: bool,
    pub plan: Vec<PlanStepDoc>,
    pub done: Vec<DoneDoc>,
    pub current_version: Option<i64>,
    pub schema_fingerprint: Option<String>,
    pub run_id: Option<String>,
    /// The backup taken before the run (its id), when one was.
    pub backup: Option<String>,
}

#[derive(Serialize)]
pub struct DoneDoc {
    pub version: i64,
    pub name: String,
    pub direction: Direction,
    pub execution_ms: i64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub repeatable: bool,
}

pub fn done(report: &RunReport) -> Vec<DoneDoc> {
    report
        .done
        .iter()
        .map(|d| DoneDoc {
            version: d.version,
            name: d.name.clone(),
            direction: d.direction,
            execution_ms: d.execution_ms,
            repeatable: d.repeatable,
        })
        .collect()
}

#[derive(Serialize)]
pub struct DriftReportDoc {
    /// `clean` or `drifted`.
    pub status: &'static str,
    pub changes: Vec<ChangeDoc>,
    pub replayed_versions: Vec<i64>,
    pub expected_fingerprint: String,
    pub live_fingerprint: String,
    pub notes: Vec<String>,
    /// Where the expected schema came from: `cached` migrations from the replay cache (all or
    /// none), `replayed` applied on a shadow database.
    pub replay: tidemark::replay::ReplayStats,
}

#[derive(Serialize)]
pub struct ChangeDoc {
    pub object: String,
    /// `missing` (expected, absent live), `unexpected` (live only) or `modified`.
    pub kind: &'static str,
    pub detail: Option<String>,
}

pub fn change_docs(changes: &[tidemark::schema::Change]) -> Vec<ChangeDoc> {
    changes
        .iter()
        .map(|c| ChangeDoc {
            object: c.object.clone(),
            kind: c.kind.as_str(),
            detail: c.detail.clone(),
        })
        .collect()
}

impl DriftReportDoc {
    pub fn new(r: &tidemark::drift::DriftReport) -> DriftReportDoc {
        DriftReportDoc {
            status: if r.drifted { "drifted" } else { "clean" },
            changes: change_docs(&r.changes),
            replayed_versions: r.replayed.clone(),
            expected_fingerprint: r.expected_fingerprint.clone(),
            live_fingerprint: r.live_fingerprint.clone(),
            notes: r.notes.clone(),
            replay: r.replay,
        }
    }
}

#[derive(Serialize)]
pub struct RepairDoc {
    pub dry_run: bool,
    pub matches_state_after: Option<i64>,
    pub steps: Vec<RepairStepDoc>,
    /// Live objects that no migration creates.
    pub unexplained: Vec<String>,
    pub notes: Vec<String>,
    pub live_fingerprint: String,
    /// How many migrations' states came from the replay cache, how many were replayed.
    pub replay: tidemark::replay::ReplayStats,
    /// What was written (empty for a dry run): version and action
    /// (`adopt`, `forget`, `reset`, `refresh_checksum`, `mark_half_applied`).
    pub applied: Vec<AppliedDoc>,
}

#[derive(Serialize)]
pub struct RepairStepDoc {
    pub version: i64,
    pub name: String,
    /// `adopt`, `replay`, `forget`, `refresh_checksum` or `half_applied`.
    pub action: &'static str,
    pub reason: String,
    pub present: Vec<String>,
    pub missing: Vec<String>,
}

#[derive(Serialize)]
pub struct AppliedDoc {
    pub version: i64,
    pub action: String,
}

impl RepairDoc {
    pub fn new(
        p: &tidemark::repair::RepairPlan,
        dry_run: bool,
        applied: &[(i64, String)],
    ) -> RepairDoc {
        RepairDoc {
            dry_run,
            matches_state_after: p.matches_state_after,
            steps: p
                .steps
                .iter()
                .map(|s| RepairStepDoc {
                    version: s.version,
                    name: s.name.clone(),
                    action: s.action.as_str(),
                    reason: s.reason.clone(),
                    present: s.present.clone(),
                    missing: s.missing.clone(),
                })
                .collect(),
            unexplained: p.unexplained.clone(),
            notes: p.notes.clone(),
            live_fingerprint: p.live_fingerprint.clone(),
            replay: p.replay,
            applied: applied
                .iter()
                .map(|(v, a)| AppliedDoc {
                    version: *v,
                    action: a.clone(),
                })
                .collect(),
        }
    }
}

/// `check`, and the body of `GET /health/schema`.
#[derive(Serialize)]
pub struct CheckDoc {
    pub ok: bool,
    pub current_version: Option<i64>,
    pub required_version: Option<i64>,
    pub reasons: Vec<String>,
    pub drift: DriftDoc,
    /// Migrations applied after the required version, with their class (an older release on
    /// a newer schema passes only across expand-only ones).
    pub ahead: Vec<tidemark::gate::Ahead>,
}

impl CheckDoc {
    pub fn new(r: &tidemark::gate::CheckReport) -> CheckDoc {
        CheckDoc {
            ok: r.ok,
            current_version: r.current_version,
            required_version: r.required_version,
            reasons: r.reasons.clone(),
            drift: DriftDoc {
                status: r.drift.status.as_str(),
                live_fingerprint: r.drift.live_fingerprint.clone(),
                recorded_fingerprint: r.drift.recorded_fingerprint.clone(),
                reason: r.drift.reason.clone(),
                evidence: r.drift.evidence.clone(),
                matches_state_after: None,
                repair_needed: None,
                replay: None,
            },
            ahead: r.ahead.clone(),
        }
    }
}

/// One backup, as `backup create` and `backup list` print it.
#[derive(Serialize)]
pub struct BackupDoc {
    pub id: String,
    pub created_at: String,
    pub path: String,
    pub size_bytes: u64,
    pub sha256: String,
    pub schema_fingerprint: String,
    pub history_head: Option<i64>,
    pub database: String,
    /// The database the backup is of; null: taken before identities ("identity unknown").
    pub database_id: Option<String>,
    pub server_identity: Option<String>,
    pub format: String,
    pub reason: String,
    pub row_counts: std::collections::BTreeMap<String, i64>,
    pub duration_ms: u64,
}

impl BackupDoc {
    pub fn new(store: &tidemark::backup::Store, m: &tidemark::backup::Manifest) -> BackupDoc {
        BackupDoc {
            id: m.id.clone(),
            created_at: m.created_at.clone(),
            path: store.data_path(m).display().to_string(),
            size_bytes: m.size_bytes,
            sha256: m.sha256.clone(),
            schema_fingerprint: m.schema_fingerprint.clone(),
            history_head: m.history_head,
            database: m.database.clone(),
            database_id: m.database_id.clone(),
            server_identity: m.server_identity.clone(),
            format: m.format.clone(),
            reason: m.reason.clone(),
            row_counts: m.row_counts.clone(),
            duration_ms: m.duration_ms,
        }
    }
}

#[derive(Serialize)]
pub struct BackupListDoc {
    /// This database's folder (the backup directory with `--all`).
    pub dir: String,
    /// This database's id; null when it has none yet.
    pub database_id: Option<String>,
    /// This database's backups (every database's with `--all`), oldest first.
    pub backups: Vec<BackupDoc>,
    /// Backups from before identities: of some database, restorable only by their id.
    pub identity_unknown: Vec<BackupDoc>,
}
