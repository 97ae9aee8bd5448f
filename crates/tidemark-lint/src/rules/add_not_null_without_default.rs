use sqlparser::ast::{AlterTableOperation, ColumnDef, ColumnOption};
use tidemark_core::Dialect;

use super::alter_tables;
use crate::analysis::{Ctx, Unit};
use crate::rule::{ALL_DIALECTS, Category, Level, Rule, Sink};

/// `ADD COLUMN … NOT NULL` without a default on an existing table.
pub struct AddNotNullWithoutDefault;

const HELP: &str = "add the column nullable (or with a DEFAULT), backfill it, and set NOT NULL in a later migration";

impl Rule for AddNotNullWithoutDefault {
    fn id(&self) -> &'static str {
        "add-not-null-without-default"
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
        "adding a NOT NULL column without a DEFAULT to an existing table: fails on a non-empty table (PostgreSQL, SQLite) or fills in 0/'' silently (MySQL), and the running release's INSERTs fail"
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
                let AlterTableOperation::AddColumn { column_def, .. } = op else {
                    continue;
                };
                if requires_value(column_def) {
                    sink.statement(
                        &unit.up,
                        stmt,
                        stmt.span_of(column_def.name.span),
                        format!(
                            "column `{}.{}` is NOT NULL without a DEFAULT: existing rows have no value for it, and the running release's INSERTs do not set it",
                            alter.name, column_def.name
                        ),
                        HELP,
                    );
                }
            }
        }
    }
}

/// True for a column that must be given a value but gets none from the database.
pub(crate) fn requires_value(col: &ColumnDef) -> bool {
    let mut not_null = false;
    for o in &col.options {
        match &o.option {
            ColumnOption::NotNull | ColumnOption::PrimaryKey(_) => not_null = true,
            ColumnOption::Default(_) | ColumnOption::Generated { .. } => return false,
            ColumnOption::DialectSpecific(tokens)
                if tokens
                    .iter()
                    .any(|t| t.to_string().eq_ignore_ascii_case("AUTO_INCREMENT")) =>
            {
                return false;
            }
            _ => {}
        }
    }
    // serial types carry their own default (a sequence).
    let ty = col.data_type.to_string().to_ascii_lowercase();
    not_null && !ty.ends_with("serial")
}

#[cfg(test)]
mod tests {
    use crate::testing::{lite, my, pg};

    const RULE: &str = "add-not-null-without-default";

    #[test]
    fn flags_not_null_without_default() {
        assert_eq!(
            pg(
                RULE,
                "ALTER TABLE users ADD COLUMN tenant_id bigint NOT NULL;"
            ),
            vec!["1:30"]
        );
        assert_eq!(
            my(
                RULE,
                "ALTER TABLE users ADD COLUMN tenant_id BIGINT NOT NULL;"
            ),
            vec!["1:30"]
        );
        assert_eq!(
            lite(
                RULE,
                "ALTER TABLE users ADD COLUMN tenant_id INTEGER NOT NULL;"
            ),
            vec!["1:30"]
        );
    }

    #[test]
    fn accepts_defaults_nullable_serial_identity_and_new_tables() {
        for up in [
            "ALTER TABLE t ADD COLUMN a int NOT NULL DEFAULT 0;",
            "ALTER TABLE t ADD COLUMN a int;",
            "ALTER TABLE t ADD COLUMN a bigserial NOT NULL;",
            "ALTER TABLE t ADD COLUMN a int GENERATED ALWAYS AS IDENTITY NOT NULL;",
            "CREATE TABLE t (x int);\nALTER TABLE t ADD COLUMN a int NOT NULL;",
        ] {
            assert!(pg(RULE, up).is_empty(), "{up}");
        }
        assert!(
            my(
                RULE,
                "ALTER TABLE t ADD COLUMN id INT NOT NULL AUTO_INCREMENT;"
            )
            .is_empty()
        );
    }
}
