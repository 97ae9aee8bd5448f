use tidemark_core::Dialect;

use crate::analysis::{Ctx, Unit};
use crate::rule::{ALL_DIALECTS, Category, Level, Rule, Sink};
use crate::source::Span;

/// A statement the dialect's parser cannot read. Rules that need the parsed statement cannot
/// check it, so it is reported instead of being skipped in silence.
pub struct UnparsableStatement;

const HELP: &str = "if it is valid SQL for your database, keep it and add `-- tidemark:lint-ignore unparsable-statement <reason>` (rules that need the parsed statement cannot check it); otherwise fix the syntax";

impl Rule for UnparsableStatement {
    fn id(&self) -> &'static str {
        "unparsable-statement"
    }
    fn category(&self) -> Category {
        Category::Lint
    }
    fn default_level(&self) -> Level {
        Level::Warning
    }
    fn dialects(&self) -> &'static [Dialect] {
        ALL_DIALECTS
    }
    fn description(&self) -> &'static str {
        "a statement the dialect's SQL parser cannot read: only keyword-based rules checked it"
    }
    fn help(&self) -> &'static str {
        HELP
    }
    fn check(&self, cx: &Ctx, unit: &Unit, sink: &mut Sink) {
        for script in unit.scripts() {
            for stmt in &script.stmts {
                let Err(failure) = &stmt.ast else {
                    continue;
                };
                if stmt.server.is_some() {
                    // The server's grammar read it: it has a class, and the rules that know
                    // its shape looked at it.
                    continue;
                }
                let why = match &failure.server {
                    Some(e) => format!(
                        "{}; PostgreSQL's own parser refuses it too: {e}",
                        failure.message
                    ),
                    None => failure.message.clone(),
                };
                let at = stmt.start + failure.offset.unwrap_or(0);
                sink.statement(
                    script,
                    stmt,
                    Span::at(at),
                    format!(
                        "the {} parser cannot read `{}` ({}), so rules that need the parsed statement did not check it",
                        cx.dialect,
                        stmt.summary(),
                        why
                    ),
                    HELP,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{lint_files, pg};
    use tidemark_core::Dialect;

    #[test]
    fn flags_what_the_parser_cannot_read_at_the_parser_position() {
        let up = "SELECT 1;\nFROB x;\nALTER TABLE t DROP CONSTRAINT c\n  ALTER TABLE t ADD d int;";
        assert_eq!(pg("unparsable-statement", up), vec!["2:1", "4:3"]);
    }

    #[test]
    fn what_postgresql_parses_is_not_unparsable() {
        // sqlparser refuses each of these; PostgreSQL's own grammar reads them.
        let up = "DO $$ BEGIN PERFORM 1; END $$;\nDROP INDEX CONCURRENTLY IF EXISTS i;\nCOMMENT ON FUNCTION f(int4) IS NULL;\nCOMMENT ON CONSTRAINT c ON t IS 'x';\nALTER INDEX IF EXISTS i RENAME TO j;\nREINDEX TABLE t;\nCREATE STATISTICS s ON a, b FROM t;\nALTER SEQUENCE s OWNED BY t.id;";
        assert!(pg("unparsable-statement", up).is_empty());
    }

    #[test]
    fn says_when_the_server_refuses_it_too() {
        let files = [(
            "1_a.up.sql",
            "ALTER TABLE t DROP CONSTRAINT c\nALTER TABLE t ADD d int;",
        )];
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(files[0].0), files[0].1).unwrap();
        let set = tidemark_core::MigrationSet::load(dir.path(), None).unwrap();
        let found = crate::Linter::new(Dialect::Postgres, crate::Levels::default())
            .lint(set.migrations.iter())
            .unwrap();
        let f = found
            .iter()
            .find(|f| f.rule == "unparsable-statement")
            .unwrap();
        assert!(
            f.message.contains(
                "PostgreSQL's own parser refuses it too: syntax error at or near \"ALTER\""
            ),
            "{}",
            f.message
        );
    }

    #[test]
    fn checks_down_scripts_too_and_accepts_valid_sql() {
        let files = [
            ("1_a.up.sql", "CREATE TABLE a (id int);"),
            ("1_a.down.sql", "DROP TABLE a;\nFROB a;"),
        ];
        let found: Vec<String> = lint_files(Dialect::Postgres, &files, &[], None)
            .into_iter()
            .filter(|f| f.starts_with("unparsable"))
            .collect();
        assert_eq!(found, vec!["unparsable-statement@2:1"]);
        assert!(
            pg(
                "unparsable-statement",
                "CREATE TABLE a (id int);\nSET lock_timeout = '2s';"
            )
            .is_empty()
        );
    }

    #[test]
    fn can_be_ignored_with_a_reason() {
        let up = "-- tidemark:lint-ignore unparsable-statement our own extension's syntax\nFROB x;";
        assert!(pg("unparsable-statement", up).is_empty());
    }
}
