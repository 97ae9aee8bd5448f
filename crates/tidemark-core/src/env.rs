//! Every environment variable tidemark reads, in one place.

/// The database URL when `--database-url` is not given.
pub const DATABASE_URL: &str = "TIDEMARK_DATABASE_URL";
/// Read after [`DATABASE_URL`], as sqlx, diesel and dbmate users already set it.
pub const GENERIC_DATABASE_URL: &str = "DATABASE_URL";
/// Backup directory, overriding `[backup] dir`.
pub const BACKUP_DIR: &str = "TIDEMARK_BACKUP_DIR";
/// How long connecting may take before tidemark says why it could not (default 10s).
pub const CONNECT_TIMEOUT: &str = "TIDEMARK_CONNECT_TIMEOUT";
/// How often the migration lock's session is pinged to keep it alive (default 15s).
pub const LOCK_KEEPALIVE: &str = "TIDEMARK_LOCK_KEEPALIVE";
/// Who is acting, for the history and the journal (default: the OS user and host, or the CI's
/// own variables).
pub const ACTOR: &str = "TIDEMARK_ACTOR";
/// The largest migration file tidemark reads (bytes, or with K, M, G; default 256M).
pub const MAX_FILE_SIZE: &str = "TIDEMARK_MAX_FILE_SIZE";
/// Disables colour, as everywhere (<https://no-color.org>).
pub const NO_COLOR: &str = "NO_COLOR";
/// Test servers (tests only).
pub const TEST_PG_URL: &str = "TIDEMARK_TEST_PG_URL";
pub const TEST_MYSQL_URL: &str = "TIDEMARK_TEST_MYSQL_URL";
/// When set, a database test without its URL fails instead of being skipped (CI).
pub const TEST_REQUIRE_DB: &str = "TIDEMARK_TEST_REQUIRE_DB";
