use sqlparser::ast::{FromTable, Statement};
use tidemark_core::Dialect;

use super::{parsed, table_name};
use crate::analysis::{Ctx, Unit};
use crate::rule::{ALL_DIALECTS, Category, Level, Rule, Sink};

/// `DELETE` without `WHERE`: every row goes.
pub struct DeleteWithoutWhere;

impl Rule for DeleteWithoutWhere {
    fn id(&self) -> &'static str {
        "delete-without-where"
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
        "DELETE without WHERE on an existing table: every row is deleted"
    }
    fn help(&self) -> &'static str {
        "add a WHERE clause that selects only the rows you mean (WHERE true says \"all\" on purpose)"
    }
    fn check(&self, _cx: &Ctx, unit: &Unit, sink: &mut Sink) {
        for (stmt, ast) in parsed(unit) {
            let Statement::Delete(d) = ast else {
                continue;
            };
            if d.selection.is_some() {
                continue;
            }
            let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) = &d.from;
            let names: Vec<_> = from.iter().filter_map(table_name).collect();
            if !names.is_empty() && names.iter().all(|n| unit.creates_table(n)) {
                continue;
            }
            let what = names
                .first()
                .map_or("the table".to_string(), |n| format!("`{n}`"));
            sink.statement(
                &unit.up,
                stmt,
                stmt.span(),
                format!("DELETE without WHERE deletes every row of {what}"),
                "add a WHERE clause that selects only the rows you mean (write WHERE true if you really mean all)",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{lite, my, pg};

    #[test]
    fn flags_delete_without_where() {
        assert_eq!(
            pg("delete-without-where", "SELECT 1;\n  DELETE FROM sessions;"),
            vec!["2:3"]
        );
        assert_eq!(
            my("delete-without-where", "DELETE FROM sessions;"),
            vec!["1:1"]
        );
        assert_eq!(
            lite("delete-without-where", "DELETE FROM sessions;"),
            vec!["1:1"]
        );
    }

    #[test]
    fn accepts_a_where_clause_and_new_tables() {
        assert!(
            pg(
                "delete-without-where",
                "DELETE FROM sessions WHERE expires_at < now();"
            )
            .is_empty()
        );
        assert!(
            pg(
                "delete-without-where",
                "CREATE TABLE t (a int);\nINSERT INTO t VALUES (1);\nDELETE FROM t;"
            )
            .is_empty()
        );
    }
}
