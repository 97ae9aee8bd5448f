//! The `tidemark` binary: a thin layer over the library. It parses flags, resolves settings,
//! renders output and maps errors to the exit codes of the contract (SPEC.md).

#![allow(clippy::print_stdout, clippy::print_stderr, clippy::exit)]

mod cli;
mod commands;
mod context;
mod output;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use tidemark::Error;

use crate::cli::{Cli, Format};
use crate::context::Context;
use crate::output::json::{ErrorBody, ErrorDoc, FailedMigration};
use crate::output::{Out, RED, paint};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // clap prints help/version to stdout with exit 0 and usage errors with exit 2.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    if cli.global.no_color
        || std::env::var_os(tidemark::env::NO_COLOR).is_some_and(|v| !v.is_empty())
    {
        anstream::ColorChoice::Never.write_global();
    }
    init_tracing(cli.global.verbose);
    let out = Out {
        format: cli.global.format,
        quiet: cli.global.quiet,
        verbose: cli.global.verbose,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    // `health` serves until Ctrl-C and stops gracefully by itself; `drill` drops its own
    // scratch databases on a signal and exits as the others do (130/143).
    let handle_signals = !matches!(
        cli.command,
        cli::Command::Health(_) | cli::Command::Drill(_)
    );
    let (result, interrupted) = runtime.block_on(async move {
        let ctx = match Context::new(cli.global.clone(), out) {
            Ok(c) => c,
            Err(e) => return (Err(e), None),
        };
        let mut work = Box::pin(commands::dispatch(cli.command, ctx));
        if !handle_signals {
            return (work.await, None);
        }
        let signal = tokio::select! {
            r = &mut work => return (r, None),
            s = interruption() => s,
        };
        // Dropping the command stops its child processes (spawned with kill_on_drop) and
        // removes its temporary files; what lives on a server is removed next.
        drop(work);
        (Ok(0), Some((signal, clean_up().await)))
    });
    let code = match (result, interrupted) {
        (_, Some(((name, code), removed))) => {
            report_interruption(&out, name, code, &removed);
            code
        }
        (Ok(code), None) => code,
        (Err(e), None) => {
            report(&out, &e);
            e.class().code()
        }
    };
    // A reader that went away (`| head`) is not a failure; a write that failed otherwise (a full
    // disk) is, even when the command itself succeeded.
    match output::stdout_error() {
        Some(kind) if kind != std::io::ErrorKind::BrokenPipe => {
            let _ = writeln!(
                std::io::stderr(),
                "error: could not write the output: {}",
                std::io::Error::from(kind)
            );
            ExitCode::from(if code == 0 { 1 } else { code as u8 })
        }
        _ => ExitCode::from(code as u8),
    }
}

/// The first SIGINT or SIGTERM: (its name, the exit code a shell gives it).
async fn interruption() -> (&'static str, i32) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        // Without handlers the default action (termination) applies; nothing to wait for.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => ("SIGINT", 130),
        _ = term.recv() => ("SIGTERM", 143),
    }
}

/// Remove what the interrupted command registered ([`tidemark::scratch`]): scratch databases
/// (shadows, verification copies, a restore's side copy) and unfinished files. Each gets a few
/// seconds; what cannot be removed now is swept by the next run and named here.
async fn clean_up() -> Vec<(String, bool)> {
    use tidemark::scratch::Leftover;
    let mut out = Vec::new();
    for l in tidemark::scratch::take_registered() {
        match l {
            Leftover::Database { server, name } => {
                let dropped = tokio::time::timeout(std::time::Duration::from_secs(15), async {
                    let mut d = tidemark::connect(&server).await?;
                    let mut r = d.drop_database(&name).await;
                    // A statement sent just before the signal (CREATE DATABASE, a RENAME) is
                    // still carried out by the server after its client went away, possibly
                    // after the first DROP: wait until no session is running one that names
                    // the database, then drop again.
                    for _ in 0..40 {
                        if !busy_with(d.as_mut(), &name).await {
                            break;
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                    }
                    if r.is_ok() {
                        r = d.drop_database(&name).await;
                    }
                    d.close().await;
                    r
                })
                .await;
                out.push((format!("database {name}"), matches!(dropped, Ok(Ok(())))));
            }
            Leftover::Path(p) => {
                let r = if p.is_dir() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
                let gone = r.is_ok() || !p.exists();
                out.push((p.display().to_string(), gone));
            }
        }
    }
    out
}

/// Is another session running a statement that names database `name`?
async fn busy_with(d: &mut dyn tidemark::Driver, name: &str) -> bool {
    let sql = match d.dialect() {
        tidemark::Dialect::Postgres => {
            "SELECT COUNT(*) FROM pg_stat_activity WHERE state = 'active' AND pid <> pg_backend_pid() AND position($1 in query) > 0"
        }
        tidemark::Dialect::MySql => {
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND LOCATE(?, COALESCE(INFO, '')) > 0"
        }
        tidemark::Dialect::Sqlite => return false,
    };
    d.query(sql, &[name.into()])
        .await
        .ok()
        .and_then(|r| r.first().and_then(|r| r.first()).and_then(|v| v.as_i64()))
        .is_some_and(|n| n > 0)
}

fn report_interruption(out: &Out, signal: &str, code: i32, removed: &[(String, bool)]) {
    let left: Vec<&str> = removed
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(w, _)| w.as_str())
        .collect();
    let gone: Vec<&str> = removed
        .iter()
        .filter(|(_, ok)| *ok)
        .map(|(w, _)| w.as_str())
        .collect();
    let mut message = format!("interrupted by {signal}; child processes stopped");
    if !gone.is_empty() {
        message.push_str(&format!("; removed {}", gone.join(", ")));
    }
    if !left.is_empty() {
        message.push_str(&format!(
            "; could not remove {} now (the next run sweeps it)",
            left.join(", ")
        ));
    }
    if out.format == Format::Json {
        out.json(&serde_json::json!({
            "error": { "code": "interrupted", "exit_code": code, "message": message, "signal": signal }
        }));
    } else {
        anstream::eprintln!("{} {message}", paint(RED.bold(), "error:"));
    }
}

fn init_tracing(verbose: bool) {
    // A database's notices ("there is no transaction in progress") are the server talking to
    // the driver, not tidemark talking to the user: shown with -v only.
    let default = if verbose {
        "tidemark=debug,sqlx=info,warn"
    } else {
        "warn,sqlx=error"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TIDEMARK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .try_init();
}

/// Print an error: one JSON document on stdout in JSON mode, a message on stderr otherwise.
fn report(out: &Out, e: &Error) {
    let class = e.class();
    if out.format == Format::Json {
        let (file, line) = match e {
            Error::BadInput { location, .. } => {
                (Some(location.path.display().to_string()), location.line)
            }
            Error::MigrationFailed { failure, .. } => {
                (Some(failure.path.display().to_string()), Some(failure.line))
            }
            _ => (None, None),
        };
        let migration = match e {
            Error::MigrationFailed {
                failure,
                applied,
                recorded_failed,
            } => Some(FailedMigration {
                version: failure.version,
                name: failure.name.clone(),
                statement_index: failure.index,
                statement: failure.statement.clone(),
                database_message: failure.db.message.clone(),
                sqlstate: failure.db.code.clone(),
                applied_before_failure: applied.clone(),
                recorded_failed: *recorded_failed,
            }),
            _ => None,
        };
        out.json(&ErrorDoc {
            error: ErrorBody {
                code: class.name(),
                exit_code: class.code(),
                message: e.to_string(),
                file,
                line,
                migration,
            },
        });
        return;
    }
    anstream::eprintln!("{} {e}", paint(RED.bold(), "error:"));
    if let Error::MigrationFailed {
        failure,
        applied,
        recorded_failed,
    } = e
    {
        match applied.as_slice() {
            [] => {}
            [one] => anstream::eprintln!("  applied 1 migration before the failure ({one})"),
            [first, .., last] => anstream::eprintln!(
                "  applied {} migrations before the failure ({first} … {last})",
                applied.len()
            ),
        }
        if *recorded_failed {
            anstream::eprintln!(
                "  migration {} ran outside a transaction and is recorded as failed: what its statements before {} did\n  \
                 stays, and a failed statement can leave something too (an invalid index). `tidemark up` refuses until\n  \
                 it is resolved; `tidemark repair` shows which of its objects exist. Or fix statement {} in the file\n  \
                 and `tidemark repair --resume {} --yes` runs the rest (not the statements before it).",
                failure.version,
                failure.index,
                failure.index,
                failure.version
            );
        } else {
            anstream::eprintln!(
                "  nothing of migration {} remains (rolled back), and it is not recorded as applied.",
                failure.version
            );
        }
    }
}
