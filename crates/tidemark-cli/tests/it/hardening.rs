//! What a new user hits first: passwords with `# ? @ /` in them, a URL pointed at the wrong
//! kind of server, output piped into `head`, JSON that tells the truth.

use std::io::Read;
use std::process::Stdio;

use tidemark::DatabaseUrl;
use tidemark_test::{Migrations, db_test};

use crate::common::*;

/// Generated secrets hold the characters URLs reserve, unencoded.
const PASSWORDS: &[&str] = &["pa#ss", "pa?ss", "p@ss/w0rd", "a:b@c#d?e/f", "%zz#1"];

#[test]
fn a_password_never_shows_whatever_it_holds() {
    let m = Migrations::new(&[("1_a.up.sql", "CREATE TABLE a (id INT);\n")]);
    // Port 1 on loopback: nothing listens, so connecting fails at once with an error that
    // names the URL.
    for pw in PASSWORDS {
        let url = format!("postgres://app:{pw}@127.0.0.1:1/shop");
        for args in [
            vec!["status"],
            vec!["--format", "json", "status"],
            vec!["up"],
            vec!["--format", "json", "check"],
        ] {
            let r: Run = command(m.path())
                .arg("-d")
                .arg(&url)
                .arg("--dir")
                .arg(m.path())
                .args(&args)
                .output()
                .unwrap()
                .into();
            assert_ne!(r.code, 0);
            let all = r.all();
            assert!(!all.contains(pw), "{pw} leaked by {args:?}:\n{all}");
            assert!(
                all.contains("postgres://app:***@127.0.0.1:1/shop"),
                "{args:?}:\n{all}"
            );
        }
    }
    // `init` never writes a password into tidemark.toml.
    let dir = tempfile::tempdir().unwrap();
    let r: Run = command(dir.path())
        .args(["-d", "postgres://app:pa#ss@db/x", "init"])
        .output()
        .unwrap()
        .into();
    r.ok();
    let toml = std::fs::read_to_string(dir.path().join("tidemark.toml")).unwrap();
    assert!(
        !toml.contains("pa#ss") && !toml.contains("pa%23ss"),
        "{toml}"
    );
}

/// host:port of a test server's URL.
fn host_port(var: &str) -> Option<String> {
    let url =
        tidemark_test::admin_url(var, "hardening::a_url_at_the_other_kind_of_server_says_so")?;
    let raw = url.expose_secret();
    let after = raw.split_once("://")?.1;
    let after = after.rsplit_once('@').map(|x| x.1).unwrap_or(after);
    let hostport = after.split(['/', '?']).next()?;
    Some(if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:5432")
    })
}

#[test]
fn a_url_at_the_other_kind_of_server_says_so() {
    let (Some(pg), Some(my)) = (
        host_port(tidemark::env::TEST_PG_URL),
        host_port(tidemark::env::TEST_MYSQL_URL),
    ) else {
        return;
    };
    let m = Migrations::new(&[]);
    for (url, says) in [
        (
            format!("mysql://root@{pg}/x"),
            format!("{pg} speaks PostgreSQL, not MySQL/MariaDB"),
        ),
        (
            format!("postgres://postgres@{my}/x"),
            format!("{my} speaks MySQL/MariaDB, not PostgreSQL"),
        ),
    ] {
        let started = std::time::Instant::now();
        let r: Run = command(m.path())
            .args(["-d", &url, "--dir"])
            .arg(m.path())
            .arg("status")
            .output()
            .unwrap()
            .into();
        r.code(2);
        assert!(r.stderr.contains(&says), "{}", r.stderr);
        // Not the server's own 60 s authentication timeout.
        assert!(started.elapsed().as_secs() < 20, "{:?}", started.elapsed());
    }
}

db_test!(output_into_a_closed_pipe_is_not_a_panic, |db| async move {
    let m = numbered(30);
    tm(&db, &m, &["up"]).ok();
    for args in [
        &["--format", "json", "status"][..],
        &["status", "--exit-code"],
    ] {
        let mut child = tm_cmd(&db, &m, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before anything is written, as `| head -c0` does (after `head
        // -n1` the same happens to every write after the first line).
        drop(child.stdout.take());
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        let status = child.wait().unwrap();
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(status.code(), Some(0), "{stderr}");
    }
});

db_test!(json_tells_the_truth, |db| async move {
    let m = numbered(4);
    tm(&db, &m, &["up"]).ok();
    // Nothing to do: the current version is still the database's.
    let j = tm(&db, &m, &["up", "--format", "json"]).json();
    assert_eq!(j["current_version"], 4, "{j}");
    assert!(j["done"].as_array().unwrap().is_empty());
    let j = tm(&db, &m, &["down", "--steps", "1", "--format", "json"]).json();
    assert_eq!(j["current_version"], 3, "{j}");
    // The journal's detail is an object, not JSON inside a string; the actor is who we say.
    let r: Run = tm_cmd(&db, &m, &["journal", "--format", "json"])
        .env("TIDEMARK_ACTOR", "deploy-bot")
        .output()
        .unwrap()
        .into();
    let j = r.json();
    let apply = j["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "apply")
        .unwrap()
        .clone();
    assert!(apply["detail"].is_object(), "{apply}");
    assert_eq!(apply["detail"]["name"], "create_t1");
    let r: Run = tm_cmd(&db, &m, &["up"])
        .env("TIDEMARK_ACTOR", "deploy-bot")
        .output()
        .unwrap()
        .into();
    r.ok();
    let actor = db
        .scalar("SELECT applied_by FROM tidemark_history WHERE version = 4")
        .await;
    assert_eq!(actor.as_deref(), Some("deploy-bot"));
});

db_test!(
    a_failure_after_many_migrations_is_one_short_line,
    |db| async move {
        let m = numbered(40);
        m.write("041_bad.up.sql", "CREATE TABLE t1 (id INTEGER);\n");
        let r = tm(&db, &m, &["up"]);
        r.code(1);
        assert!(
            r.stderr
                .contains("applied 40 migrations before the failure (1 … 40)"),
            "{}",
            r.stderr
        );
        assert!(!r.stderr.contains("1, 2, 3"), "{}", r.stderr);
    }
);

#[test]
fn redacted_forms_agree() {
    let u = DatabaseUrl::parse("mysql://root:p#w@127.0.0.1:3306/app").unwrap();
    assert_eq!(u.to_string(), "mysql://root:***@127.0.0.1:3306/app");
}

/// 1 and 3 are quick; 2 takes a few seconds, during which the lock's session goes away.
fn slow_second(db: &tidemark_test::TestDb) -> Migrations {
    let sleep = match db.dialect() {
        tidemark::Dialect::MySql => "DO SLEEP(3);\n",
        _ => "SELECT pg_sleep(3);\n",
    };
    Migrations::new(&[
        ("1_a.up.sql", "CREATE TABLE a (id INTEGER);\n"),
        (
            "2_slow.up.sql",
            &format!("{sleep}CREATE TABLE b (id INTEGER);\n"),
        ),
        ("3_c.up.sql", "CREATE TABLE c (id INTEGER);\n"),
    ])
}

/// End the session that holds the migration lock, as a DBA, a proxy or a failover would.
async fn kill_lock_session(db: &tidemark_test::TestDb) {
    match db.dialect() {
        tidemark::Dialect::MySql => {
            // The lock's session idles while the migration's runs its statement.
            let id = db
                .scalar(
                    "SELECT CAST(ID AS SIGNED) FROM information_schema.PROCESSLIST \
                     WHERE DB = DATABASE() AND COMMAND = 'Sleep' AND ID <> CONNECTION_ID()",
                )
                .await
                .expect("the lock's session");
            db.exec(&format!("KILL {id}")).await;
        }
        _ => {
            db.exec(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = 'tidemark lock' AND datname = current_database()",
            )
            .await;
        }
    }
}

async fn wait_for_table(db: &tidemark_test::TestDb, table: &str) {
    for _ in 0..100 {
        if db.has_table(table).await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{table} never appeared");
}

async fn lock_lost_stops_the_run(db: tidemark_test::TestDb) {
    let m = slow_second(&db);
    let child = spawn(&db, &m, &["up", "--no-backup"]);
    // Migration 1 is committed; 2 is sleeping.
    wait_for_table(&db, "a").await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    kill_lock_session(&db).await;
    let r: Run = child.wait_with_output().unwrap().into();
    r.code(1);
    assert!(
        r.stderr.contains("the migration lock was lost"),
        "{}",
        r.stderr
    );
    assert!(!db.has_table("c").await, "3 ran without the lock");
    let h = history(&db).await;
    match db.dialect() {
        // Statement by statement: 2 is recorded as failed after its first statement, the
        // truth, and `up` refuses until `repair` decides.
        tidemark::Dialect::MySql => {
            assert_eq!(h, [(1, "applied".into()), (2, "failed".into())]);
            assert!(!db.has_table("b").await, "2 went on without the lock");
            tm(&db, &m, &["up"]).code(20);
        }
        // In a transaction: 2 was not committed, nothing of it remains.
        _ => {
            assert_eq!(h, [(1, "applied".into())]);
            assert!(!db.has_table("b").await);
            tm(&db, &m, &["up"]).ok();
            assert_eq!(versions(&history(&db).await), [1, 2, 3]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_lock_stops_the_run_before_its_next_commit_postgres() {
    if let Some(db) = tidemark_test::TestDb::postgres(
        "hardening::a_lost_lock_stops_the_run_before_its_next_commit_postgres",
    )
    .await
    {
        lock_lost_stops_the_run(db).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_lock_stops_the_run_before_its_next_commit_mysql() {
    if let Some(db) = tidemark_test::TestDb::mysql(
        "hardening::a_lost_lock_stops_the_run_before_its_next_commit_mysql",
    )
    .await
    {
        lock_lost_stops_the_run(db).await;
    }
}

/// A server that closes idle sessions after a second: the lock's session is kept alive by
/// its pings, and without them (pinged less often than the timeout) the run stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_timeout_does_not_take_the_lock_unnoticed() {
    for (keepalive, ok) in [("300ms", true), ("60s", false)] {
        let Some(db) = tidemark_test::TestDb::postgres(
            "hardening::an_idle_timeout_does_not_take_the_lock_unnoticed",
        )
        .await
        else {
            return;
        };
        let url = format!(
            "{}?options=-c%20idle_session_timeout%3D1000",
            db.url_string()
        );
        let m = slow_second(&db);
        let r: Run = command(m.path())
            .env("TIDEMARK_LOCK_KEEPALIVE", keepalive)
            .args(["-d", &url, "--dir"])
            .arg(m.path())
            .args(["up", "--no-backup"])
            .output()
            .unwrap()
            .into();
        if ok {
            r.ok();
            assert_eq!(versions(&history(&db).await), [1, 2, 3]);
        } else {
            r.code(1);
            assert!(r.stderr.contains("lock was lost"), "{}", r.stderr);
            assert_eq!(versions(&history(&db).await), [1]);
        }
    }
}

#[test]
fn completions_man_page_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| -> Run { command(dir.path()).args(args).output().unwrap().into() };
    for shell in ["bash", "zsh", "fish"] {
        let r = run(&["completions", shell]);
        r.ok();
        assert!(
            r.stdout.contains("tidemark") && r.stdout.contains("rollback"),
            "{shell}"
        );
    }
    let r = run(&["man"]);
    r.ok();
    assert!(
        r.stdout.starts_with(".ie") || r.stdout.contains(".TH tidemark"),
        "{}",
        r.stdout
    );
    let out = dir.path().join("man");
    run(&["man", "--out-dir", out.to_str().unwrap()]).ok();
    assert!(out.join("tidemark.1").exists() && out.join("tidemark-up.1").exists());
    let v = run(&["--version"]);
    v.ok();
    assert!(v.stdout.starts_with("tidemark 0.1.0 ("), "{}", v.stdout);
    run(&["completions", "tcsh"]).code(2);
}

/// A long transaction reads `t` (as an application's report query would) while a migration
/// wants to alter it.
async fn lock_waits(db: tidemark_test::TestDb) {
    let m = Migrations::new(&[("1_t.up.sql", "CREATE TABLE t (id INTEGER);\n")]);
    tm(&db, &m, &["up", "--no-backup"]).ok();
    m.write("2_x.up.sql", "ALTER TABLE t ADD COLUMN x INTEGER;\n");
    let mut holder = db.connect().await;
    let wait = ["--statement-lock-timeout", "1s", "--no-backup"];

    // Released while tidemark backs off: the retry goes through.
    holder.run("BEGIN").await.unwrap();
    holder.run("SELECT COUNT(*) FROM t").await.unwrap();
    let child = spawn(
        &db,
        &m,
        &[&["up", "--lock-retries", "3"][..], &wait[..]].concat(),
    );
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    holder.run("COMMIT").await.unwrap();
    let r: Run = child.wait_with_output().unwrap().into();
    r.ok();
    assert!(
        r.stderr
            .contains("waited 1s for a table lock and gave up, so that the application's queries do not queue behind it"),
        "{}",
        r.stderr
    );
    assert_eq!(versions(&history(&db).await), [1, 2]);

    // Held throughout: the run stops after its retries, with nothing of 3 applied and a hint.
    m.write("3_y.up.sql", "ALTER TABLE t ADD COLUMN y INTEGER;\n");
    holder.run("BEGIN").await.unwrap();
    holder.run("SELECT COUNT(*) FROM t").await.unwrap();
    let r = tm(
        &db,
        &m,
        &[&["up", "--lock-retries", "1"][..], &wait[..]].concat(),
    );
    holder.run("COMMIT").await.unwrap();
    r.code(1);
    assert!(
        r.stderr.contains("a long transaction holds the table"),
        "{}",
        r.stderr
    );
    assert_eq!(versions(&history(&db).await), [1, 2]);
    holder.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_waiting_for_a_lock_gives_up_and_retries_postgres() {
    if let Some(db) = tidemark_test::TestDb::postgres(
        "hardening::a_migration_waiting_for_a_lock_gives_up_and_retries_postgres",
    )
    .await
    {
        lock_waits(db).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_waiting_for_a_lock_gives_up_and_retries_mysql() {
    if let Some(db) = tidemark_test::TestDb::mysql(
        "hardening::a_migration_waiting_for_a_lock_gives_up_and_retries_mysql",
    )
    .await
    {
        lock_waits(db).await;
    }
}

db_test!(a_dry_run_refuses_exactly_as_the_real_run, |db| async move {
    // Each refusal of `up` and `down`, made on purpose; the dry run must exit with the same
    // code and change nothing (the real run is tried last, and refuses too).
    let m = numbered(3);
    tm(&db, &m, &["up", "--to", "2"]).ok();
    let same = |what: &str, args: &[&str]| {
        let dry: Vec<&str> = args.iter().copied().chain(["--dry-run"]).collect();
        let d = tm(&db, &m, &dry);
        let r = tm(&db, &m, args);
        assert_eq!(
            d.code, r.code,
            "{what}: dry run {} vs real run {}\n{}\n{}",
            d.code, r.code, d.stderr, r.stderr
        );
        assert_ne!(r.code, 0, "{what}: the real run did not refuse");
    };
    // Drifted: a table nobody migrated.
    db.exec("CREATE TABLE sneaky (id INTEGER)").await;
    same("drift", &["up"]);
    same("drift (down)", &["down", "--steps", "1"]);
    db.exec("DROP TABLE sneaky").await;
    // Modified: an applied file changed.
    let f = m.path().join("002_create_t2.up.sql");
    let orig = std::fs::read_to_string(&f).unwrap();
    std::fs::write(&f, format!("{orig}-- edited\nSELECT 1;\n")).unwrap();
    same("modified", &["up"]);
    std::fs::write(&f, &orig).unwrap();
    // Missing: an applied file gone.
    let down = m.path().join("002_create_t2.down.sql");
    let down_text = std::fs::read_to_string(&down).unwrap();
    std::fs::remove_file(&f).unwrap();
    std::fs::remove_file(&down).unwrap();
    same("missing", &["up"]);
    std::fs::write(&f, &orig).unwrap();
    std::fs::write(&down, &down_text).unwrap();
    // Unknown: no fingerprint, and no shadow database to establish it.
    db.exec("UPDATE tidemark_history SET schema_fingerprint = NULL")
        .await;
    if db.dialect() != tidemark::Dialect::Sqlite {
        let bad = match db.dialect() {
            tidemark::Dialect::MySql => "mysql://root@127.0.0.1:1/x",
            _ => "postgres://postgres@127.0.0.1:1/x",
        };
        same("unknown", &["up", "--shadow-url", bad]);
    }
    // Failed: a migration recorded as failed half way.
    db.exec("UPDATE tidemark_history SET state = 'failed' WHERE version = 2")
        .await;
    same("failed", &["up"]);
    same("failed (down)", &["down", "--steps", "1"]);
    // Nothing of all that changed anything.
    assert!(!db.has_table("t3").await);
    assert!(db.has_table("t2").await);
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_tls_handshake_on_loopback_unless_asked() {
    let Some(db) =
        tidemark_test::TestDb::postgres("hardening::no_tls_handshake_on_loopback_unless_asked")
            .await
    else {
        return;
    };
    // The test server is on loopback: nothing to protect, a handshake and encryption to pay.
    let mut d = db.connect().await;
    let rows = d
        .query(
            "SELECT CASE WHEN ssl THEN 1 ELSE 0 END FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows[0][0].as_i64(), Some(0), "TLS on a loopback connection");
    d.close().await;
}
