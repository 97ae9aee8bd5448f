//! Deploys (S2, S3, S4): the real `tidemark` binary releases the real test application
//! (`tidemark-testapp`, an axum server on a loopback port) against a real PostgreSQL
//! database, breaks it, and rolls it back.
//!
//! The test application is a binary of the workspace; `cargo test --workspace` builds it. When
//! running only this package, build it first: `cargo build -p tidemark-testapp`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tidemark_test::TestDb;

use crate::common::*;

pub fn testapp() -> PathBuf {
    let p = Path::new(BIN).with_file_name("tidemark-testapp");
    assert!(
        p.is_file(),
        "{} is missing: run `cargo build -p tidemark-testapp` (cargo test --workspace builds it)",
        p.display()
    );
    p
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// GET on the loopback port: status and body, `None` when nothing answers.
pub fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    Some((status, body.to_string()))
}

/// The start and stop templates for the test application: start it in the background, wait
/// for its pid file (written once it listens); stop it and wait until it is gone.
pub fn start_template(app: &Path) -> String {
    format!(
        "nohup {} --port {{port}} --env-file {{env_file}} --pid-file {{dir}}/app.pid > {{dir}}/app.log 2>&1 & \
         for i in $(seq 200); do [ -s {{dir}}/app.pid ] && break; sleep 0.02; done",
        app.display()
    )
}

pub const STOP_TEMPLATE: &str = "pid=$(cat {dir}/app.pid) && kill $pid; \
     while [ \"$(cut -d' ' -f3 /proc/$pid/stat 2>/dev/null || echo Z)\" != Z ]; do sleep 0.02; done; rm -f {dir}/app.pid";

pub struct Proj {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub port: u16,
}

impl Proj {
    pub fn new(db: &TestDb) -> Proj {
        let p = Proj {
            dir: tempfile::tempdir().expect("tempdir"),
            url: db.url_string(),
            port: free_port(),
        };
        p.write(
            "migrations/001_users.up.sql",
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name VARCHAR(50));\n",
        );
        p.write("migrations/001_users.down.sql", "DROP TABLE users;\n");
        p
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// `releases/ID/.env` with `RELEASE=ID` and the given lines.
    pub fn release(&self, id: &str, env: &str) {
        self.write(
            &format!("releases/{id}/.env"),
            &format!("RELEASE={id}\n{env}"),
        );
    }

    /// deploy.toml for the test application; `extra` adds tables (`[rollback]`, `[preflight]`).
    pub fn config(&self, extra: &str) {
        let app = testapp();
        self.write(
            "deploy.toml",
            &format!(
                r#"app = "shop"

[release]
dir = "releases/{{release}}"
env_file = "{{dir}}/.env"
port = {port}

[command]
start = '''{start}'''
stop = '''{stop}'''

[verify]
window = "1s"
interval = "200ms"
failure_threshold = 3

[[verify.http]]
url = "http://127.0.0.1:{{port}}/health"
status = 200
body_contains = "ok release={{release}}"
timeout = "1s"
{extra}
"#,
                port = self.port,
                start = start_template(&app),
                stop = STOP_TEMPLATE,
            ),
        );
    }

    pub fn tm(&self, args: &[&str]) -> Run {
        let mut c = command(self.path());
        c.arg("-d").arg(&self.url).args(args);
        c.output().expect("run tidemark").into()
    }

    pub fn health(&self) -> Option<(u16, String)> {
        get(self.port, "/health")
    }
}

impl Drop for Proj {
    fn drop(&mut self) {
        // Stop whatever release a failed test left running.
        for dir in ["releases", "builds"] {
            let Ok(rd) = std::fs::read_dir(self.path().join(dir)) else {
                continue;
            };
            for e in rd.flatten() {
                if let Ok(pid) = std::fs::read_to_string(e.path().join("app.pid")) {
                    kill_testapp(&pid);
                }
            }
        }
    }
}

/// Stop the test application with this pid, and nothing else: a stale pid file may name a
/// pid the system has handed out again, even as a thread id of this very test process (kill(2)
/// of a thread id signals its whole process).
pub fn kill_testapp(pid: &str) {
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", pid.trim())).unwrap_or_default();
    if String::from_utf8_lossy(&cmdline).contains("tidemark-testapp") {
        let _ = std::process::Command::new("kill").arg(pid.trim()).status();
    }
}

async fn pg(test: &str) -> Option<TestDb> {
    TestDb::postgres(test).await
}

pub fn steps(report: &serde_json::Value) -> Vec<(String, String)> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap().to_string(),
                s["outcome"].as_str().unwrap_or("interrupted").to_string(),
            )
        })
        .collect()
}

pub fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_failed_health_check_rolls_back_release_and_down_scripts() {
    let Some(db) = pg("s3_failed_health_check_rolls_back_release_and_down_scripts").await else {
        return;
    };
    let p = Proj::new(&db);
    p.config("[rollback]\ndatabase = \"down\"\n");
    p.release("v1", "GREETING=hello\n");
    p.tm(&["deploy", "--release", "v1"]).ok();
    assert!(p.health().unwrap().1.contains("release=v1"));

    // v2 brings a migration and fails its health check.
    p.write(
        "migrations/002_orders.up.sql",
        "CREATE TABLE orders (id INTEGER PRIMARY KEY);\n",
    );
    p.write("migrations/002_orders.down.sql", "DROP TABLE orders;\n");
    p.release("v2", "GREETING=hello\nFAIL_HEALTH=1\n");
    let r = p.tm(&["deploy", "--release", "v2", "--format", "json"]);
    r.code(30);
    let j = r.json();
    assert_eq!(j["outcome"], "rolled_back");
    assert_eq!(j["exit_code"], 30);
    assert_eq!(j["serving"], "v1");
    // The old release serves again, and the migration of this deploy is gone.
    let (status, body) = p.health().expect("the old release answers");
    assert_eq!((status, body.trim()), (200, "ok release=v1"));
    assert!(!db.has_table("orders").await);
    assert_eq!(
        versions(&history(&db).await),
        [1],
        "migration 2 reverted by its down script"
    );
    assert_eq!(j["migrations_applied"], serde_json::json!([2]));
    assert_eq!(j["migrations_reverted"], serde_json::json!([2]));
    assert!(j["backup_id"].is_string());
    // What failed, with the body of the failing response.
    assert_eq!(j["failure"]["status"], 500);
    assert!(
        j["failure"]["body"]
            .as_str()
            .unwrap()
            .contains("release v2 was told to fail"),
        "{}",
        j["failure"]
    );
    // Every step, with times, in the timeline.
    assert_eq!(
        steps(&j),
        pairs(&[
            ("preflight", "ok"),
            ("backup", "ok"),
            ("migrate", "ok"),
            ("release", "ok"),
            ("verify", "failed"),
            ("rollback", "ok"),
            ("report", "ok"),
        ])
    );
    let timeline: Vec<&str> = j["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["event"].as_str().unwrap())
        .collect();
    for want in [
        "deploy of release v2 started",
        "backup ",
        "migrations 2 applied",
        "check failed: GET http://127.0.0.1:",
        "migrations 2 reverted (down scripts)",
        "release v1 serves",
        "finished: rolled back (exit 30)",
    ] {
        assert!(
            timeline.iter().any(|t| t.contains(want)),
            "`{want}` not in the timeline:\n{}",
            timeline.join("\n")
        );
    }
    let recovery = j["recovery_ms"].as_u64().expect("recovery time measured");
    assert!(recovery < 5000, "{recovery} ms");
    // The steps are in the database's journal too, with the run id.
    let run_id = j["run_id"].as_str().unwrap();
    let journaled = db
        .rows(&format!(
            "SELECT action FROM tidemark_journal WHERE run_id = '{run_id}' AND action LIKE 'deploy.%'"
        ))
        .await;
    for step in ["deploy.preflight", "deploy.verify", "deploy.rollback"] {
        assert!(
            journaled.iter().any(|r| r[0].as_deref() == Some(step)),
            "{step} not journaled: {journaled:?}"
        );
    }
    // The release records: v1 serving, v2 rolled back; in the database too.
    let rel = p.tm(&["releases", "--format", "json"]);
    let rel = rel.ok().json();
    let list = rel["releases"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], "v1");
    assert_eq!(list[0]["serving"], true);
    assert_eq!(list[0]["found_in"], "both");
    assert_eq!(list[1]["outcome"], "rolled_back");
    assert_eq!(list[1]["migration_head"], 2);
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM tidemark_releases")
            .await
            .as_deref(),
        Some("2")
    );
    // Markdown and HTML reports of the newest run.
    let md = p.tm(&["report"]);
    assert!(md.ok().stdout.contains("## Timeline"));
    assert!(md.stdout.contains("release v2 was told to fail"));
    let html = p.tm(&["report", run_id, "--html"]);
    assert!(html.ok().stdout.starts_with("<!DOCTYPE html>"));
    assert!(html.stdout.contains("time</th><th>event"));
    // The release tables are tidemark's: no drift.
    p.tm(&["check", "--dir", "migrations", "--require", "1"])
        .ok();
}

/// MariaDB commits DDL by itself: the down script still reverts this deploy's migration and
/// the release records live in its `tidemark_releases` too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_rollback_with_down_scripts_on_mariadb() {
    let Some(db) = TestDb::mysql("s3_rollback_with_down_scripts_on_mariadb").await else {
        return;
    };
    let p = Proj::new(&db);
    p.config("[rollback]\ndatabase = \"down\"\n");
    p.release("v1", "");
    p.tm(&["deploy", "--release", "v1"]).ok();
    p.write(
        "migrations/002_orders.up.sql",
        "CREATE TABLE orders (id INTEGER PRIMARY KEY);\n",
    );
    p.write("migrations/002_orders.down.sql", "DROP TABLE orders;\n");
    p.release("v2", "FAIL_HEALTH=1\n");
    let r = p.tm(&["deploy", "--release", "v2", "--format", "json"]);
    r.code(30);
    assert_eq!(r.json()["migrations_reverted"], serde_json::json!([2]));
    assert!(!db.has_table("orders").await);
    assert_eq!(versions(&history(&db).await), [1]);
    assert!(p.health().unwrap().1.contains("release=v1"));
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM tidemark_releases")
            .await
            .as_deref(),
        Some("2")
    );
    // tidemark's own tables are not drift.
    p.tm(&["check", "--require", "1"]).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_keep_policy_leaves_an_expand_only_schema() {
    let Some(db) = pg("s3_keep_policy_leaves_an_expand_only_schema").await else {
        return;
    };
    let p = Proj::new(&db);
    p.config("[rollback]\ndatabase = \"keep\"\n");
    p.release("v1", "");
    p.tm(&["deploy", "--release", "v1"]).ok();
    p.write(
        "migrations/002_add_email.up.sql",
        "ALTER TABLE users ADD COLUMN email VARCHAR(100);\n",
    );
    p.release("v2", "FAIL_HEALTH=1\n");
    let r = p.tm(&["deploy", "--release", "v2", "--format", "json"]);
    r.code(30);
    let j = r.json();
    assert_eq!(j["plan"]["migrations"][0]["class"], "expand-only");
    assert_eq!(j["migrations_reverted"], serde_json::json!([]));
    assert!(
        j["actions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_str().unwrap().contains("schema kept")),
        "{}",
        j["actions"]
    );
    assert_eq!(versions(&history(&db).await), [1, 2]);
    assert!(p.health().unwrap().1.contains("release=v1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_a_rollback_that_cannot_revert_the_database_exits_31() {
    let Some(db) = pg("s3_a_rollback_that_cannot_revert_the_database_exits_31").await else {
        return;
    };
    let p = Proj::new(&db);
    p.config("[rollback]\ndatabase = \"auto\"\n");
    p.release("v1", "");
    p.tm(&["deploy", "--release", "v1"]).ok();
    // Destructive and without a down script: auto may neither keep nor revert, and restoring
    // the backup would lose writes, which the config does not allow.
    p.write(
        "migrations/002_drop_name.up.sql",
        "ALTER TABLE users DROP COLUMN name;\n",
    );
    p.write(
        "tidemark.toml",
        "[lint.rules]\ndrop-column = \"warning\"\nmissing-down = \"warning\"\n",
    );
    p.release("v2", "FAIL_HEALTH=1\n");
    let r = p.tm(&["deploy", "--release", "v2", "--format", "json"]);
    r.code(31);
    let j = r.json();
    assert_eq!(j["outcome"], "rollback_failed");
    let todo = j["left_to_do"].as_array().unwrap();
    assert!(
        todo.iter()
            .any(|t| t.as_str().unwrap().contains("no down script")),
        "{todo:?}"
    );
    // The application itself is back on the old release.
    assert!(p.health().unwrap().1.contains("release=v1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s4_rollback_on_demand_returns_to_the_previous_release() {
    let Some(db) = pg("s4_rollback_on_demand_returns_to_the_previous_release").await else {
        return;
    };
    let p = Proj::new(&db);
    p.config("[rollback]\ndatabase = \"down\"\n");
    p.release("v1", "");
    p.tm(&["deploy", "--release", "v1"]).ok();
    p.write(
        "migrations/002_orders.up.sql",
        "CREATE TABLE orders (id INTEGER PRIMARY KEY);\n",
    );
    p.write("migrations/002_orders.down.sql", "DROP TABLE orders;\n");
    p.release("v2", "");
    p.tm(&["deploy", "--release", "v2"]).ok();
    assert!(p.health().unwrap().1.contains("release=v2"));
    assert!(db.has_table("orders").await);

    // A release that does not exist, and the serving one, are refused (nothing changes).
    p.tm(&["rollback", "--to", "v9"]).code(2);
    p.tm(&["rollback", "--to", "v2"]).code(2);
    assert!(p.health().unwrap().1.contains("release=v2"));

    let r = p.tm(&["rollback", "--format", "json"]);
    r.ok();
    let j = r.json();
    assert_eq!(j["kind"], "rollback");
    assert_eq!(j["serving"], "v1");
    assert_eq!(j["migrations_reverted"], serde_json::json!([2]));
    assert!(p.health().unwrap().1.contains("release=v1"));
    assert!(!db.has_table("orders").await);
    let rel = p.tm(&["releases", "--format", "json"]).json();
    let serving: Vec<&str> = rel["releases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["serving"] == true)
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(serving, ["v1"]);
    // Text output names the releases.
    let t = p.tm(&["releases"]);
    assert!(
        t.ok().stdout.contains("v2") && t.stdout.contains("serving"),
        "{}",
        t.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s4_an_unsafe_rollback_is_refused_before_anything_changes() {
    let Some(db) = pg("s4_an_unsafe_rollback_is_refused_before_anything_changes").await else {
        return;
    };
    let p = Proj::new(&db);
    p.config("[rollback]\ndatabase = \"keep\"\n");
    p.release("v1", "");
    p.tm(&["deploy", "--release", "v1"]).ok();
    p.write(
        "migrations/002_drop_name.up.sql",
        "ALTER TABLE users DROP COLUMN name;\n",
    );
    p.release("v2", "");
    // The destructive migration is an error at the default lint level: allow it for this test.
    p.write("tidemark.toml", "[lint.rules]\ndrop-column = \"warning\"\n");
    p.tm(&["deploy", "--release", "v2"]).ok();
    let r = p.tm(&["rollback"]);
    r.code(20);
    assert!(
        r.all().contains("not expand-only") && r.all().contains("boundary"),
        "{}",
        r.all()
    );
    assert!(p.health().unwrap().1.contains("release=v2"));
    assert_eq!(versions(&history(&db).await), [1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2_a_changed_env_file_recreates_and_the_new_value_is_live() {
    let Some(db) = pg("s2_a_changed_env_file_recreates_and_the_new_value_is_live").await else {
        return;
    };
    let p = Proj::new(&db);
    p.config("");
    p.release("v1", "GREETING=hello\nSTRIPE_KEY=sk_old_secret\n");
    p.tm(&["deploy", "--release", "v1"]).ok();
    assert_eq!(get(p.port, "/env/GREETING").unwrap().1, "hello");
    p.release("v2", "GREETING=bonjour\nSTRIPE_KEY=sk_new_secret\n");
    let dry = p.tm(&["deploy", "--release", "v2", "--dry-run", "--format", "json"]);
    dry.ok();
    assert_eq!(dry.json()["plan"]["action"], "recreate");
    assert_eq!(
        get(p.port, "/env/GREETING").unwrap().1,
        "hello",
        "a dry run changes nothing"
    );
    let r = p.tm(&["deploy", "--release", "v2"]);
    r.ok();
    assert!(r.stdout.contains("plan: recreate"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("env keys changed: GREETING, RELEASE, STRIPE_KEY"),
        "{}",
        r.stdout
    );
    assert_eq!(get(p.port, "/env/GREETING").unwrap().1, "bonjour");
    // Values never reach a report or a record.
    let state = p.path().join(".tidemark");
    let mut seen = String::new();
    for e in walk(&state) {
        seen.push_str(&std::fs::read_to_string(e).unwrap_or_default());
    }
    seen.push_str(&r.all());
    for rows in db.rows("SELECT record FROM tidemark_releases").await {
        seen.push_str(rows[0].as_deref().unwrap_or_default());
    }
    assert!(!seen.is_empty());
    for secret in ["sk_old_secret", "sk_new_secret", "bonjour"] {
        assert!(!seen.contains(secret), "{secret} leaked");
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2_a_missing_artifact_stops_the_deploy_with_nothing_changed() {
    let Some(db) = pg("s2_a_missing_artifact_stops_the_deploy_with_nothing_changed").await else {
        return;
    };
    let p = Proj::new(&db);
    p.config("[preflight]\nartifacts = [\"bin/batch\"]\n");
    p.release("v1", "");
    let r = p.tm(&["deploy", "--release", "v1"]);
    r.code(20);
    assert!(
        r.all().contains("artifact `bin/batch` is missing"),
        "{}",
        r.all()
    );
    assert!(r.all().contains("nothing was released"), "{}", r.all());
    assert!(p.health().is_none(), "nothing was started");
    assert!(
        !db.has_table("tidemark_history").await,
        "nothing was migrated"
    );
    assert!(!db.has_table("users").await);
    assert!(
        !p.path().join(".tidemark-test-backups").exists(),
        "no backup"
    );
    let rel = p.tm(&["releases", "--format", "json"]).json();
    assert_eq!(rel["releases"], serde_json::json!([]));
    // With the artifact, the same deploy goes through (events as JSON lines).
    p.write("releases/v1/bin/batch", "#!/bin/sh\n");
    let r = p.tm(&["deploy", "--release", "v1", "--events"]);
    r.ok();
    let events: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events[0]["event"], "started");
    assert_eq!(events.last().unwrap()["event"], "finished");
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "step_finished" && e["step"] == "verify")
    );
    assert!(db.has_table("users").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s2_cron_entries_and_the_production_compose_file_are_checked() {
    let Some(db) = pg("s2_cron_entries_and_the_production_compose_file_are_checked").await else {
        return;
    };
    let p = Proj::new(&db);
    p.write(
        "crontab",
        "# m h dom mon dow command\n0 3 * * * /srv/shop/bin/cleanup\n",
    );
    let cron = |missing: &str| {
        format!(
            "[preflight.cron]\nfile = \"crontab\"\nentries = [\"*/5  * * * * /srv/shop/bin/batch\", \"0 3 * * * /srv/shop/bin/cleanup\"]\nmissing = \"{missing}\"\n"
        )
    };
    p.release("v1", "");
    p.config(&cron("error"));
    let r = p.tm(&["deploy", "--release", "v1"]);
    r.code(20);
    assert!(
        r.all().contains("cron entry not installed") && r.all().contains("/srv/shop/bin/batch"),
        "{}",
        r.all()
    );
    assert!(
        !r.all().contains("`0 3 * * * /srv/shop/bin/cleanup`"),
        "{}",
        r.all()
    );
    p.config(&cron("warning"));
    let r = p.tm(&["deploy", "--release", "v1"]);
    r.ok();
    assert!(
        r.stderr.contains("warning: cron entry not installed"),
        "{}",
        r.stderr
    );
    // With install = true, the promote step writes them into a managed block.
    p.config(&cron("error").replace("missing = ", "install = true\nmissing = "));
    p.release("v1b", "");
    let r = p.tm(&["deploy", "--release", "v1b"]);
    r.ok();
    assert!(
        r.stdout.contains("installed 2 cron entries in"),
        "{}",
        r.stdout
    );
    let tab = std::fs::read_to_string(p.path().join("crontab")).unwrap();
    assert!(
        tab.starts_with("# m h dom mon dow command\n0 3 * * * /srv/shop/bin/cleanup\n# BEGIN tidemark shop\n*/5  * * * * /srv/shop/bin/batch\n"),
        "{tab}"
    );
    p.config(&cron("error"));
    p.release("v1c", "");
    p.tm(&["deploy", "--release", "v1c"]).ok();

    // A start command that names a dev compose file is refused.
    p.write("docker-compose.prod.yml", "services: {}\n");
    p.write("docker-compose.dev.yml", "services: {}\n");
    let text = std::fs::read_to_string(p.path().join("deploy.toml")).unwrap();
    let text = text
        .replace("nohup ", "true -f ../../docker-compose.dev.yml; nohup ")
        .replace(
            "[preflight.cron]",
            "[preflight]\nproduction_file = \"docker-compose.prod.yml\"\n[preflight.cron]",
        );
    p.write("deploy.toml", &text);
    p.release("v2", "");
    let r = p.tm(&["deploy", "--release", "v2"]);
    r.code(20);
    assert!(
        r.all()
            .contains("docker-compose.dev.yml, not the production file")
            && r.all().contains("refused"),
        "{}",
        r.all()
    );
    let h = p.health();
    assert!(h.as_ref().unwrap().1.contains("release=v1c"), "{h:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_deploy_configuration_is_a_clear_usage_error() {
    let Some(db) = pg("bad_deploy_configuration_is_a_clear_usage_error").await else {
        return;
    };
    let p = Proj::new(&db);
    p.release("v1", "");
    // No deploy.toml at all.
    let r = p.tm(&["deploy", "--release", "v1"]);
    r.code(2);
    assert!(
        r.stderr.contains("deploy.toml: no such file"),
        "{}",
        r.stderr
    );
    // An unknown key.
    p.config("[rollback]\ndatabase = \"down\"\nretries = 3\n");
    let r = p.tm(&["deploy", "--release", "v1"]);
    r.code(2);
    assert!(
        r.stderr.contains("deploy.toml") && r.stderr.contains("retries"),
        "{}",
        r.stderr
    );
    // A bad value.
    p.config("[rollback]\ndatabase = \"undo\"\n");
    let r = p.tm(&["deploy", "--release", "v1"]);
    r.code(2);
    assert!(
        r.stderr.contains("rollback.database") && r.stderr.contains("undo"),
        "{}",
        r.stderr
    );
    // An unknown placeholder.
    p.config("");
    let text = std::fs::read_to_string(p.path().join("deploy.toml")).unwrap();
    p.write("deploy.toml", &text.replace("{env_file}", "{envfile}"));
    let r = p.tm(&["deploy", "--release", "v1", "--format", "json"]);
    r.code(2);
    let e = r.json();
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("command.start") && msg.contains("{envfile}"),
        "{msg}"
    );
    assert!(
        e["error"]["file"]
            .as_str()
            .unwrap()
            .ends_with("deploy.toml")
    );
    // A release directory that does not exist.
    p.config("");
    let r = p.tm(&["deploy", "--release", "v7"]);
    r.code(2);
    assert!(
        r.stderr.contains("release.dir") && r.stderr.contains("releases/v7 does not exist"),
        "{}",
        r.stderr
    );
    // An unreachable health URL is a failed check, never a pass: the first deploy is undone.
    let text = std::fs::read_to_string(p.path().join("deploy.toml")).unwrap();
    let dead = free_port();
    p.write(
        "deploy.toml",
        &text.replace(
            "http://127.0.0.1:{port}/health",
            &format!("http://127.0.0.1:{dead}/health"),
        ),
    );
    let r = p.tm(&["deploy", "--release", "v1", "--format", "json"]);
    r.code(30);
    let j = r.json();
    assert!(
        j["failure"]["detail"]
            .as_str()
            .unwrap()
            .contains("no answer"),
        "{}",
        j["failure"]
    );
    assert!(p.health().is_none(), "the failed first release was stopped");
    // Nothing is left locked: the next deploy may run.
    assert!(!p.path().join(".tidemark/deploy/shop/serving.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_deploy_is_refused_while_one_runs() {
    let Some(db) = pg("a_second_deploy_is_refused_while_one_runs").await else {
        return;
    };
    let p = Proj::new(&db);
    // A start that takes a while, so that the first deploy holds the lock.
    p.config("");
    let text = std::fs::read_to_string(p.path().join("deploy.toml")).unwrap();
    p.write("deploy.toml", &text.replace("nohup ", "sleep 2; nohup "));
    p.release("v1", "");
    p.release("v2", "");
    let mut first = command(p.path());
    first
        .arg("-d")
        .arg(&p.url)
        .args(["deploy", "--release", "v1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = first.spawn().unwrap();
    let lock = p.path().join(".tidemark/deploy/shop/lock");
    for _ in 0..100 {
        if std::fs::read_to_string(&lock).is_ok_and(|t| t.contains("release v1")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = p.tm(&["deploy", "--release", "v2"]);
    r.code(1);
    assert!(
        r.stderr
            .contains("another deploy or rollback of this app is running")
            && r.stderr.contains("deploy of release v1"),
        "{}",
        r.stderr
    );
    let out: Run = child.wait_with_output().unwrap().into();
    out.ok();
}

/// A stand-in for docker compose (no Docker daemon runs on the test machines). It records
/// every call and behaves like compose where it matters here: `up -d` recreates the service
/// when its env file changed or with `--force-recreate` (the "container" is the test app
/// started with a copy of the env file it was created with), `restart` restarts it with the
/// environment it was created with, `stop` stops it.
const FAKE_COMPOSE: &str = r#"#!/bin/sh
state="$FAKE_STATE"; mkdir -p "$state"
file=""; env=""; cmd=""; force=0; service=""
while [ $# -gt 0 ]; do
  case "$1" in
    -f|--file) file="$2"; shift 2;;
    --env-file) env="$2"; shift 2;;
    -p|--project-name) shift 2;;
    version) echo "Docker Compose version v2.99.0 (stand-in)"; exit 0;;
    up|restart|stop) cmd="$1"; shift;;
    -d) shift;;
    --force-recreate) force=1; shift;;
    -*) echo "stand-in compose: unknown flag $1" >&2; exit 1;;
    *) service="$1"; shift;;
  esac
done
[ -f "$file" ] || { echo "stand-in compose: no such file $file" >&2; exit 1; }
stop() {
  if [ -s "$state/pid" ]; then
    pid=$(cat "$state/pid"); kill "$pid" 2>/dev/null
    while [ "$(cut -d' ' -f3 /proc/$pid/stat 2>/dev/null || echo Z)" != Z ]; do sleep 0.02; done
    rm -f "$state/pid"
  fi
}
start() {
  rm -f "$state/pid"
  nohup "$TESTAPP" --port "$TESTAPP_PORT" --env-file "$state/container.env" --pid-file "$state/pid" > "$state/app.log" 2>&1 &
  for i in $(seq 200); do [ -s "$state/pid" ] && break; sleep 0.02; done
}
case "$cmd" in
  up)
    if [ $force = 1 ] || [ ! -s "$state/pid" ] || ! cmp -s "$env" "$state/container.env"; then
      stop; cp "$env" "$state/container.env"; echo "image=$TIDEMARK_IMAGE" >> "$state/created"; start
    fi;;
  restart) stop; start;;
  stop) stop;;
esac
"#;

fn write_exec(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `bin/` with `docker` (and, for compose v1, `docker-compose`) that log to `calls`.
fn fake_docker(p: &Proj, plugin: bool) -> PathBuf {
    let bin = p.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    write_exec(&bin.join("fake-compose"), FAKE_COMPOSE);
    let calls = p.path().join("calls");
    write_exec(
        &bin.join("docker"),
        &format!(
            "#!/bin/sh\necho \"docker $*\" >> {calls}\nif [ \"$1\" = compose ]; then\n  {}\nfi\n\
             # docker run --rm IMAGE test -e PATH: images are directories under $FAKE_IMAGES\n\
             if [ \"$1\" = run ] && [ \"$2\" = --rm ] && [ \"$4\" = test ]; then\n  \
             img=$(echo \"$3\" | tr '/:' '__'); [ -d \"$FAKE_IMAGES/$img\" ] || {{ echo \"Unable to find image '$3' locally\" >&2; exit 125; }}\n  \
             test \"$5\" \"$FAKE_IMAGES/$img$6\"; exit $?\nfi\n\
             echo \"docker: '$1' is not a docker command.\" >&2\nexit 1\n",
            if plugin {
                format!("shift; exec {}/fake-compose \"$@\"", bin.display())
            } else {
                "echo \"docker: 'compose' is not a docker command.\" >&2; exit 1".to_string()
            },
            calls = calls.display()
        ),
    );
    if !plugin {
        write_exec(
            &bin.join("docker-compose"),
            &format!(
                "#!/bin/sh\necho \"docker-compose $*\" >> {calls}\nexec {}/fake-compose \"$@\"\n",
                bin.display(),
                calls = calls.display()
            ),
        );
    }
    bin
}

fn compose_config(p: &Proj) {
    p.write(
        "docker-compose.prod.yml",
        "services:\n  app:\n    image: ${TIDEMARK_IMAGE}\n",
    );
    p.write(
        "deploy.toml",
        &format!(
            r#"app = "shop"
strategy = "compose"

[release]
dir = "releases/{{release}}"
env_file = "{{dir}}/.env"
port = {port}

[compose]
file = "docker-compose.prod.yml"
service = "app"
project = "shop"
image = "registry.example/shop:{{release}}"

[preflight]
production_file = "docker-compose.prod.yml"

[verify]
window = "1s"
interval = "200ms"

[[verify.http]]
url = "http://127.0.0.1:{{port}}/health"
body_contains = "ok release={{release}}"
"#,
            port = p.port
        ),
    );
}

fn tm_with_docker(p: &Proj, bin: &Path, args: &[&str]) -> Run {
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut c = command(p.path());
    c.env("PATH", path)
        .env("FAKE_STATE", p.path().join("container"))
        .env("FAKE_IMAGES", p.path().join("images"))
        .env("TESTAPP", testapp())
        .env("TESTAPP_PORT", p.port.to_string())
        .arg("-d")
        .arg(&p.url)
        .args(args);
    c.output().expect("run tidemark").into()
}

fn stop_container(p: &Proj) {
    if let Ok(pid) = std::fs::read_to_string(p.path().join("container/pid")) {
        kill_testapp(&pid);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_recreates_on_env_change_and_rolls_back_with_the_old_env_and_image() {
    let Some(db) =
        pg("compose_recreates_on_env_change_and_rolls_back_with_the_old_env_and_image").await
    else {
        return;
    };
    let p = Proj::new(&db);
    let bin = fake_docker(&p, true);
    compose_config(&p);
    p.release("v1", "GREETING=hello\n");
    let r = tm_with_docker(&p, &bin, &["deploy", "--release", "v1"]);
    let cleanup = scopeguard(&p);
    r.ok();
    assert_eq!(get(p.port, "/env/GREETING").unwrap().1, "hello");
    p.release("v2", "GREETING=bonjour\n");
    tm_with_docker(&p, &bin, &["deploy", "--release", "v2"]).ok();
    assert_eq!(get(p.port, "/env/GREETING").unwrap().1, "bonjour");
    let calls = std::fs::read_to_string(p.path().join("calls")).unwrap();
    let prod = p.path().join("docker-compose.prod.yml");
    let v2env = p.path().join("releases/v2/.env").canonicalize().unwrap();
    assert!(
        calls.contains(&format!(
            "docker compose -f {} --env-file {} -p shop up -d --force-recreate app",
            prod.display(),
            v2env.display()
        )),
        "{calls}"
    );
    // v3 fails: v2 is recreated with its own env file and image.
    p.release("v3", "GREETING=hola\nFAIL_HEALTH=1\n");
    tm_with_docker(&p, &bin, &["deploy", "--release", "v3"]).code(30);
    assert_eq!(get(p.port, "/env/GREETING").unwrap().1, "bonjour");
    let created = std::fs::read_to_string(p.path().join("container/created")).unwrap();
    assert_eq!(
        created.lines().collect::<Vec<_>>(),
        [
            "image=registry.example/shop:v1",
            "image=registry.example/shop:v2",
            "image=registry.example/shop:v3",
            "image=registry.example/shop:v2",
        ]
    );
    let rel = tm_with_docker(&p, &bin, &["releases", "--format", "json"]).json();
    assert_eq!(rel["releases"][1]["artifact"], "registry.example/shop:v2");
    assert!(
        rel["releases"][1]["unit_file"]["path"]
            .as_str()
            .unwrap()
            .ends_with("docker-compose.prod.yml")
    );
    drop(cleanup);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_v1_is_used_where_the_compose_plugin_is_missing() {
    let Some(db) = pg("compose_v1_is_used_where_the_compose_plugin_is_missing").await else {
        return;
    };
    let p = Proj::new(&db);
    let bin = fake_docker(&p, false);
    compose_config(&p);
    // The `batch` binary must be in the image (seed 002: it was not).
    let text = std::fs::read_to_string(p.path().join("deploy.toml")).unwrap();
    p.write(
        "deploy.toml",
        &text.replace(
            "[preflight]\n",
            "[preflight]\nartifacts = [\"/app/batch\"]\nartifact_command = \"docker run --rm {image} test -e {artifact}\"\n",
        ),
    );
    for v in ["v1", "v2"] {
        p.write(&format!("images/registry.example_shop_{v}/app/batch"), "");
    }
    p.release("v1", "GREETING=hello\n");
    let r = tm_with_docker(&p, &bin, &["deploy", "--release", "v1"]);
    let cleanup = scopeguard(&p);
    r.ok();
    let calls = std::fs::read_to_string(p.path().join("calls")).unwrap();
    assert!(calls.contains("docker compose version"), "{calls}");
    assert!(
        calls.contains("docker-compose -f ") && calls.contains(" -p shop up -d app"),
        "{calls}"
    );
    assert!(!calls.contains("docker compose -f"), "{calls}");
    assert_eq!(get(p.port, "/env/GREETING").unwrap().1, "hello");
    // A dev compose file is refused.
    p.write("docker-compose.dev.yml", "services: {}\n");
    let text = std::fs::read_to_string(p.path().join("deploy.toml")).unwrap();
    p.write(
        "deploy.toml",
        &text.replace(
            "\nfile = \"docker-compose.prod.yml\"",
            "\nfile = \"docker-compose.dev.yml\"",
        ),
    );
    p.release("v2", "GREETING=hello\n");
    let r = tm_with_docker(&p, &bin, &["deploy", "--release", "v2"]);
    r.code(20);
    assert!(
        r.all()
            .contains("docker-compose.dev.yml, not the production file"),
        "{}",
        r.all()
    );
    // v3's image lacks the batch binary: refused before anything changed.
    let text = std::fs::read_to_string(p.path().join("deploy.toml")).unwrap();
    p.write(
        "deploy.toml",
        &text.replace(
            "\nfile = \"docker-compose.dev.yml\"",
            "\nfile = \"docker-compose.prod.yml\"",
        ),
    );
    p.write("images/registry.example_shop_v3/app/other", "");
    p.release("v3", "GREETING=hello\n");
    let r = tm_with_docker(&p, &bin, &["deploy", "--release", "v3"]);
    r.code(20);
    assert!(
        r.all()
            .contains("artifact `/app/batch` is missing from image registry.example/shop:v3"),
        "{}",
        r.all()
    );
    assert_eq!(get(p.port, "/env/RELEASE").unwrap().1, "v1");
    drop(cleanup);
}

struct StopContainer<'a>(&'a Proj);

impl Drop for StopContainer<'_> {
    fn drop(&mut self) {
        stop_container(self.0);
    }
}

fn scopeguard(p: &Proj) -> StopContainer<'_> {
    StopContainer(p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_killed_in_verify_is_named_and_undone_by_rollback() {
    let Some(db) = pg("a_deploy_killed_in_verify_is_named_and_undone_by_rollback").await else {
        return;
    };
    let p = Proj::new(&db);
    p.config("[rollback]\ndatabase = \"down\"\n");
    p.release("v1", "");
    p.tm(&["deploy", "--release", "v1"]).ok();
    p.write(
        "migrations/002_orders.up.sql",
        "CREATE TABLE orders (id INTEGER PRIMARY KEY);\n",
    );
    p.write("migrations/002_orders.down.sql", "DROP TABLE orders;\n");
    p.release("v2", "");
    // A long verify window, so that the deploy is surely in it when it is killed.
    let text = std::fs::read_to_string(p.path().join("deploy.toml")).unwrap();
    p.write(
        "deploy.toml",
        &text.replace("window = \"1s\"", "window = \"60s\""),
    );
    let mut c = command(p.path());
    c.arg("-d")
        .arg(&p.url)
        .args(["deploy", "--release", "v2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = c.spawn().unwrap();
    let pid_file = p.path().join("releases/v2/app.pid");
    for _ in 0..200 {
        if pid_file.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(p.health().unwrap().1.contains("release=v2"));
    assert!(db.has_table("orders").await);

    // The next deploy names the interrupted step and refuses.
    p.write("deploy.toml", &text);
    p.release("v3", "");
    let r = p.tm(&["deploy", "--release", "v3"]);
    r.code(20);
    assert!(
        r.stderr.contains("deploy")
            && r.stderr
                .contains("of release v2 was interrupted in step verify"),
        "{}",
        r.stderr
    );
    // The killed run's report says where it stopped.
    let rep = p.tm(&["report", "--format", "json"]).json();
    assert_eq!(rep["interrupted_in"], "verify");
    // `rollback` undoes it from its journal: down script, v2 stopped, v1 again.
    let r = p.tm(&["rollback", "--format", "json"]);
    r.ok();
    let j = r.json();
    assert_eq!(j["migrations_reverted"], serde_json::json!([2]));
    assert_eq!(j["serving"], "v1");
    assert!(p.health().unwrap().1.contains("release=v1"));
    assert!(!db.has_table("orders").await);
    let rel = p.tm(&["releases", "--format", "json"]).json();
    assert_eq!(rel["releases"][1]["id"], "v2");
    assert_eq!(rel["releases"][1]["outcome"], "rolled_back");
    // And the next deploy goes ahead.
    p.tm(&["deploy", "--release", "v3"]).ok();
    assert!(p.health().unwrap().1.contains("release=v3"));
    assert!(db.has_table("orders").await);
}

/// S4: the previous release starts on the newer schema when the migrations in between are
/// expand-only; the application's own gate (`tidemark::check_database`) says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s4_the_old_release_passes_its_own_schema_gate_on_an_expand_only_schema() {
    let Some(db) =
        pg("s4_the_old_release_passes_its_own_schema_gate_on_an_expand_only_schema").await
    else {
        return;
    };
    let p = Proj::new(&db);
    p.config("[rollback]\ndatabase = \"keep\"\n");
    let gate = |v: &str| {
        format!(
            "REQUIRE_SCHEMA={v}\nDATABASE_URL={}\nMIGRATIONS_DIR={}\n",
            p.url,
            p.path().join("migrations").display()
        )
    };
    p.release("v1", &gate("1"));
    p.tm(&["deploy", "--release", "v1"]).ok();
    p.write(
        "migrations/002_add_email.up.sql",
        "ALTER TABLE users ADD COLUMN email VARCHAR(100);\n",
    );
    // v2 was built for a migration that is not there: its gate fails, it answers 503.
    p.release("v2", &gate("3"));
    let r = p.tm(&["deploy", "--release", "v2", "--format", "json"]);
    r.code(30);
    let j = r.json();
    assert_eq!(j["failure"]["status"], 503);
    assert!(
        j["failure"]["body"]
            .as_str()
            .unwrap()
            .contains("there is no migration with version 3"),
        "{}",
        j["failure"]
    );
    // v1 requires 1; the schema is at 2 (expand-only, kept): its gate passes and it serves.
    assert_eq!(versions(&history(&db).await), [1, 2]);
    let (status, body) = p.health().unwrap();
    assert_eq!((status, body.trim()), (200, "ok release=v1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_restore_policy_brings_the_pre_deploy_backup_back() {
    let Some(db) = pg("s3_restore_policy_brings_the_pre_deploy_backup_back").await else {
        return;
    };
    let p = Proj::new(&db);
    p.config("[rollback]\ndatabase = \"restore\"\n");
    p.release("v1", "");
    p.tm(&["deploy", "--release", "v1"]).ok();
    db.exec("INSERT INTO users (id, name) VALUES (1, 'ada');")
        .await;
    // Destructive, without a down script: only the backup brings `name` back.
    p.write(
        "migrations/002_drop_name.up.sql",
        "ALTER TABLE users DROP COLUMN name;\n",
    );
    p.write(
        "tidemark.toml",
        "[lint.rules]\ndrop-column = \"warning\"\nmissing-down = \"warning\"\n",
    );
    p.release("v2", "FAIL_HEALTH=1\n");
    let r = p.tm(&["deploy", "--release", "v2", "--format", "json"]);
    r.code(30);
    let j = r.json();
    let backup = j["backup_id"].as_str().unwrap();
    assert_eq!(j["backup_restored"], backup);
    assert_eq!(
        db.scalar("SELECT name FROM users WHERE id = 1")
            .await
            .as_deref(),
        Some("ada")
    );
    assert_eq!(versions(&history(&db).await), [1]);
    assert!(p.health().unwrap().1.contains("release=v1"));
    p.tm(&["check", "--require", "1"]).ok();
    // The restored journal lost what happened after the backup: it was journaled again.
    let run_id = j["run_id"].as_str().unwrap();
    let steps = db
        .rows(&format!(
            "SELECT action FROM tidemark_journal WHERE run_id = '{run_id}' ORDER BY id"
        ))
        .await;
    for step in ["deploy.migrate", "deploy.verify", "deploy.rollback"] {
        assert!(
            steps.iter().any(|r| r[0].as_deref() == Some(step)),
            "{step} missing after the restore: {steps:?}"
        );
    }
}

/// S3: a release whose 5xx rate passes the limit is rolled back, though its /health is fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_a_5xx_rate_above_the_limit_rolls_back() {
    let Some(db) = pg("s3_a_5xx_rate_above_the_limit_rolls_back").await else {
        return;
    };
    let p = Proj::new(&db);
    p.config(
        "[[verify.http]]\nurl = \"http://127.0.0.1:{port}/\"\nsamples = 20\nmax_5xx_rate = 0.1\n",
    );
    p.release("v1", "ERROR_RATE=5\n");
    p.tm(&["deploy", "--release", "v1"]).ok();
    p.release("v2", "ERROR_RATE=30\n");
    let r = p.tm(&["deploy", "--release", "v2", "--format", "json"]);
    r.code(30);
    let j = r.json();
    let f = &j["failure"];
    assert!(
        f["detail"]
            .as_str()
            .unwrap()
            .contains("of 20 answers were 5xx")
            && f["detail"].as_str().unwrap().contains("limit 10%"),
        "{f}"
    );
    assert_eq!(f["status"], 500);
    assert!(p.health().unwrap().1.contains("release=v1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s4_rollback_to_an_older_release_reverts_every_migration_since() {
    let Some(db) = pg("s4_rollback_to_an_older_release_reverts_every_migration_since").await else {
        return;
    };
    let p = Proj::new(&db);
    p.config("[rollback]\ndatabase = \"down\"\n");
    p.release("v1", "");
    p.tm(&["deploy", "--release", "v1"]).ok();
    for (i, t) in [(2, "orders"), (3, "invoices")] {
        p.write(
            &format!("migrations/00{i}_{t}.up.sql"),
            &format!("CREATE TABLE {t} (id INTEGER PRIMARY KEY);\n"),
        );
        p.write(
            &format!("migrations/00{i}_{t}.down.sql"),
            &format!("DROP TABLE {t};\n"),
        );
        p.release(&format!("v{i}"), "");
        p.tm(&["deploy", "--release", &format!("v{i}")]).ok();
    }
    assert!(p.health().unwrap().1.contains("release=v3"));
    let r = p.tm(&["rollback", "--to", "v1", "--format", "json"]);
    r.ok();
    assert_eq!(r.json()["migrations_reverted"], serde_json::json!([3, 2]));
    assert!(p.health().unwrap().1.contains("release=v1"));
    assert_eq!(versions(&history(&db).await), [1]);
    // Forward again to v3 is not a rollback: its migrations are not applied.
    let r = p.tm(&["rollback", "--to", "v3"]);
    r.code(20);
    assert!(r.all().contains("deploy it instead"), "{}", r.all());
}

/// Without --release, the id is the git commit of the release directory (here a `current`
/// symlink, Capistrano style, which the record resolves to the real directory).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_release_id_defaults_to_the_git_commit_of_the_release_directory() {
    let Some(db) = pg("the_release_id_defaults_to_the_git_commit_of_the_release_directory").await
    else {
        return;
    };
    let p = Proj::new(&db);
    p.config("");
    // `{release}` in release.dir needs --release.
    let r = p.tm(&["deploy"]);
    r.code(2);
    assert!(
        r.stderr.contains("release.dir") && r.stderr.contains("pass --release"),
        "{}",
        r.stderr
    );
    let text = std::fs::read_to_string(p.path().join("deploy.toml")).unwrap();
    p.write(
        "deploy.toml",
        &text
            .replace("dir = \"releases/{release}\"", "dir = \"current\"")
            .replace("ok release={release}", "ok release=from-git"),
    );
    p.write("builds/a/.env", "RELEASE=from-git\n");
    let git = |args: &[&str]| {
        let o = std::process::Command::new("git")
            .current_dir(p.path().join("builds/a"))
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "a"]);
    let commit = git(&["rev-parse", "--short=12", "HEAD"]);
    std::os::unix::fs::symlink(p.path().join("builds/a"), p.path().join("current")).unwrap();
    let r = p.tm(&["deploy", "--format", "json"]);
    r.ok();
    assert_eq!(r.json()["release"], commit.as_str());
    let rel = p.tm(&["releases", "--format", "json"]).json();
    assert!(
        rel["releases"][0]["dir"]
            .as_str()
            .unwrap()
            .ends_with("builds/a"),
        "{rel}"
    );
    assert!(p.health().unwrap().1.contains("release=from-git"));
}

fn app_pid(p: &Proj, release: &str) -> String {
    std::fs::read_to_string(p.path().join(format!("releases/{release}/app.pid")))
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_deploy_rolls_the_serving_release_back_to_itself_only_when_asked() {
    let Some(db) =
        pg("drill_deploy_rolls_the_serving_release_back_to_itself_only_when_asked").await
    else {
        return;
    };
    let p = Proj::new(&db);
    // Without a deploy configuration the deploy drill is a usage error naming the file.
    p.release("v1", "");
    let r = p.tm(&["up"]);
    r.ok();
    let r = p.tm(&["drill", "deploy"]);
    r.code(2);
    assert!(r.stderr.contains("deploy.toml"), "{}", r.stderr);

    p.config("");
    p.tm(&["deploy", "--release", "v1"]).ok();
    let pid = app_pid(&p, "v1");
    assert!(!pid.is_empty());

    // `drill all` works on scratch copies only: the application is not restarted.
    p.tm(&["backup", "create"]).ok();
    p.tm(&["drill", "all"]).ok();
    assert_eq!(
        app_pid(&p, "v1"),
        pid,
        "drill all leaves the running release alone"
    );

    let r = p.tm(&["drill", "deploy", "--format", "json"]);
    r.ok();
    let d = &r.json()["drills"][0];
    assert_eq!(d["drill"], "deploy");
    assert_eq!(d["ok"], true, "{d}");
    let names: Vec<&str> = d["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["preflight", "switch", "verify"]);
    let new_pid = app_pid(&p, "v1");
    assert!(
        !new_pid.is_empty() && new_pid != pid,
        "the release was stopped and started again"
    );
    assert!(p.health().unwrap().1.contains("release=v1"));
    let rel = p.tm(&["releases", "--format", "json"]).json();
    assert_eq!(
        rel["releases"].as_array().unwrap().len(),
        1,
        "no release record is written"
    );

    // The rollback path would not bring v1 back as it was (its env file changed under it):
    // the drill fails and says which check.
    p.write("releases/v1/.env", "RELEASE=edited\n");
    let r = p.tm(&["drill", "deploy"]);
    r.code(1);
    assert!(
        r.stdout.contains("does not pass its checks") && r.stdout.contains("✗ verify"),
        "{}",
        r.stdout
    );
    let h = p.tm(&["drill", "--history", "--format", "json"]).json();
    let oks: Vec<bool> = h["drills"]["deploy"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["ok"].as_bool().unwrap())
        .collect();
    assert_eq!(oks, [true, false]);
}

/// Every file below `dir`.
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flatten()
        .flat_map(|e| {
            let p = e.path();
            if p.is_dir() { files_below(&p) } else { vec![p] }
        })
        .collect()
}

/// A deploy killed with SIGKILL at the start of each step. Before anything changed (preflight,
/// backup) the next deploy goes ahead; after, it names the step and refuses, and `rollback`
/// leaves release v1 serving on v1's schema. Nothing is done twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_killed_at_each_step_is_consistent_after_rollback() {
    for step in [
        "preflight",
        "backup",
        "migrate",
        "release",
        "verify",
        "promote",
    ] {
        let Some(db) = pg("a_deploy_killed_at_each_step_is_consistent_after_rollback").await else {
            return;
        };
        let p = Proj::new(&db);
        p.config("[rollback]\ndatabase = \"down\"\n");
        p.release("v1", "");
        p.tm(&["deploy", "--release", "v1"]).ok();
        p.write(
            "migrations/002_orders.up.sql",
            "CREATE TABLE orders (id INTEGER PRIMARY KEY);\nINSERT INTO users (id, name) VALUES (2, 'v2');\n",
        );
        p.write(
            "migrations/002_orders.down.sql",
            "DELETE FROM users WHERE id = 2;\nDROP TABLE orders;\n",
        );
        p.release("v2", "");
        let mut c = command(p.path());
        c.arg("-d")
            .arg(&p.url)
            .args(["deploy", "--release", "v2"])
            .env("TIDEMARK_TEST_DEPLOY_PAUSE", step)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        // Only the files of this run: v1's run has every step's events too.
        let before = files_below(p.path());
        let mut child = c.spawn().unwrap();
        let started = format!("\"step\":\"{step}\"");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !files_below(p.path())
            .iter()
            .filter(|f| !before.contains(f))
            .any(|f| std::fs::read_to_string(f).is_ok_and(|t| t.contains(&started)))
        {
            assert!(std::time::Instant::now() < deadline, "{step} never started");
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(200));
        child.kill().unwrap(); // SIGKILL, at the start of the step
        child.wait().unwrap();

        p.release("v3", "");
        if matches!(step, "preflight" | "backup") {
            // Killed before it changed anything: the next deploy notes it and goes ahead, and
            // applies 2 once.
            p.tm(&["deploy", "--release", "v3"]).ok();
            assert!(
                p.health().is_some_and(|(_, b)| b.contains("release=v3")),
                "{step}"
            );
            let users = db.scalar("SELECT COUNT(*) FROM users").await;
            assert_eq!(users.as_deref(), Some("1"), "{step}");
            assert_eq!(versions(&history(&db).await), [1, 2], "{step}");
            continue;
        }
        let r = p.tm(&["deploy", "--release", "v3"]);
        r.code(20);
        assert!(
            r.stderr
                .contains(&format!("of release v2 was interrupted in step {step}")),
            "{step}: {}",
            r.stderr
        );
        let r = p.tm(&["rollback"]);
        assert!(
            r.code == 0,
            "{step}: rollback exit {}\n{}",
            r.code,
            r.stderr
        );
        assert!(
            p.health().is_some_and(|(_, b)| b.contains("release=v1")),
            "{step}: v1 is not serving"
        );
        assert!(!db.has_table("orders").await, "{step}: 2 still applied");
        assert_eq!(versions(&history(&db).await), [1], "{step}");
        let users = db.scalar("SELECT COUNT(*) FROM users").await;
        assert_eq!(users.as_deref(), Some("0"), "{step}: the data of 2 stayed");
        p.tm(&["check", "--require", "1"]).ok();
        // Nothing is done twice: the next deploy applies 2 once.
        p.tm(&["deploy", "--release", "v3"]).ok();
        let users = db.scalar("SELECT COUNT(*) FROM users").await;
        assert_eq!(users.as_deref(), Some("1"), "{step}");
    }
}
