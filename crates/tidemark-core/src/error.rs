use std::fmt;
use std::path::{Path, PathBuf};

use crate::driver::DbError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where in the user's input something is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub path: PathBuf,
    /// 1-based; `None` when the problem is the file as a whole.
    pub line: Option<usize>,
}

impl Location {
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Location {
            path: path.into(),
            line: None,
        }
    }

    pub fn line(path: impl Into<PathBuf>, line: usize) -> Self {
        Location {
            path: path.into(),
            line: Some(line),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}", self.path.display()),
            None => write!(f, "{}", self.path.display()),
        }
    }
}

/// How an error ends the process; the CLI maps this to the exit codes of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitClass {
    /// 1: database error, failed migration, lock timeout.
    Operational,
    /// 2: usage, configuration or bad input.
    Usage,
    /// 10: pending migrations (`status --exit-code`).
    Pending,
    /// 20: drift, modified, missing, failed, or `check` not satisfied.
    Inconsistent,
    /// 30: a deploy failed verification and was rolled back.
    RolledBack,
    /// 31: a rollback failed and a person must act.
    RollbackFailed,
}

impl ExitClass {
    pub fn code(self) -> i32 {
        match self {
            ExitClass::Operational => 1,
            ExitClass::Usage => 2,
            ExitClass::Pending => 10,
            ExitClass::Inconsistent => 20,
            ExitClass::RolledBack => 30,
            ExitClass::RollbackFailed => 31,
        }
    }

    /// Stable machine name, used as `error.code` in JSON output.
    pub fn name(self) -> &'static str {
        match self {
            ExitClass::Operational => "operational",
            ExitClass::Usage => "usage",
            ExitClass::Pending => "pending",
            ExitClass::Inconsistent => "inconsistent",
            ExitClass::RolledBack => "rolled_back",
            ExitClass::RollbackFailed => "rollback_failed",
        }
    }
}

/// A statement of a migration that failed, with everything a person needs to find it.
#[derive(Debug, Clone)]
pub struct StatementFailure {
    pub version: i64,
    pub name: String,
    pub path: PathBuf,
    pub line: usize,
    /// 1-based index of the statement in its script.
    pub index: usize,
    pub statement: String,
    pub db: DbError,
}

impl fmt::Display for StatementFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stmt = crate::split::summarize(&self.statement, 200);
        write!(
            f,
            "migration {} ({}) failed at {}:{} (statement {}): {}\n  statement: {stmt}",
            self.version,
            self.name,
            self.path.display(),
            self.line,
            self.index,
            self.db
        )
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A problem in a migration file or other input, found before the database is touched.
    #[error("{location}: {message}")]
    BadInput { location: Location, message: String },

    /// Configuration, flags or environment.
    #[error("{0}")]
    Usage(String),

    /// The database refused or failed something tidemark asked of it.
    #[error("{context}: {source}")]
    Database {
        context: String,
        /// Boxed: the database's message with detail and hint is large, and every `Result` of
        /// tidemark carries this enum.
        #[source]
        source: Box<DbError>,
    },

    /// A migration statement failed. `applied` lists the versions this run applied before it.
    #[error("{failure}")]
    MigrationFailed {
        failure: Box<StatementFailure>,
        applied: Vec<i64>,
        recorded_failed: bool,
    },

    /// The migration lock's session ended during the run (killed, idle timeout, failover):
    /// the run stopped before its next commit. `applied` lists what this run applied before.
    #[error("the migration lock was lost during the run (its session ended: killed, timed out or cut by a proxy); stopped before committing migration {version}, which is not recorded as applied{}", if applied.is_empty() { String::new() } else { format!(" (applied before it: {} migration(s))", applied.len()) })]
    LockLost { version: i64, applied: Vec<i64> },

    #[error("timed out after {waited:?} waiting for the migration lock{holder}")]
    LockTimeout {
        waited: std::time::Duration,
        holder: String,
    },

    /// History and reality (or the files) disagree; the message names the way out.
    #[error("{0}")]
    Inconsistent(String),

    /// A condition that is not met (`check`, `status --exit-code`).
    #[error("{message}")]
    Unsatisfied { class: ExitClass, message: String },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// An external tool tidemark shells out to (pg_dump, …) failed or is missing.
    #[error("{0}")]
    Tool(String),
}

impl Error {
    pub fn class(&self) -> ExitClass {
        match self {
            Error::BadInput { .. } | Error::Usage(_) => ExitClass::Usage,
            Error::Database { .. }
            | Error::MigrationFailed { .. }
            | Error::LockTimeout { .. }
            | Error::LockLost { .. }
            | Error::Io { .. }
            | Error::Tool(_) => ExitClass::Operational,
            Error::Inconsistent(_) => ExitClass::Inconsistent,
            Error::Unsatisfied { class, .. } => *class,
        }
    }

    pub fn bad_input(location: Location, message: impl Into<String>) -> Self {
        Error::BadInput {
            location,
            message: message.into(),
        }
    }

    pub fn db(context: impl Into<String>, source: DbError) -> Self {
        Error::Database {
            context: context.into(),
            source: Box::new(source),
        }
    }

    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
