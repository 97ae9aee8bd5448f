use tidemark_core::Dialect;

use crate::analysis::{Ctx, Unit};
use crate::rule::{ALL_DIALECTS, Category, Level, Rule, Sink};

/// A migration that changes only data (`INSERT`, `UPDATE`, `DELETE`, …) leaves no trace in the
/// schema, so when the history is in doubt nothing can tell whether it ran: `repair` and
/// `import` then leave it undetermined for a person to decide, and running it twice (prices
/// multiplied twice, seed rows duplicated) is the damage tidemark exists to prevent. A
/// `-- tidemark:verify <query>` directive gives them the evidence.
pub struct DataMigrationWithoutVerify;

const HELP: &str = "add `-- tidemark:verify <query>` at the top (its first column: true when the effect is in place), and guard the statements so a second run changes nothing (e.g. WHERE total < 100000, INSERT … ON CONFLICT DO NOTHING)";

/// The first keywords of statements that change data, not schema.
const DATA: &[&str] = &["INSERT", "UPDATE", "DELETE", "MERGE", "REPLACE", "UPSERT"];
/// Statements that change nothing persistent (or only the session).
const NEUTRAL: &[&str] = &[
    "SELECT",
    "WITH",
    "SET",
    "BEGIN",
    "START",
    "COMMIT",
    "END",
    "ROLLBACK",
    "SAVEPOINT",
    "RELEASE",
    "ANALYZE",
];

impl Rule for DataMigrationWithoutVerify {
    fn id(&self) -> &'static str {
        "data-migration-without-verify"
    }
    fn category(&self) -> Category {
        Category::Idempotency
    }
    fn default_level(&self) -> Level {
        Level::Warning
    }
    fn dialects(&self) -> &'static [Dialect] {
        ALL_DIALECTS
    }
    fn description(&self) -> &'static str {
        "a migration that changes only data, without a `tidemark:verify` query: when the history is in doubt, nothing can tell whether it ran"
    }
    fn help(&self) -> &'static str {
        HELP
    }
    fn check(&self, _cx: &Ctx, unit: &Unit, sink: &mut Sink) {
        if unit.migration.verify.is_some() {
            return;
        }
        let first = |s: &crate::analysis::Stmt| {
            s.words.first().map(|w| w.upper.clone()).unwrap_or_default()
        };
        let stmts = &unit.up.stmts;
        let data_only = stmts.iter().any(|s| DATA.contains(&first(s).as_str()))
            && stmts.iter().all(|s| {
                let w = first(s);
                DATA.contains(&w.as_str()) || NEUTRAL.contains(&w.as_str())
            });
        if !data_only {
            return;
        }
        let Some(stmt) = stmts.iter().find(|s| DATA.contains(&first(s).as_str())) else {
            return;
        };
        sink.statement(
            &unit.up,
            stmt,
            stmt.span(),
            format!(
                "migration {} changes only data: if the history is ever in doubt, the schema cannot tell whether it ran",
                unit.migration.version
            ),
            HELP,
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{lite, pg};

    const RULE: &str = "data-migration-without-verify";

    #[test]
    fn flags_data_only_migrations_without_a_verify_query() {
        assert_eq!(
            pg(RULE, "UPDATE orders SET total = total * 100 WHERE id > 0;"),
            vec!["1:1"]
        );
        assert_eq!(
            lite(
                RULE,
                "BEGIN;\nINSERT INTO roles (name) VALUES ('admin');\nCOMMIT;"
            ),
            vec!["2:1"]
        );
    }

    #[test]
    fn accepts_verified_and_schema_changing_migrations() {
        assert!(
            pg(
                RULE,
                "-- tidemark:verify SELECT COUNT(*) > 0 FROM roles WHERE name = 'admin'\nINSERT INTO roles (name) VALUES ('admin');"
            )
            .is_empty()
        );
        assert!(
            pg(
                RULE,
                "ALTER TABLE orders ADD COLUMN note text;\nUPDATE orders SET note = '';"
            )
            .is_empty()
        );
        assert!(pg(RULE, "SELECT 1;").is_empty());
    }
}
