//! S0 and S1 (SCENARIOS.md): a history that disagrees with reality, found and fixed by evidence;
//! baseline; drift.

use tidemark::Dialect;
use tidemark_test::{Migrations, TestDb, db_test};

use crate::common::*;

/// 39 migrations: tables, added columns and indexes, in portable SQL.
fn thirty_nine() -> Migrations {
    let m = Migrations::new(&[]);
    for i in 1..=39usize {
        let (name, sql) = match i % 3 {
            0 => (
                format!("add_c{i}"),
                format!("ALTER TABLE t{} ADD COLUMN c{i} INTEGER;\n", i - 1),
            ),
            1 => (
                format!("create_t{i}"),
                format!("CREATE TABLE t{i} (id INTEGER PRIMARY KEY, name VARCHAR(40));\n"),
            ),
            _ => (
                format!("create_t{i}"),
                format!(
                    "CREATE TABLE t{i} (id INTEGER PRIMARY KEY, name VARCHAR(40));\nCREATE INDEX idx_t{i}_name ON t{i} (name);\n"
                ),
            ),
        };
        m.write(&format!("{i:03}_{name}.up.sql"), &sql);
    }
    m
}

/// Run migration files by hand, behind tidemark's back (as the incidents did).
async fn by_hand(db: &TestDb, m: &Migrations, versions: std::ops::RangeInclusive<usize>) {
    let mut files: Vec<_> = std::fs::read_dir(m.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for v in versions {
        let f = files
            .iter()
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .starts_with(&format!("{v:03}_"))
            })
            .unwrap();
        db.exec(&std::fs::read_to_string(f).unwrap()).await;
    }
}

db_test!(
    /// S0: history says 1–25, 26–36 are applied, 37–39 are not.
    s0_history_behind_reality,
    |db| async move {
        let m = thirty_nine();
        tm(&db, &m, &["up", "--to", "25"]).ok();
        by_hand(&db, &m, 26..=36).await;

        let s = tm(&db, &m, &["status", "--format", "json"]);
        s.ok();
        let j = s.json();
        assert_eq!(j["drift"]["status"], "drifted");
        assert_eq!(j["drift"]["matches_state_after"], 36, "status says the live schema equals the state after 36");
        assert_eq!(j["current_version"], 25);
        let text = tm(&db, &m, &["status"]);
        assert!(text.stdout.contains("equals the state after migration 36"), "{}", text.stdout);

        // The incident's failure mode is refused up front.
        let up = tm(&db, &m, &["up"]);
        up.code(20);
        assert!(up.stderr.contains("repair"), "{}", up.stderr);
        assert_eq!(versions(&history(&db).await), (1..=25).collect::<Vec<_>>(), "up changed nothing");

        // The application gate keeps the app from starting.
        let marker = m.path().join("app-started");
        let exec = tm(&db, &m, &["exec", "--require", "latest", "--", "touch", marker.to_str().unwrap()]);
        exec.code(20);
        assert!(!marker.exists(), "exec must never start the command when the check fails");

        let plan = tm(&db, &m, &["repair", "--dry-run", "--format", "json"]);
        plan.ok();
        let p = plan.json();
        assert_eq!(p["matches_state_after"], 36);
        let steps: Vec<(i64, String)> =
            p["steps"].as_array().unwrap().iter().map(|s| (s["version"].as_i64().unwrap(), s["action"].as_str().unwrap().to_string())).collect();
        let mut expected: Vec<(i64, String)> = (26..=36).map(|v| (v, "adopt".to_string())).collect();
        expected.extend((37..=39).map(|v| (v, "replay".to_string())));
        assert_eq!(steps, expected);
        assert_eq!(versions(&history(&db).await), (1..=25).collect::<Vec<_>>(), "a dry run changes nothing");

        tm(&db, &m, &["repair", "--yes"]).ok();
        assert_eq!(versions(&history(&db).await), (1..=36).collect::<Vec<_>>());
        let adopted = db.scalar("SELECT COUNT(*) FROM tidemark_journal WHERE action = 'repair:adopt'").await;
        assert_eq!(adopted.as_deref(), Some("11"));

        tm(&db, &m, &["up"]).ok();
        assert_eq!(versions(&history(&db).await), (1..=39).collect::<Vec<_>>());
        tm(&db, &m, &["check", "--require", "latest"]).ok();
        tm(&db, &m, &["drift"]).ok();
        let st = tm(&db, &m, &["status", "--format", "json"]).json();
        assert_eq!(st["drift"]["status"], "clean");
        tm(&db, &m, &["exec", "--require", "latest", "--", "touch", marker.to_str().unwrap()]).ok();
        assert!(marker.exists());
    }
);

/// The S1 migrations: a task tracker. Migration 4 makes two indexes; 7 adds roles.
fn task_tracker(d: Dialect) -> Migrations {
    let roles = match d {
        // MariaDB/MySQL ignore an inline REFERENCES on a column: name the constraint.
        Dialect::MySql => {
            "CREATE TABLE roles (id INTEGER PRIMARY KEY, name VARCHAR(50) NOT NULL);\n\
             INSERT INTO roles (id, name) VALUES (1, 'member'), (2, 'admin');\n\
             ALTER TABLE users ADD COLUMN role_id INTEGER;\n\
             ALTER TABLE users ADD CONSTRAINT fk_users_role FOREIGN KEY (role_id) REFERENCES roles (id);\n"
        }
        _ => {
            "CREATE TABLE roles (id INTEGER PRIMARY KEY, name VARCHAR(50) NOT NULL);\n\
             INSERT INTO roles (id, name) VALUES (1, 'member'), (2, 'admin');\n\
             ALTER TABLE users ADD COLUMN role_id INTEGER REFERENCES roles (id);\n"
        }
    };
    Migrations::new(&[
        (
            "20250511073638_create_task_table.up.sql",
            "CREATE TABLE tasks (id INTEGER PRIMARY KEY, title VARCHAR(200) NOT NULL);\n",
        ),
        (
            "20250511073639_create_user_table.up.sql",
            "CREATE TABLE users (id INTEGER PRIMARY KEY, email VARCHAR(200) NOT NULL);\n",
        ),
        (
            "20250511073640_create_refresh_tokens.up.sql",
            "CREATE TABLE refresh_tokens (token VARCHAR(64) PRIMARY KEY, user_id INTEGER NOT NULL);\n",
        ),
        (
            "20250511073641_add_indexes.up.sql",
            "CREATE UNIQUE INDEX idx_users_email ON users (email);\nCREATE INDEX idx_refresh_tokens_user ON refresh_tokens (user_id);\n",
        ),
        (
            "20250511073642_task_owner.up.sql",
            "ALTER TABLE tasks ADD COLUMN user_id INTEGER;\n",
        ),
        (
            "20250511073643_task_owner_index.up.sql",
            "CREATE INDEX idx_tasks_user_id ON tasks (user_id);\n",
        ),
        ("20250511073644_add_roles.up.sql", roles),
    ])
}

const V: [i64; 7] = [
    20250511073638,
    20250511073639,
    20250511073640,
    20250511073641,
    20250511073642,
    20250511073643,
    20250511073644,
];

/// Build 1–6 by hand-run SQL, written differently from the migration files (as a person would),
/// optionally leaving out the second index of migration 4.
async fn hand_built(db: &TestDb, with_second_index: bool) {
    db.exec(
        "create table tasks (\n  id integer primary key,\n  title varchar(200) not null\n);\n\
         CREATE TABLE users (id INTEGER PRIMARY KEY, email VARCHAR(200) NOT NULL);\n\
         CREATE TABLE refresh_tokens (token varchar(64) primary key, user_id integer not null);\n\
         CREATE UNIQUE INDEX idx_users_email ON users (email);\n\
         ALTER TABLE tasks ADD COLUMN user_id INTEGER;\n\
         CREATE INDEX idx_tasks_user_id ON tasks (user_id);\n",
    )
    .await;
    if with_second_index {
        db.exec("CREATE INDEX idx_refresh_tokens_user ON refresh_tokens (user_id);")
            .await;
    }
}

db_test!(
    /// S1: a hand-built database with an empty history.
    s1_hand_built_database,
    |db| async move {
        let m = task_tracker(db.dialect());
        hand_built(&db, true).await;
        let st = tm(&db, &m, &["status", "--format", "json"]).json();
        assert_eq!(st["drift"]["status"], "drifted");
        assert!(st["drift"]["reason"].as_str().unwrap().contains("history is empty"), "{st}");

        let p = tm(&db, &m, &["repair", "--dry-run", "--format", "json"]);
        p.ok();
        let p = p.json();
        assert_eq!(p["matches_state_after"], V[5]);
        let mut expected: Vec<(i64, String)> = V[..6].iter().map(|v| (*v, "adopt".to_string())).collect();
        expected.push((V[6], "replay".into()));
        assert_eq!(plan_steps(&p), expected);

        tm(&db, &m, &["repair", "--yes"]).ok();
        tm(&db, &m, &["up"]).ok();
        assert_eq!(versions(&history(&db).await), V.to_vec());
        assert_eq!(db.scalar("SELECT COUNT(*) FROM roles").await.as_deref(), Some("2"));
        tm(&db, &m, &["drift"]).ok();
        tm(&db, &m, &["check"]).ok();
    }
);

db_test!(
    /// S1, variant: migration 4 is half there (one of its two indexes exists).
    s1_half_applied_migration_needs_a_decision,
    |db| async move {
        let m = task_tracker(db.dialect());
        hand_built(&db, false).await;
        let p = tm(&db, &m, &["repair", "--dry-run", "--format", "json"]);
        p.ok();
        let p = p.json();
        assert_eq!(p["matches_state_after"], serde_json::Value::Null);
        let mut expected: Vec<(i64, String)> = V[..6].iter().map(|v| (*v, "adopt".to_string())).collect();
        expected[3].1 = "half_applied".into();
        expected.push((V[6], "replay".into()));
        assert_eq!(plan_steps(&p), expected);
        let four = &p["steps"][3];
        // MariaDB/MySQL keep a unique index as a unique key.
        let unique = if db.dialect() == Dialect::MySql { "constraint idx_users_email on users" } else { "index idx_users_email on users" };
        assert_eq!(four["present"], serde_json::json!([unique]));
        assert_eq!(four["missing"], serde_json::json!(["index idx_refresh_tokens_user on refresh_tokens"]));
        let text = tm(&db, &m, &["repair", "--dry-run"]);
        assert!(text.stdout.contains("HALF APPLIED") && text.stdout.contains("--adopt 20250511073641"), "{}", text.stdout);
        assert!(!db.has_table("tidemark_history").await, "the dry run changed nothing");

        // --yes adopts what is certain and records 4 as failed: nothing destructive, and `up`
        // and the gate stop until a person decides.
        let r = tm(&db, &m, &["repair", "--yes"]);
        r.code(20);
        assert!(db.has_table("users").await && db.has_table("tasks").await);
        let h = history(&db).await;
        assert_eq!(h.len(), 6);
        assert_eq!(h[3], (V[3], "failed".to_string()));
        tm(&db, &m, &["up"]).code(20);
        tm(&db, &m, &["check"]).code(20);

        // The person completes migration 4 by hand and adopts it.
        db.exec("CREATE INDEX idx_refresh_tokens_user ON refresh_tokens (user_id);").await;
        tm(&db, &m, &["repair", "--yes", "--adopt", &V[3].to_string()]).ok();
        tm(&db, &m, &["up"]).ok();
        assert_eq!(versions(&history(&db).await), V.to_vec());
        tm(&db, &m, &["drift"]).ok();
    }
);

db_test!(
    /// S1: the history is taken over from SeaORM's seaql_migrations.
    s1_import_from_seaorm,
    |db| async move {
        let m = task_tracker(db.dialect());
        hand_built(&db, true).await;
        db.exec("CREATE TABLE seaql_migrations (version VARCHAR(255) NOT NULL PRIMARY KEY, applied_at BIGINT NOT NULL);").await;
        for name in ["create_task_table", "create_user_table", "create_refresh_tokens", "add_indexes", "task_owner", "task_owner_index"] {
            let v = V[["create_task_table", "create_user_table", "create_refresh_tokens", "add_indexes", "task_owner", "task_owner_index"]
                .iter()
                .position(|n| *n == name)
                .unwrap()];
            let s = v.to_string();
            db.exec(&format!("INSERT INTO seaql_migrations VALUES ('m{}_{}_{name}', 1747000000);", &s[..8], &s[8..])).await;
        }
        let plan = tm(&db, &m, &["import", "--from", "seaorm", "--format", "json"]);
        plan.ok();
        assert_eq!(plan_steps(&plan.json()), vec![(V[6], "replay".to_string())], "SeaORM's claims hold: only 7 is pending");
        let r = tm(&db, &m, &["import", "--from", "seaorm", "--yes"]);
        r.ok();
        assert!(r.stdout.contains("seaql_migrations"), "{}", r.stdout);
        assert_eq!(versions(&history(&db).await), V[..6].to_vec());
        tm(&db, &m, &["up"]).ok();
        tm(&db, &m, &["drift"]).ok();
        tm(&db, &m, &["status", "--exit-code"]).ok();
        // Importing twice is refused: the history is tidemark's now.
        tm(&db, &m, &["import", "--from", "seaorm", "--yes"]).code(20);
    }
);

db_test!(
    baseline_is_verified_against_the_live_schema,
    |db| async move {
        let m = numbered(4);
        by_hand_numbered(&db, 1..=3).await;
        let wrong = tm(&db, &m, &["baseline", "--version", "2"]);
        wrong.code(20);
        assert!(
            wrong.stderr.contains("table t3: unexpected"),
            "{}",
            wrong.stderr
        );
        assert!(history(&db).await.is_empty());
        tm(&db, &m, &["baseline", "--version", "3"]).ok();
        assert_eq!(versions(&history(&db).await), vec![1, 2, 3]);
        tm(&db, &m, &["status", "--exit-code"]).code(10);
        tm(&db, &m, &["up"]).ok();
        tm(&db, &m, &["baseline", "--version", "3"]).code(20);
    }
);

db_test!(
    baseline_force_records_despite_differences,
    |db| async move {
        let m = numbered(3);
        by_hand_numbered(&db, 1..=3).await;
        let r = tm(&db, &m, &["baseline", "--version", "2", "--force"]);
        r.ok();
        assert!(r.stderr.contains("--force"), "{}", r.stderr);
        assert_eq!(versions(&history(&db).await), vec![1, 2]);
    }
);

async fn by_hand_numbered(db: &TestDb, r: std::ops::RangeInclusive<usize>) {
    for i in r {
        db.exec(&format!(
            "CREATE TABLE t{i} (id INTEGER PRIMARY KEY, name VARCHAR(50));"
        ))
        .await;
    }
}

db_test!(
    drift_reports_changes_behind_tidemarks_back,
    |db| async move {
        let m = numbered(3);
        tm(&db, &m, &["up"]).ok();
        let clean = tm(&db, &m, &["drift", "--format", "json"]);
        clean.ok();
        assert_eq!(clean.json()["status"], "clean");
        db.exec("ALTER TABLE t1 ADD COLUMN role_id INTEGER;").await;
        db.exec("DROP TABLE t3;").await;
        let r = tm(&db, &m, &["drift", "--format", "json"]);
        r.code(20);
        let j = r.json();
        assert_eq!(j["status"], "drifted");
        let changes: Vec<(String, String)> = j["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["object"].as_str().unwrap().into(),
                    c["kind"].as_str().unwrap().into(),
                )
            })
            .collect();
        assert_eq!(
            changes,
            vec![
                ("column t1.role_id".to_string(), "unexpected".to_string()),
                ("table t3".to_string(), "missing".to_string())
            ]
        );
        let text = tm(&db, &m, &["drift"]);
        assert!(
            text.stdout.contains("column t1.role_id: unexpected"),
            "{}",
            text.stdout
        );
        // The cheap check in status sees it too, and up refuses.
        let st = tm(&db, &m, &["status", "--format", "json", "--no-shadow"]).json();
        assert_eq!(st["drift"]["status"], "drifted");
        tm(&db, &m, &["up"]).code(20);
    }
);

db_test!(
    up_down_up_ends_with_the_fingerprint_of_up_alone,
    |db| async move {
        let m = numbered(4);
        m.write(
            "005_index.up.sql",
            "CREATE INDEX idx_t1_name ON t1 (name);\n",
        );
        m.write(
            "005_index.down.sql",
            if db.dialect() == Dialect::MySql {
                "DROP INDEX idx_t1_name ON t1;\n"
            } else {
                "DROP INDEX idx_t1_name;\n"
            },
        );
        tm(&db, &m, &["up"]).ok();
        let once = tm(&db, &m, &["inspect", "--fingerprint"]).stdout;
        tm(&db, &m, &["down", "--to", "0"]).ok();
        tm(&db, &m, &["up"]).ok();
        let again = tm(&db, &m, &["inspect", "--fingerprint"]).stdout;
        assert_eq!(once, again);
        let st = tm(&db, &m, &["status", "--format", "json"]).json();
        assert_eq!(st["drift"]["status"], "clean");
        assert_eq!(
            st["drift"]["live_fingerprint"].as_str().unwrap(),
            once.trim()
        );
    }
);

db_test!(
    repair_forgets_a_recorded_migration_whose_effects_are_absent,
    |db| async move {
        let m = numbered(3);
        tm(&db, &m, &["up"]).ok();
        db.exec("DROP TABLE t3;").await;
        let p = tm(&db, &m, &["repair", "--dry-run", "--format", "json"]).json();
        assert_eq!(plan_steps(&p), vec![(3, "forget".to_string())]);
        tm(&db, &m, &["repair", "--yes"]).ok();
        assert_eq!(versions(&history(&db).await), vec![1, 2]);
        tm(&db, &m, &["up"]).ok();
        assert!(db.has_table("t3").await);
    }
);

db_test!(
    repair_refreshes_the_checksum_of_a_reformatted_file,
    |db| async move {
        let m = numbered(2);
        tm(&db, &m, &["up"]).ok();
        m.write("002_create_t2.up.sql", "-- reformatted\nCREATE TABLE t2 (\n  id INTEGER PRIMARY KEY,\n  name VARCHAR(50)\n);\n");
        tm(&db, &m, &["status", "--exit-code"]).code(20);
        let p = tm(&db, &m, &["repair", "--dry-run", "--format", "json"]).json();
        assert_eq!(plan_steps(&p), vec![(2, "refresh_checksum".to_string())]);
        tm(&db, &m, &["repair", "--yes"]).ok();
        tm(&db, &m, &["status", "--exit-code"]).ok();
    }
);

db_test!(
    a_stale_recorded_fingerprint_is_confirmed_by_replay_not_trusted,
    |db| async move {
        // As after an upgrade of tidemark whose canonical form changed: the recorded fingerprint
        // no longer matches although nothing drifted.
        let m = numbered(2);
        tm(&db, &m, &["up"]).ok();
        db.exec("UPDATE tidemark_history SET schema_fingerprint = 'written-by-an-older-tidemark' WHERE schema_fingerprint IS NOT NULL;").await;
        tm(&db, &m, &["status", "--exit-code", "--no-shadow"]).code(20);
        add_table_migration(&m, 3);
        let r = tm(&db, &m, &["up"]);
        r.ok();
        assert!(r.stderr.contains("stale"), "{}", r.stderr);
        tm(&db, &m, &["status", "--exit-code", "--no-shadow"]).ok();
        // Real drift is still refused after the replay confirms it.
        db.exec("CREATE TABLE sneaky (id INTEGER);").await;
        add_table_migration(&m, 4);
        tm(&db, &m, &["up"]).code(20);
    }
);

/// A failed `CREATE INDEX CONCURRENTLY` leaves an invalid index behind: it must not count as the
/// index the migration makes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_index_is_not_adopted_postgres() {
    let Some(db) = TestDb::postgres("an_invalid_index_is_not_adopted_postgres").await else {
        return;
    };
    let m = Migrations::new(&[
        (
            "1_users.sql",
            "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT);\n",
        ),
        (
            "2_unique_email.sql",
            "-- tidemark:no-transaction\nCREATE UNIQUE INDEX CONCURRENTLY idx_users_email ON users (email);\n",
        ),
    ]);
    tm(&db, &m, &["up", "--to", "1"]).ok();
    // Data the unique index cannot take (the migrations replay fine on an empty database).
    db.exec("INSERT INTO users VALUES (1, 'a@x'), (2, 'a@x');")
        .await;
    tm(&db, &m, &["up"]).code(1);
    let live = tm(&db, &m, &["inspect"]).stdout;
    assert!(
        live.contains("index idx_users_email on users: unique=yes; invalid=yes; parts=email"),
        "{live}"
    );
    // History and schema now disagree, and up says so instead of failing again.
    tm(&db, &m, &["up"]).code(20);
    let p = tm(&db, &m, &["repair", "--dry-run", "--format", "json"]).json();
    assert_eq!(p["steps"][0]["version"], 2);
    assert_eq!(p["steps"][0]["action"], "half_applied", "{p}");
    // The way out: drop the invalid index, fix the data, decide, apply.
    db.exec("DROP INDEX idx_users_email;\nUPDATE users SET email = 'b@x' WHERE id = 2;")
        .await;
    tm(&db, &m, &["repair", "--yes"]).ok();
    tm(&db, &m, &["up"]).ok();
    tm(&db, &m, &["drift"]).ok();
}

/// The example project's migrations (written for SQLite and PostgreSQL): up, down to nothing and
/// up again ends with the fingerprint of up alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_migrations_round_trip() {
    let examples =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/todo/migrations");
    let m = Migrations::new(&[]);
    for e in std::fs::read_dir(&examples).unwrap() {
        let p = e.unwrap().path();
        m.write(
            p.file_name().unwrap().to_str().unwrap(),
            &std::fs::read_to_string(&p).unwrap(),
        );
    }
    for db in [
        TestDb::sqlite("example_migrations_round_trip").await,
        TestDb::postgres("example_migrations_round_trip").await,
    ]
    .into_iter()
    .flatten()
    {
        tm(&db, &m, &["up"]).ok();
        let once = tm(&db, &m, &["inspect", "--fingerprint"]).stdout;
        tm(&db, &m, &["down", "--to", "0"]).ok();
        assert_eq!(
            tm(&db, &m, &["inspect"]).stdout.lines().count(),
            1,
            "only the fingerprint line is left"
        );
        tm(&db, &m, &["up"]).ok();
        assert_eq!(
            tm(&db, &m, &["inspect", "--fingerprint"]).stdout,
            once,
            "{}",
            db.dialect()
        );
        tm(&db, &m, &["drift"]).ok();
    }
}

db_test!(
    a_migration_that_failed_part_way_is_resumed_after_its_file_is_fixed,
    |db| async move {
        // Outside a transaction the first statement stays applied when the second fails; after
        // the fix, the rest runs and the first is not run again (it would fail: the table exists).
        let m = Migrations::new(&[
            (
                "1_users.sql",
                "CREATE TABLE users (id INTEGER PRIMARY KEY);\n",
            ),
            (
                "2_three.sql",
                "-- tidemark:no-transaction\nCREATE TABLE a (id INTEGER);\nINSERT INTO no_such_table VALUES (1);\nCREATE TABLE c (id INTEGER);\n",
            ),
        ]);
        let r = tm(&db, &m, &["up"]);
        r.code(1);
        assert!(db.has_table("a").await && !db.has_table("c").await);
        // Nothing to resume for a migration that did not fail, or one that does not exist.
        let bad = tm(&db, &m, &["repair", "--resume", "1", "--yes"]);
        bad.code(2);
        assert!(bad.stderr.contains("--resume 1"), "{}", bad.stderr);
        tm(&db, &m, &["repair", "--resume", "7", "--yes"]).code(2);
        // up names the way out.
        let up = tm(&db, &m, &["up"]);
        up.code(20);
        assert!(up.stderr.contains("repair --resume 2"), "{}", up.stderr);

        m.write(
            "2_three.sql",
            "-- tidemark:no-transaction\nCREATE TABLE a (id INTEGER);\nCREATE TABLE b (id INTEGER);\nCREATE TABLE c (id INTEGER);\n",
        );
        // Without --yes: the plan, nothing changed.
        let plan = tm(&db, &m, &["repair", "--resume", "2", "--format", "json"]).json();
        assert_eq!(plan["dry_run"], true, "{plan}");
        assert_eq!(plan["resumed"]["from_statement"], 2, "{plan}");
        assert_eq!(plan["resumed"]["statements"], 3, "{plan}");
        assert!(!db.has_table("b").await);
        assert_eq!(history(&db).await[1], (2, "failed".to_string()));

        tm(&db, &m, &["repair", "--resume", "2", "--yes"]).ok();
        assert!(db.has_table("b").await && db.has_table("c").await);
        assert_eq!(history(&db).await[1], (2, "applied".to_string()));
        assert_eq!(
            db.scalar("SELECT COUNT(*) FROM tidemark_journal WHERE action = 'repair:resume' AND version = 2")
                .await
                .as_deref(),
            Some("1")
        );
        // The recorded checksum is the fixed file's: nothing is modified, nothing drifted.
        tm(&db, &m, &["status", "--exit-code"]).ok();
        tm(&db, &m, &["up"]).ok();
        // Resuming again is refused: it is applied.
        tm(&db, &m, &["repair", "--resume", "2", "--yes"]).code(2);
    }
);

/// Resuming runs statements as `up` does: one that waits for a table lock gives up (after the
/// statement lock timeout) instead of waiting behind a long transaction for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_statement_gives_up_waiting_for_a_table_lock_postgres() {
    let Some(db) =
        TestDb::postgres("a_resumed_statement_gives_up_waiting_for_a_table_lock_postgres").await
    else {
        return;
    };
    let m = Migrations::new(&[
        (
            "1_users.sql",
            "CREATE TABLE users (id INTEGER PRIMARY KEY);\n",
        ),
        (
            "2_two.sql",
            "-- tidemark:no-transaction\nCREATE TABLE a (id INTEGER);\nINSERT INTO no_such_table VALUES (1);\n",
        ),
    ]);
    tm(&db, &m, &["up"]).code(1);
    m.write(
        "2_two.sql",
        "-- tidemark:no-transaction\nCREATE TABLE a (id INTEGER);\nALTER TABLE users ADD COLUMN x INTEGER;\n",
    );
    let mut holder = db.connect().await;
    holder
        .run("BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    // The default statement lock timeout (5 s).
    let r = tm(&db, &m, &["repair", "--resume", "2", "--yes"]);
    r.code(1);
    assert!(r.stderr.contains("lock"), "{}", r.stderr);
    assert_eq!(history(&db).await[1], (2, "failed".to_string()));
    holder.run("ROLLBACK").await.unwrap();
    tm(&db, &m, &["repair", "--resume", "2", "--yes"]).ok();
    assert_eq!(history(&db).await[1], (2, "applied".to_string()));
}
