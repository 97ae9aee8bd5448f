//! Interrupted or faulty operations leave nothing broken behind (issue 18): a restore stopped by
//! any signal at any moment leaves the old database or the restored one, never less; signals
//! leave no scratch database, unfinished dump or secret behind; a dump of another kind is
//! refused with the database untouched.

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use tidemark::Dialect;
use tidemark_test::{Migrations, TestDb, db_test};

use crate::common::*;

fn signal(child: &Child, sig: &str) {
    if sig == "KILL" {
        // `Child::kill` is SIGKILL; `kill(1)` for the others (no unsafe code in the tests).
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &child.id().to_string()])
            .status();
    } else {
        let ok = std::process::Command::new("kill")
            .args([&format!("-{sig}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

/// Wait for the child to exit (at most 60 s) and return its outcome.
fn finish(mut child: Child) -> Run {
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap().into();
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("tidemark did not exit within 60 s of the signal");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Scratch databases on the server made by process `pid` (`tm_KIND_HOST_PID_…`).
async fn scratch_of(db: &TestDb, pid: u32) -> Vec<String> {
    let sql = match db.dialect() {
        Dialect::Postgres => "SELECT datname FROM pg_database WHERE datname LIKE 'tm\\_%'",
        Dialect::MySql => {
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'tm\\_%'"
        }
        Dialect::Sqlite => return Vec::new(),
    };
    db.rows(sql)
        .await
        .into_iter()
        .filter_map(|r| r[0].clone())
        .filter(|n| tidemark::scratch::parse(n).is_some_and(|s| s.pid == pid && !s.kind.is_empty()))
        .collect()
}

/// Wait until the server has finished the statements a killed process had sent about its
/// scratch databases: a `CREATE DATABASE` in flight when the client died still completes (the
/// server only notices the closed connection afterwards), so its database can appear after the
/// next command's sweep has looked. Sweeping is only promised for what exists by then.
async fn server_finished_statements_of(db: &TestDb, pid: u32) {
    let sql = match db.dialect() {
        Dialect::Postgres => format!(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE state <> 'idle' AND pid <> pg_backend_pid() AND query LIKE '%\\_{pid}\\_%'"
        ),
        Dialect::MySql => format!(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND INFO LIKE '%\\_{pid}\\_%'"
        ),
        Dialect::Sqlite => return,
    };
    let started = Instant::now();
    while db.scalar(&sql).await.as_deref() != Some("0") {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the server still runs a statement of the killed process {pid} after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Processes whose command line mentions `needle` (a dump tool left running).
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) && !cmd.contains("cargo") {
                out.push(cmd);
            }
        }
    }
    out
}

async fn count(db: &TestDb, table: &str) -> i64 {
    db.scalar(&format!("SELECT COUNT(*) FROM {table}"))
        .await
        .unwrap()
        .parse()
        .unwrap()
}

/// "old": the state the restore replaces; "restored": the backup's. Anything else is a broken
/// database.
async fn state(db: &TestDb) -> &'static str {
    let h = versions(&history(db).await);
    let rows = count(db, "t1").await;
    let t3 = db.has_table("t3").await;
    let max: i64 = db
        .scalar("SELECT MAX(id) FROM t1")
        .await
        .unwrap()
        .parse()
        .unwrap();
    match (h.as_slice(), rows, max, t3) {
        ([1, 2], 300, 300, false) => "restored",
        ([1, 2, 3], 500, 500, true) => "old",
        other => panic!("the database is neither the old one nor the restored one: {other:?}"),
    }
}

/// Make the current state "old" (from "restored", or from the backup's state).
async fn make_old(db: &TestDb, m: &Migrations) {
    tm(db, m, &["up", "--no-backup"]).ok();
    db.exec("INSERT INTO t1 (id, name) SELECT id + 300, name FROM t1 WHERE id <= 200")
        .await;
    assert_eq!(state(db).await, "old");
}

db_test!(
    restore_interrupted_by_any_signal_leaves_the_old_or_the_restored_database,
    |db| async move {
        let m = numbered(2);
        tm(&db, &m, &["up", "--no-backup"]).ok();
        let mut values = Vec::new();
        for i in 1..=300 {
            values.push(format!("({i}, 'row {i}')"));
        }
        db.exec(&format!(
            "INSERT INTO t1 (id, name) VALUES {}",
            values.join(", ")
        ))
        .await;
        let r = tm(&db, &m, &["backup", "create", "--format", "json"]);
        r.ok();
        let id = r.json()["id"].as_str().unwrap().to_string();
        add_table_migration(&m, 3);
        make_old(&db, &m).await;

        // How long an undisturbed restore takes, to spread the signals over it.
        let started = Instant::now();
        tm(&db, &m, &["backup", "restore", &id, "--yes", "--no-backup"]).ok();
        let full = started.elapsed();
        assert_eq!(state(&db).await, "restored");

        let mut seen = std::collections::BTreeSet::new();
        let trials = [
            ("INT", 0.15),
            ("TERM", 0.35),
            ("KILL", 0.5),
            ("TERM", 0.65),
            ("INT", 0.8),
            ("KILL", 0.9),
            ("KILL", 0.97),
        ];
        for (sig, at) in trials {
            if state(&db).await == "restored" {
                make_old(&db, &m).await;
            }
            let child = spawn(&db, &m, &["backup", "restore", &id, "--yes", "--no-backup"]);
            let pid = child.id();
            std::thread::sleep(full.mul_f64(at));
            signal(&child, sig);
            let run = finish(child);
            let now = state(&db).await;
            seen.insert(now);
            if sig != "KILL" && run.code != 0 {
                // -1: the signal came before the handler was installed, when nothing had
                // been done yet.
                assert!(
                    [130, 143, -1].contains(&run.code),
                    "SIGINT/SIGTERM exit 130/143: {run:?}"
                );
                assert!(
                    scratch_of(&db, pid).await.is_empty(),
                    "the handler dropped the side copy: {:?} {run:?}",
                    scratch_of(&db, pid).await
                );
            }
            // The next command says what happened and sweeps what a SIGKILL left.
            server_finished_statements_of(&db, pid).await;
            let st = tm(&db, &m, &["status"]);
            assert!(
                st.code == 0 || st.code == 10,
                "status works after the interrupted restore: {st:?}"
            );
            assert!(
                scratch_of(&db, pid).await.is_empty(),
                "swept after SIGKILL: {:?} {st:?}",
                scratch_of(&db, pid).await
            );
            if let Some(p) = db.sqlite_path() {
                assert!(
                    !Path::new(&format!("{}.tidemark-restore", p.display())).exists(),
                    "the side file is gone"
                );
            }
        }
        // A restore still works afterwards.
        if state(&db).await == "restored" {
            make_old(&db, &m).await;
        }
        tm(&db, &m, &["backup", "restore", &id, "--yes"]).ok();
        assert_eq!(state(&db).await, "restored");
        assert!(
            seen.contains("old"),
            "an early signal leaves the old database: {seen:?}"
        );
    }
);

db_test!(
    a_dump_of_another_kind_is_refused_with_the_database_untouched,
    |db| async move {
        let m = numbered(1);
        tm(&db, &m, &["up"]).ok();
        db.exec("INSERT INTO t1 (id, name) VALUES (1, 'a')").await;
        let r = tm(&db, &m, &["backup", "create", "--format", "json"]);
        r.ok();
        let b = r.json();
        let id = b["id"].as_str().unwrap().to_string();
        db.exec("INSERT INTO t1 (id, name) VALUES (2, 'b')").await;
        // Another database kind's dump under this backup's manifest (as if `latest` had picked
        // it, or the file were replaced): the checksum is made to match, so only the kind tells.
        let path = std::path::PathBuf::from(b["path"].as_str().unwrap());
        let foreign: &[u8] = match db.dialect() {
            Dialect::Postgres => {
                b"-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB\nCREATE TABLE x (id INT);\n"
            }
            Dialect::MySql => b"PGDMP\x01\x0e\x00\x04\x08\x01\x01\x01\x00\x00\x00\x00",
            Dialect::Sqlite => b"PGDMP\x01\x0e\x00\x04\x08\x01\x01\x01\x00\x00\x00\x00",
        };
        std::fs::write(&path, foreign).unwrap();
        let manifest = path.parent().unwrap().join("manifest.json");
        let mut j: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
        j["sha256"] = tidemark::backup::sha256_file(&path).unwrap().into();
        std::fs::write(&manifest, serde_json::to_string_pretty(&j).unwrap()).unwrap();
        let r = tm(&db, &m, &["backup", "restore", &id, "--yes"]);
        r.code(20);
        assert!(
            r.stderr.contains("not a") && r.stderr.contains("not touched"),
            "{r:?}"
        );
        assert_eq!(count(&db, "t1").await, 2, "the database is untouched");
        assert_eq!(versions(&history(&db).await), vec![1]);

        // A manifest of another dialect is refused just as early.
        j["dialect"] = if db.dialect() == Dialect::Postgres {
            "mysql"
        } else {
            "postgres"
        }
        .into();
        std::fs::write(&manifest, serde_json::to_string_pretty(&j).unwrap()).unwrap();
        let r = tm(&db, &m, &["backup", "restore", &id, "--yes"]);
        r.code(2);
        assert_eq!(count(&db, "t1").await, 2, "the database is untouched");
    }
);

db_test!(
    restore_waits_for_a_running_migration_instead_of_killing_it,
    |db| async move {
        let m = numbered(1);
        tm(&db, &m, &["up"]).ok();
        let r = tm(&db, &m, &["backup", "create", "--format", "json"]);
        r.ok();
        let id = r.json()["id"].as_str().unwrap().to_string();
        let slow = match db.dialect() {
            Dialect::Postgres => "SELECT pg_sleep(3)",
            Dialect::MySql => "SELECT SLEEP(3)",
            Dialect::Sqlite => {
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) SELECT count(*) FROM c"
            }
        };
        m.write("002_slow.up.sql", &format!("{slow};\n"));
        let migrating = spawn(&db, &m, &["up", "--no-backup"]);
        wait_for_lock_held(&db).await;
        let r = tm(
            &db,
            &m,
            &["backup", "restore", &id, "--yes", "--lock-timeout", "0s"],
        );
        r.code(1);
        assert!(r.stderr.contains("lock"), "{r:?}");
        let up = finish(migrating);
        up.ok();
        assert_eq!(
            versions(&history(&db).await),
            vec![1, 2],
            "the migration finished"
        );
        tm(&db, &m, &["backup", "restore", &id, "--yes"]).ok();
        assert_eq!(versions(&history(&db).await), vec![1]);
    }
);

/// A migration that sleeps only on a shadow database (so the live `up` is quick and `drift`
/// sits in the replay long enough to be interrupted).
fn sleeps_on_the_shadow(d: Dialect) -> &'static str {
    match d {
        Dialect::Postgres => {
            "SELECT CASE WHEN current_database() LIKE 'tm\\_shadow%' THEN pg_sleep(60) END;\n"
        }
        _ => "SELECT IF(DATABASE() LIKE 'tm\\\\_shadow%', SLEEP(60), 0);\n",
    }
}

db_test!(signals_leave_no_shadow_database_behind, |db| async move {
    if db.dialect() == Dialect::Sqlite {
        return; // SQLite replays in memory: there is nothing to leave.
    }
    let m = numbered(1);
    m.write(
        "002_slow_on_shadow.up.sql",
        sleeps_on_the_shadow(db.dialect()),
    );
    tm(&db, &m, &["up", "--no-backup"]).ok();
    for sig in ["TERM", "INT", "KILL"] {
        let child = spawn(&db, &m, &["drift"]);
        let pid = child.id();
        let started = Instant::now();
        while scratch_of(&db, pid).await.is_empty() {
            assert!(started.elapsed() < Duration::from_secs(30), "no shadow");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Inside the replay's sleep.
        tokio::time::sleep(Duration::from_millis(300)).await;
        signal(&child, sig);
        let run = finish(child);
        if sig == "KILL" {
            assert_eq!(
                scratch_of(&db, pid).await.len(),
                1,
                "SIGKILL runs no handler"
            );
            let st = tm(&db, &m, &["status"]);
            assert!(
                st.stderr.contains("removed the shadow database"),
                "the next run says what it swept: {st:?}"
            );
        } else {
            assert_eq!(run.code, if sig == "TERM" { 143 } else { 130 }, "{run:?}");
            assert!(run.stderr.contains("tm_shadow_"), "{run:?}");
        }
        assert!(
            scratch_of(&db, pid).await.is_empty(),
            "{:?}",
            scratch_of(&db, pid).await
        );
    }
});

db_test!(
    signals_during_a_backup_leave_no_dump_process_directory_or_secret,
    |db| async move {
        if db.dialect() == Dialect::Sqlite {
            return; // VACUUM INTO runs in-process: no tool, no option file.
        }
        let m = numbered(1);
        tm(&db, &m, &["up", "--no-backup"]).ok();
        // Enough rows that the dump tool is still running when the signal comes.
        db.exec("INSERT INTO t1 (id, name) VALUES (1, 'a')").await;
        for _ in 0..17 {
            db.exec("INSERT INTO t1 (id, name) SELECT id + (SELECT MAX(id) FROM t1), name FROM t1")
                .await;
        }
        let tmp = tempfile::tempdir().unwrap();
        let backups = m.path().join(".backups");
        for sig in ["TERM", "INT"] {
            let child = tm_cmd(&db, &m, &["backup", "create"])
                .env("TMPDIR", tmp.path())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let needle = backups.display().to_string();
            let started = Instant::now();
            while processes_mentioning(&needle)
                .iter()
                .all(|c| !c.contains("dump"))
            {
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "the dump tool never started"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            signal(&child, sig);
            let run = finish(child);
            assert_eq!(run.code, if sig == "TERM" { 143 } else { 130 }, "{run:?}");
            std::thread::sleep(Duration::from_millis(200));
            assert!(
                processes_mentioning(&needle).is_empty(),
                "no dump tool outlives tidemark: {:?}",
                processes_mentioning(&needle)
            );
            let unfinished: Vec<_> = walk(&backups)
                .into_iter()
                .filter(|d| d.is_dir() && d.parent() != Some(backups.as_path()))
                .filter(|d| !d.join("manifest.json").exists())
                .collect();
            assert!(unfinished.is_empty(), "{unfinished:?}");
            let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().flatten().collect();
            assert!(
                left.is_empty(),
                "nothing in TMPDIR (no option file): {left:?}"
            );
        }
        // SIGKILL runs no handler: the unfinished dump directory stays until the next backup
        // sweeps it (its process is gone) and says so.
        let child = spawn(&db, &m, &["backup", "create"]);
        let needle = backups.display().to_string();
        let started = Instant::now();
        while processes_mentioning(&needle)
            .iter()
            .all(|c| !c.contains("dump"))
        {
            assert!(started.elapsed() < Duration::from_secs(30), "no dump tool");
            std::thread::sleep(Duration::from_millis(10));
        }
        signal(&child, "KILL");
        finish(child);
        let unfinished = || -> Vec<std::path::PathBuf> {
            walk(&backups)
                .into_iter()
                .filter(|d| {
                    d.parent()
                        .is_some_and(|p| p.parent() == Some(backups.as_path()))
                })
                .filter(|d| !d.join("manifest.json").exists())
                .collect()
        };
        assert_eq!(unfinished().len(), 1, "SIGKILL leaves the unfinished dump");
        let r = tm(&db, &m, &["backup", "create"]);
        r.ok();
        assert!(r.stderr.contains("unfinished backup"), "{r:?}");
        assert!(unfinished().is_empty(), "{:?}", unfinished());
    }
);

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
                out.push(p);
            }
        }
    }
    out
}

/// Run tidemark with a deadline: input must never make it hang.
fn within(mut cmd: std::process::Command, secs: u64) -> Run {
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut child = child;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap().into();
        }
        if started.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            panic!("tidemark hung on its input for {secs} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

db_test!(
    input_that_could_hang_or_half_apply_is_refused_by_name,
    |db| async move {
        type Make = Box<dyn Fn(&Path)>;
        let cases: Vec<(&str, Make, &[&str])> = vec![
            (
                "a NUL byte",
                Box::new(|p: &Path| {
                    std::fs::write(p, b"CREATE TABLE a (id INT);\nSELECT 'x\0y';\n").unwrap()
                }),
                &["2_b.up.sql:2", "NUL"],
            ),
            (
                "an escape character",
                Box::new(|p: &Path| std::fs::write(p, b"SELECT '\x1b[31m';\n").unwrap()),
                &["2_b.up.sql:1", "U+001B"],
            ),
            (
                "a symlink to a FIFO",
                Box::new(|p: &Path| {
                    let fifo = p.with_extension("fifo");
                    assert!(
                        std::process::Command::new("mkfifo")
                            .arg(&fifo)
                            .status()
                            .unwrap()
                            .success()
                    );
                    std::os::unix::fs::symlink(&fifo, p).unwrap();
                }),
                &["2_b.up.sql", "FIFO"],
            ),
            (
                "a symlink to /dev/zero",
                Box::new(|p: &Path| std::os::unix::fs::symlink("/dev/zero", p).unwrap()),
                &["2_b.up.sql", "character device"],
            ),
            (
                "a file over the size limit",
                Box::new(|p: &Path| std::fs::write(p, "SELECT 1;\n".repeat(200)).unwrap()),
                &["2_b.up.sql", "over the limit", "TIDEMARK_MAX_FILE_SIZE"],
            ),
        ];
        for (what, make, expect) in cases {
            let m = numbered(1);
            tm(&db, &m, &["up", "--no-backup"]).ok();
            make(&m.path().join("2_b.up.sql"));
            for args in [&["up"][..], &["status"][..], &["lint"][..]] {
                let mut c = tm_cmd(&db, &m, args);
                c.env("TIDEMARK_MAX_FILE_SIZE", "1K");
                let r = within(c, 20);
                assert_eq!(r.code, 2, "{what} {args:?}: {r:?}");
                for e in expect {
                    assert!(r.stderr.contains(e), "{what} {args:?}: {e:?} in {r:?}");
                }
            }
            assert!(!db.has_table("a").await, "{what}: nothing applied");
            assert_eq!(versions(&history(&db).await), vec![1], "{what}");
        }
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_over_max_allowed_packet_is_named_as_such() {
    let Some(db) = TestDb::mysql("a_statement_over_max_allowed_packet_is_named_as_such").await
    else {
        return;
    };
    let max: usize = db
        .scalar("SELECT @@max_allowed_packet")
        .await
        .unwrap()
        .parse()
        .unwrap();
    let m = numbered(1);
    m.write(
        "002_big.up.sql",
        &format!(
            "INSERT INTO t1 (id, name) VALUES (1, '{}');\n",
            "x".repeat(max + 1024)
        ),
    );
    let r = tm(&db, &m, &["up", "--no-backup"]);
    r.code(1);
    assert!(r.stderr.contains("max_allowed_packet"), "{r:?}");
    assert_eq!(versions(&history(&db).await), vec![1]);
}

/// MariaDB drops `keep1` and then fails on the missing table: something of the migration
/// remains, so it must not be reported as rolled back nor forgotten.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_multi_table_drop_is_not_called_rolled_back() {
    let Some(db) = TestDb::mysql("a_failed_multi_table_drop_is_not_called_rolled_back").await
    else {
        return;
    };
    let m = Migrations::new(&[(
        "001_keep.up.sql",
        "CREATE TABLE keep1 (id INT PRIMARY KEY);\n",
    )]);
    tm(&db, &m, &["up", "--no-backup"]).ok();
    m.write("002_drop.up.sql", "DROP TABLE keep1, no_such_table;\n");
    let r = tm(&db, &m, &["up", "--no-backup"]);
    r.code(1);
    assert!(!db.has_table("keep1").await, "MariaDB dropped keep1");
    assert!(
        !r.stderr.contains("nothing of migration 2 remains"),
        "{r:?}"
    );
    assert_eq!(
        history(&db).await,
        vec![(1, "applied".to_string()), (2, "failed".to_string())],
        "recorded as half applied: {r:?}"
    );
    // A list of objects none of which exists: the schema is compared and unchanged, so the
    // claim that nothing remains is true (and made).
    let m2 = Migrations::new(&[(
        "001_keep.up.sql",
        "CREATE TABLE keep2 (id INT PRIMARY KEY);\n",
    )]);
    let db2 = TestDb::mysql("a_failed_multi_table_drop_is_not_called_rolled_back_2")
        .await
        .unwrap();
    tm(&db2, &m2, &["up", "--no-backup"]).ok();
    m2.write("002_drop.up.sql", "DROP TABLE no_such_1, no_such_2;\n");
    let r = tm(&db2, &m2, &["up", "--no-backup"]);
    r.code(1);
    assert!(db2.has_table("keep2").await);
    assert!(r.stderr.contains("nothing of migration 2 remains"), "{r:?}");
    assert_eq!(versions(&history(&db2).await), vec![1]);
}

#[test]
fn new_refuses_to_overflow_the_version() {
    let m = Migrations::new(&[("9223372036854775807_last.up.sql", "SELECT 1;\n")]);
    let r: Run = command(m.path().parent().unwrap())
        .args(["--dir"])
        .arg(m.path())
        .args(["new", "next"])
        .output()
        .unwrap()
        .into();
    r.code(2);
    assert!(r.stderr.contains("9223372036854775807"), "{r:?}");
    let files: Vec<_> = std::fs::read_dir(m.path()).unwrap().flatten().collect();
    assert_eq!(files.len(), 1, "nothing written: {files:?}");
}

db_test!(
    a_history_write_that_changes_no_row_stops_the_run,
    |db| async move {
        // The down script removes its own history row behind tidemark's back (as another
        // process could once the lock is lost): the revert's own delete then finds nothing.
        let m = numbered(1);
        m.write("002_b.up.sql", "CREATE TABLE t2 (id INT PRIMARY KEY);\n");
        m.write(
            "002_b.down.sql",
            "DELETE FROM tidemark_history WHERE version = 2;\nDROP TABLE t2;\n",
        );
        tm(&db, &m, &["up", "--no-backup"]).ok();
        let r = tm(&db, &m, &["down", "--steps", "1", "--no-backup"]);
        r.code(1);
        assert!(r.stderr.contains("row(s) changed"), "{r:?}");
        assert!(!r.all().contains("✓ reverted"), "{r:?}");
    }
);
