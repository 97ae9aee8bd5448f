//! The migration lock: a session advisory lock on a connection of its own. If the process dies,
//! the server ends the session and the lock goes with it; there is no lock row to clean up.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use tidemark_core::driver::{LockGuard, LockWait};
use tidemark_core::{DatabaseUrl, Error, Result};

use crate::driver::{db_error, open};
use tidemark_core::keepalive::Keeper;

/// "tidemark" in ASCII: the advisory lock key, per database.
pub const LOCK_KEY: i64 = 0x7469_6465_6d61_726b;

const HOLDER_SQL: &str = "SELECT a.pid::int8, coalesce(a.application_name, ''), coalesce(host(a.client_addr), 'local socket'), \
     coalesce(to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), '') \
     FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
     WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
     AND l.classid = ($1 >> 32)::oid AND l.objid = ($1 & 4294967295)::oid AND l.objsubid = 1";

/// The lock and the task that keeps its session alive (see [`keepalive`]).
pub struct PgLock {
    keeper: Keeper<PgConnection>,
    /// The lock session's backend pid, for [`LockGuard::held_condition`].
    pid: i32,
}

impl PgLock {
    async fn new(mut conn: PgConnection) -> Result<PgLock> {
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| Error::db("could not take the migration lock", db_error(e)))?;
        Ok(PgLock {
            keeper: Keeper::start(conn, ping),
            pid,
        })
    }
}

pub async fn acquire(
    options: &PgConnectOptions,
    url: &DatabaseUrl,
    timeout: Duration,
    waiting: &mut dyn LockWait,
) -> Result<Box<dyn LockGuard>> {
    let mut conn = open(url, &options.clone().application_name("tidemark lock")).await?;
    let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(LOCK_KEY)
        .fetch_one(&mut conn)
        .await
        .map_err(|e| Error::db("could not take the migration lock", db_error(e)))?;
    if got {
        return Ok(Box::new(PgLock::new(conn).await?));
    }
    let holder = describe_holder(&mut conn).await;
    waiting.waiting(&holder);
    if timeout.is_zero() {
        return Err(Error::LockTimeout {
            waited: timeout,
            holder: format!(" (held by {holder})"),
        });
    }
    // lock_timeout applies to advisory locks too: wait on the server, woken the moment the
    // holder lets go.
    let ms = timeout.as_millis().clamp(1, i32::MAX as u128);
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("SET lock_timeout = {ms}")))
        .execute(&mut conn)
        .await
        .map_err(|e| Error::db("could not set lock_timeout", db_error(e)))?;
    let res = sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(LOCK_KEY)
        .execute(&mut conn)
        .await;
    match res {
        Ok(_) => {
            let _ = sqlx::raw_sql("RESET lock_timeout").execute(&mut conn).await;
            Ok(Box::new(PgLock::new(conn).await?))
        }
        Err(e) => {
            let db = db_error(e);
            if db.code.as_deref() == Some("55P03") {
                let holder = describe_holder(&mut conn).await;
                Err(Error::LockTimeout {
                    waited: timeout,
                    holder: format!(" (held by {holder})"),
                })
            } else {
                Err(Error::db("could not take the migration lock", db))
            }
        }
    }
}

async fn describe_holder(conn: &mut PgConnection) -> String {
    let row: Option<(i64, String, String, String)> = sqlx::query_as(HOLDER_SQL)
        .bind(LOCK_KEY)
        .fetch_optional(conn)
        .await
        .ok()
        .flatten();
    match row {
        Some((pid, app, addr, since)) => {
            let app = if app.is_empty() {
                String::new()
            } else {
                format!("{app}, ")
            };
            format!("{app}backend pid {pid} from {addr}, connected since {since} UTC")
        }
        None => "another session".to_string(),
    }
}

#[async_trait]
impl LockGuard for PgLock {
    async fn release(self: Box<Self>) -> Result<()> {
        if let Some(mut conn) = self.keeper.stop().await {
            let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(LOCK_KEY)
                .execute(&mut conn)
                .await;
            // Closing the session releases the lock whatever happened above.
            let _ = conn.close().await;
        }
        Ok(())
    }

    fn held_condition(&self) -> Option<String> {
        Some(format!(
            "EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = {} \
             AND classid = ({LOCK_KEY}::int8 >> 32)::oid AND objid = ({LOCK_KEY}::int8 & 4294967295)::oid AND objsubid = 1 \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))",
            self.pid
        ))
    }
}

fn ping(c: &mut PgConnection) -> Pin<Box<dyn Future<Output = bool> + Send + '_>> {
    Box::pin(async move { sqlx::raw_sql("SELECT 1").execute(c).await.is_ok() })
}
