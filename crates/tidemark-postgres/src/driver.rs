use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgDatabaseError, PgErrorPosition, PgRow};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Row};
use tidemark_core::driver::{
    BatchError, Capabilities, DbError, Dialect, Driver, InspectOptions, LockGuard, LockWait, Value,
};
use tidemark_core::{DatabaseUrl, Error, Result};
use tidemark_schema::Schema;

pub struct PgDriver {
    conn: PgConnection,
    options: PgConnectOptions,
    url: DatabaseUrl,
    caps: Capabilities,
    /// `server_version_num`, e.g. 150004.
    version_num: i64,
}

pub(crate) fn options(url: &DatabaseUrl) -> Result<PgConnectOptions> {
    let opts = PgConnectOptions::from_str(url.expose_secret()).map_err(|e| {
        Error::Usage(format!(
            "invalid PostgreSQL URL {url}: {}",
            scrub(&e.to_string(), url)
        ))
    })?;
    // On loopback and Unix sockets TLS protects nothing and costs a handshake plus encryption
    // of every catalog row read (inspection at 1,000 tables: 267 ms with it, 162 ms without).
    // Skipped by default there, unless the URL asks for a mode.
    let opts = if !asks_for_tls_mode(url) && tidemark_core::probe::is_local_host(opts.get_host()) {
        opts.ssl_mode(sqlx::postgres::PgSslMode::Disable)
    } else {
        opts
    };
    Ok(opts
        .application_name("tidemark")
        .disable_statement_logging())
}

fn asks_for_tls_mode(url: &DatabaseUrl) -> bool {
    url.expose_secret()
        .split_once('?')
        .is_some_and(|(_, q)| q.split('&').any(|kv| kv.starts_with("sslmode=")))
}

/// sqlx's messages do not carry the URL, but make sure of it: a password must never be printed.
pub(crate) fn scrub(msg: &str, url: &DatabaseUrl) -> String {
    url.scrub(msg)
}

pub(crate) fn connect_error(url: &DatabaseUrl, e: sqlx::Error) -> Error {
    let mut e = db_error(e);
    e.message = url.scrub(&e.message);
    Error::db(format!("could not connect to {url}"), e)
}

/// Open a connection within the connect timeout, naming the protocol the port speaks when it
/// is not this one ([`tidemark_core::probe::connect_within`]).
pub(crate) async fn open(
    url: &DatabaseUrl,
    options: &PgConnectOptions,
) -> Result<sqlx::PgConnection> {
    let at = tidemark_core::probe::Endpoint {
        host: options.get_host(),
        port: options.get_port(),
        socket: options.get_socket().is_some(),
    };
    tidemark_core::probe::connect_within(
        url,
        tidemark_core::probe::Protocol::Postgres,
        at,
        options.connect(),
        |e| connect_error(url, e),
    )
    .await
}

pub async fn connect(url: &DatabaseUrl) -> Result<PgDriver> {
    let options = options(url)?;
    let mut conn = open(url, &options).await?;
    let row = sqlx::query(
        "SELECT current_setting('server_version'), current_setting('server_version_num')::int8",
    )
    .fetch_one(&mut conn)
    .await
    .map_err(|e| Error::db("could not read the server version", db_error(e)))?;
    let server_version: String = row.get(0);
    let version_num: i64 = row.get(1);
    if version_num >= 140000 {
        // A backend running a long statement notices its client is gone (e.g. killed with
        // SIGKILL) within a second and rolls back, instead of finishing a dead migration.
        let _ = sqlx::raw_sql("SET client_connection_check_interval = 1000")
            .execute(&mut conn)
            .await;
    }
    Ok(PgDriver {
        conn,
        options,
        url: url.clone(),
        caps: Capabilities {
            transactional_ddl: true,
            flavor: "PostgreSQL".into(),
            server_version,
        },
        version_num,
    })
}

pub(crate) fn db_error(e: sqlx::Error) -> DbError {
    match e {
        sqlx::Error::Database(d) => match d.try_downcast_ref::<PgDatabaseError>() {
            Some(pg) => DbError {
                message: pg.message().to_string(),
                code: Some(pg.code().to_string()),
                detail: pg.detail().map(str::to_string),
                hint: pg.hint().map(str::to_string),
                position: match pg.position() {
                    Some(PgErrorPosition::Original(p)) => Some(p),
                    _ => None,
                },
            },
            None => DbError {
                message: d.message().to_string(),
                code: d.code().map(|c| c.to_string()),
                ..Default::default()
            },
        },
        other => DbError::new(other.to_string()),
    }
}

pub(crate) fn decode(row: &PgRow) -> Vec<Value> {
    (0..row.len())
        .map(|i| {
            if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
                return Value::Int(v);
            }
            if let Ok(v) = row.try_get::<Option<i32>, _>(i) {
                return Value::Int(v.map(i64::from));
            }
            if let Ok(v) = row.try_get::<Option<i16>, _>(i) {
                return Value::Int(v.map(i64::from));
            }
            if let Ok(v) = row.try_get::<Option<bool>, _>(i) {
                return Value::Int(v.map(i64::from));
            }
            match row.try_get::<Option<String>, _>(i) {
                Ok(s) => Value::Text(s),
                _ => Value::NULL,
            }
        })
        .collect()
}

fn bind<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    params: &[Value],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    for p in params {
        q = match p {
            Value::Int(i) => q.bind(*i),
            Value::Text(t) => q.bind(t.clone()),
        };
    }
    q
}

pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl PgDriver {
    pub(crate) fn conn(&mut self) -> &mut PgConnection {
        &mut self.conn
    }

    pub(crate) fn version_num(&self) -> i64 {
        self.version_num
    }
}

#[async_trait]
impl Driver for PgDriver {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
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
        crate::lock::acquire(&self.options, &self.url, timeout, waiting).await
    }

    async fn run(&mut self, sql: &str) -> Result<(), DbError> {
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&mut self.conn)
            .await
            .map(|_| ())
            .map_err(db_error)
    }

    async fn export_snapshot(&mut self) -> Result<Option<String>, DbError> {
        self.run("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await?;
        match sqlx::query_scalar::<_, String>("SELECT pg_export_snapshot()")
            .fetch_one(&mut self.conn)
            .await
        {
            Ok(id) => Ok(Some(id)),
            Err(e) => {
                let _ = self.rollback().await;
                Err(db_error(e))
            }
        }
    }

    /// All statements (and the `BEGIN`) in one simple query: one round trip instead of one per
    /// statement. The server reports each statement's completion in order, so the number of
    /// completions before the error names the failing statement; its position is made relative
    /// to that statement.
    async fn run_batch(&mut self, stmts: &[&str], begin: bool) -> Result<(), BatchError> {
        use futures_util::TryStreamExt;
        let mut sql = String::new();
        let mut starts = Vec::with_capacity(stmts.len()); // in characters, as PostgreSQL counts
        let mut chars = 0usize;
        if begin {
            sql.push_str("BEGIN;\n");
            chars += 7;
        }
        for s in stmts {
            starts.push(chars);
            sql.push_str(s);
            sql.push_str(";\n");
            chars += s.chars().count() + 2;
        }
        let mut done = 0usize;
        let mut results = sqlx::raw_sql(AssertSqlSafe(sql)).execute_many(&mut self.conn);
        loop {
            match results.try_next().await {
                Ok(Some(_)) => done += 1,
                Ok(None) => return Ok(()),
                Err(e) => {
                    let mut error = db_error(e);
                    // A syntax error stops the whole string before anything runs (the server
                    // parses it all first) and comes with a position: that names the statement.
                    // Otherwise the completions counted so far do.
                    let index = match error.position {
                        Some(p) if p > 0 => starts.iter().rposition(|&st| st < p),
                        _ => done.checked_sub(usize::from(begin)),
                    };
                    if let (Some(i), Some(p)) = (index, error.position) {
                        error.position = p.checked_sub(starts[i]);
                    }
                    return Err(BatchError { index, error });
                }
            }
        }
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

    async fn create_database(&mut self, name: &str) -> Result<DatabaseUrl> {
        self.run(&format!("CREATE DATABASE {}", quote_ident(name)))
            .await
            .map_err(|e| Error::db(format!("could not create database {name}"), e))?;
        Ok(self.url.with_database(name))
    }

    async fn drop_database(&mut self, name: &str) -> Result<()> {
        let force = if self.version_num >= 130000 {
            " WITH (FORCE)"
        } else {
            ""
        };
        self.run(&format!(
            "DROP DATABASE IF EXISTS {}{force}",
            quote_ident(name)
        ))
        .await
        .map_err(|e| Error::db(format!("could not drop database {name}"), e))
    }

    async fn close(self: Box<Self>) {
        let _ = self.conn.close().await;
    }
}
