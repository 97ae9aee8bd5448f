//! sqlite_schema and pragma inspection into the neutral schema model.
//!
//! The pragmas give columns, keys, indexes and foreign keys; what they do not give (check
//! constraints, generation expressions, column collations, `AUTOINCREMENT`, deferrable foreign
//! keys, index expressions and predicates) is read from the `CREATE` text SQLite keeps, with
//! the small lexer in [`crate::sql`]. Pragmas are read on `main` (so a temporary table of the
//! same name cannot stand in), for every table at once: a table-valued pragma joined with
//! `sqlite_schema`, one query per pragma. SQLite is in-process, but each query is a hand-off to
//! sqlx's worker thread and back; one query per table and pragma made a replay of 500
//! migrations (an inspection after each) take 54 s, nearly all of it those hand-offs. Where the
//! joined query fails (a virtual table whose module this connection lacks), that pragma is
//! read table by table.
//!
//! Left out: SQLite's internal objects (`sqlite_*`), the shadow tables of virtual tables, and
//! tidemark's own tables with everything on them.

use std::collections::{BTreeMap, HashMap};

use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use tidemark_core::driver::InspectOptions;
use tidemark_core::{Error, Result};
use tidemark_schema::{
    Check, Column, ForeignKey, Index, Schema, TIDEMARK_TABLES, Table, Trigger, Unique, View,
};

use crate::driver::{SqliteDriver, db_error};
use crate::sql::{self, TableSql};

const OBJECTS_SQL: &str = "SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name";

/// `wr` and `strict` (SQLite ≥ 3.37) and whether a table is virtual or a virtual table's shadow.
const TABLE_LIST_SQL: &str =
    "SELECT name, type, wr, strict FROM pragma_table_list WHERE schema = 'main'";

const COLUMNS_SQL: &str = "SELECT name, type, \"notnull\", dflt_value, pk, hidden \
     FROM pragma_table_xinfo(?, 'main') ORDER BY cid";

const INDEX_LIST_SQL: &str =
    "SELECT name, \"unique\", origin FROM pragma_index_list(?, 'main') ORDER BY name";

const INDEX_COLUMNS_SQL: &str = "SELECT cid, name, \"desc\", coll FROM pragma_index_xinfo(?, 'main') \
     WHERE key = 1 ORDER BY seqno";

const FOREIGN_KEYS_SQL: &str = "SELECT id, \"table\", \"from\", \"to\", on_update, on_delete \
     FROM pragma_foreign_key_list(?, 'main') ORDER BY id, seq";

/// The same pragmas for every table at once; the key (table, or index for its columns) last,
/// so that rows read the same as the per-table queries'.
const ALL_COLUMNS_SQL: &str = "SELECT p.name, p.type, p.\"notnull\", p.dflt_value, p.pk, p.hidden, m.name \
     FROM sqlite_schema AS m JOIN pragma_table_xinfo(m.name, 'main') AS p \
     WHERE m.type = 'table' ORDER BY m.name, p.cid";

const ALL_INDEX_LIST_SQL: &str = "SELECT il.name, il.\"unique\", il.origin, m.name \
     FROM sqlite_schema AS m JOIN pragma_index_list(m.name, 'main') AS il \
     WHERE m.type = 'table' ORDER BY m.name, il.name";

const ALL_INDEX_COLUMNS_SQL: &str = "SELECT ix.cid, ix.name, ix.\"desc\", ix.coll, il.name \
     FROM sqlite_schema AS m JOIN pragma_index_list(m.name, 'main') AS il \
     JOIN pragma_index_xinfo(il.name, 'main') AS ix \
     WHERE m.type = 'table' AND ix.key = 1 ORDER BY il.name, ix.seqno";

const ALL_FOREIGN_KEYS_SQL: &str = "SELECT fk.id, fk.\"table\", fk.\"from\", fk.\"to\", fk.on_update, fk.on_delete, m.name \
     FROM sqlite_schema AS m JOIN pragma_foreign_key_list(m.name, 'main') AS fk \
     WHERE m.type = 'table' ORDER BY m.name, fk.id, fk.seq";

/// Rows of one pragma for every table, by key; `None` when the joined query failed.
type Grouped = Option<HashMap<String, Vec<SqliteRow>>>;

#[derive(Default)]
struct Prefetched {
    columns: Grouped,
    index_list: Grouped,
    index_columns: Grouped,
    foreign_keys: Grouped,
}

async fn grouped(driver: &mut SqliteDriver, sql: &'static str) -> Grouped {
    let rows = sqlx::query(sql).fetch_all(driver.conn()).await.ok()?;
    let mut map: HashMap<String, Vec<SqliteRow>> = HashMap::new();
    for r in rows {
        let key = text(&r, r.len() - 1).unwrap_or_default();
        map.entry(key).or_default().push(r);
    }
    Some(map)
}

/// The rows for `key` from the joined query, or from the per-table query when it failed.
async fn rows_of(
    driver: &mut SqliteDriver,
    pre: &mut Grouped,
    what: &str,
    sql: &'static str,
    key: &str,
) -> Result<Vec<SqliteRow>> {
    match pre {
        Some(map) => Ok(map.remove(key).unwrap_or_default()),
        None => fetch(driver, what, sql, Some(key)).await,
    }
}

fn text(row: &SqliteRow, i: usize) -> Option<String> {
    if let Ok(v) = row.try_get::<Option<String>, _>(i) {
        return v;
    }
    match row.try_get::<Option<Vec<u8>>, _>(i) {
        Ok(v) => v.map(|b| String::from_utf8_lossy(&b).into_owned()),
        Err(_) => None,
    }
}

fn int(row: &SqliteRow, i: usize) -> i64 {
    row.try_get::<Option<i64>, _>(i)
        .ok()
        .flatten()
        .or_else(|| text(row, i).and_then(|t| t.trim().parse().ok()))
        .unwrap_or(0)
}

async fn fetch(
    driver: &mut SqliteDriver,
    what: &str,
    sql: &'static str,
    arg: Option<&str>,
) -> Result<Vec<SqliteRow>> {
    let mut q = sqlx::query(sql);
    if let Some(arg) = arg {
        q = q.bind(arg.to_string());
    }
    q.fetch_all(driver.conn())
        .await
        .map_err(|e| Error::db(format!("could not inspect {what}"), db_error(e)))
}

/// SQLite reserves every name starting with `sqlite_`, in any case.
fn is_internal(name: &str) -> bool {
    name.get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("sqlite_"))
}

fn is_excluded(name: &str) -> bool {
    is_internal(name) || TIDEMARK_TABLES.contains(&name)
}

/// See the MySQL driver: definition keys can clash, so sort by the full definition and number
/// the later ones, independently of the order SQLite lists them in.
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

struct Object {
    kind: String,
    name: String,
    table: String,
    sql: String,
}

/// The declared type, lower-cased and spaced canonically (`VARCHAR ( 50 )` → `varchar(50)`).
/// Some SQLite versions report a generated column's type with `GENERATED ALWAYS` attached.
fn column_type(declared: &str) -> String {
    let t = sql::canonical(declared);
    t.strip_suffix("generated always")
        .map(|s| s.trim_end().to_string())
        .unwrap_or(t)
}

/// A column default in one spelling. A default cannot name a column, so a lone double-quoted
/// word there is SQLite's lenient spelling of a string: `DEFAULT "x"` is `DEFAULT 'x'`.
fn default_value(raw: &str) -> String {
    let lexed = sql::lex(raw);
    if let [t] = lexed.tokens.as_slice()
        && t.kind == sql::Kind::QuotedIdent
        && raw.trim_start().starts_with('"')
    {
        return format!("'{}'", sql::unquote(lexed.text(*t)).replace('\'', "''"));
    }
    lexed.render_all()
}

pub async fn inspect(driver: &mut SqliteDriver, _opts: &InspectOptions) -> Result<Schema> {
    let objects: Vec<Object> = fetch(driver, "sqlite_schema", OBJECTS_SQL, None)
        .await?
        .iter()
        .map(|r| Object {
            kind: text(r, 0).unwrap_or_default(),
            name: text(r, 1).unwrap_or_default(),
            table: text(r, 2).unwrap_or_default(),
            sql: text(r, 3).unwrap_or_default(),
        })
        .collect();
    let mut listed: HashMap<String, (String, bool, bool)> = HashMap::new();
    for r in fetch(driver, "tables", TABLE_LIST_SQL, None).await? {
        listed.insert(
            text(&r, 0).unwrap_or_default(),
            (
                text(&r, 1).unwrap_or_default(),
                int(&r, 2) != 0,
                int(&r, 3) != 0,
            ),
        );
    }

    let mut pre = Prefetched {
        columns: grouped(driver, ALL_COLUMNS_SQL).await,
        index_list: grouped(driver, ALL_INDEX_LIST_SQL).await,
        index_columns: grouped(driver, ALL_INDEX_COLUMNS_SQL).await,
        foreign_keys: grouped(driver, ALL_FOREIGN_KEYS_SQL).await,
    };
    let mut schema = Schema::default();
    let mut parsed: BTreeMap<String, TableSql> = BTreeMap::new();
    for o in objects
        .iter()
        .filter(|o| o.kind == "table" && !is_excluded(&o.name))
    {
        let (kind, without_rowid, strict) = listed
            .get(&o.name)
            .cloned()
            .unwrap_or_else(|| ("table".into(), false, false));
        if kind == "shadow" {
            continue; // storage of a virtual table, not the application's
        }
        let table_sql = sql::table(&o.sql);
        let mut table = Table::default();
        if without_rowid {
            table.options.insert("without_rowid".into(), "yes".into());
        }
        if strict {
            table.options.insert("strict".into(), "yes".into());
        }
        if let Some(using) = &table_sql.using {
            table.options.insert("using".into(), using.clone());
        }
        match rows_of(driver, &mut pre.columns, "columns", COLUMNS_SQL, &o.name).await {
            Ok(rows) => read_columns(&rows, &table_sql, &mut table),
            // A virtual table whose module this connection lacks cannot be read, but it is
            // still there.
            Err(e) if kind == "virtual" => {
                table
                    .options
                    .insert("columns".into(), format!("unreadable: {e}"));
            }
            Err(e) => return Err(e),
        }
        let mut checks = Vec::new();
        for (name, expression) in &table_sql.checks {
            let key = name
                .clone()
                .unwrap_or_else(|| format!("check({expression})"));
            checks.push((
                key,
                expression.clone(),
                Check {
                    name: name.clone(),
                    expression: expression.clone(),
                    ..Default::default()
                },
            ));
        }
        insert_all(&mut table.checks, checks);
        schema.tables.insert(o.name.clone(), table);
        parsed.insert(o.name.clone(), table_sql);
    }

    let index_sql: HashMap<&str, &str> = objects
        .iter()
        .filter(|o| o.kind == "index")
        .map(|o| (o.name.as_str(), o.sql.as_str()))
        .collect();
    let names: Vec<String> = schema.tables.keys().cloned().collect();
    for name in &names {
        read_indexes(
            driver,
            &mut pre,
            name,
            &parsed[name],
            &index_sql,
            &mut schema,
        )
        .await?;
        read_foreign_keys(driver, &mut pre, name, &parsed[name], &mut schema).await?;
    }

    for o in &objects {
        match o.kind.as_str() {
            "view" if !is_internal(&o.name) => {
                schema.views.insert(
                    o.name.clone(),
                    View {
                        definition: sql::body_after_name(&o.sql),
                        materialized: false,
                    },
                );
            }
            "trigger" if !is_excluded(&o.table) => {
                schema.triggers.insert(
                    format!("{}.{}", o.table, o.name),
                    Trigger {
                        table: o.table.clone(),
                        definition: sql::body_after_name(&o.sql),
                    },
                );
            }
            _ => {}
        }
    }
    Ok(schema)
}

fn read_columns(rows: &[SqliteRow], table_sql: &TableSql, table: &mut Table) {
    let mut pk: Vec<(i64, String)> = Vec::new();
    for r in rows {
        let name = text(r, 0).unwrap_or_default();
        let hidden = int(r, 5);
        if hidden == 1 {
            continue; // a virtual table's hidden column, part of its module
        }
        let from_sql = table_sql
            .columns
            .iter()
            .find(|c| c.name == name.to_lowercase());
        let generated = match hidden {
            2 | 3 => {
                let kind = if hidden == 2 { "virtual" } else { "stored" };
                Some(match from_sql.and_then(|c| c.generated.as_ref()) {
                    Some(expr) => format!("{kind}: {expr}"),
                    None => kind.to_string(),
                })
            }
            _ => None,
        };
        let default = text(r, 3)
            .map(|d| default_value(&d))
            .filter(|d| d != "null");
        if int(r, 4) > 0 {
            pk.push((int(r, 4), name.clone()));
        }
        table.columns.insert(
            name,
            Column {
                data_type: column_type(&text(r, 1).unwrap_or_default()),
                nullable: int(r, 2) == 0,
                default,
                generated,
                collation: from_sql.and_then(|c| c.collation.clone()),
                ..Default::default()
            },
        );
    }
    pk.sort();
    if table_sql.autoincrement
        && let [(_, column)] = pk.as_slice()
        && let Some(c) = table.columns.get_mut(column)
    {
        c.identity = Some("autoincrement".into());
    }
    if !pk.is_empty() {
        table.primary_key = Some(pk.into_iter().map(|(_, c)| c).collect());
    }
}

/// Unique constraints (the `sqlite_autoindex_*` indexes SQLite makes for them, keyed by
/// definition) and the indexes made with `CREATE INDEX`.
async fn read_indexes(
    driver: &mut SqliteDriver,
    pre: &mut Prefetched,
    table_name: &str,
    table_sql: &TableSql,
    index_sql: &HashMap<&str, &str>,
    schema: &mut Schema,
) -> Result<()> {
    let mut uniques = Vec::new();
    for r in rows_of(
        driver,
        &mut pre.index_list,
        "indexes",
        INDEX_LIST_SQL,
        table_name,
    )
    .await?
    {
        let name = text(&r, 0).unwrap_or_default();
        let unique = int(&r, 1) != 0;
        let origin = text(&r, 2).unwrap_or_default();
        if origin == "pk" {
            continue; // the primary key, already read from the columns
        }
        let key_columns = rows_of(
            driver,
            &mut pre.index_columns,
            "index columns",
            INDEX_COLUMNS_SQL,
            &name,
        )
        .await?;
        let from_sql = index_sql
            .get(name.as_str())
            .map(|s| sql::index(s))
            .unwrap_or_default();
        let parts: Vec<String> = key_columns
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let cid = int(k, 0);
                if cid == -2 {
                    // An expression: only the index's SQL has its text.
                    return match from_sql.parts.get(i) {
                        Some(p) if from_sql.parts.len() == key_columns.len() => p.clone(),
                        _ => "(expression)".to_string(),
                    };
                }
                let column = if cid == -1 {
                    "rowid".to_string()
                } else {
                    text(k, 1).unwrap_or_default()
                };
                let declared = table_sql
                    .columns
                    .iter()
                    .find(|c| c.name == column.to_lowercase())
                    .and_then(|c| c.collation.clone())
                    .unwrap_or_else(|| "binary".into());
                let mut part = column;
                let coll = text(k, 3).unwrap_or_default().to_lowercase();
                if !coll.is_empty() && coll != declared {
                    part.push_str(&format!(" collate {coll}"));
                }
                if int(k, 2) != 0 {
                    part.push_str(" desc");
                }
                part
            })
            .collect();
        let Some(table) = schema.tables.get_mut(table_name) else {
            continue;
        };
        if origin == "u" {
            let definition = parts.join(", ");
            uniques.push((
                format!("unique({definition})"),
                definition,
                Unique {
                    name: None,
                    columns: parts,
                    ..Default::default()
                },
            ));
        } else {
            table.indexes.insert(
                name,
                Index {
                    unique,
                    parts,
                    predicate: from_sql.predicate,
                    ..Default::default()
                },
            );
        }
    }
    if let Some(table) = schema.tables.get_mut(table_name) {
        insert_all(&mut table.uniques, uniques);
    }
    Ok(())
}

fn action(rule: &str) -> Option<String> {
    let r = rule.trim().to_ascii_lowercase();
    (!r.is_empty() && r != "no action").then_some(r)
}

/// Foreign keys, keyed by definition (`foreign key(user_id)`): SQLite constraint names cannot
/// be used for anything. The referenced table is spelled as it is named, and an omitted column
/// list is the referenced table's primary key.
async fn read_foreign_keys(
    driver: &mut SqliteDriver,
    pre: &mut Prefetched,
    table_name: &str,
    table_sql: &TableSql,
    schema: &mut Schema,
) -> Result<()> {
    let mut fks: BTreeMap<i64, (ForeignKey, bool)> = BTreeMap::new();
    for r in rows_of(
        driver,
        &mut pre.foreign_keys,
        "foreign keys",
        FOREIGN_KEYS_SQL,
        table_name,
    )
    .await?
    {
        let (fk, implicit) = fks.entry(int(&r, 0)).or_insert_with(|| {
            let written = text(&r, 1).unwrap_or_default();
            let ref_table = schema
                .tables
                .keys()
                .find(|t| t.eq_ignore_ascii_case(&written))
                .cloned()
                .unwrap_or(written);
            let fk = ForeignKey {
                ref_table,
                on_update: action(&text(&r, 4).unwrap_or_default()),
                on_delete: action(&text(&r, 5).unwrap_or_default()),
                ..Default::default()
            };
            (fk, false)
        });
        fk.columns.push(text(&r, 2).unwrap_or_default());
        match text(&r, 3).filter(|t| !t.is_empty()) {
            Some(to) => fk.ref_columns.push(to),
            None => *implicit = true,
        }
    }
    let mut used = vec![false; table_sql.foreign_keys.len()];
    let mut items = Vec::new();
    for (_, (mut fk, implicit)) in fks {
        if implicit {
            fk.ref_columns = schema
                .tables
                .get(&fk.ref_table)
                .and_then(|t| t.primary_key.clone())
                .unwrap_or_default();
        }
        let columns: Vec<String> = fk.columns.iter().map(|c| c.to_lowercase()).collect();
        let written = table_sql
            .foreign_keys
            .iter()
            .enumerate()
            .position(|(i, f)| {
                !used[i] && f.columns == columns && f.ref_table.eq_ignore_ascii_case(&fk.ref_table)
            });
        if let Some(i) = written {
            used[i] = true;
            if table_sql.foreign_keys[i].initially_deferred {
                fk.deferrable = Some("initially deferred".into());
            }
        }
        let key = format!("foreign key({})", fk.columns.join(", "));
        let definition = format!("{fk:?}");
        items.push((key, definition, fk));
    }
    if let Some(table) = schema.tables.get_mut(table_name) {
        insert_all(&mut table.foreign_keys, items);
    }
    Ok(())
}
