use sqlparser::ast::AlterTableOperation;
use tidemark_core::Dialect;

use super::alter_tables;
use crate::analysis::{Ctx, Unit, ident_key};
use crate::rule::{ALL_DIALECTS, Category, Level, Rule, Sink};

/// Renaming a column of an existing table (`RENAME COLUMN`, MySQL `CHANGE old new …`).
pub struct RenameColumn;

const HELP: &str = "add the new column, write both and backfill, switch reads in a release, then drop the old column later";

impl Rule for RenameColumn {
    fn id(&self) -> &'static str {
        "rename-column"
    }
    fn category(&self) -> Category {
        Category::BreaksRunningRelease
    }
    fn default_level(&self) -> Level {
        Level::Error
    }
    fn dialects(&self) -> &'static [Dialect] {
        ALL_DIALECTS
    }
    fn description(&self) -> &'static str {
        "renaming a column of an existing table: the release still running reads and writes the old name"
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
                let (old, new) = match op {
                    AlterTableOperation::RenameColumn {
                        old_column_name,
                        new_column_name,
                    } => (old_column_name, new_column_name),
                    AlterTableOperation::ChangeColumn {
                        old_name, new_name, ..
                    } if ident_key(old_name) != ident_key(new_name) => (old_name, new_name),
                    _ => continue,
                };
                sink.statement(
                    &unit.up,
                    stmt,
                    stmt.span_of(old.span),
                    format!(
                        "renaming column `{}.{old}` to `{new}` breaks the running release, which still uses the old name",
                        alter.name
                    ),
                    HELP,
                );
            }
        }
        for (stmt, fact) in super::server_facts(unit) {
            let crate::server::Fact::RenamesColumn { table, column, to } = fact else {
                continue;
            };
            if unit.creates_table_key(table) {
                continue;
            }
            sink.statement(
                &unit.up,
                stmt,
                super::name_span(stmt, column),
                format!("renaming column `{table}.{column}` to `{to}` breaks the running release, which still uses the old name"),
                HELP,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{lite, my, pg};

    #[test]
    fn flags_renames() {
        assert_eq!(
            pg(
                "rename-column",
                "ALTER TABLE users RENAME COLUMN name TO full_name;"
            ),
            vec!["1:33"]
        );
        assert_eq!(
            my(
                "rename-column",
                "ALTER TABLE users CHANGE name full_name VARCHAR(100);"
            ),
            vec!["1:26"]
        );
        assert_eq!(
            lite(
                "rename-column",
                "ALTER TABLE users RENAME COLUMN name TO n;"
            ),
            vec!["1:33"]
        );
    }

    #[test]
    fn ignores_change_without_rename_and_new_tables() {
        assert!(
            my(
                "rename-column",
                "ALTER TABLE users CHANGE name NAME VARCHAR(200);"
            )
            .is_empty()
        );
        assert!(
            pg(
                "rename-column",
                "CREATE TABLE t (a int);\nALTER TABLE t RENAME COLUMN a TO b;"
            )
            .is_empty()
        );
    }
}
