use tidemark_core::Dialect;

use crate::analysis::{Ctx, Stmt, Unit};
use crate::rule::{Category, Level, MYSQL, Rule, Sink};

/// Several DDL statements in one MySQL/MariaDB migration. MySQL commits each DDL statement by
/// itself, so a failure in the second leaves the first applied: the migration is half applied
/// and cannot be rolled back.
pub struct MultipleDdlStatements;

const HELP: &str = "put each DDL statement in a migration of its own, or combine changes to one table into a single ALTER TABLE";

/// DDL: statements that commit implicitly on MySQL.
fn is_ddl(s: &Stmt) -> bool {
    s.words.first().is_some_and(|w| {
        matches!(
            w.upper.as_str(),
            "CREATE" | "ALTER" | "DROP" | "RENAME" | "TRUNCATE"
        )
    })
}

impl Rule for MultipleDdlStatements {
    fn id(&self) -> &'static str {
        "multiple-ddl-statements"
    }
    fn category(&self) -> Category {
        Category::HalfApply
    }
    fn default_level(&self) -> Level {
        Level::Error
    }
    fn dialects(&self) -> &'static [Dialect] {
        MYSQL
    }
    fn description(&self) -> &'static str {
        "more than one DDL statement in a MySQL/MariaDB migration: each commits by itself, so a failure half way leaves the migration half applied"
    }
    fn help(&self) -> &'static str {
        HELP
    }
    fn check(&self, _cx: &Ctx, unit: &Unit, sink: &mut Sink) {
        let ddl: Vec<&Stmt> = unit.up.stmts.iter().filter(|s| is_ddl(s)).collect();
        let total = ddl.len();
        for (n, stmt) in ddl.iter().enumerate().skip(1) {
            sink.statement(
                &unit.up,
                stmt,
                stmt.span(),
                format!(
                    "DDL statement {} of {total} in this migration: MySQL commits each DDL statement by itself, so if this one fails, {} before it {} applied",
                    n + 1,
                    if n == 1 { "the one".to_string() } else { format!("the {n}") },
                    if n == 1 { "stays" } else { "stay" }
                ),
                HELP,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{my, pg};

    const RULE: &str = "multiple-ddl-statements";

    #[test]
    fn flags_every_ddl_after_the_first() {
        let up = "CREATE TABLE a (id INT);\nINSERT INTO a VALUES (1);\nCREATE INDEX i ON a (id);\nALTER TABLE a ADD COLUMN b INT;";
        assert_eq!(my(RULE, up), vec!["3:1", "4:1"]);
    }

    #[test]
    fn accepts_one_ddl_with_data_and_other_dialects() {
        assert!(my(RULE, "ALTER TABLE a ADD COLUMN b INT, ADD INDEX i (b);\nUPDATE a SET b = 1 WHERE b IS NULL;").is_empty());
        assert!(pg(RULE, "CREATE TABLE a (id int);\nCREATE TABLE b (id int);").is_empty());
    }
}
