use sqlparser::ast::{Spanned, Statement};
use tidemark_core::Dialect;

use super::parsed;
use crate::analysis::{Ctx, Unit};
use crate::rule::{ALL_DIALECTS, Category, Level, Rule, Sink};

/// `TRUNCATE`: every row of the table is gone, and it cannot be rolled back on MySQL.
pub struct TruncateTable;

impl Rule for TruncateTable {
    fn id(&self) -> &'static str {
        "truncate-table"
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
        "TRUNCATE of an existing table: every row is deleted (with CASCADE, rows of referencing tables too)"
    }
    fn help(&self) -> &'static str {
        "delete only the rows you mean with DELETE … WHERE, or keep a backup and document why the data may go"
    }
    fn check(&self, _cx: &Ctx, unit: &Unit, sink: &mut Sink) {
        for (stmt, ast) in parsed(unit) {
            let Statement::Truncate(t) = ast else {
                continue;
            };
            for target in t
                .table_names
                .iter()
                .filter(|t| !unit.creates_table(&t.name))
            {
                sink.statement(
                    &unit.up,
                    stmt,
                    stmt.span_of(target.name.span()),
                    format!("TRUNCATE deletes every row of `{}`", target.name),
                    "delete only the rows you mean with DELETE … WHERE, or keep a backup and say why the data may go",
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{my, pg};

    #[test]
    fn flags_truncate() {
        assert_eq!(
            pg("truncate-table", "TRUNCATE sessions, tokens CASCADE;"),
            vec!["1:10", "1:20"]
        );
        assert_eq!(
            my("truncate-table", "TRUNCATE TABLE sessions;"),
            vec!["1:16"]
        );
    }

    #[test]
    fn ignores_tables_created_here_and_plain_deletes() {
        assert!(pg("truncate-table", "CREATE TABLE s (a int);\nTRUNCATE s;").is_empty());
        assert!(pg("truncate-table", "DELETE FROM s WHERE a = 1;").is_empty());
    }
}
