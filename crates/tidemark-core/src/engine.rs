//! The apply algorithm, written once for every database.
//!
//! With transactional DDL a migration's statements, its history row and its journal line
//! commit together. Without it (MySQL/MariaDB, or a `no-transaction` file) the history row is
//! written first as `failed` and the number of statements that succeeded is kept up to date, so
//! a migration that dies half way is recorded as `failed` with that index, and `up` refuses to
//! go on until it is resolved.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::class::{Classifier, MigrationClass};
use crate::driver::{DbError, Driver, InspectOptions};
use crate::error::{Error, Result, StatementFailure};
use crate::history::{self, HistoryState, HistoryWrite, JournalWrite};
use crate::migration::MigrationSet;
use crate::plan::{self, Direction, DownTarget, Plan, Step, UpTarget};
use crate::split::Stmt;
use crate::status::{DriftState, MigrationState, Status};

/// What the engine tells whoever shows progress (the CLI's progress bar, a deploy journal).
#[derive(Debug)]
pub enum Event<'a> {
    LockWaiting {
        holder: &'a str,
    },
    LockAcquired {
        waited: Duration,
    },
    Planned {
        plan: &'a Plan,
    },
    StepStarted {
        step: &'a Step,
        position: usize,
        of: usize,
    },
    StatementFinished {
        step: &'a Step,
        stmt: &'a Stmt,
    },
    StepFinished {
        step: &'a Step,
        ms: i64,
    },
    Warning(String),
}

pub trait Observer: Send {
    fn event(&mut self, event: Event<'_>);
}

/// An observer that ignores everything.
pub struct Quiet;

impl Observer for Quiet {
    fn event(&mut self, _: Event<'_>) {}
}

/// Called under the lock when a run is about to change the database (its plan is not empty),
/// e.g. to take a backup. What it returns (a backup id) is journaled with the run; an error
/// stops the run before anything changed.
#[async_trait::async_trait]
pub trait BeforeChange: Send {
    async fn before_change(
        &mut self,
        driver: &mut dyn Driver,
        plan: &Plan,
        status: &Status,
    ) -> Result<Option<String>>;
}

/// What may be overridden before `up` starts.
#[derive(Debug, Clone, Copy, Default)]
pub struct Allow {
    pub modified: bool,
    pub missing: bool,
    pub drift: bool,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub lock_timeout: Duration,
    pub inspect: InspectOptions,
    /// Identifies this run in the journal.
    pub run_id: String,
    /// Who runs it (`user@host`).
    pub actor: String,
    /// Where to replay migrations when evidence is needed (`None`: the live server, or memory
    /// for SQLite).
    pub shadow_url: Option<crate::url::DatabaseUrl>,
    /// Classifies each migration when it is applied, so its class is recorded in the history
    /// (`tidemark-lint` provides one). Without one the class is not recorded, and the gate
    /// treats such a migration like a contract change.
    pub classifier: Option<Arc<dyn Classifier>>,
    /// How long a migration statement may wait for a table lock (PostgreSQL `lock_timeout`,
    /// MySQL `lock_wait_timeout`): an `ALTER TABLE` queued behind a long query holds up every
    /// query of the application behind it, so it gives up after this and is retried. `None`:
    /// wait as long as the server's own setting says.
    pub statement_lock_timeout: Option<Duration>,
    /// How often a migration that timed out waiting for a lock is tried again, with backoff.
    pub lock_retries: u32,
    /// The schema at a baseline that no migration file creates (a Flyway history that begins
    /// at a BASELINE): run on every shadow database before the migrations are replayed.
    pub shadow_baseline: Option<std::path::PathBuf>,
    /// `[sync] tool`: the other tool whose table to keep in step (the last `sync` decision
    /// journaled in the database wins over it).
    pub sync: Option<crate::import::Tool>,
    /// Where replays' results are kept ([`crate::replay_cache`]); `None`: every replay runs.
    pub replay_cache: Option<std::path::PathBuf>,
}

impl Settings {
    /// The class of a migration, when there is a classifier.
    pub fn class_of(
        &self,
        m: &crate::migration::Migration,
        dialect: crate::driver::Dialect,
    ) -> Option<MigrationClass> {
        self.classifier
            .as_ref()
            .map(|c| c.classify(m, dialect).class)
    }

    /// Fill in the class of every step that applies a migration.
    fn classify(&self, p: &mut Plan, set: &MigrationSet, dialect: crate::driver::Dialect) {
        for step in p.steps.iter_mut() {
            if step.direction == Direction::Up
                && let Some(m) = set.get(step.version)
            {
                step.class = self.class_of(m, dialect);
            }
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            lock_timeout: Duration::from_secs(60),
            inspect: InspectOptions::default(),
            run_id: new_run_id(),
            actor: history::actor(),
            shadow_url: None,
            classifier: None,
            statement_lock_timeout: Some(DEFAULT_STATEMENT_LOCK_TIMEOUT),
            lock_retries: DEFAULT_LOCK_RETRIES,
            shadow_baseline: None,
            sync: None,
            replay_cache: crate::replay_cache::default_dir(),
        }
    }
}

pub const DEFAULT_STATEMENT_LOCK_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_LOCK_RETRIES: u32 = 3;

/// Set (or with `None` reset) how long the migration session's statements wait for locks.
pub(crate) async fn set_statement_lock_timeout(
    driver: &mut dyn Driver,
    t: Option<Duration>,
) -> Result<()> {
    let sql: Vec<String> = match (driver.dialect(), t) {
        (crate::driver::Dialect::Postgres, Some(t)) => {
            vec![format!("SET lock_timeout = '{}ms'", t.as_millis().max(1))]
        }
        (crate::driver::Dialect::Postgres, None) => vec!["RESET lock_timeout".into()],
        // Seconds, at least 1: metadata locks (DDL) and row locks (UPDATE, DELETE).
        (crate::driver::Dialect::MySql, Some(t)) => {
            let s = t.as_secs_f64().ceil().max(1.0) as u64;
            vec![
                format!("SET SESSION lock_wait_timeout = {s}"),
                format!("SET SESSION innodb_lock_wait_timeout = {s}"),
            ]
        }
        (crate::driver::Dialect::MySql, None) => vec![
            "SET SESSION lock_wait_timeout = DEFAULT".into(),
            "SET SESSION innodb_lock_wait_timeout = DEFAULT".into(),
        ],
        // One writer at a time, waited for by the driver's busy timeout.
        (crate::driver::Dialect::Sqlite, _) => Vec::new(),
    };
    for s in sql {
        driver
            .run(&s)
            .await
            .map_err(|e| Error::db("could not set the statement lock timeout", e))?;
    }
    Ok(())
}

/// Did a statement give up waiting for a lock (and so change nothing)?
fn is_lock_timeout(dialect: crate::driver::Dialect, e: &DbError) -> bool {
    let code = e.code.as_deref().unwrap_or("");
    match dialect {
        crate::driver::Dialect::Postgres => code == "55P03",
        crate::driver::Dialect::MySql => code.starts_with("1205"),
        crate::driver::Dialect::Sqlite => false,
    }
}

/// 1 s, 2 s, 4 s, … between attempts: long enough for a long query to finish, short enough
/// that the deploy does not stall.
fn retry_backoff(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.saturating_sub(1).min(5))
}

pub fn new_run_id() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("{ms}-{}", std::process::id())
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Done {
    pub version: i64,
    pub name: String,
    pub direction: Direction,
    pub execution_ms: i64,
    /// A repeatable migration (`version` 0, `name` its description).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub repeatable: bool,
}

#[derive(Debug, Clone)]
pub struct RunReport {
    pub done: Vec<Done>,
    /// Fingerprint of the schema after the run, when it changed anything and inspection worked.
    pub fingerprint: Option<String>,
    pub run_id: String,
    /// The backup taken before the run, if one was.
    pub backup: Option<String>,
    /// The newest applied migration after the run (as `status` counts it), whether or not the
    /// run changed anything.
    pub current_version: Option<i64>,
}

/// Read status without changing anything (no lock, no table created): the fingerprint is
/// taken when `with_drift` is set.
pub async fn status(
    driver: &mut dyn Driver,
    set: &MigrationSet,
    settings: &Settings,
    with_drift: bool,
) -> Result<Status> {
    set.validate(driver.dialect())?;
    let history = history::read(driver).await?;
    let mut st = Status::compute(set, &history);
    if with_drift {
        let schema = driver.inspect(&settings.inspect).await?;
        st.set_live_fingerprint(schema.fingerprint().0, schema.is_empty());
    }
    Ok(st)
}

/// Refuse to go on when history and files (or the live schema) disagree. Every problem is
/// listed, each with the way out.
pub fn check_consistent(st: &Status, allow: Allow) -> Result<()> {
    let mut problems: Vec<String> = Vec::new();
    for e in st.problems() {
        match e.state {
            MigrationState::Failed => {
                let progress = e.statements_applied.map(|n| format!(" after {n} statement(s) succeeded")).unwrap_or_default();
                let resume = if e.statements_applied.is_some() {
                    format!("; or fix the failing statement in its file and run `tidemark repair --resume {}` to run the rest", e.version)
                } else {
                    String::new()
                };
                let why = e.error.as_deref().map(|m| format!(": {m}")).unwrap_or_default();
                problems.push(format!(
                    "migration {} ({}) is recorded as failed{progress}{why}\n  \
                     its effects may be partly in place; run `tidemark repair` to see which objects exist and decide{resume}",
                    e.version, e.name
                ));
            }
            MigrationState::Modified if !allow.modified => problems.push(format!(
                "migration {} ({}) was changed after it was applied (checksum {} recorded, file has {})\n  \
                 restore the file, or run `tidemark repair` to accept the new checksum if its effect is unchanged (or pass --allow-modified)",
                e.version,
                e.name,
                short(e.checksum.as_deref()),
                short(e.file_checksum.as_deref())
            )),
            MigrationState::Missing if !allow.missing => problems.push(format!(
                "migration {} ({}) is recorded as applied but its file is gone\n  \
                 restore the file, or run `tidemark repair` (or pass --allow-missing)",
                e.version, e.name
            )),
            _ => {}
        }
    }
    if !allow.drift {
        match st.drift.status {
            DriftState::Drifted => problems.push(format!(
                "the live schema has drifted from the history ({}){}\n  \
                 run `tidemark drift` to see the differences and `tidemark repair` to reconcile them",
                st.drift.reason.as_deref().unwrap_or("fingerprints differ"),
                st.drift
                    .evidence
                    .as_deref()
                    .map(|e| format!("\n  evidence: {e}"))
                    .unwrap_or_default()
            )),
            // Never assumed clean: a history nobody fingerprinted may be behind reality, and
            // running its "pending" migrations again is the incident tidemark exists for.
            DriftState::Unknown => problems.push(format!(
                "the history's schema could not be established ({})",
                st.drift
                    .reason
                    .as_deref()
                    .unwrap_or("no fingerprint was recorded")
            )),
            DriftState::Clean => {}
        }
    }
    match problems.len() {
        0 => Ok(()),
        1 => Err(Error::Inconsistent(format!(
            "refusing to migrate: {}",
            problems.remove(0)
        ))),
        n => Err(Error::Inconsistent(format!(
            "refusing to migrate, {n} problems:\n- {}",
            problems.join("\n- ")
        ))),
    }
}

fn short(s: Option<&str>) -> &str {
    s.map(|s| &s[..s.len().min(12)]).unwrap_or("?")
}

/// Plan `up` without changing anything: what `--dry-run` prints. It makes the same checks as
/// [`up`] (drift established by replay included) and refuses with the same error, so a dry run
/// that passes means the real run would start; it only writes nothing.
pub async fn plan_up(
    driver: &mut dyn Driver,
    set: &MigrationSet,
    target: &UpTarget,
    allow: Allow,
    settings: &Settings,
    obs: &mut dyn Observer,
) -> Result<(Status, Plan)> {
    set.validate(driver.dialect())?;
    prepare_up(driver, set, target, allow, settings, obs, Record::No).await
}

/// Whether establishing drift may write the fingerprint it established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// Under the lock: write it, journaled.
    Locked,
    /// Without the lock (the gate): write it only where the row still holds what was read.
    Unlocked,
    /// A dry run or a read-only command: write nothing.
    No,
}

/// Status, the consistency checks, and the plan: everything `up` does before it changes
/// anything, shared with `--dry-run`.
async fn prepare_up(
    driver: &mut dyn Driver,
    set: &MigrationSet,
    target: &UpTarget,
    allow: Allow,
    settings: &Settings,
    obs: &mut dyn Observer,
    record: Record,
) -> Result<(Status, Plan)> {
    let history = history::read(driver).await?;
    let mut st = Status::compute(set, &history);
    take_fingerprint(driver, settings, &mut st, obs).await;
    if !allow.drift {
        establish_drift(driver, set, settings, &mut st, obs, record).await;
    }
    if let Err(e) = check_consistent(&st, allow) {
        return Err(if st.drift.status == DriftState::Clean {
            e
        } else {
            with_import_hint(driver, &history, e).await
        });
    }
    let mut p = plan::plan_up(
        set,
        &st,
        driver.dialect(),
        driver.caps().transactional_ddl,
        &driver.caps().server_version,
        target,
    )?;
    if allow.drift && !p.is_empty() && st.drift.status != DriftState::Clean {
        refuse_present_effects(driver, set, settings, &history, &p).await?;
    }
    settings.classify(&mut p, set, driver.dialect());
    Ok((st, p))
}

/// `--allow-drift` runs pending migrations on a schema that differs from the history, but
/// never one whose effects are (or may be) already there: re-running its data statements is
/// the damage tidemark exists to prevent. The evidence is the same as `repair`'s.
async fn refuse_present_effects(
    driver: &mut dyn Driver,
    set: &MigrationSet,
    settings: &Settings,
    history: &crate::history::History,
    p: &Plan,
) -> Result<()> {
    use crate::repair::Action;
    let ev = crate::repair::gather(driver, set, settings, settings.shadow_url.as_ref())
        .await
        .map_err(|e| {
            Error::Inconsistent(format!(
                "refusing to migrate with --allow-drift: the schema has drifted, and whether the pending migrations' effects are already there could not be checked by replay: {e}"
            ))
        })?;
    let rp = crate::repair::plan(set, history, &ev);
    let present: Vec<String> = p
        .steps
        .iter()
        .filter_map(|s| {
            rp.steps.iter().find(|r| {
                r.version == s.version
                    && matches!(
                        r.action,
                        Action::Adopt | Action::HalfApplied | Action::Undetermined
                    )
            })
        })
        .map(|r| format!("{} ({}): {}", r.version, r.name, r.reason))
        .collect();
    if present.is_empty() {
        return Ok(());
    }
    let err = Error::Inconsistent(format!(
        "refusing to migrate: --allow-drift does not run a migration whose effects are (or may be) already in place:\n- {}\n  \
         run `tidemark repair` to record what really happened",
        present.join("\n- ")
    ));
    Err(with_import_hint(driver, history, err).await)
}

/// When the history is empty or behind and another tool's history table is right there, the
/// way out is `import`, not a flag: say so, naming the table.
async fn with_import_hint(
    driver: &mut dyn Driver,
    history: &crate::history::History,
    e: Error,
) -> Error {
    let Error::Inconsistent(msg) = e else {
        return e;
    };
    if history
        .entries
        .iter()
        .any(|h| h.state == HistoryState::Failed)
    {
        return Error::Inconsistent(msg);
    }
    let tools = crate::import::detect(driver).await.unwrap_or_default();
    let Some(tool) = tools.first() else {
        return Error::Inconsistent(msg);
    };
    Error::Inconsistent(format!(
        "{msg}\n  {} ({}'s history) is in this database: `tidemark import --from {}` takes its history over, checked by the same evidence",
        tool.table(),
        crate::import::tool_arg(*tool),
        crate::import::tool_arg(*tool)
    ))
}

/// Plan `down` without changing anything, with the same checks as [`down`].
pub async fn plan_down(
    driver: &mut dyn Driver,
    set: &MigrationSet,
    target: DownTarget,
    allow_drift: bool,
    settings: &Settings,
    obs: &mut dyn Observer,
) -> Result<(Status, Plan)> {
    set.validate(driver.dialect())?;
    prepare_down(driver, set, target, allow_drift, settings, obs, Record::No).await
}

async fn prepare_down(
    driver: &mut dyn Driver,
    set: &MigrationSet,
    target: DownTarget,
    allow_drift: bool,
    settings: &Settings,
    obs: &mut dyn Observer,
    record: Record,
) -> Result<(Status, Plan)> {
    let history = history::read(driver).await?;
    let mut st = Status::compute(set, &history);
    if let Some(e) = st
        .entries
        .iter()
        .find(|e| e.state == MigrationState::Failed)
    {
        return Err(Error::Inconsistent(format!(
            "migration {} ({}) is recorded as failed; run `tidemark repair` before reverting anything",
            e.version, e.name
        )));
    }
    // A down script is written for the schema its up script left. On a schema that has
    // drifted (or whose state nobody recorded) it may drop what it never created.
    if !allow_drift {
        take_fingerprint(driver, settings, &mut st, obs).await;
        establish_drift(driver, set, settings, &mut st, obs, record).await;
        let only_drift = Allow {
            modified: true,
            missing: true,
            drift: false,
        };
        check_consistent(&st, only_drift)
            .map_err(|e| Error::Inconsistent(e.to_string().replacen("migrate", "revert", 1)))?;
    }
    let p = plan::plan_down(
        set,
        &st,
        driver.dialect(),
        driver.caps().transactional_ddl,
        &driver.caps().server_version,
        target,
    )?;
    Ok((st, p))
}

/// Apply pending migrations under the lock.
pub async fn up(
    driver: &mut dyn Driver,
    set: &MigrationSet,
    target: &UpTarget,
    allow: Allow,
    settings: &Settings,
    obs: &mut dyn Observer,
    before: Option<&mut dyn BeforeChange>,
) -> Result<RunReport> {
    set.validate(driver.dialect())?;
    let guard = acquire(driver, settings, obs).await?;
    // The history tables are created only once something will be applied, after the backup:
    // a run that changes nothing (or whose backup fails) leaves the database as it was.
    let (st, p) = prepare_up(driver, set, target, allow, settings, obs, Record::Locked).await?;
    let held = guard.held_condition();
    let report =
        backup_then_execute(driver, set, &p, &st, settings, obs, before, held.as_deref()).await?;
    guard.release().await?;
    Ok(report)
}

/// The shared tail of `up` and `down`: the backup hook (when there is something to do), the
/// history tables, then the plan.
#[allow(clippy::too_many_arguments)]
async fn backup_then_execute(
    driver: &mut dyn Driver,
    set: &MigrationSet,
    p: &Plan,
    st: &Status,
    settings: &Settings,
    obs: &mut dyn Observer,
    before: Option<&mut dyn BeforeChange>,
    held: Option<&str>,
) -> Result<RunReport> {
    let backup = run_before(driver, p, st, settings, before).await?;
    let mut report = execute(driver, set, p, settings, obs, held).await?;
    report.backup = backup;
    report.current_version = if p.is_empty() {
        st.current_version
    } else {
        Status::compute(set, &history::read(driver).await?).current_version
    };
    Ok(report)
}

async fn run_before(
    driver: &mut dyn Driver,
    p: &Plan,
    st: &Status,
    settings: &Settings,
    before: Option<&mut dyn BeforeChange>,
) -> Result<Option<String>> {
    if p.is_empty() {
        return Ok(None);
    }
    let id = match before {
        Some(hook) => hook.before_change(driver, p, st).await?,
        None => None,
    };
    history::ensure(driver).await?;
    // Every database tidemark changes gets its identity (the backup hook has usually assigned
    // it already, so that the dump carries it); under the lock, like the history tables.
    crate::identity::ensure(driver).await?;
    if let Some(id) = &id {
        // Journaled with the run id, so the report of this run names the backup that precedes
        // its migrations.
        let versions: Vec<i64> = p.steps.iter().map(|s| s.version).collect();
        let detail = serde_json::json!({ "backup_id": id, "before": versions });
        history::journal(
            driver,
            &JournalWrite {
                run_id: &settings.run_id,
                action: "backup",
                version: None,
                detail: Some(detail.to_string()),
                actor: &settings.actor,
            },
        )
        .await?;
    }
    Ok(id)
}

/// Revert applied migrations with their down scripts, newest first, under the lock.
pub async fn down(
    driver: &mut dyn Driver,
    set: &MigrationSet,
    target: DownTarget,
    allow_drift: bool,
    settings: &Settings,
    obs: &mut dyn Observer,
    before: Option<&mut dyn BeforeChange>,
) -> Result<RunReport> {
    set.validate(driver.dialect())?;
    let guard = acquire(driver, settings, obs).await?;
    let (st, p) = prepare_down(
        driver,
        set,
        target,
        allow_drift,
        settings,
        obs,
        Record::Locked,
    )
    .await?;
    let held = guard.held_condition();
    let report =
        backup_then_execute(driver, set, &p, &st, settings, obs, before, held.as_deref()).await?;
    guard.release().await?;
    Ok(report)
}

/// Take the migration lock, telling the observer if it has to wait.
pub async fn acquire(
    driver: &mut dyn Driver,
    settings: &Settings,
    obs: &mut dyn Observer,
) -> Result<Box<dyn crate::driver::LockGuard>> {
    let started = Instant::now();
    struct Capture(Option<String>);
    impl crate::driver::LockWait for Capture {
        fn waiting(&mut self, holder: &str) {
            self.0 = Some(holder.to_string());
        }
    }
    let mut waited_for = Capture(None);
    let guard = driver.lock(settings.lock_timeout, &mut waited_for).await;
    if let Some(h) = &waited_for.0 {
        obs.event(Event::LockWaiting { holder: h });
    }
    let guard = guard?;
    obs.event(Event::LockAcquired {
        waited: started.elapsed(),
    });
    Ok(guard)
}

/// Establish drift where the cheap check cannot be trusted, by replaying the recorded
/// migrations on a shadow database and comparing with the live schema:
///
/// - nothing recorded (`unknown`: a history written by hand, imported from another tool or by
///   an older tidemark): equal → the fingerprint is recorded (journaled) and the state is
///   clean; different → drifted, with the evidence `status` shows; no shadow database → it
///   stays unknown, with the reason and how to provide one. Unknown is never clean.
/// - fingerprints differ: a fingerprint recorded by an older tidemark (whose canonical form
///   differed) is refreshed instead of blocking the deploy; real drift stays drift, with its
///   evidence.
pub async fn establish_drift(
    driver: &mut dyn Driver,
    set: &MigrationSet,
    settings: &Settings,
    st: &mut Status,
    obs: &mut dyn Observer,
    record: Record,
) {
    let unknown = match st.drift.status {
        DriftState::Clean => return,
        DriftState::Unknown => true,
        // An empty history beside a non-empty schema is drift for certain; only the evidence
        // is missing.
        DriftState::Drifted if st.drift.recorded_fingerprint.is_none() => {
            st.drift.evidence = evidence(driver, set, settings).await;
            return;
        }
        DriftState::Drifted => false,
    };
    let report = match crate::drift::drift(driver, set, settings, settings.shadow_url.as_ref())
        .await
    {
        Ok(r) => r,
        Err(e) => {
            if unknown {
                let head = st
                    .current_version
                    .map(|v| format!(" for migration {v}"))
                    .unwrap_or_default();
                st.drift.reason = Some(format!(
                    "no schema fingerprint was recorded{head}, and replaying the migrations to establish it failed: {e}\n  \
                         give tidemark a database server where it may create a scratch database: --shadow-url URL, or `[shadow] url` in tidemark.toml"
                ));
            } else {
                obs.event(Event::Warning(format!(
                    "could not replay the migrations to confirm the drift: {e}"
                )));
            }
            return;
        }
    };
    if report.drifted {
        let first: Vec<String> = report
            .changes
            .iter()
            .take(3)
            .map(|c| c.to_string())
            .collect();
        let more = report.changes.len().saturating_sub(first.len());
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        st.drift.status = DriftState::Drifted;
        st.drift.reason = Some(format!(
            "{}the live schema differs from the schema the recorded migrations produce: {}{more}",
            if unknown {
                "no fingerprint was recorded, and a replay shows "
            } else {
                ""
            },
            first.join("; ")
        ));
        st.drift.evidence = evidence(driver, set, settings).await;
        return;
    }
    // The comparison is exact only when every recorded migration could be replayed as it ran.
    if !report.notes.is_empty() {
        if unknown {
            st.drift.reason = Some(format!(
                "no fingerprint was recorded, and the replay is not exact: {}",
                report.notes.join("; ")
            ));
        }
        return;
    }
    // The schema is the state after the recorded head. When nothing was ever recorded, the
    // history is the thing in doubt: a pending migration that changes only data may have run
    // by hand, and the schema cannot say. That is a decision for a person, never a default.
    if unknown && st.pending().next().is_some() {
        match undetermined(driver, set, settings).await {
            Ok(v) if !v.is_empty() => {
                let list: Vec<String> = v.iter().map(i64::to_string).collect();
                st.drift.reason = Some(format!(
                    "no fingerprint was recorded, and migration(s) {} change only data: the schema cannot tell whether they ran\n  \
                     record what happened with `tidemark repair --adopt V` (it ran) or `--pending V` (it did not)",
                    list.join(", ")
                ));
                return;
            }
            Ok(_) => {}
            Err(e) => {
                st.drift.reason = Some(format!(
                    "no fingerprint was recorded, and the pending migrations could not be checked by replay: {e}"
                ));
                return;
            }
        }
    }
    let previous = st.drift.recorded_fingerprint.clone();
    st.drift.status = DriftState::Clean;
    st.drift.reason = Some("established by replaying the recorded migrations".into());
    st.drift.recorded_fingerprint = Some(report.live_fingerprint.clone());
    let Some(head) = st.current_version else {
        return;
    };
    if record == Record::No {
        return;
    }
    match record_established(driver, settings, head, previous.as_deref(), &report.live_fingerprint, record).await {
        Ok(true) => obs.event(Event::Warning(if unknown {
            format!("no schema fingerprint was recorded for migration {head}; a replay shows the live schema is the state after it, so the fingerprint was recorded")
        } else {
            "the recorded schema fingerprint was stale (e.g. written by an older tidemark); a replay shows no drift, so it was refreshed".into()
        })),
        Ok(false) => {}
        Err(e) => obs.event(Event::Warning(format!(
            "could not record the established schema fingerprint: {e}"
        ))),
    }
}

/// Write an established fingerprint on the head row, with its journal line. Returns false when
/// the row no longer holds what was read (another run changed it meanwhile).
async fn record_established(
    driver: &mut dyn Driver,
    settings: &Settings,
    head: i64,
    previous: Option<&str>,
    fingerprint: &str,
    record: Record,
) -> Result<bool> {
    if record == Record::Locked {
        history::ensure(driver).await?;
    }
    if !history::replace_fingerprint(driver, head, previous, fingerprint).await? {
        return Ok(false);
    }
    let detail = serde_json::json!({
        "fingerprint": fingerprint,
        "previous": previous,
        "established_by": "replay",
    });
    history::journal(
        driver,
        &JournalWrite {
            run_id: &settings.run_id,
            action: "fingerprint",
            version: Some(head),
            detail: Some(detail.to_string()),
            actor: &settings.actor,
        },
    )
    .await?;
    Ok(true)
}

/// Pending migrations whose having run the schema cannot tell (see
/// [`crate::repair::Action::Undetermined`]).
async fn undetermined(
    driver: &mut dyn Driver,
    set: &MigrationSet,
    settings: &Settings,
) -> Result<Vec<i64>> {
    let h = history::read(driver).await?;
    let ev = crate::repair::gather(driver, set, settings, settings.shadow_url.as_ref()).await?;
    Ok(crate::repair::plan(set, &h, &ev)
        .steps
        .iter()
        .filter(|s| s.action == crate::repair::Action::Undetermined)
        .map(|s| s.version)
        .collect())
}

/// The evidence `status` shows for drift ("the live schema equals the state after migration
/// 3; 1 unrecorded migration(s) are in fact applied"), or `None` when it cannot be gathered.
pub async fn evidence(
    driver: &mut dyn Driver,
    set: &MigrationSet,
    settings: &Settings,
) -> Option<String> {
    let h = history::read(driver).await.ok()?;
    let ev = crate::repair::gather(driver, set, settings, settings.shadow_url.as_ref())
        .await
        .ok()?;
    Some(crate::repair::plan(set, &h, &ev).summary())
}

async fn take_fingerprint(
    driver: &mut dyn Driver,
    settings: &Settings,
    st: &mut Status,
    obs: &mut dyn Observer,
) {
    match driver.inspect(&settings.inspect).await {
        Ok(schema) => st.set_live_fingerprint(schema.fingerprint().0, schema.is_empty()),
        Err(e) => obs.event(Event::Warning(format!(
            "could not inspect the schema, drift not checked: {e}"
        ))),
    }
}

/// Execute a plan. The caller holds the lock; `held` is its
/// [`crate::driver::LockGuard::held_condition`], checked before every commit (and before every
/// statement of a migration that runs outside a transaction).
pub async fn execute(
    driver: &mut dyn Driver,
    set: &MigrationSet,
    p: &Plan,
    settings: &Settings,
    obs: &mut dyn Observer,
    held: Option<&str>,
) -> Result<RunReport> {
    let r = execute_plan(driver, set, p, settings, obs, held).await;
    r.map_err(|e| match e {
        Error::LockLost { version, .. } => Error::LockLost {
            version,
            applied: Vec::new(),
        },
        e => e,
    })
}

async fn execute_plan(
    driver: &mut dyn Driver,
    set: &MigrationSet,
    p: &Plan,
    settings: &Settings,
    obs: &mut dyn Observer,
    held: Option<&str>,
) -> Result<RunReport> {
    if p.is_empty() {
        return run_plan(driver, set, p, settings, obs, held).await;
    }
    set_statement_lock_timeout(driver, settings.statement_lock_timeout).await?;
    let r = run_plan(driver, set, p, settings, obs, held).await;
    if settings.statement_lock_timeout.is_some() {
        let _ = set_statement_lock_timeout(driver, None).await;
    }
    r
}

async fn run_plan(
    driver: &mut dyn Driver,
    set: &MigrationSet,
    p: &Plan,
    settings: &Settings,
    obs: &mut dyn Observer,
    held: Option<&str>,
) -> Result<RunReport> {
    obs.event(Event::Planned { plan: p });
    // Whether the other tool's table is kept in step, decided once per run, before anything
    // changes (a tool whose table cannot follow these files stops the run here).
    let sync = if p.steps.is_empty() {
        None
    } else {
        let tool = crate::sync::state(driver, settings.sync).await?.tool;
        if let Some(t) = tool {
            crate::sync::check(t, set)?;
        }
        tool
    };
    let cx = Cx { set, sync, held };
    let mut done: Vec<Done> = Vec::new();
    if p.single_transaction && !p.steps.is_empty() {
        if p.steps.iter().any(|s| s.repeatable) {
            history::ensure_repeatables(driver).await?;
        }
        driver
            .begin()
            .await
            .map_err(|e| Error::db("could not begin the transaction", e))?;
        for (i, step) in p.steps.iter().enumerate() {
            obs.event(Event::StepStarted {
                step,
                position: i + 1,
                of: p.steps.len(),
            });
            let started = Instant::now();
            if let Err(f) = run_statements(driver, step, obs).await {
                let _ = driver.rollback().await;
                return Err(failed(driver, settings, step, f, Vec::new(), false).await);
            }
            let ms = started.elapsed().as_millis() as i64;
            let recorded = if step.repeatable {
                record_repeatable(driver, &cx, step, ms, settings).await
            } else {
                record_done(driver, &cx, step, ms, settings).await
            };
            if let Err(e) = recorded {
                let _ = driver.rollback().await;
                return Err(e);
            }
            obs.event(Event::StepFinished { step, ms });
            done.push(Done {
                version: step.version,
                name: step.name.clone(),
                direction: step.direction,
                execution_ms: ms,
                repeatable: step.repeatable,
            });
        }
        driver
            .commit()
            .await
            .map_err(|e| Error::db("could not commit the migrations", e))?;
    } else {
        for (i, step) in p.steps.iter().enumerate() {
            obs.event(Event::StepStarted {
                step,
                position: i + 1,
                of: p.steps.len(),
            });
            let applied: Vec<i64> = done.iter().map(|d| d.version).collect();
            let result = if step.repeatable {
                apply_repeatable(driver, &cx, step, settings, obs, applied.clone()).await
            } else if step.transactional {
                apply_transactional(driver, &cx, step, settings, obs, applied.clone()).await
            } else {
                apply_stepwise(driver, &cx, step, settings, obs, applied.clone()).await
            };
            let result = result.map_err(|e| match e {
                Error::LockLost { version, .. } => Error::LockLost { version, applied },
                e => e,
            });
            let ms = match result {
                Ok(ms) => ms,
                Err(e) => {
                    // Record the fingerprint of what the earlier steps of this run left, so
                    // the next run can tell drift cheaply. Not after a step recorded as failed:
                    // its partial effects are not a state any migration describes.
                    if !done.is_empty()
                        && matches!(
                            e,
                            Error::MigrationFailed {
                                recorded_failed: false,
                                ..
                            }
                        )
                    {
                        record_fingerprint(driver, set, settings, obs).await;
                    }
                    return Err(e);
                }
            };
            obs.event(Event::StepFinished { step, ms });
            done.push(Done {
                version: step.version,
                name: step.name.clone(),
                direction: step.direction,
                execution_ms: ms,
                repeatable: step.repeatable,
            });
        }
    }
    let fingerprint = if done.is_empty() {
        None
    } else {
        record_fingerprint(driver, set, settings, obs).await
    };
    Ok(RunReport {
        done,
        fingerprint,
        run_id: settings.run_id.clone(),
        backup: None,
        current_version: None,
    })
}

/// What every step of a run shares: the files, the tool whose table is kept in step, and the
/// lock's condition ([`crate::driver::LockGuard::held_condition`]).
struct Cx<'a> {
    set: &'a MigrationSet,
    sync: Option<crate::import::Tool>,
    held: Option<&'a str>,
}

/// Write the other tool's table for a finished step, when sync is on.
async fn sync_step(
    driver: &mut dyn Driver,
    cx: &Cx<'_>,
    step: &Step,
    ms: i64,
    settings: &Settings,
) -> Result<()> {
    let Some(tool) = cx.sync else {
        return Ok(());
    };
    if step.repeatable {
        if let Some(r) = cx
            .set
            .repeatables
            .iter()
            .find(|r| r.description() == step.name)
        {
            crate::sync::applied_repeatable(driver, tool, &r.migration, ms, settings).await?;
        }
        return Ok(());
    }
    let Some(m) = cx.set.get(step.version) else {
        return Ok(());
    };
    match step.direction {
        Direction::Up => crate::sync::applied(driver, tool, cx.set, m, ms, settings).await,
        Direction::Down => crate::sync::reverted(driver, tool, cx.set, m).await,
    }
}

/// A repeatable migration: its statements (in a transaction where its mode allows), then its
/// row in `tidemark_repeatable` and a journal line. It has no history row: a failure leaves
/// the previous record (or none), so it runs again next time.
async fn apply_repeatable(
    driver: &mut dyn Driver,
    cx: &Cx<'_>,
    step: &Step,
    settings: &Settings,
    obs: &mut dyn Observer,
    applied: Vec<i64>,
) -> Result<i64> {
    history::ensure_repeatables(driver).await?;
    ensure_held(driver, cx.held, step.version).await?;
    let started = Instant::now();
    if step.transactional {
        driver
            .begin()
            .await
            .map_err(|e| Error::db("could not begin the transaction", e))?;
    }
    if let Err(f) = run_statements(driver, step, obs).await {
        // In tidemark's transaction or the file's own: roll it back (outside any, this is a
        // harmless no-op or warning).
        let _ = driver.rollback().await;
        return Err(failed(driver, settings, step, f, applied, false).await);
    }
    let ms = started.elapsed().as_millis() as i64;
    if let Err(e) = record_repeatable(driver, cx, step, ms, settings).await {
        if step.transactional {
            let _ = driver.rollback().await;
        }
        return Err(e);
    }
    if step.transactional {
        driver.commit().await.map_err(|e| {
            Error::db(
                format!("could not commit repeatable migration `{}`", step.name),
                e,
            )
        })?;
    }
    Ok(ms)
}

async fn record_repeatable(
    driver: &mut dyn Driver,
    cx: &Cx<'_>,
    step: &Step,
    ms: i64,
    settings: &Settings,
) -> Result<()> {
    ensure_held(driver, cx.held, step.version).await?;
    history::record_repeatable(driver, &step.name, &step.checksum, ms, &settings.actor).await?;
    sync_step(driver, cx, step, ms, settings).await?;
    history::journal(
        driver,
        &JournalWrite {
            run_id: &settings.run_id,
            action: "apply_repeatable",
            version: None,
            detail: Some(step_detail(step, ms)),
            actor: &settings.actor,
        },
    )
    .await
}

async fn apply_transactional(
    driver: &mut dyn Driver,
    cx: &Cx<'_>,
    step: &Step,
    settings: &Settings,
    obs: &mut dyn Observer,
    applied: Vec<i64>,
) -> Result<i64> {
    let mut started = Instant::now();
    let texts: Vec<&str> = step.statements.iter().map(|s| s.text.as_str()).collect();
    let mut attempt = 0;
    let batch = loop {
        match driver.run_batch(&texts, true).await {
            Err(b)
                if b.index.is_some()
                    && attempt < settings.lock_retries
                    && is_lock_timeout(driver.dialect(), &b.error) =>
            {
                // The transaction is rolled back: nothing of this migration happened.
                let _ = driver.rollback().await;
                attempt += 1;
                let wait = retry_backoff(attempt);
                obs.event(Event::Warning(lock_retry_message(
                    step,
                    b.index.unwrap_or(0),
                    settings,
                    attempt,
                    wait,
                )));
                tokio::time::sleep(wait).await;
                started = Instant::now();
            }
            r => break r,
        }
    };
    if let Err(b) = batch {
        let _ = driver.rollback().await;
        let Some(i) = b.index else {
            return Err(Error::db("could not begin the transaction", b.error));
        };
        let f = statement_failure(step, &step.statements[i], b.error);
        return Err(failed(driver, settings, step, f, applied, false).await);
    }
    for stmt in &step.statements {
        obs.event(Event::StatementFinished { step, stmt });
    }
    let ms = started.elapsed().as_millis() as i64;
    if let Err(e) = record_done(driver, cx, step, ms, settings).await {
        let _ = driver.rollback().await;
        return Err(e);
    }
    driver.commit().await.map_err(|e| {
        Error::db(
            format!(
                "could not commit migration {} ({})",
                step.version, step.name
            ),
            e,
        )
    })?;
    Ok(ms)
}

/// Statement by statement, with progress in the history row.
async fn apply_stepwise(
    driver: &mut dyn Driver,
    cx: &Cx<'_>,
    step: &Step,
    settings: &Settings,
    obs: &mut dyn Observer,
    applied: Vec<i64>,
) -> Result<i64> {
    let held = cx.held;
    // Outside a transaction each statement commits on its own: make sure the lock is still
    // ours before each one, and stop (the history row says how far it got) when it is not.
    ensure_held(driver, held, step.version).await?;
    let inspect = &settings.inspect;
    let started = Instant::now();
    // Where DDL is transactional, a file runs statement by statement only because it asked to
    // (`CREATE INDEX CONCURRENTLY` and the like), and such a statement can fail and still leave
    // something behind (an invalid index). Remember the schema before, to tell afterwards.
    // Without transactional DDL a single statement is atomic, except one naming several
    // objects: MariaDB's `DROP TABLE keep1, no_such_table` drops keep1 and then fails. Before
    // claiming that nothing remains of such a first statement, compare the schema too.
    let before = if driver.caps().transactional_ddl
        || step
            .statements
            .first()
            .is_some_and(|s| may_half_apply(&s.text))
    {
        driver.inspect(inspect).await.ok().map(|s| s.fingerprint())
    } else {
        None
    };
    // `CREATE INDEX CONCURRENTLY` waits for older transactions without blocking anyone; a lock
    // timeout would cancel it half way and leave an invalid index behind. Outside a
    // transaction on PostgreSQL, statements wait as long as the server says.
    let relax = driver.dialect() == crate::driver::Dialect::Postgres
        && settings.statement_lock_timeout.is_some();
    if relax {
        set_statement_lock_timeout(driver, None).await?;
    }
    let r = stepwise(driver, cx, step, settings, obs, applied, before, started).await;
    if relax {
        let _ = set_statement_lock_timeout(driver, settings.statement_lock_timeout).await;
    }
    r
}

#[allow(clippy::too_many_arguments)]
async fn stepwise(
    driver: &mut dyn Driver,
    cx: &Cx<'_>,
    step: &Step,
    settings: &Settings,
    obs: &mut dyn Observer,
    applied: Vec<i64>,
    before: Option<tidemark_schema::Fingerprint>,
    started: Instant,
) -> Result<i64> {
    let held = cx.held;
    let inspect = &settings.inspect;
    let total = step.statements.len();
    let mut row = HistoryWrite {
        version: step.version,
        name: &step.name,
        checksum: &step.checksum,
        state: HistoryState::Failed,
        execution_ms: 0,
        applied_by: &settings.actor,
        error: Some("in progress (or its process died)"),
        statements_applied: Some(0),
        lint_class: step.class,
    };
    match step.direction {
        Direction::Up => {
            history::insert(driver, &row).await?;
        }
        Direction::Down => {
            history::set_state(
                driver,
                step.version,
                HistoryState::Failed,
                Some("revert in progress (or its process died)"),
            )
            .await?
        }
    }
    // A file that controls its own transaction (`BEGIN; … COMMIT;`) runs as written. While
    // its transaction is open, the progress updates of the history row are part of it.
    let mut own_open: Option<usize> = None;
    for (i, stmt) in step.statements.iter().enumerate() {
        if i > 0 {
            ensure_held(driver, held, step.version).await?;
        }
        let control = crate::split::is_transaction_control(&stmt.text);
        let starts = control && crate::split::starts_transaction(&stmt.text);
        if starts {
            own_open = Some(i);
        }
        // A transaction stays open until its COMMIT succeeds: a COMMIT that fails (a deferred
        // constraint) rolls the whole transaction back on PostgreSQL.
        let mut attempt = 0;
        let result = loop {
            match driver.run(&stmt.text).await {
                // A statement that gave up waiting for its lock did nothing: run it again.
                Err(db)
                    if attempt < settings.lock_retries
                        && is_lock_timeout(driver.dialect(), &db) =>
                {
                    attempt += 1;
                    let wait = retry_backoff(attempt);
                    obs.event(Event::Warning(lock_retry_message(
                        step, i, settings, attempt, wait,
                    )));
                    tokio::time::sleep(wait).await;
                    ensure_held(driver, held, step.version).await?;
                }
                r => break r,
            }
        };
        if let Err(db) = result {
            let mut failure = statement_failure(step, stmt, db);
            // A failure inside the file's own transaction: roll it back (the session refuses
            // anything else until then). Where DDL is transactional nothing after its BEGIN
            // remains, so what took effect is what ran before that BEGIN.
            let mut took_effect = i;
            if let Some(begin) = own_open {
                if let Err(e) = driver.rollback().await {
                    obs.event(Event::Warning(format!(
                        "could not roll back the file's own transaction: {e}"
                    )));
                } else if driver.caps().transactional_ddl {
                    took_effect = begin;
                    failure.db.message = format!(
                        "{} (the file's own transaction, begun at line {}, was rolled back: nothing of it remains)",
                        failure.db.message, step.statements[begin].line
                    );
                }
            }
            // Nothing of this step took effect when its first statement failed (a single DDL
            // statement is atomic on MySQL 8 and MariaDB): put history back as it was, as a
            // rolled-back transaction would — unless the schema shows otherwise.
            let mut nothing_done = took_effect == 0;
            if nothing_done && let Some(before) = &before {
                nothing_done = driver
                    .inspect(inspect)
                    .await
                    .is_ok_and(|s| s.fingerprint() == *before);
            }
            let undo = match (nothing_done, step.direction) {
                (true, Direction::Up) => history::delete_recorded(driver, step.version).await,
                (true, Direction::Down) => {
                    history::set_state(driver, step.version, HistoryState::Applied, None).await
                }
                (false, _) => {
                    let msg = format!(
                        "statement {} of {total} failed at {}:{}: {}",
                        stmt.index,
                        step.path.display(),
                        failure.line,
                        failure.db.message
                    );
                    match step.direction {
                        Direction::Up => {
                            row.error = Some(&msg);
                            row.execution_ms = started.elapsed().as_millis() as i64;
                            row.statements_applied = Some(took_effect as i64);
                            history::update(driver, &row).await
                        }
                        Direction::Down => {
                            let msg = format!("revert {msg}");
                            history::set_state(
                                driver,
                                step.version,
                                HistoryState::Failed,
                                Some(&msg),
                            )
                            .await
                        }
                    }
                }
            };
            if let Err(e) = undo {
                obs.event(Event::Warning(format!(
                    "could not record the failure in history: {e}"
                )));
            }
            return Err(failed(driver, settings, step, failure, applied, !nothing_done).await);
        }
        if control && !starts {
            own_open = None;
        }
        obs.event(Event::StatementFinished { step, stmt });
        if step.direction == Direction::Up && i + 1 < total {
            row.statements_applied = Some(i as i64 + 1);
            history::update(driver, &row).await?;
        }
    }
    let ms = started.elapsed().as_millis() as i64;
    ensure_held(driver, held, step.version).await?;
    match step.direction {
        Direction::Up => {
            row.state = HistoryState::Applied;
            row.error = None;
            row.statements_applied = Some(total as i64);
            row.execution_ms = ms;
            history::update(driver, &row).await?;
        }
        Direction::Down => {
            history::delete_recorded(driver, step.version).await?;
        }
    }
    sync_step(driver, cx, step, ms, settings).await?;
    journal_step(driver, step, ms, settings).await?;
    Ok(ms)
}

fn lock_retry_message(
    step: &Step,
    index: usize,
    settings: &Settings,
    attempt: u32,
    wait: Duration,
) -> String {
    format!(
        "migration {} ({}) statement {} waited {} for a table lock and gave up, so that the application's queries do not queue behind it; trying again in {} ({attempt} of {})",
        step.version,
        step.name,
        index + 1,
        settings
            .statement_lock_timeout
            .map(crate::probe::format_duration)
            .unwrap_or_default(),
        crate::probe::format_duration(wait),
        settings.lock_retries
    )
}

pub(crate) async fn ensure_held(
    driver: &mut dyn Driver,
    held: Option<&str>,
    version: i64,
) -> Result<()> {
    match held {
        Some(h) if !history::lock_held(driver, h).await? => Err(Error::LockLost {
            version,
            applied: Vec::new(),
        }),
        _ => Ok(()),
    }
}

/// Can this statement fail after doing part of its work on a database without transactional
/// DDL? A `DROP` of a list of objects (`DROP TABLE a, b`, `DROP VIEW a, b`) can.
fn may_half_apply(sql: &str) -> bool {
    let code: String = sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join(" ");
    let t = code.trim_start().to_ascii_uppercase();
    t.starts_with("DROP") && t.contains(',')
}

async fn run_statements(
    driver: &mut dyn Driver,
    step: &Step,
    obs: &mut dyn Observer,
) -> Result<(), StatementFailure> {
    for stmt in &step.statements {
        driver
            .run(&stmt.text)
            .await
            .map_err(|db| statement_failure(step, stmt, db))?;
        obs.event(Event::StatementFinished { step, stmt });
    }
    Ok(())
}

/// The history row (or its removal) and the journal line of a finished step, in the caller's
/// transaction when there is one.
async fn record_done(
    driver: &mut dyn Driver,
    cx: &Cx<'_>,
    step: &Step,
    ms: i64,
    settings: &Settings,
) -> Result<()> {
    let detail = step_detail(step, ms);
    let journal = JournalWrite {
        run_id: &settings.run_id,
        action: step_action(step),
        version: Some(step.version),
        detail: Some(detail),
        actor: &settings.actor,
    };
    let op = match step.direction {
        Direction::Up => history::RowChange::Insert(HistoryWrite {
            version: step.version,
            name: &step.name,
            checksum: &step.checksum,
            state: HistoryState::Applied,
            execution_ms: ms,
            applied_by: &settings.actor,
            error: None,
            statements_applied: None,
            lint_class: step.class,
        }),
        Direction::Down => history::RowChange::Delete(step.version),
    };
    history::change_with_journal(driver, op, &journal, cx.held).await?;
    // The other tool's row after tidemark's, in the same transaction.
    sync_step(driver, cx, step, ms, settings).await
}

fn step_action(step: &Step) -> &'static str {
    match step.direction {
        Direction::Up => "apply",
        Direction::Down => "revert",
    }
}

fn step_detail(step: &Step, ms: i64) -> String {
    serde_json::json!({
        "name": step.name,
        "checksum": step.checksum,
        "execution_ms": ms,
        "statements": step.statements.len(),
        "transactional": step.transactional,
    })
    .to_string()
}

async fn journal_step(
    driver: &mut dyn Driver,
    step: &Step,
    ms: i64,
    settings: &Settings,
) -> Result<()> {
    history::journal(
        driver,
        &JournalWrite {
            run_id: &settings.run_id,
            action: step_action(step),
            version: Some(step.version),
            detail: Some(step_detail(step, ms)),
            actor: &settings.actor,
        },
    )
    .await
}

fn statement_failure(step: &Step, stmt: &Stmt, mut db: DbError) -> StatementFailure {
    let code = db.code.as_deref().unwrap_or("");
    if (code == "55P03" || code.starts_with("1205")) && db.hint.is_none() {
        db.hint = Some(
            "a long transaction holds the table: find it (pg_stat_activity / SHOW PROCESSLIST) and end it, run the migration when traffic is low, or raise `[migrate] statement_lock_timeout` / lock_retries".into(),
        );
    }
    // PostgreSQL reports a 1-based character position inside the statement: turn it into the
    // line of the file.
    let line = match db.position {
        Some(pos) => {
            stmt.line
                + stmt
                    .text
                    .chars()
                    .take(pos.saturating_sub(1))
                    .filter(|&c| c == '\n')
                    .count()
        }
        None => stmt.line,
    };
    StatementFailure {
        version: step.version,
        name: step.name.clone(),
        path: step.path.clone(),
        line,
        index: stmt.index,
        statement: stmt.text.clone(),
        db,
    }
}

/// Journal the failure (outside any transaction) and build the error.
async fn failed(
    driver: &mut dyn Driver,
    settings: &Settings,
    step: &Step,
    f: StatementFailure,
    applied: Vec<i64>,
    recorded_failed: bool,
) -> Error {
    let action = match step.direction {
        Direction::Up => "apply_failed",
        Direction::Down => "revert_failed",
    };
    let detail = serde_json::json!({
        "name": step.name,
        "file": f.path.display().to_string(),
        "line": f.line,
        "statement_index": f.index,
        "error": f.db.to_string(),
        "recorded_failed": recorded_failed,
    });
    let _ = history::journal(
        driver,
        &JournalWrite {
            run_id: &settings.run_id,
            action,
            version: Some(step.version),
            detail: Some(detail.to_string()),
            actor: &settings.actor,
        },
    )
    .await;
    Error::MigrationFailed {
        failure: Box::new(f),
        applied,
        recorded_failed,
    }
}

/// Inspect after a run and record the fingerprint on the head of history, so that `status` can
/// tell drift cheaply later.
async fn record_fingerprint(
    driver: &mut dyn Driver,
    set: &MigrationSet,
    settings: &Settings,
    obs: &mut dyn Observer,
) -> Option<String> {
    let schema = match driver.inspect(&settings.inspect).await {
        Ok(s) => s,
        Err(e) => {
            obs.event(Event::Warning(format!(
                "could not inspect the schema to record its fingerprint: {e}"
            )));
            return None;
        }
    };
    let fp = schema.fingerprint().0;
    // The head in order of application, the row `status` reads the recorded fingerprint from.
    let head = match history::read(driver).await {
        Ok(h) => Status::compute(set, &h).current_version,
        Err(_) => None,
    };
    if let Some(v) = head
        && let Err(e) = history::set_fingerprint(driver, v, &fp).await
    {
        obs.event(Event::Warning(format!(
            "could not record the schema fingerprint: {e}"
        )));
    }
    Some(fp)
}
