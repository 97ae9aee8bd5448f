//! Issue 9, part 2: a backup belongs to one database. Every database gets an identity, backups
//! are filed under it whatever the backup directory, and restore, verify, prune, list and
//! `latest` never reach another database's backups unless told with `--from-database`.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tidemark::Dialect;
use tidemark_test::{Migrations, TestDb, db_test};

use crate::common::*;

/// `tidemark -d URL --dir MIGRATIONS ARGS…` with the given backup directory, run in `cwd`.
fn tm_at(cwd: &Path, url: &str, m: &Migrations, backups: &Path, args: &[&str]) -> Run {
    command(cwd)
        .env("TIDEMARK_BACKUP_DIR", backups)
        .arg("-d")
        .arg(url)
        .arg("--dir")
        .arg(m.path())
        .args(args)
        .output()
        .expect("run tidemark")
        .into()
}

fn ids(list: &Value, field: &str) -> Vec<String> {
    list[field]
        .as_array()
        .unwrap_or_else(|| panic!("no {field} in {list}"))
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect()
}

/// A second database of the same kind as `db`: on the same server for PostgreSQL and MariaDB,
/// another file for SQLite.
async fn another(db: &TestDb, test: &str) -> TestDb {
    match db.dialect() {
        Dialect::Postgres => TestDb::postgres(test).await,
        Dialect::MySql => TestDb::mysql(test).await,
        Dialect::Sqlite => TestDb::sqlite(test).await,
    }
    .expect("a second scratch database")
}

fn one_table(name: &str) -> Migrations {
    let m = Migrations::new(&[]);
    m.write(
        &format!("001_create_{name}.up.sql"),
        &format!("CREATE TABLE {name} (id INTEGER PRIMARY KEY, v VARCHAR(20));\n"),
    );
    m
}

db_test!(
    status_shows_the_identity_and_only_a_change_assigns_it,
    |db| async move {
        let m = numbered(1);
        let s = tm(&db, &m, &["status", "--format", "json"]);
        s.ok();
        assert!(s.json()["database_id"].is_null(), "{}", s.stdout);
        let text = tm(&db, &m, &["status"]);
        assert!(text.stdout.contains("not assigned yet"), "{}", text.stdout);
        tm(&db, &m, &["backup", "list"]).ok();
        assert!(
            !db.has_table("tidemark_identity").await,
            "read-only commands create no tables"
        );
        let before = tm(&db, &m, &["inspect", "--fingerprint", "--format", "json"]).json();

        let b = tm(&db, &m, &["backup", "create", "--format", "json"]);
        b.ok();
        let b = b.json();
        let id = b["database_id"]
            .as_str()
            .expect("the manifest records the id");
        assert_eq!(id.len(), 32, "{id}");
        let stored = db
            .scalar("SELECT database_id FROM tidemark_identity")
            .await
            .unwrap();
        assert_eq!(stored, id);
        let s = tm(&db, &m, &["status", "--format", "json"]).json();
        assert_eq!(s["database_id"], id);
        assert!(
            tm(&db, &m, &["status"]).stdout.contains(id),
            "status shows the id in text too"
        );
        // tidemark's own table is not part of the schema.
        let after = tm(&db, &m, &["inspect", "--fingerprint", "--format", "json"]).json();
        assert_eq!(before["fingerprint"], after["fingerprint"]);
        // The server identity says where the database lives.
        let server = b["server_identity"].as_str().unwrap();
        let expected = match db.dialect() {
            Dialect::Postgres => "postgres system_identifier=".to_string(),
            Dialect::MySql => "mariadb server_id=".to_string(),
            Dialect::Sqlite => format!(
                "sqlite file={}",
                std::fs::canonicalize(db.sqlite_path().unwrap())
                    .unwrap()
                    .display()
            ),
        };
        assert!(server.starts_with(&expected), "{server}");
        // `up` keeps the same id, and files its backup under it.
        let up = tm(&db, &m, &["up", "--format", "json"]).json();
        let list = tm(&db, &m, &["backup", "list", "--format", "json"]).json();
        assert_eq!(list["database_id"], id);
        assert_eq!(
            ids(&list, "backups"),
            vec![
                b["id"].as_str().unwrap().to_string(),
                up["backup"].as_str().unwrap().to_string()
            ]
        );
        tm(&db, &m, &["status", "--exit-code"]).ok();
    }
);

/// Two projects that both say `sqlite://app.db`, in different directories, sharing one backup
/// directory: each restores and prunes only its own backups.
#[test]
fn two_projects_with_the_same_sqlite_file_name_keep_their_backups_apart() {
    let root = tempfile::tempdir().unwrap();
    let shared = root.path().join("backups");
    let (a, b) = (root.path().join("a"), root.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let (ma, mb) = (one_table("only_in_a"), one_table("only_in_b"));
    let run =
        |cwd: &Path, m: &Migrations, args: &[&str]| tm_at(cwd, "sqlite://app.db", m, &shared, args);

    run(&a, &ma, &["up"]).ok();
    run(&b, &mb, &["up"]).ok();
    run(&a, &ma, &["backup", "create"]).ok();
    let a_latest = run(&a, &ma, &["backup", "create", "--format", "json"]).json();
    // B's backup is the newest in the shared directory.
    let b_latest = run(&b, &mb, &["backup", "create", "--format", "json"]).json();
    assert_ne!(a_latest["database_id"], b_latest["database_id"]);

    let la = run(&a, &ma, &["backup", "list", "--format", "json"]).json();
    let lb = run(&b, &mb, &["backup", "list", "--format", "json"]).json();
    assert_eq!(
        ids(&la, "backups").len(),
        3,
        "A's: before up, and two made by hand"
    );
    assert_eq!(ids(&lb, "backups").len(), 2);
    assert!(
        ids(&la, "backups")
            .iter()
            .all(|i| !ids(&lb, "backups").contains(i))
    );

    let r = run(
        &a,
        &ma,
        &["backup", "restore", "latest", "--yes", "--format", "json"],
    );
    r.ok();
    let r = r.json();
    assert_eq!(
        r["restored"], a_latest["id"],
        "A restored its own newest backup"
    );
    assert_eq!(r["source_database_id"], a_latest["database_id"]);
    assert_eq!(r["from_other_database"], false);
    let tables = run(&a, &ma, &["inspect", "--format", "json"]).stdout;
    assert!(
        tables.contains("only_in_a") && !tables.contains("only_in_b"),
        "{tables}"
    );

    // Pruning B leaves every one of A's backups (A now has 4: with the restore's safety one).
    run(&b, &mb, &["backup", "prune", "--keep", "1"]).ok();
    assert_eq!(
        ids(
            &run(&b, &mb, &["backup", "list", "--format", "json"]).json(),
            "backups"
        ),
        vec![b_latest["id"].as_str().unwrap().to_string()]
    );
    assert_eq!(
        ids(
            &run(&a, &ma, &["backup", "list", "--format", "json"]).json(),
            "backups"
        )
        .len(),
        4
    );

    // The same file through another working directory (and another spelling) is the same
    // database, and finds its backups.
    let elsewhere = format!("sqlite://{}", a.join("./app.db").display());
    let l = tm_at(
        &b,
        &elsewhere,
        &ma,
        &shared,
        &["backup", "list", "--format", "json"],
    )
    .json();
    assert_eq!(l["database_id"], a_latest["database_id"]);
    assert_eq!(ids(&l, "backups").len(), 4);

    // Where the file is gone, `list` shows every database's backups (the way back is among
    // them) and does not create an empty database in its place.
    let c = root.path().join("c");
    std::fs::create_dir_all(&c).unwrap();
    let l = run(&c, &ma, &["backup", "list", "--format", "json"]);
    l.ok();
    let l = l.json();
    assert!(l["database_id"].is_null());
    assert_eq!(ids(&l, "backups").len(), 5);
    assert!(!c.join("app.db").exists());
}

db_test!(
    two_databases_in_one_backup_dir_never_take_each_others_backups,
    |db| async move {
        let other = another(&db, "identity_two_databases_other").await;
        let shared = tempfile::tempdir().unwrap();
        let cwd = shared.path();
        let (ma, mb) = (one_table("only_in_a"), one_table("only_in_b"));
        let (ua, ub) = (db.url_string(), other.url_string());
        let a = |args: &[&str]| tm_at(cwd, &ua, &ma, shared.path(), args);
        let b = |args: &[&str]| tm_at(cwd, &ub, &mb, shared.path(), args);
        a(&["up", "--no-backup"]).ok();
        b(&["up", "--no-backup"]).ok();
        db.exec("INSERT INTO only_in_a (id, v) VALUES (1, 'a');")
            .await;
        other
            .exec("INSERT INTO only_in_b (id, v) VALUES (1, 'b');")
            .await;
        let ba = a(&["backup", "create", "--format", "json"]).json();
        let bb = b(&["backup", "create", "--format", "json"]).json();
        let (ida, idb) = (
            ba["database_id"].as_str().unwrap().to_string(),
            bb["database_id"].as_str().unwrap().to_string(),
        );
        assert_ne!(ida, idb);

        // `latest` for A is A's backup, although B's is newer.
        let v = a(&["backup", "verify", "latest", "--format", "json"]);
        v.ok();
        assert_eq!(v.json()["id"], ba["id"]);
        db.exec("DELETE FROM only_in_a;").await;
        let r = a(&["backup", "restore", "latest", "--yes", "--format", "json"]);
        r.ok();
        assert_eq!(r.json()["restored"], ba["id"]);
        assert!(db.has_table("only_in_a").await && !db.has_table("only_in_b").await);
        // Restoring re-creates a PostgreSQL database (a new oid): tidemark's own doing, not a
        // copy, so nothing is reported as moved.
        let st = a(&["status", "--format", "json"]).json();
        assert_eq!(st["database_id"], ida.as_str());
        assert!(st["identity_moved_from"].is_null(), "{st}");
        assert_eq!(
            db.scalar("SELECT v FROM only_in_a").await.as_deref(),
            Some("a")
        );

        // B's backup named by id is refused for A, saying how to do it on purpose.
        let bid = bb["id"].as_str().unwrap();
        for verb in ["restore", "verify"] {
            let refused = a(&["backup", verb, bid, "--yes"]);
            refused.code(2);
            assert!(
                refused.stderr.contains(&format!("--from-database {idb}")),
                "{}",
                refused.stderr
            );
        }
        assert_eq!(
            db.scalar("SELECT v FROM only_in_a").await.as_deref(),
            Some("a")
        );

        // Prune in B never touches A's backups (A has two now: its own and the restore's).
        for _ in 0..2 {
            b(&["backup", "create"]).ok();
        }
        let p = b(&["backup", "prune", "--keep", "1", "--format", "json"]);
        p.ok();
        assert_eq!(p.json()["deleted"].as_array().unwrap().len(), 2);
        let la = a(&["backup", "list", "--format", "json"]).json();
        assert_eq!(ids(&la, "backups").len(), 2);
        assert!(ids(&la, "backups").contains(&ba["id"].as_str().unwrap().to_string()));
        let all = a(&["backup", "list", "--all", "--format", "json"]).json();
        assert_eq!(ids(&all, "backups").len(), 3, "--all shows both databases'");
    }
);

db_test!(
    from_database_restores_another_databases_backup_and_names_what_it_overwrites,
    |db| async move {
        let other = another(&db, "identity_from_database_other").await;
        let shared = tempfile::tempdir().unwrap();
        let cwd = shared.path();
        let (ma, mb) = (one_table("only_in_a"), one_table("only_in_b"));
        let (ua, ub) = (db.url_string(), other.url_string());
        let a = |args: &[&str]| tm_at(cwd, &ua, &ma, shared.path(), args);
        let b = |args: &[&str]| tm_at(cwd, &ub, &mb, shared.path(), args);
        a(&["up", "--no-backup"]).ok();
        db.exec("INSERT INTO only_in_a (id, v) VALUES (7, 'from a');")
            .await;
        let ba = a(&["backup", "create", "--format", "json"]).json();
        let ida = ba["database_id"].as_str().unwrap().to_string();
        b(&["up"]).ok();
        let idb = b(&["status", "--format", "json"]).json()["database_id"]
            .as_str()
            .unwrap()
            .to_string();

        let bad = b(&[
            "backup",
            "restore",
            "latest",
            "--from-database",
            "nope",
            "--yes",
        ]);
        bad.code(2);
        assert!(
            bad.stderr.contains("--from-database nope"),
            "{}",
            bad.stderr
        );

        // Without --yes: it says what it would overwrite, and does nothing.
        let asked = b(&["backup", "restore", "latest", "--from-database", &ida]);
        asked.code(2);
        for needle in [
            "ANOTHER database",
            ida.as_str(),
            idb.as_str(),
            db.url().redacted().as_str(),
            other.url().redacted().as_str(),
            "--yes",
        ] {
            assert!(asked.stderr.contains(needle), "{needle}: {}", asked.stderr);
        }
        assert!(other.has_table("only_in_b").await);

        let r = b(&[
            "backup",
            "restore",
            "latest",
            "--from-database",
            &ida,
            "--yes",
            "--format",
            "json",
        ]);
        r.ok();
        let j = r.json();
        assert_eq!(j["restored"], ba["id"]);
        assert_eq!(j["from_other_database"], true);
        assert_eq!(j["source_database_id"], ida.as_str());
        assert_eq!(j["database_id"], idb.as_str());
        assert_eq!(j["source_database"], db.url().redacted());
        assert!(j["safety_backup"].is_string());
        assert_eq!(
            other.scalar("SELECT v FROM only_in_a").await.as_deref(),
            Some("from a")
        );
        assert!(!other.has_table("only_in_b").await);
        // B keeps its own identity, and its backups stay its own (the safety backup among them).
        assert_eq!(
            other
                .scalar("SELECT database_id FROM tidemark_identity")
                .await
                .as_deref(),
            Some(idb.as_str())
        );
        let lb = b(&["backup", "list", "--format", "json"]).json();
        assert_eq!(lb["database_id"], idb.as_str());
        let st = b(&["status", "--format", "json"]).json();
        assert!(st["identity_moved_from"].is_null(), "{st}");
        assert!(ids(&lb, "backups").contains(&j["safety_backup"].as_str().unwrap().to_string()));
        assert!(!ids(&lb, "backups").contains(&ba["id"].as_str().unwrap().to_string()));
        // The text output names the source database and what was overwritten.
        let t = b(&[
            "backup",
            "restore",
            ba["id"].as_str().unwrap(),
            "--from-database",
            &ida,
            "--yes",
            "--no-backup",
        ]);
        t.ok();
        assert!(
            t.stdout.contains(&ida)
                && t.stdout.contains(&idb)
                && t.stdout.contains("it keeps its id"),
            "{}",
            t.stdout
        );
    }
);

/// `tidemark` with nothing configured: backups go to the user's data directory (`xdg`).
fn tm_default(cwd: &Path, url: &str, m: &Migrations, xdg: &Path, args: &[&str]) -> Run {
    command(cwd)
        .env_remove("TIDEMARK_BACKUP_DIR")
        .env("XDG_DATA_HOME", xdg)
        .arg("-d")
        .arg(url)
        .arg("--dir")
        .arg(m.path())
        .args(args)
        .output()
        .expect("run tidemark")
        .into()
}

/// The same database through `localhost` and through `127.0.0.1` is one database with one set
/// of backups (in the default directory, where backups were once filed by database name).
async fn same_database_by_two_host_names(db: TestDb) {
    let m = numbered(1);
    let xdg = tempfile::tempdir().unwrap();
    let numeric = db.url_string();
    assert!(numeric.contains("127.0.0.1"), "{numeric}");
    let named = numeric.replace("127.0.0.1", "localhost");
    let cwd = xdg.path();
    let run = |url: &str, args: &[&str]| tm_default(cwd, url, &m, xdg.path(), args);
    run(&numeric, &["up"]).ok();
    db.exec("INSERT INTO t1 (id, name) VALUES (1, 'x');").await;
    let b = run(&numeric, &["backup", "create", "--format", "json"]).json();
    let id = b["database_id"].as_str().unwrap();
    assert!(
        b["path"].as_str().unwrap().starts_with(
            &xdg.path()
                .join("tidemark/backups")
                .join(id)
                .display()
                .to_string()
        ),
        "{b}"
    );
    let l = run(&named, &["backup", "list", "--format", "json"]).json();
    assert_eq!(l["database_id"], id);
    assert_eq!(
        ids(&l, "backups").len(),
        2,
        "the backup before `up` and the manual one"
    );
    db.exec("DELETE FROM t1;").await;
    let r = run(
        &named,
        &["backup", "restore", "latest", "--yes", "--format", "json"],
    );
    r.ok();
    assert_eq!(r.json()["restored"], b["id"]);
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM t1").await.as_deref(),
        Some("1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_postgres_database_through_localhost_and_127_0_0_1() {
    if let Some(db) = TestDb::postgres("identity_localhost_postgres").await {
        same_database_by_two_host_names(db).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_mariadb_database_through_localhost_and_127_0_0_1() {
    if let Some(db) = TestDb::mysql("identity_localhost_mysql").await {
        same_database_by_two_host_names(db).await;
    }
}

/// Make a backup look like one written before identities: no id in its manifest, flat in the
/// backup directory, under a new backup id and a later time.
fn make_legacy(base: &Path, b: &Value, new_id: &str, created_at: &str) -> PathBuf {
    let src = PathBuf::from(b["path"].as_str().unwrap());
    let src_dir = src.parent().unwrap();
    let dst = base.join(new_id);
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(src_dir).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
    let manifest = dst.join("manifest.json");
    let mut j: Value = serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    let o = j.as_object_mut().unwrap();
    o.remove("database_id");
    o.remove("server_identity");
    o.insert("id".into(), new_id.into());
    o.insert("created_at".into(), created_at.into());
    std::fs::write(&manifest, serde_json::to_string_pretty(&j).unwrap()).unwrap();
    dst
}

db_test!(
    a_backup_from_before_identities_is_listed_as_unknown_and_never_latest,
    |db| async move {
        let m = numbered(1);
        let base = m.path().join(".backups");
        tm(&db, &m, &["up", "--no-backup"]).ok();
        db.exec("INSERT INTO t1 (id, name) VALUES (1, 'own');")
            .await;
        let own = tm(&db, &m, &["backup", "create", "--format", "json"]).json();
        db.exec("INSERT INTO t1 (id, name) VALUES (2, 'legacy');")
            .await;
        let snapshot = tm(&db, &m, &["backup", "create", "--format", "json"]).json();
        // The old backup is newer than the database's own one (and its own dump, with id, is
        // gone from the database's folder: it only exists as the old-style copy).
        let legacy_id = "29991231T000000Z-0abc";
        make_legacy(&base, &snapshot, legacy_id, "2999-12-31T00:00:00.000Z");
        std::fs::remove_dir_all(
            PathBuf::from(snapshot["path"].as_str().unwrap())
                .parent()
                .unwrap(),
        )
        .unwrap();

        let l = tm(&db, &m, &["backup", "list", "--format", "json"]).json();
        assert_eq!(
            ids(&l, "backups"),
            vec![own["id"].as_str().unwrap().to_string()]
        );
        assert_eq!(ids(&l, "identity_unknown"), vec![legacy_id.to_string()]);
        assert!(l["identity_unknown"][0]["database_id"].is_null());
        let text = tm(&db, &m, &["backup", "list"]).stdout;
        assert!(
            text.contains("identity unknown") && text.contains(legacy_id),
            "{text}"
        );

        // `latest` is the database's own backup, never the one of unknown identity.
        let r = tm(
            &db,
            &m,
            &["backup", "restore", "latest", "--yes", "--format", "json"],
        );
        r.ok();
        assert_eq!(r.json()["restored"], own["id"]);
        assert_eq!(
            db.scalar("SELECT COUNT(*) FROM t1").await.as_deref(),
            Some("1")
        );
        // Prune leaves it alone (it may be anyone's).
        tm(&db, &m, &["backup", "prune", "--keep", "1"]).ok();
        assert!(base.join(legacy_id).join("manifest.json").is_file());

        // Named by its id, it restores, and the database keeps its identity.
        tm(&db, &m, &["backup", "verify", legacy_id]).ok();
        let r = tm(
            &db,
            &m,
            &["backup", "restore", legacy_id, "--yes", "--format", "json"],
        );
        r.ok();
        let j = r.json();
        assert!(j["source_database_id"].is_null());
        assert_eq!(j["database_id"], own["database_id"]);
        assert_eq!(
            db.scalar("SELECT COUNT(*) FROM t1").await.as_deref(),
            Some("2")
        );
        assert_eq!(
            db.scalar("SELECT database_id FROM tidemark_identity").await,
            own["database_id"].as_str().map(str::to_string)
        );
        // Before identities, the default directory had a folder per dialect and database name;
        // its backups are listed too.
        if db.dialect() != Dialect::Sqlite {
            let xdg = tempfile::tempdir().unwrap();
            let old = xdg.path().join("tidemark/backups").join(format!(
                "{}-{}",
                db.dialect(),
                db.url().database().unwrap()
            ));
            let now = tm(&db, &m, &["backup", "list", "--format", "json"]).json();
            let newest = now["backups"].as_array().unwrap().last().unwrap();
            make_legacy(
                &old,
                newest,
                "20200101T000000Z-0def",
                "2020-01-01T00:00:00.000Z",
            );
            let l = tm_default(
                m.path(),
                &db.url_string(),
                &m,
                xdg.path(),
                &["backup", "list", "--format", "json"],
            );
            l.ok();
            assert_eq!(
                ids(&l.json(), "identity_unknown"),
                vec!["20200101T000000Z-0def".to_string()]
            );
        }
        // A fresh database sees the old backup listed but `latest` refuses: nothing is its own.
        let fresh = another(&db, "identity_legacy_fresh").await;
        let f = tm(&fresh, &m, &["backup", "restore", "latest", "--yes"]);
        f.code(2);
        assert!(f.stderr.contains("no identity yet"), "{}", f.stderr);
        assert!(!fresh.has_table("tidemark_identity").await);
    }
);

db_test!(
    a_database_moved_or_copied_since_its_identity_was_assigned_is_flagged,
    |db| async move {
        let m = numbered(1);
        tm(&db, &m, &["up"]).ok();
        let st = tm(&db, &m, &["status", "--format", "json"]).json();
        assert!(st["identity_moved_from"].is_null(), "{st}");
        // As if the identity had been assigned elsewhere and the data copied here.
        db.exec("UPDATE tidemark_identity SET server_identity = 'elsewhere';")
            .await;
        let st = tm(&db, &m, &["status", "--format", "json"]).json();
        assert_eq!(st["identity_moved_from"], "elsewhere");
        let text = tm(&db, &m, &["status"]).stdout;
        assert!(text.contains("copied"), "{text}");
        let l = tm(&db, &m, &["backup", "list"]);
        l.ok();
        assert!(l.stderr.contains("tidemark_identity"), "{}", l.stderr);
    }
);

/// A SQLite file copied elsewhere carries the original's id; the copy says so.
#[test]
fn a_copied_sqlite_file_says_it_shares_the_originals_identity() {
    let root = tempfile::tempdir().unwrap();
    let backups = root.path().join("backups");
    let m = numbered(1);
    let original = root.path().join("app.db");
    let url = format!("sqlite://{}", original.display());
    tm_at(root.path(), &url, &m, &backups, &["up"]).ok();
    let copy = root.path().join("copy.db");
    std::fs::copy(&original, &copy).unwrap();
    let curl = format!("sqlite://{}", copy.display());
    let a = tm_at(
        root.path(),
        &url,
        &m,
        &backups,
        &["status", "--format", "json"],
    )
    .json();
    let c = tm_at(
        root.path(),
        &curl,
        &m,
        &backups,
        &["status", "--format", "json"],
    )
    .json();
    assert_eq!(a["database_id"], c["database_id"]);
    assert!(a["identity_moved_from"].is_null(), "{a}");
    assert_eq!(
        c["identity_moved_from"],
        format!(
            "sqlite file={}",
            std::fs::canonicalize(&original).unwrap().display()
        )
    );
}
