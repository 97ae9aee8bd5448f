//! The rule trait, severities, and the registry every list of rules derives from: `--list-rules`,
//! rule ids in ignore comments and `[lint] rules.<id>` in tidemark.toml all go through
//! [`crate::rules::RULES`], so adding a rule is one file plus one line there.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use tidemark_core::config::LintConfig;
use tidemark_core::{Dialect, Error, Result};

use crate::analysis::{Ctx, Unit};
use crate::rules::RULES;
use crate::source::{SourceFile, Span};

/// How bad a finding is. An `Error` fails `tidemark lint` (exit 1); a `Warning` does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A rule's level: its severity, or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level {
    Error,
    Warning,
    Off,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Off => "off",
        }
    }

    pub fn severity(self) -> Option<Severity> {
        match self {
            Level::Error => Some(Severity::Error),
            Level::Warning => Some(Severity::Warning),
            Level::Off => None,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Level, String> {
        match s {
            "error" => Ok(Level::Error),
            "warning" => Ok(Level::Warning),
            "off" => Ok(Level::Off),
            other => Err(format!(
                "`{other}` is not a rule level (expected \"error\", \"warning\" or \"off\")"
            )),
        }
    }
}

/// What a rule protects against; groups rules in `--list-rules` and docs/lint.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Category {
    DataLoss,
    BreaksRunningRelease,
    LongLock,
    HalfApply,
    Idempotency,
    Reversibility,
    Lint,
}

impl Category {
    pub fn name(self) -> &'static str {
        match self {
            Category::DataLoss => "data loss",
            Category::BreaksRunningRelease => "breaks the running release",
            Category::LongLock => "long lock",
            Category::HalfApply => "half-apply risk",
            Category::Idempotency => "idempotency",
            Category::Reversibility => "reversibility",
            Category::Lint => "lint itself",
        }
    }
}

pub const ALL_DIALECTS: &[Dialect] = &[Dialect::Postgres, Dialect::MySql, Dialect::Sqlite];
pub const POSTGRES: &[Dialect] = &[Dialect::Postgres];
pub const MYSQL: &[Dialect] = &[Dialect::MySql];

/// One lint rule. Rules are stateless unit structs listed once in [`RULES`].
pub trait Rule: Sync {
    /// Stable kebab-case id, used in output, config and ignore comments. Never rename one:
    /// add an alias in [`ALIASES`] instead.
    fn id(&self) -> &'static str;
    fn category(&self) -> Category;
    /// The level when tidemark.toml does not set one.
    fn default_level(&self) -> Level;
    fn dialects(&self) -> &'static [Dialect];
    /// What the rule catches, in one sentence (for `--list-rules` and docs).
    fn description(&self) -> &'static str;
    /// The safe alternative, in one sentence (for `--list-rules` and docs; findings carry
    /// their own, more specific, help).
    fn help(&self) -> &'static str;
    fn check(&self, cx: &Ctx, unit: &Unit, sink: &mut Sink);
}

/// Other names a rule answers to in config and ignore comments: squawk's ids for the same
/// checks, so a team moving from squawk keeps its ignores.
pub const ALIASES: &[(&str, &str)] = &[
    ("ban-drop-table", "drop-table"),
    ("ban-drop-column", "drop-column"),
    ("renaming-table", "rename-table"),
    ("renaming-column", "rename-column"),
    ("changing-column-type", "change-column-type"),
    (
        "require-concurrent-index-creation",
        "create-index-without-concurrently",
    ),
    (
        "require-concurrent-index-deletion",
        "drop-index-without-concurrently",
    ),
    (
        "constraint-missing-not-valid",
        "constraint-without-not-valid",
    ),
    (
        "adding-foreign-key-constraint",
        "constraint-without-not-valid",
    ),
    ("adding-required-field", "add-not-null-without-default"),
];

/// The rule with this id or alias.
pub fn find(id: &str) -> Option<&'static dyn Rule> {
    let id = ALIASES
        .iter()
        .find(|(alias, _)| *alias == id)
        .map_or(id, |(_, target)| target);
    RULES.iter().copied().find(|r| r.id() == id)
}

/// The rule with this id, or an error that lists the known ids.
pub fn parse_id(id: &str) -> Result<&'static dyn Rule, String> {
    find(id).ok_or_else(|| {
        let known: Vec<&str> = RULES.iter().map(|r| r.id()).collect();
        format!("unknown lint rule `{id}` (known: {})", known.join(", "))
    })
}

/// The level of every rule: defaults, overridden by tidemark.toml.
#[derive(Debug, Clone)]
pub struct Levels {
    levels: BTreeMap<&'static str, Level>,
}

impl Default for Levels {
    fn default() -> Self {
        Levels {
            levels: RULES.iter().map(|r| (r.id(), r.default_level())).collect(),
        }
    }
}

impl Levels {
    /// Defaults overridden by `[lint] rules` of tidemark.toml. An unknown rule id or level is
    /// an error naming it, so a typo never silently leaves a rule on.
    pub fn from_config(config: Option<&LintConfig>) -> Result<Levels> {
        let mut levels = Levels::default();
        for (id, level) in config.map(|c| &c.rules).into_iter().flatten() {
            let rule = parse_id(id)
                .map_err(|e| Error::Usage(format!("tidemark.toml [lint] rules: {e}")))?;
            let level: Level = level
                .parse()
                .map_err(|e| Error::Usage(format!("tidemark.toml [lint] rules.{id}: {e}")))?;
            levels.set(rule.id(), level);
        }
        Ok(levels)
    }

    pub fn set(&mut self, id: &'static str, level: Level) {
        self.levels.insert(id, level);
    }

    pub fn get(&self, rule: &dyn Rule) -> Level {
        self.levels
            .get(rule.id())
            .copied()
            .unwrap_or(rule.default_level())
    }
}

/// A finding: what a rule found, where, and what to do instead.
#[derive(Debug, Clone)]
pub struct Violation {
    pub rule: &'static str,
    pub severity: Severity,
    /// One line: what is wrong.
    pub message: String,
    /// One line: the safe alternative.
    pub help: String,
    pub source: Arc<SourceFile>,
    pub span: Span,
    /// Index (0-based) of the statement in its script, for statement-level ignores; `None`
    /// for findings about a script as a whole.
    pub statement: Option<usize>,
}

impl Violation {
    pub fn position(&self) -> crate::source::Position {
        self.source.position(self.span.start)
    }
}

/// Where rules put their findings. The linter sets the rule and its configured severity.
pub struct Sink {
    rule: &'static str,
    severity: Severity,
    pub(crate) found: Vec<Violation>,
}

impl Sink {
    pub(crate) fn new(rule: &'static str, severity: Severity) -> Sink {
        Sink {
            rule,
            severity,
            found: Vec::new(),
        }
    }

    /// A finding at `span` of `source`, about statement `statement` (if any).
    pub fn report(
        &mut self,
        source: &Arc<SourceFile>,
        span: Span,
        statement: Option<usize>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.found.push(Violation {
            rule: self.rule,
            severity: self.severity,
            message: message.into(),
            help: help.into(),
            source: Arc::clone(source),
            span,
            statement,
        });
    }

    /// A finding about statement `stmt` of `script`, at `span`.
    pub fn statement(
        &mut self,
        script: &crate::analysis::Script,
        stmt: &crate::analysis::Stmt,
        span: Span,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.report(&script.source, span, Some(stmt.index), message, help);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_kebab_case_and_aliases_resolve() {
        let mut seen = std::collections::BTreeSet::new();
        for r in RULES {
            let id = r.id();
            assert!(seen.insert(id), "duplicate rule id {id}");
            assert!(
                !id.is_empty()
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !id.starts_with('-')
                    && !id.ends_with('-'),
                "{id} is not kebab-case"
            );
            assert!(!r.description().is_empty() && !r.help().is_empty(), "{id}");
            assert!(!r.dialects().is_empty(), "{id}");
        }
        for (alias, target) in ALIASES {
            assert!(!seen.contains(alias), "alias {alias} shadows a rule id");
            assert_eq!(find(alias).map(|r| r.id()), Some(*target), "{alias}");
        }
    }

    #[test]
    fn config_overrides_levels_and_rejects_unknown_ids() {
        let mut cfg = LintConfig::default();
        cfg.rules.insert("drop-table".into(), "warning".into());
        cfg.rules.insert("ban-drop-column".into(), "off".into());
        let levels = Levels::from_config(Some(&cfg)).unwrap();
        assert_eq!(levels.get(find("drop-table").unwrap()), Level::Warning);
        assert_eq!(levels.get(find("drop-column").unwrap()), Level::Off);
        assert_eq!(levels.get(find("truncate-table").unwrap()), Level::Error);

        cfg.rules.insert("drop-tabel".into(), "off".into());
        let e = Levels::from_config(Some(&cfg)).unwrap_err().to_string();
        assert!(
            e.contains("`drop-tabel`") && e.contains("drop-table"),
            "{e}"
        );
        assert_eq!(
            Levels::from_config(Some(&cfg)).unwrap_err().class(),
            tidemark_core::ExitClass::Usage
        );

        let mut cfg = LintConfig::default();
        cfg.rules.insert("drop-table".into(), "fatal".into());
        let e = Levels::from_config(Some(&cfg)).unwrap_err().to_string();
        assert!(
            e.contains("rules.drop-table") && e.contains("`fatal`"),
            "{e}"
        );
    }
}
