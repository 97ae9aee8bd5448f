use sqlparser::ast::{ObjectType, Spanned, Statement};
use tidemark_core::Dialect;

use super::{parsed, server_facts};
use crate::analysis::{Ctx, Stmt, Unit, table_key};
use crate::rule::{Category, Level, POSTGRES, Rule, Sink};
use crate::server::{Fact, ReindexKind};
use crate::source::Span;

/// PostgreSQL `DROP INDEX` or `REINDEX` without `CONCURRENTLY` on an index the migration did
/// not create. `DROP INDEX` takes an ACCESS EXCLUSIVE lock on the index's table: every query
/// on the table queues behind it while it waits for running transactions, and then until the
/// migration commits. `REINDEX` blocks writes to the table (and reads that use the index) for
/// the whole rebuild.
pub struct DropIndexWithoutConcurrently;

const HELP: &str = "use DROP INDEX CONCURRENTLY (one index per statement, no CASCADE) or REINDEX … CONCURRENTLY, in a migration of its own marked `-- tidemark:no-transaction`";

const DROP_HELP: &str = "use DROP INDEX CONCURRENTLY (one index per statement) in a migration of its own marked `-- tidemark:no-transaction` (PostgreSQL refuses CONCURRENTLY in a transaction)";

const CASCADE_HELP: &str = "DROP INDEX CONCURRENTLY refuses CASCADE: drop what depends on the index first, then DROP INDEX CONCURRENTLY in a migration of its own marked `-- tidemark:no-transaction`";

const REINDEX_HELP: &str = "use REINDEX … CONCURRENTLY (PostgreSQL 12+) in a migration of its own marked `-- tidemark:no-transaction` (PostgreSQL refuses CONCURRENTLY in a transaction)";

const REINDEX_SYSTEM_HELP: &str = "REINDEX SYSTEM cannot run concurrently: run it by hand in a maintenance window rather than in a migration";

impl Rule for DropIndexWithoutConcurrently {
    fn id(&self) -> &'static str {
        "drop-index-without-concurrently"
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
        "DROP INDEX or REINDEX without CONCURRENTLY on an index or table the migration did not create: DROP INDEX locks the table against reads and writes until the migration commits, REINDEX blocks writes for the whole rebuild"
    }
    fn help(&self) -> &'static str {
        HELP
    }
    fn check(&self, _cx: &Ctx, unit: &Unit, sink: &mut Sink) {
        for (stmt, ast) in parsed(unit) {
            let Statement::Drop {
                object_type: ObjectType::Index,
                names,
                cascade,
                ..
            } = ast
            else {
                continue;
            };
            // sqlparser has no CONCURRENTLY for DROP INDEX: such a statement is the server
            // grammar's (below); this guards against a parser that reads the word as a name.
            if stmt.starts_with_words(&["DROP", "INDEX", "CONCURRENTLY"]) {
                continue;
            }
            for name in names {
                let index = table_key(name);
                if unit.created_index_table(&index).is_some() {
                    continue;
                }
                sink.statement(
                    &unit.up,
                    stmt,
                    stmt.span_of(name.span()),
                    drop_message(&index),
                    if *cascade { CASCADE_HELP } else { DROP_HELP },
                );
            }
        }
        for (stmt, fact) in server_facts(unit) {
            match fact {
                Fact::DropsIndex {
                    name,
                    concurrently: false,
                    cascade,
                    at,
                } => {
                    if unit.created_index_table(name).is_some() {
                        continue;
                    }
                    sink.statement(
                        &unit.up,
                        stmt,
                        span_at(stmt, *at, name),
                        drop_message(name),
                        if *cascade { CASCADE_HELP } else { DROP_HELP },
                    );
                }
                Fact::Reindexes {
                    kind,
                    name,
                    concurrently: false,
                } => {
                    let made_here = match kind {
                        ReindexKind::Index => unit.created_index_table(name).is_some(),
                        ReindexKind::Table => unit.creates_table_key(name),
                        _ => false,
                    };
                    if made_here {
                        continue;
                    }
                    let what = match kind {
                        ReindexKind::Index => format!("index `{name}`"),
                        ReindexKind::Table => format!("the indexes of `{name}`"),
                        ReindexKind::Schema => format!("every index in schema `{name}`"),
                        ReindexKind::Database | ReindexKind::System if name.is_empty() => {
                            format!("every index of the {}", kind.keyword().to_lowercase())
                        }
                        ReindexKind::Database | ReindexKind::System => {
                            format!("every index of {} `{name}`", kind.keyword().to_lowercase())
                        }
                    };
                    sink.statement(
                        &unit.up,
                        stmt,
                        stmt.word_span("REINDEX").unwrap_or(stmt.span()),
                        format!(
                            "REINDEX {} without CONCURRENTLY rebuilds {what} while writes to the table (and reads that use the index) wait",
                            kind.keyword()
                        ),
                        if *kind == ReindexKind::System {
                            REINDEX_SYSTEM_HELP
                        } else {
                            REINDEX_HELP
                        },
                    );
                }
                _ => {}
            }
        }
    }
}

fn drop_message(index: &str) -> String {
    format!(
        "dropping index `{index}` without CONCURRENTLY locks its table against reads and writes until the migration commits, and every query on the table queues behind it while it waits for the lock"
    )
}

/// The name at byte offset `at` of the statement (the statement's start if the grammar gave none).
fn span_at(stmt: &Stmt, at: usize, name: &str) -> Span {
    if at == 0 {
        return super::name_span(stmt, name);
    }
    let end = (at + name.len()).min(stmt.text.len());
    Span::new(stmt.start + at, stmt.start + end)
}

#[cfg(test)]
mod tests {
    use crate::testing::{assert_falls_back as falls_back, my, pg};
    use tidemark_core::Dialect;

    const RULE: &str = "drop-index-without-concurrently";

    #[test]
    fn flags_drop_index_without_concurrently() {
        assert_eq!(pg(RULE, "DROP INDEX idx_users_email;"), vec!["1:12"]);
        assert_eq!(
            pg(RULE, "DROP INDEX IF EXISTS app.a, b CASCADE;"),
            vec!["1:22", "1:29"]
        );
    }

    #[test]
    fn flags_drops_and_reindexes_only_postgresql_s_grammar_reads() {
        // sqlparser reads every plain DROP INDEX; a Unicode-escaped name is beyond it (the
        // server's name for it, `i1`, is not in the text: the finding points at the statement).
        let drop = r#"DROP INDEX U&"i\0031";"#;
        falls_back(drop);
        assert_eq!(pg(RULE, &format!("SELECT 1;\n  {drop}")), vec!["2:3"]);
        // REINDEX is beyond sqlparser in every form.
        for sql in [
            "REINDEX TABLE events;",
            "REINDEX INDEX idx_a;",
            "REINDEX SCHEMA app;",
            "REINDEX (VERBOSE) DATABASE app;",
            "REINDEX SYSTEM;",
        ] {
            falls_back(sql);
            assert_eq!(pg(RULE, sql), vec!["1:1"], "{sql}");
        }
    }

    #[test]
    fn accepts_concurrently_and_what_the_migration_created() {
        for sql in [
            "-- tidemark:no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS idx_a;",
            "-- tidemark:no-transaction\nREINDEX INDEX CONCURRENTLY idx_a;",
            "-- tidemark:no-transaction\nREINDEX (CONCURRENTLY) TABLE events;",
        ] {
            assert!(pg(RULE, sql).is_empty(), "{sql}");
        }
        assert!(
            pg(
                RULE,
                "CREATE INDEX i ON users (email);\nDROP INDEX i;\nREINDEX INDEX i;"
            )
            .is_empty()
        );
        // Created by the server's grammar only (ON ONLY), dropped by sqlparser's.
        assert!(pg(RULE, "CREATE INDEX i ON ONLY events (at);\nDROP INDEX i;").is_empty());
        assert!(pg(RULE, "CREATE TABLE events (at int);\nREINDEX TABLE events;").is_empty());
    }

    #[test]
    fn says_how_to_do_it() {
        let files = [("1_a.up.sql", "DROP INDEX i CASCADE;\nREINDEX SYSTEM;")];
        let set_dir = tempfile::tempdir().unwrap();
        for (name, body) in files {
            std::fs::write(set_dir.path().join(name), body).unwrap();
        }
        let set = tidemark_core::MigrationSet::load(set_dir.path(), None).unwrap();
        let findings = crate::Linter::new(Dialect::Postgres, Default::default())
            .lint(set.migrations.iter())
            .unwrap();
        let ours: Vec<_> = findings.iter().filter(|f| f.rule == RULE).collect();
        assert_eq!(ours.len(), 2);
        assert!(ours[0].message.contains("`i` without CONCURRENTLY"));
        assert!(ours[0].help.contains("refuses CASCADE"));
        assert!(ours[0].help.contains("-- tidemark:no-transaction"));
        assert!(
            ours[1]
                .message
                .starts_with("REINDEX SYSTEM without CONCURRENTLY")
        );
        assert!(ours[1].help.contains("maintenance window"));
    }

    #[test]
    fn postgresql_only() {
        assert!(my(RULE, "DROP INDEX i ON users;").is_empty());
    }
}
