//! Typed events of a deploy or rollback run. Each one is appended to the run's `events.jsonl`
//! as it happens (so a killed run leaves its journal), step starts and ends also go to the
//! database's `tidemark_journal` with the run id, and the report is a pure function of them.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tidemark::history::{self, JournalWrite};
use tidemark::{Driver, Error, Result};

use crate::state::{Outcome, now};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Preflight,
    Backup,
    Migrate,
    Release,
    Verify,
    Promote,
    Rollback,
    Report,
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::Preflight => "preflight",
            Step::Backup => "backup",
            Step::Migrate => "migrate",
            Step::Release => "release",
            Step::Verify => "verify",
            Step::Promote => "promote",
            Step::Rollback => "rollback",
            Step::Report => "report",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepOutcome {
    Ok,
    Failed,
    Skipped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    Deploy,
    Rollback,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedMigration {
    pub version: i64,
    pub name: String,
    /// `expand-only`, `contract` or `destructive`.
    pub class: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    Started {
        run_id: String,
        kind: RunKind,
        app: String,
        release: String,
        previous: Option<String>,
        actor: String,
        dry_run: bool,
    },
    StepStarted {
        step: Step,
    },
    StepFinished {
        step: Step,
        outcome: StepOutcome,
        ms: u64,
        detail: String,
    },
    /// A line of the timeline.
    Note {
        text: String,
    },
    Warning {
        text: String,
    },
    Plan {
        /// `start`, `recreate`.
        action: String,
        reason: String,
        env_keys_changed: Vec<String>,
        migrations: Vec<PlannedMigration>,
    },
    BackupTaken {
        id: String,
    },
    MigrationsApplied {
        versions: Vec<i64>,
        head: Option<i64>,
        fingerprint: Option<String>,
    },
    MigrationsReverted {
        versions: Vec<i64>,
    },
    BackupRestored {
        id: String,
    },
    CheckFailed {
        check: String,
        detail: String,
        status: Option<u16>,
        body: Option<String>,
    },
    Serving {
        release: String,
    },
    /// What a person must still do (after a failed rollback).
    LeftToDo {
        text: String,
    },
    Finished {
        outcome: Outcome,
        exit_code: i32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// RFC 3339, UTC, milliseconds.
    pub at: String,
    /// Milliseconds since the run started.
    pub t_ms: u64,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// Whoever shows progress (the CLI) listens to the same events.
pub trait Listener: Send {
    fn event(&mut self, e: &Event);
}

impl Listener for () {
    fn event(&mut self, _: &Event) {}
}

/// Appends events to the run's journal file and, for steps, to the database journal.
pub struct Recorder<'a> {
    file: Option<File>,
    started: Instant,
    pub events: Vec<Event>,
    listener: &'a mut dyn Listener,
    db: Option<Box<dyn Driver>>,
    run_id: String,
    actor: String,
}

impl<'a> Recorder<'a> {
    /// `dir`: the run's directory (created); `None` for a dry run, which writes nothing.
    pub fn new(
        dir: Option<&Path>,
        run_id: &str,
        actor: &str,
        listener: &'a mut dyn Listener,
    ) -> Result<Recorder<'a>> {
        let file = match dir {
            Some(d) => {
                std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
                let p = d.join("events.jsonl");
                Some(
                    OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&p)
                        .map_err(|e| Error::io(&p, e))?,
                )
            }
            None => None,
        };
        Ok(Recorder {
            file,
            started: Instant::now(),
            events: Vec::new(),
            listener,
            db: None,
            run_id: run_id.to_string(),
            actor: actor.to_string(),
        })
    }

    /// Also journal step events in the database (its journal table must exist). The events
    /// recorded before (preflight, which must not create anything) are journaled now, with
    /// their own times in the detail.
    pub async fn attach_db(&mut self, db: Box<dyn Driver>) {
        self.attach_db_from(db, 0).await;
    }

    /// Attach the database journal and journal the events from index `from` on (after a
    /// restore, the ones the restored database lost).
    pub async fn attach_db_from(&mut self, mut db: Box<dyn Driver>, from: usize) {
        let pending: Vec<Event> = self.events.iter().skip(from).cloned().collect();
        for e in pending {
            if let Some((action, detail)) = journal_line(&e)
                && let Err(err) = history::journal(
                    db.as_mut(),
                    &JournalWrite {
                        run_id: &self.run_id,
                        action: &action,
                        version: None,
                        detail: Some(detail),
                        actor: &self.actor,
                    },
                )
                .await
            {
                db.close().await;
                self.warn(format!(
                    "could not write the database journal, journaling locally only: {err}"
                ))
                .await;
                return;
            }
        }
        self.db = Some(db);
    }

    pub fn detach_db(&mut self) -> Option<Box<dyn Driver>> {
        self.db.take()
    }

    pub fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub async fn emit(&mut self, kind: EventKind) {
        let e = Event {
            at: now(),
            t_ms: self.elapsed_ms(),
            kind,
        };
        if let Some(f) = &mut self.file {
            let line = serde_json::to_string(&e).unwrap_or_default();
            let _ = writeln!(f, "{line}");
            let _ = f.sync_data();
        }
        self.listener.event(&e);
        self.events.push(e.clone());
        let failed_db = match (journal_line(&e), self.db.as_mut()) {
            (Some((action, detail)), Some(db)) => history::journal(
                db.as_mut(),
                &JournalWrite {
                    run_id: &self.run_id,
                    action: &action,
                    version: None,
                    detail: Some(detail),
                    actor: &self.actor,
                },
            )
            .await
            .err(),
            _ => None,
        };
        if let Some(err) = failed_db {
            // The database is unreachable or broken: keep journaling locally only.
            if let Some(db) = self.db.take() {
                db.close().await;
            }
            Box::pin(self.emit(EventKind::Warning {
                text: format!(
                    "could not write the database journal, journaling locally only: {err}"
                ),
            }))
            .await;
        }
    }

    pub async fn note(&mut self, text: impl Into<String>) {
        self.emit(EventKind::Note { text: text.into() }).await;
    }

    pub async fn warn(&mut self, text: impl Into<String>) {
        self.emit(EventKind::Warning { text: text.into() }).await;
    }

    pub async fn start(&mut self, step: Step) -> Instant {
        self.emit(EventKind::StepStarted { step }).await;
        // Test hook, not for users: hold at the start of this step, so that a test can kill the
        // deploy exactly there and check that what is left is consistent.
        if std::env::var("TIDEMARK_TEST_DEPLOY_PAUSE").ok().as_deref() == Some(step.name()) {
            tokio::time::sleep(std::time::Duration::from_secs(120)).await;
        }
        Instant::now()
    }

    pub async fn finish(
        &mut self,
        step: Step,
        started: Instant,
        outcome: StepOutcome,
        detail: impl Into<String>,
    ) {
        self.emit(EventKind::StepFinished {
            step,
            outcome,
            ms: started.elapsed().as_millis() as u64,
            detail: detail.into(),
        })
        .await;
    }

    pub async fn close(mut self) -> Vec<Event> {
        if let Some(db) = self.db.take() {
            db.close().await;
        }
        self.events_owned()
    }

    fn events_owned(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }
}

/// The database journal line of an event, for the events that go there (a run's start and
/// end, and each step's start and end): the action and the event as JSON.
fn journal_line(e: &Event) -> Option<(String, String)> {
    let (action, phase) = match &e.kind {
        EventKind::StepStarted { step } => (format!("deploy.{}", step.name()), "start"),
        EventKind::StepFinished { step, .. } => (format!("deploy.{}", step.name()), "end"),
        EventKind::Started { .. } | EventKind::Finished { .. } => ("deploy".to_string(), ""),
        _ => return None,
    };
    let mut detail = serde_json::to_value(&e.kind).unwrap_or_default();
    if let Some(o) = detail.as_object_mut() {
        if !phase.is_empty() {
            o.insert("phase".into(), phase.into());
        }
        o.insert("at".into(), e.at.clone().into());
    }
    Some((action, detail.to_string()))
}
