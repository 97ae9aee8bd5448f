//! The report of a deploy or rollback: a pure function of its journal (the events), rendered
//! as JSON, Markdown and a self-contained HTML page with the timeline (time · event), what
//! failed (with the kept response body), what tidemark did, step durations, the backup id,
//! the migrations applied and reverted, and the env keys that changed (never values).

use std::path::Path;

use serde::Serialize;
use tidemark::{Error, Result};

use crate::event::{Event, EventKind, PlannedMigration, RunKind, Step, StepOutcome};
use crate::state::Outcome;

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub step: Step,
    pub started_at: String,
    pub ms: Option<u64>,
    /// `None`: the step never ended (the run was killed in it).
    pub outcome: Option<StepOutcome>,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimelineEntry {
    pub at: String,
    pub t_ms: u64,
    pub event: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct FailureReport {
    pub check: String,
    pub detail: String,
    pub status: Option<u16>,
    /// The body of the first failing response (at most 4 KiB).
    pub body: Option<String>,
    pub at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlanReport {
    pub action: String,
    pub reason: String,
    pub migrations: Vec<PlannedMigration>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub app: String,
    pub run_id: String,
    pub kind: Option<RunKind>,
    pub release: String,
    pub previous: Option<String>,
    pub actor: String,
    pub dry_run: bool,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub outcome: Option<Outcome>,
    pub exit_code: Option<i32>,
    /// The step the run was in when it stopped, if it never finished (killed).
    pub interrupted_in: Option<Step>,
    pub plan: Option<PlanReport>,
    pub steps: Vec<StepReport>,
    pub timeline: Vec<TimelineEntry>,
    pub failure: Option<FailureReport>,
    /// What tidemark did, in order.
    pub actions: Vec<String>,
    pub backup_id: Option<String>,
    pub migrations_applied: Vec<i64>,
    pub migrations_reverted: Vec<i64>,
    pub backup_restored: Option<String>,
    pub env_keys_changed: Vec<String>,
    pub serving: Option<String>,
    /// Milliseconds from the first failed check to the previous release serving again.
    pub recovery_ms: Option<u64>,
    pub warnings: Vec<String>,
    pub left_to_do: Vec<String>,
}

fn list(v: &[i64]) -> String {
    v.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
}

impl Report {
    pub fn from_events(app: &str, events: &[Event]) -> Report {
        let mut r = Report {
            app: app.to_string(),
            ..Report::default()
        };
        let mut failed_at: Option<u64> = None;
        for e in events {
            let line: Option<String> = match &e.kind {
                EventKind::Started {
                    run_id,
                    kind,
                    app,
                    release,
                    previous,
                    actor,
                    dry_run,
                } => {
                    r.app = app.clone();
                    r.run_id = run_id.clone();
                    r.kind = Some(*kind);
                    r.release = release.clone();
                    r.previous = previous.clone();
                    r.actor = actor.clone();
                    r.dry_run = *dry_run;
                    r.started_at = e.at.clone();
                    Some(match kind {
                        RunKind::Deploy => format!(
                            "deploy of release {release} started by {actor}{}",
                            previous
                                .as_ref()
                                .map(|p| format!(" (serving: {p})"))
                                .unwrap_or_default()
                        ),
                        RunKind::Rollback => format!(
                            "rollback to release {release} started by {actor}{}",
                            previous
                                .as_ref()
                                .map(|p| format!(" (serving: {p})"))
                                .unwrap_or_default()
                        ),
                    })
                }
                EventKind::StepStarted { step } => {
                    r.steps.push(StepReport {
                        step: *step,
                        started_at: e.at.clone(),
                        ms: None,
                        outcome: None,
                        detail: String::new(),
                    });
                    Some(format!("{} started", step.name()))
                }
                EventKind::StepFinished {
                    step,
                    outcome,
                    ms,
                    detail,
                } => {
                    if let Some(s) = r.steps.iter_mut().rev().find(|s| s.step == *step) {
                        s.ms = Some(*ms);
                        s.outcome = Some(*outcome);
                        s.detail = detail.clone();
                    }
                    let what = match outcome {
                        StepOutcome::Ok => "done",
                        StepOutcome::Failed => "FAILED",
                        StepOutcome::Skipped => "skipped",
                    };
                    Some(if detail.is_empty() {
                        format!("{} {what} ({ms} ms)", step.name())
                    } else {
                        format!("{} {what} ({ms} ms): {detail}", step.name())
                    })
                }
                EventKind::Note { text } => {
                    r.actions.push(text.clone());
                    Some(text.clone())
                }
                EventKind::Warning { text } => {
                    r.warnings.push(text.clone());
                    Some(format!("warning: {text}"))
                }
                EventKind::Plan {
                    action,
                    reason,
                    env_keys_changed,
                    migrations,
                } => {
                    r.env_keys_changed = env_keys_changed.clone();
                    r.plan = Some(PlanReport {
                        action: action.clone(),
                        reason: reason.clone(),
                        migrations: migrations.clone(),
                    });
                    let migs = if migrations.is_empty() {
                        "no migrations".to_string()
                    } else {
                        format!(
                            "migrations {}",
                            migrations
                                .iter()
                                .map(|m| format!("{} ({})", m.version, m.class))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    };
                    Some(format!("plan: {action} ({reason}); {migs}"))
                }
                EventKind::BackupTaken { id } => {
                    r.backup_id = Some(id.clone());
                    r.actions.push(format!("took backup {id}"));
                    Some(format!("backup {id} taken"))
                }
                EventKind::MigrationsApplied { versions, head, .. } => {
                    r.migrations_applied = versions.clone();
                    r.actions
                        .push(format!("applied migrations {}", list(versions)));
                    Some(format!(
                        "migrations {} applied (head {})",
                        list(versions),
                        head.map(|h| h.to_string()).unwrap_or_else(|| "none".into())
                    ))
                }
                EventKind::MigrationsReverted { versions } => {
                    r.migrations_reverted = versions.clone();
                    r.actions.push(format!(
                        "reverted migrations {} with their down scripts",
                        list(versions)
                    ));
                    Some(format!(
                        "migrations {} reverted (down scripts)",
                        list(versions)
                    ))
                }
                EventKind::BackupRestored { id } => {
                    r.backup_restored = Some(id.clone());
                    r.actions.push(format!("restored backup {id}"));
                    Some(format!("backup {id} restored"))
                }
                EventKind::CheckFailed {
                    check,
                    detail,
                    status,
                    body,
                } => {
                    failed_at.get_or_insert(e.t_ms);
                    if r.failure.is_none() {
                        r.failure = Some(FailureReport {
                            check: check.clone(),
                            detail: detail.clone(),
                            status: *status,
                            body: body.clone(),
                            at: e.at.clone(),
                        });
                    }
                    Some(format!("check failed: {check}: {detail}"))
                }
                EventKind::Serving { release } => {
                    r.serving = Some(release.clone());
                    if let Some(f) = failed_at
                        && r.recovery_ms.is_none()
                    {
                        r.recovery_ms = Some(e.t_ms.saturating_sub(f));
                    }
                    Some(format!("release {release} serves"))
                }
                EventKind::LeftToDo { text } => {
                    r.left_to_do.push(text.clone());
                    Some(format!("LEFT TO DO: {text}"))
                }
                EventKind::Finished { outcome, exit_code } => {
                    r.outcome = Some(*outcome);
                    r.exit_code = Some(*exit_code);
                    r.finished_at = Some(e.at.clone());
                    Some(format!(
                        "finished: {} (exit {exit_code})",
                        outcome_text(*outcome, r.dry_run)
                    ))
                }
            };
            if let Some(event) = line {
                r.timeline.push(TimelineEntry {
                    at: e.at.clone(),
                    t_ms: e.t_ms,
                    event,
                });
            }
        }
        if r.outcome.is_none() {
            r.interrupted_in = r
                .steps
                .iter()
                .rev()
                .find(|s| s.outcome.is_none())
                .map(|s| s.step);
        }
        r
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    pub fn write(&self, dir: &Path) -> Result<()> {
        for (name, text) in [
            ("report.json", self.json()),
            ("report.md", self.markdown()),
            ("report.html", self.html()),
        ] {
            let p = dir.join(name);
            std::fs::write(&p, text).map_err(|e| Error::io(&p, e))?;
        }
        Ok(())
    }

    fn title(&self) -> String {
        match self.kind {
            Some(RunKind::Rollback) => {
                format!("Rollback report: {} → release {}", self.app, self.release)
            }
            _ => format!("Deploy report: {} release {}", self.app, self.release),
        }
    }

    fn summary(&self) -> Vec<(String, String)> {
        let mut rows = vec![
            ("Run".to_string(), self.run_id.clone()),
            ("Started".into(), self.started_at.clone()),
            (
                "Finished".into(),
                self.finished_at
                    .clone()
                    .unwrap_or_else(|| "— (interrupted)".into()),
            ),
            (
                "Outcome".into(),
                match (self.outcome, self.exit_code) {
                    (Some(o), Some(c)) => format!("{} (exit {c})", outcome_text(o, self.dry_run)),
                    _ => format!(
                        "interrupted in step {}",
                        self.interrupted_in.map(|s| s.name()).unwrap_or("?")
                    ),
                },
            ),
            ("By".into(), self.actor.clone()),
        ];
        if let Some(p) = &self.previous {
            rows.push(("Serving before".into(), p.clone()));
        }
        if let Some(s) = &self.serving {
            rows.push(("Serving now".into(), s.clone()));
        }
        if let Some(p) = &self.plan {
            rows.push((
                "Release action".into(),
                format!("{} — {}", p.action, p.reason),
            ));
        }
        rows.push((
            "Backup".into(),
            self.backup_id.clone().unwrap_or_else(|| "none".into()),
        ));
        rows.push((
            "Migrations applied".into(),
            if self.migrations_applied.is_empty() {
                "none".into()
            } else {
                list(&self.migrations_applied)
            },
        ));
        rows.push((
            "Migrations reverted".into(),
            if self.migrations_reverted.is_empty() {
                "none".into()
            } else {
                list(&self.migrations_reverted)
            },
        ));
        if let Some(b) = &self.backup_restored {
            rows.push(("Backup restored".into(), b.clone()));
        }
        rows.push((
            "Env keys changed".into(),
            if self.env_keys_changed.is_empty() {
                "none".into()
            } else {
                self.env_keys_changed.join(", ")
            },
        ));
        if let Some(ms) = self.recovery_ms {
            rows.push((
                "First failed check → previous release serving".into(),
                format!("{:.1} s", ms as f64 / 1000.0),
            ));
        }
        rows
    }

    pub fn markdown(&self) -> String {
        let mut s = format!("# {}\n\n", self.title());
        s.push_str("| | |\n|---|---|\n");
        for (k, v) in self.summary() {
            s.push_str(&format!("| **{k}** | {} |\n", md_cell(&v)));
        }
        if let Some(f) = &self.failure {
            s.push_str("\n## What failed\n\n");
            s.push_str(&format!(
                "{} at {}: {}\n",
                f.check,
                time_of(&f.at),
                f.detail
            ));
            if let Some(b) = &f.body {
                s.push_str("\nResponse body (first failing response):\n\n```\n");
                s.push_str(b.trim_end());
                s.push_str("\n```\n");
            }
        }
        if !self.actions.is_empty() {
            s.push_str("\n## What tidemark did\n\n");
            for a in &self.actions {
                s.push_str(&format!("- {a}\n"));
            }
        }
        if !self.left_to_do.is_empty() {
            s.push_str("\n## Left to do (a person must act)\n\n");
            for a in &self.left_to_do {
                s.push_str(&format!("- {a}\n"));
            }
        }
        if let Some(p) = &self.plan
            && !p.migrations.is_empty()
        {
            s.push_str(
                "\n## Migrations in this deploy\n\n| version | name | class |\n|---|---|---|\n",
            );
            for m in &p.migrations {
                s.push_str(&format!(
                    "| {} | {} | {} |\n",
                    m.version,
                    md_cell(&m.name),
                    m.class
                ));
            }
        }
        s.push_str("\n## Steps\n\n| step | outcome | duration | detail |\n|---|---|---|---|\n");
        for st in &self.steps {
            s.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                st.step.name(),
                st.outcome.map(step_outcome).unwrap_or("interrupted"),
                st.ms
                    .map(|m| format!("{m} ms"))
                    .unwrap_or_else(|| "—".into()),
                md_cell(&st.detail)
            ));
        }
        s.push_str("\n## Timeline\n\n| time | event |\n|---|---|\n");
        for t in &self.timeline {
            s.push_str(&format!("| {} | {} |\n", time_of(&t.at), md_cell(&t.event)));
        }
        if !self.warnings.is_empty() {
            s.push_str("\n## Warnings\n\n");
            for w in &self.warnings {
                s.push_str(&format!("- {w}\n"));
            }
        }
        s
    }

    pub fn html(&self) -> String {
        let mut s = String::new();
        s.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>");
        s.push_str(&esc(&self.title()));
        s.push_str("</title>\n<style>\n");
        s.push_str(CSS);
        s.push_str("</style></head><body>\n");
        let class = match self.outcome {
            Some(Outcome::Promoted) => "ok",
            Some(Outcome::RolledBack) => "warn",
            _ => "bad",
        };
        s.push_str(&format!(
            "<h1>{}</h1>\n<p class=\"badge {class}\">{}</p>\n<table class=\"summary\">\n",
            esc(&self.title()),
            esc(&match (self.outcome, self.exit_code) {
                (Some(o), Some(c)) => format!("{} · exit {c}", outcome_text(o, self.dry_run)),
                _ => "interrupted".to_string(),
            })
        ));
        for (k, v) in self.summary() {
            s.push_str(&format!(
                "<tr><th>{}</th><td>{}</td></tr>\n",
                esc(&k),
                esc(&v)
            ));
        }
        s.push_str("</table>\n");
        if let Some(f) = &self.failure {
            s.push_str("<h2>What failed</h2>\n");
            s.push_str(&format!(
                "<p><b>{}</b> at {}: {}</p>\n",
                esc(&f.check),
                esc(time_of(&f.at)),
                esc(&f.detail)
            ));
            if let Some(b) = &f.body {
                s.push_str(&format!(
                    "<p>Response body (first failing response):</p>\n<pre>{}</pre>\n",
                    esc(b.trim_end())
                ));
            }
        }
        if !self.actions.is_empty() {
            s.push_str("<h2>What tidemark did</h2>\n<ol>\n");
            for a in &self.actions {
                s.push_str(&format!("<li>{}</li>\n", esc(a)));
            }
            s.push_str("</ol>\n");
        }
        if !self.left_to_do.is_empty() {
            s.push_str("<h2 class=\"bad\">Left to do (a person must act)</h2>\n<ul>\n");
            for a in &self.left_to_do {
                s.push_str(&format!("<li>{}</li>\n", esc(a)));
            }
            s.push_str("</ul>\n");
        }
        s.push_str("<h2>Steps</h2>\n<table><tr><th>step</th><th>outcome</th><th>duration</th><th>detail</th></tr>\n");
        let total: u64 = self.steps.iter().filter_map(|s| s.ms).sum::<u64>().max(1);
        for st in &self.steps {
            let o = st.outcome.map(step_outcome).unwrap_or("interrupted");
            let ms = st.ms.unwrap_or(0);
            let width = (ms * 100 / total).max(1);
            s.push_str(&format!(
                "<tr class=\"{o}\"><td>{}</td><td>{o}</td><td class=\"dur\"><span class=\"bar\" style=\"width:{width}px\"></span> {}</td><td>{}</td></tr>\n",
                st.step.name(),
                st.ms.map(|m| format!("{m} ms")).unwrap_or_else(|| "—".into()),
                esc(&st.detail)
            ));
        }
        s.push_str("</table>\n<h2>Timeline</h2>\n<table class=\"timeline\"><tr><th>time</th><th>event</th></tr>\n");
        for t in &self.timeline {
            let class = if t.event.contains("FAILED")
                || t.event.starts_with("check failed")
                || t.event.starts_with("LEFT TO DO")
            {
                " class=\"failed\""
            } else {
                ""
            };
            s.push_str(&format!(
                "<tr{class}><td class=\"t\">{}</td><td>{}</td></tr>\n",
                esc(time_of(&t.at)),
                esc(&t.event)
            ));
        }
        s.push_str("</table>\n");
        if !self.warnings.is_empty() {
            s.push_str("<h2>Warnings</h2>\n<ul>\n");
            for w in &self.warnings {
                s.push_str(&format!("<li>{}</li>\n", esc(w)));
            }
            s.push_str("</ul>\n");
        }
        s.push_str("</body></html>\n");
        s
    }
}

const CSS: &str = "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}\
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #eee;vertical-align:top}\
.summary th{width:16rem;color:#555}.t{white-space:nowrap;font-variant-numeric:tabular-nums;color:#555}\
pre{background:#f6f6f6;padding:.75rem;overflow:auto;border-left:3px solid #c33}\
.badge{display:inline-block;padding:.2rem .6rem;border-radius:.3rem;font-weight:600}\
.ok{background:#e3f6e3}.warn{background:#fff3cd}.bad{background:#f8d7da}\
tr.failed td{background:#fdecee}tr.ok td:nth-child(2){color:#1a7f37}tr.interrupted td{background:#fff3cd}\
.dur{white-space:nowrap}.bar{display:inline-block;height:.6rem;background:#69c;vertical-align:middle}\n";

fn outcome_text(o: Outcome, dry_run: bool) -> &'static str {
    if dry_run {
        return "dry run";
    }
    match o {
        Outcome::Promoted => "promoted",
        Outcome::RolledBack => "rolled back",
        Outcome::RollbackFailed => "ROLLBACK FAILED",
        Outcome::Failed => "failed (nothing released)",
    }
}

fn step_outcome(o: StepOutcome) -> &'static str {
    match o {
        StepOutcome::Ok => "ok",
        StepOutcome::Failed => "failed",
        StepOutcome::Skipped => "skipped",
    }
}

/// `2026-11-23T18:46:26.780Z` → `18:46:26.780`.
fn time_of(at: &str) -> &str {
    at.split_once('T')
        .map(|(_, t)| t.trim_end_matches('Z'))
        .unwrap_or(at)
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', "<br>")
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(t_ms: u64, kind: EventKind) -> Event {
        Event {
            at: format!("2026-12-01T10:00:{:06.3}Z", t_ms as f64 / 1000.0),
            t_ms,
            kind,
        }
    }

    #[test]
    fn the_report_is_a_function_of_the_events() {
        let events = vec![
            ev(
                0,
                EventKind::Started {
                    run_id: "r1".into(),
                    kind: RunKind::Deploy,
                    app: "shop".into(),
                    release: "v2".into(),
                    previous: Some("v1".into()),
                    actor: "ops@host".into(),
                    dry_run: false,
                },
            ),
            ev(1, EventKind::StepStarted { step: Step::Verify }),
            ev(
                1500,
                EventKind::CheckFailed {
                    check: "GET http://x/health".into(),
                    detail: "status 500, expected 200".into(),
                    status: Some(500),
                    body: Some("<b>boom</b>".into()),
                },
            ),
            ev(
                2000,
                EventKind::StepFinished {
                    step: Step::Verify,
                    outcome: StepOutcome::Failed,
                    ms: 1999,
                    detail: "x".into(),
                },
            ),
            ev(2100, EventKind::MigrationsReverted { versions: vec![7] }),
            ev(
                2400,
                EventKind::Serving {
                    release: "v1".into(),
                },
            ),
            ev(
                2500,
                EventKind::Finished {
                    outcome: Outcome::RolledBack,
                    exit_code: 30,
                },
            ),
        ];
        let r = Report::from_events("shop", &events);
        assert_eq!(r.recovery_ms, Some(900));
        assert_eq!(r.migrations_reverted, [7]);
        assert_eq!(r.failure.as_ref().unwrap().status, Some(500));
        assert_eq!(r.steps[0].ms, Some(1999));
        assert_eq!(r.interrupted_in, None);
        assert_eq!(r.timeline.len(), events.len());
        let md = r.markdown();
        assert!(
            md.contains(
                "| 10:00:01.500 | check failed: GET http://x/health: status 500, expected 200 |"
            ),
            "{md}"
        );
        let html = r.html();
        assert!(html.contains("&lt;b&gt;boom&lt;/b&gt;") && !html.contains("<b>boom"));
        // Killed in verify: no end, and the report says where it stopped.
        let r = Report::from_events("shop", &events[..3]);
        assert_eq!(r.interrupted_in, Some(Step::Verify));
        assert!(r.markdown().contains("interrupted in step verify"));
    }
}
