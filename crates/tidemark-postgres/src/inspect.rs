//! Catalog inspection into the neutral schema model.
//!
//! A handful of bulk queries, one per kind of object (never one per table), each filtered to
//! the inspected schemas by the same `ns` CTE. They run in one read-only snapshot with fixed
//! session settings, so that everything PostgreSQL prints for us (`format_type`,
//! `pg_get_expr`, `pg_get_viewdef`, …) comes out the same whatever the caller's `search_path`,
//! `DateStyle` or `TimeZone`: objects in `public` bare, others schema-qualified.
//!
//! What is normalised here, so that two databases built by differently written DDL have the
//! same fingerprint:
//! - constraint names PostgreSQL generated (`t_pkey`, `t_a_key`, `t_a_key1`, `t_b_fkey`,
//!   `t_check`) are replaced by the constraint's definition as its key;
//! - view definitions and function bodies are whitespace-normalised;
//! - defaults (`btree`, ascending order, default operator classes and collations, `NO ACTION`,
//!   `volatile`) are left out;
//! - objects PostgreSQL makes by itself are left out: partition clones of indexes, constraints
//!   and triggers, identity sequences, internal triggers, members of extensions, and the
//!   `plpgsql` extension every database has.
//!
//! tidemark's own tables (`tidemark_history`, `tidemark_journal`, `tidemark_identity`, `tidemark_releases`, `tidemark_repeatable`) and everything of theirs
//! (keys, indexes, the journal's sequence) never appear.

use std::collections::{BTreeMap, HashMap};

use sqlx::postgres::{PgConnection, PgRow};
use sqlx::{Decode, Postgres, Row, Type};
use tidemark_core::driver::{DbError, InspectOptions};
use tidemark_core::{Error, Result};
use tidemark_schema::{
    Check, Column, Domain, EnumType, Extension, ForeignKey, Function, Index, Schema, Sequence,
    Table, Trigger, Unique, View,
};

use crate::driver::{PgDriver, db_error};
use crate::normalize::{
    collapse_whitespace, is_default_name, name_addition, strip_outer_parens, view_definition,
};

/// Prefixes a query with the `ns` CTE: the schemas to inspect (`$1`, a `text[]`; empty means
/// every schema but the system ones). Names starting with `pg_` are reserved for the system
/// (`pg_catalog`, `pg_toast`, `pg_temp_N`, `pg_toast_temp_N`), so one pattern covers them.
macro_rules! with_ns {
    ($($sql:expr),+ $(,)?) => {
        concat!(
            "WITH ns AS (SELECT oid, nspname::text AS nspname FROM pg_namespace WHERE \
             CASE WHEN cardinality($1::text[]) = 0 \
             THEN nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' \
             ELSE nspname = ANY($1::text[]) END) ",
            $($sql),+
        )
    };
}

/// `AND` the object (`$classid` catalog, `$oid` column) is not a member of an extension: the
/// extension's own line stands for all of them.
macro_rules! not_in_extension {
    ($catalog:literal, $oid:literal) => {
        concat!(
            " AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = '",
            $catalog,
            "'::regclass AND e.objid = ",
            $oid,
            " AND e.deptype = 'e')"
        )
    };
}

/// Are we outside a transaction block? Then this query is the first command of its own
/// transaction, and the two timestamps are equal (as documented for `statement_timestamp()`);
/// inside one, `BEGIN` came earlier. It must go by the simple protocol (`raw_sql`): with the
/// extended protocol, Parse starts the transaction and Execute resets the statement time, so
/// the two differ even outside a transaction. (sqlx keeps the server's transaction status to
/// itself.)
const OUTSIDE_TRANSACTION_SQL: &str = "SELECT statement_timestamp() = transaction_timestamp()";

/// Settings that change how PostgreSQL prints names, constants and expressions, and `jit`:
/// the planner's estimates for catalog queries with per-row subqueries are high enough to
/// trigger JIT compilation, which costs a second or more on a large schema for queries that
/// run in milliseconds. `SET LOCAL`, so they end with the inspection's transaction or
/// savepoint.
const SETTINGS_SQL: &str = "SET LOCAL search_path = public; SET LOCAL DateStyle = 'ISO, YMD'; \
     SET LOCAL IntervalStyle = postgres; SET LOCAL TimeZone = 'UTC'; \
     SET LOCAL extra_float_digits = 1; SET LOCAL bytea_output = hex; SET LOCAL jit = off";

/// Tables (ordinary and partitioned), views and materialized views.
const RELATIONS_SQL: &str = with_ns!(
    "SELECT c.oid::int8, ns.nspname, c.relname::text, c.relkind::text, \
     CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid, true) END, \
     CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END, \
     CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid, true) END, \
     c.relispartition, \
     ARRAY(SELECT pn.nspname::text FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent \
       JOIN pg_namespace pn ON pn.oid = p.relnamespace WHERE i.inhrelid = c.oid ORDER BY i.inhseqno), \
     ARRAY(SELECT p.relname::text FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent \
       WHERE i.inhrelid = c.oid ORDER BY i.inhseqno), \
     c.relpersistence = 'u', d.description \
     FROM pg_class c JOIN ns ON ns.oid = c.relnamespace \
     LEFT JOIN pg_description d ON d.objoid = c.oid AND d.classoid = 'pg_class'::regclass AND d.objsubid = 0 \
     WHERE c.relkind IN ('r', 'p', 'v', 'm') \
     AND NOT (c.relkind IN ('r', 'p') AND c.relname IN ('tidemark_history', 'tidemark_journal', 'tidemark_identity', 'tidemark_releases', 'tidemark_repeatable'))",
    not_in_extension!("pg_class", "c.oid"),
);

/// Columns of every table; the rows of tables not inspected are dropped while assembling.
const COLUMNS_SQL: &str = with_ns!(
    "SELECT a.attrelid::int8, a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull, \
     pg_get_expr(ad.adbin, ad.adrelid, true), a.attidentity::text, a.attgenerated::text, \
     CASE WHEN a.attcollation <> t.typcollation THEN \
       CASE WHEN cn.nspname IN ('pg_catalog', 'public') THEN co.collname::text \
       ELSE cn.nspname || '.' || co.collname END END, \
     d.description \
     FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN ns ON ns.oid = c.relnamespace \
     JOIN pg_type t ON t.oid = a.atttypid \
     LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum \
     LEFT JOIN pg_collation co ON co.oid = a.attcollation \
     LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace \
     LEFT JOIN pg_description d ON d.objoid = a.attrelid AND d.classoid = 'pg_class'::regclass AND d.objsubid = a.attnum \
     WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped"
);

/// Primary keys, unique, check and foreign-key constraints, without the copies PostgreSQL
/// makes on partitions (`conparentid`) and inherited checks (`conislocal`). The two version
/// dependent columns are NULLS NOT DISTINCT and `ON DELETE SET NULL (columns)` (both PG15+).
macro_rules! constraints_sql {
    ($nulls_not_distinct:literal, $delete_set_columns:literal) => {
        with_ns!(
            "SELECT con.conrelid::int8, con.conname::text, con.contype::text, \
             ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(num, ord) \
               JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num ORDER BY k.ord), \
             pg_get_expr(con.conbin, con.conrelid, true), \
             con.convalidated, con.condeferrable, con.condeferred, \
             fn.nspname::text, fc.relname::text, \
             ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(num, ord) \
               JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.num ORDER BY k.ord), \
             con.confupdtype::text, con.confdeltype::text, ",
            $nulls_not_distinct,
            ", ",
            $delete_set_columns,
            ", ARRAY(SELECT a.attname::text FROM generate_series(i.indnkeyatts, i.indnatts - 1) k \
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[k] ORDER BY k) \
             FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN ns ON ns.oid = c.relnamespace \
             LEFT JOIN pg_class fc ON fc.oid = con.confrelid \
             LEFT JOIN pg_namespace fn ON fn.oid = fc.relnamespace \
             LEFT JOIN pg_index i ON i.indexrelid = con.conindid AND con.contype IN ('p', 'u') \
             WHERE con.contype IN ('p', 'u', 'c', 'f') AND con.conparentid = 0 AND con.conislocal"
        )
    };
}

const CONSTRAINTS_SQL_PG15: &str = constraints_sql!(
    "coalesce(i.indnullsnotdistinct, false)",
    "ARRAY(SELECT a.attname::text FROM unnest(con.confdelsetcols) WITH ORDINALITY k(num, ord) \
       JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num ORDER BY k.ord)"
);
const CONSTRAINTS_SQL_PG12: &str = constraints_sql!("false", "ARRAY[]::text[]");

/// Indexes that do not back a primary key or unique constraint, without the copies attached
/// to a partitioned table's index (`relispartition`). Each key part is the column or
/// expression followed by what is not the default: collation, operator class, ordering, and
/// for an exclusion constraint's index the operator (`room WITH &&`). A plain column is
/// printed as `pg_get_indexdef` would print it, without calling it: the call costs tens of
/// microseconds. Lookups are scalar subqueries so that they are index probes, not hash tables
/// rebuilt for every index.
macro_rules! indexes_sql {
    ($nulls_not_distinct:literal) => {
        with_ns!(
            "SELECT i.indrelid::int8, ic.relname::text, i.indisunique, am.amname::text, \
             ARRAY(SELECT coalesce(quote_ident(att.attname), pg_get_indexdef(i.indexrelid, k + 1, true)) \
               || CASE WHEN i.indcollation[k] <> 0 AND i.indcollation[k] <> coalesce(att.attcollation, 100) \
                  THEN ' COLLATE ' || (SELECT quote_ident(co.collname) FROM pg_collation co \
                    WHERE co.oid = i.indcollation[k]) ELSE '' END \
               || coalesce((SELECT CASE WHEN opc.opcdefault THEN '' \
                    WHEN opn.nspname IN ('pg_catalog', 'public') THEN ' ' || opc.opcname \
                    ELSE ' ' || opn.nspname || '.' || opc.opcname END \
                  FROM pg_opclass opc JOIN pg_namespace opn ON opn.oid = opc.opcnamespace \
                  WHERE opc.oid = i.indclass[k]), '') \
               || CASE i.indoption[k] & 3 WHEN 1 THEN ' DESC NULLS LAST' WHEN 2 THEN ' NULLS FIRST' \
                  WHEN 3 THEN ' DESC' ELSE '' END \
               || coalesce(' WITH ' || (SELECT o.oprname::text FROM pg_operator o WHERE o.oid = x.conexclop[k + 1]), '') \
               FROM generate_series(0, i.indnkeyatts - 1) k \
               LEFT JOIN LATERAL (SELECT a.attname, a.attcollation FROM pg_attribute a \
                 WHERE a.attrelid = i.indrelid AND a.attnum = i.indkey[k] AND i.indkey[k] <> 0) att ON true \
               ORDER BY k), \
             ARRAY(SELECT quote_ident(a.attname) FROM generate_series(i.indnkeyatts, i.indnatts - 1) k \
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[k] ORDER BY k), \
             pg_get_expr(i.indpred, i.indrelid, true), ",
            $nulls_not_distinct,
            ", NOT i.indisvalid \
             FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid \
             JOIN pg_class c ON c.oid = i.indrelid JOIN ns ON ns.oid = c.relnamespace \
             JOIN pg_am am ON am.oid = ic.relam \
             LEFT JOIN pg_constraint x ON x.conindid = i.indexrelid AND x.conrelid = i.indrelid AND x.contype = 'x' \
             WHERE c.relkind IN ('r', 'p') AND NOT ic.relispartition \
             AND NOT EXISTS (SELECT 1 FROM pg_constraint pc WHERE pc.conindid = i.indexrelid \
               AND pc.conrelid = i.indrelid AND pc.contype IN ('p', 'u'))"
        )
    };
}

const INDEXES_SQL_PG15: &str = indexes_sql!("i.indnullsnotdistinct");
const INDEXES_SQL_PG12: &str = indexes_sql!("false");

/// Sequences with the column that owns them; identity sequences (`deptype 'i'`) are part of
/// their column, and the journal's own sequence is tidemark's.
const SEQUENCES_SQL: &str = with_ns!(
    "SELECT ns.nspname, c.relname::text, format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, \
     s.seqmin, s.seqmax, s.seqcycle, own_ns.nspname::text, own.relname::text, own_att.attname::text \
     FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN ns ON ns.oid = c.relnamespace \
     LEFT JOIN pg_depend dep ON dep.classid = 'pg_class'::regclass AND dep.objid = c.oid \
       AND dep.refclassid = 'pg_class'::regclass AND dep.refobjsubid > 0 AND dep.deptype IN ('a', 'i') \
     LEFT JOIN pg_class own ON own.oid = dep.refobjid \
     LEFT JOIN pg_namespace own_ns ON own_ns.oid = own.relnamespace \
     LEFT JOIN pg_attribute own_att ON own_att.attrelid = dep.refobjid AND own_att.attnum = dep.refobjsubid \
     WHERE dep.deptype IS DISTINCT FROM 'i' \
     AND (own.relname IS NULL OR own.relname NOT IN ('tidemark_history', 'tidemark_journal', 'tidemark_identity', 'tidemark_releases', 'tidemark_repeatable'))",
    not_in_extension!("pg_class", "c.oid"),
);

/// Enum types with their labels in order.
const ENUMS_SQL: &str = with_ns!(
    "SELECT ns.nspname, t.typname::text, \
     ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder) \
     FROM pg_type t JOIN ns ON ns.oid = t.typnamespace WHERE t.typtype = 'e'",
    not_in_extension!("pg_type", "t.oid"),
);

/// Domains. Only `CHECK` constraints: PostgreSQL 17 also lists `NOT NULL` in pg_constraint,
/// which `typnotnull` already says. Checks are sorted by definition, so their names do not
/// matter.
const DOMAINS_SQL: &str = with_ns!(
    "SELECT ns.nspname, t.typname::text, format_type(t.typbasetype, t.typtypmod), t.typnotnull, \
     pg_get_expr(t.typdefaultbin, 0, true), \
     ARRAY(SELECT pg_get_constraintdef(con.oid, true) FROM pg_constraint con \
       WHERE con.contypid = t.oid AND con.contype = 'c' ORDER BY 1) \
     FROM pg_type t JOIN ns ON ns.oid = t.typnamespace WHERE t.typtype = 'd'",
    not_in_extension!("pg_type", "t.oid"),
);

/// Functions and procedures (not aggregates), keyed by their input argument types. The body
/// is `prosrc`, or on PG14+ the parsed body of a SQL-standard `BEGIN ATOMIC` function.
macro_rules! functions_sql {
    ($body:literal) => {
        with_ns!(
            "SELECT ns.nspname, p.proname::text, oidvectortypes(p.proargtypes), p.prokind::text, \
             coalesce(pg_get_function_result(p.oid), format_type(p.prorettype, NULL)), l.lanname::text, ",
            $body,
            ", p.provolatile::text \
             FROM pg_proc p JOIN ns ON ns.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang \
             WHERE p.prokind IN ('f', 'p')",
            not_in_extension!("pg_proc", "p.oid"),
        )
    };
}

const FUNCTIONS_SQL_PG14: &str = functions_sql!(
    "CASE WHEN p.prosqlbody IS NOT NULL THEN pg_get_function_sqlbody(p.oid) ELSE p.prosrc END"
);
const FUNCTIONS_SQL_PG12: &str = functions_sql!("p.prosrc");

/// User triggers on tables and views. Before PG13 the copies on partitions are internal;
/// from PG13 on they point to their parent (`tgparentid`).
macro_rules! triggers_sql {
    ($not_a_clone:literal) => {
        with_ns!(
            "SELECT t.tgrelid::int8, t.tgname::text, pg_get_triggerdef(t.oid, true) \
             FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN ns ON ns.oid = c.relnamespace \
             WHERE NOT t.tgisinternal",
            $not_a_clone
        )
    };
}

const TRIGGERS_SQL_PG13: &str = triggers_sql!(" AND t.tgparentid = 0");
const TRIGGERS_SQL_PG12: &str = triggers_sql!("");

/// Extensions are database-wide, so not filtered by schema. `plpgsql` is in every database
/// PostgreSQL creates; listing it would make an empty database look non-empty.
const EXTENSIONS_SQL: &str = "SELECT e.extname::text, n.nspname::text FROM pg_extension e \
     JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname <> 'plpgsql'";

/// How the inspection's settings and snapshot are scoped: a transaction of its own, or a
/// savepoint inside the caller's transaction (rolled back, so `SET LOCAL` does not leak).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    OwnTransaction,
    Savepoint,
}

fn catalog_error(what: &str) -> impl FnOnce(sqlx::Error) -> Error + '_ {
    move |e| Error::db(format!("could not inspect {what}"), db_error(e))
}

/// Column `i` of a catalog row. The queries above fix the types, so a mismatch is a bug, but
/// it is reported as an error rather than a panic.
fn get<'r, T>(row: &'r PgRow, i: usize) -> Result<T>
where
    T: Decode<'r, Postgres> + Type<Postgres>,
{
    row.try_get(i).map_err(|e| {
        Error::db(
            "could not read the catalog",
            DbError::new(format!("column {i}: {e}")),
        )
    })
}

/// How objects are named: bare in `public`, `schema.name` elsewhere.
fn display_name(schema: &str, name: &str) -> String {
    if schema == "public" {
        name.to_string()
    } else {
        format!("{schema}.{name}")
    }
}

pub async fn inspect(driver: &mut PgDriver, opts: &InspectOptions) -> Result<Schema> {
    let version = driver.version_num();
    let conn = driver.conn();
    let scope = enter(conn).await?;
    let result = read_schema(conn, version, opts).await;
    let left = leave(conn, scope).await;
    let schema = result?;
    left?;
    Ok(schema)
}

async fn enter(conn: &mut PgConnection) -> Result<Scope> {
    let outside: bool = sqlx::raw_sql(OUTSIDE_TRANSACTION_SQL)
        .fetch_one(&mut *conn)
        .await
        .map_err(catalog_error("the transaction state"))
        .and_then(|r| get(&r, 0))?;
    let (scope, begin) = if outside {
        (
            Scope::OwnTransaction,
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        )
    } else {
        (Scope::Savepoint, "SAVEPOINT tidemark_inspect")
    };
    sqlx::raw_sql(begin)
        .execute(&mut *conn)
        .await
        .map_err(catalog_error("the schema (could not start a snapshot)"))?;
    if let Err(e) = sqlx::raw_sql(SETTINGS_SQL).execute(&mut *conn).await {
        let _ = leave(conn, scope).await;
        return Err(catalog_error("the schema (could not set up the session)")(
            e,
        ));
    }
    Ok(scope)
}

/// End the scope; nothing was written, so both ways roll back.
async fn leave(conn: &mut PgConnection, scope: Scope) -> Result<()> {
    let sql = match scope {
        Scope::OwnTransaction => "ROLLBACK",
        Scope::Savepoint => {
            "ROLLBACK TO SAVEPOINT tidemark_inspect; RELEASE SAVEPOINT tidemark_inspect"
        }
    };
    sqlx::raw_sql(sql)
        .execute(conn)
        .await
        .map(|_| ())
        .map_err(catalog_error("the schema (could not end the snapshot)"))
}

async fn fetch(
    conn: &mut PgConnection,
    sql: &'static str,
    opts: &InspectOptions,
    what: &str,
) -> Result<Vec<PgRow>> {
    sqlx::query(sql)
        .bind(&opts.schemas)
        .fetch_all(conn)
        .await
        .map_err(catalog_error(what))
}

async fn read_schema(
    conn: &mut PgConnection,
    version: i64,
    opts: &InspectOptions,
) -> Result<Schema> {
    let mut schema = Schema::default();
    // oid → display name of every inspected table and view; rows of other queries that
    // belong to anything else (tidemark's tables, extension members) are dropped by lookup.
    let mut tables: HashMap<i64, (String, String)> = HashMap::new();
    let mut views: HashMap<i64, String> = HashMap::new();

    for r in fetch(conn, RELATIONS_SQL, opts, "tables and views").await? {
        let oid: i64 = get(&r, 0)?;
        let (ns, rel): (String, String) = (get(&r, 1)?, get(&r, 2)?);
        let kind: String = get(&r, 3)?;
        let name = display_name(&ns, &rel);
        if kind == "v" || kind == "m" {
            let def: Option<String> = get(&r, 4)?;
            schema.views.insert(
                name.clone(),
                View {
                    definition: view_definition(def.as_deref().unwrap_or_default()),
                    materialized: kind == "m",
                },
            );
            views.insert(oid, name);
            continue;
        }
        let mut t = Table {
            comment: get(&r, 11)?,
            ..Default::default()
        };
        let parent_ns: Vec<String> = get(&r, 8)?;
        let parent_rel: Vec<String> = get(&r, 9)?;
        let parents: Vec<String> = parent_ns
            .iter()
            .zip(&parent_rel)
            .map(|(n, p)| display_name(n, p))
            .collect();
        if let Some(key) = get::<Option<String>>(&r, 5)? {
            t.options.insert("partition_by".into(), key);
        }
        if get::<bool>(&r, 7)? {
            t.options.insert("partition_of".into(), parents.join(", "));
            if let Some(bound) = get::<Option<String>>(&r, 6)? {
                t.options.insert("partition_bound".into(), bound);
            }
        } else if !parents.is_empty() {
            t.options.insert("inherits".into(), parents.join(", "));
        }
        if get::<bool>(&r, 10)? {
            t.options.insert("unlogged".into(), "yes".into());
        }
        schema.tables.insert(name.clone(), t);
        tables.insert(oid, (name, rel));
    }

    for r in fetch(conn, COLUMNS_SQL, opts, "columns").await? {
        let Some((name, _)) = tables.get(&get::<i64>(&r, 0)?) else {
            continue;
        };
        let Some(t) = schema.tables.get_mut(name) else {
            continue;
        };
        let default: Option<String> = get(&r, 4)?;
        let identity = match get::<String>(&r, 5)?.as_str() {
            "a" => Some("always".to_string()),
            "d" => Some("by default".to_string()),
            _ => None,
        };
        // A generated column keeps its expression where a default would be.
        let (default, generated) = match get::<String>(&r, 6)?.as_str() {
            "s" => (None, default.map(|e| format!("stored: {e}"))),
            "v" => (None, default.map(|e| format!("virtual: {e}"))),
            _ => (default, None),
        };
        t.columns.insert(
            get(&r, 1)?,
            Column {
                data_type: get(&r, 2)?,
                nullable: !get::<bool>(&r, 3)?,
                default,
                identity,
                generated,
                collation: get(&r, 7)?,
                comment: get(&r, 8)?,
                ..Default::default()
            },
        );
    }

    read_constraints(conn, version, opts, &tables, &mut schema).await?;

    let sql = if version >= 150000 {
        INDEXES_SQL_PG15
    } else {
        INDEXES_SQL_PG12
    };
    for r in fetch(conn, sql, opts, "indexes").await? {
        let Some((name, _)) = tables.get(&get::<i64>(&r, 0)?) else {
            continue;
        };
        let Some(t) = schema.tables.get_mut(name) else {
            continue;
        };
        let method: String = get(&r, 3)?;
        t.indexes.insert(
            get(&r, 1)?,
            Index {
                unique: get(&r, 2)?,
                parts: get(&r, 4)?,
                method: (method != "btree").then_some(method),
                predicate: get(&r, 6)?,
                include: get(&r, 5)?,
                nulls_not_distinct: get(&r, 7)?,
                invalid: get(&r, 8)?,
            },
        );
    }

    for r in fetch(conn, SEQUENCES_SQL, opts, "sequences").await? {
        let owner: Option<(String, String, String)> = match (
            get::<Option<String>>(&r, 8)?,
            get::<Option<String>>(&r, 9)?,
            get::<Option<String>>(&r, 10)?,
        ) {
            (Some(n), Some(t), Some(c)) => Some((n, t, c)),
            _ => None,
        };
        schema.sequences.insert(
            display_name(&get::<String>(&r, 0)?, &get::<String>(&r, 1)?),
            Sequence {
                data_type: get(&r, 2)?,
                start: get(&r, 3)?,
                increment: get(&r, 4)?,
                min_value: get(&r, 5)?,
                max_value: get(&r, 6)?,
                cycle: get(&r, 7)?,
                owned_by: owner.map(|(n, t, c)| format!("{}.{c}", display_name(&n, &t))),
            },
        );
    }

    for r in fetch(conn, ENUMS_SQL, opts, "enum types").await? {
        schema.enums.insert(
            display_name(&get::<String>(&r, 0)?, &get::<String>(&r, 1)?),
            EnumType {
                labels: get(&r, 2)?,
            },
        );
    }

    for r in fetch(conn, DOMAINS_SQL, opts, "domains").await? {
        schema.domains.insert(
            display_name(&get::<String>(&r, 0)?, &get::<String>(&r, 1)?),
            Domain {
                data_type: get(&r, 2)?,
                nullable: !get::<bool>(&r, 3)?,
                default: get(&r, 4)?,
                checks: get(&r, 5)?,
            },
        );
    }

    let sql = if version >= 140000 {
        FUNCTIONS_SQL_PG14
    } else {
        FUNCTIONS_SQL_PG12
    };
    for r in fetch(conn, sql, opts, "functions").await? {
        let name = display_name(&get::<String>(&r, 0)?, &get::<String>(&r, 1)?);
        let args: String = get(&r, 2)?;
        let kind = match get::<String>(&r, 3)?.as_str() {
            "p" => "procedure",
            _ => "function",
        };
        let volatility = match get::<String>(&r, 7)?.as_str() {
            "i" => Some("immutable".to_string()),
            "s" => Some("stable".to_string()),
            _ => None,
        };
        schema.functions.insert(
            format!("{name}({args})"),
            Function {
                kind: kind.into(),
                returns: get(&r, 4)?,
                language: get(&r, 5)?,
                body: collapse_whitespace(&get::<Option<String>>(&r, 6)?.unwrap_or_default()),
                volatility,
            },
        );
    }

    let sql = if version >= 130000 {
        TRIGGERS_SQL_PG13
    } else {
        TRIGGERS_SQL_PG12
    };
    for r in fetch(conn, sql, opts, "triggers").await? {
        let oid: i64 = get(&r, 0)?;
        let Some(table) = tables.get(&oid).map(|(n, _)| n).or_else(|| views.get(&oid)) else {
            continue;
        };
        let name: String = get(&r, 1)?;
        schema.triggers.insert(
            format!("{table}.{name}"),
            Trigger {
                table: table.clone(),
                definition: collapse_whitespace(&get::<String>(&r, 2)?),
            },
        );
    }

    for r in sqlx::query(EXTENSIONS_SQL)
        .fetch_all(&mut *conn)
        .await
        .map_err(catalog_error("extensions"))?
    {
        schema.extensions.insert(
            get(&r, 0)?,
            Extension {
                schema: Some(get(&r, 1)?),
            },
        );
    }

    Ok(schema)
}

/// One constraint that will be keyed by its definition, because PostgreSQL named it.
struct Unnamed<T> {
    /// e.g. `unique(email)`.
    short: String,
    /// The whole definition, used only when two constraints of a table share the short key.
    long: String,
    value: T,
}

/// Insert constraints into `map`: the named ones under their names, the unnamed ones under
/// their short key, or their long key where short keys collide, or numbered where even those
/// collide (two identical constraints, which PostgreSQL allows).
fn insert_keyed<T>(
    map: &mut BTreeMap<String, T>,
    named: Vec<(String, T)>,
    unnamed: Vec<Unnamed<T>>,
) {
    map.extend(named);
    let mut short_count: HashMap<String, usize> = HashMap::new();
    for u in &unnamed {
        *short_count.entry(u.short.clone()).or_default() += 1;
    }
    let mut keyed: Vec<(String, T)> = unnamed
        .into_iter()
        .map(|u| {
            let key = if short_count[&u.short] > 1 {
                u.long
            } else {
                u.short
            };
            (key, u.value)
        })
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    for (key, value) in keyed {
        let mut k = key.clone();
        let mut n = 1;
        while map.contains_key(&k) {
            n += 1;
            k = format!("{key} #{n}");
        }
        map.insert(k, value);
    }
}

#[derive(Default)]
struct TableConstraints {
    uniques: (Vec<(String, Unique)>, Vec<Unnamed<Unique>>),
    checks: (Vec<(String, Check)>, Vec<Unnamed<Check>>),
    fks: (Vec<(String, ForeignKey)>, Vec<Unnamed<ForeignKey>>),
}

fn action(code: &str, set_columns: &[String]) -> Option<String> {
    let a = match code {
        "r" => "restrict",
        "c" => "cascade",
        "n" => "set null",
        "d" => "set default",
        _ => return None,
    };
    Some(if set_columns.is_empty() {
        a.to_string()
    } else {
        format!("{a} ({})", set_columns.join(", "))
    })
}

async fn read_constraints(
    conn: &mut PgConnection,
    version: i64,
    opts: &InspectOptions,
    tables: &HashMap<i64, (String, String)>,
    schema: &mut Schema,
) -> Result<()> {
    let sql = if version >= 150000 {
        CONSTRAINTS_SQL_PG15
    } else {
        CONSTRAINTS_SQL_PG12
    };
    let mut per_table: BTreeMap<String, TableConstraints> = BTreeMap::new();
    for r in fetch(conn, sql, opts, "constraints").await? {
        let Some((tname, rel)) = tables.get(&get::<i64>(&r, 0)?) else {
            continue;
        };
        let Some(t) = schema.tables.get_mut(tname) else {
            continue;
        };
        let name: String = get(&r, 1)?;
        let kind: String = get(&r, 2)?;
        let columns: Vec<String> = get(&r, 3)?;
        let not_valid = !get::<bool>(&r, 5)?;
        let acc = per_table.entry(tname.clone()).or_default();
        match kind.as_str() {
            "p" => {
                t.primary_key_name = (!is_default_name(&name, rel, None, "pkey")).then_some(name);
                t.primary_key = Some(columns);
            }
            "u" => {
                let include: Vec<String> = get(&r, 15)?;
                let u = Unique {
                    name: None,
                    columns,
                    nulls_not_distinct: get(&r, 13)?,
                };
                // The index name PostgreSQL chose was built from key and INCLUDE columns.
                let all: Vec<String> = u.columns.iter().chain(&include).cloned().collect();
                if is_default_name(&name, rel, Some(&name_addition(&all)), "key") {
                    let short = format!("unique({})", u.columns.join(", "));
                    let long = format!(
                        "{short}{}",
                        if u.nulls_not_distinct {
                            " nulls not distinct"
                        } else {
                            ""
                        }
                    );
                    acc.uniques.1.push(Unnamed {
                        short,
                        long,
                        value: u,
                    });
                } else {
                    acc.uniques.0.push((
                        name.clone(),
                        Unique {
                            name: Some(name),
                            ..u
                        },
                    ));
                }
            }
            "c" => {
                let expression: String = get::<Option<String>>(&r, 4)?.unwrap_or_default();
                // "t_col_check" when the expression uses one column, "t_check" otherwise.
                let column = (columns.len() == 1).then(|| columns[0].as_str());
                let c = Check {
                    name: None,
                    expression,
                    not_valid,
                };
                if is_default_name(&name, rel, column, "check") {
                    let short = format!("check({})", strip_outer_parens(&c.expression));
                    let long = format!("{short}{}", if not_valid { " not valid" } else { "" });
                    acc.checks.1.push(Unnamed {
                        short,
                        long,
                        value: c,
                    });
                } else {
                    acc.checks.0.push((
                        name.clone(),
                        Check {
                            name: Some(name),
                            ..c
                        },
                    ));
                }
            }
            "f" => {
                let ref_table = match (get::<Option<String>>(&r, 8)?, get::<Option<String>>(&r, 9)?)
                {
                    (Some(n), Some(t)) => display_name(&n, &t),
                    _ => String::new(),
                };
                let set_columns: Vec<String> = get(&r, 14)?;
                let deferrable = get::<bool>(&r, 6)?.then(|| {
                    if get::<bool>(&r, 7).unwrap_or(false) {
                        "initially deferred".to_string()
                    } else {
                        "initially immediate".to_string()
                    }
                });
                let on_update = action(&get::<String>(&r, 11)?, &[]);
                let on_delete = action(&get::<String>(&r, 12)?, &set_columns);
                let fk = ForeignKey {
                    name: None,
                    columns,
                    ref_table,
                    ref_columns: get(&r, 10)?,
                    on_delete,
                    on_update,
                    deferrable,
                    not_valid,
                };
                if is_default_name(&name, rel, Some(&name_addition(&fk.columns)), "fkey") {
                    let short = format!("foreign key({})", fk.columns.join(", "));
                    let long = format!(
                        "{short} references {}({}){}{}{}",
                        fk.ref_table,
                        fk.ref_columns.join(", "),
                        fk.on_delete
                            .as_ref()
                            .map(|a| format!(" on delete {a}"))
                            .unwrap_or_default(),
                        fk.on_update
                            .as_ref()
                            .map(|a| format!(" on update {a}"))
                            .unwrap_or_default(),
                        fk.deferrable
                            .as_ref()
                            .map(|d| format!(" deferrable {d}"))
                            .unwrap_or_default(),
                    );
                    acc.fks.1.push(Unnamed {
                        short,
                        long,
                        value: fk,
                    });
                } else {
                    acc.fks.0.push((
                        name.clone(),
                        ForeignKey {
                            name: Some(name),
                            ..fk
                        },
                    ));
                }
            }
            _ => {}
        }
    }
    for (tname, c) in per_table {
        let Some(t) = schema.tables.get_mut(&tname) else {
            continue;
        };
        insert_keyed(&mut t.uniques, c.uniques.0, c.uniques.1);
        insert_keyed(&mut t.checks, c.checks.0, c.checks.1);
        insert_keyed(&mut t.foreign_keys, c.fks.0, c.fks.1);
    }
    Ok(())
}
