//! Classifies a migration by what it does to the release that runs while (and after) it is
//! applied: expand-only, contract, destructive, or unknown. The application gate lets an older
//! release start on a newer schema only across expand-only migrations, and the deploy's
//! rollback policy keeps the schema only for them, so the classifier errs towards the stricter
//! class: a statement it cannot read or does not know is `unknown`, never expand-only.
//!
//! Each statement is classified on its own; the migration takes the strictest class of its
//! statements (destructive > contract > unknown > expand-only). Changes to a table the same
//! migration creates are expand-only: no release uses that table yet.

use sqlparser::ast::{
    AlterColumnOperation, AlterTableOperation, AlterTypeOperation, ObjectType, Statement,
};
use tidemark_core::{Classification, Classifier, Dialect, Migration, MigrationClass};

use crate::analysis::{Stmt, Unit};
use crate::rules::add_not_null_without_default::requires_value;

use MigrationClass::{Contract, Destructive, ExpandOnly, Unknown};

/// The classifier the engine records in the history (see [`tidemark_core::Classifier`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct LintClassifier;

impl Classifier for LintClassifier {
    fn classify(&self, migration: &Migration, dialect: Dialect) -> Classification {
        classify(migration, dialect)
    }
}

/// Classify one migration's up script.
pub fn classify(migration: &Migration, dialect: Dialect) -> Classification {
    let unit = match Unit::analyze(migration, dialect) {
        Ok(u) => u,
        Err(e) => {
            return Classification {
                class: Unknown,
                reasons: vec![format!("the script cannot be read: {e}")],
            };
        }
    };
    let mut class = ExpandOnly;
    let mut decided: Vec<(MigrationClass, String)> = Vec::new();
    for stmt in &unit.up.stmts {
        let (c, why) = statement(&unit, stmt);
        if c == ExpandOnly {
            continue;
        }
        class = class.max(c);
        let line = unit.up.source.position(stmt.start).line;
        decided.push((c, format!("line {line}: {} ({why})", stmt.summary())));
    }
    // The statements that decided the class, not every one stricter than expand-only.
    let reasons = decided
        .into_iter()
        .filter(|(c, _)| *c == class)
        .map(|(_, r)| r)
        .collect();
    Classification { class, reasons }
}

/// One statement's class and why (the reason is empty for expand-only).
fn statement(unit: &Unit, stmt: &Stmt) -> (MigrationClass, &'static str) {
    let ast = match (stmt.ast.as_deref(), &stmt.server) {
        (Ok(a), _) => a,
        (Err(_), Some(p)) => {
            // Read by the server's grammar: a change to a table this migration creates is
            // expand-only, as below.
            if p.class != ExpandOnly
                && p.table
                    .as_deref()
                    .is_some_and(|t| unit.creates_table_key(t))
            {
                return (ExpandOnly, "");
            }
            return (p.class, p.why);
        }
        (Err(_), None) => return unparsed(stmt),
    };
    match ast {
        Statement::CreateTable(_)
        | Statement::CreateVirtualTable { .. }
        | Statement::CreateSequence { .. }
        | Statement::CreateType { .. }
        | Statement::CreateDomain(_)
        | Statement::CreateExtension(_)
        | Statement::CreateSchema { .. }
        | Statement::CreateDatabase { .. }
        | Statement::CreateTrigger(_)
        | Statement::CreateRole(_)
        | Statement::CreateUser(_)
        | Statement::CreateCollation(_)
        | Statement::Comment { .. }
        | Statement::Grant(_)
        | Statement::Insert(_)
        | Statement::Query(_)
        | Statement::Set(_)
        | Statement::Analyze(_)
        | Statement::Vacuum(_)
        | Statement::Pragma { .. }
        | Statement::RefreshMaterializedView(_)
        | Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. } => (ExpandOnly, ""),
        Statement::CreateIndex(ci) => {
            if ci.unique && !unit.creates_table(&ci.table_name) {
                (
                    Contract,
                    "a unique index on an existing table refuses writes the running release may make",
                )
            } else {
                (ExpandOnly, "")
            }
        }
        Statement::CreateView(v) if v.or_replace => {
            (Contract, "replaces a view the running release may read")
        }
        Statement::CreateView(_) => (ExpandOnly, ""),
        Statement::CreateFunction(f) if f.or_replace => {
            (Contract, "replaces a function the running release may call")
        }
        Statement::CreateFunction(_) => (ExpandOnly, ""),
        Statement::AlterTable(alter) => {
            if unit.creates_table(&alter.name) {
                return (ExpandOnly, "");
            }
            alter
                .operations
                .iter()
                .map(alter_table_op)
                .max_by_key(|(c, _)| *c)
                .unwrap_or((ExpandOnly, ""))
        }
        Statement::AlterType(t) => match &t.operation {
            AlterTypeOperation::AddValue(_) => (ExpandOnly, ""),
            AlterTypeOperation::Rename(_) | AlterTypeOperation::RenameValue(_) => (
                Contract,
                "renames a type or a value the running release uses",
            ),
        },
        Statement::AlterIndex { .. } => (Contract, "renames an index"),
        Statement::RenameTable(_) => (Contract, "renames a table the running release uses"),
        Statement::AlterView(_) => (Contract, "changes a view the running release may read"),
        Statement::AlterSchema(_) => (Contract, "changes a schema the running release uses"),
        Statement::Drop { object_type, .. } => match object_type {
            ObjectType::Table | ObjectType::Schema | ObjectType::Database => {
                (Destructive, "drops data")
            }
            ObjectType::Sequence => (
                Destructive,
                "drops a sequence and the position it had reached",
            ),
            _ => (Contract, "drops an object the running release may use"),
        },
        Statement::DropFunction(_)
        | Statement::DropProcedure { .. }
        | Statement::DropTrigger(_)
        | Statement::DropDomain(_)
        | Statement::DropPolicy(_)
        | Statement::DropExtension(_) => (Contract, "drops an object the running release may use"),
        Statement::CreatePolicy(_) => (
            Contract,
            "a row security policy can hide rows from the running release",
        ),
        Statement::Truncate(_) => (Destructive, "deletes every row"),
        Statement::Delete(_) => (Destructive, "deletes rows"),
        Statement::Update(_) | Statement::Merge(_) => (
            Contract,
            "rewrites data in place: the running release may read it differently",
        ),
        _ => (Unknown, "no rule knows this kind of statement"),
    }
}

fn alter_table_op(op: &AlterTableOperation) -> (MigrationClass, &'static str) {
    use AlterTableOperation as Op;
    match op {
        Op::AddColumn { column_def, .. } if requires_value(column_def) => (
            Contract,
            "a NOT NULL column without a default: the running release's inserts do not set it",
        ),
        Op::AddColumn { .. }
        | Op::ValidateConstraint { .. }
        | Op::OwnerTo { .. }
        | Op::ReplicaIdentity { .. }
        | Op::SetLogged
        | Op::SetUnlogged
        | Op::AddPartitions { .. }
        | Op::Algorithm { .. }
        | Op::Lock { .. }
        | Op::AutoIncrement { .. }
        | Op::DisableRowLevelSecurity
        | Op::NoForceRowLevelSecurity => (ExpandOnly, ""),
        Op::AddConstraint { .. } => (
            Contract,
            "a new constraint refuses writes the running release may make",
        ),
        Op::DropConstraint { .. }
        | Op::DropPrimaryKey { .. }
        | Op::DropForeignKey { .. }
        | Op::DropIndex { .. } => (
            Contract,
            "drops a key or index the running release may rely on (e.g. ON CONFLICT)",
        ),
        Op::DropColumn { .. } => (Destructive, "drops a column and its data"),
        Op::DropPartitions { .. } => (Destructive, "drops partitions and their rows"),
        Op::RenameColumn { .. } | Op::RenameTable { .. } | Op::RenameConstraint { .. } => {
            (Contract, "renames something the running release uses")
        }
        Op::ChangeColumn { .. } | Op::ModifyColumn { .. } => {
            (Contract, "redefines a column the running release uses")
        }
        Op::EnableRowLevelSecurity | Op::ForceRowLevelSecurity => (
            Contract,
            "row security can hide rows from the running release",
        ),
        Op::AlterColumn { op, .. } => match op {
            AlterColumnOperation::DropNotNull
            | AlterColumnOperation::SetDefault { .. }
            | AlterColumnOperation::AddGenerated { .. } => (ExpandOnly, ""),
            AlterColumnOperation::SetNotNull => (
                Contract,
                "NOT NULL refuses the running release's writes without a value",
            ),
            AlterColumnOperation::DropDefault => (
                Contract,
                "the running release's inserts may rely on the default",
            ),
            AlterColumnOperation::SetDataType { .. } => (
                Contract,
                "changes a column's type (values may be converted or cut)",
            ),
            _ => (Unknown, "no rule knows this column change"),
        },
        _ => (Unknown, "no rule knows this table change"),
    }
}

/// A statement the parser cannot read: recognise the data-losing ones by their words, so that
/// an unreadable `DROP TABLE` is still destructive; anything else is unknown.
fn unparsed(stmt: &Stmt) -> (MigrationClass, &'static str) {
    let destructive = stmt.starts_with_words(&["DROP", "TABLE"])
        || stmt.starts_with_words(&["DROP", "SCHEMA"])
        || stmt.starts_with_words(&["DROP", "DATABASE"])
        || stmt.starts_with_words(&["TRUNCATE"])
        || stmt.starts_with_words(&["DELETE"])
        || (stmt.starts_with_words(&["ALTER", "TABLE"])
            && stmt
                .words
                .windows(2)
                .any(|w| w[0].upper == "DROP" && w[1].upper == "COLUMN"));
    if destructive {
        (
            Destructive,
            "the parser cannot read it, but its words drop data",
        )
    } else {
        (
            Unknown,
            "the parser cannot read it, so no rule could judge it",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class_of(dialect: Dialect, sql: &str) -> Classification {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("1_m.up.sql"), sql).unwrap();
        let set = tidemark_core::MigrationSet::load(d.path(), None).unwrap();
        classify(&set.migrations[0], dialect)
    }

    /// The labelled corpus: each statement with its expected class. The comment says why when
    /// it is not obvious.
    const CORPUS: &[(Dialect, &str, MigrationClass)] = &[
        // Expand-only: new objects, relaxed rules, new rows.
        (
            Dialect::Postgres,
            "CREATE TABLE t (id int PRIMARY KEY);",
            ExpandOnly,
        ),
        (
            Dialect::Postgres,
            "CREATE INDEX i ON users (email);",
            ExpandOnly,
        ),
        (
            Dialect::Postgres,
            "CREATE INDEX CONCURRENTLY i ON users (email);",
            ExpandOnly,
        ),
        (
            Dialect::Postgres,
            "ALTER TABLE users ADD COLUMN nick text;",
            ExpandOnly,
        ),
        (
            Dialect::Postgres,
            "ALTER TABLE users ADD COLUMN n int NOT NULL DEFAULT 0;",
            ExpandOnly,
        ),
        (
            Dialect::Postgres,
            "ALTER TABLE users ALTER COLUMN name DROP NOT NULL;",
            ExpandOnly,
        ),
        (
            Dialect::Postgres,
            "ALTER TABLE users ALTER COLUMN n SET DEFAULT 1;",
            ExpandOnly,
        ),
        (Dialect::Postgres, "CREATE VIEW v AS SELECT 1;", ExpandOnly),
        (Dialect::Postgres, "CREATE SEQUENCE s;", ExpandOnly),
        (
            Dialect::Postgres,
            "CREATE TYPE mood AS ENUM ('a', 'b');",
            ExpandOnly,
        ),
        (
            Dialect::Postgres,
            "ALTER TYPE mood ADD VALUE 'c';",
            ExpandOnly,
        ),
        (
            Dialect::Postgres,
            "CREATE EXTENSION IF NOT EXISTS pgcrypto;",
            ExpandOnly,
        ),
        (Dialect::Postgres, "CREATE SCHEMA app;", ExpandOnly),
        (
            Dialect::Postgres,
            "COMMENT ON TABLE users IS 'people';",
            ExpandOnly,
        ),
        (
            Dialect::Postgres,
            "INSERT INTO roles (name) VALUES ('admin');",
            ExpandOnly,
        ),
        (
            Dialect::Postgres,
            "ALTER TABLE users VALIDATE CONSTRAINT c;",
            ExpandOnly,
        ),
        // A constraint on a table this migration creates: no release uses it yet.
        (
            Dialect::Postgres,
            "CREATE TABLE r (id int); ALTER TABLE r ADD CONSTRAINT u UNIQUE (id);",
            ExpandOnly,
        ),
        (
            Dialect::Postgres,
            "CREATE TABLE r (id int); CREATE UNIQUE INDEX ri ON r (id);",
            ExpandOnly,
        ),
        (Dialect::Postgres, "-- nothing to do\n", ExpandOnly),
        (
            Dialect::MySql,
            "CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB;",
            ExpandOnly,
        ),
        (
            Dialect::MySql,
            "ALTER TABLE users ADD COLUMN nick VARCHAR(20) NULL;",
            ExpandOnly,
        ),
        (
            Dialect::MySql,
            "CREATE INDEX i ON users (email);",
            ExpandOnly,
        ),
        (
            Dialect::MySql,
            "INSERT INTO roles (name) VALUES ('admin');",
            ExpandOnly,
        ),
        (
            Dialect::Sqlite,
            "CREATE TABLE t (id INTEGER PRIMARY KEY);",
            ExpandOnly,
        ),
        (
            Dialect::Sqlite,
            "ALTER TABLE users ADD COLUMN nick TEXT;",
            ExpandOnly,
        ),
        (
            Dialect::Sqlite,
            "CREATE INDEX i ON users (email);",
            ExpandOnly,
        ),
        (
            Dialect::Sqlite,
            "INSERT INTO roles (name) VALUES ('admin');",
            ExpandOnly,
        ),
        // Contract: the running release may break, no data is lost.
        (
            Dialect::Postgres,
            "ALTER TABLE users RENAME COLUMN name TO full_name;",
            Contract,
        ),
        (
            Dialect::Postgres,
            "ALTER TABLE users RENAME TO people;",
            Contract,
        ),
        (
            Dialect::Postgres,
            "ALTER TABLE users ADD COLUMN n int NOT NULL;",
            Contract,
        ),
        (
            Dialect::Postgres,
            "ALTER TABLE users ALTER COLUMN name SET NOT NULL;",
            Contract,
        ),
        (
            Dialect::Postgres,
            "ALTER TABLE users ALTER COLUMN n DROP DEFAULT;",
            Contract,
        ),
        (
            Dialect::Postgres,
            "ALTER TABLE users ALTER COLUMN n TYPE bigint;",
            Contract,
        ),
        (
            Dialect::Postgres,
            "ALTER TABLE users ADD CONSTRAINT c CHECK (n > 0);",
            Contract,
        ),
        (
            Dialect::Postgres,
            "ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (u) REFERENCES users (id);",
            Contract,
        ),
        (
            Dialect::Postgres,
            "ALTER TABLE users DROP CONSTRAINT users_email_key;",
            Contract,
        ),
        (
            Dialect::Postgres,
            "CREATE UNIQUE INDEX u ON users (email);",
            Contract,
        ),
        (Dialect::Postgres, "DROP INDEX i;", Contract),
        (Dialect::Postgres, "DROP VIEW v;", Contract),
        (
            Dialect::Postgres,
            "CREATE OR REPLACE VIEW v AS SELECT 2;",
            Contract,
        ),
        (Dialect::Postgres, "ALTER INDEX i RENAME TO j;", Contract),
        (
            Dialect::Postgres,
            "UPDATE orders SET total = total * 100;",
            Contract,
        ),
        (
            Dialect::Postgres,
            "ALTER TYPE mood RENAME VALUE 'a' TO 'x';",
            Contract,
        ),
        (
            Dialect::MySql,
            "ALTER TABLE users CHANGE name full_name VARCHAR(50);",
            Contract,
        ),
        (
            Dialect::MySql,
            "ALTER TABLE users MODIFY name VARCHAR(10) NOT NULL;",
            Contract,
        ),
        (Dialect::MySql, "RENAME TABLE users TO people;", Contract),
        (
            Dialect::MySql,
            "UPDATE users SET name = CONCAT(name, '!');",
            Contract,
        ),
        (
            Dialect::MySql,
            "ALTER TABLE users DROP INDEX idx_email;",
            Contract,
        ),
        (
            Dialect::Sqlite,
            "ALTER TABLE users RENAME COLUMN name TO full_name;",
            Contract,
        ),
        (
            Dialect::Sqlite,
            "UPDATE users SET name = upper(name);",
            Contract,
        ),
        (Dialect::Sqlite, "DROP INDEX i;", Contract),
        // Destructive: data is lost.
        (Dialect::Postgres, "DROP TABLE users;", Destructive),
        (
            Dialect::Postgres,
            "ALTER TABLE users DROP COLUMN email;",
            Destructive,
        ),
        (Dialect::Postgres, "TRUNCATE users;", Destructive),
        (
            Dialect::Postgres,
            "DELETE FROM users WHERE id > 10;",
            Destructive,
        ),
        (Dialect::Postgres, "DROP SCHEMA app CASCADE;", Destructive),
        (Dialect::Postgres, "DROP SEQUENCE s;", Destructive),
        // The strictest statement decides.
        (
            Dialect::Postgres,
            "CREATE TABLE n (id int); ALTER TABLE users DROP COLUMN email;",
            Destructive,
        ),
        (Dialect::MySql, "DROP TABLE users;", Destructive),
        (
            Dialect::MySql,
            "ALTER TABLE users DROP COLUMN email;",
            Destructive,
        ),
        (Dialect::MySql, "DELETE FROM users;", Destructive),
        (Dialect::Sqlite, "DROP TABLE users;", Destructive),
        (
            Dialect::Sqlite,
            "ALTER TABLE users DROP COLUMN email;",
            Destructive,
        ),
        (Dialect::Sqlite, "DELETE FROM users;", Destructive),
        // Unknown: nothing could judge it; never expand-only.
        (Dialect::Postgres, "DO $$ BEGIN PERFORM 1; END $$;", Unknown),
        // Not SQL the server accepts (a missing semicolon): unknown, and reported.
        (
            Dialect::Postgres,
            "ALTER TABLE t DROP CONSTRAINT t_pkey\nALTER TABLE t ADD c int;",
            Unknown,
        ),
        (Dialect::Postgres, "FROB users;", Unknown),
        // Read by PostgreSQL's own grammar where sqlparser cannot (shapes from real histories).
        // CLUSTER rewrites the table under a lock (vacuum-full-or-cluster says so) but changes
        // nothing the running release sees.
        (
            Dialect::Postgres,
            "CLUSTER users USING users_pkey;",
            ExpandOnly,
        ),
        (
            Dialect::Postgres,
            "DROP INDEX CONCURRENTLY IF EXISTS i;",
            Contract,
        ),
        (
            Dialect::Postgres,
            "COMMENT ON FUNCTION f(int4) IS 'why';",
            ExpandOnly,
        ),
        (
            Dialect::Postgres,
            "COMMENT ON CONSTRAINT c ON t IS 'why';",
            ExpandOnly,
        ),
        (
            Dialect::Postgres,
            "ALTER INDEX IF EXISTS i RENAME TO j;",
            Contract,
        ),
        (
            Dialect::Postgres,
            "ALTER SEQUENCE s RENAME TO s2;",
            Contract,
        ),
        (Dialect::Postgres, "REINDEX TABLE users;", ExpandOnly),
        // A rebuilt index answers the same queries (drop-index-without-concurrently flags the
        // lock of the form without CONCURRENTLY).
        (
            Dialect::Postgres,
            "REINDEX (CONCURRENTLY) INDEX i;",
            ExpandOnly,
        ),
        (
            Dialect::Postgres,
            "ALTER TABLE users ALTER COLUMN a SET STATISTICS 500, ALTER COLUMN b SET NOT NULL;",
            Contract,
        ),
        (
            Dialect::Postgres,
            "ALTER TABLE users ALTER COLUMN a SET STORAGE PLAIN, ALTER COLUMN b TYPE bigint;",
            Contract,
        ),
        (
            Dialect::Postgres,
            "CREATE STATISTICS st (dependencies) ON a, b FROM t;",
            ExpandOnly,
        ),
        (
            Dialect::Postgres,
            "ALTER TABLE users ADD CONSTRAINT n NOT NULL email;",
            Contract,
        ),
        (
            Dialect::Postgres,
            "ALTER TABLE users ALTER COLUMN a SET STATISTICS 500, DROP COLUMN b;",
            Destructive,
        ),
        // The same shapes on a table the migration creates: no release uses it yet.
        (
            Dialect::Postgres,
            "CREATE TABLE r (a int, CONSTRAINT r_nn NOT NULL a); ALTER TABLE r ADD CONSTRAINT r_n2 NOT NULL a;",
            ExpandOnly,
        ),
        (
            Dialect::Postgres,
            "DROP TABLE IF EXISTS a, b CASCADE;",
            Destructive,
        ),
        // MySQL shapes sqlparser refuses, recognised.
        (
            Dialect::MySql,
            "ALTER TABLE users MODIFY COLUMN code VARCHAR(255) BINARY;",
            Contract,
        ),
        (Dialect::MySql, "PREPARE stmt FROM @ddl;", Unknown),
    ];

    #[test]
    fn labelled_corpus() {
        let mut wrong = Vec::new();
        for (dialect, sql, want) in CORPUS {
            let got = class_of(*dialect, sql);
            if got.class != *want {
                wrong.push(format!(
                    "{dialect}: {sql}\n  want {want}, got {} {:?}",
                    got.class, got.reasons
                ));
            }
        }
        assert!(wrong.is_empty(), "misclassified:\n{}", wrong.join("\n"));
        assert!(
            CORPUS.len() >= 60,
            "the corpus keeps at least 60 statements"
        );
    }

    #[test]
    fn reasons_name_the_deciding_statements() {
        let c = class_of(
            Dialect::Postgres,
            "CREATE TABLE n (id int);\nALTER TABLE users RENAME COLUMN a TO b;\nALTER TABLE users DROP COLUMN email;\n",
        );
        assert_eq!(c.class, Destructive);
        assert_eq!(c.reasons.len(), 1, "{:?}", c.reasons);
        assert!(
            c.reasons[0].starts_with("line 3: ALTER TABLE users DROP COLUMN email"),
            "{:?}",
            c.reasons
        );
        assert!(
            class_of(Dialect::Postgres, "CREATE TABLE n (id int);")
                .reasons
                .is_empty()
        );
    }

    #[test]
    fn an_unreadable_data_loss_is_still_destructive() {
        // `DROP TABLE … WITH (FORCE)`-like syntax the parser may not know: the words decide.
        let c = class_of(
            Dialect::Postgres,
            "DROP TABLE IF EXISTS a, b CASCADE FORCE;",
        );
        assert_eq!(c.class, Destructive, "{:?}", c.reasons);
    }
}
