//! Every command through the real binary, on every database.

use tidemark_test::{Migrations, db_test};

use crate::common::*;

db_test!(up_status_down_round_trip, |db| async move {
    let m = numbered(3);
    let r = tm(&db, &m, &["status", "--exit-code"]);
    r.code(10);
    assert!(r.stdout.contains("3 pending"), "{}", r.stdout);
    assert!(
        !db.has_table("tidemark_history").await,
        "status must not create the history table"
    );

    tm(&db, &m, &["up"]).ok();
    assert_eq!(versions(&history(&db).await), vec![1, 2, 3]);
    assert!(db.has_table("t3").await);
    let s = tm(&db, &m, &["status", "--exit-code", "--format", "json"]);
    s.ok();
    let j = s.json();
    assert_eq!(j["current_version"], 3);
    assert_eq!(j["latest_version"], 3);
    assert_eq!(j["drift"]["status"], "clean");
    assert_eq!(j["migrations"][0]["state"], "applied");
    assert_eq!(j["database"], db.url().redacted());

    tm(&db, &m, &["down", "--steps", "2"]).ok();
    assert_eq!(versions(&history(&db).await), vec![1]);
    assert!(!db.has_table("t2").await);
    tm(&db, &m, &["down", "--to", "0"]).ok();
    assert!(history(&db).await.is_empty());
    assert!(!db.has_table("t1").await);
    let journal = db
        .scalar("SELECT COUNT(*) FROM tidemark_journal WHERE action = 'revert'")
        .await;
    assert_eq!(journal.as_deref(), Some("3"));
});

db_test!(up_to_a_version_then_the_rest, |db| async move {
    let m = numbered(4);
    tm(&db, &m, &["up", "--to", "2"]).ok();
    assert_eq!(versions(&history(&db).await), vec![1, 2]);
    let r = tm(&db, &m, &["up", "--to", "9"]);
    r.code(2);
    assert!(r.stderr.contains("--to 9"), "{}", r.stderr);
    tm(&db, &m, &["up"]).ok();
    assert_eq!(versions(&history(&db).await), vec![1, 2, 3, 4]);
    let r = tm(&db, &m, &["up"]);
    r.ok();
    assert!(r.stdout.contains("nothing to apply"), "{}", r.stdout);
});

db_test!(
    dry_run_prints_the_exact_sql_and_changes_nothing,
    |db| async move {
        let m = numbered(2);
        let r = tm(&db, &m, &["up", "--dry-run"]);
        r.ok();
        assert!(
            r.stdout
                .contains("CREATE TABLE t1 (id INTEGER PRIMARY KEY, name VARCHAR(50));"),
            "{}",
            r.stdout
        );
        assert!(r.stdout.contains("001_create_t1.up.sql:1"), "{}", r.stdout);
        assert!(r.stdout.contains("dry run"), "{}", r.stdout);
        assert!(!db.has_table("t1").await);
        assert!(
            !db.has_table("tidemark_history").await,
            "a dry run must not even create the history table"
        );
        let j = tm(&db, &m, &["up", "--dry-run", "--format", "json"]).json();
        assert_eq!(j["dry_run"], true);
        assert_eq!(j["plan"].as_array().unwrap().len(), 2);
        assert_eq!(j["plan"][1]["statements"][0]["line"], 1);

        tm(&db, &m, &["up"]).ok();
        let r = tm(&db, &m, &["down", "--steps", "1", "--dry-run"]);
        r.ok();
        assert!(r.stdout.contains("DROP TABLE t2;"), "{}", r.stdout);
        assert!(db.has_table("t2").await);
    }
);

db_test!(down_refuses_without_usable_down_script, |db| async move {
    let m = numbered(2);
    m.write("003_no_down.up.sql", "CREATE TABLE t3 (id INTEGER);\n");
    m.write("004_empty_down.up.sql", "CREATE TABLE t4 (id INTEGER);\n");
    m.write("004_empty_down.down.sql", "-- nothing to see\n");
    tm(&db, &m, &["up"]).ok();
    let r = tm(&db, &m, &["down", "--steps", "1"]);
    r.code(2);
    assert!(
        r.stderr.contains("004_empty_down.down.sql") && r.stderr.contains("empty"),
        "{}",
        r.stderr
    );
    let r = tm(&db, &m, &["down", "--to", "1"]);
    r.code(2);
    assert!(r.stderr.contains("nothing was reverted"), "{}", r.stderr);
    assert_eq!(
        versions(&history(&db).await),
        vec![1, 2, 3, 4],
        "nothing reverted"
    );
    assert!(db.has_table("t4").await);
});

db_test!(single_transaction, |db| async move {
    let m = numbered(3);
    let r = tm(&db, &m, &["up", "--single-transaction"]);
    if db.dialect() == tidemark::Dialect::MySql {
        r.code(2);
        assert!(r.stderr.contains("transactional"), "{}", r.stderr);
        assert!(!db.has_table("t1").await);
        return;
    }
    r.ok();
    assert_eq!(versions(&history(&db).await), vec![1, 2, 3]);
    // A failure anywhere undoes every migration of the run.
    m.write("004_ok.up.sql", "CREATE TABLE t4 (id INTEGER);\n");
    m.write(
        "005_bad.up.sql",
        "CREATE TABLE t5 (id INTEGER);\nINSERT INTO nowhere VALUES (1);\n",
    );
    tm(&db, &m, &["up", "--single-transaction"]).code(1);
    assert!(!db.has_table("t4").await && !db.has_table("t5").await);
    assert_eq!(versions(&history(&db).await), vec![1, 2, 3]);
});

db_test!(modified_and_missing_files_stop_up, |db| async move {
    let m = numbered(2);
    tm(&db, &m, &["up"]).ok();
    m.write(
        "001_create_t1.up.sql",
        "CREATE TABLE t1 (id INTEGER PRIMARY KEY, name VARCHAR(60));\n",
    );
    add_table_migration(&m, 3);
    let r = tm(&db, &m, &["status", "--exit-code"]);
    r.code(20);
    assert!(r.stdout.contains("modified"), "{}", r.stdout);
    let r = tm(&db, &m, &["up"]);
    r.code(20);
    assert!(
        r.stderr.contains("was changed after it was applied") && r.stderr.contains("repair"),
        "{}",
        r.stderr
    );
    assert!(!db.has_table("t3").await);
    tm(&db, &m, &["up", "--allow-modified"]).ok();
    assert!(db.has_table("t3").await);

    m.remove("002_create_t2.up.sql");
    m.remove("002_create_t2.down.sql");
    let j = tm(&db, &m, &["status", "--format", "json"]).json();
    assert_eq!(j["migrations"][1]["state"], "missing");
    let r = tm(&db, &m, &["up"]);
    r.code(20);
    assert!(
        r.stderr.contains("2 problems")
            && r.stderr.contains("file is gone")
            && r.stderr.contains("was changed"),
        "{}",
        r.stderr
    );
});

db_test!(crlf_checkout_is_not_modified, |db| async move {
    let m = Migrations::new(&[(
        "1_users.sql",
        "CREATE TABLE users (id INTEGER);\nCREATE INDEX users_id ON users (id);\n",
    )]);
    tm(&db, &m, &["up"]).ok();
    m.write(
        "1_users.sql",
        "CREATE TABLE users (id INTEGER);\r\nCREATE INDEX users_id ON users (id);\r\n",
    );
    tm(&db, &m, &["status", "--exit-code"]).ok();
});

db_test!(
    failed_statement_names_file_line_and_statement,
    |db| async move {
        let m = numbered(1);
        m.write("002_broken.up.sql", "CREATE TABLE t2 (id INTEGER);\n\nINSERT INTO t2 VALUES (1);\n-- the typo below\nINSERT INTO t2_typo VALUES (2);\n");
        let r = tm(&db, &m, &["up"]);
        r.code(1);
        assert!(r.stderr.contains("002_broken.up.sql:5"), "{}", r.stderr);
        assert!(r.stderr.contains("statement 3"), "{}", r.stderr);
        assert!(
            r.stderr.contains("INSERT INTO t2_typo VALUES (2)"),
            "{}",
            r.stderr
        );
        assert!(
            r.stderr.contains("t2_typo"),
            "the database's message: {}",
            r.stderr
        );
        let j = tm(&db, &m, &["up", "--format", "json"]);
        if db.dialect() == tidemark::Dialect::MySql {
            // Two statements committed on their own: migration 2 is now recorded as failed.
            j.code(20);
            assert_eq!(j.json()["error"]["code"], "inconsistent");
            return;
        }
        j.code(1);
        let j = j.json();
        assert_eq!(j["error"]["code"], "operational");
        assert_eq!(j["error"]["line"], 5);
        assert_eq!(j["error"]["migration"]["statement_index"], 3);
        assert_eq!(j["error"]["migration"]["recorded_failed"], false);
    }
);

db_test!(lock_timeout_flag, |db| async move {
    let m = numbered(1);
    let mut holder = db.connect().await;
    let guard = holder
        .lock(std::time::Duration::from_secs(5), &mut ())
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let r = tm(&db, &m, &["up", "--lock-timeout", "300ms"]);
    r.code(1);
    assert!(
        r.stderr.contains("waiting for the migration lock") && r.stderr.contains("timed out"),
        "{}",
        r.stderr
    );
    assert!(started.elapsed().as_secs() < 10);
    let r = tm(&db, &m, &["up", "--lock-timeout", "soon"]);
    r.code(2);
    assert!(r.stderr.contains("--lock-timeout"), "{}", r.stderr);
    guard.release().await.unwrap();
    holder.close().await;
    tm(&db, &m, &["up", "--lock-timeout", "5s"]).ok();
});

#[test]
fn init_writes_config_and_directory_and_never_overwrites() {
    let d = tempfile::tempdir().unwrap();
    let r: Run = command(d.path()).arg("init").output().unwrap().into();
    r.ok();
    assert!(d.path().join("tidemark.toml").is_file());
    assert!(d.path().join("migrations").is_dir());
    std::fs::write(d.path().join("tidemark.toml"), "dir = \"migrations\"\n").unwrap();
    let r: Run = command(d.path()).arg("init").output().unwrap().into();
    r.ok();
    assert!(r.stdout.contains("exists"), "{}", r.stdout);
    assert_eq!(
        std::fs::read_to_string(d.path().join("tidemark.toml")).unwrap(),
        "dir = \"migrations\"\n"
    );
    // The written template is a valid configuration.
    let d2 = tempfile::tempdir().unwrap();
    command(d2.path()).arg("init").output().unwrap();
    let r: Run = command(d2.path())
        .args(["-d", "sqlite://x.db", "status"])
        .output()
        .unwrap()
        .into();
    r.ok();
}

#[test]
fn new_numbers_migrations_in_each_layout() {
    let d = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| -> Run { command(d.path()).args(args).output().unwrap().into() };
    run(&["new", "create users"]).ok();
    assert!(
        d.path()
            .join("migrations/0001_create_users.up.sql")
            .is_file()
    );
    assert!(
        d.path()
            .join("migrations/0001_create_users.down.sql")
            .is_file()
    );
    run(&["new", "add-roles", "--no-down"]).ok();
    assert!(d.path().join("migrations/0002_add_roles.up.sql").is_file());
    assert!(!d.path().join("migrations/0002_add_roles.down.sql").exists());
    let j = run(&["new", "third", "--format", "json"]).json();
    assert_eq!(j["version"], 3);
    let r = run(&["new", "stamp", "--timestamp"]);
    r.ok();
    assert!(r.stdout.contains("_stamp.up.sql"), "{}", r.stdout);
    // After a timestamp, versions stay timestamps.
    let r = run(&["new", "after"]);
    assert!(!r.stdout.contains("0005_after"), "{}", r.stdout);

    for (layout, files, expect) in [
        ("flyway", vec!["V1__init.sql"], "V2__next.sql"),
        ("dbmate", vec!["20250101000000_init.sql"], "_next.sql"),
        (
            "diesel",
            vec!["2025-01-01-000000_init/up.sql"],
            "_next/up.sql",
        ),
    ] {
        let d = tempfile::tempdir().unwrap();
        for f in files {
            let p = d.path().join("migrations").join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(
                p,
                if layout == "dbmate" {
                    "-- migrate:up\nSELECT 1;\n"
                } else {
                    "SELECT 1;\n"
                },
            )
            .unwrap();
        }
        let r: Run = command(d.path())
            .args(["new", "next"])
            .output()
            .unwrap()
            .into();
        r.ok();
        assert!(r.stdout.contains(expect), "{layout}: {}", r.stdout);
    }
}

#[test]
fn help_lists_the_commands() {
    let d = tempfile::tempdir().unwrap();
    let r: Run = command(d.path()).arg("--help").output().unwrap().into();
    r.ok();
    for c in ["init", "new", "status", "up", "down"] {
        assert!(r.stdout.contains(c), "{}", r.stdout);
    }
    let r: Run = command(d.path()).arg("frobnicate").output().unwrap().into();
    r.code(2);
}

db_test!(
    error_position_points_at_the_line_inside_the_statement,
    |db| async move {
        let m = Migrations::new(&[(
            "1_a.sql",
            "CREATE TABLE a (id INTEGER);\nCREATE TABLE b (\n    id INTEGER,\n    name INTEGER DEFAULT ,\n    note TEXT\n);\n",
        )]);
        let r = tm(&db, &m, &["up", "--format", "json"]);
        r.code(1);
        let j = r.json();
        assert_eq!(j["error"]["migration"]["statement_index"], 2);
        // PostgreSQL says where in the statement; elsewhere the statement's first line is named.
        let line = if db.dialect() == tidemark::Dialect::Postgres {
            4
        } else {
            2
        };
        assert_eq!(j["error"]["line"], line, "{j}");
        assert!(!db.has_table("a").await || db.dialect() == tidemark::Dialect::MySql);
    }
);

db_test!(journal_lists_what_happened, |db| async move {
    let m = numbered(2);
    let empty = tm(&db, &m, &["journal", "--format", "json"]);
    empty.ok();
    assert_eq!(empty.json()["entries"], serde_json::json!([]));
    tm(&db, &m, &["up"]).ok();
    tm(&db, &m, &["down", "--steps", "1"]).ok();
    let j = tm(&db, &m, &["journal", "--format", "json"]).json();
    let actions: Vec<&str> = j["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        vec!["backup", "apply", "apply", "backup", "revert"]
    );
    let last = tm(&db, &m, &["journal", "--limit", "1", "--format", "json"]).json();
    assert_eq!(last["entries"][0]["action"], "revert");
    assert_eq!(last["entries"][0]["version"], 2);
    let text = tm(&db, &m, &["journal"]);
    assert!(text.stdout.contains("revert 2"), "{}", text.stdout);
});
