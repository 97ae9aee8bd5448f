use sqlparser::ast::{AlterColumnOperation, AlterTableOperation, ColumnOption};
use tidemark_core::Dialect;

use super::{alter_tables, name_span, server_facts};
use crate::analysis::{Ctx, Unit};
use crate::rule::{Category, Level, POSTGRES, Rule, Sink};
use crate::server::{Fact, Rewrite, VOLATILE_FUNCTIONS};

/// PostgreSQL statements that rewrite a whole existing table (and rebuild its indexes) under
/// an ACCESS EXCLUSIVE lock: a column type change, a column added with a volatile default, a
/// serial, identity or stored generated column, `SET LOGGED`/`UNLOGGED`.
pub struct TableRewrite;

const TYPE_HELP: &str = "add a column of the new type, backfill it in batches, switch the application, then drop the old column";
const ADD_HELP: &str =
    "add the column without a default (or with a constant one), then fill it in batches";
const LOGGING_HELP: &str =
    "do it in a maintenance window, or create a new table and copy the data in batches";

fn type_message(table: &str, column: &str, to: &str) -> String {
    format!(
        "changing `{table}.{column}` to {to} rewrites the table and its indexes while reads and writes wait (unless the change is binary-coercible, e.g. varchar(n) to text)"
    )
}

fn add_message(table: &str, column: &str, why: &str) -> String {
    format!("adding `{table}.{column}` {why} rewrites the table while reads and writes wait")
}

fn logging_message(table: &str) -> String {
    format!("SET LOGGED/UNLOGGED rewrites `{table}` while reads and writes wait")
}

impl Rule for TableRewrite {
    fn id(&self) -> &'static str {
        "table-rewrite"
    }
    fn category(&self) -> Category {
        Category::LongLock
    }
    fn default_level(&self) -> Level {
        Level::Error
    }
    fn dialects(&self) -> &'static [Dialect] {
        POSTGRES
    }
    fn description(&self) -> &'static str {
        "a statement that rewrites an existing table and its indexes under an ACCESS EXCLUSIVE lock: ALTER COLUMN … TYPE, ADD COLUMN with a volatile default (random(), gen_random_uuid(), serial, identity, stored generated), SET LOGGED/UNLOGGED"
    }
    fn help(&self) -> &'static str {
        "add a new column (nullable or with a constant default), backfill it in batches, and switch over, instead of rewriting the table in place"
    }
    fn check(&self, _cx: &Ctx, unit: &Unit, sink: &mut Sink) {
        for (stmt, alter) in alter_tables(unit) {
            if unit.creates_table(&alter.name) {
                continue;
            }
            let table = &alter.name;
            for op in &alter.operations {
                let (span, message, help) = match op {
                    AlterTableOperation::AlterColumn {
                        column_name,
                        op: AlterColumnOperation::SetDataType { data_type, .. },
                    } => (
                        stmt.span_of(column_name.span),
                        type_message(
                            &table.to_string(),
                            &column_name.to_string(),
                            &data_type.to_string(),
                        ),
                        TYPE_HELP,
                    ),
                    AlterTableOperation::AddColumn { column_def, .. } => {
                        let Some(why) = rewrite_reason(column_def) else {
                            continue;
                        };
                        (
                            stmt.span_of(column_def.name.span),
                            add_message(&table.to_string(), &column_def.name.to_string(), &why),
                            ADD_HELP,
                        )
                    }
                    AlterTableOperation::SetLogged | AlterTableOperation::SetUnlogged => (
                        stmt.word_span("SET").unwrap_or(stmt.span()),
                        logging_message(&table.to_string()),
                        LOGGING_HELP,
                    ),
                    _ => continue,
                };
                sink.statement(&unit.up, stmt, span, message, help);
            }
        }
        for (stmt, fact) in server_facts(unit) {
            let Fact::RewritesTable { table, rewrite } = fact else {
                continue;
            };
            if unit.creates_table_key(table) {
                continue;
            }
            let (span, message, help) = match rewrite {
                Rewrite::ColumnType { column, to } => (
                    name_span(stmt, column),
                    type_message(table, column, to.as_deref().unwrap_or("another type")),
                    TYPE_HELP,
                ),
                Rewrite::AddedColumn { column, why } => (
                    name_span(stmt, column),
                    add_message(table, column, why),
                    ADD_HELP,
                ),
                Rewrite::Logging => (
                    stmt.word_span("SET").unwrap_or(stmt.span()),
                    logging_message(table),
                    LOGGING_HELP,
                ),
            };
            sink.statement(&unit.up, stmt, span, message, help);
        }
    }
}

fn rewrite_reason(col: &sqlparser::ast::ColumnDef) -> Option<String> {
    let ty = col.data_type.to_string().to_ascii_lowercase();
    if ty.ends_with("serial") {
        return Some(format!("as {ty} (a nextval() default per row)"));
    }
    for o in &col.options {
        match &o.option {
            ColumnOption::Default(e) => {
                let text = e.to_string().to_ascii_lowercase();
                if let Some(f) = VOLATILE_FUNCTIONS
                    .iter()
                    .find(|f| text.contains(&format!("{f}(")))
                {
                    return Some(format!("with the volatile default {f}()"));
                }
            }
            ColumnOption::Generated { .. } => {
                return Some("as an identity or stored generated column".into());
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use crate::testing::{my, pg};

    #[test]
    fn sees_rewrites_only_postgresql_s_grammar_reads() {
        // sqlparser does not know SET STORAGE / SET STATISTICS; PostgreSQL's parser does.
        let up = "ALTER TABLE events ALTER COLUMN payload SET STORAGE EXTERNAL, ALTER COLUMN id TYPE bigint;";
        crate::testing::assert_falls_back(up);
        assert_eq!(pg("table-rewrite", up), vec!["1:76"]);
        let up = "ALTER TABLE t ALTER COLUMN a SET STATISTICS 100, ADD COLUMN token uuid DEFAULT gen_random_uuid(), ADD COLUMN n int DEFAULT 0;";
        crate::testing::assert_falls_back(up);
        assert_eq!(pg("table-rewrite", up), vec!["1:61"]);
        let up = "CREATE TABLE events (id int, payload text);\nALTER TABLE events ALTER COLUMN payload SET STORAGE EXTERNAL, ALTER COLUMN id TYPE bigint;";
        assert!(pg("table-rewrite", up).is_empty());
    }

    #[test]
    fn flags_rewrites() {
        assert_eq!(
            pg(
                "table-rewrite",
                "ALTER TABLE events ALTER COLUMN id TYPE bigint;"
            ),
            vec!["1:33"]
        );
        assert_eq!(
            pg(
                "table-rewrite",
                "ALTER TABLE t ADD COLUMN token uuid DEFAULT gen_random_uuid();"
            ),
            vec!["1:26"]
        );
        assert_eq!(
            pg("table-rewrite", "ALTER TABLE t ADD COLUMN n bigserial;"),
            vec!["1:26"]
        );
        assert_eq!(
            pg(
                "table-rewrite",
                "ALTER TABLE t ADD COLUMN n int GENERATED ALWAYS AS IDENTITY;"
            ),
            vec!["1:26"]
        );
    }

    #[test]
    fn accepts_constant_defaults_new_tables_and_other_dialects() {
        assert!(
            pg(
                "table-rewrite",
                "ALTER TABLE t ADD COLUMN a int NOT NULL DEFAULT 0;"
            )
            .is_empty()
        );
        assert!(
            pg(
                "table-rewrite",
                "ALTER TABLE t ADD COLUMN created_at timestamptz DEFAULT now();"
            )
            .is_empty()
        );
        assert!(
            pg(
                "table-rewrite",
                "CREATE TABLE t (a int);\nALTER TABLE t ALTER COLUMN a TYPE bigint;"
            )
            .is_empty()
        );
        assert!(my("table-rewrite", "ALTER TABLE t MODIFY a BIGINT;").is_empty());
    }
}
