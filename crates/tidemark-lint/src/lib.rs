//! Migration lint: rules that catch data loss, changes that break the running release, long
//! locks, half-applied migrations, non-idempotent DDL and missing or wrong down scripts, before
//! a migration reaches production.
//!
//! Each script is split with tidemark-core's splitter, so lines match what the engine runs,
//! and each statement is parsed with the dialect's `sqlparser` parser. A statement it cannot
//! read goes to the server's own grammar (PostgreSQL: libpg_query, see [`server`]), which gives
//! it a class and the facts the data-loss, rename and index rules need. A statement neither can
//! read is itself a finding (`unparsable-statement`), never skipped in silence.
//!
//! This crate finds; it does not render. Findings carry byte spans, and line and column are
//! computed from them when the CLI renders (text, JSON, GitHub annotations).
//!
//! ```
//! use tidemark_lint::{Levels, Linter};
//! # fn main() -> tidemark_core::Result<()> {
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::write(dir.path().join("1_drop.sql"), "ALTER TABLE users DROP COLUMN email;\n").unwrap();
//! let set = tidemark_core::MigrationSet::load(dir.path(), None)?;
//! let linter = Linter::new(tidemark_core::Dialect::Postgres, Levels::default());
//! let findings = linter.lint(set.migrations.iter())?;
//! let rules: Vec<&str> = findings.iter().map(|f| f.rule).collect();
//! assert_eq!(rules, ["missing-down", "drop-column"]);
//! let at = findings[1].position();
//! assert_eq!((at.line, at.column), (1, 31));
//! # Ok(()) }
//! ```

pub mod analysis;
pub mod classify;
pub mod ignore;
pub mod replay;
pub mod rule;
pub mod rules;
pub mod server;
pub mod source;

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod testing;

use tidemark_core::{Dialect, Migration, Result};

pub use analysis::{Ctx, Script, Stmt, Unit};
pub use classify::{LintClassifier, classify};
pub use replay::{ReplayEvidence, RoundTrip};
pub use rule::{ALIASES, Category, Level, Levels, Rule, Severity, Sink, Violation, find, parse_id};
pub use rules::{INVALID_LINT_IGNORE, RULES};
pub use source::{Position, SourceFile, Span};

/// Runs the rules that are on, for one dialect, over migrations.
pub struct Linter<'a> {
    pub dialect: Dialect,
    pub levels: Levels,
    pub replay: Option<&'a dyn ReplayEvidence>,
    /// As `up` will run the migrations: each statement's wait for a table lock is bounded by
    /// this (`None`: turned off in `[migrate]`).
    pub statement_lock_timeout: Option<std::time::Duration>,
}

impl<'a> Linter<'a> {
    pub fn new(dialect: Dialect, levels: Levels) -> Linter<'a> {
        Linter {
            dialect,
            levels,
            replay: None,
            statement_lock_timeout: Some(tidemark_core::engine::DEFAULT_STATEMENT_LOCK_TIMEOUT),
        }
    }

    /// The statement lock timeout `up` will use (`None`: off), as `[migrate]` configures it.
    pub fn with_statement_lock_timeout(mut self, t: Option<std::time::Duration>) -> Linter<'a> {
        self.statement_lock_timeout = t;
        self
    }

    /// Use shadow-database replay outcomes for the rules that can use them.
    pub fn with_replay(mut self, replay: &'a dyn ReplayEvidence) -> Linter<'a> {
        self.replay = Some(replay);
        self
    }

    /// The rules that run: on, and meant for this dialect.
    pub fn active_rules(&self) -> impl Iterator<Item = (&'static dyn Rule, Severity)> + '_ {
        RULES.iter().copied().filter_map(|r| {
            let sev = self.levels.get(r).severity()?;
            r.dialects().contains(&self.dialect).then_some((r, sev))
        })
    }

    /// Lint migrations; findings come back ordered by file, position and rule. Errors are bad
    /// input that stops the engine too (e.g. an unterminated quote), named by file and line.
    pub fn lint<'m>(
        &self,
        migrations: impl IntoIterator<Item = &'m Migration>,
    ) -> Result<Vec<Violation>> {
        let cx = Ctx {
            dialect: self.dialect,
            replay: self.replay,
            statement_lock_timeout: self.statement_lock_timeout,
        };
        let mut out = Vec::new();
        for m in migrations {
            let unit = Unit::analyze(m, self.dialect)?;
            for (rule, severity) in self.active_rules() {
                let mut sink = Sink::new(rule.id(), severity);
                rule.check(&cx, &unit, &mut sink);
                out.extend(sink.found.into_iter().filter(|v| !silenced(&unit, v)));
            }
        }
        out.sort_by(|a, b| {
            (&a.source.path, a.source.first_line, a.span.start, a.rule).cmp(&(
                &b.source.path,
                b.source.first_line,
                b.span.start,
                b.rule,
            ))
        });
        Ok(out)
    }
}

/// True when an ignore comment silences the finding. Findings about ignore comments
/// themselves cannot be silenced that way.
fn silenced(unit: &Unit, v: &Violation) -> bool {
    if v.rule == INVALID_LINT_IGNORE {
        return false;
    }
    unit.scripts().any(|s| {
        if s.source.path != v.source.path {
            return false;
        }
        // A dbmate file holds both scripts: a file-level ignore in either covers the file.
        if s.ignores.silences_file(v.rule) {
            return true;
        }
        std::sync::Arc::ptr_eq(&s.source, &v.source) && s.ignores.silences(v.rule, v.statement)
    })
}

#[cfg(test)]
mod tests {
    use tidemark_core::{Dialect, MigrationSet};

    use super::*;

    /// Lint a small project and list its findings one per line, as a compiler would.
    fn listing(dialect: Dialect, files: &[(&str, &str)]) -> String {
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in files {
            std::fs::write(dir.path().join(name), body).unwrap();
        }
        let set = MigrationSet::load(dir.path(), None).unwrap();
        let findings = Linter::new(dialect, Levels::default())
            .lint(set.migrations.iter())
            .unwrap();
        findings
            .iter()
            .map(|v| {
                let at = v.position();
                let file = v.source.path.strip_prefix(dir.path()).unwrap().display();
                format!(
                    "{file}:{}:{}: {}[{}]: {}\n  help: {}\n",
                    at.line, at.column, v.severity, v.rule, v.message, v.help
                )
            })
            .collect()
    }

    #[test]
    fn mysql_project() {
        insta::assert_snapshot!(listing(
            Dialect::MySql,
            &[
                (
                    "001_users.up.sql",
                    "CREATE TABLE users (id INT AUTO_INCREMENT PRIMARY KEY, email VARCHAR(200) NOT NULL) ENGINE=InnoDB;\nCREATE INDEX users_email ON users (email);\n",
                ),
                ("001_users.down.sql", "DROP TABLE users;\n"),
                (
                    "002_reshape.up.sql",
                    "ALTER TABLE users CHANGE email login VARCHAR(200) NOT NULL;\nALTER TABLE users MODIFY COLUMN id BIGINT AUTO_INCREMENT;\nRENAME TABLE users TO accounts;\nUPDATE accounts SET login = LOWER(login);\n",
                ),
                (
                    "002_reshape.down.sql",
                    "RENAME TABLE accounts TO users;\nALTER TABLE users CHANGE login email VARCHAR(200) NOT NULL;\n",
                ),
            ],
        ));
    }

    #[test]
    fn sqlite_project() {
        insta::assert_snapshot!(listing(
            Dialect::Sqlite,
            &[
                (
                    "1_todos.up.sql",
                    "CREATE TABLE todos (id INTEGER PRIMARY KEY, title TEXT NOT NULL);\nCREATE TRIGGER todos_touch AFTER UPDATE ON todos BEGIN\n  UPDATE todos SET title = title WHERE id = new.id;\nEND;\n",
                ),
                ("1_todos.down.sql", "DROP TABLE todos;\n"),
                (
                    "2_cleanup.up.sql",
                    "ALTER TABLE todos ADD COLUMN done INTEGER NOT NULL;\nALTER TABLE todos DROP COLUMN title;\nDELETE FROM todos;\nPRAGMA foreign_keys = ON;\n",
                ),
                (
                    "2_cleanup.down.sql",
                    "ALTER TABLE todos ADD COLUMN title TEXT;\n"
                ),
            ],
        ));
    }
}
