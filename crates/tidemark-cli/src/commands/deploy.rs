//! `deploy`, `rollback`, `releases`, `report`: thin wrappers over tidemark-deploy. Progress per
//! step on a terminal (a spinner with the elapsed time), one plain line per step when piped,
//! one JSON document at the end with `--format json`.

use std::path::PathBuf;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tidemark::{Error, Result};
use tidemark_deploy::event::StepOutcome;
use tidemark_deploy::{DeployConfig, DeployOptions, Event, EventKind, Inputs, RunResult};

use crate::cli::{DeployArgs, DeployFileArgs, ReportArgs, RollbackArgs};
use crate::context::Context;
use crate::output::{BOLD, DIM, GREEN, Out, RED, YELLOW, paint};

/// `--file`, else `deploy.toml` beside tidemark.toml (`--config`), else `./deploy.toml`.
fn config_path(ctx: &Context, a: &DeployFileArgs) -> PathBuf {
    if let Some(f) = &a.file {
        return f.clone();
    }
    match &ctx.config.path {
        Some(p) => p
            .parent()
            .map(|d| d.join(tidemark_deploy::config::FILE_NAME))
            .unwrap_or_else(|| PathBuf::from(tidemark_deploy::config::FILE_NAME)),
        None => PathBuf::from(tidemark_deploy::config::FILE_NAME),
    }
}

pub(crate) fn load(ctx: &Context, a: &DeployFileArgs) -> Result<DeployConfig> {
    let p = config_path(ctx, a);
    if !p.is_file() {
        return Err(Error::Usage(format!(
            "{}: no such file (the deploy configuration; see docs/deploy.md, or pass --file)",
            p.display()
        )));
    }
    DeployConfig::load(&p)
}

pub(crate) fn inputs(ctx: &Context) -> Result<Inputs> {
    let url = ctx.database_url()?;
    let set = ctx.migrations()?;
    let settings = ctx.settings(None)?;
    let b = ctx.backup_settings(&url)?;
    Ok(Inputs {
        backup_dir: b.enabled.then_some(b.dir),
        url,
        set,
        settings,
        lint_levels: tidemark_lint::Levels::from_config(ctx.config.lint.as_ref())?,
    })
}

/// Shows each step as it runs.
struct Live {
    out: Out,
    bar: Option<ProgressBar>,
    /// JSON lines of events instead of progress.
    events: bool,
}

impl Live {
    fn say(&self, line: String) {
        if self.out.quiet || self.out.is_json() {
            return;
        }
        match &self.bar {
            Some(b) => b.suspend(|| crate::output::print_line(&line)),
            None => crate::output::print_line(&line),
        }
    }
}

impl tidemark_deploy::Listener for Live {
    fn event(&mut self, e: &Event) {
        if self.events {
            if let Ok(line) = serde_json::to_string(e) {
                crate::output::print_line(&line);
            }
            return;
        }
        if self.out.is_json() || self.out.quiet {
            return;
        }
        match &e.kind {
            EventKind::Started {
                kind,
                release,
                previous,
                dry_run,
                ..
            } => {
                let what = match kind {
                    tidemark_deploy::event::RunKind::Deploy => "deploying release",
                    tidemark_deploy::event::RunKind::Rollback => "rolling back to release",
                };
                self.say(format!(
                    "{} {}{}{}",
                    paint(BOLD, what),
                    paint(BOLD, release),
                    previous
                        .as_ref()
                        .map(|p| paint(DIM, format!(" (serving: {p})")))
                        .unwrap_or_default(),
                    if *dry_run { " — dry run" } else { "" }
                ));
            }
            EventKind::StepStarted { step } if self.out.interactive() => {
                let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_message(step.name().to_string());
                bar.enable_steady_tick(Duration::from_millis(120));
                self.bar = Some(bar);
            }
            EventKind::StepFinished {
                step,
                outcome,
                ms,
                detail,
            } => {
                if let Some(b) = self.bar.take() {
                    b.finish_and_clear();
                }
                let mark = match outcome {
                    StepOutcome::Ok => paint(GREEN, "✓"),
                    StepOutcome::Failed => paint(RED, "✗"),
                    StepOutcome::Skipped => paint(DIM, "-"),
                };
                let mut lines = detail.lines();
                let first = lines.next().unwrap_or_default();
                self.say(format!(
                    "  {mark} {:<9} {} {}",
                    step.name(),
                    paint(DIM, format!("{ms} ms")),
                    first
                ));
                for l in lines {
                    self.say(format!("                {l}"));
                }
            }
            EventKind::Plan {
                action,
                reason,
                env_keys_changed,
                migrations,
            } => {
                self.say(format!("    plan: {} ({reason})", paint(BOLD, action)));
                if !env_keys_changed.is_empty() {
                    self.say(format!(
                        "    env keys changed: {}",
                        env_keys_changed.join(", ")
                    ));
                }
                for m in migrations {
                    self.say(format!(
                        "    migration {} {} [{}]",
                        m.version, m.name, m.class
                    ));
                }
            }
            EventKind::Warning { text } => {
                let w = text.clone();
                match &self.bar {
                    Some(b) => b.suspend(|| self.out.warn(&w)),
                    None => self.out.warn(&w),
                }
            }
            EventKind::CheckFailed { check, detail, .. } => {
                self.say(format!("    {} {check}: {detail}", paint(YELLOW, "!")));
            }
            EventKind::Note { text } => self.say(format!("    {}", paint(DIM, text))),
            EventKind::MigrationsReverted { versions } => self.say(format!(
                "    reverted migrations {}",
                versions
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            EventKind::BackupRestored { id } => self.say(format!("    restored backup {id}")),
            EventKind::Serving { release } => self.say(format!(
                "    {} release {release} serves",
                paint(GREEN, "●")
            )),
            EventKind::LeftToDo { text } => {
                self.say(format!("    {} {text}", paint(RED.bold(), "left to do:")))
            }
            _ => {}
        }
    }
}

fn conclude(ctx: &Context, r: &RunResult, events: bool) -> i32 {
    if events {
        return r.exit_code;
    }
    if ctx.out.is_json() {
        ctx.out.json(&r.report);
        return r.exit_code;
    }
    let rep = &r.report;
    let verdict = match (r.exit_code, rep.dry_run) {
        (_, true) if r.exit_code == 0 => paint(GREEN, "dry run: preflight passed, nothing changed"),
        (0, _) => paint(
            GREEN.bold(),
            format!("{} serves", rep.serving.as_deref().unwrap_or(&rep.release)),
        ),
        (30, _) => paint(
            YELLOW.bold(),
            format!(
                "release {} failed verification and was rolled back{}",
                rep.release,
                rep.recovery_ms
                    .map(|ms| format!(
                        " ({:.1} s from the first failed check to the previous release serving)",
                        ms as f64 / 1000.0
                    ))
                    .unwrap_or_default()
            ),
        ),
        (31, _) => paint(
            RED.bold(),
            "the rollback did not complete: a person must act (see the report)",
        ),
        (c, _) => paint(
            RED.bold(),
            format!("stopped (exit {c}): nothing was released"),
        ),
    };
    ctx.out.line(verdict);
    if let Some(d) = &r.run_dir {
        ctx.out.line(paint(
            DIM,
            format!("report: {}", d.join("report.md").display()),
        ));
    }
    r.exit_code
}

pub async fn deploy(ctx: &Context, a: &DeployArgs) -> Result<i32> {
    let cfg = load(ctx, &a.file)?;
    let inputs = inputs(ctx)?;
    let mut live = Live {
        out: ctx.out,
        bar: None,
        events: a.events,
    };
    let r = tidemark_deploy::deploy(
        &cfg,
        &inputs,
        &DeployOptions {
            release: a.release.clone(),
            dry_run: a.dry_run,
        },
        &mut live,
    )
    .await?;
    if let Some(b) = live.bar.take() {
        b.finish_and_clear();
    }
    Ok(conclude(ctx, &r, a.events))
}

pub async fn rollback(ctx: &Context, a: &RollbackArgs) -> Result<i32> {
    let cfg = load(ctx, &a.file)?;
    let inputs = inputs(ctx)?;
    let mut live = Live {
        out: ctx.out,
        bar: None,
        events: a.events,
    };
    let r = tidemark_deploy::rollback(&cfg, &inputs, a.to.as_deref(), &mut live).await?;
    if let Some(b) = live.bar.take() {
        b.finish_and_clear();
    }
    Ok(conclude(ctx, &r, a.events))
}

fn short(s: Option<&str>, n: usize) -> String {
    s.map(|s| s[..s.len().min(n)].to_string())
        .unwrap_or_else(|| "-".into())
}

pub async fn releases(ctx: &Context, a: &DeployFileArgs) -> Result<i32> {
    let cfg = load(ctx, a)?;
    let url = ctx.database_url().ok();
    let (list, db_note) = tidemark_deploy::releases(&cfg, url.as_ref()).await?;
    if let Some(n) = &db_note {
        ctx.out.warn(&format!(
            "the database's release records could not be read, listing the local ones: {n}"
        ));
    }
    if ctx.out.is_json() {
        ctx.out.json(&serde_json::json!({
            "app": cfg.app,
            "releases": list,
            "database_error": db_note,
        }));
        return Ok(0);
    }
    if list.is_empty() {
        ctx.out.line(format!("no release of {} yet", cfg.app));
        return Ok(0);
    }
    ctx.out.line(paint(
        BOLD,
        format!(
            "  {:<20} {:<24} {:>6} {:<12} {:<10} {:<16} {:<20}",
            "release", "deployed", "head", "fingerprint", "env", "outcome", "backup"
        ),
    ));
    for l in &list {
        let r = &l.release;
        ctx.out.line(format!(
            "{} {:<20} {:<24} {:>6} {:<12} {:<10} {:<16} {:<20}{}",
            if l.serving {
                paint(GREEN, "●")
            } else {
                " ".into()
            },
            r.id,
            r.started_at.replace('T', " ").trim_end_matches('Z'),
            r.migration_head
                .map(|h| h.to_string())
                .unwrap_or_else(|| "-".into()),
            short(r.fingerprint.as_deref(), 12),
            short(r.env_sha256.as_deref(), 10),
            r.outcome.name(),
            r.backup_id.as_deref().unwrap_or("-"),
            if l.serving {
                paint(GREEN, " serving")
            } else {
                String::new()
            }
        ));
    }
    Ok(0)
}

pub fn report(ctx: &Context, a: &ReportArgs) -> Result<i32> {
    let cfg = load(ctx, &a.file)?;
    let r = tidemark_deploy::report(&cfg, a.deploy.as_deref())?;
    if ctx.out.is_json() {
        ctx.out.json(&r);
    } else if a.html {
        anstream::print!("{}", r.html());
    } else {
        anstream::print!("{}", r.markdown());
    }
    Ok(0)
}
