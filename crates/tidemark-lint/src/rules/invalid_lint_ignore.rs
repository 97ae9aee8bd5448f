use tidemark_core::Dialect;

use crate::analysis::{Ctx, Unit};
use crate::rule::{ALL_DIALECTS, Category, Level, Rule, Sink};

pub const ID: &str = "invalid-lint-ignore";

/// An ignore comment that is not honoured: no reason, an unknown rule, no statement next to
/// it. It cannot itself be silenced with an ignore comment.
pub struct InvalidLintIgnore;

impl Rule for InvalidLintIgnore {
    fn id(&self) -> &'static str {
        ID
    }
    fn category(&self) -> Category {
        Category::Lint
    }
    fn default_level(&self) -> Level {
        Level::Error
    }
    fn dialects(&self) -> &'static [Dialect] {
        ALL_DIALECTS
    }
    fn description(&self) -> &'static str {
        "a `tidemark:lint-ignore` comment without a reason, with an unknown rule id, or with no statement next to it; it is not honoured"
    }
    fn help(&self) -> &'static str {
        "write `-- tidemark:lint-ignore RULE reason` on the line above the statement (or `-- tidemark:lint-ignore-file RULE reason`)"
    }
    fn check(&self, _cx: &Ctx, unit: &Unit, sink: &mut Sink) {
        for script in unit.scripts() {
            for bad in &script.ignores.bad {
                sink.report(&script.source, bad.span, None, &bad.message, &bad.help);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::pg;

    #[test]
    fn flags_ignores_without_reason_or_with_unknown_rules() {
        let up = "-- tidemark:lint-ignore drop-table\nDROP TABLE a;\n  -- tidemark:lint-ignore no-such-rule because\nSELECT 1;";
        assert_eq!(pg("invalid-lint-ignore", up), vec!["1:1", "3:3"]);
    }

    #[test]
    fn accepts_valid_ignores_and_cannot_be_silenced_by_one() {
        assert!(
            pg(
                "invalid-lint-ignore",
                "-- tidemark:lint-ignore drop-table unused since 2.3\nDROP TABLE a;"
            )
            .is_empty()
        );
        let up = "-- tidemark:lint-ignore-file invalid-lint-ignore trying to hide it\n-- tidemark:lint-ignore drop-table\nDROP TABLE a;";
        assert_eq!(pg("invalid-lint-ignore", up), vec!["2:1"]);
    }
}
