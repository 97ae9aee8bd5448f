use sqlparser::ast::{AlterTableOperation, Spanned, TableConstraint};
use tidemark_core::Dialect;

use super::alter_tables;
use crate::analysis::{Ctx, Unit};
use crate::rule::{Category, Level, POSTGRES, Rule, Sink};

/// PostgreSQL `ADD CONSTRAINT … FOREIGN KEY|CHECK` without `NOT VALID` on an existing table:
/// every row is checked while the table is locked.
pub struct ConstraintWithoutNotValid;

const HELP: &str = "add the constraint with NOT VALID, then VALIDATE CONSTRAINT in a later migration (it takes a lock that lets reads and writes go on)";

impl Rule for ConstraintWithoutNotValid {
    fn id(&self) -> &'static str {
        "constraint-without-not-valid"
    }
    fn category(&self) -> Category {
        Category::LongLock
    }
    fn default_level(&self) -> Level {
        Level::Error
    }
    fn dialects(&self) -> &'static [Dialect] {
        POSTGRES
    }
    fn description(&self) -> &'static str {
        "adding a FOREIGN KEY or CHECK constraint to an existing table without NOT VALID: every row is validated while writes (and, for foreign keys, writes to the referenced table) wait"
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
                let AlterTableOperation::AddConstraint {
                    constraint,
                    not_valid: false,
                } = op
                else {
                    continue;
                };
                let kind = match constraint {
                    TableConstraint::ForeignKey(fk) => {
                        format!("foreign key to `{}`", fk.foreign_table)
                    }
                    TableConstraint::Check(_) => "CHECK constraint".to_string(),
                    _ => continue,
                };
                sink.statement(
                    &unit.up,
                    stmt,
                    stmt.span_of(constraint.span()),
                    format!(
                        "adding a {kind} without NOT VALID checks every row of `{}` while writes wait",
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
    use crate::testing::pg;

    const RULE: &str = "constraint-without-not-valid";

    #[test]
    fn flags_validating_constraints() {
        assert_eq!(
            pg(
                RULE,
                "ALTER TABLE orders ADD CONSTRAINT fk_user FOREIGN KEY (user_id) REFERENCES users (id);"
            ),
            vec!["1:35"]
        );
        assert_eq!(
            pg(
                RULE,
                "ALTER TABLE orders\n  ADD CONSTRAINT positive CHECK (total >= 0);"
            ),
            vec!["2:18"]
        );
    }

    #[test]
    fn accepts_not_valid_validate_and_new_tables() {
        assert!(
            pg(
                RULE,
                "ALTER TABLE orders ADD CONSTRAINT c CHECK (total >= 0) NOT VALID;"
            )
            .is_empty()
        );
        assert!(pg(RULE, "ALTER TABLE orders VALIDATE CONSTRAINT c;").is_empty());
        assert!(
            pg(RULE, "CREATE TABLE o (u int);\nALTER TABLE o ADD CONSTRAINT f FOREIGN KEY (u) REFERENCES users (id);")
                .is_empty()
        );
    }
}
