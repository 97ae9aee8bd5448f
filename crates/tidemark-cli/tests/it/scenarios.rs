//! Acceptance scenarios from the incidents (SCENARIOS.md): S5, S6, S7 and the killed lock holder.

use std::time::{Duration, Instant};

use tidemark::Dialect;
use tidemark_test::{Migrations, TestDb, db_test};

use crate::common::*;

db_test!(
    /// S5: migration 38 fails half way.
    s5_a_migration_fails_half_way, |db| async move {
    let m = numbered(37);
    let third = if db.dialect() == Dialect::MySql {
        // Statement 2 fails: on MariaDB/MySQL statement 1 (CREATE TABLE) has committed by itself.
        "CREATE TABLE t38 (id INTEGER PRIMARY KEY);\nINSERT INTO t38_missing VALUES (1);\nINSERT INTO t38 VALUES (2);\n"
    } else {
        "CREATE TABLE t38 (id INTEGER PRIMARY KEY);\nINSERT INTO t38 VALUES (1);\nINSERT INTO t38_missing VALUES (1);\n"
    };
    m.write("038_half.up.sql", third);
    let r = tm(&db, &m, &["up"]);
    r.code(1);
    assert!(r.stderr.contains("038_half.up.sql:"), "{}", r.stderr);
    assert!(r.stderr.contains("t38_missing"), "{}", r.stderr);
    let h = history(&db).await;
    match db.dialect() {
        Dialect::MySql => {
            assert!(r.stderr.contains("038_half.up.sql:2") && r.stderr.contains("statement 2"), "{}", r.stderr);
            assert_eq!(h.last(), Some(&(38, "failed".to_string())));
            assert_eq!(db.scalar("SELECT statements_applied FROM tidemark_history WHERE version = 38").await.as_deref(), Some("1"));
            assert!(db.has_table("t38").await, "statement 1 took effect");
            let again = tm(&db, &m, &["up"]);
            again.code(20);
            assert!(again.stderr.contains("repair"), "{}", again.stderr);
            let st = tm(&db, &m, &["status", "--exit-code"]);
            st.code(20);
            assert!(st.stdout.contains("failed"), "{}", st.stdout);
        }
        _ => {
            assert!(r.stderr.contains("038_half.up.sql:3") && r.stderr.contains("statement 3"), "{}", r.stderr);
            assert_eq!(versions(&h), (1..=37).collect::<Vec<_>>());
            assert!(!db.has_table("t38").await, "nothing of 38 remains");
            tm(&db, &m, &["status", "--exit-code"]).code(10);
        }
    }
});

db_test!(
    /// S6: eight migrators at once: every migration applied exactly once, all exit 0.
    s6_eight_migrators_at_once, |db| async move {
    let m = Migrations::new(&[("001_log.up.sql", "CREATE TABLE applied_log (version INTEGER NOT NULL);\nINSERT INTO applied_log VALUES (1);\n")]);
    for i in 2..=15 {
        m.write(&format!("{i:03}_t{i}.up.sql"), &format!("CREATE TABLE t{i} (id INTEGER);\nINSERT INTO applied_log VALUES ({i});\n"));
    }
    let children: Vec<_> = (0..8).map(|_| spawn(&db, &m, &["up", "--lock-timeout", "120s"])).collect();
    for c in children {
        let r: Run = c.wait_with_output().unwrap().into();
        r.ok();
    }
    assert_eq!(versions(&history(&db).await), (1..=15).collect::<Vec<_>>());
    let per_version = db.rows("SELECT version, COUNT(*) FROM applied_log GROUP BY version ORDER BY version").await;
    assert_eq!(per_version.len(), 15);
    assert!(per_version.iter().all(|r| r[1].as_deref() == Some("1")), "each migration ran exactly once: {per_version:?}");
    let applies = db.scalar("SELECT COUNT(*) FROM tidemark_journal WHERE action = 'apply'").await;
    assert_eq!(applies.as_deref(), Some("15"));
});

db_test!(
    /// A migrator killed with SIGKILL while it holds the lock leaves no lock behind.
    killed_lock_holder_leaves_no_lock, |db| async move {
    let m = numbered(1);
    m.write("002_slow.up.sql", &format!("-- tidemark:no-transaction\n{};\n", slow_statement(db.dialect())));
    let mut child = spawn(&db, &m, &["up"]);
    wait_for_lock_held(&db).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let started = Instant::now();
    let mut d = db.connect().await;
    let guard = d.lock(Duration::from_secs(10), &mut ()).await.expect("the lock is free again");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    guard.release().await.unwrap();
    d.close().await;
});

/// S7: `up` killed in the middle of a long PostgreSQL migration: no object of it remains,
/// history is consistent, and a new `up` completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s7_killed_mid_migration_postgres() {
    let Some(db) = TestDb::postgres("s7_killed_mid_migration_postgres").await else {
        return;
    };
    let m = numbered(1);
    // Sleeps only when the session says so, so that the re-run is quick.
    m.write(
        "002_long.up.sql",
        "CREATE TABLE s7 (id INTEGER);\nINSERT INTO s7 VALUES (1);\nSELECT pg_sleep(COALESCE(NULLIF(current_setting('tidemark_test.sleep', true), ''), '0')::float);\nCREATE INDEX s7_id ON s7 (id);\n",
    );
    let sep = if db.url_string().contains('?') {
        '&'
    } else {
        '?'
    };
    let slow_url = format!(
        "{}{sep}options=-c%20tidemark_test.sleep%3D60",
        db.url_string()
    );
    let mut child = command(m.path())
        .arg("-d")
        .arg(&slow_url)
        .arg("--dir")
        .arg(m.path())
        .arg("up")
        .spawn()
        .unwrap();
    // Wait until migration 2 is sleeping.
    let started = Instant::now();
    loop {
        let n = db.scalar("SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = 'tidemark' AND state = 'active' \
             AND wait_event = 'PgSleep' AND datname = current_database()").await;
        if n.as_deref() != Some("0") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "migration 2 never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let r = tm(&db, &m, &["up", "--lock-timeout", "30s"]);
    r.ok();
    assert_eq!(versions(&history(&db).await), vec![1, 2]);
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM s7").await.as_deref(),
        Some("1"),
        "the killed run left nothing behind"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the re-run must not wait for the dead run's sleep"
    );
}
