//! The migration engine: migration files and their layouts, the statement splitter, the
//! `Driver` trait the database crates implement, history, status, plans and the one apply
//! algorithm that every database shares.
//!
//! Core never names a driver: it sees databases only through [`driver::Driver`].

pub mod backup;
pub mod baseline;
pub mod class;
pub mod config;
pub mod drift;
pub mod drill;
pub mod driver;
pub mod engine;
pub mod env;
pub mod error;
pub mod gate;
pub mod history;
pub mod identity;
pub mod import;
pub mod input;
pub mod keepalive;
pub mod migration;
pub mod plan;
pub mod probe;
pub mod repair;
pub mod replay;
pub mod replay_cache;
pub mod scratch;
pub mod split;
pub mod status;
pub mod sync;
pub mod url;

#[cfg(test)]
mod fuzz;

pub use class::{Classification, Classifier, MigrationClass};
pub use driver::{Capabilities, DbError, Dialect, Driver, Dumper, LockGuard, LockWait, Value};
pub use error::{Error, ExitClass, Location, Result};
pub use migration::{Layout, Migration, MigrationSet, Script};
pub use url::DatabaseUrl;
