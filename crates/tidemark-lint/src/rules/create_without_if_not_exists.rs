use sqlparser::ast::{AlterTableOperation, Statement};
use tidemark_core::Dialect;

use super::parsed;
use crate::analysis::{Ctx, Unit};
use crate::rule::{ALL_DIALECTS, Category, Level, Rule, Sink};

/// `CREATE` without `IF NOT EXISTS`: re-running the migration on a database where the object
/// exists (built by hand, or half applied) fails. Off unless configured.
pub struct CreateWithoutIfNotExists;

impl Rule for CreateWithoutIfNotExists {
    fn id(&self) -> &'static str {
        "create-without-if-not-exists"
    }
    fn category(&self) -> Category {
        Category::Idempotency
    }
    fn default_level(&self) -> Level {
        Level::Off
    }
    fn dialects(&self) -> &'static [Dialect] {
        ALL_DIALECTS
    }
    fn description(&self) -> &'static str {
        "CREATE TABLE/INDEX/VIEW/SEQUENCE/SCHEMA/EXTENSION (and, on PostgreSQL, ADD COLUMN) without IF NOT EXISTS: fails where the object already exists"
    }
    fn help(&self) -> &'static str {
        "write CREATE … IF NOT EXISTS (or CREATE OR REPLACE VIEW) so the statement can run again"
    }
    fn check(&self, cx: &Ctx, unit: &Unit, sink: &mut Sink) {
        for (stmt, ast) in parsed(unit) {
            let what = match ast {
                Statement::CreateTable(t) if !t.if_not_exists && !t.or_replace => {
                    format!("table `{}`", t.name)
                }
                // MySQL has no CREATE INDEX IF NOT EXISTS (MariaDB does).
                Statement::CreateIndex(i) if !i.if_not_exists && cx.dialect != Dialect::MySql => {
                    format!(
                        "index{}",
                        i.name.as_ref().map_or(String::new(), |n| format!(" `{n}`"))
                    )
                }
                Statement::CreateView(v) if !v.if_not_exists && !v.or_replace => {
                    format!("view `{}`", v.name)
                }
                Statement::CreateSequence {
                    if_not_exists: false,
                    name,
                    ..
                } => format!("sequence `{name}`"),
                Statement::CreateSchema {
                    if_not_exists: false,
                    schema_name,
                    ..
                } => format!("schema `{schema_name}`"),
                Statement::CreateExtension(e) if !e.if_not_exists => {
                    format!("extension `{}`", e.name)
                }
                Statement::AlterTable(a) if cx.dialect == Dialect::Postgres => {
                    let cols: Vec<String> = a
                        .operations
                        .iter()
                        .filter_map(|op| match op {
                            AlterTableOperation::AddColumn {
                                if_not_exists: false,
                                column_def,
                                ..
                            } => Some(format!("`{}.{}`", a.name, column_def.name)),
                            _ => None,
                        })
                        .collect();
                    if cols.is_empty() {
                        continue;
                    }
                    format!("column {}", cols.join(", "))
                }
                _ => continue,
            };
            sink.statement(
                &unit.up,
                stmt,
                stmt.span(),
                format!("creating {what} without IF NOT EXISTS fails where it already exists"),
                "write IF NOT EXISTS (or CREATE OR REPLACE for a view) so the statement can run again",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{my, pg};

    const RULE: &str = "create-without-if-not-exists";

    #[test]
    fn flags_plain_creates_when_enabled() {
        let up = "CREATE TABLE a (id int);\nCREATE INDEX i ON a (id);\nCREATE VIEW v AS SELECT 1;\nALTER TABLE a ADD COLUMN b int;";
        assert_eq!(pg(RULE, up), vec!["1:1", "2:1", "3:1", "4:1"]);
        assert_eq!(
            my(RULE, "CREATE TABLE a (id INT);\nCREATE INDEX i ON a (id);"),
            vec!["1:1"]
        );
    }

    #[test]
    fn accepts_if_not_exists_or_replace() {
        let up = "CREATE TABLE IF NOT EXISTS a (id int);\nCREATE INDEX IF NOT EXISTS i ON a (id);\nCREATE OR REPLACE VIEW v AS SELECT 1;\nALTER TABLE a ADD COLUMN IF NOT EXISTS b int;\nCREATE EXTENSION IF NOT EXISTS pgcrypto;";
        assert!(pg(RULE, up).is_empty());
    }

    #[test]
    fn is_off_by_default() {
        let files = [
            ("1_a.up.sql", "CREATE TABLE a (id int);"),
            ("1_a.down.sql", "DROP TABLE a;"),
        ];
        let all = crate::testing::lint_files(tidemark_core::Dialect::Postgres, &files, &[], None);
        assert!(all.is_empty(), "{all:?}");
    }
}
