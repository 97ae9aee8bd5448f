use sqlparser::ast::{AlterColumnOperation, AlterTableOperation};
use tidemark_core::Dialect;

use super::alter_tables;
use crate::analysis::{Ctx, Unit};
use crate::rule::{ALL_DIALECTS, Category, Level, Rule, Sink};

/// Changing a column's type (`ALTER COLUMN … TYPE`, MySQL `MODIFY`/`CHANGE`).
pub struct ChangeColumnType;

const HELP: &str = "add a column with the new type, write both and backfill, switch the application, then drop the old column";

impl Rule for ChangeColumnType {
    fn id(&self) -> &'static str {
        "change-column-type"
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
        "changing the type of an existing column (ALTER COLUMN … TYPE, MySQL MODIFY/CHANGE): the running release may send or expect the old type"
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
                let (col, ty, how) = match op {
                    AlterTableOperation::AlterColumn {
                        column_name,
                        op: AlterColumnOperation::SetDataType { data_type, .. },
                    } => (column_name, data_type, "changing the type of"),
                    // MySQL restates the whole definition; the old type is unknown here.
                    AlterTableOperation::ModifyColumn {
                        col_name,
                        data_type,
                        ..
                    } => (col_name, data_type, "redefining (MODIFY)"),
                    AlterTableOperation::ChangeColumn {
                        old_name,
                        data_type,
                        ..
                    } => (old_name, data_type, "redefining (CHANGE)"),
                    _ => continue,
                };
                sink.statement(
                    &unit.up,
                    stmt,
                    stmt.span_of(col.span),
                    format!(
                        "{how} column `{}.{col}` to {ty} can break the running release, which may still send or expect the old type",
                        alter.name
                    ),
                    HELP,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{my, pg};

    #[test]
    fn flags_type_changes() {
        assert_eq!(
            pg(
                "change-column-type",
                "ALTER TABLE users ALTER COLUMN id TYPE bigint;"
            ),
            vec!["1:32"]
        );
        assert_eq!(
            pg(
                "change-column-type",
                "ALTER TABLE t ALTER COLUMN a SET DATA TYPE text USING a::text;"
            ),
            vec!["1:28"]
        );
        assert_eq!(
            my(
                "change-column-type",
                "ALTER TABLE t MODIFY COLUMN a BIGINT NOT NULL;"
            ),
            vec!["1:29"]
        );
    }

    #[test]
    fn ignores_other_column_changes_and_new_tables() {
        assert!(
            pg(
                "change-column-type",
                "ALTER TABLE t ALTER COLUMN a SET DEFAULT 0;"
            )
            .is_empty()
        );
        assert!(
            pg(
                "change-column-type",
                "CREATE TABLE t (a int);\nALTER TABLE t ALTER COLUMN a TYPE bigint;"
            )
            .is_empty()
        );
    }
}
