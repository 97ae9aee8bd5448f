use sqlparser::ast::{AlterColumnOperation, AlterTableOperation};
use tidemark_core::Dialect;

use super::{alter_tables, name_span, server_facts};
use crate::analysis::{Ctx, Unit};
use crate::rule::{Category, Level, POSTGRES, Rule, Sink};
use crate::server::Fact;

/// PostgreSQL `ALTER COLUMN … SET NOT NULL` on an existing table scans it under an ACCESS
/// EXCLUSIVE lock (unless a validated `CHECK (col IS NOT NULL)` already proves it, PG 12+).
pub struct SetNotNull;

const HELP: &str = "add CHECK (col IS NOT NULL) NOT VALID, VALIDATE it in a later migration, then SET NOT NULL (PostgreSQL 12+ skips the scan) and drop the check";

impl Rule for SetNotNull {
    fn id(&self) -> &'static str {
        "set-not-null"
    }
    fn category(&self) -> Category {
        Category::LongLock
    }
    fn default_level(&self) -> Level {
        Level::Warning
    }
    fn dialects(&self) -> &'static [Dialect] {
        POSTGRES
    }
    fn description(&self) -> &'static str {
        "SET NOT NULL on an existing column: the whole table is scanned while reads and writes wait"
    }
    fn help(&self) -> &'static str {
        HELP
    }
    fn check(&self, _cx: &Ctx, unit: &Unit, sink: &mut Sink) {
        for (stmt, alter) in alter_tables(unit) {
            if unit.creates_table(&alter.name) {
                continue;
            }
            for op in &alter.operations {
                if let AlterTableOperation::AlterColumn {
                    column_name,
                    op: AlterColumnOperation::SetNotNull,
                } = op
                {
                    sink.statement(
                        &unit.up,
                        stmt,
                        stmt.span_of(column_name.span),
                        format!(
                            "SET NOT NULL on `{}.{column_name}` scans the whole table while reads and writes wait",
                            alter.name
                        ),
                        HELP,
                    );
                }
            }
        }
        for (stmt, fact) in server_facts(unit) {
            let Fact::SetsNotNull { table, column } = fact else {
                continue;
            };
            if unit.creates_table_key(table) {
                continue;
            }
            sink.statement(
                &unit.up,
                stmt,
                name_span(stmt, column),
                format!(
                    "SET NOT NULL on `{table}.{column}` scans the whole table while reads and writes wait"
                ),
                HELP,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::pg;

    #[test]
    fn sees_set_not_null_only_postgresql_s_grammar_reads() {
        // sqlparser does not know SET STATISTICS; PostgreSQL's parser does.
        let up = "ALTER TABLE users ALTER COLUMN bio SET STATISTICS 500, ALTER COLUMN email SET NOT NULL;";
        crate::testing::assert_falls_back(up);
        assert_eq!(pg("set-not-null", up), vec!["1:69"]);
        let up = "CREATE TABLE users (bio text, email text);\nALTER TABLE users ALTER COLUMN bio SET STATISTICS 5, ALTER COLUMN email SET NOT NULL;";
        assert!(pg("set-not-null", up).is_empty());
    }

    #[test]
    fn flags_set_not_null() {
        assert_eq!(
            pg(
                "set-not-null",
                "ALTER TABLE users ALTER COLUMN email SET NOT NULL;"
            ),
            vec!["1:32"]
        );
    }

    #[test]
    fn ignores_drop_not_null_and_new_tables() {
        assert!(
            pg(
                "set-not-null",
                "ALTER TABLE users ALTER COLUMN email DROP NOT NULL;"
            )
            .is_empty()
        );
        assert!(
            pg(
                "set-not-null",
                "CREATE TABLE t (a int);\nALTER TABLE t ALTER COLUMN a SET NOT NULL;"
            )
            .is_empty()
        );
    }
}
