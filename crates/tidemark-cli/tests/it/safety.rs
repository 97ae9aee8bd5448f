//! The safety promise without exceptions: drift that no fingerprint can decide ("unknown") is
//! established by replay before anything runs, never assumed clean; an older release may run
//! on a newer schema only across expand-only migrations.

use tidemark::{Dialect, MigrationSet};
use tidemark_test::{Migrations, TestDb, db_test};

use crate::common::*;

/// `name || '!'` in the database's own spelling.
fn append_bang(db: &TestDb) -> &'static str {
    match db.dialect() {
        Dialect::MySql => "UPDATE users SET name = CONCAT(name, '!');\n",
        _ => "UPDATE users SET name = name || '!';\n",
    }
}

/// 1 creates `users` with alice; 2 creates `posts`; 3 changes data and adds a column (the
/// migration of the incident); 4 is new.
fn incident_migrations(db: &TestDb) -> Migrations {
    Migrations::new(&[
        (
            "1_users.up.sql",
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name VARCHAR(50));\nINSERT INTO users (id, name) VALUES (1, 'alice');\n",
        ),
        ("1_users.down.sql", "DROP TABLE users;\n"),
        (
            "2_posts.up.sql",
            "CREATE TABLE posts (id INTEGER PRIMARY KEY, title VARCHAR(50));\n",
        ),
        ("2_posts.down.sql", "DROP TABLE posts;\n"),
        (
            "3_shout.up.sql",
            &format!(
                "{}ALTER TABLE users ADD COLUMN nick VARCHAR(20);\n",
                append_bang(db)
            ),
        ),
        (
            "4_tags.up.sql",
            "CREATE TABLE tags (id INTEGER PRIMARY KEY);\n",
        ),
    ])
}

/// Run a migration's up script by hand, as the people in the incidents did.
async fn apply_by_hand(db: &TestDb, m: &Migrations, version: i64) {
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

/// A history row as a person (or a script, or another tool) writes it: no fingerprint, no
/// class, no journal line.
async fn insert_row_by_hand(db: &TestDb, m: &Migrations, version: i64) {
    let set = MigrationSet::load(m.path(), None).unwrap();
    let mig = set.get(version).unwrap();
    db.exec(&format!(
        "INSERT INTO tidemark_history (version, name, checksum, state, applied_at, execution_ms, applied_by) \
         VALUES ({version}, '{}', '{}', 'applied', '2026-01-01 00:00:00', 0, 'by hand')",
        mig.name, mig.checksum
    ))
    .await;
}

async fn names(db: &TestDb) -> Vec<String> {
    db.rows("SELECT name FROM users ORDER BY id")
        .await
        .into_iter()
        .map(|r| r[0].clone().unwrap())
        .collect()
}

db_test!(
    unknown_drift_never_runs_an_applied_migration_again,
    |db| async move {
        // Seed 000 with a history row written by hand: 1 applied by tidemark; 2 and 3 applied by
        // hand; a row for 2 inserted by hand without a fingerprint.
        let m = incident_migrations(&db);
        tm(&db, &m, &["up", "--to", "1"]).ok();
        apply_by_hand(&db, &m, 2).await;
        apply_by_hand(&db, &m, 3).await;
        insert_row_by_hand(&db, &m, 2).await;
        assert_eq!(names(&db).await, ["alice!"]);

        let st = tm(&db, &m, &["status", "--format", "json"]);
        st.ok();
        let j = st.json();
        assert_eq!(j["drift"]["status"], "drifted", "{j}");
        assert_eq!(j["drift"]["matches_state_after"], 3, "{j}");
        let evidence = j["drift"]["evidence"].as_str().unwrap_or_default();
        assert!(
            evidence.contains("the state after migration 3")
                && evidence.contains("1 unrecorded migration(s) are in fact applied"),
            "{j}"
        );

        // The dry run refuses exactly as the real run does.
        tm(&db, &m, &["up", "--dry-run"]).code(20);
        let up = tm(&db, &m, &["up"]);
        up.code(20);
        assert!(
            up.stderr.contains("the state after migration 3") && up.stderr.contains("repair"),
            "{}",
            up.stderr
        );
        // Nothing ran: the UPDATE of 3 did not run twice, 4 was not applied.
        assert_eq!(names(&db).await, ["alice!"]);
        assert!(!db.has_table("tags").await);
        assert_eq!(versions(&history(&db).await), [1, 2]);

        let check = tm(&db, &m, &["check"]);
        check.code(20);
        assert!(check.stderr.contains("drifted"), "{}", check.stderr);
        let marker = m.path().join("started");
        tm(
            &db,
            &m,
            &[
                "exec",
                "--",
                "sh",
                "-c",
                &format!("touch {}", marker.display()),
            ],
        )
        .code(20);
        assert!(!marker.exists(), "exec started the application");
        tm(&db, &m, &["down", "--steps", "1"]).code(20);
        assert!(
            db.has_table("posts").await,
            "down reverted on a drifted schema"
        );

        // The way out the refusal names works, and nothing runs twice afterwards either.
        tm(&db, &m, &["repair", "--yes"]).ok();
        tm(&db, &m, &["up"]).ok();
        assert_eq!(names(&db).await, ["alice!"]);
        assert!(db.has_table("tags").await);
        tm(&db, &m, &["check"]).ok();
    }
);

db_test!(
    a_history_written_by_an_older_tidemark_is_established_recorded_and_upgraded,
    |db| async move {
        let m = incident_migrations(&db);
        tm(&db, &m, &["up", "--to", "2"]).ok();
        // What an older tidemark left: no fingerprints, and a history table without the
        // columns added since.
        db.exec("UPDATE tidemark_history SET schema_fingerprint = NULL")
            .await;
        for col in [
            "lint_class",
            "imported_from",
            "imported_at",
            "source_checksum",
        ] {
            db.exec(&format!("ALTER TABLE tidemark_history DROP COLUMN {col}"))
                .await;
        }

        // Read-only commands read the old shape and establish the drift by replay.
        let j = tm(&db, &m, &["status", "--format", "json"]).json();
        assert_eq!(j["drift"]["status"], "clean", "{j}");
        assert!(
            j["drift"]["reason"]
                .as_str()
                .unwrap_or_default()
                .contains("no fingerprint was recorded"),
            "{j}"
        );
        assert!(j["drift"]["recorded_fingerprint"].is_null(), "status wrote");

        // The gate establishes it too, and records what it established (journaled).
        let old = Migrations::new(&[]);
        for f in ["1_users.up.sql", "2_posts.up.sql"] {
            old.write(f, &std::fs::read_to_string(m.path().join(f)).unwrap());
        }
        tm(&db, &old, &["check"]).ok();
        let fp = db
            .scalar("SELECT schema_fingerprint FROM tidemark_history WHERE version = 2")
            .await;
        assert!(fp.is_some(), "the gate did not record the fingerprint");
        let journaled = db
            .scalar("SELECT COUNT(*) FROM tidemark_journal WHERE action = 'fingerprint' AND version = 2")
            .await;
        assert_eq!(journaled.as_deref(), Some("1"));

        // `up` upgrades the table in place (journaled) and records the class from now on.
        tm(&db, &m, &["up"]).ok();
        let upgraded = db
            .scalar("SELECT COUNT(*) FROM tidemark_journal WHERE action = 'upgrade'")
            .await;
        assert_eq!(upgraded.as_deref(), Some("1"));
        let detail = db
            .scalar("SELECT detail FROM tidemark_journal WHERE action = 'upgrade'")
            .await
            .unwrap();
        assert!(
            detail.contains(r#"["lint_class","imported_from","imported_at","source_checksum"]"#),
            "{detail}"
        );
        let classes = db
            .rows("SELECT version, lint_class FROM tidemark_history ORDER BY version")
            .await;
        let classes: Vec<(String, Option<String>)> = classes
            .into_iter()
            .map(|r| (r[0].clone().unwrap(), r[1].clone()))
            .collect();
        assert_eq!(
            classes,
            [
                ("1".into(), None),
                ("2".into(), None),
                ("3".into(), Some("contract".into())),
                ("4".into(), Some("expand-only".into())),
            ]
        );
        let j = tm(&db, &m, &["status", "--format", "json"]).json();
        assert_eq!(j["drift"]["status"], "clean", "{j}");
        assert_eq!(j["migrations"][3]["lint_class"], "expand-only", "{j}");
    }
);

db_test!(
    an_imported_history_without_fingerprint_is_checked_before_up,
    |db| async move {
        // golang-migrate's table says 2; tidemark imports it. Later 3 is applied by hand, and
        // the fingerprint is gone (as after an import by an older tidemark).
        let m = incident_migrations(&db);
        apply_by_hand(&db, &m, 1).await;
        apply_by_hand(&db, &m, 2).await;
        db.exec("CREATE TABLE schema_migrations (version BIGINT NOT NULL PRIMARY KEY, dirty BOOLEAN NOT NULL)")
            .await;
        db.exec("INSERT INTO schema_migrations (version, dirty) VALUES (2, false)")
            .await;
        tm(&db, &m, &["import", "--from", "golang-migrate", "--yes"]).ok();
        assert_eq!(versions(&history(&db).await), [1, 2]);
        db.exec("UPDATE tidemark_history SET schema_fingerprint = NULL")
            .await;
        apply_by_hand(&db, &m, 3).await;

        let up = tm(&db, &m, &["up"]);
        up.code(20);
        assert!(
            up.stderr.contains("the state after migration 3"),
            "{}",
            up.stderr
        );
        assert_eq!(names(&db).await, ["alice!"], "migration 3 ran twice");
        assert_eq!(versions(&history(&db).await), [1, 2]);
    }
);

/// Where no shadow database can be had, "unknown" refuses and says how to provide one.
async fn unknown_without_shadow(db: TestDb, unreachable: &str) {
    let m = numbered(3);
    tm(&db, &m, &["up", "--to", "2"]).ok();
    db.exec("UPDATE tidemark_history SET schema_fingerprint = NULL")
        .await;
    let up = tm(&db, &m, &["up", "--shadow-url", unreachable]);
    up.code(20);
    assert!(
        up.stderr.contains("--shadow-url") && up.stderr.contains("[shadow] url"),
        "{}",
        up.stderr
    );
    assert!(!db.has_table("t3").await);
    let check = tm(&db, &m, &["check", "--shadow-url", unreachable]);
    check.code(20);
    assert!(
        check.stderr.contains("could not be established"),
        "{}",
        check.stderr
    );
    // With a shadow database it is established, recorded, and `up` goes on.
    tm(&db, &m, &["up"]).ok();
    assert!(db.has_table("t3").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_without_a_shadow_database_refuses_postgres() {
    if let Some(db) =
        TestDb::postgres("safety::unknown_without_a_shadow_database_refuses_postgres").await
    {
        unknown_without_shadow(db, "postgres://postgres@127.0.0.1:1/none").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_without_a_shadow_database_refuses_mysql() {
    if let Some(db) = TestDb::mysql("safety::unknown_without_a_shadow_database_refuses_mysql").await
    {
        unknown_without_shadow(db, "mysql://root@127.0.0.1:1/none").await;
    }
}

/// Files 1–2 of release "old", and the newer migrations applied by the current release.
fn old_release(m: &Migrations) -> Migrations {
    let old = Migrations::new(&[]);
    for i in 1..=2 {
        for dir in ["up", "down"] {
            let f = format!("{i:03}_create_t{i}.{dir}.sql");
            old.write(&f, &std::fs::read_to_string(m.path().join(&f)).unwrap());
        }
    }
    old
}

db_test!(
    an_older_release_runs_on_an_expand_only_newer_schema,
    |db| async move {
        let m = numbered(3);
        m.write(
            "004_t3_nick.up.sql",
            "ALTER TABLE t3 ADD COLUMN nick VARCHAR(20);\n",
        );
        tm(&db, &m, &["up"]).ok();
        let old = old_release(&m);

        let j = tm(&db, &old, &["check", "--format", "json"]).json();
        assert_eq!(j["ok"], true, "{j}");
        assert_eq!(j["required_version"], 2);
        assert_eq!(j["current_version"], 4);
        assert_eq!(j["ahead"][0]["version"], 3);
        assert_eq!(j["ahead"][0]["class"], "expand-only");
        assert_eq!(j["ahead"][1]["class"], "expand-only");
        tm(&db, &old, &["check", "--require", "1"]).ok();
        // --strict keeps the exact match.
        let strict = tm(&db, &old, &["check", "--strict"]);
        strict.code(20);
        assert!(strict.stderr.contains("--strict"), "{}", strict.stderr);
        // The library gate used by applications says the same.
        let r = tidemark::check_database(
            &db.url_string(),
            old.path(),
            tidemark::gate::Require::Latest,
        )
        .await
        .unwrap();
        assert!(r.ok, "{:?}", r.reasons);

        // A contract migration after the release's own refuses, naming it.
        m.write(
            "005_rename.up.sql",
            "ALTER TABLE t1 RENAME COLUMN name TO full_name;\n",
        );
        tm(&db, &m, &["up"]).ok();
        let r = tm(&db, &old, &["check"]);
        r.code(20);
        assert!(
            r.stderr.contains("migration 5 (rename)") && r.stderr.contains("contract"),
            "{}",
            r.stderr
        );
        assert!(!r.stderr.contains("migration 3"), "{}", r.stderr);
        // The current release itself is fine.
        tm(&db, &m, &["check"]).ok();
    }
);

db_test!(
    an_unclassified_newer_migration_blocks_an_older_release,
    |db| async move {
        let m = numbered(3);
        tm(&db, &m, &["up"]).ok();
        // Applied by an older tidemark: no class recorded.
        db.exec("UPDATE tidemark_history SET lint_class = NULL WHERE version = 3")
            .await;
        let old = old_release(&m);
        let r = tm(&db, &old, &["check"]);
        r.code(20);
        assert!(
            r.stderr.contains("migration 3") && r.stderr.contains("class was not recorded"),
            "{}",
            r.stderr
        );
        let j = tm(&db, &old, &["check", "--format", "json"]).json();
        assert_eq!(j["ahead"][0]["class"], "unknown", "{j}");
    }
);
