//! A tiny web application for tidemark's deploy tests: it is released, broken and rolled back
//! by the tests as a real process on a loopback port.
//!
//! `tidemark-testapp --port PORT [--env-file FILE] [--pid-file FILE]`
//!
//! It reads its env file once, at start (like a container reads its environment), so a new
//! value is live only after a recreate, never after a mere "restart" that keeps the old
//! process. Keys it understands:
//!
//! - `RELEASE`: shown by `/` and `/health`;
//! - `FAIL_HEALTH=1` (env file or process environment): `/health` answers 500;
//! - `FAIL_FILE=PATH`: `/health` answers 500 while that file exists (break it at run time);
//! - `ERROR_RATE=N`: `/` answers 500 for N of every 100 requests, spread evenly;
//! - `REQUIRE_SCHEMA=latest|V` with `DATABASE_URL` and `MIGRATIONS_DIR`: the schema gate
//!   (`tidemark::check_database`) runs at start; when it fails `/health` answers 503 with the
//!   reasons.
//!
//! - `STARTUP=migrate|wait` with `DATABASE_URL` and `MIGRATIONS_DIR`: start as one replica
//!   among many ([`tidemark::Migrator::start`]): `migrate` applies what is pending (exactly one
//!   replica does; the others wait for the lock and find nothing to do), `wait` waits for the
//!   schema; either way the process refuses to start (exit 3) when the gate does not pass
//!   within `STARTUP_WAIT` seconds (default 60). Without `MIGRATIONS_DIR` the migrations
//!   compiled into the binary (`tidemark::embed_migrations!("migrations")`) are used.
//!
//! `GET /env/KEY` answers the value of KEY in the env file (404 when absent).

#![allow(clippy::print_stderr)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;

struct App {
    env: BTreeMap<String, String>,
    schema_problem: Option<String>,
    requests: AtomicU64,
}

impl App {
    fn get(&self, key: &str) -> Option<String> {
        self.env
            .get(key)
            .cloned()
            .or_else(|| std::env::var(key).ok())
    }
}

fn parse_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let l = l.strip_prefix("export ").unwrap_or(l);
            let (k, v) = l.split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            Some((k.trim().to_string(), v.to_string()))
        })
        .collect()
}

async fn health(State(app): State<Arc<App>>) -> (StatusCode, String) {
    let release = app.get("RELEASE").unwrap_or_default();
    if app.get("FAIL_HEALTH").as_deref() == Some("1") {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("unhealthy: release {release} was told to fail (FAIL_HEALTH=1)\n"),
        );
    }
    if let Some(f) = app.get("FAIL_FILE")
        && std::path::Path::new(&f).exists()
    {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("unhealthy: release {release}: {f} exists\n"),
        );
    }
    if let Some(p) = &app.schema_problem {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("schema not ready for release {release}: {p}\n"),
        );
    }
    (StatusCode::OK, format!("ok release={release}\n"))
}

async fn index(State(app): State<Arc<App>>) -> (StatusCode, String) {
    let n = app.requests.fetch_add(1, Ordering::Relaxed);
    let rate: u64 = app
        .get("ERROR_RATE")
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
        .min(100);
    let release = app.get("RELEASE").unwrap_or_default();
    // Spread evenly: request n fails when the running count of failures steps up.
    if (n + 1) * rate / 100 > n * rate / 100 {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("error (release {release})\n"),
        );
    }
    (StatusCode::OK, format!("hello from release {release}\n"))
}

async fn env_value(State(app): State<Arc<App>>, Path(key): Path<String>) -> (StatusCode, String) {
    match app.env.get(&key) {
        Some(v) => (StatusCode::OK, v.clone()),
        None => (StatusCode::NOT_FOUND, format!("{key} is not set\n")),
    }
}

struct Args {
    port: u16,
    env_file: Option<PathBuf>,
    pid_file: Option<PathBuf>,
}

fn args() -> Result<Args, String> {
    let mut port = None;
    let mut env_file = None;
    let mut pid_file = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--port" => {
                let v = value()?;
                port = Some(
                    v.parse()
                        .map_err(|_| format!("--port: `{v}` is not a port"))?,
                )
            }
            "--env-file" => env_file = Some(PathBuf::from(value()?)),
            "--pid-file" => pid_file = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(Args {
        port: port.ok_or("--port is required")?,
        env_file,
        pid_file,
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("tidemark-testapp: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let env = match &args.env_file {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(t) => parse_env(&t),
            Err(e) => {
                eprintln!("tidemark-testapp: {}: {e}", p.display());
                return std::process::ExitCode::from(1);
            }
        },
        None => BTreeMap::new(),
    };
    let mut app = App {
        env,
        schema_problem: None,
        requests: AtomicU64::new(0),
    };
    if let Some(mode) = app.get("STARTUP")
        && let Err(e) = startup(&app, &mode).await
    {
        eprintln!("tidemark-testapp: not starting: {e}");
        return std::process::ExitCode::from(3);
    }
    if let Some(req) = app.get("REQUIRE_SCHEMA") {
        app.schema_problem = schema_gate(&app, &req).await.err();
    }
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "tidemark-testapp: cannot listen on 127.0.0.1:{}: {e}",
                args.port
            );
            return std::process::ExitCode::from(1);
        }
    };
    if let Some(p) = &args.pid_file
        && let Err(e) = std::fs::write(p, format!("{}\n", std::process::id()))
    {
        eprintln!("tidemark-testapp: {}: {e}", p.display());
        return std::process::ExitCode::from(1);
    }
    let router = Router::new()
        .route("/health", get(health))
        .route("/", get(index))
        .route("/env/{key}", get(env_value))
        .with_state(Arc::new(app));
    let shutdown = async {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            term.recv().await;
        }
    };
    match axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
    {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tidemark-testapp: {e}");
            std::process::ExitCode::from(1)
        }
    }
}

/// The application's own migrations, compiled in: the binary cannot ship without them.
static EMBEDDED: tidemark::EmbeddedMigrations = tidemark::embed_migrations!("migrations");

async fn startup(app: &App, mode: &str) -> Result<(), String> {
    let mode = match mode {
        "migrate" => tidemark::Startup::Migrate,
        "wait" => tidemark::Startup::Wait,
        other => return Err(format!("STARTUP={other}: expected migrate or wait")),
    };
    let url = app.get("DATABASE_URL").ok_or("DATABASE_URL is not set")?;
    let wait: u64 = app
        .get("STARTUP_WAIT")
        .and_then(|w| w.parse().ok())
        .unwrap_or(60);
    let m = match app.get("MIGRATIONS_DIR") {
        Some(dir) => tidemark::Migrator::new(&url, dir.as_ref()),
        None => tidemark::Migrator::embedded(&url, &EMBEDDED),
    }
    .map_err(|e| e.to_string())?
    .with_backups(None);
    let r = m
        .start(
            mode,
            tidemark::gate::Require::Latest,
            std::time::Duration::from_secs(wait),
        )
        .await
        .map_err(|e| e.to_string())?;
    if r.ok {
        Ok(())
    } else {
        Err(r.reasons.join("; "))
    }
}

async fn schema_gate(app: &App, require: &str) -> Result<(), String> {
    let url = app.get("DATABASE_URL").ok_or("DATABASE_URL is not set")?;
    let dir = app
        .get("MIGRATIONS_DIR")
        .unwrap_or_else(|| "migrations".into());
    let require: tidemark::gate::Require = require.parse()?;
    let report = tidemark::check_database(&url, dir.as_ref(), require)
        .await
        .map_err(|e| e.to_string())?;
    if report.ok {
        Ok(())
    } else {
        Err(report.reasons.join("; "))
    }
}
