use sqlparser::ast::AlterTableOperation;
use tidemark_core::Dialect;

use super::{alter_tables, name_span, server_facts};
use crate::analysis::{Ctx, Unit};
use crate::rule::{ALL_DIALECTS, Category, Level, Rule, Sink};
use crate::server::Fact;

/// `ALTER TABLE … DROP COLUMN` on an existing table.
pub struct DropColumn;

impl Rule for DropColumn {
    fn id(&self) -> &'static str {
        "drop-column"
    }
    fn category(&self) -> Category {
        Category::DataLoss
    }
    fn default_level(&self) -> Level {
        Level::Error
    }
    fn dialects(&self) -> &'static [Dialect] {
        ALL_DIALECTS
    }
    fn description(&self) -> &'static str {
        "DROP COLUMN on an existing table: the column's data is lost and the running release still reads or writes it"
    }
    fn help(&self) -> &'static str {
        "ship a release that no longer uses the column (e.g. Rails ignored_columns), then drop it in a later migration"
    }
    fn check(&self, _cx: &Ctx, unit: &Unit, sink: &mut Sink) {
        for (stmt, alter) in alter_tables(unit) {
            if unit.creates_table(&alter.name) {
                continue;
            }
            for op in &alter.operations {
                let AlterTableOperation::DropColumn { column_names, .. } = op else {
                    continue;
                };
                for col in column_names {
                    sink.statement(
                        &unit.up,
                        stmt,
                        stmt.span_of(col.span),
                        format!(
                            "dropping column `{}.{col}` deletes its data, and the running release may still read or write it",
                            alter.name
                        ),
                        "ship a release that no longer uses the column first, then drop it in a later migration",
                    );
                }
            }
        }
        for (stmt, fact) in server_facts(unit) {
            let Fact::DropsColumn { table, column } = fact else {
                continue;
            };
            if unit.creates_table_key(table) {
                continue;
            }
            sink.statement(
                &unit.up,
                stmt,
                name_span(stmt, column),
                format!("dropping column `{table}.{column}` deletes its data, and the running release may still read or write it"),
                "ship a release that no longer uses the column first, then drop it in a later migration",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{lite, my, pg};

    #[test]
    fn sees_drops_only_postgresql_s_grammar_reads() {
        // sqlparser does not know SET STATISTICS; PostgreSQL's parser does.
        let up = "ALTER TABLE users ALTER COLUMN bio SET STATISTICS 500, DROP COLUMN legacy;";
        assert_eq!(pg("drop-column", up), vec!["1:68"]);
        let up = "CREATE TABLE t (a int, b int);\nALTER TABLE t ALTER COLUMN a SET STATISTICS 5, DROP COLUMN b;";
        assert!(pg("drop-column", up).is_empty());
    }

    #[test]
    fn flags_each_dropped_column() {
        assert_eq!(
            pg(
                "drop-column",
                "ALTER TABLE users\n  DROP COLUMN email,\n  DROP COLUMN IF EXISTS phone;"
            ),
            vec!["2:15", "3:25"]
        );
        assert_eq!(
            my("drop-column", "ALTER TABLE users DROP email;"),
            vec!["1:24"]
        );
        assert_eq!(
            lite("drop-column", "ALTER TABLE users DROP COLUMN email;"),
            vec!["1:31"]
        );
    }

    #[test]
    fn ignores_new_tables_and_other_alterations() {
        assert!(
            pg(
                "drop-column",
                "CREATE TABLE t (a int, b int);\nALTER TABLE t DROP COLUMN b;"
            )
            .is_empty()
        );
        assert!(
            pg(
                "drop-column",
                "ALTER TABLE t DROP CONSTRAINT c;\nALTER TABLE t ADD COLUMN x int;"
            )
            .is_empty()
        );
    }
}
