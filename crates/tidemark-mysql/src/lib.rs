//! The MySQL/MariaDB driver. Both live in this crate, told apart by
//! [`tidemark_core::Capabilities::flavor`]. DDL commits on its own here, so the engine runs
//! migrations statement by statement with progress recorded in history.

mod driver;
mod dump;
mod inspect;
mod lock;
mod normalize;

pub use driver::{MySqlDriver, connect};
pub use dump::{MySqlDumper, dumper};
