use tidemark_core::Dialect;

use crate::analysis::{Ctx, Unit};
use crate::rule::{Category, Level, POSTGRES, Rule, Sink};

/// PostgreSQL refuses `CREATE/DROP INDEX CONCURRENTLY` and `REINDEX … CONCURRENTLY` inside a
/// transaction block. tidemark sees such a statement and runs the migration outside a
/// transaction by itself (as `up` and the shadow replay do), so this is a warning: the
/// migration loses its all-or-nothing rollback. Recognised by keywords, because the parser
/// does not read all of these forms.
pub struct ConcurrentlyInTransaction;

const HELP: &str = "keep the statement in a migration of its own, and say so with `-- tidemark:no-transaction` at the top of the file";

impl Rule for ConcurrentlyInTransaction {
    fn id(&self) -> &'static str {
        "concurrently-in-transaction"
    }
    fn category(&self) -> Category {
        Category::HalfApply
    }
    fn default_level(&self) -> Level {
        Level::Warning
    }
    fn dialects(&self) -> &'static [Dialect] {
        POSTGRES
    }
    fn description(&self) -> &'static str {
        "CREATE/DROP INDEX CONCURRENTLY or REINDEX CONCURRENTLY in a migration not marked no-transaction: tidemark runs it outside a transaction (PostgreSQL refuses it inside one), so a failure half way is not rolled back"
    }
    fn help(&self) -> &'static str {
        HELP
    }
    fn check(&self, _cx: &Ctx, unit: &Unit, sink: &mut Sink) {
        if !unit.migration.transactional {
            return;
        }
        for stmt in &unit.up.stmts {
            let first = stmt.words.first().map(|w| w.upper.as_str());
            let concurrent = match first {
                Some("CREATE" | "DROP" | "REINDEX") => stmt.has_word_within("CONCURRENTLY", 5),
                Some("ALTER") => {
                    stmt.words.iter().any(|w| w.upper == "DETACH")
                        && stmt.words.iter().any(|w| w.upper == "CONCURRENTLY")
                }
                _ => false,
            };
            if !concurrent {
                continue;
            }
            sink.statement(
                &unit.up,
                stmt,
                stmt.word_span("CONCURRENTLY").unwrap_or(stmt.span()),
                "CONCURRENTLY cannot run inside a transaction block: tidemark runs this whole migration outside one, so a failure half way is not rolled back",
                HELP,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::pg;

    const RULE: &str = "concurrently-in-transaction";

    #[test]
    fn flags_concurrently_in_a_transactional_file() {
        assert_eq!(
            pg(RULE, "CREATE UNIQUE INDEX CONCURRENTLY i ON t (a);"),
            vec!["1:21"]
        );
        assert_eq!(pg(RULE, "DROP INDEX CONCURRENTLY i;"), vec!["1:12"]);
        assert_eq!(pg(RULE, "REINDEX INDEX CONCURRENTLY i;"), vec!["1:15"]);
    }

    #[test]
    fn accepts_no_transaction_files_and_refresh() {
        assert!(
            pg(
                RULE,
                "-- tidemark:no-transaction\nCREATE INDEX CONCURRENTLY i ON t (a);"
            )
            .is_empty()
        );
        assert!(pg(RULE, "REFRESH MATERIALIZED VIEW CONCURRENTLY mv;").is_empty());
        assert!(pg(RULE, "CREATE INDEX i ON t (a);").is_empty());
    }
}
