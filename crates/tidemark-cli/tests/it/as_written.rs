//! Files as the old tool ran them: a file that controls its own transaction runs as written,
//! a statement the server refuses inside a transaction takes its migration out of one (on the
//! shadow replay too), each layout keeps its tool's order, and lint rejects exactly what `up`
//! rejects.

use tidemark::Dialect;
use tidemark_test::{Migrations, TestDb, db_test};

use crate::common::*;

async fn total(db: &TestDb) -> String {
    db.scalar("SELECT total FROM orders WHERE id = 1")
        .await
        .unwrap()
}

db_test!(
    a_file_with_its_own_transaction_runs_as_written,
    |db| async move {
        // golang-migrate's and dbmate's idiom.
        let m = Migrations::new(&[
            (
                "1_orders.up.sql",
                "BEGIN;\nCREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER NOT NULL);\nINSERT INTO orders (id, total) VALUES (1, 1050);\nCOMMIT;\n",
            ),
            (
                "2_cents.up.sql",
                "BEGIN;\nUPDATE orders SET total = total * 100;\nCOMMIT;\n",
            ),
        ]);
        let dry = tm(&db, &m, &["up", "--dry-run"]);
        dry.ok();
        let why = match db.dialect() {
            Dialect::MySql => "commits each DDL statement by itself",
            _ => "controls its own transaction",
        };
        assert!(dry.stdout.contains(why), "{}", dry.stdout);
        tm(&db, &m, &["up"]).ok();
        assert_eq!(total(&db).await, "105000");
        assert_eq!(
            history(&db).await,
            [(1, "applied".to_string()), (2, "applied".to_string())]
        );
        // The shadow replay runs them as written too, and finds nothing to report.
        tm(&db, &m, &["drift"]).ok();
        tm(&db, &m, &["up"]).ok();
        tm(&db, &m, &["check"]).ok();
        assert_eq!(total(&db).await, "105000", "migration 2 ran twice");

        // A failure inside the file's own transaction.
        m.write(
            "3_note.up.sql",
            "BEGIN;\nALTER TABLE orders ADD COLUMN note VARCHAR(20);\nUPDATE orders SET total = total + 1;\nINSERT INTO no_such_table VALUES (1);\nCOMMIT;\n",
        );
        let failed = tm(&db, &m, &["up"]);
        failed.code(1);
        if db.dialect() == Dialect::MySql {
            // MySQL commits DDL by itself: the ALTER ended the file's transaction, so what
            // ran is there and the migration is recorded as failed, with what took effect.
            assert_eq!(total(&db).await, "105001");
            assert_eq!(
                history(&db).await.last().unwrap(),
                &(3, "failed".to_string())
            );
            return;
        }
        assert!(
            failed
                .stderr
                .contains("was rolled back: nothing of it remains"),
            "{}",
            failed.stderr
        );
        // Nothing remains, so nothing is recorded: as a rolled-back transaction of tidemark's.
        assert_eq!(total(&db).await, "105000");
        assert_eq!(versions(&history(&db).await), [1, 2]);
        let schema = tm(&db, &m, &["inspect"]);
        assert!(
            !schema.ok().stdout.contains("orders.note"),
            "{}",
            schema.stdout
        );
        m.write(
            "3_note.up.sql",
            "BEGIN;\nALTER TABLE orders ADD COLUMN note VARCHAR(20);\nUPDATE orders SET total = total + 1;\nCOMMIT;\n",
        );
        tm(&db, &m, &["up"]).ok();
        assert_eq!(total(&db).await, "105001");
        tm(&db, &m, &["check"]).ok();
    }
);

db_test!(
    statements_refused_in_a_transaction_run_outside_one,
    |db| async move {
        let second = match db.dialect() {
            Dialect::Postgres => "CREATE INDEX CONCURRENTLY idx_orders_total ON orders (total);\n",
            Dialect::Sqlite => "VACUUM;\n",
            // MySQL has no transactional DDL: every migration already runs statement by statement.
            Dialect::MySql => return,
        };
        let m = Migrations::new(&[
            (
                "1_orders.up.sql",
                "CREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER NOT NULL);\nINSERT INTO orders (id, total) VALUES (1, 1050);\n",
            ),
            ("2_second.up.sql", second),
            (
                "3_cents.up.sql",
                "UPDATE orders SET total = total * 100 WHERE id = 1;\n",
            ),
        ]);
        // A warning, not a failure.
        let lint = tm(&db, &m, &["lint"]);
        lint.ok();
        if db.dialect() == Dialect::Postgres {
            assert!(
                lint.stdout.contains("concurrently-in-transaction"),
                "{}",
                lint.stdout
            );
        }
        let dry = tm(&db, &m, &["up", "--dry-run"]);
        dry.ok();
        assert!(
            dry.stdout.contains("cannot run inside a transaction block"),
            "{}",
            dry.stdout
        );
        tm(&db, &m, &["up"]).ok();
        assert_eq!(total(&db).await, "105000");
        if db.dialect() == Dialect::Postgres {
            assert_eq!(
                db.scalar("SELECT COUNT(*) FROM pg_indexes WHERE indexname = 'idx_orders_total'")
                    .await
                    .as_deref(),
                Some("1")
            );
        }
        // The shadow replay runs it outside a transaction too (it would fail inside one).
        tm(&db, &m, &["drift"]).ok();
        tm(&db, &m, &["check"]).ok();
        assert_eq!(total(&db).await, "105000");
    }
);

db_test!(lint_rejects_exactly_what_up_rejects, |db| async move {
    let m = Migrations::new(&[
        ("1_a.up.sql", "CREATE TABLE a (id INTEGER PRIMARY KEY);\n"),
        (
            "2_b.up.sql",
            "BEGIN;\nINSERT INTO a (id) VALUES (1);\nCOMMIT;\n",
        ),
    ]);
    tm(&db, &m, &["lint"]).ok();
    // A COMMIT the file never began: both refuse, naming file and line.
    m.write("3_c.up.sql", "INSERT INTO a (id) VALUES (2);\nCOMMIT;\n");
    let lint = tm(&db, &m, &["lint"]);
    lint.code(2);
    let up = tm(&db, &m, &["up"]);
    up.code(2);
    for r in [&lint, &up] {
        assert!(
            r.stderr.contains("3_c.up.sql:2") && r.stderr.contains("never began"),
            "{}",
            r.stderr
        );
    }
    assert!(!db.has_table("tidemark_history").await, "nothing changed");
    m.remove("3_c.up.sql");
    tm(&db, &m, &["up"]).ok();
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM a").await.as_deref(),
        Some("1")
    );
});

db_test!(dbmate_files_run_in_dbmate_order, |db| async move {
    // dbmate compares file names as text: 10_c, 1_a, 2_b.
    let m = Migrations::new(&[
        (
            "1_a.sql",
            "-- migrate:up\nINSERT INTO t (x) VALUES (1);\n-- migrate:down\nDELETE FROM t WHERE x = 1;\n",
        ),
        ("2_b.sql", "-- migrate:up\nINSERT INTO t (x) VALUES (2);\n"),
        ("10_c.sql", "-- migrate:up\nCREATE TABLE t (x INTEGER);\n"),
    ]);
    tm(&db, &m, &["up"]).ok();
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM t").await.as_deref(),
        Some("2")
    );
    let j = tm(&db, &m, &["status", "--format", "json"]).json();
    let order: Vec<i64> = j["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["version"].as_i64().unwrap())
        .collect();
    assert_eq!(order, [10, 1, 2], "{j}");
});

db_test!(
    flyway_repeatables_run_after_and_again_on_change,
    |db| async move {
        let m = Migrations::new(&[
            (
                "V1__orders.sql",
                "CREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER NOT NULL);\nCREATE TABLE runs (n INTEGER NOT NULL);\nINSERT INTO orders (id, total) VALUES (1, 1050);\n",
            ),
            (
                "R__orders_view.sql",
                "DROP VIEW IF EXISTS v_orders;\nCREATE VIEW v_orders AS SELECT id FROM orders;\nINSERT INTO runs (n) VALUES (1);\n",
            ),
        ]);
        let runs = || async { db.scalar("SELECT COUNT(*) FROM runs").await.unwrap() };
        let j = tm(&db, &m, &["up", "--dry-run", "--format", "json"]).json();
        let plan: Vec<(i64, bool)> = j["plan"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["version"].as_i64().unwrap(), s["repeatable"] == true))
            .collect();
        assert_eq!(plan, [(1, false), (0, true)], "{j}");
        tm(&db, &m, &["up"]).ok();
        assert_eq!(runs().await, "1");
        let st = tm(&db, &m, &["status", "--format", "json"]).json();
        assert_eq!(st["repeatables"][0]["description"], "orders view", "{st}");
        assert_eq!(st["repeatables"][0]["state"], "applied", "{st}");
        // Unchanged: not run again, neither by `up` nor after a new versioned migration.
        tm(&db, &m, &["up"]).ok();
        m.write(
            "V2__note.sql",
            "ALTER TABLE orders ADD COLUMN note VARCHAR(20);\n",
        );
        tm(&db, &m, &["up"]).ok();
        assert_eq!(runs().await, "1", "an unchanged repeatable ran again");
        // The shadow replay runs the recorded repeatables after the versioned migrations.
        tm(&db, &m, &["drift"]).ok();
        tm(&db, &m, &["check"]).ok();
        // Changed: it runs again, once.
        m.write(
        "R__orders_view.sql",
        "DROP VIEW IF EXISTS v_orders;\nCREATE VIEW v_orders AS SELECT id, total FROM orders;\nINSERT INTO runs (n) VALUES (1);\n",
    );
        let st = tm(&db, &m, &["status", "--format", "json"]).json();
        assert_eq!(st["repeatables"][0]["state"], "outdated", "{st}");
        tm(&db, &m, &["status", "--exit-code"]).code(10);
        tm(&db, &m, &["up"]).ok();
        assert_eq!(runs().await, "2");
        assert_eq!(
            db.scalar("SELECT total FROM v_orders WHERE id = 1")
                .await
                .as_deref(),
            Some("1050")
        );
        tm(&db, &m, &["up"]).ok();
        assert_eq!(runs().await, "2");
        tm(&db, &m, &["drift"]).ok();
        // The history of versions is untouched by repeatables.
        assert_eq!(versions(&history(&db).await), [1, 2]);
        // Evidence about versioned migrations leaves out what the repeatables create.
        db.exec("DELETE FROM tidemark_history").await;
        let plan = tm(&db, &m, &["repair", "--dry-run", "--format", "json"]).json();
        assert_eq!(plan["matches_state_after"], 2, "{plan}");
        // The fingerprint the repair records is the real schema's, views included.
        tm(&db, &m, &["repair", "--yes"]).ok();
        tm(&db, &m, &["up"]).ok();
        tm(&db, &m, &["check"]).ok();
        assert_eq!(runs().await, "2");
    }
);

db_test!(
    a_flyway_history_that_begins_at_a_baseline_imports,
    |db| async move {
        // The database existed before Flyway: its schema at the baseline is in no migration file.
        db.exec("CREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER NOT NULL);")
            .await;
        db.exec("INSERT INTO orders (id, total) VALUES (1, 1050);")
            .await;
        let m = Migrations::new(&[
            (
                "V2__note.sql",
                "ALTER TABLE orders ADD COLUMN note VARCHAR(20);\n",
            ),
            (
                "V3__cents.sql",
                "UPDATE orders SET total = total * 100 WHERE id = 1;\n",
            ),
            (
                "V4__index.sql",
                "CREATE INDEX idx_orders_total ON orders (total);\n",
            ),
        ]);
        // Flyway baselined at 1, then applied 2 and 3.
        db.exec("ALTER TABLE orders ADD COLUMN note VARCHAR(20);")
            .await;
        db.exec("UPDATE orders SET total = total * 100 WHERE id = 1;")
            .await;
        db.exec(
        "CREATE TABLE flyway_schema_history (installed_rank INT NOT NULL PRIMARY KEY, version VARCHAR(50), description VARCHAR(200) NOT NULL, \
         type VARCHAR(20) NOT NULL, script VARCHAR(1000) NOT NULL, checksum INT, installed_by VARCHAR(100) NOT NULL, \
         installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, execution_time INT NOT NULL, success BOOLEAN NOT NULL);",
    )
    .await;
        let t = match db.dialect() {
            Dialect::Postgres => "TRUE",
            _ => "1",
        };
        db.exec(&format!(
        "INSERT INTO flyway_schema_history (installed_rank, version, description, type, script, checksum, installed_by, execution_time, success) VALUES \
         (1, '1', '<< Flyway Baseline >>', 'BASELINE', '<< Flyway Baseline >>', NULL, 'app', 0, {t}), \
         (2, '2', 'note', 'SQL', 'V2__note.sql', 1, 'app', 5, {t}), \
         (3, '3', 'cents', 'SQL', 'V3__cents.sql', 1, 'app', 5, {t});"
    ))
    .await;
        let without = tm(&db, &m, &["import", "--from", "flyway"]);
        without.code(2);
        assert!(
            without.stderr.contains("begins at a baseline")
                && without.stderr.contains("--baseline-schema"),
            "{}",
            without.stderr
        );
        let side = tempfile::tempdir().unwrap();
        let base = side.path().join("baseline.sql");
        std::fs::write(
        &base,
        "-- the schema at Flyway's baseline\nCREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER NOT NULL);\n",
    )
    .unwrap();
        let base = base.to_str().unwrap();
        let j = tm(
            &db,
            &m,
            &[
                "import",
                "--from",
                "flyway",
                "--baseline-schema",
                base,
                "--format",
                "json",
            ],
        )
        .json();
        let steps: Vec<(i64, String)> = j["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["version"].as_i64().unwrap(),
                    s["action"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(steps, [(4, "replay".to_string())], "{j}");
        tm(
            &db,
            &m,
            &[
                "import",
                "--from",
                "flyway",
                "--baseline-schema",
                base,
                "--yes",
            ],
        )
        .ok();
        assert_eq!(versions(&history(&db).await), [2, 3]);
        tm(&db, &m, &["up"]).ok();
        assert_eq!(
            db.scalar("SELECT total FROM orders WHERE id = 1")
                .await
                .as_deref(),
            Some("105000"),
            "migration 3 ran twice"
        );
        // Kept in the configuration, every later replay starts from it.
        let cfg = side.path().join("tidemark.toml");
        std::fs::write(&cfg, "[shadow]\nbaseline = \"baseline.sql\"\n").unwrap();
        let cfg = cfg.to_str().unwrap();
        tm(&db, &m, &["--config", cfg, "drift"]).ok();
        tm(&db, &m, &["drift"]).code(20);
    }
);

db_test!(
    a_commit_that_fails_rolls_the_whole_file_back,
    |db| async move {
        // A deferred foreign key fails at the file's own COMMIT (PostgreSQL checks it there):
        // the whole transaction is rolled back, so nothing of the file remains.
        if db.dialect() != Dialect::Postgres {
            return;
        }
        let m = Migrations::new(&[(
            "1_deferred.up.sql",
            "BEGIN;\nCREATE TABLE p (id INTEGER PRIMARY KEY);\nCREATE TABLE c (pid INTEGER REFERENCES p DEFERRABLE INITIALLY DEFERRED);\nINSERT INTO c (pid) VALUES (1);\nCOMMIT;\n",
        )]);
        let r = tm(&db, &m, &["up"]);
        r.code(1);
        assert!(r.stderr.contains("nothing of it remains"), "{}", r.stderr);
        assert!(
            history(&db).await.is_empty(),
            "a row for a file that left nothing"
        );
        assert!(!db.has_table("p").await);
    }
);
