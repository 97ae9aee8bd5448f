//! The migration lock: `GET_LOCK` on a connection of its own. The server releases a named lock
//! when its session ends, so a killed migrator leaves nothing behind.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Connection;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use tidemark_core::driver::{LockGuard, LockWait};
use tidemark_core::{DatabaseUrl, Error, Result};

use crate::driver::{db_error, open};
use sha2::Digest;
use tidemark_core::keepalive::Keeper;

/// The lock and the task that keeps its session alive (see [`Keeper`]).
pub struct MySqlLock {
    keeper: Keeper<MySqlConnection>,
    name: String,
    /// The lock session's connection id, for [`LockGuard::held_condition`].
    id: i64,
}

impl MySqlLock {
    async fn new(mut conn: MySqlConnection, name: String) -> Result<MySqlLock> {
        let id: i64 = sqlx::query_scalar("SELECT CAST(CONNECTION_ID() AS SIGNED)")
            .fetch_one(&mut conn)
            .await
            .map_err(|e| Error::db("could not take the migration lock", db_error(e)))?;
        Ok(MySqlLock {
            keeper: Keeper::start(conn, ping),
            name,
            id,
        })
    }
}

/// Lock names are server-wide (and at most 64 characters), so the database name goes in; a
/// longer one is cut on a character boundary and made unique by a hash of the whole name.
fn lock_name(database: &str) -> String {
    let name = format!("tidemark:{database}");
    if name.chars().count() <= 64 {
        return name;
    }
    let hash = hex::encode(sha2::Sha256::digest(name.as_bytes()));
    let head: String = name.chars().take(64 - 13).collect();
    format!("{head}~{}", &hash[..12])
}

pub async fn acquire(
    options: &MySqlConnectOptions,
    url: &DatabaseUrl,
    database: &str,
    timeout: Duration,
    waiting: &mut dyn LockWait,
) -> Result<Box<dyn LockGuard>> {
    let mut conn = open(url, options).await?;
    let name = lock_name(database);
    let got = get_lock(&mut conn, &name, 0.0).await?;
    if got {
        return Ok(Box::new(MySqlLock::new(conn, name).await?));
    }
    let holder = describe_holder(&mut conn, &name).await;
    waiting.waiting(&holder);
    if !timeout.is_zero() && get_lock(&mut conn, &name, timeout.as_secs_f64()).await? {
        return Ok(Box::new(MySqlLock::new(conn, name).await?));
    }
    let holder = describe_holder(&mut conn, &name).await;
    Err(Error::LockTimeout {
        waited: timeout,
        holder: format!(" (held by {holder})"),
    })
}

async fn get_lock(conn: &mut MySqlConnection, name: &str, seconds: f64) -> Result<bool> {
    let got: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, ?)")
        .bind(name)
        .bind(seconds)
        .fetch_one(conn)
        .await
        .map_err(|e| Error::db("could not take the migration lock", db_error(e)))?;
    Ok(got == Some(1))
}

async fn describe_holder(conn: &mut MySqlConnection, name: &str) -> String {
    let row: Option<(i64, String, String, i64)> = sqlx::query_as(
        "SELECT CAST(p.ID AS SIGNED), p.USER, p.HOST, CAST(p.TIME AS SIGNED) FROM information_schema.PROCESSLIST p WHERE p.ID = IS_USED_LOCK(?)",
    )
    .bind(name)
    .fetch_optional(conn)
    .await
    .ok()
    .flatten();
    match row {
        Some((id, user, host, secs)) => {
            format!("connection {id} of {user} from {host}, in its current state for {secs}s")
        }
        None => "another session".to_string(),
    }
}

#[async_trait]
impl LockGuard for MySqlLock {
    async fn release(self: Box<Self>) -> Result<()> {
        if let Some(mut conn) = self.keeper.stop().await {
            let _ = sqlx::query("SELECT RELEASE_LOCK(?)")
                .bind(&self.name)
                .execute(&mut conn)
                .await;
            let _ = conn.close().await;
        }
        Ok(())
    }

    fn held_condition(&self) -> Option<String> {
        // The name is tidemark's own (`tidemark:` and a database name); quotes doubled anyway.
        Some(format!(
            "IS_USED_LOCK('{}') = {}",
            self.name.replace('\\', "\\\\").replace('\'', "''"),
            self.id
        ))
    }
}

fn ping(c: &mut MySqlConnection) -> Pin<Box<dyn Future<Output = bool> + Send + '_>> {
    Box::pin(async move { sqlx::raw_sql("SELECT 1").execute(c).await.is_ok() })
}
