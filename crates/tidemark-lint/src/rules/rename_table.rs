use sqlparser::ast::{AlterTableOperation, RenameTableNameKind, Spanned, Statement};
use tidemark_core::Dialect;

use super::parsed;
use crate::analysis::{Ctx, Unit};
use crate::rule::{ALL_DIALECTS, Category, Level, Rule, Sink};

/// Renaming an existing table: the release still running queries the old name.
pub struct RenameTable;

const HELP: &str = "create the new table (or a view under the new name), switch the application, then drop the old name in a later migration";

impl Rule for RenameTable {
    fn id(&self) -> &'static str {
        "rename-table"
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
        "renaming an existing table: the release still running queries the old name and fails until the new release is out"
    }
    fn help(&self) -> &'static str {
        HELP
    }
    fn check(&self, _cx: &Ctx, unit: &Unit, sink: &mut Sink) {
        for (stmt, ast) in parsed(unit) {
            match ast {
                Statement::AlterTable(a) if !unit.creates_table(&a.name) => {
                    for op in &a.operations {
                        if let AlterTableOperation::RenameTable { table_name } = op {
                            let (RenameTableNameKind::As(new) | RenameTableNameKind::To(new)) =
                                table_name;
                            sink.statement(
                                &unit.up,
                                stmt,
                                stmt.span_of(new.span()),
                                format!("renaming table `{}` to `{new}` breaks the running release, which still uses the old name", a.name),
                                HELP,
                            );
                        }
                    }
                }
                Statement::RenameTable(renames) => {
                    for r in renames.iter().filter(|r| !unit.creates_table(&r.old_name)) {
                        sink.statement(
                            &unit.up,
                            stmt,
                            stmt.span_of(r.old_name.span()),
                            format!("renaming table `{}` to `{}` breaks the running release, which still uses the old name", r.old_name, r.new_name),
                            HELP,
                        );
                    }
                }
                _ => {}
            }
        }
        for (stmt, fact) in super::server_facts(unit) {
            let crate::server::Fact::RenamesTable { table, to } = fact else {
                continue;
            };
            if unit.creates_table_key(table) {
                continue;
            }
            sink.statement(
                &unit.up,
                stmt,
                super::name_span(stmt, to),
                format!("renaming table `{table}` to `{to}` breaks the running release, which still uses the old name"),
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
            pg("rename-table", "ALTER TABLE users RENAME TO accounts;"),
            vec!["1:29"]
        );
        assert_eq!(
            my("rename-table", "RENAME TABLE a TO b, c TO d;"),
            vec!["1:14", "1:22"]
        );
        assert_eq!(
            lite("rename-table", "ALTER TABLE a RENAME TO b;"),
            vec!["1:25"]
        );
    }

    #[test]
    fn ignores_new_tables_and_column_renames() {
        assert!(
            pg(
                "rename-table",
                "CREATE TABLE a (x int);\nALTER TABLE a RENAME TO b;"
            )
            .is_empty()
        );
        assert!(pg("rename-table", "ALTER TABLE a RENAME COLUMN x TO y;").is_empty());
    }
}
