use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteRow};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Row};
use tidemark_core::driver::{
    Capabilities, DbError, Dialect, Driver, InspectOptions, LockGuard, LockWait, Value,
};
use tidemark_core::{DatabaseUrl, Error, Result};
use tidemark_schema::Schema;

pub struct SqliteDriver {
    conn: SqliteConnection,
    url: DatabaseUrl,
    caps: Capabilities,
    /// The database file; `None` for an in-memory database.
    path: Option<PathBuf>,
}

/// The file a URL names, or `None` for memory.
pub(crate) fn file_of(url: &DatabaseUrl) -> Option<PathBuf> {
    let raw = url.expose_secret();
    let rest = raw.split_once(':').map(|x| x.1).unwrap_or_default();
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" || raw.contains("mode=memory") {
        None
    } else {
        Some(PathBuf::from(path))
    }
}

pub async fn connect(url: &DatabaseUrl) -> Result<SqliteDriver> {
    let options = SqliteConnectOptions::from_str(url.expose_secret())
        .map_err(|e| Error::Usage(format!("invalid SQLite URL {url}: {e}")))?
        .create_if_missing(true)
        .disable_statement_logging();
    let path = file_of(url);
    if let Some(dir) = path
        .as_ref()
        .and_then(|p| p.parent())
        .filter(|d| !d.as_os_str().is_empty())
        && !dir.is_dir()
    {
        return Err(Error::Usage(format!(
            "cannot create SQLite database {url}: directory {} does not exist",
            dir.display()
        )));
    }
    let mut conn = options
        .connect()
        .await
        .map_err(|e| Error::db(format!("could not open {url}"), db_error(e)))?;
    let version: String = sqlx::query_scalar("SELECT sqlite_version()")
        .fetch_one(&mut conn)
        .await
        .map_err(|e| Error::db("could not read the SQLite version", db_error(e)))?;
    Ok(SqliteDriver {
        conn,
        url: url.clone(),
        caps: Capabilities {
            transactional_ddl: true,
            flavor: "SQLite".into(),
            server_version: version,
        },
        path,
    })
}

pub(crate) fn db_error(e: sqlx::Error) -> DbError {
    match e {
        sqlx::Error::Database(d) => DbError {
            message: d.message().to_string(),
            code: d.code().map(|c| c.to_string()),
            ..Default::default()
        },
        other => DbError::new(other.to_string()),
    }
}

fn decode(row: &SqliteRow) -> Vec<Value> {
    (0..row.len())
        .map(|i| {
            if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
                return Value::Int(v);
            }
            if let Ok(v) = row.try_get::<Option<String>, _>(i) {
                return Value::Text(v);
            }
            if let Ok(Some(v)) = row.try_get::<Option<f64>, _>(i) {
                return Value::Text(Some(v.to_string()));
            }
            match row.try_get::<Option<Vec<u8>>, _>(i) {
                Ok(Some(b)) => Value::Text(Some(String::from_utf8_lossy(&b).into_owned())),
                _ => Value::NULL,
            }
        })
        .collect()
}

fn bind<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    params: &[Value],
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
    for p in params {
        q = match p {
            Value::Int(i) => q.bind(*i),
            Value::Text(t) => q.bind(t.clone()),
        };
    }
    q
}

impl SqliteDriver {
    pub(crate) fn conn(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }

    pub fn path(&self) -> Option<&std::path::Path> {
        self.path.as_deref()
    }
}

#[async_trait]
impl Driver for SqliteDriver {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn caps(&self) -> &Capabilities {
        &self.caps
    }

    fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    async fn lock(
        &mut self,
        timeout: Duration,
        waiting: &mut dyn LockWait,
    ) -> Result<Box<dyn LockGuard>> {
        crate::lock::acquire(self.path.as_deref(), timeout, waiting).await
    }

    async fn run(&mut self, sql: &str) -> Result<(), DbError> {
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&mut self.conn)
            .await
            .map(|_| ())
            .map_err(db_error)
    }

    /// Take the write lock at the start, so that a concurrent writer makes this wait for the
    /// busy timeout up front instead of failing half way through a migration.
    async fn begin(&mut self) -> Result<(), DbError> {
        self.run("BEGIN IMMEDIATE").await
    }

    async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let q = bind(sqlx::query(AssertSqlSafe(sql)), params);
        q.execute(&mut self.conn)
            .await
            .map(|r| r.rows_affected())
            .map_err(db_error)
    }

    async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Vec<Value>>, DbError> {
        let q = bind(sqlx::query(AssertSqlSafe(sql)), params);
        let rows = q.fetch_all(&mut self.conn).await.map_err(db_error)?;
        Ok(rows.iter().map(decode).collect())
    }

    async fn inspect(&mut self, opts: &InspectOptions) -> Result<Schema> {
        crate::inspect::inspect(self, opts).await
    }

    async fn connect_other(&self, url: &DatabaseUrl) -> Result<Box<dyn Driver>> {
        Ok(Box::new(connect(url).await?))
    }

    /// `name` is a file path, or `:memory:`.
    async fn create_database(&mut self, name: &str) -> Result<DatabaseUrl> {
        if name == ":memory:" {
            return DatabaseUrl::parse("sqlite::memory:");
        }
        let path = PathBuf::from(name);
        if path.exists() {
            return Err(Error::Usage(format!(
                "cannot create SQLite database {name}: the file exists"
            )));
        }
        std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
        DatabaseUrl::parse(&format!("sqlite://{name}"))
    }

    async fn drop_database(&mut self, name: &str) -> Result<()> {
        if name == ":memory:" {
            return Ok(());
        }
        for suffix in ["", "-wal", "-shm", "-journal", ".tidemark-lock"] {
            let p = PathBuf::from(format!("{name}{suffix}"));
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(&p, e)),
            }
        }
        Ok(())
    }

    async fn close(self: Box<Self>) {
        let _ = self.conn.close().await;
    }
}
