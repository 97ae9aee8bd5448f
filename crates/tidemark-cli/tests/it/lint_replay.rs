//! `lint --replay`: whether a down script undoes its up script, decided by the schema on a
//! shadow database rather than by reading the SQL.

use tidemark_test::{Migrations, db_test};

use crate::common::*;

db_test!(
    replay_finds_down_scripts_that_do_not_revert,
    |db| async move {
        let m = Migrations::new(&[
            ("1_a.up.sql", "CREATE TABLE a (id INTEGER PRIMARY KEY);\n"),
            ("1_a.down.sql", "DROP TABLE a;\n"),
            // With --replay the verdict comes from the shadow's schema: c stays behind.
            (
                "2_b.up.sql",
                "CREATE TABLE b (id INTEGER);\nCREATE TABLE c (id INTEGER);\n",
            ),
            ("2_b.down.sql", "DROP TABLE b;\n"),
            ("3_d.up.sql", "CREATE TABLE d (id INTEGER);\n"),
            ("3_d.down.sql", "DROP TABLE d_typo;\n"),
            ("4_e.up.sql", "CREATE TABLE e (id INTEGER);\n"),
            ("4_e.down.sql", "DROP TABLE e;\n"),
        ]);
        let dialect = db.dialect().name();
        let url = db.url_string();
        let mut args = vec!["lint", "--dialect", dialect, "--replay", "--format", "json"];
        if db.dialect() != tidemark::Dialect::Sqlite {
            args.extend(["--shadow-url", url.as_str()]);
        }
        let r: Run = command(m.path())
            .arg("--dir")
            .arg(m.path())
            .args(&args)
            .output()
            .unwrap()
            .into();
        let j = r.json();
        let replayed: Vec<(String, String)> = j["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["rule"] == "down-does-not-revert")
            .map(|f| {
                (
                    f["file"]
                        .as_str()
                        .unwrap()
                        .rsplit('/')
                        .next()
                        .unwrap()
                        .to_string(),
                    f["message"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(replayed.len(), 2, "{replayed:?}");
        assert_eq!(replayed[0].0, "2_b.down.sql");
        assert!(
            replayed[0].1.contains("table c: unexpected"),
            "{replayed:?}"
        );
        assert_eq!(replayed[1].0, "3_d.down.sql");
        assert!(replayed[1].1.contains("failed"), "{replayed:?}");
        // The shadow was the tool's own: nothing was created in the database the URL names.
        assert!(!db.has_table("a").await);
    }
);

#[test]
fn replay_needs_a_server_outside_sqlite() {
    let m = Migrations::new(&[
        ("1_a.up.sql", "CREATE TABLE a (id INTEGER);\n"),
        ("1_a.down.sql", "DROP TABLE a;\n"),
    ]);
    let r: Run = command(m.path())
        .arg("--dir")
        .arg(m.path())
        .args(["lint", "--dialect", "postgres", "--replay"])
        .output()
        .unwrap()
        .into();
    r.code(2);
    assert!(r.stderr.contains("--shadow-url"), "{}", r.stderr);
}
