//! tidemark as a library: the engine, the schema model, and [`connect`], which turns a
//! database URL into a driver. This is the only place that maps a URL scheme to a driver, and
//! drivers sit behind cargo features (`postgres`, `mysql`, `sqlite`, all on by default).
//!
//! ```no_run
//! # async fn run() -> tidemark::Result<()> {
//! let url = tidemark::DatabaseUrl::parse("sqlite://app.db")?;
//! let mut db = tidemark::connect(&url).await?;
//! let set = tidemark::MigrationSet::load("migrations".as_ref(), None)?;
//! let settings = tidemark::engine::Settings::default();
//! let status = tidemark::engine::status(db.as_mut(), &set, &settings, true).await?;
//! println!("at {:?} of {:?}", status.current_version, status.latest_version);
//! # Ok(()) }
//! ```

pub use tidemark_core::*;
pub use tidemark_schema as schema;

/// Open a connection to the database a URL names.
pub async fn connect(url: &DatabaseUrl) -> Result<Box<dyn Driver>> {
    match url.dialect() {
        #[cfg(feature = "postgres")]
        Dialect::Postgres => Ok(Box::new(tidemark_postgres::connect(url).await?)),
        #[cfg(feature = "mysql")]
        Dialect::MySql => Ok(Box::new(tidemark_mysql::connect(url).await?)),
        #[cfg(feature = "sqlite")]
        Dialect::Sqlite => Ok(Box::new(tidemark_sqlite::connect(url).await?)),
        #[allow(unreachable_patterns)]
        other => Err(Error::Usage(format!(
            "this build of tidemark has no {other} driver (cargo feature `{other}`)"
        ))),
    }
}
