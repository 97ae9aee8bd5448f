use tidemark_core::Dialect;

use crate::analysis::{Ctx, Unit};
use crate::rule::{Category, Level, POSTGRES, Rule, Sink};

/// PostgreSQL `VACUUM FULL` and `CLUSTER` rewrite a table under an ACCESS EXCLUSIVE lock.
/// Recognised by keywords, because the parser reads neither `CLUSTER` nor `VACUUM (FULL)`.
pub struct VacuumFullOrCluster;

impl Rule for VacuumFullOrCluster {
    fn id(&self) -> &'static str {
        "vacuum-full-or-cluster"
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
        "VACUUM FULL or CLUSTER in a migration: the table is rewritten while reads and writes wait"
    }
    fn help(&self) -> &'static str {
        "run it by hand in a maintenance window, or use pg_repack, which rewrites without the long lock"
    }
    fn check(&self, _cx: &Ctx, unit: &Unit, sink: &mut Sink) {
        for stmt in &unit.up.stmts {
            let what = if stmt.starts_with_words(&["VACUUM"]) && stmt.has_word_within("FULL", 4) {
                "VACUUM FULL"
            } else if stmt.starts_with_words(&["CLUSTER"]) {
                "CLUSTER"
            } else {
                continue;
            };
            sink.statement(
                &unit.up,
                stmt,
                stmt.span(),
                format!("{what} rewrites the table while reads and writes wait"),
                "run it by hand in a maintenance window, or use pg_repack, which rewrites without the long lock",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::pg;

    #[test]
    fn flags_vacuum_full_and_cluster() {
        let up = "-- tidemark:no-transaction\nVACUUM FULL events;\nVACUUM (FULL, ANALYZE) events;\nCLUSTER events USING events_pkey;";
        assert_eq!(pg("vacuum-full-or-cluster", up), vec!["2:1", "3:1", "4:1"]);
    }

    #[test]
    fn accepts_plain_vacuum_and_analyze() {
        let up =
            "-- tidemark:no-transaction\nVACUUM events;\nVACUUM ANALYZE events;\nSELECT 'CLUSTER';";
        assert!(pg("vacuum-full-or-cluster", up).is_empty());
    }
}
