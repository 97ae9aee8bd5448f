//! Switching from another tool (or from hand-run SQL) without damaging data: a migration that
//! changes only data is never run again on a guess. When the schema cannot tell whether it ran,
//! that is a decision for a person (`repair --adopt V` / `--pending V`), never a default.

use tidemark::{Dialect, MigrationSet};
use tidemark_test::{Migrations, TestDb, db_test};

use crate::common::*;

/// 1 creates `orders`, 2 inserts a row, 3 adds a column, 4 multiplies every total by 100 (data
/// only), 5 creates an index.
fn orders() -> Migrations {
    Migrations::new(&[
        (
            "1_orders.up.sql",
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER NOT NULL);\n",
        ),
        (
            "2_seed.up.sql",
            "INSERT INTO orders (id, total) VALUES (1, 1050);\n",
        ),
        (
            "3_note.up.sql",
            "ALTER TABLE orders ADD COLUMN note VARCHAR(20);\n",
        ),
        ("4_cents.up.sql", "UPDATE orders SET total = total * 100;\n"),
        (
            "5_index.up.sql",
            "CREATE INDEX idx_orders_total ON orders (total);\n",
        ),
    ])
}

async fn by_hand(db: &TestDb, m: &Migrations, version: i64) {
    let set = MigrationSet::load(m.path(), None).unwrap();
    for s in set
        .get(version)
        .unwrap()
        .up
        .statements(db.dialect())
        .unwrap()
    {
        db.exec(&s.text).await;
    }
}

async fn total(db: &TestDb) -> String {
    db.scalar("SELECT total FROM orders WHERE id = 1")
        .await
        .unwrap()
}

db_test!(
    a_data_only_migration_applied_by_hand_is_a_decision,
    |db| async move {
        let m = orders();
        tm(&db, &m, &["up", "--to", "2"]).ok();
        by_hand(&db, &m, 3).await;
        by_hand(&db, &m, 4).await;
        assert_eq!(total(&db).await, "105000");

        let j = tm(&db, &m, &["status", "--format", "json"]).json();
        assert_eq!(j["drift"]["status"], "drifted", "{j}");
        assert!(
            j["drift"]["evidence"]
                .as_str()
                .unwrap_or_default()
                .contains("cannot tell whether 4 ran"),
            "{j}"
        );
        tm(&db, &m, &["up"]).code(20);
        // The flag that skips the drift check does not run 4 again either.
        let forced = tm(&db, &m, &["up", "--allow-drift"]);
        forced.code(20);
        assert!(
            forced.stderr.contains(
                "does not run a migration whose effects are (or may be) already in place"
            ) && forced.stderr.contains("4 (cents)"),
            "{}",
            forced.stderr
        );
        assert_eq!(total(&db).await, "105000", "migration 4 ran twice");

        let plan = tm(&db, &m, &["repair", "--dry-run", "--format", "json"]).json();
        let actions: Vec<(i64, String)> = plan_steps(&plan);
        assert_eq!(
            actions,
            [
                (3, "adopt".to_string()),
                (4, "undetermined".to_string()),
                (5, "replay".to_string())
            ],
            "{plan}"
        );
        // Without a decision, 4 is recorded as undetermined and blocks `up`.
        tm(&db, &m, &["repair", "--yes"]).code(20);
        tm(&db, &m, &["up"]).code(20);
        assert_eq!(total(&db).await, "105000");
        // The person knows it ran.
        tm(&db, &m, &["repair", "--adopt", "4", "--yes"]).ok();
        tm(&db, &m, &["up"]).ok();
        assert_eq!(total(&db).await, "105000", "migration 4 ran twice");
        assert_eq!(versions(&history(&db).await), [1, 2, 3, 4, 5]);
        tm(&db, &m, &["check"]).ok();
    }
);

db_test!(
    a_data_only_migration_that_did_not_run_runs_once,
    |db| async move {
        let m = orders();
        tm(&db, &m, &["up", "--to", "2"]).ok();
        by_hand(&db, &m, 3).await;
        tm(&db, &m, &["repair", "--yes"]).code(20);
        // The person knows 4 did not run: `up` runs it, once.
        tm(&db, &m, &["repair", "--pending", "4", "--yes"]).ok();
        tm(&db, &m, &["up"]).ok();
        assert_eq!(total(&db).await, "105000");
        tm(&db, &m, &["check"]).ok();
    }
);

db_test!(
    an_unfingerprinted_history_with_a_data_only_migration_next_refuses,
    |db| async move {
        // The history was written by hand (no fingerprint) up to 3; 4 ran by hand too.
        let m = orders();
        tm(&db, &m, &["up", "--to", "3"]).ok();
        db.exec("UPDATE tidemark_history SET schema_fingerprint = NULL")
            .await;
        by_hand(&db, &m, 4).await;
        let up = tm(&db, &m, &["up"]);
        up.code(20);
        assert!(up.stderr.contains("4 change only data"), "{}", up.stderr);
        assert_eq!(total(&db).await, "105000", "migration 4 ran twice");
        let j = tm(&db, &m, &["status", "--format", "json"]).json();
        assert_eq!(j["drift"]["status"], "unknown", "{j}");
        tm(&db, &m, &["check", "--require", "3"]).code(20);
    }
);

db_test!(the_refusal_names_the_other_tools_table, |db| async move {
    let m = orders();
    for v in 1..=4 {
        by_hand(&db, &m, v).await;
    }
    let dirty = match db.dialect() {
        Dialect::Postgres => "false",
        _ => "0",
    };
    db.exec("CREATE TABLE schema_migrations (version BIGINT NOT NULL PRIMARY KEY, dirty BOOLEAN NOT NULL)")
        .await;
    db.exec(&format!(
        "INSERT INTO schema_migrations (version, dirty) VALUES (4, {dirty})"
    ))
    .await;
    let up = tm(&db, &m, &["up"]);
    up.code(20);
    assert!(
        up.stderr.contains("schema_migrations")
            && up.stderr.contains("tidemark import --from golang-migrate"),
        "{}",
        up.stderr
    );
    assert!(!up.stderr.contains("--allow-drift"), "{}", up.stderr);
    let forced = tm(&db, &m, &["up", "--allow-drift"]);
    forced.code(20);
    assert_eq!(total(&db).await, "105000");
    let seeded = db.scalar("SELECT COUNT(*) FROM orders").await;
    assert_eq!(seeded.as_deref(), Some("1"), "seed rows inserted twice");
    // The way out it names works.
    tm(&db, &m, &["import", "--from", "golang-migrate", "--yes"]).ok();
    tm(&db, &m, &["up"]).ok();
    assert_eq!(total(&db).await, "105000");
});

/// `orders()` with a `tidemark:verify` query on the data-only migration 4.
fn orders_with_verify() -> Migrations {
    let m = orders();
    m.write(
        "4_cents.up.sql",
        "-- tidemark:verify SELECT CASE WHEN total >= 100000 THEN 1 ELSE 0 END FROM orders WHERE id = 1\nUPDATE orders SET total = total * 100;\n",
    );
    m
}

db_test!(
    a_verify_query_decides_what_the_schema_cannot,
    |db| async move {
        // 3 and 4 were run by hand: the query finds 4's effect, so repair adopts it.
        let m = orders_with_verify();
        tm(&db, &m, &["up", "--to", "2"]).ok();
        by_hand(&db, &m, 3).await;
        by_hand(&db, &m, 4).await;
        let plan = tm(&db, &m, &["repair", "--dry-run", "--format", "json"]).json();
        let actions: Vec<(i64, String)> = plan_steps(&plan);
        assert_eq!(
            actions,
            [
                (3, "adopt".to_string()),
                (4, "adopt".to_string()),
                (5, "replay".to_string())
            ],
            "{plan}"
        );
        assert!(
            plan["steps"][1]["reason"]
                .as_str()
                .unwrap()
                .contains("tidemark:verify")
        );
        tm(&db, &m, &["repair", "--yes"]).ok();
        tm(&db, &m, &["up"]).ok();
        assert_eq!(total(&db).await, "105000", "migration 4 ran twice");
        assert_eq!(versions(&history(&db).await), [1, 2, 3, 4, 5]);
    }
);

db_test!(
    a_verify_query_that_finds_nothing_lets_it_run_once,
    |db| async move {
        // Only 3 was run by hand: the query finds no effect of 4, so `up` runs it, once.
        let m = orders_with_verify();
        tm(&db, &m, &["up", "--to", "2"]).ok();
        by_hand(&db, &m, 3).await;
        let plan = tm(&db, &m, &["repair", "--dry-run", "--format", "json"]).json();
        assert_eq!(plan["steps"][1]["version"], 4, "{plan}");
        assert_eq!(plan["steps"][1]["action"], "replay", "{plan}");
        tm(&db, &m, &["repair", "--yes"]).ok();
        tm(&db, &m, &["up"]).ok();
        assert_eq!(total(&db).await, "105000");
        tm(&db, &m, &["up"]).ok();
        assert_eq!(total(&db).await, "105000", "migration 4 ran twice");
    }
);
