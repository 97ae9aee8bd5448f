//! The application gate: `check`, `exec` and `health`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tidemark::gate::{self, CheckReport, Require};
use tidemark::{DatabaseUrl, Error, MigrationSet, Result};

use crate::cli::{CheckArgs, ExecArgs, HealthArgs, RequireArgs};
use crate::context::Context;
use crate::output::json::CheckDoc;
use crate::output::{GREEN, RED, paint};

fn require(args: &RequireArgs) -> Result<Require> {
    args.require
        .parse::<Require>()
        .map_err(|e| Error::Usage(format!("--require: {e}")))
}

fn options(args: &RequireArgs) -> Result<gate::Options> {
    Ok(gate::Options {
        require: require(args)?,
        allow_drift: args.allow_drift,
        strict: args.strict,
    })
}

async fn run_check(
    url: &DatabaseUrl,
    set: &MigrationSet,
    settings: &tidemark::engine::Settings,
    opts: gate::Options,
) -> Result<CheckReport> {
    let mut db = tidemark::connect(url).await?;
    let r = gate::check(db.as_mut(), set, settings, opts).await;
    db.close().await;
    r
}

pub async fn check(ctx: &Context, args: &CheckArgs) -> Result<i32> {
    let url = ctx.database_url()?;
    let opts = options(&args.require)?;
    let set = ctx.migrations()?;
    let settings = ctx.settings_with_shadow(None, &args.require.shadow)?;
    let report = run_check(&url, &set, &settings, opts).await?;
    if ctx.out.is_json() {
        ctx.out.json(&CheckDoc::new(&report));
    } else if report.ok {
        ctx.out.line(format!(
            "{} ready: at {} (requires {})",
            paint(GREEN, "✓"),
            report
                .current_version
                .map(|v| v.to_string())
                .unwrap_or_else(|| "nothing".into()),
            report
                .required_version
                .map(|v| v.to_string())
                .unwrap_or_else(|| "nothing".into())
        ));
    } else {
        for r in &report.reasons {
            anstream::eprintln!("{} {r}", paint(RED.bold(), "not ready:"));
        }
    }
    Ok(if report.ok { 0 } else { 20 })
}

pub async fn exec(ctx: &Context, args: ExecArgs) -> Result<i32> {
    let url = ctx.database_url()?;
    let opts = options(&args.require)?;
    let wait = tidemark::config::parse_duration(&args.wait, "--wait")?;
    let set = ctx.migrations()?;
    let settings = ctx.settings_with_shadow(None, &args.require.shadow)?;
    let deadline = Instant::now() + wait;
    let mut told = false;
    loop {
        let outcome = run_check(&url, &set, &settings, opts).await;
        let last = Instant::now() >= deadline;
        match outcome {
            Ok(r) if r.ok => break,
            Ok(r) if last => {
                for reason in &r.reasons {
                    anstream::eprintln!("{} {reason}", paint(RED.bold(), "not starting:"));
                }
                return Ok(20);
            }
            Err(e) if last => return Err(e),
            Ok(r) => {
                if !told {
                    ctx.out.warn(&format!(
                        "waiting up to {} for the schema: {}",
                        humantime::format_duration(wait),
                        r.reasons.join("; ")
                    ));
                    told = true;
                }
            }
            Err(e) => {
                if !told {
                    ctx.out.warn(&format!(
                        "waiting up to {} for the database: {e}",
                        humantime::format_duration(wait)
                    ));
                    told = true;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (program, rest) = args
        .command
        .split_first()
        .ok_or_else(|| Error::Usage("exec needs a command after --".into()))?;
    let mut cmd = std::process::Command::new(program);
    cmd.args(rest);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // Replaces this process: signals and the exit code are the application's own.
        let err = cmd.exec();
        Err(Error::Usage(format!(
            "could not start {}: {err}",
            program.to_string_lossy()
        )))
    }
    #[cfg(not(unix))]
    {
        let status = cmd.status().map_err(|e| {
            Error::Usage(format!(
                "could not start {}: {e}",
                program.to_string_lossy()
            ))
        })?;
        Ok(status.code().unwrap_or(1))
    }
}

/// The last result of the background check, with when it was taken.
#[derive(Clone)]
struct Probe {
    at: Instant,
    /// The report, or the class of the error that kept the check from running.
    result: std::result::Result<CheckReport, &'static str>,
}

struct HealthState {
    latest: tokio::sync::watch::Receiver<Probe>,
    /// An answer older than this is not an answer: the checker is stuck.
    stale_after: Duration,
}

/// Answers a load balancer's probe from the last background check: no connection and no
/// inspection per request, so a probe every few seconds from every balancer costs nothing.
async fn health_schema(
    axum::extract::State(st): axum::extract::State<Arc<HealthState>>,
) -> (axum::http::StatusCode, axum::Json<serde_json::Value>) {
    use axum::http::StatusCode;
    let p = st.latest.borrow().clone();
    let age = p.at.elapsed();
    if age > st.stale_after {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({
                "ok": false,
                "reasons": [format!("the last schema check is {} old; the checker is stuck (the server's log says why)", humantime::format_duration(Duration::from_secs(age.as_secs())))],
                "error": "stale",
            })),
        );
    }
    match p.result {
        Ok(r) => {
            let code = if r.ok {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            let mut doc = serde_json::to_value(CheckDoc::new(&r)).unwrap_or_default();
            doc["checked_ms_ago"] = serde_json::json!(age.as_millis() as u64);
            (code, axum::Json(doc))
        }
        // The probe is served to anyone who can reach it: the details go to the log of the
        // process that serves it, the body says only what kind of failure it was.
        Err(class) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({
                "ok": false,
                "reasons": ["the schema check could not run; the server's log says why"],
                "error": class
            })),
        ),
    }
}

/// The checker: one connection, kept and reused (opened again after a failure), the gate run
/// every `every`.
struct Checker {
    url: DatabaseUrl,
    set: MigrationSet,
    settings: tidemark::engine::Settings,
    opts: gate::Options,
    db: Option<Box<dyn tidemark::Driver>>,
}

impl Checker {
    async fn probe(&mut self) -> Probe {
        let result = async {
            if self.db.is_none() {
                self.db = Some(tidemark::connect(&self.url).await?);
            }
            let db = self.db.as_mut().expect("connected above");
            gate::check(db.as_mut(), &self.set, &self.settings, self.opts).await
        }
        .await;
        let result = result.map_err(|e| {
            tracing::warn!("schema check failed: {e}");
            // Whatever failed, the next check starts from a fresh connection.
            self.db = None;
            e.class().name()
        });
        Probe {
            at: Instant::now(),
            result,
        }
    }
}

pub async fn health(ctx: &Context, args: &HealthArgs) -> Result<i32> {
    let url = ctx.database_url()?;
    let opts = options(&args.require)?;
    let set = ctx.migrations()?;
    let settings = ctx.settings_with_shadow(None, &args.require.shadow)?;
    let every = tidemark::config::parse_duration(&args.refresh, "--refresh")?;
    if every.is_zero() {
        return Err(Error::Usage("--refresh must be more than 0s".into()));
    }
    let mut checker = Checker {
        url,
        set,
        settings,
        opts,
        db: None,
    };
    // The first answer exists before the first probe can arrive.
    let (tx, rx) = tokio::sync::watch::channel(checker.probe().await);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            if tx.send(checker.probe().await).is_err() {
                return;
            }
        }
    });
    let state = Arc::new(HealthState {
        latest: rx,
        stale_after: every * 3 + Duration::from_secs(30),
    });
    let app = axum::Router::new()
        .route("/health/schema", axum::routing::get(health_schema))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| Error::Usage(format!("--listen {}: {e}", args.listen)))?;
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| args.listen.clone());
    ctx.out.line(format!(
        "serving GET http://{addr}/health/schema, checked every {} (Ctrl-C stops)",
        humantime::format_duration(every)
    ));
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| Error::Usage(format!("health server: {e}")))?;
    Ok(0)
}
