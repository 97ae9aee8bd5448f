//! Every kind of bad input is rejected before the database is touched: exit 2, a message naming
//! the file (and line where there is one), and no history table created.

use tidemark_test::{Migrations, TestDb, db_test};

use crate::common::*;

async fn rejected(db: &TestDb, files: &[(&str, &[u8])], must_contain: &[&str]) {
    let m = Migrations::new(&[]);
    for (name, body) in files {
        let p = m.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
    for cmd in [&["up"][..], &["status"][..], &["up", "--dry-run"][..]] {
        let r = tm(db, &m, cmd);
        r.code(2);
        for s in must_contain {
            assert!(
                r.stderr.contains(s),
                "{cmd:?}: expected {s:?} in:\n{}",
                r.stderr
            );
        }
    }
    assert!(
        !db.has_table("tidemark_history").await,
        "bad input must not touch the database"
    );
}

db_test!(
    bad_inputs_are_rejected_before_the_database_is_touched,
    |db| async move {
        rejected(
            &db,
            &[("1_a.sql", b"SELECT 1;"), ("01_b.up.sql", b"SELECT 2;")],
            &["duplicate version 1"],
        )
        .await;
        rejected(
            &db,
            &[("1_a.up.sql", b"SELECT 1;"), ("2_b.down.sql", b"SELECT 2;")],
            &["2_b.down.sql", "without an up"],
        )
        .await;
        rejected(
            &db,
            &[("1_a.up.sql", b"SELECT 1;"), ("2-b.up.sql", b"SELECT 2;")],
            &["2-b.up.sql", "does not parse"],
        )
        .await;
        rejected(
            &db,
            &[("1_a.up.sql", b"SELECT 1;\nSELECT '\xfe';\n")],
            &["1_a.up.sql:2", "UTF-8"],
        )
        .await;
        rejected(
            &db,
            &[("1_a.up.sql", b"SELECT 1;\nINSERT INTO t VALUES ('oops);\n")],
            &["1_a.up.sql:2", "unterminated"],
        )
        .await;
        rejected(
            &db,
            &[("1_a.up.sql", b"-- tidemark:no-transacton\nSELECT 1;")],
            &["1_a.up.sql:1", "unknown directive"],
        )
        .await;
        // A file may control its own transaction (issue 17: it runs as written), but not end
        // one it never began.
        rejected(
            &db,
            &[("1_a.up.sql", b"CREATE TABLE x (id INTEGER);\nCOMMIT;\n")],
            &["1_a.up.sql:2", "never began"],
        )
        .await;
        // Repeatable migrations are supported (issue 17); one without a description is not.
        rejected(
            &db,
            &[("V1__a.sql", b"SELECT 1;"), ("R__.sql", b"SELECT 1;")],
            &["R__.sql", "repeatable"],
        )
        .await;
        rejected(
            &db,
            &[
                ("2026-01-01-000000_a/up.sql", b"SELECT 1;"),
                ("2026-01-02-000000_b/down.sql", b"SELECT 1;"),
            ],
            &["without up.sql"],
        )
        .await;
        rejected(
            &db,
            &[("1_a.sql", b"-- migrate:down\nSELECT 1;\n")],
            &["1_a.sql", "-- migrate:up"],
        )
        .await;
    }
);

db_test!(plain_non_migrations_are_warnings, |db| async move {
    let m = numbered(1);
    m.write("README.md", "how we migrate");
    let r = tm(&db, &m, &["up"]);
    r.ok();
    assert!(
        r.stderr.contains("README.md") && r.stderr.contains("warning"),
        "{}",
        r.stderr
    );
});

#[test]
fn configuration_errors_name_the_key() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("tidemark.toml"),
        "dir = \"migrations\"\nlock_timout = \"5s\"\n",
    )
    .unwrap();
    let r: Run = command(d.path()).arg("status").output().unwrap().into();
    r.code(2);
    assert!(
        r.stderr.contains("tidemark.toml:2") && r.stderr.contains("lock_timout"),
        "{}",
        r.stderr
    );
    let r: Run = command(d.path())
        .args(["--config", "nope.toml", "status"])
        .output()
        .unwrap()
        .into();
    r.code(2);
    assert!(r.stderr.contains("nope.toml"), "{}", r.stderr);
    std::fs::write(d.path().join("empty.toml"), "").unwrap();
    let r: Run = command(d.path())
        .args(["-d", "oracle://x/y", "--config", "empty.toml", "status"])
        .output()
        .unwrap()
        .into();
    r.code(2);
    assert!(r.stderr.contains("oracle"), "{}", r.stderr);
}

#[test]
fn missing_database_url_is_a_usage_error() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("migrations")).unwrap();
    let r: Run = command(d.path()).arg("status").output().unwrap().into();
    r.code(2);
    assert!(r.stderr.contains("no database URL"), "{}", r.stderr);
    let j = {
        let r: Run = command(d.path())
            .args(["status", "--format", "json"])
            .output()
            .unwrap()
            .into();
        r.code(2);
        r.json()
    };
    assert_eq!(j["error"]["code"], "usage");
    assert_eq!(j["error"]["exit_code"], 2);
}

db_test!(
    comment_only_up_scripts_are_no_op_migrations,
    |db| async move {
        // A project that keeps version numbers aligned across its databases: 2 does nothing here.
        let m = Migrations::new(&[
            ("1_a.up.sql", "CREATE TABLE a (id INTEGER);\n"),
            (
                "2_align.up.sql",
                "-- only for MySQL; kept so versions match\n",
            ),
            ("3_empty.up.sql", "\n\n"),
            ("4_b.up.sql", "CREATE TABLE b (id INTEGER);\n"),
        ]);
        tm(&db, &m, &["up"]).ok();
        assert_eq!(versions(&history(&db).await), [1, 2, 3, 4]);
        tm(&db, &m, &["check"]).ok();
        let l = tm(&db, &m, &["lint", "--format", "json"]).json();
        let rules: Vec<&str> = l["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["rule"].as_str().unwrap())
            .filter(|r| *r == "empty-migration")
            .collect();
        assert_eq!(rules.len(), 2, "{l}");
    }
);
