//! sqlite_schema and pragma inspection into the neutral schema model.

use sqlx::Row;
use tidemark_core::driver::InspectOptions;
use tidemark_core::{Error, Result};
use tidemark_schema::{Column, Schema};

use crate::driver::{SqliteDriver, db_error};

const COLUMNS_SQL: &str = "SELECT m.name, p.name, p.type, p.\"notnull\", p.dflt_value \
     FROM sqlite_schema m JOIN pragma_table_xinfo(m.name) p \
     WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.name";

pub async fn inspect(driver: &mut SqliteDriver, _opts: &InspectOptions) -> Result<Schema> {
    let rows = sqlx::query(COLUMNS_SQL)
        .fetch_all(driver.conn())
        .await
        .map_err(|e| Error::db("could not inspect columns", db_error(e)))?;
    let mut schema = Schema::default();
    for r in rows {
        let table: String = r.get(0);
        let col: String = r.get(1);
        let ty: String = r.get(2);
        let notnull: i64 = r.get(3);
        schema.tables.entry(table).or_default().columns.insert(
            col,
            Column {
                data_type: ty.to_ascii_lowercase(),
                nullable: notnull == 0,
                default: r.get(4),
                ..Default::default()
            },
        );
    }
    Ok(schema)
}
