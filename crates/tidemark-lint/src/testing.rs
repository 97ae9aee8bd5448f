//! Helpers for rule tests: lint SQL text written into a temporary migrations directory.

use tidemark_core::{Dialect, MigrationSet};

use crate::rule::{Level, Levels, find};
use crate::{Linter, ReplayEvidence};

/// A migration for a test: name (native layout) and contents.
pub type File<'a> = (&'a str, &'a str);

/// Findings as `rule@line:column`, for every rule at its default level plus `enable`d ones.
pub fn lint_files(
    dialect: Dialect,
    files: &[File],
    enable: &[&str],
    replay: Option<&dyn ReplayEvidence>,
) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in files {
        std::fs::write(dir.path().join(name), body).unwrap();
    }
    let set = MigrationSet::load(dir.path(), None).unwrap();
    let mut levels = Levels::default();
    for id in enable {
        levels.set(find(id).unwrap().id(), Level::Warning);
    }
    let mut linter = Linter::new(dialect, levels);
    if let Some(r) = replay {
        linter = linter.with_replay(r);
    }
    linter
        .lint(set.migrations.iter())
        .unwrap()
        .iter()
        .map(|v| {
            let p = v.position();
            format!("{}@{}:{}", v.rule, p.line, p.column)
        })
        .collect()
}

/// Findings of one rule for an up-only migration `1_test.sql` (a down script is added so that
/// `missing-down` stays quiet unless the test is about it).
pub fn check(rule: &str, dialect: Dialect, up: &str) -> Vec<String> {
    let files = [("1_test.up.sql", up), ("1_test.down.sql", "SELECT 1;")];
    lint_files(dialect, &files, &[rule], None)
        .into_iter()
        .filter(|f| f.starts_with(&format!("{rule}@")))
        .collect()
}

/// Positions (`line:column`) of one rule's findings on PostgreSQL.
pub fn pg(rule: &str, up: &str) -> Vec<String> {
    strip(rule, check(rule, Dialect::Postgres, up))
}

pub fn my(rule: &str, up: &str) -> Vec<String> {
    strip(rule, check(rule, Dialect::MySql, up))
}

pub fn lite(rule: &str, up: &str) -> Vec<String> {
    strip(rule, check(rule, Dialect::Sqlite, up))
}

fn strip(rule: &str, v: Vec<String>) -> Vec<String> {
    v.into_iter()
        .map(|f| f[rule.len() + 1..].to_string())
        .collect()
}

/// Asserts that `sqlparser` cannot read this PostgreSQL statement and PostgreSQL's own grammar
/// can, so a test of the fallback keeps testing it if `sqlparser` learns the shape.
pub fn assert_falls_back(sql: &str) {
    let text = sql.trim().trim_end_matches(';');
    let s = crate::analysis::Stmt::new(0, text.into(), 0, Dialect::Postgres);
    assert!(s.ast.is_err(), "sqlparser reads it now: {sql}");
    assert!(s.server.is_some(), "PostgreSQL's grammar refuses it: {sql}");
}
