//! Plans are data: what `up` or `down` will do, step by step, with the exact statements.
//! `--dry-run` prints the plan and the real run executes the same plan, so the two cannot
//! disagree. Built by pure functions from the migration set and the status.

use std::path::PathBuf;

use serde::Serialize;

use crate::driver::Dialect;
use crate::error::{Error, Location, Result};
use crate::migration::MigrationSet;
use crate::split::Stmt;
use crate::status::{MigrationState, Status};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Up,
    Down,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub version: i64,
    pub name: String,
    pub direction: Direction,
    /// The script this step runs.
    pub path: PathBuf,
    /// Checksum of the up script (recorded in history when applying).
    pub checksum: String,
    /// Runs in a transaction with its history row. False for `no-transaction` files and on
    /// databases without transactional DDL: then the row is written first and progress is
    /// recorded statement by statement.
    pub transactional: bool,
    /// Why the step runs outside a transaction (`None` inside one).
    pub outside: Option<String>,
    /// A Flyway-style repeatable migration (`version` is 0, `name` its description): recorded
    /// in `tidemark_repeatable`, not in the history.
    pub repeatable: bool,
    pub out_of_order: bool,
    pub statements: Vec<Stmt>,
    /// What the migration does to the running release (recorded with its history row); set
    /// by the engine from [`crate::engine::Settings::classifier`], `None` without one.
    pub class: Option<crate::class::MigrationClass>,
}

impl Step {
    /// How people name the step: `3 add_users`, or `R views` for a repeatable migration.
    pub fn label(&self) -> String {
        if self.repeatable {
            format!("R {}", self.name)
        } else {
            format!("{} {}", self.version, self.name)
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// All steps in one transaction (`--single-transaction`).
    pub single_transaction: bool,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

pub struct UpTarget {
    /// Apply up to and including this version.
    pub to: Option<i64>,
    pub single_transaction: bool,
}

/// Pending migrations in order of application, up to the target.
pub fn plan_up(
    set: &MigrationSet,
    status: &Status,
    dialect: Dialect,
    transactional_ddl: bool,
    server_version: &str,
    target: &UpTarget,
) -> Result<Plan> {
    let limit = match target.to {
        Some(v) => Some(set.position(v).ok_or_else(|| {
            Error::Usage(format!("--to {v}: there is no migration with version {v}"))
        })?),
        None => None,
    };
    let mut steps = Vec::new();
    for e in status.pending() {
        let pos = set
            .position(e.version)
            .expect("pending entries come from files");
        if limit.is_some_and(|l| pos > l) {
            continue;
        }
        let m = &set.migrations[pos];
        let mode = m.run_mode(&m.up, dialect, transactional_ddl, server_version)?;
        steps.push(Step {
            version: m.version,
            name: m.name.clone(),
            direction: Direction::Up,
            path: m.up.path.clone(),
            checksum: m.checksum.clone(),
            transactional: mode.is_transaction(),
            outside: mode.reason(),
            repeatable: false,
            out_of_order: e.out_of_order,
            statements: m.up.statements(dialect)?,
            class: None,
        });
    }
    // Repeatable migrations run after the versioned ones, as Flyway runs them: each one that
    // never ran or whose file changed since. Not when `--to` stops short of the last version.
    let reaches_latest = limit.is_none_or(|l| l + 1 >= set.migrations.len());
    if reaches_latest {
        for r in &set.repeatables {
            let due = status
                .repeatables
                .iter()
                .any(|s| s.description == r.description() && s.due());
            if !due {
                continue;
            }
            let m = &r.migration;
            let mode = m.run_mode(&m.up, dialect, transactional_ddl, server_version)?;
            steps.push(Step {
                version: 0,
                name: m.name.clone(),
                direction: Direction::Up,
                path: m.up.path.clone(),
                checksum: m.checksum.clone(),
                transactional: mode.is_transaction(),
                outside: mode.reason(),
                repeatable: true,
                out_of_order: false,
                statements: m.up.statements(dialect)?,
                class: None,
            });
        }
    }
    if target.single_transaction {
        if !transactional_ddl {
            return Err(Error::Usage(
                "--single-transaction needs a database whose DDL is transactional (PostgreSQL, SQLite); MySQL/MariaDB commit each DDL statement on their own".into(),
            ));
        }
        if let Some(s) = steps.iter().find(|s| !s.transactional) {
            return Err(Error::bad_input(
                Location::file(&s.path),
                format!(
                    "--single-transaction cannot include a migration that runs outside a transaction ({})",
                    s.outside.as_deref().unwrap_or("no-transaction")
                ),
            ));
        }
    }
    Ok(Plan {
        steps,
        single_transaction: target.single_transaction,
    })
}

#[derive(Debug, Clone, Copy)]
pub enum DownTarget {
    /// Revert the newest N applied migrations.
    Steps(usize),
    /// Revert every applied migration after this version (0: all of them).
    To(i64),
}

/// Applied migrations to revert, newest first. Every one of them must have a usable down script;
/// otherwise nothing is planned and the error names the file.
pub fn plan_down(
    set: &MigrationSet,
    status: &Status,
    dialect: Dialect,
    transactional_ddl: bool,
    server_version: &str,
    target: DownTarget,
) -> Result<Plan> {
    let applied: Vec<_> = status
        .entries
        .iter()
        .filter(|e| e.state.is_applied())
        .collect();
    let chosen: Vec<_> = match target {
        DownTarget::Steps(0) => return Err(Error::Usage("--steps must be at least 1".into())),
        DownTarget::Steps(n) => applied.iter().rev().take(n).copied().collect(),
        DownTarget::To(v) => {
            let cut = if v == 0 {
                0
            } else {
                let pos = status
                    .entries
                    .iter()
                    .position(|e| e.version == v)
                    .ok_or_else(|| {
                        Error::Usage(format!("--to {v}: there is no migration with version {v}"))
                    })?;
                pos + 1
            };
            status.entries[cut..]
                .iter()
                .filter(|e| e.state.is_applied())
                .rev()
                .collect()
        }
    };
    let mut steps = Vec::new();
    for e in chosen {
        if e.state == MigrationState::Missing {
            return Err(Error::Inconsistent(format!(
                "cannot revert migration {} ({}): its file is gone, so there is no down script",
                e.version, e.name
            )));
        }
        let m = set.get(e.version).expect("non-missing entries have files");
        let Some(down) = m.usable_down(dialect) else {
            let path = m
                .down
                .as_ref()
                .map(|d| d.path.clone())
                .unwrap_or_else(|| m.up.path.clone());
            let what = if m.down.is_some() {
                "its down script is empty"
            } else {
                "it has no down script"
            };
            return Err(Error::bad_input(
                Location::file(path),
                format!(
                    "cannot revert migration {} ({}): {what}; nothing was reverted",
                    m.version, m.name
                ),
            ));
        };
        let mode = m.run_mode(down, dialect, transactional_ddl, server_version)?;
        steps.push(Step {
            version: m.version,
            name: m.name.clone(),
            direction: Direction::Down,
            path: down.path.clone(),
            checksum: m.checksum.clone(),
            transactional: mode.is_transaction(),
            outside: mode.reason(),
            repeatable: false,
            out_of_order: false,
            statements: down.statements(dialect)?,
            class: None,
        });
    }
    Ok(Plan {
        steps,
        single_transaction: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{History, HistoryEntry, HistoryState};

    fn fixture(
        files: &[(&str, &str)],
        applied: &[i64],
    ) -> (tempfile::TempDir, MigrationSet, Status) {
        let d = tempfile::tempdir().unwrap();
        for (n, b) in files {
            std::fs::write(d.path().join(n), b).unwrap();
        }
        let s = MigrationSet::load(d.path(), None).unwrap();
        let h = History {
            exists: true,
            repeatables: Vec::new(),
            entries: applied
                .iter()
                .map(|&v| HistoryEntry {
                    version: v,
                    name: String::new(),
                    checksum: s.get(v).unwrap().checksum.clone(),
                    state: HistoryState::Applied,
                    applied_at: String::new(),
                    execution_ms: 0,
                    applied_by: String::new(),
                    schema_fingerprint: None,
                    error: None,
                    statements_applied: None,
                    lint_class: None,
                    imported: None,
                })
                .collect(),
        };
        let st = Status::compute(&s, &h);
        (d, s, st)
    }

    const FILES: &[(&str, &str)] = &[
        ("1_a.up.sql", "CREATE TABLE a (x int);"),
        ("1_a.down.sql", "DROP TABLE a;"),
        (
            "2_b.up.sql",
            "CREATE TABLE b (x int); CREATE INDEX bi ON b (x);",
        ),
        ("2_b.down.sql", "-- nothing\n"),
        (
            "3_c.up.sql",
            "-- tidemark:no-transaction\nCREATE TABLE c (x int);",
        ),
        ("3_c.down.sql", "DROP TABLE c;"),
    ];

    #[test]
    fn up_plans_pending_in_order_up_to_target() {
        let (_d, s, st) = fixture(FILES, &[1]);
        let p = plan_up(
            &s,
            &st,
            Dialect::Postgres,
            true,
            "",
            &UpTarget {
                to: None,
                single_transaction: false,
            },
        )
        .unwrap();
        let v: Vec<(i64, bool, usize)> = p
            .steps
            .iter()
            .map(|s| (s.version, s.transactional, s.statements.len()))
            .collect();
        assert_eq!(v, vec![(2, true, 2), (3, false, 1)]);
        let p = plan_up(
            &s,
            &st,
            Dialect::Postgres,
            true,
            "",
            &UpTarget {
                to: Some(2),
                single_transaction: false,
            },
        )
        .unwrap();
        assert_eq!(p.steps.len(), 1);
        let p = plan_up(
            &s,
            &st,
            Dialect::MySql,
            false,
            "",
            &UpTarget {
                to: None,
                single_transaction: false,
            },
        )
        .unwrap();
        assert!(
            p.steps.iter().all(|s| !s.transactional),
            "no transactional DDL: statement by statement"
        );
        assert!(
            plan_up(
                &s,
                &st,
                Dialect::Postgres,
                true,
                "",
                &UpTarget {
                    to: Some(9),
                    single_transaction: false
                }
            )
            .is_err()
        );
    }

    #[test]
    fn single_transaction_refuses_no_transaction_files() {
        let (_d, s, st) = fixture(FILES, &[1]);
        let e = plan_up(
            &s,
            &st,
            Dialect::Postgres,
            true,
            "",
            &UpTarget {
                to: None,
                single_transaction: true,
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("3_c.up.sql"), "{e}");
        let e = plan_up(
            &s,
            &st,
            Dialect::MySql,
            false,
            "",
            &UpTarget {
                to: Some(2),
                single_transaction: true,
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("transactional"), "{e}");
        assert!(
            plan_up(
                &s,
                &st,
                Dialect::Postgres,
                true,
                "",
                &UpTarget {
                    to: Some(2),
                    single_transaction: true
                }
            )
            .is_ok()
        );
    }

    #[test]
    fn down_plans_newest_first_and_refuses_empty_down() {
        let (_d, s, st) = fixture(FILES, &[1, 2, 3]);
        let p = plan_down(&s, &st, Dialect::Postgres, true, "", DownTarget::Steps(1)).unwrap();
        assert_eq!(
            p.steps.iter().map(|s| s.version).collect::<Vec<_>>(),
            vec![3]
        );
        let e = plan_down(&s, &st, Dialect::Postgres, true, "", DownTarget::Steps(2))
            .unwrap_err()
            .to_string();
        assert!(e.contains("2_b.down.sql") && e.contains("empty"), "{e}");
        let e = plan_down(&s, &st, Dialect::Postgres, true, "", DownTarget::To(0))
            .unwrap_err()
            .to_string();
        assert!(e.contains("nothing was reverted"), "{e}");
        let p = plan_down(&s, &st, Dialect::Postgres, true, "", DownTarget::To(2)).unwrap();
        assert_eq!(p.steps.len(), 1);
    }
}
