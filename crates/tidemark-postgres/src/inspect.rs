//! Catalog inspection into the neutral schema model.

use sqlx::Row;
use tidemark_core::driver::InspectOptions;
use tidemark_core::{Error, Result};
use tidemark_schema::{Column, Schema, Table};

use crate::driver::{PgDriver, db_error};

/// Schemas that are never the application's.
const SYSTEM_SCHEMAS: &str = "('pg_catalog', 'information_schema', 'pg_toast')";

const COLUMNS_SQL: &str = "SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, \
     pg_get_expr(d.adbin, d.adrelid) \
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
     LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum \
     WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') \
     AND n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast_temp%' \
     AND (cardinality($1::text[]) = 0 OR n.nspname = ANY($1::text[])) \
     ORDER BY 1, 2, 3";

fn display_name(schema: &str, name: &str) -> String {
    if schema == "public" {
        name.to_string()
    } else {
        format!("{schema}.{name}")
    }
}

pub async fn inspect(driver: &mut PgDriver, opts: &InspectOptions) -> Result<Schema> {
    let _ = SYSTEM_SCHEMAS;
    let mut schema = Schema::default();
    let rows = sqlx::query(COLUMNS_SQL)
        .bind(&opts.schemas)
        .fetch_all(driver.conn())
        .await
        .map_err(|e| Error::db("could not inspect columns", db_error(e)))?;
    for r in rows {
        let (ns, table, col): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        let t: &mut Table = schema.tables.entry(display_name(&ns, &table)).or_default();
        t.columns.insert(
            col,
            Column {
                data_type: r.get(3),
                nullable: !r.get::<bool, _>(4),
                default: r.get(5),
                ..Default::default()
            },
        );
    }
    Ok(schema)
}
