//! The one trait every database crate implements. It gives the engine primitives only
//! (connect, lock, run a statement, query, inspect, scratch databases); the algorithms that use
//! them live once, in core.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use tidemark_schema::Schema;

use crate::error::Result;
use crate::url::DatabaseUrl;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    Postgres,
    /// MySQL and MariaDB; [`Capabilities::flavor`] tells which.
    MySql,
    Sqlite,
}

impl Dialect {
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Postgres => "postgres",
            Dialect::MySql => "mysql",
            Dialect::Sqlite => "sqlite",
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Dialect {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" | "pg" => Ok(Dialect::Postgres),
            "mysql" | "mariadb" => Ok(Dialect::MySql),
            "sqlite" | "sqlite3" => Ok(Dialect::Sqlite),
            other => Err(format!(
                "unknown dialect `{other}` (expected postgres, mysql or sqlite)"
            )),
        }
    }
}

/// What the connected server can do. Explicit, so the engine never guesses from the dialect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// DDL can be rolled back with the transaction it ran in (PostgreSQL, SQLite; not MySQL).
    pub transactional_ddl: bool,
    /// `PostgreSQL`, `MariaDB`, `MySQL` or `SQLite`.
    pub flavor: String,
    /// The server's version string as it reports it.
    pub server_version: String,
}

/// A parameter or result value of the small neutral query API that history and journal use.
/// Every value is typed, NULLs included: a prepared statement keeps the parameter types it was
/// first prepared with, so an untyped NULL would break the next execution on PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Int(Option<i64>),
    Text(Option<String>),
}

impl Value {
    /// A NULL result (its type is unknown when reading).
    pub const NULL: Value = Value::Text(None);

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => *i,
            Value::Text(t) => t.as_deref().and_then(|t| t.parse().ok()),
        }
    }

    pub fn into_text(self) -> Option<String> {
        match self {
            Value::Text(t) => t,
            Value::Int(i) => i.map(|i| i.to_string()),
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(Some(v))
    }
}

impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Self {
        Value::Int(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(Some(v.to_string()))
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(Some(v))
    }
}

impl From<Option<&str>> for Value {
    fn from(v: Option<&str>) -> Self {
        Value::Text(v.map(str::to_string))
    }
}

impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Self {
        Value::Text(v)
    }
}

/// An error as the database reported it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DbError {
    pub message: String,
    /// SQLSTATE (PostgreSQL, MySQL) or the SQLite result code.
    pub code: Option<String>,
    pub detail: Option<String>,
    pub hint: Option<String>,
    /// 1-based character position in the statement, when the database reports one.
    pub position: Option<usize>,
}

impl DbError {
    pub fn new(message: impl Into<String>) -> Self {
        DbError {
            message: message.into(),
            ..Default::default()
        }
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(code) = &self.code {
            write!(f, " ({code})")?;
        }
        if let Some(d) = &self.detail {
            write!(f, "\n  detail: {d}")?;
        }
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DbError {}

/// The migration lock. It lives on a connection of its own (never a pooled one), so when the
/// holder dies, the database (or, for SQLite, the kernel) releases it with the connection.
#[async_trait]
pub trait LockGuard: Send {
    /// Release on the happy path. Dropping the guard instead closes its connection, which
    /// releases the lock too.
    async fn release(self: Box<Self>) -> Result<()>;

    /// An SQL condition, true on the migration's own session exactly while this guard still
    /// holds the lock. The lock lives on a connection of its own, which a server idle
    /// timeout, a proxy or a failover can drop in the middle of a run; the engine writes each
    /// history row only under this condition, so a run that lost its lock stops before its
    /// next commit instead of racing a second migrator. `None`: the lock cannot be lost while
    /// the process lives (SQLite's file lock).
    fn held_condition(&self) -> Option<String> {
        None
    }
}

/// Told who holds the lock when [`Driver::lock`] has to wait.
pub trait LockWait: Send {
    fn waiting(&mut self, holder: &str);
}

/// Ignores waiting.
impl LockWait for () {
    fn waiting(&mut self, _: &str) {}
}

/// Which statement of a batch failed (`None`: the `BEGIN`), and how.
#[derive(Debug, Clone)]
pub struct BatchError {
    pub index: Option<usize>,
    pub error: DbError,
}

/// Dump and restore through the database's own tools (pg_dump/pg_restore, mariadb-dump and the
/// client, SQLite's `VACUUM INTO`). Holds no connection: restore replaces the database.
#[async_trait]
pub trait Dumper: Send + Sync {
    /// Check that the tools exist and suit the server (before anything is changed); returns a
    /// description such as `pg_dump 15.4`.
    async fn check_tools(&self) -> Result<String>;
    /// Write a consistent dump of the whole database to `path`; with `snapshot` (from
    /// [`Driver::export_snapshot`]) exactly the data that snapshot sees.
    async fn dump(&self, path: &std::path::Path, snapshot: Option<&str>) -> Result<()>;
    /// Check that the dump tool can read the dump (before anything is changed).
    async fn check_dump(&self, _path: &std::path::Path) -> Result<()> {
        Ok(())
    }
    /// Create the empty database (or file) `name` beside the live one, with the live one's
    /// encoding, for a restore to load into; returns its URL.
    async fn create_side(&self, name: &str) -> Result<DatabaseUrl>;
    /// Drop what [`Dumper::create_side`] made (if it exists).
    async fn drop_side(&self, name: &str) -> Result<()>;
    /// Load the dump into `target` as it was (owners and privileges too where the tool keeps
    /// them).
    async fn restore_full(&self, path: &std::path::Path, target: &DatabaseUrl) -> Result<()> {
        self.restore_into(path, target).await
    }
    /// Put the side database `side` in the live one's place in one step, the live one's
    /// content going to `old` (dropped by the caller once this returned). `lock` is the
    /// migration lock, held until the swap (PostgreSQL must let go of it to rename).
    async fn swap(&self, side: &str, old: &str, lock: Box<dyn LockGuard>) -> Result<()>;
    /// Load the dump into another, empty database of the same kind (for `verify`).
    async fn restore_into(&self, path: &std::path::Path, target: &DatabaseUrl) -> Result<()>;
    /// File name extension of the dump, e.g. `dump`, `sql`, `sqlite`.
    fn extension(&self) -> &'static str;
    /// What kind of dump it is, for the manifest (e.g. `pg_dump custom format`).
    fn format(&self) -> &'static str;
}

/// Options for [`Driver::inspect`].
#[derive(Debug, Clone, Default)]
pub struct InspectOptions {
    /// PostgreSQL schemas to inspect; empty means every schema but the system ones.
    pub schemas: Vec<String>,
}

#[async_trait]
pub trait Driver: Send {
    fn dialect(&self) -> Dialect;
    fn caps(&self) -> &Capabilities;
    fn url(&self) -> &DatabaseUrl;

    /// Take the migration lock, waiting at most `timeout`. `waiting` is told, once, who holds
    /// the lock if it is not free at once.
    async fn lock(
        &mut self,
        timeout: Duration,
        waiting: &mut dyn LockWait,
    ) -> Result<Box<dyn LockGuard>>;

    /// Run one statement of a migration script as it is written (simple protocol, no
    /// parameters).
    async fn run(&mut self, sql: &str) -> Result<(), DbError>;

    /// Run a statement with positional parameters (`$1` on PostgreSQL, `?` elsewhere); returns
    /// the affected rows.
    async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError>;

    /// Run a query with positional parameters; integer columns come back as [`Value::Int`],
    /// text as [`Value::Text`].
    async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>, DbError>;

    async fn begin(&mut self) -> Result<(), DbError> {
        self.run("BEGIN").await
    }

    async fn commit(&mut self) -> Result<(), DbError> {
        self.run("COMMIT").await
    }

    async fn rollback(&mut self) -> Result<(), DbError> {
        self.run("ROLLBACK").await
    }

    /// Open a read-only transaction whose snapshot another session can share, and return its
    /// id, so that a backup's manifest (fingerprint, row counts) and its dump see the same
    /// data. `None` where the database cannot share snapshots; end it with `rollback`.
    async fn export_snapshot(&mut self) -> Result<Option<String>, DbError> {
        Ok(None)
    }

    /// Run a migration's statements in order, after a `BEGIN` when `begin` is set. A database
    /// may send them in fewer round trips (PostgreSQL: one), but must say exactly which
    /// statement failed, with its position relative to that statement.
    async fn run_batch(&mut self, stmts: &[&str], begin: bool) -> Result<(), BatchError> {
        if begin {
            self.begin()
                .await
                .map_err(|error| BatchError { index: None, error })?;
        }
        for (i, s) in stmts.iter().enumerate() {
            self.run(s).await.map_err(|error| BatchError {
                index: Some(i),
                error,
            })?;
        }
        Ok(())
    }

    /// Inspect the live schema into the neutral model.
    async fn inspect(&mut self, opts: &InspectOptions) -> Result<Schema>;

    /// Open another connection of the same kind (a scratch or shadow database).
    async fn connect_other(&self, url: &DatabaseUrl) -> Result<Box<dyn Driver>>;

    /// Create an empty database on the same server and return its URL. For SQLite, `name` is
    /// a file path (or `:memory:`).
    async fn create_database(&mut self, name: &str) -> Result<DatabaseUrl>;

    /// Drop a database made by [`Driver::create_database`].
    async fn drop_database(&mut self, name: &str) -> Result<()>;

    /// Close the connection cleanly.
    async fn close(self: Box<Self>);
}
