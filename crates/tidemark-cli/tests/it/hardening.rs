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
