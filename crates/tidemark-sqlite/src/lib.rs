//! The SQLite driver: the database is a file (or memory), the lock is an OS file lock beside it
//! that the kernel drops with the process, and inspection reads sqlite_schema and pragmas.

mod driver;
mod dump;
mod inspect;
mod lock;
mod sql;

pub use driver::{SqliteDriver, connect};
pub use dump::{SqliteDumper, dumper};
