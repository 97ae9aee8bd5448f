//! information_schema inspection into the neutral schema model.

use sqlx::Row;
use tidemark_core::driver::InspectOptions;
use tidemark_core::{Error, Result};
use tidemark_schema::{Column, Schema};

use crate::driver::{MySqlDriver, db_error};

const COLUMNS_SQL: &str = "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT \
     FROM information_schema.COLUMNS c WHERE TABLE_SCHEMA = ? \
     AND EXISTS (SELECT 1 FROM information_schema.TABLES t WHERE t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME AND t.TABLE_TYPE = 'BASE TABLE') \
     ORDER BY TABLE_NAME, COLUMN_NAME";

pub async fn inspect(driver: &mut MySqlDriver, _opts: &InspectOptions) -> Result<Schema> {
    let db = driver.database().to_string();
    let rows = sqlx::query(COLUMNS_SQL)
        .bind(&db)
        .fetch_all(driver.conn())
        .await
        .map_err(|e| Error::db("could not inspect columns", db_error(e)))?;
    let mut schema = Schema::default();
    for r in rows {
        let table: String = r.get(0);
        let col: String = r.get(1);
        let nullable: String = r.get(3);
        schema.tables.entry(table).or_default().columns.insert(
            col,
            Column {
                data_type: r.get(2),
                nullable: nullable == "YES",
                default: r.get(4),
                ..Default::default()
            },
        );
    }
    Ok(schema)
}
