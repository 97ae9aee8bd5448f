use tidemark_core::Dialect;

use crate::analysis::{Ctx, Stmt, Unit};
use crate::rule::{Category, Level, Rule, Sink};

/// A statement that needs a strong table lock (PostgreSQL's ACCESS EXCLUSIVE or SHARE, MySQL's
/// exclusive metadata lock) and may wait for it without limit. While it waits in the lock
/// queue, every query of the application on that table queues behind it: the classic outage
/// of a schema change behind one long query. `up` bounds each statement's wait
/// (`[migrate] statement_lock_timeout`, 5 s by default, then rolls back and retries), so this
/// fires only where that bound is gone: turned off in `tidemark.toml`, or lifted by the file
/// itself (`SET lock_timeout = 0`, MySQL's `SET lock_wait_timeout` back to a year).
pub struct LockWaitWithoutTimeout;

const ID: &str = "lock-wait-without-timeout";

impl Rule for LockWaitWithoutTimeout {
    fn id(&self) -> &'static str {
        ID
    }
    fn category(&self) -> Category {
        Category::LongLock
    }
    fn default_level(&self) -> Level {
        Level::Warning
    }
    fn dialects(&self) -> &'static [Dialect] {
        &[Dialect::Postgres, Dialect::MySql]
    }
    fn description(&self) -> &'static str {
        "a statement that needs a strong table lock may wait for it without limit, and every query on the table queues behind it"
    }
    fn help(&self) -> &'static str {
        "keep `up`'s statement lock timeout on (`[migrate] statement_lock_timeout`, default 5s) and do not lift it in the file"
    }
    fn check(&self, cx: &Ctx, unit: &Unit, sink: &mut Sink) {
        // Where the file lifted the bound: the line of its SET.
        let mut lifted: Option<usize> = None;
        for stmt in &unit.up.stmts {
            if let Some(off) = sets_lock_timeout(cx.dialect, stmt) {
                lifted = off.then(|| unit.up.source.position(stmt.start).line);
                continue;
            }
            let Some(what) = strong_lock(cx.dialect, stmt) else {
                continue;
            };
            if creates_its_table(unit, stmt) {
                continue; // a table of this migration: nobody else can be waiting on it
            }
            let why = match (lifted, cx.statement_lock_timeout) {
                (Some(line), _) => format!("the file lifts the lock timeout at line {line}"),
                (None, None) => "`[migrate] statement_lock_timeout` is off".to_string(),
                (None, Some(_)) => continue,
            };
            sink.statement(
                &unit.up,
                stmt,
                stmt.span(),
                format!(
                    "{what} may wait for its table lock without limit ({why}), and every query on the table queues behind it"
                ),
                "keep the lock timeout: `up` gives up after `statement_lock_timeout` and retries, so the application never stalls longer than that",
            );
        }
    }
}

/// `Some(true)` for a statement that lifts the lock-wait bound, `Some(false)` for one that
/// sets a bound again, `None` for any other statement.
fn sets_lock_timeout(dialect: Dialect, stmt: &Stmt) -> Option<bool> {
    let w: Vec<&str> = stmt.words.iter().map(|w| w.upper.as_str()).collect();
    let rest = match w.as_slice() {
        ["SET", "SESSION" | "LOCAL", rest @ ..] | ["SET", rest @ ..] => rest,
        ["RESET", "LOCK_TIMEOUT", ..] if dialect == Dialect::Postgres => return Some(true),
        _ => return None,
    };
    let setting = match (dialect, rest.first()) {
        (Dialect::Postgres, Some(&"LOCK_TIMEOUT")) => "lock_timeout",
        (Dialect::MySql, Some(&"LOCK_WAIT_TIMEOUT")) => "lock_wait_timeout",
        _ => return None,
    };
    // The value: everything after `=` or `TO`, without quotes.
    let text = stmt.text.to_ascii_lowercase();
    let at = text.find(setting)? + setting.len();
    let value = text[at..]
        .trim_start()
        .trim_start_matches('=')
        .trim_start()
        .trim_start_matches("to ")
        .trim()
        .trim_end_matches(';')
        .trim()
        .trim_matches('\'')
        .trim();
    Some(match dialect {
        // 0 (any unit) or DEFAULT (the server's, 0 unless changed): wait without limit.
        Dialect::Postgres => {
            value == "default"
                || value
                    .trim_end_matches(|c: char| c.is_ascii_alphabetic())
                    .trim()
                    .parse::<f64>()
                    .is_ok_and(|v| v == 0.0)
        }
        // Seconds; the server's default is a year. More than five minutes is no bound.
        _ => value == "default" || value.parse::<u64>().is_ok_and(|v| v > 300),
    })
}

/// What needs a strong table lock, by its first words: `None` for anything else.
fn strong_lock(dialect: Dialect, stmt: &Stmt) -> Option<&'static str> {
    let w: Vec<&str> = stmt
        .words
        .iter()
        .take(6)
        .map(|w| w.upper.as_str())
        .collect();
    let concurrently = w.contains(&"CONCURRENTLY");
    Some(match (dialect, w.as_slice()) {
        (_, ["ALTER", "TABLE", ..]) => "ALTER TABLE",
        (_, ["DROP", "TABLE", ..]) => "DROP TABLE",
        (_, ["TRUNCATE", ..]) => "TRUNCATE",
        (_, ["LOCK", "TABLE" | "TABLES", ..]) => "LOCK TABLE",
        (Dialect::MySql, ["RENAME", "TABLE", ..]) => "RENAME TABLE",
        (Dialect::Postgres, ["CREATE", "INDEX" | "UNIQUE", ..]) if !concurrently => "CREATE INDEX",
        (Dialect::Postgres, ["DROP", "INDEX", ..]) if !concurrently => "DROP INDEX",
        (Dialect::Postgres, ["REFRESH", "MATERIALIZED", ..]) if !concurrently => {
            "REFRESH MATERIALIZED VIEW"
        }
        (Dialect::Postgres, ["CLUSTER", ..]) => "CLUSTER",
        (Dialect::Postgres, ["VACUUM", ..]) if w.contains(&"FULL") => "VACUUM FULL",
        _ => return None,
    })
}

/// An ALTER/index statement on a table the same up script creates.
fn creates_its_table(unit: &Unit, stmt: &Stmt) -> bool {
    match stmt.ast.as_deref() {
        Ok(sqlparser::ast::Statement::AlterTable(a)) => unit.creates_table(&a.name),
        Ok(sqlparser::ast::Statement::CreateIndex(i)) => unit.creates_table(&i.table_name),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use tidemark_core::{Dialect, MigrationSet};

    use crate::rule::{Level, Levels, find};
    use crate::testing::{my, pg};
    use crate::{Linter, Violation};

    /// Findings of this rule with `[migrate] statement_lock_timeout` off.
    fn with_timeout_off(dialect: Dialect, up: &str) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("1_test.up.sql"), up).unwrap();
        std::fs::write(dir.path().join("1_test.down.sql"), "SELECT 1;").unwrap();
        let set = MigrationSet::load(dir.path(), None).unwrap();
        let mut levels = Levels::default();
        levels.set(find(super::ID).unwrap().id(), Level::Warning);
        Linter::new(dialect, levels)
            .with_statement_lock_timeout(None)
            .lint(set.migrations.iter())
            .unwrap()
            .iter()
            .filter(|v: &&Violation| v.rule == super::ID)
            .map(|v| {
                let p = v.position();
                format!("{}:{}", p.line, p.column)
            })
            .collect()
    }

    const STRONG: &str = "ALTER TABLE accounts ADD COLUMN note text;\n\
         CREATE INDEX accounts_note ON accounts (note);\n\
         CREATE INDEX CONCURRENTLY accounts_note2 ON accounts (note);\n\
         TRUNCATE audit;\n\
         INSERT INTO audit VALUES (1);\n";

    #[test]
    fn quiet_while_up_bounds_the_wait() {
        assert!(pg(super::ID, STRONG).is_empty());
    }

    #[test]
    fn flags_strong_locks_when_the_timeout_is_off_in_the_config() {
        // Not CONCURRENTLY (it does not block the table's queries), not the INSERT.
        assert_eq!(
            with_timeout_off(Dialect::Postgres, STRONG),
            ["1:1", "2:1", "4:1"]
        );
    }

    #[test]
    fn flags_what_follows_a_set_that_lifts_it_and_stops_where_it_is_set_again() {
        let up = "SET lock_timeout = 0;\n\
                  ALTER TABLE accounts ADD COLUMN a int;\n\
                  SET lock_timeout TO '3s';\n\
                  ALTER TABLE accounts ADD COLUMN b int;\n\
                  SET LOCAL lock_timeout = '0ms';\n\
                  DROP TABLE old_accounts;\n";
        assert_eq!(pg(super::ID, up), ["2:1", "6:1"]);
        assert_eq!(
            pg(super::ID, "RESET lock_timeout;\nLOCK TABLE accounts;\n"),
            ["2:1"]
        );
    }

    #[test]
    fn a_table_of_the_same_migration_is_nobody_elses_yet() {
        let up = "CREATE TABLE fresh (id int);\n\
                  ALTER TABLE fresh ADD COLUMN note text;\n\
                  CREATE INDEX fresh_note ON fresh (note);\n";
        assert!(with_timeout_off(Dialect::Postgres, up).is_empty());
    }

    #[test]
    fn mysql_lock_wait_timeout_back_to_a_year() {
        let up = "SET SESSION lock_wait_timeout = 31536000;\n\
                  ALTER TABLE accounts ADD COLUMN note TEXT;\n\
                  SET lock_wait_timeout = 5;\n\
                  RENAME TABLE a TO b;\n";
        assert_eq!(my(super::ID, up), ["2:1"]);
        assert_eq!(
            with_timeout_off(Dialect::MySql, "RENAME TABLE a TO b;\n"),
            ["1:1"]
        );
    }
}
