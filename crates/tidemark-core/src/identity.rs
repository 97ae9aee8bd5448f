//! The identity of a database: a random id tidemark stores in the database itself
//! (`tidemark_identity`) the first time it changes or backs it up. Backups are filed under it,
//! never under a name or a path as typed: two projects that both say `sqlite://app.db`, or one
//! server's `shop` and another's, are different databases, and the same database reached as
//! `localhost` or `127.0.0.1` is the same one.
//!
//! Beside it, the *server identity* says where the database lives (PostgreSQL's
//! `system_identifier` and the database oid, MariaDB's `server_id`, host and port or MySQL's
//! `server_uuid`, with the schema; SQLite's canonical file path). It is recorded, not used as a
//! key: it changes when a database is restored by dropping and creating it again (a new oid) or
//! when a file moves, while the id travels with the data.

use crate::driver::{Dialect, Driver, Value};
use crate::error::{Error, Result};

pub const IDENTITY_TABLE: &str = "tidemark_identity";

/// `3f2a…` : 32 lowercase hex digits (128 random bits).
pub fn is_database_id(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A fresh random id from the operating system's generator.
pub fn new_id() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| {
        Error::Tool(format!(
            "could not get random bytes for the database's identity: {e}"
        ))
    })?;
    Ok(hex::encode(bytes))
}

fn db_err(context: &str) -> impl FnOnce(crate::driver::DbError) -> Error + '_ {
    move |e| Error::db(context, e)
}

fn create_sql(dialect: Dialect) -> String {
    // One row. The id is short text on every database (MySQL cannot key a TEXT column).
    let (id, ts, suffix) = match dialect {
        Dialect::Postgres => ("TEXT", "TIMESTAMP", ""),
        Dialect::MySql => ("VARCHAR(64)", "DATETIME(6)", " DEFAULT CHARSET=utf8mb4"),
        Dialect::Sqlite => ("TEXT", "TEXT", ""),
    };
    format!(
        "CREATE TABLE IF NOT EXISTS {IDENTITY_TABLE} (\n\
         database_id {id} NOT NULL PRIMARY KEY,\n\
         created_at {ts} NOT NULL,\n\
         server_identity TEXT NULL\n)\
         {suffix}"
    )
}

fn now_sql(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => "(clock_timestamp() AT TIME ZONE 'UTC')",
        Dialect::MySql => "UTC_TIMESTAMP(6)",
        Dialect::Sqlite => "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
    }
}

fn ph(dialect: Dialect, n: usize) -> String {
    match dialect {
        Dialect::Postgres => format!("${n}"),
        _ => "?".to_string(),
    }
}

async fn table_exists(driver: &mut dyn Driver) -> Result<bool> {
    let sql = match driver.dialect() {
        Dialect::Postgres => {
            format!("SELECT CASE WHEN to_regclass('{IDENTITY_TABLE}') IS NULL THEN 0 ELSE 1 END")
        }
        Dialect::MySql => format!(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = '{IDENTITY_TABLE}'"
        ),
        Dialect::Sqlite => format!(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '{IDENTITY_TABLE}'"
        ),
    };
    let rows = driver
        .query(&sql, &[])
        .await
        .map_err(db_err("could not look for tidemark's identity table"))?;
    Ok(rows
        .first()
        .and_then(|r| r.first())
        .and_then(Value::as_i64)
        .unwrap_or(0)
        > 0)
}

/// The database's id, or `None` when it has none yet. Creates nothing (read-only commands use
/// it).
pub async fn read(driver: &mut dyn Driver) -> Result<Option<String>> {
    if !table_exists(driver).await? {
        return Ok(None);
    }
    let rows = driver
        .query(
            &format!("SELECT database_id FROM {IDENTITY_TABLE} ORDER BY created_at, database_id"),
            &[],
        )
        .await
        .map_err(db_err("could not read the database's identity"))?;
    Ok(rows
        .into_iter()
        .next()
        .and_then(|r| r.into_iter().next())
        .and_then(Value::into_text))
}

/// Where the database lived when its identity was assigned (or when tidemark last restored it),
/// if that differs from where it lives now: it has been moved, renamed or copied since. A copy
/// (a staging database made from production's dump) carries the original's id, so its backups
/// would be filed with the original's; `status` and `backup` say so.
pub async fn moved(driver: &mut dyn Driver) -> Result<Option<(String, String)>> {
    if !table_exists(driver).await? {
        return Ok(None);
    }
    let rows = driver
        .query(
            &format!(
                "SELECT server_identity FROM {IDENTITY_TABLE} ORDER BY created_at, database_id"
            ),
            &[],
        )
        .await
        .map_err(db_err("could not read the database's identity"))?;
    let Some(recorded) = text(&rows, 0) else {
        return Ok(None);
    };
    let live = server_identity(driver).await?;
    Ok((recorded != live).then_some((recorded, live)))
}

/// The database's id, assigned now if it has none. The caller holds the migration lock (two
/// tidemarks must not both assign one, and concurrent `CREATE TABLE IF NOT EXISTS` is not safe
/// on every database).
pub async fn ensure(driver: &mut dyn Driver) -> Result<String> {
    if let Some(id) = read(driver).await? {
        return Ok(id);
    }
    let id = new_id()?;
    assign(driver, &id).await?;
    Ok(id)
}

/// Make `id` the database's identity, replacing whatever the table holds. A restore needs it:
/// the dump brings the identity of the database it was taken of, but the restored database
/// stays the one it was.
pub async fn assign(driver: &mut dyn Driver, id: &str) -> Result<()> {
    if !is_database_id(id) {
        return Err(Error::Usage(format!("`{id}` is not a database id")));
    }
    let d = driver.dialect();
    driver
        .run(&create_sql(d))
        .await
        .map_err(db_err("could not create tidemark's identity table"))?;
    let server = server_identity(driver).await.ok();
    if read(driver).await?.as_deref() == Some(id) {
        // Still the same database; a restore may have created it again (PostgreSQL: a new
        // oid), which is tidemark's own doing, not a copy: record where it lives now.
        if let Some(server) = server {
            driver
                .execute(
                    &format!("UPDATE {IDENTITY_TABLE} SET server_identity = {}", ph(d, 1)),
                    &[server.into()],
                )
                .await
                .map_err(db_err("could not write the database's identity"))?;
        }
        return Ok(());
    }
    driver
        .execute(&format!("DELETE FROM {IDENTITY_TABLE}"), &[])
        .await
        .map_err(db_err("could not write the database's identity"))?;
    driver
        .execute(
            &format!(
                "INSERT INTO {IDENTITY_TABLE} (database_id, created_at, server_identity) VALUES ({}, {}, {})",
                ph(d, 1),
                now_sql(d),
                ph(d, 2)
            ),
            &[id.into(), server.into()],
        )
        .await
        .map_err(db_err("could not write the database's identity"))?;
    Ok(())
}

/// Undo an identity assigned just now, when what it was assigned for (a backup) failed: a
/// failed run leaves the database as it found it.
pub async fn remove(driver: &mut dyn Driver) -> Result<()> {
    driver
        .run(&format!("DROP TABLE IF EXISTS {IDENTITY_TABLE}"))
        .await
        .map_err(db_err("could not drop tidemark's identity table"))
}

/// [`ensure`] for commands that do not hold the lock: reads first, and takes the lock only to
/// assign an id.
pub async fn ensure_locked(
    driver: &mut dyn Driver,
    lock_timeout: std::time::Duration,
) -> Result<String> {
    if let Some(id) = read(driver).await? {
        return Ok(id);
    }
    let guard = driver.lock(lock_timeout, &mut ()).await?;
    let id = ensure(driver).await;
    guard.release().await?;
    id
}

fn text(rows: &[Vec<Value>], col: usize) -> Option<String> {
    rows.first()
        .and_then(|r| r.get(col))
        .cloned()
        .and_then(Value::into_text)
}

/// Where the database lives, e.g. `postgres system_identifier=7714… oid=16384 database=shop`,
/// `mariadb server_id=1 host=db1:3306 schema=shop`, `mysql server_uuid=… schema=shop`,
/// `sqlite file=/srv/app/app.db`.
pub async fn server_identity(driver: &mut dyn Driver) -> Result<String> {
    match driver.dialect() {
        Dialect::Postgres => {
            let rows = driver
                .query(
                    "SELECT oid::bigint, current_database()::text FROM pg_database WHERE datname = current_database()",
                    &[],
                )
                .await
                .map_err(db_err("could not read the database's oid"))?;
            let oid = rows
                .first()
                .and_then(|r| r.first())
                .and_then(Value::as_i64)
                .map(|o| o.to_string())
                .unwrap_or_else(|| "?".into());
            let name = text(&rows, 1).unwrap_or_default();
            // pg_control_system() may be revoked from ordinary roles; the oid and name still
            // say something then. Asked without raising an error, which would abort a
            // transaction the caller may have open.
            let system = driver
                .query(
                    "SELECT CASE WHEN has_function_privilege('pg_control_system()', 'EXECUTE') \
                     THEN (SELECT system_identifier::text FROM pg_control_system()) END",
                    &[],
                )
                .await
                .ok()
                .and_then(|r| text(&r, 0))
                .unwrap_or_else(|| "unreadable".into());
            Ok(format!(
                "postgres system_identifier={system} oid={oid} database={name}"
            ))
        }
        Dialect::MySql => {
            // MariaDB has no server_uuid (checked on 10.11: "Unknown system variable"); its
            // server_id is 1 unless configured, so host and port go with it.
            if driver.caps().flavor.eq_ignore_ascii_case("MariaDB") {
                let rows = driver
                    .query(
                        "SELECT CAST(@@server_id AS CHAR), @@hostname, CAST(@@port AS CHAR), DATABASE()",
                        &[],
                    )
                    .await
                    .map_err(db_err("could not read the server's identity"))?;
                Ok(format!(
                    "mariadb server_id={} host={}:{} schema={}",
                    text(&rows, 0).unwrap_or_default(),
                    text(&rows, 1).unwrap_or_default(),
                    text(&rows, 2).unwrap_or_default(),
                    text(&rows, 3).unwrap_or_default()
                ))
            } else {
                let rows = driver
                    .query("SELECT @@server_uuid, DATABASE()", &[])
                    .await
                    .map_err(db_err("could not read the server's identity"))?;
                Ok(format!(
                    "mysql server_uuid={} schema={}",
                    text(&rows, 0).unwrap_or_default(),
                    text(&rows, 1).unwrap_or_default()
                ))
            }
        }
        Dialect::Sqlite => {
            let rows = driver
                .query("PRAGMA database_list", &[])
                .await
                .map_err(db_err("could not read the database's file name"))?;
            let file = rows
                .into_iter()
                .find(|r| r.get(1).cloned().and_then(Value::into_text).as_deref() == Some("main"))
                .and_then(|r| r.into_iter().nth(2))
                .and_then(Value::into_text)
                .unwrap_or_default();
            if file.is_empty() {
                return Ok("sqlite in-memory".into());
            }
            let canonical = std::fs::canonicalize(&file)
                .map(|p| p.display().to_string())
                .unwrap_or(file);
            Ok(format!("sqlite file={canonical}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_random_and_recognisable() {
        let a = new_id().unwrap();
        let b = new_id().unwrap();
        assert_ne!(a, b);
        assert!(is_database_id(&a), "{a}");
        assert!(!is_database_id("20261123T184627Z-81ab"), "a backup id");
        assert!(!is_database_id("postgres-shop"), "an old folder name");
        assert!(!is_database_id(&a.to_uppercase()));
        assert!(!is_database_id(&a[..31]));
    }
}
