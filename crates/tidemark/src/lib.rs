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

mod embedded;
mod migrator;
pub use embedded::EmbeddedMigrations;
pub use migrator::{Migrator, Startup};
/// `tidemark::embed_migrations!("migrations")`: the directory (relative to the crate's
/// `Cargo.toml`, any layout) compiled into the binary and checked at compile time; a bad file
/// is a compile error naming it.
///
/// ```ignore
/// static MIGRATIONS: tidemark::EmbeddedMigrations = tidemark::embed_migrations!("migrations");
/// let m = tidemark::Migrator::embedded(&url, &MIGRATIONS)?;
/// ```
pub use tidemark_macros::embed_migrations;

/// The application gate for a Rust application's start-up: is the database at the migrations
/// this build was made for (`require`), with nothing failed and no drift? The same check as
/// `tidemark check`.
///
/// ```no_run
/// # async fn start() -> Result<(), Box<dyn std::error::Error>> {
/// let report = tidemark::check_database(&std::env::var("DATABASE_URL")?, "migrations".as_ref(), tidemark::gate::Require::Latest).await?;
/// if !report.ok {
///     return Err(format!("refusing to start: {}", report.reasons.join("; ")).into());
/// }
/// # Ok(()) }
/// ```
pub async fn check_database(
    url: &str,
    migrations: &std::path::Path,
    require: gate::Require,
) -> Result<gate::CheckReport> {
    let url = DatabaseUrl::parse(url)?;
    let set = MigrationSet::load(migrations, None)?;
    let mut db = connect(&url).await?;
    let report = gate::check(
        db.as_mut(),
        &set,
        &engine::Settings::default(),
        gate::Options::new(require),
    )
    .await;
    db.close().await;
    report
}

/// [`check_database`] with everything `tidemark.toml` says (migrations directory, layout,
/// schemas, shadow database), so an application sees exactly what `tidemark check` sees.
pub async fn check_database_with_config(
    config: &std::path::Path,
    require: gate::Require,
) -> Result<gate::CheckReport> {
    Migrator::from_config(config, None)?.check(require).await
}

/// The backup tool for the database a URL names (pg_dump, mariadb-dump, SQLite `VACUUM INTO`).
pub fn dumper(url: &DatabaseUrl) -> Result<Box<dyn Dumper>> {
    match url.dialect() {
        #[cfg(feature = "postgres")]
        Dialect::Postgres => Ok(Box::new(tidemark_postgres::dumper(url))),
        #[cfg(feature = "mysql")]
        Dialect::MySql => Ok(Box::new(tidemark_mysql::dumper(url))),
        #[cfg(feature = "sqlite")]
        Dialect::Sqlite => Ok(Box::new(tidemark_sqlite::dumper(url))),
        #[allow(unreachable_patterns)]
        other => Err(Error::Usage(format!(
            "this build of tidemark has no {other} driver (cargo feature `{other}`)"
        ))),
    }
}

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
