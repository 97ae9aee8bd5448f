//! `tidemark_releases`: the release records in the database, beside the history tables (and,
//! like them, never part of the schema fingerprint). One row per release, written once.

use tidemark::driver::Value;
use tidemark::{Dialect, Driver, Error, Result};

use crate::state::Release;

pub const TABLE: &str = "tidemark_releases";

fn ph(d: Dialect, n: usize) -> String {
    match d {
        Dialect::Postgres => format!("${n}"),
        _ => "?".into(),
    }
}

/// Create the table if it is missing (call under the migration lock).
pub async fn ensure(db: &mut dyn Driver) -> Result<()> {
    let suffix = if db.dialect() == Dialect::MySql {
        " DEFAULT CHARSET=utf8mb4"
    } else {
        ""
    };
    let sql = format!(
        "CREATE TABLE IF NOT EXISTS {TABLE} (\n\
         app VARCHAR(100) NOT NULL,\n\
         id VARCHAR(100) NOT NULL,\n\
         run_id VARCHAR(100) NOT NULL,\n\
         started_at VARCHAR(40) NOT NULL,\n\
         outcome VARCHAR(40) NOT NULL,\n\
         record TEXT NOT NULL,\n\
         PRIMARY KEY (app, id)\n)\
         {suffix}"
    );
    db.run(&sql)
        .await
        .map_err(|e| Error::db("could not create the releases table", e))
}

pub async fn insert(db: &mut dyn Driver, r: &Release) -> Result<()> {
    let d = db.dialect();
    let sql = format!(
        "INSERT INTO {TABLE} (app, id, run_id, started_at, outcome, record) VALUES ({}, {}, {}, {}, {}, {})",
        ph(d, 1),
        ph(d, 2),
        ph(d, 3),
        ph(d, 4),
        ph(d, 5),
        ph(d, 6)
    );
    let record = serde_json::to_string(r).unwrap_or_default();
    db.execute(
        &sql,
        &[
            r.app.as_str().into(),
            r.id.as_str().into(),
            r.run_id.as_str().into(),
            r.started_at.as_str().into(),
            r.outcome.name().into(),
            Value::from(record),
        ],
    )
    .await
    .map_err(|e| Error::db("could not record the release", e))?;
    Ok(())
}

/// The app's release records in the database (empty when the table does not exist).
pub async fn read(db: &mut dyn Driver, app: &str) -> Result<Vec<Release>> {
    let d = db.dialect();
    let exists_sql = match d {
        Dialect::Postgres => {
            format!("SELECT CASE WHEN to_regclass('{TABLE}') IS NULL THEN 0 ELSE 1 END")
        }
        Dialect::MySql => format!(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = '{TABLE}'"
        ),
        Dialect::Sqlite => {
            format!("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '{TABLE}'")
        }
    };
    let rows = db
        .query(&exists_sql, &[])
        .await
        .map_err(|e| Error::db("could not look for the releases table", e))?;
    if rows.first().and_then(|r| r.first()).and_then(Value::as_i64) != Some(1) {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT record FROM {TABLE} WHERE app = {} ORDER BY started_at, id",
        ph(d, 1)
    );
    let rows = db
        .query(&sql, &[app.into()])
        .await
        .map_err(|e| Error::db("could not read the releases", e))?;
    Ok(rows
        .into_iter()
        .filter_map(|r| r.into_iter().next().and_then(Value::into_text))
        .filter_map(|t| serde_json::from_str(&t).ok())
        .collect())
}
