//! The PostgreSQL driver: one dedicated connection for migrations, another for the advisory
//! lock, catalog inspection into the neutral schema model, scratch databases.

mod driver;
mod dump;
mod inspect;
mod lock;
mod normalize;

pub use driver::{PgDriver, connect};
pub use dump::{PgDumper, dumper};
