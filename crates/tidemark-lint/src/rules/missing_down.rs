use tidemark_core::Dialect;

use crate::analysis::{Ctx, Unit};
use crate::rule::{ALL_DIALECTS, Category, Level, Rule, Sink};
use crate::source::Span;

/// A migration without a usable down script (none, empty, or only comments): `tidemark down`
/// refuses to revert it, so a rollback needs a backup instead.
pub struct MissingDown;

impl Rule for MissingDown {
    fn id(&self) -> &'static str {
        "missing-down"
    }
    fn category(&self) -> Category {
        Category::Reversibility
    }
    fn default_level(&self) -> Level {
        Level::Warning
    }
    fn dialects(&self) -> &'static [Dialect] {
        ALL_DIALECTS
    }
    fn description(&self) -> &'static str {
        "a migration without a down script (or with one that holds no statement): `tidemark down` cannot revert it"
    }
    fn help(&self) -> &'static str {
        "write a down script that undoes the up, or say why it cannot be undone with `-- tidemark:lint-ignore-file missing-down <reason>`"
    }
    fn check(&self, _cx: &Ctx, unit: &Unit, sink: &mut Sink) {
        if unit.down.is_some() {
            return;
        }
        let m = unit.migration;
        let message = match &m.down {
            Some(d) => format!(
                "the down script of migration {} ({}) holds no statement, so `tidemark down` cannot revert it",
                m.version,
                d.path.display()
            ),
            None => format!(
                "migration {} ({}) has no down script, so `tidemark down` cannot revert it",
                m.version, m.name
            ),
        };
        sink.report(&unit.up.source, Span::at(0), None, message, self.help());
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::lint_files;
    use tidemark_core::Dialect;

    fn missing(files: &[(&str, &str)]) -> Vec<String> {
        lint_files(Dialect::Sqlite, files, &[], None)
            .into_iter()
            .filter(|f| f.starts_with("missing-down@"))
            .collect()
    }

    #[test]
    fn flags_missing_and_empty_down_scripts() {
        assert_eq!(
            missing(&[("1_a.sql", "CREATE TABLE a (id int);")]),
            vec!["missing-down@1:1"]
        );
        assert_eq!(
            missing(&[
                ("1_a.up.sql", "CREATE TABLE a (id int);"),
                ("1_a.down.sql", "-- nothing to do\n")
            ]),
            vec!["missing-down@1:1"]
        );
    }

    #[test]
    fn accepts_a_down_script_or_a_file_ignore() {
        assert!(
            missing(&[
                ("1_a.up.sql", "CREATE TABLE a (id int);"),
                ("1_a.down.sql", "DROP TABLE a;")
            ])
            .is_empty()
        );
        let up = "-- tidemark:lint-ignore-file missing-down data migration, restore from backup instead\nUPDATE a SET b = 1 WHERE b IS NULL;";
        assert!(missing(&[("1_a.sql", up)]).is_empty());
    }
}
