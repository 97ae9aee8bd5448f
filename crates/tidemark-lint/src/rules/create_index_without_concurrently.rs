use sqlparser::ast::{AlterTableOperation, Spanned, Statement, TableConstraint};
use tidemark_core::Dialect;

use super::parsed;
use crate::analysis::{Ctx, Unit};
use crate::rule::{Category, Level, POSTGRES, Rule, Sink};

/// PostgreSQL `CREATE INDEX` without `CONCURRENTLY` on a table that already exists: writes to
/// the table wait for the whole index build. `ADD UNIQUE`/`ADD PRIMARY KEY` build an index the
/// same way, under an even stronger lock.
pub struct CreateIndexWithoutConcurrently;

const HELP: &str =
    "use CREATE INDEX CONCURRENTLY in a migration of its own marked `-- tidemark:no-transaction`";

impl Rule for CreateIndexWithoutConcurrently {
    fn id(&self) -> &'static str {
        "create-index-without-concurrently"
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
        "CREATE INDEX without CONCURRENTLY (or ADD UNIQUE / PRIMARY KEY) on a table the migration did not create: writes block for the whole index build"
    }
    fn help(&self) -> &'static str {
        HELP
    }
    fn check(&self, _cx: &Ctx, unit: &Unit, sink: &mut Sink) {
        for (stmt, ast) in parsed(unit) {
            match ast {
                Statement::CreateIndex(ci)
                    if !ci.concurrently && !unit.creates_table(&ci.table_name) =>
                {
                    let name = ci
                        .name
                        .as_ref()
                        .map_or(String::new(), |n| format!(" `{n}`"));
                    sink.statement(
                        &unit.up,
                        stmt,
                        stmt.word_span("INDEX").unwrap_or(stmt.span()),
                        format!(
                            "creating index{name} without CONCURRENTLY blocks writes to `{}` until the index is built",
                            ci.table_name
                        ),
                        HELP,
                    );
                }
                Statement::AlterTable(a) if !unit.creates_table(&a.name) => {
                    for op in &a.operations {
                        let AlterTableOperation::AddConstraint { constraint, .. } = op else {
                            continue;
                        };
                        let kind = match constraint {
                            TableConstraint::Unique(_) => "UNIQUE",
                            TableConstraint::PrimaryKey(_) => "PRIMARY KEY",
                            _ => continue,
                        };
                        sink.statement(
                            &unit.up,
                            stmt,
                            stmt.span_of(constraint.span()),
                            format!(
                                "adding a {kind} constraint builds its index while `{}` is locked against reads and writes",
                                a.name
                            ),
                            format!("CREATE UNIQUE INDEX CONCURRENTLY first (in a `-- tidemark:no-transaction` migration), then ADD CONSTRAINT … {kind} USING INDEX"),
                        );
                    }
                }
                _ => {}
            }
        }
        for (stmt, fact) in super::server_facts(unit) {
            let crate::server::Fact::CreatesIndex {
                table,
                concurrently: false,
                ..
            } = fact
            else {
                continue;
            };
            if unit.creates_table_key(table) {
                continue;
            }
            sink.statement(
                &unit.up,
                stmt,
                stmt.word_span("INDEX").unwrap_or(stmt.span()),
                format!("creating an index without CONCURRENTLY blocks writes to `{table}` until the index is built"),
                HELP,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{my, pg};

    const RULE: &str = "create-index-without-concurrently";

    #[test]
    fn sees_indexes_only_postgresql_s_grammar_reads() {
        // `ON ONLY` (a partitioned table's own index): sqlparser refuses it.
        assert_eq!(pg(RULE, "CREATE INDEX i ON ONLY events (at);"), vec!["1:8"]);
        assert!(
            pg(
                RULE,
                "CREATE TABLE events (at int);\nCREATE INDEX i ON ONLY events (at);"
            )
            .is_empty()
        );
    }

    #[test]
    fn flags_blocking_index_builds() {
        assert_eq!(
            pg(RULE, "CREATE INDEX idx_users_email ON users (email);"),
            vec!["1:8"]
        );
        assert_eq!(
            pg(RULE, "CREATE UNIQUE INDEX i ON users (lower(email));"),
            vec!["1:15"]
        );
        assert_eq!(
            pg(
                RULE,
                "ALTER TABLE users ADD CONSTRAINT u_email UNIQUE (email);"
            ),
            vec!["1:34"]
        );
    }

    #[test]
    fn accepts_concurrently_new_tables_using_index_and_other_dialects() {
        let no_tx = "-- tidemark:no-transaction\nCREATE INDEX CONCURRENTLY i ON users (email);";
        assert!(pg(RULE, no_tx).is_empty());
        assert!(pg(RULE, "CREATE TABLE t (a int);\nCREATE INDEX i ON t (a);").is_empty());
        assert!(
            pg(
                RULE,
                "ALTER TABLE users ADD CONSTRAINT u UNIQUE USING INDEX i;"
            )
            .is_empty()
        );
        assert!(
            my(RULE, "CREATE INDEX i ON users (email);").is_empty(),
            "PostgreSQL only"
        );
    }
}
