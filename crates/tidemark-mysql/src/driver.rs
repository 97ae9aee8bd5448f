use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlDatabaseError, MySqlRow};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Row};
use tidemark_core::driver::{
    Capabilities, DbError, Dialect, Driver, InspectOptions, LockGuard, LockWait, Value,
};
use tidemark_core::{DatabaseUrl, Error, Result};
use tidemark_schema::Schema;

pub struct MySqlDriver {
    conn: MySqlConnection,
    options: MySqlConnectOptions,
    url: DatabaseUrl,
    caps: Capabilities,
    database: String,
    /// The server's `max_allowed_packet`, read the first time a large statement is sent.
    max_packet: Option<u64>,
}

pub(crate) fn options(url: &DatabaseUrl) -> Result<MySqlConnectOptions> {
    let raw = url.expose_secret();
    // sqlx knows only the mysql:// scheme; MariaDB users write mariadb://.
    let raw = match raw.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("mariadb") => format!("mysql://{rest}"),
        _ => raw.to_string(),
    };
    let opts = MySqlConnectOptions::from_str(&raw).map_err(|e| {
        Error::Usage(format!(
            "invalid MySQL URL {url}: {}",
            url.scrub(&e.to_string())
        ))
    })?;
    // Run migrations in the session the server gives, as the mysql client would: sqlx would
    // otherwise add PIPES_AS_CONCAT to sql_mode (changing what `||` means) and force the time
    // zone to UTC (changing what NOW() writes).
    Ok(opts
        .pipes_as_concat(false)
        .no_engine_substitution(false)
        .timezone(None)
        .disable_statement_logging())
}

pub(crate) fn connect_error(url: &DatabaseUrl, e: sqlx::Error) -> Error {
    let mut e = db_error(e);
    e.message = url.scrub(&e.message);
    Error::db(format!("could not connect to {url}"), e)
}

/// Open a connection within the connect timeout. When it fails or hangs, say which protocol
/// the port really speaks if it is not this one (a `mysql://` URL at a PostgreSQL port hangs
/// until the server gives up; the reverse fails with a protocol byte).
pub(crate) async fn open(
    url: &DatabaseUrl,
    options: &MySqlConnectOptions,
) -> Result<sqlx::MySqlConnection> {
    let timeout = tidemark_core::probe::connect_timeout();
    let (host, port) = (options.get_host().to_string(), options.get_port());
    let wrong_port = || async {
        if options.get_socket().is_some() {
            return None;
        }
        tidemark_core::probe::explain(tidemark_core::probe::Protocol::MySql, &host, port).await
    };
    // A connection that is slow to start may be waiting on a server of the other kind (each
    // waits for the other to speak first): after a moment, ask the port what it is.
    let connecting = tokio::time::timeout(timeout, options.connect());
    tokio::pin!(connecting);
    let result = tokio::select! {
        r = &mut connecting => r,
        why = async {
            tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
            match wrong_port().await {
                Some(why) => why,
                None => std::future::pending().await,
            }
        } => return Err(Error::Usage(format!("could not connect to {url}: {why}"))),
    };
    match result {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => match wrong_port().await {
            Some(why) => Err(Error::Usage(format!("could not connect to {url}: {why}"))),
            None => Err(connect_error(url, e)),
        },
        Err(_) => {
            let why = wrong_port().await.unwrap_or_else(|| {
                format!(
                    "no answer from {host}:{port} within {} (TIDEMARK_CONNECT_TIMEOUT sets the limit)",
                    tidemark_core::probe::format_duration(timeout)
                )
            });
            Err(Error::db(
                format!("could not connect to {url}"),
                DbError::new(why),
            ))
        }
    }
}

pub async fn connect(url: &DatabaseUrl) -> Result<MySqlDriver> {
    let options = options(url)?;
    let mut conn = open(url, &options).await?;
    let (version, database): (String, Option<String>) =
        sqlx::query_as("SELECT VERSION(), DATABASE()")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| Error::db("could not read the server version", db_error(e)))?;
    let Some(database) = database else {
        return Err(Error::Usage(format!(
            "the URL {url} names no database; write mysql://user@host/DATABASE"
        )));
    };
    let flavor = if version.to_ascii_lowercase().contains("mariadb") {
        "MariaDB"
    } else {
        "MySQL"
    };
    Ok(MySqlDriver {
        max_packet: None,
        conn,
        options,
        url: url.clone(),
        caps: Capabilities {
            transactional_ddl: false,
            flavor: flavor.into(),
            server_version: version,
        },
        database,
    })
}

pub(crate) fn db_error(e: sqlx::Error) -> DbError {
    match e {
        sqlx::Error::Database(d) => match d.try_downcast_ref::<MySqlDatabaseError>() {
            Some(my) => DbError {
                message: my.message().to_string(),
                code: Some(match my.code() {
                    Some(state) => format!("{} {state}", my.number()),
                    None => my.number().to_string(),
                }),
                ..Default::default()
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

fn decode(row: &MySqlRow) -> Vec<Value> {
    (0..row.len())
        .map(|i| {
            if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
                return Value::Int(v);
            }
            if let Ok(v) = row.try_get::<Option<u64>, _>(i) {
                return Value::Int(v.map(|v| v as i64));
            }
            if let Ok(v) = row.try_get::<Option<i32>, _>(i) {
                return Value::Int(v.map(i64::from));
            }
            if let Ok(v) = row.try_get::<Option<String>, _>(i) {
                return Value::Text(v);
            }
            match row.try_get::<Option<Vec<u8>>, _>(i) {
                Ok(Some(b)) => Value::Text(Some(String::from_utf8_lossy(&b).into_owned())),
                _ => Value::NULL,
            }
        })
        .collect()
}

fn bind<'q>(
    mut q: sqlx::query::Query<'q, sqlx::MySql, sqlx::mysql::MySqlArguments>,
    params: &[Value],
) -> sqlx::query::Query<'q, sqlx::MySql, sqlx::mysql::MySqlArguments> {
    for p in params {
        q = match p {
            Value::Int(i) => q.bind(*i),
            Value::Text(t) => q.bind(t.clone()),
        };
    }
    q
}

pub(crate) fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

impl MySqlDriver {
    pub(crate) fn conn(&mut self) -> &mut MySqlConnection {
        &mut self.conn
    }

    pub(crate) fn database(&self) -> &str {
        &self.database
    }
}

#[async_trait]
impl Driver for MySqlDriver {
    fn dialect(&self) -> Dialect {
        Dialect::MySql
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
        crate::lock::acquire(&self.options, &self.url, &self.database, timeout, waiting).await
    }

    async fn run(&mut self, sql: &str) -> Result<(), DbError> {
        // A statement over max_allowed_packet makes the server drop the connection ("Connection
        // reset by peer"); say which setting it is before sending it. Statements under 1 MiB
        // (every server's packet limit is at least that) are not checked.
        if sql.len() as u64 > 1 << 20 {
            if self.max_packet.is_none() {
                self.max_packet = sqlx::query_scalar::<_, u64>("SELECT @@max_allowed_packet")
                    .fetch_one(&mut self.conn)
                    .await
                    .ok();
            }
            if let Some(max) = self.max_packet
                && sql.len() as u64 + 64 > max
            {
                return Err(DbError {
                    message: format!(
                        "the statement is {} bytes, over the server's max_allowed_packet of {max} bytes: raise max_allowed_packet (SET GLOBAL max_allowed_packet = {}; or in the server's configuration) or split the statement",
                        sql.len(),
                        (sql.len() as u64 + (1 << 20)).next_power_of_two()
                    ),
                    code: Some("max_allowed_packet".into()),
                    ..Default::default()
                });
            }
        }
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&mut self.conn)
            .await
            .map(|_| ())
            .map_err(db_error)
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

    /// A database with the same default character set and collation as this one, so that
    /// tables replayed there compare equal to the live ones.
    async fn create_database(&mut self, name: &str) -> Result<DatabaseUrl> {
        let (charset, collation): (String, String) = sqlx::query_as(
            "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = DATABASE()",
        )
        .fetch_one(&mut self.conn)
        .await
        .map_err(|e| Error::db("could not read the database's character set", db_error(e)))?;
        self.run(&format!(
            "CREATE DATABASE {} CHARACTER SET {charset} COLLATE {collation}",
            quote_ident(name)
        ))
        .await
        .map_err(|e| Error::db(format!("could not create database {name}"), e))?;
        Ok(self.url.with_database(name))
    }

    async fn drop_database(&mut self, name: &str) -> Result<()> {
        self.run(&format!("DROP DATABASE IF EXISTS {}", quote_ident(name)))
            .await
            .map_err(|e| Error::db(format!("could not drop database {name}"), e))
    }

    async fn close(self: Box<Self>) {
        let _ = self.conn.close().await;
    }
}
