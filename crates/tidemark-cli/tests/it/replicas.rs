//! Many replicas of an application starting at once (a Kubernetes rollout, a rolling deploy):
//! exactly one migrates, the others wait for the schema they were built for, none starts on a
//! schema it cannot run on. The replicas are real processes of the test application, which
//! starts through `tidemark::Migrator::start`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tidemark_test::{Migrations, TestDb};

use crate::common::*;
use crate::deploy::{free_port, get, testapp};

/// Five migrations; each writes one row into `applied_log`, so a migration applied twice is
/// seen in the data, not only in the history.
fn logged(n: usize) -> Migrations {
    let m = Migrations::new(&[(
        "001_log.up.sql",
        "CREATE TABLE applied_log (version INTEGER NOT NULL);\nINSERT INTO applied_log (version) VALUES (1);\n",
    )]);
    for i in 2..=n {
        m.write(
            &format!("{i:03}_t{i}.up.sql"),
            &format!(
                "CREATE TABLE t{i} (id INTEGER PRIMARY KEY);\nINSERT INTO applied_log (version) VALUES ({i});\n"
            ),
        );
    }
    m
}

fn replica(db: &TestDb, m: &Migrations, mode: &str, port: u16) -> Child {
    Command::new(testapp())
        .args(["--port", &port.to_string()])
        .env("STARTUP", mode)
        .env("DATABASE_URL", db.url_string())
        .env("MIGRATIONS_DIR", m.path())
        .env("RELEASE", "r")
        .env("STARTUP_WAIT", "60")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the test application")
}

/// Wait until the replica serves `/health`, or it exited (returns its exit code).
fn serving(child: &mut Child, port: u16) -> Result<(), Option<i32>> {
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        if let Ok(Some(s)) = child.try_wait() {
            return Err(s.code());
        }
        if get(port, "/health").is_some_and(|(s, _)| s == 200) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(None)
}

async fn eight_replicas(db: TestDb) {
    let m = logged(5);
    let mut procs: Vec<(Child, u16)> = (0..8)
        .map(|_| {
            let port = free_port();
            (replica(&db, &m, "migrate", port), port)
        })
        .collect();
    for (child, port) in procs.iter_mut() {
        if let Err(code) = serving(child, *port) {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!("a replica did not start (exit {code:?}): {err}");
        }
    }
    // Every migration once: in the history and in the data.
    assert_eq!(versions(&history(&db).await), [1, 2, 3, 4, 5]);
    let counts = db
        .rows("SELECT version, COUNT(*) FROM applied_log GROUP BY version ORDER BY version")
        .await;
    for row in &counts {
        assert_eq!(
            row[1].as_deref(),
            Some("1"),
            "applied more than once: {counts:?}"
        );
    }
    assert_eq!(counts.len(), 5);
    // A replica built for the same migrations that only waits starts at once.
    let port = free_port();
    let mut w = replica(&db, &m, "wait", port);
    serving(&mut w, port).expect("the waiting replica starts");
    procs.push((w, port));
    for (mut c, _) in procs {
        let _ = c.kill();
        let _ = c.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_replicas_start_at_once_one_migrates_postgres() {
    if let Some(db) =
        TestDb::postgres("replicas::eight_replicas_start_at_once_one_migrates_postgres").await
    {
        eight_replicas(db).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_replicas_start_at_once_one_migrates_mysql() {
    if let Some(db) =
        TestDb::mysql("replicas::eight_replicas_start_at_once_one_migrates_mysql").await
    {
        eight_replicas(db).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_replica_starts_when_the_schema_arrives_and_an_older_one_only_on_expand_only() {
    let Some(db) = TestDb::postgres(
        "replicas::a_waiting_replica_starts_when_the_schema_arrives_and_an_older_one_only_on_expand_only",
    )
    .await
    else {
        return;
    };
    let m = logged(3);
    // Started before anyone migrates: it waits.
    let port = free_port();
    let mut waiting = replica(&db, &m, "wait", port);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(get(port, "/health").is_none(), "started before the schema");
    assert!(waiting.try_wait().unwrap().is_none(), "gave up too early");
    tm(&db, &m, &["up", "--no-backup"]).ok();
    serving(&mut waiting, port).expect("starts once the schema is there");
    let _ = waiting.kill();
    let _ = waiting.wait();

    // A release built for 1–2 on a database at 3 (expand-only) starts; after a contract
    // migration 4 it refuses (exit 3).
    let old = Migrations::new(&[]);
    for f in ["001_log.up.sql", "002_t2.up.sql"] {
        old.write(f, &std::fs::read_to_string(m.path().join(f)).unwrap());
    }
    let port = free_port();
    let mut older = replica(&db, &old, "wait", port);
    serving(&mut older, port).expect("an older replica on an expand-only newer schema");
    let _ = older.kill();
    let _ = older.wait();
    m.write(
        "004_rename.up.sql",
        "ALTER TABLE t2 RENAME COLUMN id TO t2_id;\n",
    );
    tm(&db, &m, &["up", "--no-backup"]).ok();
    let port = free_port();
    let mut refused = Command::new(testapp())
        .args(["--port", &port.to_string()])
        .env("STARTUP", "wait")
        .env("STARTUP_WAIT", "2")
        .env("DATABASE_URL", db.url_string())
        .env("MIGRATIONS_DIR", old.path())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = refused.wait().unwrap();
    assert_eq!(status.code(), Some(3));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut refused.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        err.contains("migration 4 (rename)") && err.contains("contract"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_carries_its_own_migrations() {
    // The test application was built with `embed_migrations!("migrations")`: no directory
    // on disk, and it still migrates the database it starts on.
    for db in [
        TestDb::postgres("replicas::the_binary_carries_its_own_migrations_pg").await,
        TestDb::mysql("replicas::the_binary_carries_its_own_migrations_my").await,
        TestDb::sqlite("replicas::the_binary_carries_its_own_migrations_lite").await,
    ]
    .into_iter()
    .flatten()
    {
        let port = free_port();
        let mut app = Command::new(testapp())
            .args(["--port", &port.to_string()])
            .env("STARTUP", "migrate")
            .env("DATABASE_URL", db.url_string())
            .env_remove("MIGRATIONS_DIR")
            .current_dir(std::env::temp_dir())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Err(code) = serving(&mut app, port) {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut app.stderr.take().unwrap(), &mut err).unwrap();
            panic!("{:?}: exit {code:?}: {err}", db.dialect());
        }
        let _ = app.kill();
        let _ = app.wait();
        assert_eq!(versions(&history(&db).await), [1, 2]);
        assert!(db.has_table("visits").await);
    }
}

/// The replica that migrates is killed half way; a waiting one is killed too. The others keep
/// waiting, one of them finishes the job, every migration runs once.
async fn killed_replicas(db: TestDb) {
    let m = logged(3);
    // In a transaction (PostgreSQL): killed, nothing of it remains, and the next replica to
    // get the lock runs it. (On MariaDB a killed statement-by-statement migration is recorded
    // as failed and waits for `repair`: the replicas refuse to guess; see S5.)
    m.write(
        "002_t2.up.sql",
        "SELECT pg_sleep(3);\nCREATE TABLE t2 (id INTEGER PRIMARY KEY);\nINSERT INTO applied_log (version) VALUES (2);\n",
    );
    let first_port = free_port();
    let mut first = replica(&db, &m, "migrate", first_port);
    // Migration 1 is done, 2 is sleeping under the lock.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !db.has_table("applied_log").await {
        assert!(Instant::now() < deadline, "migration 1 never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut others: Vec<(Child, u16)> = (0..3)
        .map(|_| {
            let port = free_port();
            (replica(&db, &m, "migrate", port), port)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    first.kill().unwrap();
    first.wait().unwrap();
    let (mut waiter, _) = others.pop().unwrap();
    waiter.kill().unwrap();
    waiter.wait().unwrap();
    for (child, port) in others.iter_mut() {
        if let Err(code) = serving(child, *port) {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!("a replica did not start after the migrating one died (exit {code:?}): {err}");
        }
    }
    assert_eq!(versions(&history(&db).await), [1, 2, 3]);
    let counts = db
        .rows("SELECT version, COUNT(*) FROM applied_log GROUP BY version ORDER BY version")
        .await;
    for row in &counts {
        assert_eq!(
            row[1].as_deref(),
            Some("1"),
            "applied more than once: {counts:?}"
        );
    }
    for (mut c, _) in others {
        let _ = c.kill();
        let _ = c.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_migrating_replica_killed_half_way_another_finishes_postgres() {
    if let Some(db) = TestDb::postgres(
        "replicas::the_migrating_replica_killed_half_way_another_finishes_postgres",
    )
    .await
    {
        killed_replicas(db).await;
    }
}
