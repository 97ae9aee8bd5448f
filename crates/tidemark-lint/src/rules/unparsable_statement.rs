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
                let at = stmt.start + failure.offset.unwrap_or(0);
                sink.statement(
                    script,
                    stmt,
                    Span::at(at),
                    format!(
                        "the {} parser cannot read `{}` ({}), so rules that need the parsed statement did not check it",
                        cx.dialect,
                        stmt.summary(),
                        failure.message
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
        let up = "SELECT 1;\nDO $$ BEGIN PERFORM 1; END $$;\nDROP INDEX CONCURRENTLY\n  idx;";
        assert_eq!(pg("unparsable-statement", up), vec!["2:1", "4:3"]);
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
        let up = "-- tidemark:lint-ignore unparsable-statement valid PL/pgSQL, checked by hand\nDO $$ BEGIN PERFORM 1; END $$;";
        assert!(pg("unparsable-statement", up).is_empty());
    }
}
