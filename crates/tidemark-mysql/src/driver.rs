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
    // On loopback and Unix sockets TLS protects nothing and costs a handshake and encryption
    // of every row read: skipped there unless the URL asks for a mode.
    let asks = raw.split_once('?').is_some_and(|(_, q)| {
        q.split('&')
            .any(|kv| kv.starts_with("ssl-mode=") || kv.starts_with("sslmode="))
    });
    let local = opts.get_socket().is_some() || tidemark_core::probe::is_local_host(opts.get_host());
    let opts = if !asks && local {
        opts.ssl_mode(sqlx::mysql::MySqlSslMode::Disabled)
    } else {
        opts
    };
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

/// Open a connection within the connect timeout, naming the protocol the port speaks when it
/// is not this one ([`tidemark_core::probe::connect_within`]).
pub(crate) async fn open(
    url: &DatabaseUrl,
    options: &MySqlConnectOptions,
) -> Result<sqlx::MySqlConnection> {
    let at = tidemark_core::probe::Endpoint {
        host: options.get_host(),
        port: options.get_port(),
        socket: options.get_socket().is_some(),
    };
    tidemark_core::probe::connect_within(
        url,
        tidemark_core::probe::Protocol::MySql,
        at,
        options.connect(),
        |e| connect_error(url, e),
    )
    .await
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
