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
    pub current_version: Option<i64>,
    pub latest_version: Option<i64>,
    pub pending: usize,
    pub migrations: Vec<MigrationDoc>,
    pub drift: DriftDoc,
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
}

#[derive(Serialize)]
pub struct DriftDoc {
    pub status: &'static str,
    pub live_fingerprint: Option<String>,
    pub recorded_fingerprint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl StatusDoc {
    pub fn new(database: String, st: &Status) -> StatusDoc {
        StatusDoc {
            database,
            current_version: st.current_version,
            latest_version: st.latest_version,
            pending: st.count(MigrationState::Pending),
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
                })
                .collect(),
            drift: DriftDoc {
                status: st.drift.status.as_str(),
                live_fingerprint: st.drift.live_fingerprint.clone(),
                recorded_fingerprint: st.drift.recorded_fingerprint.clone(),
                reason: st.drift.reason.clone(),
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
}

#[derive(Serialize)]
pub struct DoneDoc {
    pub version: i64,
    pub name: String,
    pub direction: Direction,
    pub execution_ms: i64,
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
        })
        .collect()
}
