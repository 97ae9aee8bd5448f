//! The history table (`tidemark_history`: one row per applied or failed migration) and the
//! journal (`tidemark_journal`: an append-only log of every apply, revert, adopt, repair,
//! backup and deploy step). The SQL is written once here, per dialect where the dialects
//! differ, and runs through the neutral [`Driver`] query API.

use serde::Serialize;

use crate::class::MigrationClass;
use crate::driver::{Dialect, Driver, Value};
use crate::error::{Error, Result};

pub const HISTORY_TABLE: &str = "tidemark_history";
pub const JOURNAL_TABLE: &str = "tidemark_journal";
/// Flyway-style repeatable migrations: one row per description, with the checksum it last ran
/// with. A table of its own, so `tidemark_history` (one row per version) keeps its shape and
/// every older reader keeps working.
pub const REPEATABLE_TABLE: &str = "tidemark_repeatable";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryState {
    Applied,
    /// Failed half way, or still running when its process died. Blocks `up` until resolved.
    Failed,
}

impl HistoryState {
    pub fn as_str(self) -> &'static str {
        match self {
            HistoryState::Applied => "applied",
            HistoryState::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    pub version: i64,
    pub name: String,
    pub checksum: String,
    pub state: HistoryState,
    /// RFC 3339, UTC.
    pub applied_at: String,
    pub execution_ms: i64,
    pub applied_by: String,
    pub schema_fingerprint: Option<String>,
    pub error: Option<String>,
    /// For a migration run statement by statement: how many statements succeeded.
    pub statements_applied: Option<i64>,
    /// The migration's class when it was applied (`None`: written by an older tidemark, by
    /// hand or by another tool).
    pub lint_class: Option<MigrationClass>,
    /// Set when the row was taken over from another tool's history by `import`.
    pub imported: Option<ImportedFacts>,
}

/// What `import` kept of another tool's row: which tool, when tidemark took it over, and the
/// tool's own checksum. `applied_at`, `execution_ms` and `applied_by` of such a row are the
/// tool's where it records them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportedFacts {
    /// `sqlx`, `flyway`, … (as `import --from` takes it).
    pub tool: String,
    /// When tidemark imported it (RFC 3339, UTC); empty before it is written.
    pub at: String,
    /// The tool's own checksum as it recorded it (sqlx: SHA-384 hex; Flyway: CRC32).
    pub source_checksum: Option<String>,
}

/// The history, ordered by version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    pub entries: Vec<HistoryEntry>,
    /// False when the history table does not exist yet.
    pub exists: bool,
    /// Repeatable migrations that ran, by description.
    pub repeatables: Vec<RepeatableEntry>,
}

/// A repeatable migration as recorded in `tidemark_repeatable`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepeatableEntry {
    pub description: String,
    pub checksum: String,
    pub applied_at: String,
    pub execution_ms: i64,
    pub applied_by: String,
}

impl History {
    pub fn get(&self, version: i64) -> Option<&HistoryEntry> {
        self.entries.iter().find(|e| e.version == version)
    }
}

fn ph(dialect: Dialect, n: usize) -> String {
    match dialect {
        Dialect::Postgres => format!("${n}"),
        _ => "?".to_string(),
    }
}

/// Current UTC time as the database computes it, so hosts with skewed clocks agree.
fn now_sql(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => "(clock_timestamp() AT TIME ZONE 'UTC')",
        Dialect::MySql => "UTC_TIMESTAMP(6)",
        Dialect::Sqlite => "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
    }
}

fn time_as_text(dialect: Dialect, column: &str) -> String {
    match dialect {
        Dialect::Postgres => format!("to_char({column}, 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"),
        Dialect::MySql => {
            format!("CONCAT(LEFT(DATE_FORMAT({column}, '%Y-%m-%dT%H:%i:%s.%f'), 23), 'Z')")
        }
        Dialect::Sqlite => column.to_string(),
    }
}

fn create_sql(dialect: Dialect) -> [String; 2] {
    let (ts, big_id, text, suffix) = match dialect {
        Dialect::Postgres => ("TIMESTAMP", "BIGSERIAL PRIMARY KEY", "TEXT", ""),
        Dialect::MySql => (
            "DATETIME(6)",
            "BIGINT AUTO_INCREMENT PRIMARY KEY",
            "TEXT",
            " DEFAULT CHARSET=utf8mb4",
        ),
        Dialect::Sqlite => ("TEXT", "INTEGER PRIMARY KEY AUTOINCREMENT", "TEXT", ""),
    };
    [
        format!(
            "CREATE TABLE IF NOT EXISTS {HISTORY_TABLE} (\n\
             version BIGINT PRIMARY KEY,\n\
             name {text} NOT NULL,\n\
             checksum {text} NOT NULL,\n\
             state {text} NOT NULL,\n\
             applied_at {ts} NOT NULL,\n\
             execution_ms BIGINT NOT NULL,\n\
             applied_by {text} NOT NULL,\n\
             schema_fingerprint {text} NULL,\n\
             error {text} NULL,\n\
             statements_applied BIGINT NULL,\n\
             lint_class {text} NULL,\n\
             imported_from {text} NULL,\n\
             imported_at {ts} NULL,\n\
             source_checksum {text} NULL\n)\
             {suffix}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {JOURNAL_TABLE} (\n\
             id {big_id},\n\
             at {ts} NOT NULL,\n\
             run_id {text} NOT NULL,\n\
             action {text} NOT NULL,\n\
             version BIGINT NULL,\n\
             detail {text} NULL,\n\
             actor {text} NOT NULL\n)\
             {suffix}"
        ),
    ]
}

fn db_err(context: &str) -> impl FnOnce(crate::driver::DbError) -> Error + '_ {
    move |e| Error::db(context, e)
}

/// The shape of the history table as found: whether it exists, and whether it has the
/// columns added after the first release (tables written by an older tidemark lack them until
/// [`ensure`] upgrades them; read-only commands must still read them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape {
    exists: bool,
    has_lint_class: bool,
    /// `imported_from`, `imported_at`, `source_checksum` (added together).
    has_import: bool,
}

/// Columns added after the first release, in the order they were added, with their types.
const ADDED_COLUMNS: [(&str, &str); 4] = [
    ("lint_class", "TEXT"),
    ("imported_from", "TEXT"),
    ("imported_at", "TIMESTAMP"),
    ("source_checksum", "TEXT"),
];

async fn columns(driver: &mut dyn Driver) -> Result<Vec<String>> {
    let sql = match driver.dialect() {
        Dialect::Postgres => format!(
            "SELECT CAST(attname AS TEXT) FROM pg_attribute WHERE attrelid = to_regclass('{HISTORY_TABLE}') AND attnum > 0 AND NOT attisdropped"
        ),
        Dialect::MySql => format!(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = '{HISTORY_TABLE}'"
        ),
        Dialect::Sqlite => format!("SELECT name FROM pragma_table_info('{HISTORY_TABLE}')"),
    };
    let rows = driver
        .query(&sql, &[])
        .await
        .map_err(db_err("could not look for the history table"))?;
    Ok(rows
        .into_iter()
        .filter_map(|r| r.into_iter().next().and_then(Value::into_text))
        .map(|c| c.to_ascii_lowercase())
        .collect())
}

async fn shape(driver: &mut dyn Driver) -> Result<Shape> {
    let cols = columns(driver).await?;
    let has = |c: &str| cols.iter().any(|x| x == c);
    Ok(Shape {
        exists: !cols.is_empty(),
        has_lint_class: has("lint_class"),
        has_import: has("imported_from") && has("imported_at") && has("source_checksum"),
    })
}

/// Does the history table exist? (Read-only commands must not create it.)
pub async fn exists(driver: &mut dyn Driver) -> Result<bool> {
    Ok(shape(driver).await?.exists)
}

/// Create the history and journal tables if they are missing, and upgrade tables written by an
/// older tidemark in place (journaled). Call under the migration lock: concurrent `CREATE
/// TABLE IF NOT EXISTS` is not safe on every database.
pub async fn ensure(driver: &mut dyn Driver) -> Result<()> {
    let before = shape(driver).await?;
    for sql in create_sql(driver.dialect()) {
        driver
            .run(&sql)
            .await
            .map_err(db_err("could not create tidemark's history tables"))?;
    }
    if before.exists {
        let have = columns(driver).await?;
        let ts = match driver.dialect() {
            Dialect::Postgres => "TIMESTAMP",
            Dialect::MySql => "DATETIME(6)",
            Dialect::Sqlite => "TEXT",
        };
        let mut added = Vec::new();
        for (col, ty) in ADDED_COLUMNS {
            if have.iter().any(|c| c == col) {
                continue;
            }
            let ty = if ty == "TIMESTAMP" { ts } else { ty };
            driver
                .run(&format!(
                    "ALTER TABLE {HISTORY_TABLE} ADD COLUMN {col} {ty} NULL"
                ))
                .await
                .map_err(db_err("could not upgrade tidemark's history table"))?;
            added.push(col);
        }
        if !added.is_empty() {
            let actor = actor();
            journal(
                driver,
                &JournalWrite {
                    run_id: "upgrade",
                    action: "upgrade",
                    version: None,
                    detail: Some(
                        serde_json::json!({ "table": HISTORY_TABLE, "added_columns": added })
                            .to_string(),
                    ),
                    actor: &actor,
                },
            )
            .await?;
        }
    }
    Ok(())
}

pub async fn read(driver: &mut dyn Driver) -> Result<History> {
    let shape = shape(driver).await?;
    if !shape.exists {
        return Ok(History {
            entries: Vec::new(),
            exists: false,
            repeatables: Vec::new(),
        });
    }
    let d = driver.dialect();
    let class = if shape.has_lint_class {
        "lint_class"
    } else {
        "NULL"
    };
    let import = if shape.has_import {
        format!(
            "imported_from, {}, source_checksum",
            time_as_text(d, "imported_at")
        )
    } else {
        "NULL, NULL, NULL".to_string()
    };
    let sql = format!(
        "SELECT version, name, checksum, state, {}, execution_ms, applied_by, schema_fingerprint, error, statements_applied, {class}, {import} \
         FROM {HISTORY_TABLE} ORDER BY version",
        time_as_text(d, "applied_at")
    );
    let rows = driver
        .query(&sql, &[])
        .await
        .map_err(db_err("could not read the history"))?;
    let mut entries = Vec::with_capacity(rows.len());
    for row in rows {
        let mut it = row.into_iter();
        let mut next = || it.next().unwrap_or(Value::NULL);
        let version = next().as_i64().ok_or_else(|| {
            Error::Inconsistent(format!("{HISTORY_TABLE} has a row without a version"))
        })?;
        let name = next().into_text().unwrap_or_default();
        let checksum = next().into_text().unwrap_or_default();
        let state = match next().into_text().as_deref() {
            Some("applied") => HistoryState::Applied,
            // Anything else (including a state written by a newer tidemark) is not trusted.
            _ => HistoryState::Failed,
        };
        entries.push(HistoryEntry {
            version,
            name,
            checksum,
            state,
            applied_at: next().into_text().unwrap_or_default(),
            execution_ms: next().as_i64().unwrap_or(0),
            applied_by: next().into_text().unwrap_or_default(),
            schema_fingerprint: next().into_text(),
            error: next().into_text(),
            statements_applied: next().as_i64(),
            // A class this tidemark does not know is no class at all (judged as unknown).
            lint_class: next().into_text().and_then(|c| c.parse().ok()),
            imported: {
                let (tool, at, sum) = (next().into_text(), next().into_text(), next().into_text());
                tool.map(|tool| ImportedFacts {
                    tool,
                    at: at.unwrap_or_default(),
                    source_checksum: sum,
                })
            },
        });
    }
    let repeatables = read_repeatables(driver).await?;
    Ok(History {
        entries,
        exists: true,
        repeatables,
    })
}

async fn read_repeatables(driver: &mut dyn Driver) -> Result<Vec<RepeatableEntry>> {
    if !crate::import::table_exists(driver, REPEATABLE_TABLE).await? {
        return Ok(Vec::new());
    }
    let d = driver.dialect();
    let sql = format!(
        "SELECT description, checksum, {}, execution_ms, applied_by FROM {REPEATABLE_TABLE} ORDER BY description",
        time_as_text(d, "applied_at")
    );
    let rows = driver
        .query(&sql, &[])
        .await
        .map_err(db_err("could not read the repeatable migrations"))?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let mut it = row.into_iter();
            let mut next = || it.next().unwrap_or(Value::NULL);
            RepeatableEntry {
                description: next().into_text().unwrap_or_default(),
                checksum: next().into_text().unwrap_or_default(),
                applied_at: next().into_text().unwrap_or_default(),
                execution_ms: next().as_i64().unwrap_or(0),
                applied_by: next().into_text().unwrap_or_default(),
            }
        })
        .collect())
}

/// Create `tidemark_repeatable` if it is missing (only projects with repeatable migrations
/// get it). Under the migration lock.
pub async fn ensure_repeatables(driver: &mut dyn Driver) -> Result<()> {
    let (ts, suffix) = match driver.dialect() {
        Dialect::Postgres => ("TIMESTAMP", ""),
        Dialect::MySql => ("DATETIME(6)", " DEFAULT CHARSET=utf8mb4"),
        Dialect::Sqlite => ("TEXT", ""),
    };
    // MySQL cannot key a TEXT column: the description is a VARCHAR (Flyway's is 200).
    let sql = format!(
        "CREATE TABLE IF NOT EXISTS {REPEATABLE_TABLE} (\n\
         description VARCHAR(255) PRIMARY KEY,\n\
         checksum TEXT NOT NULL,\n\
         applied_at {ts} NOT NULL,\n\
         execution_ms BIGINT NOT NULL,\n\
         applied_by TEXT NOT NULL\n)\
         {suffix}"
    );
    driver.run(&sql).await.map_err(db_err(
        "could not create tidemark's table of repeatable migrations",
    ))?;
    Ok(())
}

/// Record that a repeatable migration ran with this checksum (replacing the previous row).
pub async fn record_repeatable(
    driver: &mut dyn Driver,
    description: &str,
    checksum: &str,
    execution_ms: i64,
    applied_by: &str,
) -> Result<()> {
    let d = driver.dialect();
    driver
        .execute(
            &format!(
                "DELETE FROM {REPEATABLE_TABLE} WHERE description = {}",
                ph(d, 1)
            ),
            &[description.into()],
        )
        .await
        .map_err(db_err("could not record the repeatable migration"))?;
    let sql = format!(
        "INSERT INTO {REPEATABLE_TABLE} (description, checksum, applied_at, execution_ms, applied_by) VALUES ({}, {}, {}, {}, {})",
        ph(d, 1),
        ph(d, 2),
        now_sql(d),
        ph(d, 3),
        ph(d, 4)
    );
    driver
        .execute(
            &sql,
            &[
                description.into(),
                checksum.into(),
                execution_ms.into(),
                applied_by.into(),
            ],
        )
        .await
        .map_err(db_err("could not record the repeatable migration"))?;
    Ok(())
}

/// The row to write for a migration.
#[derive(Debug, Clone)]
pub struct HistoryWrite<'a> {
    pub version: i64,
    pub name: &'a str,
    pub checksum: &'a str,
    pub state: HistoryState,
    pub execution_ms: i64,
    pub applied_by: &'a str,
    pub error: Option<&'a str>,
    pub statements_applied: Option<i64>,
    pub lint_class: Option<MigrationClass>,
}

/// Write a history row; returns the rows written (1).
pub async fn insert(driver: &mut dyn Driver, w: &HistoryWrite<'_>) -> Result<()> {
    let d = driver.dialect();
    let sql = format!(
        "INSERT INTO {HISTORY_TABLE} (version, name, checksum, state, applied_at, execution_ms, applied_by, error, statements_applied, lint_class) \
         VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {})",
        ph(d, 1),
        ph(d, 2),
        ph(d, 3),
        ph(d, 4),
        now_sql(d),
        ph(d, 5),
        ph(d, 6),
        ph(d, 7),
        ph(d, 8),
        ph(d, 9)
    );
    let params = [
        w.version.into(),
        w.name.into(),
        w.checksum.into(),
        w.state.as_str().into(),
        w.execution_ms.into(),
        w.applied_by.into(),
        w.error.into(),
        w.statements_applied.into(),
        w.lint_class.map(MigrationClass::as_str).into(),
    ];
    let n = driver
        .execute(&sql, &params)
        .await
        .map_err(db_err("could not write the history row"))?;
    rows_written(n, 1, "write the history row of migration", Some(w.version))
}

/// Mark a row as taken over from another tool, with the facts that tool recorded: when it
/// applied the migration (RFC 3339, UTC), how long it took, who ran it, its checksum.
pub async fn set_imported(
    driver: &mut dyn Driver,
    version: i64,
    facts: &ImportedFacts,
    applied_at: Option<&str>,
    execution_ms: Option<i64>,
    applied_by: Option<&str>,
) -> Result<()> {
    let d = driver.dialect();
    let ms = applied_at.and_then(|a| {
        time::OffsetDateTime::parse(a, &time::format_description::well_known::Rfc3339)
            .ok()
            .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
    });
    // Milliseconds since the epoch to the column's own kind of time, by arithmetic (no time
    // zone of the session is involved).
    let at = match d {
        Dialect::Postgres => format!(
            "TIMESTAMP '1970-01-01 00:00:00' + CAST({} AS DOUBLE PRECISION) * INTERVAL '1 millisecond'",
            ph(d, 1)
        ),
        Dialect::MySql => "DATE_ADD('1970-01-01 00:00:00', INTERVAL ? * 1000 MICROSECOND)".into(),
        Dialect::Sqlite => "strftime('%Y-%m-%dT%H:%M:%fZ', ? / 1000.0, 'unixepoch')".into(),
    };
    let sql = format!(
        "UPDATE {HISTORY_TABLE} SET applied_at = COALESCE({at}, applied_at), execution_ms = COALESCE({}, execution_ms), \
         applied_by = COALESCE({}, applied_by), imported_from = {}, imported_at = {}, source_checksum = {} WHERE version = {}",
        ph(d, 2),
        ph(d, 3),
        ph(d, 4),
        now_sql(d),
        ph(d, 5),
        ph(d, 6)
    );
    driver
        .execute(
            &sql,
            &[
                ms.into(),
                execution_ms.into(),
                applied_by.into(),
                facts.tool.as_str().into(),
                facts.source_checksum.as_deref().into(),
                version.into(),
            ],
        )
        .await
        .map_err(db_err("could not record what the other tool recorded"))?;
    Ok(())
}

/// Update a row's state, progress and error (statement-by-statement migrations).
pub async fn update(driver: &mut dyn Driver, w: &HistoryWrite<'_>) -> Result<()> {
    let d = driver.dialect();
    let sql = format!(
        "UPDATE {HISTORY_TABLE} SET state = {}, execution_ms = {}, error = {}, statements_applied = {}, checksum = {}, lint_class = {}, applied_at = {} \
         WHERE version = {}",
        ph(d, 1),
        ph(d, 2),
        ph(d, 3),
        ph(d, 4),
        ph(d, 5),
        ph(d, 6),
        now_sql(d),
        ph(d, 7)
    );
    let params = [
        w.state.as_str().into(),
        w.execution_ms.into(),
        w.error.into(),
        w.statements_applied.into(),
        w.checksum.into(),
        w.lint_class.map(MigrationClass::as_str).into(),
        w.version.into(),
    ];
    let n = driver
        .execute(&sql, &params)
        .await
        .map_err(db_err("could not update the history row"))?;
    row_still_there(driver, n, w.version).await
}

/// Change a row's state and error only (its time and checksum stay as recorded).
pub async fn set_state(
    driver: &mut dyn Driver,
    version: i64,
    state: HistoryState,
    error: Option<&str>,
) -> Result<()> {
    let d = driver.dialect();
    let sql = format!(
        "UPDATE {HISTORY_TABLE} SET state = {}, error = {} WHERE version = {}",
        ph(d, 1),
        ph(d, 2),
        ph(d, 3)
    );
    let n = driver
        .execute(&sql, &[state.as_str().into(), error.into(), version.into()])
        .await
        .map_err(db_err("could not update the history row"))?;
    row_still_there(driver, n, version).await
}

/// Delete a row if there is one (repair replaces rows this way).
pub async fn delete(driver: &mut dyn Driver, version: i64) -> Result<()> {
    let sql = format!(
        "DELETE FROM {HISTORY_TABLE} WHERE version = {}",
        ph(driver.dialect(), 1)
    );
    driver
        .execute(&sql, &[version.into()])
        .await
        .map_err(db_err("could not delete the history row"))?;
    Ok(())
}

/// Is the migration lock still held? `held` is [`crate::driver::LockGuard::held_condition`].
pub async fn lock_held(driver: &mut dyn Driver, held: &str) -> Result<bool> {
    let rows = driver
        .query(&format!("SELECT CASE WHEN {held} THEN 1 ELSE 0 END"), &[])
        .await
        .map_err(db_err("could not check the migration lock"))?;
    Ok(rows.first().and_then(|r| r.first()).and_then(Value::as_i64) == Some(1))
}

/// Delete the row of a migration this run recorded or reverts: it must be there.
pub async fn delete_recorded(driver: &mut dyn Driver, version: i64) -> Result<()> {
    let sql = format!(
        "DELETE FROM {HISTORY_TABLE} WHERE version = {}",
        ph(driver.dialect(), 1)
    );
    let n = driver
        .execute(&sql, &[version.into()])
        .await
        .map_err(db_err("could not delete the history row"))?;
    rows_written(n, 1, "delete the history row of migration", Some(version))
}

/// A history or journal write must touch exactly the rows it means to: otherwise something
/// else changed the table under the lock (or the lock was lost), and reporting success would
/// be a lie. Stops with exit 1; what is recorded stays true.
fn rows_written(n: u64, want: u64, what: &str, version: Option<i64>) -> Result<()> {
    if n == want {
        return Ok(());
    }
    let v = version.map(|v| format!(" {v}")).unwrap_or_default();
    Err(Error::db(
        format!("could not {what}{v}"),
        crate::driver::DbError {
            message: format!(
                "the database reports {n} row(s) changed where {want} was expected: another process changed tidemark's tables (was the migration lock lost?); stopping, `tidemark status` shows what is recorded"
            ),
            ..Default::default()
        },
    ))
}

/// An UPDATE of a history row that reports no row: MySQL counts rows whose values did not
/// change as unaffected, so it fails only if the row is really gone.
async fn row_still_there(driver: &mut dyn Driver, n: u64, version: i64) -> Result<()> {
    if n > 0 {
        return Ok(());
    }
    let rows = driver
        .query(
            &format!(
                "SELECT COUNT(*) FROM {HISTORY_TABLE} WHERE version = {}",
                ph(driver.dialect(), 1)
            ),
            &[version.into()],
        )
        .await
        .map_err(db_err("could not read the history row back"))?;
    let there = rows
        .first()
        .and_then(|r| r.first())
        .and_then(Value::as_i64)
        .unwrap_or(0);
    rows_written(
        there.min(1) as u64,
        1,
        "update the history row of migration",
        Some(version),
    )
}

/// Record a fingerprint on a row only if the row still holds `previous` (compare and set), and
/// say whether it did. Callers that do not hold the lock (the gate) never overwrite what a
/// concurrent run recorded meanwhile.
pub async fn replace_fingerprint(
    driver: &mut dyn Driver,
    version: i64,
    previous: Option<&str>,
    fingerprint: &str,
) -> Result<bool> {
    let d = driver.dialect();
    let (cond, params): (String, Vec<Value>) = match previous {
        None => (
            "schema_fingerprint IS NULL".into(),
            vec![fingerprint.into(), version.into()],
        ),
        Some(p) => (
            format!("schema_fingerprint = {}", ph(d, 3)),
            vec![fingerprint.into(), version.into(), p.into()],
        ),
    };
    let sql = format!(
        "UPDATE {HISTORY_TABLE} SET schema_fingerprint = {} WHERE version = {} AND {cond}",
        ph(d, 1),
        ph(d, 2)
    );
    let n = driver
        .execute(&sql, &params)
        .await
        .map_err(db_err("could not record the schema fingerprint"))?;
    Ok(n > 0)
}

pub async fn set_fingerprint(
    driver: &mut dyn Driver,
    version: i64,
    fingerprint: &str,
) -> Result<()> {
    let d = driver.dialect();
    let sql = format!(
        "UPDATE {HISTORY_TABLE} SET schema_fingerprint = {} WHERE version = {}",
        ph(d, 1),
        ph(d, 2)
    );
    driver
        .execute(&sql, &[fingerprint.into(), version.into()])
        .await
        .map_err(db_err("could not record the schema fingerprint"))?;
    Ok(())
}

/// What a finished step does to its history row.
pub enum RowChange<'a> {
    Insert(HistoryWrite<'a>),
    Delete(i64),
}

/// A history change and its journal line, in the caller's transaction, written only while
/// `held` (the lock's [`crate::driver::LockGuard::held_condition`]) is true: a run whose lock
/// was lost gets [`Error::LockLost`] before it commits. On PostgreSQL the condition, the row
/// and the journal line go in one statement (a data-modifying CTE): no extra round trip.
/// Either way the number of rows written is checked, so nothing is reported as recorded that
/// was not.
pub async fn change_with_journal(
    driver: &mut dyn Driver,
    op: RowChange<'_>,
    j: &JournalWrite<'_>,
    held: Option<&str>,
) -> Result<()> {
    let version = match &op {
        RowChange::Insert(w) => w.version,
        RowChange::Delete(v) => *v,
    };
    let lost = || Error::LockLost {
        version,
        applied: Vec::new(),
    };
    if driver.dialect() != Dialect::Postgres {
        if let Some(held) = held
            && !lock_held(driver, held).await?
        {
            return Err(lost());
        }
        match &op {
            RowChange::Insert(w) => insert(driver, w).await?,
            RowChange::Delete(v) => delete_recorded(driver, *v).await?,
        }
        return journal(driver, j).await;
    }
    let now = now_sql(Dialect::Postgres);
    let cond = held.unwrap_or("TRUE");
    let (sql, mut params): (String, Vec<Value>) = match &op {
        RowChange::Insert(w) => (
            format!(
                "WITH h AS (INSERT INTO {HISTORY_TABLE} (version, name, checksum, state, applied_at, execution_ms, applied_by, error, statements_applied, lint_class) \
                 SELECT $1, $2, $3, $4, {now}, $5, $6, $7, $8, $9 WHERE {cond} RETURNING version) \
                 INSERT INTO {JOURNAL_TABLE} (at, run_id, action, version, detail, actor) SELECT {now}, $10, $11, h.version, $12, $13 FROM h"
            ),
            vec![
                w.version.into(),
                w.name.into(),
                w.checksum.into(),
                w.state.as_str().into(),
                w.execution_ms.into(),
                w.applied_by.into(),
                w.error.into(),
                w.statements_applied.into(),
                w.lint_class.map(MigrationClass::as_str).into(),
            ],
        ),
        RowChange::Delete(v) => (
            format!(
                "WITH h AS (DELETE FROM {HISTORY_TABLE} WHERE version = $1 AND {cond} RETURNING version) \
                 INSERT INTO {JOURNAL_TABLE} (at, run_id, action, version, detail, actor) SELECT {now}, $2, $3, h.version, $4, $5 FROM h"
            ),
            vec![(*v).into()],
        ),
    };
    // Both statements take the version from the history row they changed (`h`).
    params.push(j.run_id.into());
    params.push(j.action.into());
    params.push(j.detail.clone().into());
    params.push(j.actor.into());
    let n = driver.execute(&sql, &params).await.map_err(db_err(
        "could not write the history row and its journal line",
    ))?;
    if n == 1 {
        return Ok(());
    }
    // Nothing written: either the lock is gone or the row was not where it should be.
    if let Some(held) = held
        && !lock_held(driver, held).await.unwrap_or(false)
    {
        return Err(lost());
    }
    rows_written(
        n,
        1,
        "write the history row and journal line of migration",
        Some(version),
    )
}

/// One journal line.
#[derive(Debug, Clone)]
pub struct JournalWrite<'a> {
    pub run_id: &'a str,
    pub action: &'a str,
    pub version: Option<i64>,
    /// JSON text with whatever the action needs to say.
    pub detail: Option<String>,
    pub actor: &'a str,
}

pub async fn journal(driver: &mut dyn Driver, j: &JournalWrite<'_>) -> Result<()> {
    let d = driver.dialect();
    let sql = format!(
        "INSERT INTO {JOURNAL_TABLE} (at, run_id, action, version, detail, actor) VALUES ({}, {}, {}, {}, {}, {})",
        now_sql(d),
        ph(d, 1),
        ph(d, 2),
        ph(d, 3),
        ph(d, 4),
        ph(d, 5)
    );
    let params = [
        j.run_id.into(),
        j.action.into(),
        j.version.into(),
        j.detail.clone().into(),
        j.actor.into(),
    ];
    let n = driver
        .execute(&sql, &params)
        .await
        .map_err(db_err("could not append to the journal"))?;
    rows_written(n, 1, "append to the journal", None)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JournalEntry {
    pub id: i64,
    pub at: String,
    pub run_id: String,
    pub action: String,
    pub version: Option<i64>,
    pub detail: Option<String>,
    pub actor: String,
}

/// The newest `limit` journal entries, oldest first.
pub async fn read_journal(driver: &mut dyn Driver, limit: i64) -> Result<Vec<JournalEntry>> {
    let d = driver.dialect();
    let sql = format!(
        "SELECT id, {}, run_id, action, version, detail, actor FROM {JOURNAL_TABLE} ORDER BY id DESC LIMIT {limit}",
        time_as_text(d, "at")
    );
    let rows = driver
        .query(&sql, &[])
        .await
        .map_err(db_err("could not read the journal"))?;
    let mut out: Vec<JournalEntry> = rows
        .into_iter()
        .map(|row| {
            let mut it = row.into_iter();
            let mut next = || it.next().unwrap_or(Value::NULL);
            JournalEntry {
                id: next().as_i64().unwrap_or(0),
                at: next().into_text().unwrap_or_default(),
                run_id: next().into_text().unwrap_or_default(),
                action: next().into_text().unwrap_or_default(),
                version: next().as_i64(),
                detail: next().into_text(),
                actor: next().into_text().unwrap_or_default(),
            }
        })
        .collect();
    out.reverse();
    Ok(out)
}

/// Who is applying, as people recognise it in the history and the journal:
/// `TIDEMARK_ACTOR` when set; in CI, the CI's own user and run; else `user@host`, the user
/// from the environment or, where none is set (containers, cron, systemd units), the OS
/// account of the process.
pub fn actor() -> String {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    if let Some(a) = var(crate::env::ACTOR) {
        return a;
    }
    if var("GITHUB_ACTIONS").is_some()
        && let Some(who) = var("GITHUB_ACTOR")
    {
        let run = match (var("GITHUB_REPOSITORY"), var("GITHUB_RUN_ID")) {
            (Some(r), Some(id)) => format!(" ({r} run {id})"),
            _ => String::new(),
        };
        return format!("{who}@github-actions{run}");
    }
    if var("GITLAB_CI").is_some()
        && let Some(who) = var("GITLAB_USER_LOGIN")
    {
        let job = match (var("CI_PROJECT_PATH"), var("CI_JOB_ID")) {
            (Some(p), Some(id)) => format!(" ({p} job {id})"),
            _ => String::new(),
        };
        return format!("{who}@gitlab-ci{job}");
    }
    let user = var("USER")
        .or_else(|| var("USERNAME"))
        .or_else(|| var("LOGNAME"))
        .or_else(os_user)
        .unwrap_or_else(|| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| var("HOSTNAME"))
        .unwrap_or_else(|| "localhost".into());
    format!("{user}@{host}")
}

/// The account the process runs as, from its real uid and `/etc/passwd` (Linux); `uid N` when
/// the account has no entry (a container's arbitrary uid).
fn os_user() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    Some(
        passwd
            .lines()
            .find_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                (f.nth(1)? == uid).then(|| name.to_string())
            })
            .unwrap_or_else(|| format!("uid {uid}")),
    )
}
