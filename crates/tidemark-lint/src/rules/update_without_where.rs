use sqlparser::ast::{AssignmentTarget, Statement};
use tidemark_core::Dialect;

use super::{parsed, table_name};
use crate::analysis::{Ctx, Unit};
use crate::rule::{ALL_DIALECTS, Category, Level, Rule, Sink};

/// `UPDATE` without `WHERE`: every row's old value is overwritten. A backfill of a column the
/// same migration adds overwrites nothing and is not flagged.
pub struct UpdateWithoutWhere;

impl Rule for UpdateWithoutWhere {
    fn id(&self) -> &'static str {
        "update-without-where"
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
        "UPDATE without WHERE of existing columns: every row's previous value is overwritten (backfills of columns added in the same migration are fine)"
    }
    fn help(&self) -> &'static str {
        "add a WHERE clause (e.g. WHERE col IS NULL for a backfill), and backfill large tables in batches"
    }
    fn check(&self, _cx: &Ctx, unit: &Unit, sink: &mut Sink) {
        for (stmt, ast) in parsed(unit) {
            let Statement::Update(u) = ast else {
                continue;
            };
            if u.selection.is_some() {
                continue;
            }
            let Some(table) = table_name(&u.table) else {
                continue;
            };
            if unit.creates_table(table) {
                continue;
            }
            // A backfill: every column it sets was added by this migration, so no old value
            // is lost.
            let backfill = u.assignments.iter().all(|a| match &a.target {
                AssignmentTarget::ColumnName(c) => {
                    c.0.last()
                        .and_then(|p| p.as_ident())
                        .is_some_and(|i| unit.adds_column(table, i))
                }
                AssignmentTarget::Tuple(_) => false,
            });
            if backfill {
                continue;
            }
            sink.statement(
                &unit.up,
                stmt,
                stmt.span(),
                format!("UPDATE without WHERE overwrites a value in every row of `{table}`"),
                "add a WHERE clause that selects the rows you mean (e.g. WHERE col IS NULL), and update large tables in batches",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{my, pg};

    #[test]
    fn flags_update_without_where() {
        assert_eq!(
            pg("update-without-where", "UPDATE users SET role = 'member';"),
            vec!["1:1"]
        );
        assert_eq!(
            my(
                "update-without-where",
                "UPDATE users SET role = 'x' LIMIT 10;"
            ),
            vec!["1:1"]
        );
    }

    #[test]
    fn accepts_where_and_backfills_of_new_columns() {
        assert!(
            pg(
                "update-without-where",
                "UPDATE users SET role = 'member' WHERE role IS NULL;"
            )
            .is_empty()
        );
        assert!(
            pg(
                "update-without-where",
                "ALTER TABLE users ADD COLUMN plan text;\nUPDATE users SET plan = 'free';"
            )
            .is_empty()
        );
        assert_eq!(
            pg(
                "update-without-where",
                "ALTER TABLE users ADD COLUMN plan text;\nUPDATE users SET plan = 'free', role = 'x';"
            ),
            vec!["2:1"],
            "role is an existing column"
        );
    }
}
