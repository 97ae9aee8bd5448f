use tidemark_core::Dialect;

use crate::analysis::{Ctx, Unit};
use crate::rule::{ALL_DIALECTS, Category, Level, Rule, Sink};
use crate::source::Span;

/// An up script that is empty or holds only comments. It is a valid no-op migration (real
/// projects keep them to align version numbers across their PostgreSQL, MySQL and SQLite
/// directories); said once, so that one left empty by mistake is seen.
pub struct EmptyMigration;

impl Rule for EmptyMigration {
    fn id(&self) -> &'static str {
        "empty-migration"
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
        "an up script with no statement (empty or only comments): applied and recorded as a no-op"
    }
    fn help(&self) -> &'static str {
        "if it keeps version numbers aligned across databases, say so with `-- tidemark:lint-ignore-file empty-migration <reason>`; otherwise write its statements"
    }
    fn check(&self, _cx: &Ctx, unit: &Unit, sink: &mut Sink) {
        if !unit.up.stmts.is_empty() {
            return;
        }
        let m = unit.migration;
        sink.report(
            &unit.up.source,
            Span::at(0),
            None,
            format!(
                "migration {} ({}) holds no statement: it is applied and recorded, and changes nothing",
                m.version, m.name
            ),
            self.help(),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::lint_files;
    use tidemark_core::Dialect;

    #[test]
    fn a_comment_only_up_script_is_a_warning() {
        let f = lint_files(
            Dialect::Postgres,
            &[(
                "1_align.up.sql",
                "-- kept so versions match the MySQL directory\n",
            )],
            &[],
            None,
        );
        assert!(f.iter().any(|f| f.starts_with("empty-migration@")), "{f:?}");
        let f = lint_files(
            Dialect::Postgres,
            &[("1_t.up.sql", "CREATE TABLE t (id int);\n")],
            &[],
            None,
        );
        assert!(
            !f.iter().any(|f| f.starts_with("empty-migration@")),
            "{f:?}"
        );
    }
}
