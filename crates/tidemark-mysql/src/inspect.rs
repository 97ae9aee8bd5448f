//! information_schema inspection into the neutral schema model.
//!
//! One query per kind of object for the whole database (never one per table), all filtered
//! by `DATABASE()`, so nothing depends on the database's name. The SQL works on MariaDB ≥ 10.6
//! and MySQL ≥ 8.0; where the two catalogs differ (check constraints, index expressions, view
//! algorithm) the query is chosen by [`Server`]. Everything the servers print is normalised in
//! [`crate::normalize`].

use std::collections::BTreeMap;

use sqlx::mysql::MySqlRow;
use sqlx::{AssertSqlSafe, Row};
use tidemark_core::driver::{Driver, InspectOptions};
use tidemark_core::{Error, Result};
use tidemark_schema::{
    Check, Column, ForeignKey, Function, Index, Schema, Sequence, TIDEMARK_TABLES, Table, Trigger,
    Unique, View,
};

use crate::driver::{MySqlDriver, db_error, quote_ident};
use crate::normalize::{self as norm, Server};

const DATABASE_SQL: &str = "SELECT DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA \
     WHERE SCHEMA_NAME = DATABASE()";

const TABLES_SQL: &str = "SELECT TABLE_NAME, TABLE_TYPE, ENGINE, TABLE_COLLATION, CREATE_OPTIONS, TABLE_COMMENT \
     FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME";

const COLUMNS_SQL: &str = "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA, \
     GENERATION_EXPRESSION, COLLATION_NAME, COLUMN_COMMENT \
     FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME, ORDINAL_POSITION";

/// Index parts. `EXPRESSION` (functional key parts) exists on MySQL ≥ 8.0.13 only.
const STATISTICS_SQL: &str = "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART, COLLATION, INDEX_TYPE, \
     NULL AS EXPRESSION \
     FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() \
     ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX";
const STATISTICS_SQL_MYSQL8: &str = "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART, COLLATION, INDEX_TYPE, \
     EXPRESSION \
     FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() \
     ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX";

/// MariaDB keeps the table and the level in CHECK_CONSTRAINTS (a column-level check is named
/// after its column, so names are unique per table only).
const CHECKS_SQL_MARIADB: &str = "SELECT TABLE_NAME, CONSTRAINT_NAME, CHECK_CLAUSE, LEVEL = 'Column', 'YES' \
     FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE() \
     ORDER BY TABLE_NAME, CONSTRAINT_NAME";
/// MySQL (≥ 8.0.16) names checks uniquely per schema and has the table in TABLE_CONSTRAINTS.
const CHECKS_SQL_MYSQL: &str = "SELECT tc.TABLE_NAME, tc.CONSTRAINT_NAME, cc.CHECK_CLAUSE, 0, tc.ENFORCED \
     FROM information_schema.TABLE_CONSTRAINTS tc \
     JOIN information_schema.CHECK_CONSTRAINTS cc \
       ON cc.CONSTRAINT_SCHEMA = tc.CONSTRAINT_SCHEMA AND cc.CONSTRAINT_NAME = tc.CONSTRAINT_NAME \
     WHERE tc.TABLE_SCHEMA = DATABASE() AND tc.CONSTRAINT_TYPE = 'CHECK' \
     ORDER BY tc.TABLE_NAME, tc.CONSTRAINT_NAME";

const FOREIGN_KEYS_SQL: &str = "SELECT k.TABLE_NAME, k.CONSTRAINT_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_SCHEMA, \
     k.REFERENCED_TABLE_NAME, k.REFERENCED_COLUMN_NAME, r.UPDATE_RULE, r.DELETE_RULE \
     FROM information_schema.KEY_COLUMN_USAGE k \
     JOIN information_schema.REFERENTIAL_CONSTRAINTS r \
       ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.TABLE_NAME = k.TABLE_NAME \
      AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME \
     WHERE k.TABLE_SCHEMA = DATABASE() AND k.REFERENCED_TABLE_NAME IS NOT NULL \
     ORDER BY k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION";

/// `ALGORITHM` is a MariaDB column; MySQL keeps it out of information_schema.
const VIEWS_SQL_MARIADB: &str = "SELECT TABLE_NAME, VIEW_DEFINITION, CHECK_OPTION, SECURITY_TYPE, ALGORITHM \
     FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME";
const VIEWS_SQL_MYSQL: &str = "SELECT TABLE_NAME, VIEW_DEFINITION, CHECK_OPTION, SECURITY_TYPE, NULL \
     FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME";

const TRIGGERS_SQL: &str = "SELECT EVENT_OBJECT_TABLE, TRIGGER_NAME, ACTION_TIMING, EVENT_MANIPULATION, \
     ACTION_ORIENTATION, ACTION_ORDER, ACTION_STATEMENT \
     FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() \
     ORDER BY EVENT_OBJECT_TABLE, TRIGGER_NAME";

const ROUTINES_SQL: &str = "SELECT ROUTINE_NAME, ROUTINE_TYPE, DTD_IDENTIFIER, ROUTINE_BODY, ROUTINE_DEFINITION, \
     IS_DETERMINISTIC, SQL_DATA_ACCESS, SECURITY_TYPE \
     FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE() \
     ORDER BY ROUTINE_NAME, ROUTINE_TYPE";

/// Parameters in order; position 0 is a function's result, which ROUTINES already gives.
const PARAMETERS_SQL: &str = "SELECT SPECIFIC_NAME, ROUTINE_TYPE, PARAMETER_MODE, PARAMETER_NAME, DTD_IDENTIFIER \
     FROM information_schema.PARAMETERS WHERE SPECIFIC_SCHEMA = DATABASE() AND ORDINAL_POSITION > 0 \
     ORDER BY SPECIFIC_NAME, ROUTINE_TYPE, ORDINAL_POSITION";

/// A text column, whatever type the server sends it as (MySQL 8 returns some information_schema
/// columns as binary strings); `None` for NULL.
fn text(row: &MySqlRow, i: usize) -> Option<String> {
    if let Ok(v) = row.try_get::<Option<String>, _>(i) {
        return v;
    }
    match row.try_get::<Option<Vec<u8>>, _>(i) {
        Ok(v) => v.map(|b| String::from_utf8_lossy(&b).into_owned()),
        Err(_) => None,
    }
}

/// A number column, whatever integer type (or text) the server sends it as.
fn int(row: &MySqlRow, i: usize) -> Option<i64> {
    if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
        return v;
    }
    if let Ok(v) = row.try_get::<Option<u64>, _>(i) {
        return v.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
    }
    if let Ok(v) = row.try_get::<Option<i32>, _>(i) {
        return v.map(i64::from);
    }
    if let Ok(v) = row.try_get::<Option<u32>, _>(i) {
        return v.map(i64::from);
    }
    if let Ok(v) = row.try_get::<Option<i8>, _>(i) {
        return v.map(i64::from);
    }
    if let Ok(v) = row.try_get::<Option<u8>, _>(i) {
        return v.map(i64::from);
    }
    text(row, i).and_then(|t| t.trim().parse().ok())
}

fn text_or_empty(row: &MySqlRow, i: usize) -> String {
    text(row, i).unwrap_or_default()
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

async fn fetch(driver: &mut MySqlDriver, what: &str, sql: &'static str) -> Result<Vec<MySqlRow>> {
    sqlx::query(sql)
        .fetch_all(driver.conn())
        .await
        .map_err(|e| Error::db(format!("could not inspect {what}"), db_error(e)))
}

fn is_tidemark_table(name: &str) -> bool {
    TIDEMARK_TABLES.contains(&name)
}

/// Insert objects keyed by name or by definition. Two objects can share a definition key (the
/// same unique key twice, two foreign keys on one column): they are sorted by their full
/// definition first and the later ones get ` #2`, ` #3`, so the keys do not depend on the order
/// the database happens to list them in.
fn insert_all<V>(map: &mut BTreeMap<String, V>, mut items: Vec<(String, String, V)>) {
    items.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    for (key, _, value) in items {
        let mut candidate = key.clone();
        let mut n = 2;
        while map.contains_key(&candidate) {
            candidate = format!("{key} #{n}");
            n += 1;
        }
        map.insert(candidate, value);
    }
}

pub async fn inspect(driver: &mut MySqlDriver, _opts: &InspectOptions) -> Result<Schema> {
    let server = Server::new(&driver.caps().flavor, &driver.caps().server_version);
    let database = driver.database().to_string();
    let db_collation = fetch(driver, "the database", DATABASE_SQL)
        .await?
        .first()
        .and_then(|r| text(r, 0));
    let mut schema = Schema::default();
    let mut sequence_names = Vec::new();

    for r in fetch(driver, "tables", TABLES_SQL).await? {
        let name = text_or_empty(&r, 0);
        if is_tidemark_table(&name) {
            continue;
        }
        let kind = text_or_empty(&r, 1);
        let mut table = Table::default();
        match kind.as_str() {
            "BASE TABLE" => {}
            "SYSTEM VERSIONED" => {
                table
                    .options
                    .insert("system_versioning".into(), "yes".into());
            }
            "SEQUENCE" => {
                sequence_names.push(name);
                continue;
            }
            // Views are read from information_schema.VIEWS; temporary tables belong to a
            // session, not to the schema.
            "VIEW" | "TEMPORARY" => continue,
            other => {
                table
                    .options
                    .insert("table_type".into(), other.to_lowercase());
            }
        }
        if let Some(engine) = non_empty(text(&r, 2)) {
            table.options.insert("engine".into(), engine.to_lowercase());
        }
        // The collation implies the character set, so it alone says both.
        if let Some(collation) = text(&r, 3).filter(|c| Some(c) != db_collation.as_ref()) {
            table.options.insert("collation".into(), collation);
        }
        table
            .options
            .extend(norm::table_options(&text_or_empty(&r, 4)));
        table.comment = non_empty(text(&r, 5));
        schema.tables.insert(name, table);
    }

    for r in fetch(driver, "columns", COLUMNS_SQL).await? {
        let table_name = text_or_empty(&r, 0);
        let Some(table) = schema.tables.get_mut(&table_name) else {
            continue; // a view's or a sequence's columns
        };
        let data_type = norm::column_type(&text_or_empty(&r, 2));
        let extra = norm::parse_extra(&text_or_empty(&r, 5));
        let mut column = Column {
            nullable: text(&r, 3).as_deref() == Some("YES"),
            identity: extra.auto_increment.then(|| "auto_increment".to_string()),
            comment: non_empty(text(&r, 8)),
            ..Default::default()
        };
        match extra.generated {
            Some(kind) => {
                let expr = norm::squash(&text_or_empty(&r, 6));
                column.generated = Some(format!("{kind}: {expr}"));
            }
            None => {
                column.default = norm::default_value(
                    text(&r, 4).as_deref(),
                    server,
                    extra.default_generated,
                    &data_type,
                );
            }
        }
        // Compared with the database's default, not the table's: `ALTER TABLE … COLLATE x`
        // changes the table's default for columns added later and leaves the existing
        // columns as they were, so it must not read as a change of every column.
        let collation = text(&r, 7);
        if collation.is_some() && collation != db_collation {
            column.collation = collation;
        }
        if let Some(on_update) = extra.on_update {
            column.options.insert("on_update".into(), on_update);
        }
        if extra.invisible {
            column.options.insert("invisible".into(), "yes".into());
        }
        if !extra.other.is_empty() {
            column.options.insert("extra".into(), extra.other.join(" "));
        }
        column.data_type = data_type;
        table.columns.insert(text_or_empty(&r, 1), column);
    }

    read_indexes(driver, server, &mut schema).await?;
    read_checks(driver, server, &mut schema).await?;
    read_foreign_keys(driver, &database, &mut schema).await?;
    read_views(driver, server, &database, &mut schema).await?;
    read_triggers(driver, &mut schema).await?;
    read_routines(driver, &mut schema).await?;
    for name in sequence_names {
        let sequence = read_sequence(driver, &name).await?;
        schema.sequences.insert(name, sequence);
    }
    Ok(schema)
}

/// One key part as information_schema.STATISTICS lists it.
struct Part {
    column: Option<String>,
    sub_part: Option<i64>,
    descending: bool,
    expression: Option<String>,
}

impl Part {
    fn is_plain_column(&self) -> bool {
        self.column.is_some() && self.sub_part.is_none() && !self.descending
    }

    /// `email`, `name(10)`, `name(10) desc`, `(lower(email))`.
    fn render(&self) -> String {
        let mut s = match (&self.expression, &self.column) {
            (Some(expr), _) => norm::parenthesize(expr),
            (None, Some(column)) => column.clone(),
            (None, None) => "(unknown key part)".to_string(),
        };
        if let Some(n) = self.sub_part {
            s.push_str(&format!("({n})"));
        }
        if self.descending {
            s.push_str(" desc");
        }
        s
    }
}

struct RawIndex {
    unique: bool,
    index_type: String,
    parts: Vec<Part>,
}

/// Primary keys, unique keys and the other indexes, from one STATISTICS query.
///
/// A unique index over whole columns in the default (B-tree) method is a unique constraint;
/// with a prefix, an expression, a descending part or another method it is an index that
/// happens to be unique. The names MySQL makes up for unnamed unique keys (`email`,
/// `email_2`) are replaced by the definition.
async fn read_indexes(driver: &mut MySqlDriver, server: Server, schema: &mut Schema) -> Result<()> {
    let sql = if server.mysql_at_least((8, 0, 13)) {
        STATISTICS_SQL_MYSQL8
    } else {
        STATISTICS_SQL
    };
    let mut indexes: BTreeMap<(String, String), RawIndex> = BTreeMap::new();
    for r in fetch(driver, "indexes", sql).await? {
        let key = (text_or_empty(&r, 0), text_or_empty(&r, 1));
        if !schema.tables.contains_key(&key.0) {
            continue;
        }
        let index = indexes.entry(key).or_insert_with(|| RawIndex {
            unique: int(&r, 2) == Some(0),
            index_type: text_or_empty(&r, 6).to_uppercase(),
            parts: Vec::new(),
        });
        index.parts.push(Part {
            column: text(&r, 3),
            sub_part: int(&r, 4),
            descending: text(&r, 5).as_deref() == Some("D"),
            expression: non_empty(text(&r, 7)),
        });
    }
    let mut uniques: BTreeMap<String, Vec<(String, String, Unique)>> = BTreeMap::new();
    for ((table_name, index_name), index) in indexes {
        let Some(table) = schema.tables.get_mut(&table_name) else {
            continue;
        };
        let plain = index.parts.iter().all(Part::is_plain_column);
        let columns: Vec<String> = index.parts.iter().map(Part::render).collect();
        if index_name == "PRIMARY" {
            table.primary_key = Some(columns);
        } else if index.unique && plain && index.index_type == "BTREE" {
            let generated = columns
                .first()
                .is_some_and(|first| norm::is_generated_unique_name(&index_name, first));
            let key = if generated {
                format!("unique({})", columns.join(", "))
            } else {
                index_name.clone()
            };
            let definition = columns.join(", ");
            uniques.entry(table_name).or_default().push((
                key,
                definition,
                Unique {
                    name: (!generated).then_some(index_name),
                    columns,
                    ..Default::default()
                },
            ));
        } else {
            table.indexes.insert(
                index_name,
                Index {
                    unique: index.unique,
                    parts: columns,
                    method: (index.index_type != "BTREE").then(|| index.index_type.to_lowercase()),
                    ..Default::default()
                },
            );
        }
    }
    for (table_name, items) in uniques {
        if let Some(table) = schema.tables.get_mut(&table_name) {
            insert_all(&mut table.uniques, items);
        }
    }
    Ok(())
}

async fn read_checks(driver: &mut MySqlDriver, server: Server, schema: &mut Schema) -> Result<()> {
    let sql = if server.mariadb {
        CHECKS_SQL_MARIADB
    } else if server.mysql_at_least((8, 0, 16)) {
        CHECKS_SQL_MYSQL
    } else {
        return Ok(()); // older MySQL parses CHECK and forgets it
    };
    let mut checks: BTreeMap<String, Vec<(String, String, Check)>> = BTreeMap::new();
    for r in fetch(driver, "check constraints", sql).await? {
        let table_name = text_or_empty(&r, 0);
        if !schema.tables.contains_key(&table_name) {
            continue;
        }
        let name = text_or_empty(&r, 1);
        let mut expression = norm::squash(&text_or_empty(&r, 2));
        // MySQL can keep a check without enforcing it; that is part of its definition.
        if text(&r, 4).as_deref() == Some("NO") {
            expression.push_str(" not enforced");
        }
        let column_level = int(&r, 3).unwrap_or(0) != 0;
        let generated = norm::is_generated_check_name(&name, &table_name, server, column_level);
        let key = if generated {
            format!("check({expression})")
        } else {
            name.clone()
        };
        checks.entry(table_name).or_default().push((
            key,
            expression.clone(),
            Check {
                name: (!generated).then_some(name),
                expression,
                ..Default::default()
            },
        ));
    }
    for (table_name, items) in checks {
        if let Some(table) = schema.tables.get_mut(&table_name) {
            insert_all(&mut table.checks, items);
        }
    }
    Ok(())
}

async fn read_foreign_keys(
    driver: &mut MySqlDriver,
    database: &str,
    schema: &mut Schema,
) -> Result<()> {
    let mut fks: BTreeMap<(String, String), ForeignKey> = BTreeMap::new();
    for r in fetch(driver, "foreign keys", FOREIGN_KEYS_SQL).await? {
        let key = (text_or_empty(&r, 0), text_or_empty(&r, 1));
        if !schema.tables.contains_key(&key.0) {
            continue;
        }
        let fk = fks.entry(key).or_insert_with(|| {
            let ref_schema = text_or_empty(&r, 3);
            let ref_table = text_or_empty(&r, 4);
            ForeignKey {
                // Qualified only when it points into another database, so that the same
                // schema under another database name reads the same.
                ref_table: if ref_schema == database {
                    ref_table
                } else {
                    format!("{ref_schema}.{ref_table}")
                },
                on_update: norm::referential_action(&text_or_empty(&r, 6)),
                on_delete: norm::referential_action(&text_or_empty(&r, 7)),
                ..Default::default()
            }
        });
        fk.columns.push(text_or_empty(&r, 2));
        fk.ref_columns.push(text_or_empty(&r, 5));
    }
    let mut by_table: BTreeMap<String, Vec<(String, String, ForeignKey)>> = BTreeMap::new();
    for ((table_name, name), mut fk) in fks {
        let generated = norm::is_generated_fk_name(&name, &table_name);
        let key = if generated {
            format!("foreign key({})", fk.columns.join(", "))
        } else {
            name.clone()
        };
        let definition = format!(
            "{}({}) {:?} {:?}",
            fk.ref_table,
            fk.ref_columns.join(", "),
            fk.on_delete,
            fk.on_update
        );
        fk.name = (!generated).then_some(name);
        by_table
            .entry(table_name)
            .or_default()
            .push((key, definition, fk));
    }
    for (table_name, items) in by_table {
        if let Some(table) = schema.tables.get_mut(&table_name) {
            insert_all(&mut table.foreign_keys, items);
        }
    }
    Ok(())
}

async fn read_views(
    driver: &mut MySqlDriver,
    server: Server,
    database: &str,
    schema: &mut Schema,
) -> Result<()> {
    let sql = if server.mariadb {
        VIEWS_SQL_MARIADB
    } else {
        VIEWS_SQL_MYSQL
    };
    for r in fetch(driver, "views", sql).await? {
        let name = text_or_empty(&r, 0);
        let mut definition = String::new();
        if let Some(algorithm) = text(&r, 4).filter(|a| !a.eq_ignore_ascii_case("UNDEFINED")) {
            definition.push_str(&format!("algorithm={} ", algorithm.to_lowercase()));
        }
        if text(&r, 3).is_some_and(|s| s.eq_ignore_ascii_case("INVOKER")) {
            definition.push_str("sql security invoker ");
        }
        definition.push_str(&norm::squash(&norm::strip_qualifier(
            &text_or_empty(&r, 1),
            database,
        )));
        if let Some(check) = text(&r, 2).filter(|c| !c.eq_ignore_ascii_case("NONE")) {
            definition.push_str(&format!(" with {} check option", check.to_lowercase()));
        }
        schema.views.insert(
            name,
            View {
                definition,
                materialized: false,
            },
        );
    }
    Ok(())
}

async fn read_triggers(driver: &mut MySqlDriver, schema: &mut Schema) -> Result<()> {
    for r in fetch(driver, "triggers", TRIGGERS_SQL).await? {
        let table = text_or_empty(&r, 0);
        if is_tidemark_table(&table) {
            continue;
        }
        let name = text_or_empty(&r, 1);
        // The firing order matters only where a table has several triggers for one event.
        let order = match int(&r, 5) {
            Some(n) if n > 1 => format!(" (order {n})"),
            _ => String::new(),
        };
        let definition = format!(
            "{} {} for each {}{order} {}",
            text_or_empty(&r, 2).to_lowercase(),
            text_or_empty(&r, 3).to_lowercase(),
            text_or_empty(&r, 4).to_lowercase(),
            norm::squash(&text_or_empty(&r, 6)),
        );
        schema
            .triggers
            .insert(format!("{table}.{name}"), Trigger { table, definition });
    }
    Ok(())
}

/// Stored functions and procedures, keyed `name(arguments)` like PostgreSQL's functions:
/// `add_tax(amount decimal(10,2))`, `archive(days int, out moved int)`.
async fn read_routines(driver: &mut MySqlDriver, schema: &mut Schema) -> Result<()> {
    let mut params: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for r in fetch(driver, "routine parameters", PARAMETERS_SQL).await? {
        let mode = text_or_empty(&r, 2).to_lowercase();
        let mut param = String::new();
        if !mode.is_empty() && mode != "in" {
            param.push_str(&mode);
            param.push(' ');
        }
        param.push_str(&text_or_empty(&r, 3));
        param.push(' ');
        param.push_str(&norm::column_type(&text_or_empty(&r, 4)));
        params
            .entry((text_or_empty(&r, 0), text_or_empty(&r, 1)))
            .or_default()
            .push(param);
    }
    let mut items = Vec::new();
    for r in fetch(driver, "routines", ROUTINES_SQL).await? {
        let name = text_or_empty(&r, 0);
        let kind = text_or_empty(&r, 1);
        let args = params
            .get(&(name.clone(), kind.clone()))
            .map(|p| p.join(", "))
            .unwrap_or_default();
        let returns = match text(&r, 2) {
            Some(t) if !t.is_empty() => norm::column_type(&t),
            _ => "void".to_string(),
        };
        let deterministic = if text(&r, 5).as_deref() == Some("YES") {
            "deterministic"
        } else {
            "not deterministic"
        };
        let mut volatility = format!("{deterministic}, {}", text_or_empty(&r, 6).to_lowercase());
        if text(&r, 7).is_some_and(|s| s.eq_ignore_ascii_case("INVOKER")) {
            volatility.push_str(", sql security invoker");
        }
        let body = match text(&r, 4) {
            Some(b) => norm::squash(&b),
            // MySQL hides the body from users who may not see it.
            None => "(body not visible to this user)".to_string(),
        };
        let function = Function {
            kind: kind.to_lowercase(),
            returns,
            language: text_or_empty(&r, 3).to_lowercase(),
            body,
            volatility: Some(volatility),
        };
        let key = format!("{name}({args})");
        items.push((key, kind, function));
    }
    insert_all(&mut schema.functions, items);
    Ok(())
}

/// A MariaDB sequence's definition (not its current value), read from the sequence itself:
/// information_schema has no SEQUENCES table before MariaDB 11.
async fn read_sequence(driver: &mut MySqlDriver, name: &str) -> Result<Sequence> {
    let sql = format!(
        "SELECT start_value, increment, minimum_value, maximum_value, cycle_option FROM {}",
        quote_ident(name)
    );
    let row = sqlx::query(AssertSqlSafe(sql))
        .fetch_optional(driver.conn())
        .await
        .map_err(|e| Error::db(format!("could not inspect sequence {name}"), db_error(e)))?;
    let get = |i| row.as_ref().and_then(|r| int(r, i)).unwrap_or(0);
    Ok(Sequence {
        data_type: "bigint".into(),
        start: get(0),
        increment: get(1),
        min_value: get(2),
        max_value: get(3),
        cycle: get(4) != 0,
        owned_by: None,
    })
}
