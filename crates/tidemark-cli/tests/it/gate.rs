//! The application gate: `check`, `exec`, `health`, and the library function.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::Stdio;
use std::time::Duration;

use tidemark::gate::Require;
use tidemark_test::db_test;

use crate::common::*;

db_test!(check_requires_latest_or_a_version, |db| async move {
    let m = numbered(3);
    let r = tm(&db, &m, &["check", "--require", "latest"]);
    r.code(20);
    assert!(
        r.stderr.contains("3 required migration(s) not applied"),
        "{}",
        r.stderr
    );
    tm(&db, &m, &["up", "--to", "2"]).ok();
    tm(&db, &m, &["check", "--require", "2"]).ok();
    tm(&db, &m, &["check", "--require", "latest"]).code(20);
    let j = tm(&db, &m, &["check", "--format", "json"]).json();
    assert_eq!(j["ok"], false);
    assert_eq!(j["current_version"], 2);
    assert_eq!(j["required_version"], 3);
    tm(&db, &m, &["check", "--require", "soon"]).code(2);
    tm(&db, &m, &["up"]).ok();
    tm(&db, &m, &["check"]).ok();
    // Drift fails the check unless allowed.
    db.exec("CREATE TABLE sneaky (id INTEGER);").await;
    tm(&db, &m, &["check"]).code(20);
    tm(&db, &m, &["check", "--allow-drift"]).ok();
});

db_test!(exec_starts_the_command_only_when_ready, |db| async move {
    let m = numbered(2);
    let marker = m.path().join("started");
    let r = tm(
        &db,
        &m,
        &[
            "exec",
            "--",
            "sh",
            "-c",
            &format!("echo hi > {}", marker.display()),
        ],
    );
    r.code(20);
    assert!(!marker.exists());
    tm(&db, &m, &["up"]).ok();
    // The command replaces tidemark: its exit code is the command's.
    let r = tm(
        &db,
        &m,
        &[
            "exec",
            "--",
            "sh",
            "-c",
            &format!("echo hi > {}; exit 7", marker.display()),
        ],
    );
    r.code(7);
    assert!(marker.exists());
});

db_test!(exec_waits_for_the_migrations, |db| async move {
    let m = numbered(2);
    let marker = m.path().join("started");
    let child = tm_cmd(
        &db,
        &m,
        &[
            "exec",
            "--wait",
            "60s",
            "--",
            "touch",
            marker.to_str().unwrap(),
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    assert!(!marker.exists(), "started before the schema was ready");
    tm(&db, &m, &["up"]).ok();
    let r: Run = child.wait_with_output().unwrap().into();
    r.ok();
    assert!(marker.exists());
    assert!(r.stderr.contains("waiting"), "{}", r.stderr);
});

fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let code = resp.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = resp
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    (code, body)
}

db_test!(health_endpoint_follows_the_check, |db| async move {
    let m = numbered(1);
    let mut child = tm_cmd(
        &db,
        &m,
        &["health", "--listen", "127.0.0.1:0", "--refresh", "200ms"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    let (code, body) = http_get(&addr, "/health/schema");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("\"ok\":false"), "{body}");
    tm(&db, &m, &["up"]).ok();
    // Probes answer from the background check: the change shows within a refresh or two.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let (code, body) = loop {
        let (code, body) = http_get(&addr, "/health/schema");
        if code == 200 || std::time::Instant::now() > deadline {
            break (code, body);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(code, 200, "{body}");
    let j: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(j["current_version"], 1);
    assert!(j["checked_ms_ago"].as_u64().unwrap() < 5_000, "{j}");
    assert_eq!(http_get(&addr, "/nope").0, 404);
    child.kill().unwrap();
    child.wait().unwrap();
});

db_test!(library_gate_for_application_start_up, |db| async move {
    let m = numbered(2);
    let url = db.url_string();
    let r = tidemark::check_database(&url, m.path(), Require::Latest)
        .await
        .unwrap();
    assert!(!r.ok);
    assert_eq!(r.reasons.len(), 1, "{:?}", r.reasons);
    tm(&db, &m, &["up"]).ok();
    let r = tidemark::check_database(&url, m.path(), Require::Latest)
        .await
        .unwrap();
    assert!(r.ok, "{:?}", r.reasons);
    let bad =
        tidemark::check_database("postgres://nobody@127.0.0.1:1/x", m.path(), Require::Latest)
            .await;
    assert_eq!(bad.unwrap_err().class(), tidemark::ExitClass::Operational);
});

db_test!(
    lint_pending_judges_only_what_is_not_applied,
    |db| async move {
        let m = numbered(2);
        tm(&db, &m, &["up"]).ok();
        m.write("003_drop.up.sql", "ALTER TABLE t1 DROP COLUMN name;\n");
        let r = tm(&db, &m, &["lint", "--pending", "--format", "json"]);
        let j = r.json();
        let versions: Vec<i64> = j["classes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["version"].as_i64().unwrap())
            .collect();
        assert_eq!(versions, [3], "{j}");
        assert_eq!(j["classes"][0]["class"], "destructive");
    }
);
