use sqlparser::ast::{AlterTableOperation, Statement};
use tidemark_core::Dialect;

use super::parsed;
use crate::analysis::{Ctx, Unit};
use crate::rule::{ALL_DIALECTS, Category, Level, Rule, Sink};

/// `DROP` without `IF EXISTS`: re-running the migration where the object is already gone
/// fails. Off unless configured.
pub struct DropWithoutIfExists;

impl Rule for DropWithoutIfExists {
    fn id(&self) -> &'static str {
        "drop-without-if-exists"
    }
    fn category(&self) -> Category {
        Category::Idempotency
    }
    fn default_level(&self) -> Level {
        Level::Off
    }
    fn dialects(&self) -> &'static [Dialect] {
        ALL_DIALECTS
    }
    fn description(&self) -> &'static str {
        "DROP without IF EXISTS (and, on PostgreSQL, DROP COLUMN/CONSTRAINT without IF EXISTS): fails where the object is already gone"
    }
    fn help(&self) -> &'static str {
        "write DROP … IF EXISTS so the statement can run again"
    }
    fn check(&self, cx: &Ctx, unit: &Unit, sink: &mut Sink) {
        for (stmt, ast) in parsed(unit) {
            let what = match ast {
                Statement::Drop {
                    if_exists: false,
                    object_type,
                    names,
                    ..
                } => {
                    let names: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
                    format!(
                        "{} {}",
                        object_type.to_string().to_lowercase(),
                        names.join(", ")
                    )
                }
                // Only PostgreSQL has IF EXISTS on these (MySQL has not; SQLite neither).
                Statement::AlterTable(a) if cx.dialect == Dialect::Postgres => {
                    let parts: Vec<String> = a
                        .operations
                        .iter()
                        .filter_map(|op| match op {
                            AlterTableOperation::DropColumn {
                                if_exists: false,
                                column_names,
                                ..
                            } => Some(format!(
                                "column {}",
                                column_names
                                    .iter()
                                    .map(|c| format!("`{}.{c}`", a.name))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )),
                            AlterTableOperation::DropConstraint {
                                if_exists: false,
                                name,
                                ..
                            } => Some(format!("constraint `{name}`")),
                            _ => None,
                        })
                        .collect();
                    if parts.is_empty() {
                        continue;
                    }
                    parts.join(", ")
                }
                _ => continue,
            };
            sink.statement(
                &unit.up,
                stmt,
                stmt.span(),
                format!("dropping {what} without IF EXISTS fails where it is already gone"),
                "write IF EXISTS so the statement can run again",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{lite, pg};

    const RULE: &str = "drop-without-if-exists";

    #[test]
    fn flags_plain_drops_when_enabled() {
        let up = "DROP INDEX i;\nALTER TABLE a DROP COLUMN b, DROP CONSTRAINT c;";
        assert_eq!(pg(RULE, up), vec!["1:1", "2:1"]);
        assert_eq!(lite(RULE, "DROP VIEW v;"), vec!["1:1"]);
    }

    #[test]
    fn accepts_if_exists() {
        let up = "DROP INDEX IF EXISTS i;\nALTER TABLE a DROP COLUMN IF EXISTS b;\nDROP TABLE IF EXISTS t;";
        assert!(pg(RULE, up).is_empty());
        assert!(
            lite(RULE, "ALTER TABLE a DROP COLUMN b;").is_empty(),
            "SQLite has no IF EXISTS there"
        );
    }
}
