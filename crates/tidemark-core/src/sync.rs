//! Side by side during a move: while sync is on, every migration tidemark applies or reverts
//! is also written to the other tool's history table, in that tool's own format (checksums
//! included), so an application that still runs the old tool at start-up (`sqlx::migrate!()`,
//! `dbmate up`, `migrate up`, `diesel migration run`, `flyway migrate`) finds nothing to do.
//!
//! Sync is turned on by `import --keep-in-sync`, `tidemark sync --to TOOL` or the config key
//! `[sync] tool`, and off by `tidemark sync --off`. The decisions are journaled (action `sync`);
//! the last one recorded in the database wins over the config key.
//!
//! Where DDL is transactional, the other tool's row is written in the same transaction as
//! tidemark's own history row. Each table is created, when missing, as its tool creates it.

use serde::Serialize;

use crate::driver::{Dialect, Driver, Value};
use crate::error::{Error, Result};
use crate::history::{self, JOURNAL_TABLE, JournalWrite};
use crate::import::{self, Tool, table_exists};
use crate::migration::{Layout, Migration, MigrationSet};
use crate::status::Status;

/// Whether sync is on, with which tool, and what decided it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncState {
    /// `None`: off.
    pub tool: Option<Tool>,
    /// The table written besides tidemark's.
    pub table: Option<&'static str>,
    /// `database` (the last `sync` decision journaled), `config` (`[sync] tool`) or `none`.
    pub source: &'static str,
}

/// The tools whose table tidemark can keep in step, and the layout of files each one reads.
pub fn layout_of(tool: Tool) -> Option<Layout> {
    match tool {
        Tool::Sqlx | Tool::GolangMigrate => Some(Layout::Native),
        Tool::Dbmate => Some(Layout::Dbmate),
        Tool::Diesel => Some(Layout::Diesel),
        Tool::Flyway => Some(Layout::Flyway),
        Tool::Seaorm | Tool::Alembic => None,
    }
}

/// Refuse a tool whose table cannot be kept in step with these files.
pub fn check(tool: Tool, set: &MigrationSet) -> Result<()> {
    let arg = import::tool_arg(tool);
    match layout_of(tool) {
        None => Err(Error::Usage(format!(
            "tidemark cannot keep {arg}'s table in step: its migrations are code, not these SQL files (sync works with sqlx, golang-migrate, dbmate, diesel and flyway)"
        ))),
        Some(l) if l != set.layout => Err(Error::Usage(format!(
            "{arg} reads migrations in the {l} layout, but {} holds the {} layout: {arg} could not run these files, so its table cannot be kept in step with them",
            set.dir.display(),
            set.layout
        ))),
        Some(_) => Ok(()),
    }
}

/// The sync state: the last decision journaled, else the configured tool.
pub async fn state(driver: &mut dyn Driver, configured: Option<Tool>) -> Result<SyncState> {
    let mut source = "none";
    let mut tool = None;
    if let Some(c) = configured {
        source = "config";
        tool = Some(c);
    }
    if table_exists(driver, JOURNAL_TABLE).await? {
        let sql = format!(
            "SELECT detail FROM {JOURNAL_TABLE} WHERE action = 'sync' ORDER BY id DESC LIMIT 1"
        );
        let rows = driver
            .query(&sql, &[])
            .await
            .map_err(|e| Error::db("could not read the sync setting from the journal", e))?;
        if let Some(detail) = rows
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next())
            .and_then(Value::into_text)
        {
            let v: serde_json::Value = serde_json::from_str(&detail).unwrap_or_default();
            source = "database";
            tool = v["tool"].as_str().and_then(|t| t.parse().ok());
        }
    }
    Ok(SyncState {
        tool,
        table: tool.map(Tool::table),
        source,
    })
}

/// Turn sync on (with `tool`) or off, journaled. Turning it on creates the other table as its
/// tool would and writes the rows it lacks for what tidemark's history says is applied.
pub async fn set(
    driver: &mut dyn Driver,
    set: &MigrationSet,
    tool: Option<Tool>,
    settings: &crate::engine::Settings,
) -> Result<usize> {
    history::ensure(driver).await?;
    let mut written = 0;
    if let Some(t) = tool {
        check(t, set)?;
        written = reconcile(driver, t, set, settings).await?;
    }
    history::journal(
        driver,
        &JournalWrite {
            run_id: &settings.run_id,
            action: "sync",
            version: None,
            detail: Some(
                serde_json::json!({
                    "tool": tool.map(import::tool_arg),
                    "table": tool.map(Tool::table),
                    "rows_written": written,
                })
                .to_string(),
            ),
            actor: &settings.actor,
        },
    )
    .await?;
    Ok(written)
}

/// After tidemark records migrations as applied without running them (`repair` adopting,
/// `baseline`): when sync is on, write the other tool's rows that are missing, so the old tool
/// does not run what tidemark now says is applied. (A record tidemark removes — `forget`, a
/// reset — is not removed from the other tool's table: whether its effects are there is exactly
/// what was in doubt.) Returns how many rows were written.
pub async fn follow(
    driver: &mut dyn Driver,
    set: &MigrationSet,
    settings: &crate::engine::Settings,
) -> Result<usize> {
    let Some(tool) = state(driver, settings.sync).await?.tool else {
        return Ok(0);
    };
    check(tool, set)?;
    reconcile(driver, tool, set, settings).await
}

/// Write the other tool's rows that are missing for the migrations tidemark's history records
/// as applied (and golang-migrate's single row for the head). Returns how many were written.
async fn reconcile(
    driver: &mut dyn Driver,
    tool: Tool,
    set: &MigrationSet,
    settings: &crate::engine::Settings,
) -> Result<usize> {
    ensure_table(driver, tool).await?;
    let h = history::read(driver).await?;
    let st = Status::compute(set, &h);
    let mut written = 0;
    for e in st.entries.iter().filter(|e| e.state.is_applied()) {
        let Some(m) = set.get(e.version) else {
            continue;
        };
        if tool != Tool::GolangMigrate && has_row(driver, tool, m).await? {
            continue;
        }
        applied(driver, tool, set, m, e.execution_ms.unwrap_or(0), settings).await?;
        written += 1;
    }
    if tool == Tool::Flyway {
        for r in &h.repeatables {
            if let Some(rep) = set
                .repeatables
                .iter()
                .find(|x| x.description() == r.description && x.migration.checksum == r.checksum)
                && !has_repeatable_row(driver, &rep.migration).await?
            {
                applied_repeatable(driver, tool, &rep.migration, r.execution_ms, settings).await?;
                written += 1;
            }
        }
    }
    Ok(written)
}

fn lit_hex(d: Dialect, hex: &str) -> String {
    // Only hex digits reach here (a digest), so a literal is safe.
    match d {
        Dialect::Postgres => format!("decode('{hex}', 'hex')"),
        _ => format!("X'{hex}'"),
    }
}

fn ph(d: Dialect, n: usize) -> String {
    match d {
        Dialect::Postgres => format!("${n}"),
        _ => "?".to_string(),
    }
}

fn truth(d: Dialect, v: bool) -> &'static str {
    match (d, v) {
        (Dialect::Sqlite, true) => "1",
        (Dialect::Sqlite, false) => "0",
        (_, true) => "TRUE",
        (_, false) => "FALSE",
    }
}

async fn run(driver: &mut dyn Driver, sql: &str, params: &[Value], tool: Tool) -> Result<()> {
    driver.execute(sql, params).await.map_err(|e| {
        Error::db(
            format!(
                "could not write {} ({}'s history, kept in sync)",
                tool.table(),
                import::tool_arg(tool)
            ),
            e,
        )
    })?;
    Ok(())
}

/// Create the tool's table as the tool itself creates it, when it is missing.
pub async fn ensure_table(driver: &mut dyn Driver, tool: Tool) -> Result<()> {
    if table_exists(driver, tool.table()).await? {
        return Ok(());
    }
    let d = driver.dialect();
    let stmts: Vec<String> = match (tool, d) {
        // sqlx-core's `ensure_migrations_table`, per database.
        (Tool::Sqlx, Dialect::Postgres) => vec![
            "CREATE TABLE IF NOT EXISTS _sqlx_migrations (\n    version BIGINT PRIMARY KEY,\n    description TEXT NOT NULL,\n    installed_on TIMESTAMPTZ NOT NULL DEFAULT now(),\n    success BOOLEAN NOT NULL,\n    checksum BYTEA NOT NULL,\n    execution_time BIGINT NOT NULL\n)".into(),
        ],
        (Tool::Sqlx, _) => vec![
            "CREATE TABLE IF NOT EXISTS _sqlx_migrations (\n    version BIGINT PRIMARY KEY,\n    description TEXT NOT NULL,\n    installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,\n    success BOOLEAN NOT NULL,\n    checksum BLOB NOT NULL,\n    execution_time BIGINT NOT NULL\n)".into(),
        ],
        // golang-migrate's database drivers (postgres, mysql, sqlite3).
        (Tool::GolangMigrate, Dialect::Sqlite) => vec![
            "CREATE TABLE IF NOT EXISTS schema_migrations (version uint64,dirty bool)".into(),
            "CREATE UNIQUE INDEX IF NOT EXISTS version_unique ON schema_migrations (version)".into(),
        ],
        (Tool::GolangMigrate, _) => vec![
            "CREATE TABLE IF NOT EXISTS schema_migrations (version bigint not null primary key, dirty boolean not null)".into(),
        ],
        // dbmate's drivers.
        (Tool::Dbmate, _) => vec![
            "create table if not exists schema_migrations (version varchar(128) primary key)".into(),
        ],
        // diesel's `CREATE_MIGRATIONS_TABLE`.
        (Tool::Diesel, _) => vec![
            "CREATE TABLE IF NOT EXISTS __diesel_schema_migrations (\n       version VARCHAR(50) PRIMARY KEY NOT NULL,\n       run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP\n)".into(),
        ],
        // Flyway's createMetaDataTable.sql, per database.
        (Tool::Flyway, Dialect::Postgres) => vec![
            "CREATE TABLE flyway_schema_history (\n    installed_rank INT NOT NULL,\n    version VARCHAR(50),\n    description VARCHAR(200) NOT NULL,\n    type VARCHAR(20) NOT NULL,\n    script VARCHAR(1000) NOT NULL,\n    checksum INTEGER,\n    installed_by VARCHAR(100) NOT NULL,\n    installed_on TIMESTAMP NOT NULL DEFAULT now(),\n    execution_time INTEGER NOT NULL,\n    success BOOLEAN NOT NULL\n)".into(),
            "ALTER TABLE flyway_schema_history ADD CONSTRAINT flyway_schema_history_pk PRIMARY KEY (installed_rank)".into(),
            "CREATE INDEX flyway_schema_history_s_idx ON flyway_schema_history (success)".into(),
        ],
        (Tool::Flyway, Dialect::MySql) => vec![
            "CREATE TABLE flyway_schema_history (\n    installed_rank INT NOT NULL,\n    version VARCHAR(50),\n    description VARCHAR(200) NOT NULL,\n    type VARCHAR(20) NOT NULL,\n    script VARCHAR(1000) NOT NULL,\n    checksum INT,\n    installed_by VARCHAR(100) NOT NULL,\n    installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,\n    execution_time INT NOT NULL,\n    success BOOL NOT NULL,\n    CONSTRAINT flyway_schema_history_pk PRIMARY KEY (installed_rank)\n) ENGINE=InnoDB".into(),
            "CREATE INDEX flyway_schema_history_s_idx ON flyway_schema_history (success)".into(),
        ],
        (Tool::Flyway, Dialect::Sqlite) => vec![
            "CREATE TABLE flyway_schema_history (\n    installed_rank INT NOT NULL PRIMARY KEY,\n    version VARCHAR(50),\n    description VARCHAR(200) NOT NULL,\n    type VARCHAR(20) NOT NULL,\n    script VARCHAR(1000) NOT NULL,\n    checksum INT,\n    installed_by VARCHAR(100) NOT NULL,\n    installed_on TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now')),\n    execution_time INT NOT NULL,\n    success BOOLEAN NOT NULL\n)".into(),
            "CREATE INDEX flyway_schema_history_s_idx ON flyway_schema_history (success)".into(),
        ],
        (Tool::Seaorm | Tool::Alembic, _) => {
            return Err(Error::Usage(format!(
                "tidemark cannot keep {}'s table in step",
                import::tool_arg(tool)
            )));
        }
    };
    for s in stmts {
        driver.run(&s).await.map_err(|e| {
            Error::db(
                format!(
                    "could not create {} as {} does",
                    tool.table(),
                    import::tool_arg(tool)
                ),
                e,
            )
        })?;
    }
    Ok(())
}

/// sqlx's description of a migration: the file name after the version, its suffix removed,
/// underscores as spaces.
fn sqlx_description(m: &Migration) -> String {
    m.name.replace('_', " ")
}

/// Flyway's description: the name after `__`, underscores as spaces.
fn flyway_description(m: &Migration) -> String {
    m.name.replace('_', " ")
}

fn file_name(m: &Migration) -> String {
    m.up.path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string()
}

/// Who Flyway would record as `installed_by`: the database user.
async fn db_user(driver: &mut dyn Driver) -> String {
    let sql = match driver.dialect() {
        Dialect::Postgres => "SELECT CAST(current_user AS TEXT)",
        Dialect::MySql => "SELECT SUBSTRING_INDEX(USER(), '@', 1)",
        Dialect::Sqlite => return String::new(),
    };
    driver
        .query(sql, &[])
        .await
        .ok()
        .and_then(|r| r.into_iter().next())
        .and_then(|r| r.into_iter().next())
        .and_then(Value::into_text)
        .unwrap_or_default()
}

async fn has_row(driver: &mut dyn Driver, tool: Tool, m: &Migration) -> Result<bool> {
    let d = driver.dialect();
    let (sql, key): (String, Value) = match tool {
        Tool::Sqlx => (
            format!(
                "SELECT COUNT(*) FROM _sqlx_migrations WHERE version = {}",
                ph(d, 1)
            ),
            m.version.into(),
        ),
        Tool::Dbmate => (
            format!(
                "SELECT COUNT(*) FROM schema_migrations WHERE version = {}",
                ph(d, 1)
            ),
            m.written_version.as_str().into(),
        ),
        Tool::Diesel => (
            format!(
                "SELECT COUNT(*) FROM __diesel_schema_migrations WHERE version = {}",
                ph(d, 1)
            ),
            m.written_version.as_str().into(),
        ),
        Tool::Flyway => (
            format!(
                "SELECT COUNT(*) FROM flyway_schema_history WHERE version = {} AND success = {}",
                ph(d, 1),
                truth(d, true)
            ),
            m.written_version.as_str().into(),
        ),
        _ => return Ok(false),
    };
    let rows = driver
        .query(&sql, &[key])
        .await
        .map_err(|e| Error::db(format!("could not read {}", tool.table()), e))?;
    Ok(rows
        .first()
        .and_then(|r| r.first())
        .and_then(Value::as_i64)
        .unwrap_or(0)
        > 0)
}

async fn has_repeatable_row(driver: &mut dyn Driver, m: &Migration) -> Result<bool> {
    let d = driver.dialect();
    let sum = import::flyway_checksum(&m.up.path)?;
    let rows = driver
        .query(
            &format!(
                "SELECT COUNT(*) FROM flyway_schema_history WHERE version IS NULL AND script = {} AND checksum = {}",
                ph(d, 1),
                ph(d, 2)
            ),
            &[file_name(m).as_str().into(), i64::from(sum).into()],
        )
        .await
        .map_err(|e| Error::db("could not read flyway_schema_history", e))?;
    Ok(rows
        .first()
        .and_then(|r| r.first())
        .and_then(Value::as_i64)
        .unwrap_or(0)
        > 0)
}

/// golang-migrate keeps one row: the version the database is at, not dirty.
async fn golang_migrate_head(driver: &mut dyn Driver, set: &MigrationSet) -> Result<()> {
    let d = driver.dialect();
    let h = history::read(driver).await?;
    let head = Status::compute(set, &h).current_version;
    run(
        driver,
        "DELETE FROM schema_migrations",
        &[],
        Tool::GolangMigrate,
    )
    .await?;
    if let Some(v) = head {
        run(
            driver,
            &format!(
                "INSERT INTO schema_migrations (version, dirty) VALUES ({}, {})",
                ph(d, 1),
                truth(d, false)
            ),
            &[v.into()],
            Tool::GolangMigrate,
        )
        .await?;
    }
    Ok(())
}

/// Record in the tool's table that `m` was applied (after tidemark's own history row, in the
/// same transaction where there is one).
pub async fn applied(
    driver: &mut dyn Driver,
    tool: Tool,
    set: &MigrationSet,
    m: &Migration,
    execution_ms: i64,
    _settings: &crate::engine::Settings,
) -> Result<()> {
    ensure_table(driver, tool).await?;
    let d = driver.dialect();
    match tool {
        Tool::Sqlx => {
            let sum = import::sqlx_checksum(&m.up.path)?;
            run(
                driver,
                &format!("DELETE FROM _sqlx_migrations WHERE version = {}", ph(d, 1)),
                &[m.version.into()],
                tool,
            )
            .await?;
            // As sqlx's `apply`: success true, the SHA-384 of the file, the time in nanoseconds.
            run(
                driver,
                &format!(
                    "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES ({}, {}, {}, {}, {})",
                    ph(d, 1),
                    ph(d, 2),
                    truth(d, true),
                    lit_hex(d, &sum),
                    ph(d, 3)
                ),
                &[
                    m.version.into(),
                    sqlx_description(m).as_str().into(),
                    execution_ms.saturating_mul(1_000_000).into(),
                ],
                tool,
            )
            .await
        }
        Tool::GolangMigrate => golang_migrate_head(driver, set).await,
        Tool::Dbmate => {
            if has_row(driver, tool, m).await? {
                return Ok(());
            }
            run(
                driver,
                &format!(
                    "INSERT INTO schema_migrations (version) VALUES ({})",
                    ph(d, 1)
                ),
                &[m.written_version.as_str().into()],
                tool,
            )
            .await
        }
        Tool::Diesel => {
            if has_row(driver, tool, m).await? {
                return Ok(());
            }
            run(
                driver,
                &format!(
                    "INSERT INTO __diesel_schema_migrations (version) VALUES ({})",
                    ph(d, 1)
                ),
                &[m.written_version.as_str().into()],
                tool,
            )
            .await
        }
        Tool::Flyway => {
            let sum = import::flyway_checksum(&m.up.path)?;
            flyway_row(
                driver,
                Some(&m.written_version),
                &flyway_description(m),
                &file_name(m),
                sum,
                execution_ms,
            )
            .await
        }
        Tool::Seaorm | Tool::Alembic => Ok(()),
    }
}

/// A repeatable migration ran: Flyway appends a row without a version each time.
pub async fn applied_repeatable(
    driver: &mut dyn Driver,
    tool: Tool,
    m: &Migration,
    execution_ms: i64,
    _settings: &crate::engine::Settings,
) -> Result<()> {
    if tool != Tool::Flyway {
        return Ok(());
    }
    ensure_table(driver, tool).await?;
    let sum = import::flyway_checksum(&m.up.path)?;
    flyway_row(driver, None, &m.name, &file_name(m), sum, execution_ms).await
}

async fn flyway_row(
    driver: &mut dyn Driver,
    version: Option<&str>,
    description: &str,
    script: &str,
    checksum: i32,
    execution_ms: i64,
) -> Result<()> {
    let d = driver.dialect();
    let by = db_user(driver).await;
    let rank = driver
        .query(
            "SELECT COALESCE(MAX(installed_rank), 0) + 1 FROM flyway_schema_history",
            &[],
        )
        .await
        .map_err(|e| Error::db("could not read flyway_schema_history", e))?
        .first()
        .and_then(|r| r.first())
        .and_then(Value::as_i64)
        .unwrap_or(1);
    run(
        driver,
        &format!(
            "INSERT INTO flyway_schema_history (installed_rank, version, description, type, script, checksum, installed_by, execution_time, success) \
             VALUES ({}, {}, {}, 'SQL', {}, {}, {}, {}, {})",
            ph(d, 1),
            ph(d, 2),
            ph(d, 3),
            ph(d, 4),
            ph(d, 5),
            ph(d, 6),
            ph(d, 7),
            truth(d, true)
        ),
        &[
            rank.into(),
            version.into(),
            description.into(),
            script.into(),
            i64::from(checksum).into(),
            by.as_str().into(),
            execution_ms.into(),
        ],
        Tool::Flyway,
    )
    .await
}

/// Record in the tool's table that `m` was reverted.
pub async fn reverted(
    driver: &mut dyn Driver,
    tool: Tool,
    set: &MigrationSet,
    m: &Migration,
) -> Result<()> {
    ensure_table(driver, tool).await?;
    let d = driver.dialect();
    let (sql, key): (String, Value) = match tool {
        Tool::Sqlx => (
            format!("DELETE FROM _sqlx_migrations WHERE version = {}", ph(d, 1)),
            m.version.into(),
        ),
        Tool::GolangMigrate => return golang_migrate_head(driver, set).await,
        Tool::Dbmate => (
            format!("DELETE FROM schema_migrations WHERE version = {}", ph(d, 1)),
            m.written_version.as_str().into(),
        ),
        Tool::Diesel => (
            format!(
                "DELETE FROM __diesel_schema_migrations WHERE version = {}",
                ph(d, 1)
            ),
            m.written_version.as_str().into(),
        ),
        // Flyway (without its paid undo) has no row for a reverted migration: removing it makes
        // the version pending again, as it is.
        Tool::Flyway => (
            format!(
                "DELETE FROM flyway_schema_history WHERE version = {}",
                ph(d, 1)
            ),
            m.written_version.as_str().into(),
        ),
        Tool::Seaorm | Tool::Alembic => return Ok(()),
    };
    run(driver, &sql, &[key], tool).await
}
