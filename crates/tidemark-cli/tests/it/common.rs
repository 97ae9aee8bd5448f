#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use tidemark::Dialect;
use tidemark_test::{Migrations, TestDb};

pub const BIN: &str = env!("CARGO_BIN_EXE_tidemark");

#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "expected exit {code}\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// A `tidemark` command with no inherited database settings, run in `cwd`.
pub fn command(cwd: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(cwd)
        .env_remove("TIDEMARK_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .env_remove("TIDEMARK_DIR")
        // Never the user's data directory: backups of a test stay in its own directory.
        .env("TIDEMARK_BACKUP_DIR", cwd.join(".tidemark-test-backups"))
        // Nor the user's cache: a test's replays start cold unless the test itself warms them.
        .env("TIDEMARK_CACHE_DIR", cwd.join(".tidemark-test-cache"))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    c
}

/// `tidemark -d DB --dir MIGRATIONS ARGS…`
pub fn tm_cmd(db: &TestDb, m: &Migrations, args: &[&str]) -> Command {
    let mut c = command(m.path().parent().unwrap_or(m.path()));
    // Backups are on, as for users; they go beside the test's migrations (a dot-directory,
    // which the migration loader skips) and vanish with them.
    c.env("TIDEMARK_BACKUP_DIR", m.path().join(".backups"));
    c.env("TIDEMARK_CACHE_DIR", m.path().join(".cache"));
    c.arg("-d")
        .arg(db.url_string())
        .arg("--dir")
        .arg(m.path())
        .args(args);
    c
}

pub fn tm(db: &TestDb, m: &Migrations, args: &[&str]) -> Run {
    tm_cmd(db, m, args).output().expect("run tidemark").into()
}

pub fn spawn(db: &TestDb, m: &Migrations, args: &[&str]) -> Child {
    tm_cmd(db, m, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tidemark")
}

/// `n` small migrations, each creating table `tN` (portable SQL), with down scripts.
pub fn numbered(n: usize) -> Migrations {
    let m = Migrations::new(&[]);
    for i in 1..=n {
        add_table_migration(&m, i);
    }
    m
}

pub fn add_table_migration(m: &Migrations, i: usize) {
    m.write(
        &format!("{i:03}_create_t{i}.up.sql"),
        &format!("CREATE TABLE t{i} (id INTEGER PRIMARY KEY, name VARCHAR(50));\n"),
    );
    m.write(
        &format!("{i:03}_create_t{i}.down.sql"),
        &format!("DROP TABLE t{i};\n"),
    );
}

/// Versions recorded in history with their states.
pub async fn history(db: &TestDb) -> Vec<(i64, String)> {
    db.rows("SELECT version, state FROM tidemark_history ORDER BY version")
        .await
        .into_iter()
        .map(|r| {
            (
                r[0].as_deref().unwrap().parse().unwrap(),
                r[1].clone().unwrap(),
            )
        })
        .collect()
}

pub fn versions(h: &[(i64, String)]) -> Vec<i64> {
    h.iter().map(|(v, _)| *v).collect()
}

/// A statement that takes a long time on each database (for kill and lock tests).
pub fn slow_statement(d: Dialect) -> &'static str {
    match d {
        Dialect::Postgres => "SELECT pg_sleep(60)",
        Dialect::MySql => "SELECT SLEEP(60)",
        Dialect::Sqlite => {
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5000000000) SELECT count(*) FROM c"
        }
    }
}

/// Wait until some process holds the migration lock of `db`.
pub async fn wait_for_lock_held(db: &TestDb) {
    let started = std::time::Instant::now();
    loop {
        let mut d = db.connect().await;
        match d.lock(std::time::Duration::ZERO, &mut ()).await {
            Err(tidemark::Error::LockTimeout { .. }) => {
                d.close().await;
                return;
            }
            Ok(g) => {
                g.release().await.unwrap();
            }
            Err(e) => panic!("probing the lock: {e}"),
        }
        d.close().await;
        assert!(
            started.elapsed().as_secs() < 30,
            "nobody took the lock within 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A command line of the tidemark image (the repository's `Dockerfile`: its ENTRYPOINT and ENV
/// before `args`) is accepted by the real `tidemark`.
pub fn image_command_line_parses(args: &[String], what: &str) {
    let dockerfile =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Dockerfile"))
            .expect("Dockerfile");
    let last = |prefix: &str| {
        dockerfile
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("Dockerfile has no {prefix}"))
            .trim()
            .to_string()
    };
    let entrypoint: Vec<String> = serde_json::from_str(&last("ENTRYPOINT ")).expect("ENTRYPOINT");
    assert_eq!(entrypoint[0], "tidemark");
    let env: Vec<(String, String)> = last("ENV ")
        .split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("ENV K=V");
            (k.to_string(), v.to_string())
        })
        .collect();
    let mut argv = entrypoint[1..].to_vec();
    argv.extend_from_slice(args);
    command_line_stops_at(&argv, &env, "/migrations", what);
}

/// `tidemark ARGS` (with `env`) is accepted: it runs here against a scratch SQLite file and
/// stops at the migrations directory `dir`, which does not exist here, without doing anything;
/// a usage error (an unknown flag, a flag given twice) shows as one. (`--help` would hide it.)
pub fn command_line_stops_at(args: &[String], env: &[(String, String)], dir: &str, what: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = command(tmp.path());
    c.envs(env.iter().map(|(k, v)| (k, v)));
    c.env(
        "TIDEMARK_DATABASE_URL",
        format!("sqlite://{}/db.sqlite", tmp.path().display()),
    );
    let r: Run = c.args(args).output().unwrap().into();
    let line = args.join(" ");
    assert!(
        !r.stderr.contains("Usage:") && !r.stderr.contains("unexpected argument"),
        "{what}: `tidemark {line}` is refused: {}",
        r.stderr
    );
    assert!(
        r.stderr.contains(dir),
        "{what}: `tidemark {line}` stopped elsewhere than at the missing {dir}: {}",
        r.stderr
    );
}

/// A repair or import plan's steps (`--format json`) as (version, action).
pub fn plan_steps(plan: &serde_json::Value) -> Vec<(i64, String)> {
    plan["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("no steps: {plan}"))
        .iter()
        .map(|s| {
            (
                s["version"].as_i64().unwrap(),
                s["action"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}
