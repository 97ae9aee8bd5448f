use sqlparser::ast::{ObjectType, Spanned, Statement};
use tidemark_core::Dialect;

use super::{parsed, server_facts};
use crate::analysis::{Ctx, Unit};
use crate::rule::{ALL_DIALECTS, Category, Level, Rule, Sink};
use crate::server::Fact;

/// `DROP TABLE` of a table the migration did not create: its rows are gone, and the release
/// still running reads them.
pub struct DropTable;

impl Rule for DropTable {
    fn id(&self) -> &'static str {
        "drop-table"
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
        "DROP TABLE of an existing table: its data is lost and the running release still uses it"
    }
    fn help(&self) -> &'static str {
        "stop using the table in a release first, take a backup, and drop it in a later migration (or rename it aside and drop it once nobody misses it)"
    }
    fn check(&self, _cx: &Ctx, unit: &Unit, sink: &mut Sink) {
        for (stmt, ast) in parsed(unit) {
            let Statement::Drop {
                object_type: ObjectType::Table,
                names,
                ..
            } = ast
            else {
                continue;
            };
            for name in names.iter().filter(|n| !unit.creates_table(n)) {
                sink.statement(
                    &unit.up,
                    stmt,
                    stmt.span_of(name.span()),
                    format!("dropping table `{name}` deletes its data, and the running release may still read it"),
                    "ship a release that no longer uses the table first, keep a backup, then drop it in a later migration",
                );
            }
        }
        for (stmt, fact) in server_facts(unit) {
            let Fact::DropsTable { table, at } = fact else {
                continue;
            };
            if unit.creates_table_key(table) {
                continue;
            }
            let at = stmt.start + at;
            sink.statement(
                &unit.up,
                stmt,
                crate::source::Span::new(at, at + table.len()),
                format!("dropping table `{table}` deletes its data, and the running release may still read it"),
                "ship a release that no longer uses the table first, keep a backup, then drop it in a later migration",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{lite, my, pg};

    #[test]
    fn flags_dropping_an_existing_table() {
        assert_eq!(
            pg("drop-table", "SELECT 1;\nDROP TABLE users;"),
            vec!["2:12"]
        );
        assert_eq!(
            pg("drop-table", "DROP TABLE IF EXISTS a, b CASCADE;"),
            vec!["1:22", "1:25"]
        );
        assert_eq!(my("drop-table", "DROP TABLE `users`;"), vec!["1:12"]);
        assert_eq!(lite("drop-table", "DROP TABLE users;"), vec!["1:12"]);
    }

    #[test]
    fn ignores_tables_created_in_the_same_migration_and_other_drops() {
        assert!(pg("drop-table", "CREATE TABLE tmp (id int);\nDROP TABLE tmp;").is_empty());
        assert!(pg("drop-table", "DROP VIEW v;\nDROP INDEX i;").is_empty());
    }

    #[test]
    fn honours_ignores_with_a_reason() {
        let up =
            "-- tidemark:lint-ignore drop-table emptied and unused since 2.3\nDROP TABLE legacy;";
        assert!(pg("drop-table", up).is_empty());
        let up = "-- tidemark:lint-ignore drop-table\nDROP TABLE legacy;";
        assert_eq!(
            pg("drop-table", up),
            vec!["2:12"],
            "an ignore without reason is not honoured"
        );
    }
}
