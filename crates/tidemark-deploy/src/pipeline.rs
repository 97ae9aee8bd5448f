//! The deploy pipeline, an explicit state machine:
//!
//! ```text
//! preflight → backup → migrate → release → verify → promote
//!                                    │         │
//!                                    └────┬────┘ (failed)
//!                                         ▼
//!                                      rollback → report
//! ```
//!
//! Each step's start and end go to the run's journal (local and database), and the report is
//! a pure function of that journal.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tidemark::backup::{self, Store, Subject};
use tidemark::engine::{self, Allow, Quiet, Settings};
use tidemark::gate::Require;
use tidemark::plan::{DownTarget, UpTarget};
use tidemark::{DatabaseUrl, Driver, Error, ExitClass, Migration, MigrationSet, Result};

use crate::check::{self, Failure};
use crate::config::{DbPolicy, DeployConfig, Inconclusive, Severity};
use crate::envfile::{self, EnvFile};
use crate::event::{EventKind, Listener, PlannedMigration, Recorder, RunKind, Step, StepOutcome};
use crate::nginx::{LogCursor, NginxStrategy, Routing};
use crate::releases_table;
use crate::report::Report;
use crate::state::{Outcome, Release, State, UnitFile, now};
use crate::strategy::{self, Action, ReleaseStrategy, Shell, Target};

/// What the deploy needs from tidemark's own configuration (resolved by the caller: flags,
/// environment, tidemark.toml).
/// This database's backups (filed under its identity). `assign`: give the database an
/// identity if it has none (before the pre-deploy backup); a rollback only reads it.
async fn backups_of(
    db: &mut dyn Driver,
    inputs: &Inputs,
    assign: bool,
) -> Result<Option<(Store, String)>> {
    let Some(dir) = &inputs.backup_dir else {
        return Ok(None);
    };
    let id = if assign {
        tidemark::identity::ensure_locked(db, inputs.settings.lock_timeout).await?
    } else {
        match tidemark::identity::read(db).await? {
            Some(id) => id,
            None => return Ok(None),
        }
    };
    Ok(Some((backup::Vault::new(dir, &[])?.open(&id)?, id)))
}

pub struct Inputs {
    pub url: DatabaseUrl,
    pub set: MigrationSet,
    pub settings: Settings,
    /// Where backups go; `None` turns the pre-deploy backup off.
    pub backup_dir: Option<PathBuf>,
    pub lint_levels: tidemark_lint::Levels,
}

#[derive(Debug, Clone, Default)]
pub struct DeployOptions {
    pub release: Option<String>,
    pub dry_run: bool,
}

/// How a run ended. `exit_code` is the contract's: 0, 1, 2, 20, 30 or 31.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub run_id: String,
    pub outcome: Outcome,
    pub exit_code: i32,
    pub report: Report,
    /// The run's directory (reports, journal, command output); `None` for a dry run.
    pub run_dir: Option<PathBuf>,
}

/// A migration's class for deploys and rollbacks, from its lint findings: `destructive` (data
/// loss), `contract` (breaks the running release), else `expand-only`.
pub fn classify(m: &Migration, dialect: tidemark::Dialect) -> &'static str {
    let linter = tidemark_lint::Linter::new(dialect, tidemark_lint::Levels::default());
    let Ok(findings) = linter.lint(std::iter::once(m)) else {
        return "contract";
    };
    let mut class = "expand-only";
    for f in findings.iter().filter(|f| f.source.path == m.up.path) {
        match tidemark_lint::find(f.rule).map(|r| r.category()) {
            Some(tidemark_lint::Category::DataLoss) => return "destructive",
            Some(tidemark_lint::Category::BreaksRunningRelease) => class = "contract",
            _ => {}
        }
    }
    class
}

fn valid_release_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 100
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !id.starts_with('.')
}

fn cfg_err(cfg: &DeployConfig, key: &str, msg: impl std::fmt::Display) -> Error {
    Error::bad_input(tidemark::Location::file(&cfg.path), format!("{key}: {msg}"))
}

/// The release id: `--release`, else the git commit of the release directory, else a
/// timestamp.
fn release_id(cfg: &DeployConfig, given: Option<&str>) -> Result<String> {
    if let Some(id) = given {
        if !valid_release_id(id) {
            return Err(Error::Usage(format!(
                "--release `{id}`: a release id is letters, digits, `-`, `_` and `.` (at most 100)"
            )));
        }
        return Ok(id.to_string());
    }
    if cfg.release_dir.uses("release") {
        return Err(cfg_err(
            cfg,
            "release.dir",
            format!(
                "`{}` depends on the release id: pass --release ID",
                cfg.release_dir.source()
            ),
        ));
    }
    let dir = cfg.dir_of("");
    if let Ok(out) = std::process::Command::new("git")
        .arg("-C")
        .arg(&dir)
        .args(["rev-parse", "--short=12", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        && out.status.success()
    {
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if valid_release_id(&id) {
            return Ok(id);
        }
    }
    Ok(time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_else(|_| "release".into()))
}

pub(crate) fn target_of(cfg: &DeployConfig, r: &Release) -> Target {
    Target {
        release: r.id.clone(),
        dir: r.dir.clone(),
        env_file: r.env_file.clone(),
        port: r.port,
        image: (r.strategy == "compose" && r.artifact != r.dir.display().to_string())
            .then(|| r.artifact.clone()),
    }
    .with_port_default(cfg.port)
}

impl Target {
    fn with_port_default(mut self, port: Option<u16>) -> Target {
        if self.port.is_none() {
            self.port = port;
        }
        self
    }
}

pub(crate) fn shell(cfg: &DeployConfig, run_dir: &Path) -> Shell {
    Shell {
        log: run_dir.join("commands.log"),
        timeout: cfg.strategy.timeout(),
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// Installed crontab lines, whitespace-normalised: from a file, or `crontab -l`.
fn crontab_lines(file: Option<&Path>) -> std::result::Result<Vec<String>, String> {
    let text = match file {
        Some(f) => std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?,
        None => {
            let out = std::process::Command::new("crontab")
                .arg("-l")
                .output()
                .map_err(|e| format!("could not run `crontab -l`: {e}"))?;
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    };
    Ok(text.lines().map(normalize_cron).collect())
}

/// Write the declared cron entries into a managed block (`# BEGIN tidemark APP` … `# END
/// tidemark APP`) of the crontab file, or of the user's crontab through `crontab -`, when any
/// is missing. Lines outside the block are kept as they are.
fn install_cron(
    app: &str,
    cron: &crate::config::CronConfig,
) -> std::result::Result<Option<String>, String> {
    let lines = crontab_lines(cron.file.as_deref())?;
    if cron
        .entries
        .iter()
        .all(|e| lines.contains(&normalize_cron(e)))
    {
        return Ok(None);
    }
    let text = match &cron.file {
        Some(f) => std::fs::read_to_string(f).unwrap_or_default(),
        None => std::process::Command::new("crontab")
            .arg("-l")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default(),
    };
    let begin = format!("# BEGIN tidemark {app}");
    let end = format!("# END tidemark {app}");
    let mut out = String::new();
    let mut inside = false;
    for l in text.lines() {
        if l.trim() == begin {
            inside = true;
        } else if l.trim() == end {
            inside = false;
        } else if !inside {
            out.push_str(l);
            out.push('\n');
        }
    }
    out.push_str(&begin);
    out.push('\n');
    for e in &cron.entries {
        out.push_str(e.trim());
        out.push('\n');
    }
    out.push_str(&end);
    out.push('\n');
    match &cron.file {
        Some(f) => {
            let tmp = f.with_extension("tidemark-tmp");
            std::fs::write(&tmp, &out)
                .and_then(|()| std::fs::rename(&tmp, f))
                .map_err(|e| format!("{}: {e}", f.display()))?;
            Ok(Some(format!(
                "installed {} cron entr{} in {}",
                cron.entries.len(),
                if cron.entries.len() == 1 { "y" } else { "ies" },
                f.display()
            )))
        }
        None => {
            use std::io::Write;
            let mut child = std::process::Command::new("crontab")
                .arg("-")
                .stdin(std::process::Stdio::piped())
                .spawn()
                .map_err(|e| format!("could not run `crontab -`: {e}"))?;
            if let Some(mut stdin) = child.stdin.take() {
                stdin
                    .write_all(out.as_bytes())
                    .map_err(|e| format!("`crontab -`: {e}"))?;
            }
            let status = child.wait().map_err(|e| format!("`crontab -`: {e}"))?;
            if !status.success() {
                return Err(format!("`crontab -` failed ({status})"));
            }
            Ok(Some(format!(
                "installed {} cron entr{} in the user's crontab",
                cron.entries.len(),
                if cron.entries.len() == 1 { "y" } else { "ies" }
            )))
        }
    }
}

fn normalize_cron(l: &str) -> String {
    l.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What preflight found.
struct Preflight {
    problems: Vec<String>,
    warnings: Vec<String>,
    class: ExitClass,
    pending: Vec<PlannedMigration>,
    head_before: Option<i64>,
    fingerprint_before: Option<String>,
    env: Option<EnvFile>,
}

/// The previous release (serving now), if any.
pub(crate) fn serving_release(state: &State) -> Result<Option<Release>> {
    match state.serving()? {
        Some(s) => state.release(&s.release),
        None => Ok(None),
    }
}

/// Run a deploy.
pub async fn deploy(
    cfg: &DeployConfig,
    inputs: &Inputs,
    opts: &DeployOptions,
    listener: &mut dyn Listener,
) -> Result<RunResult> {
    let id = release_id(cfg, opts.release.as_deref())?;
    let dir = cfg.dir_of(&id);
    if !dir.is_dir() {
        return Err(cfg_err(
            cfg,
            "release.dir",
            format!("the release directory {} does not exist", dir.display()),
        ));
    }
    let dir = dir.canonicalize().map_err(|e| Error::io(&dir, e))?;
    let env_path = cfg.env_file_of(&id, &dir);
    if let Some(p) = &env_path
        && !p.is_file()
    {
        return Err(cfg_err(
            cfg,
            "release.env_file",
            format!("the env file {} does not exist", p.display()),
        ));
    }
    let state = if opts.dry_run {
        State::existing(&cfg.state_dir)
    } else {
        State::open(&cfg.state_dir)?
    };
    let run_id = inputs.settings.run_id.clone();
    let actor = inputs.settings.actor.clone();
    // A dry run takes the lock too (when there is a state directory to hold it): it must not
    // mistake a deploy that is running for one that was killed.
    let _lock = if opts.dry_run && !cfg.state_dir.is_dir() {
        None
    } else {
        Some(state.lock(&format!(
            "{}deploy of release {id}, run {run_id} by {actor} (pid {}) since {}",
            if opts.dry_run { "dry-run " } else { "" },
            std::process::id(),
            now()
        ))?)
    };
    if state.has_release(&id) {
        return Err(Error::Usage(format!(
            "release {id} was deployed before ({}): release records are immutable; deploy it under another id (--release {id}-2)",
            state
                .dir()
                .join("releases")
                .join(format!("{id}.json"))
                .display()
        )));
    }
    if let Some(intr) = interrupted(&state, cfg, &run_id, &actor).await? {
        return Err(Error::Unsatisfied {
            class: ExitClass::Inconsistent,
            message: format!(
                "deploy {} of release {} was interrupted in step {} (the process was killed at {}): it may have changed the release or the database. Run `tidemark rollback` to undo it, then deploy again",
                intr.run_id,
                intr.release,
                intr.interrupted_in.map(|s| s.name()).unwrap_or("?"),
                intr.timeline.last().map(|t| t.at.as_str()).unwrap_or("?"),
            ),
        });
    }
    let previous = serving_release(&state)?;
    let run_dir = (!opts.dry_run).then(|| state.run_dir(&run_id));
    let mut rec = Recorder::new(run_dir.as_deref(), &run_id, &actor, listener)?;
    let started_at = now();
    rec.emit(EventKind::Started {
        run_id: run_id.clone(),
        kind: RunKind::Deploy,
        app: cfg.app.clone(),
        release: id.clone(),
        previous: previous.as_ref().map(|p| p.id.clone()),
        actor: actor.clone(),
        dry_run: opts.dry_run,
    })
    .await;

    let strat = strategy::for_config(cfg);
    let image = match &cfg.strategy {
        crate::config::StrategyConfig::Compose { image: Some(t), .. } => {
            Some(t.render_with(&|k| (k == "release").then(|| id.clone())))
        }
        _ => None,
    };
    let prev_target = previous.as_ref().map(|p| target_of(cfg, p));
    // The nginx strategy starts the new release on a free port of its range, never the one
    // the serving release holds.
    let port = match strat.as_nginx() {
        Some(ng) => {
            let avoid: Vec<u16> = prev_target
                .as_ref()
                .and_then(|p| p.port)
                .into_iter()
                .collect();
            ng.free_port(&avoid)
        }
        None => cfg.port,
    };
    let target = Target {
        release: id.clone(),
        dir: dir.clone(),
        env_file: env_path.clone(),
        port,
        image,
    };
    if let Some(p) = &previous
        && !p.dir.is_dir()
    {
        rec.warn(format!(
            "the directory of the serving release {} ({}) is gone: if this deploy fails, it cannot be started again",
            p.id,
            p.dir.display()
        ))
        .await;
    }

    // ---- preflight ----
    let t = rec.start(Step::Preflight).await;
    let mut db = match tidemark::connect(&inputs.url).await {
        Ok(d) => d,
        Err(e) => {
            rec.finish(
                Step::Preflight,
                t,
                StepOutcome::Failed,
                format!("cannot connect to the database: {e}"),
            )
            .await;
            return finish(
                cfg,
                &state,
                rec,
                &run_id,
                run_dir,
                Outcome::Failed,
                e.class().code(),
            )
            .await;
        }
    };
    let mut pf = preflight(cfg, inputs, db.as_mut(), &*strat, &target).await;
    if let Some(ng) = strat.as_nginx() {
        let (problems, warnings) = ng.preflight(prev_target.as_ref()).await;
        pf.problems.extend(problems);
        pf.warnings.extend(warnings);
    }
    for w in &pf.warnings {
        rec.warn(w.clone()).await;
    }
    let action = if previous.is_some() {
        Action::Recreate
    } else {
        Action::Start
    };
    let env_changed: Vec<String> = match (&env_path, &previous) {
        (Some(p), Some(prev))
            if prev.env_sha256.as_deref() != pf.env.as_ref().map(|e| e.sha256.as_str()) =>
        {
            EnvFile::changed_keys(p, &prev.env_keys, &prev.env_salt).unwrap_or_default()
        }
        _ => Vec::new(),
    };
    let mut reasons = Vec::new();
    match &previous {
        None => reasons.push("nothing serves yet".to_string()),
        Some(prev) => {
            reasons.push(format!("new release {id} replaces {}", prev.id));
            if prev.env_sha256.is_some()
                && prev.env_sha256.as_deref() != pf.env.as_ref().map(|e| e.sha256.as_str())
            {
                reasons.push(if env_changed.is_empty() {
                    "the env file changed".to_string()
                } else {
                    format!("the env file changed (keys: {})", env_changed.join(", "))
                });
            }
            if let Some(img) = &target.image
                && prev.artifact != *img
            {
                reasons.push(format!("the image changed ({} → {img})", prev.artifact));
            }
        }
    }
    if let (Some(ng), Some(port)) = (strat.as_nginx(), target.port) {
        reasons.push(match &previous {
            Some(prev) => format!(
                "nginx: {id} starts on 127.0.0.1:{port} beside {}, then {} % of clients",
                prev.id,
                ng.cfg
                    .steps
                    .iter()
                    .map(u8::to_string)
                    .collect::<Vec<_>>()
                    .join(" → ")
            ),
            None => format!("nginx: {id} starts on 127.0.0.1:{port}, then all traffic"),
        });
    }
    rec.emit(EventKind::Plan {
        action: action.name().to_string(),
        reason: reasons.join("; "),
        env_keys_changed: env_changed.clone(),
        migrations: pf.pending.clone(),
    })
    .await;
    if !pf.problems.is_empty() {
        let code = pf.class.code();
        rec.finish(
            Step::Preflight,
            t,
            StepOutcome::Failed,
            pf.problems.join("\n"),
        )
        .await;
        rec.note("preflight failed: nothing was changed").await;
        db.close().await;
        return finish(cfg, &state, rec, &run_id, run_dir, Outcome::Failed, code).await;
    }
    rec.finish(
        Step::Preflight,
        t,
        StepOutcome::Ok,
        format!(
            "{} pending migration(s); the release will {}",
            pf.pending.len(),
            action.name()
        ),
    )
    .await;
    if opts.dry_run {
        rec.note("dry run: stopping before anything changes").await;
        db.close().await;
        return finish(cfg, &state, rec, &run_id, None, Outcome::Failed, 0).await;
    }
    let Some(run_dir_path) = run_dir.clone() else {
        return Err(Error::Usage("internal: no run directory".into()));
    };
    let sh = shell(cfg, &run_dir_path);

    // The journal tables exist from here on (created under the migration lock).
    if let Err(e) = ensure_tables(db.as_mut(), &inputs.settings).await {
        rec.warn(format!("could not create tidemark's tables: {e}"))
            .await;
    } else if let Ok(j) = db.connect_other(&inputs.url).await {
        rec.attach_db(j).await;
    }

    // ---- backup ----
    let t = rec.start(Step::Backup).await;
    let mut backup_id = None;
    let store = if cfg.backup {
        backups_of(db.as_mut(), inputs, true).await?
    } else {
        None
    };
    match &store {
        None => {
            rec.finish(Step::Backup, t, StepOutcome::Skipped, "backups are off")
                .await
        }
        Some(store) => {
            let r = async {
                let dumper = tidemark::dumper(&inputs.url)?;
                backup::create(
                    db.as_mut(),
                    dumper.as_ref(),
                    &store.0,
                    Subject {
                        database_id: &store.1,
                        history_head: pf.head_before,
                        reason: format!("before deploy of {} release {id} (run {run_id})", cfg.app),
                        run_id: Some(&run_id),
                        inspect: &inputs.settings.inspect,
                    },
                )
                .await
            }
            .await;
            match r {
                Ok(m) => {
                    rec.emit(EventKind::BackupTaken { id: m.id.clone() }).await;
                    rec.finish(
                        Step::Backup,
                        t,
                        StepOutcome::Ok,
                        format!("backup {} ({} bytes)", m.id, m.size_bytes),
                    )
                    .await;
                    backup_id = Some(m.id);
                }
                Err(e) => {
                    rec.finish(Step::Backup, t, StepOutcome::Failed, e.to_string())
                        .await;
                    rec.note("the backup failed: nothing was changed").await;
                    db.close().await;
                    return finish(
                        cfg,
                        &state,
                        rec,
                        &run_id,
                        run_dir,
                        Outcome::Failed,
                        e.class().code(),
                    )
                    .await;
                }
            }
        }
    }

    // ---- migrate ----
    let t = rec.start(Step::Migrate).await;
    let mut applied: Vec<i64> = Vec::new();
    let mut head = pf.head_before;
    let mut fingerprint = pf.fingerprint_before.clone();
    if pf.pending.is_empty() {
        rec.finish(
            Step::Migrate,
            t,
            StepOutcome::Skipped,
            "no pending migrations",
        )
        .await;
    } else {
        match engine::up(
            db.as_mut(),
            &inputs.set,
            &UpTarget {
                to: None,
                single_transaction: false,
            },
            Allow::default(),
            &inputs.settings,
            &mut Quiet,
            None,
        )
        .await
        {
            Ok(r) => {
                applied = r.done.iter().map(|d| d.version).collect();
                head = applied.last().copied().or(head);
                if r.fingerprint.is_some() {
                    fingerprint = r.fingerprint.clone();
                }
                rec.emit(EventKind::MigrationsApplied {
                    versions: applied.clone(),
                    head,
                    fingerprint: fingerprint.clone(),
                })
                .await;
                rec.finish(
                    Step::Migrate,
                    t,
                    StepOutcome::Ok,
                    format!("applied {}", list(&applied)),
                )
                .await;
            }
            Err(e) => {
                let partial = match &e {
                    Error::MigrationFailed { applied, .. } => applied.clone(),
                    _ => Vec::new(),
                };
                rec.finish(Step::Migrate, t, StepOutcome::Failed, e.to_string())
                    .await;
                if !partial.is_empty() {
                    rec.emit(EventKind::MigrationsApplied {
                        versions: partial.clone(),
                        head: partial.last().copied(),
                        fingerprint: None,
                    })
                    .await;
                    rec.emit(EventKind::LeftToDo {
                        text: format!(
                            "migrations {} were applied before the failure; the previous release still serves. Fix the failing migration and deploy again, or revert them with `tidemark down --to {}`",
                            list(&partial),
                            pf.head_before.unwrap_or(0)
                        ),
                    })
                    .await;
                }
                rec.note("the release was not changed").await;
                db.close().await;
                return finish(
                    cfg,
                    &state,
                    rec,
                    &run_id,
                    run_dir,
                    Outcome::Failed,
                    e.class().code(),
                )
                .await;
            }
        }
    }

    let env_file = pf.env.clone();
    let unit_file = strat.files(&target).into_iter().next().map(|p| UnitFile {
        sha256: backup::sha256_file(&p).unwrap_or_default(),
        path: p,
    });
    let mut record = Release {
        app: cfg.app.clone(),
        id: id.clone(),
        run_id: run_id.clone(),
        strategy: strat.name().to_string(),
        dir: dir.clone(),
        artifact: strat.artifact(&target),
        env_file: env_path.clone(),
        env_sha256: env_file.as_ref().map(|e| e.sha256.clone()),
        env_keys: env_file
            .as_ref()
            .map(|e| e.keys.clone())
            .unwrap_or_default(),
        env_salt: env_file
            .as_ref()
            .map(|e| e.salt.clone())
            .unwrap_or_default(),
        unit_file,
        port: target.port,
        migration_head: head,
        fingerprint: fingerprint.clone(),
        migrations_applied: applied.clone(),
        backup_id: backup_id.clone(),
        previous: previous.as_ref().map(|p| p.id.clone()),
        started_at,
        finished_at: String::new(),
        outcome: Outcome::Failed,
        actor: actor.clone(),
    };

    // ---- release ----
    let t = rec.start(Step::Release).await;
    let failure: Option<Failure> = if let Some(ng) = strat.as_nginx() {
        nginx_release(
            ng,
            cfg,
            inputs,
            db.as_mut(),
            &sh,
            &target,
            prev_target.as_ref(),
            t,
            &mut rec,
        )
        .await
    } else {
        match strat
            .release(&sh, &target, prev_target.as_ref(), action)
            .await
        {
            Ok(did) => {
                for d in &did {
                    rec.note(d.clone()).await;
                }
                rec.finish(
                    Step::Release,
                    t,
                    StepOutcome::Ok,
                    format!("{} release {id}", action.name()),
                )
                .await;
                // ---- verify ----
                let t = rec.start(Step::Verify).await;
                match verify(cfg, inputs, db.as_mut(), &target, Require::Latest, &mut rec).await {
                    Ok(rounds) => {
                        rec.finish(
                            Step::Verify,
                            t,
                            StepOutcome::Ok,
                            format!(
                                "{rounds} round(s) of checks passed over {}",
                                humantime::format_duration(cfg.window)
                            ),
                        )
                        .await;
                        None
                    }
                    Err(f) => {
                        rec.finish(
                            Step::Verify,
                            t,
                            StepOutcome::Failed,
                            format!("{}: {}", f.check, f.detail),
                        )
                        .await;
                        Some(f)
                    }
                }
            }
            Err(e) => {
                rec.finish(Step::Release, t, StepOutcome::Failed, e.clone())
                    .await;
                let f = Failure {
                    check: "release".into(),
                    detail: e,
                    status: None,
                    body: None,
                };
                rec.emit(EventKind::CheckFailed {
                    check: f.check.clone(),
                    detail: f.detail.clone(),
                    status: None,
                    body: None,
                })
                .await;
                Some(f)
            }
        }
    };

    let (outcome, code) = match failure {
        None => {
            // ---- promote ----
            let t = rec.start(Step::Promote).await;
            record.outcome = Outcome::Promoted;
            record.finished_at = now();
            state.write_release(&record)?;
            state.set_serving(&id, &run_id)?;
            rec.emit(EventKind::Serving {
                release: id.clone(),
            })
            .await;
            if let Err(e) = releases_table::insert(db.as_mut(), &record).await {
                rec.warn(format!(
                    "the release record is kept locally only (database: {e})"
                ))
                .await;
            }
            match strat.promote(&sh, &target, prev_target.as_ref()).await {
                Ok(did) => {
                    for d in did {
                        rec.note(d).await;
                    }
                }
                Err(e) => {
                    rec.warn(format!("the previous release was not stopped: {e}"))
                        .await
                }
            }
            if let Some(cron) = cfg.cron.as_ref().filter(|c| c.install) {
                match install_cron(&cfg.app, cron) {
                    Ok(Some(what)) => rec.note(what).await,
                    Ok(None) => {}
                    Err(e) => {
                        rec.warn(format!("could not install the cron entries: {e}"))
                            .await
                    }
                }
            }
            rec.finish(
                Step::Promote,
                t,
                StepOutcome::Ok,
                format!("release {id} serves"),
            )
            .await;
            (Outcome::Promoted, 0)
        }
        Some(_) => {
            // ---- rollback ----
            let t = rec.start(Step::Rollback).await;
            let ok = roll_back(
                cfg,
                inputs,
                &mut db,
                &*strat,
                &sh,
                &target,
                prev_target.as_ref(),
                previous.as_ref(),
                &applied,
                pf.head_before,
                store.as_ref().map(|s| &s.0),
                backup_id.as_deref(),
                true,
                &mut rec,
            )
            .await;
            let (outcome, code) = if ok {
                (Outcome::RolledBack, ExitClass::RolledBack.code())
            } else {
                (Outcome::RollbackFailed, ExitClass::RollbackFailed.code())
            };
            rec.finish(
                Step::Rollback,
                t,
                if ok {
                    StepOutcome::Ok
                } else {
                    StepOutcome::Failed
                },
                if ok {
                    match &previous {
                        Some(p) => format!("release {} serves again", p.id),
                        None => format!("release {id} stopped; nothing served before it"),
                    }
                } else {
                    "the rollback did not complete: see what is left to do".to_string()
                },
            )
            .await;
            record.outcome = outcome;
            record.finished_at = now();
            if let Err(e) = state.write_release(&record) {
                rec.warn(format!("could not write the release record: {e}"))
                    .await;
            }
            if let Err(e) = releases_table::insert(db.as_mut(), &record).await {
                rec.warn(format!(
                    "the release record is kept locally only (database: {e})"
                ))
                .await;
            }
            (outcome, code)
        }
    };
    db.close().await;
    finish(cfg, &state, rec, &run_id, run_dir, outcome, code).await
}

fn list(v: &[i64]) -> String {
    v.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
}

async fn ensure_tables(db: &mut dyn Driver, settings: &Settings) -> Result<()> {
    let guard = engine::acquire(db, settings, &mut Quiet).await?;
    let r = async {
        tidemark::history::ensure(db).await?;
        releases_table::ensure(db).await
    }
    .await;
    let _ = guard.release().await;
    r
}

async fn preflight(
    cfg: &DeployConfig,
    inputs: &Inputs,
    db: &mut dyn Driver,
    strat: &dyn ReleaseStrategy,
    target: &Target,
) -> Preflight {
    let mut pf = Preflight {
        problems: Vec::new(),
        warnings: Vec::new(),
        class: ExitClass::Inconsistent,
        pending: Vec::new(),
        head_before: None,
        fingerprint_before: None,
        env: None,
    };
    if cfg.db_policy == DbPolicy::Restore && (inputs.backup_dir.is_none() || !cfg.backup) {
        pf.problems.push(
            "rollback.database = \"restore\" needs the pre-deploy backup, but backups are off (tidemark.toml [backup] enabled)".into(),
        );
    }
    for a in &cfg.artifacts {
        match &cfg.artifact_command {
            None => {
                let p = target.dir.join(a);
                if !p.exists() {
                    pf.problems.push(format!(
                        "artifact `{a}` is missing from the release ({})",
                        p.display()
                    ));
                }
            }
            Some(t) => {
                let cmd = t.render_shell(&|k| match k {
                    "artifact" => Some(a.clone()),
                    "image" => target.image.clone(),
                    "dir" => Some(target.dir.display().to_string()),
                    "release" => Some(target.release.clone()),
                    _ => None,
                });
                let out = tokio::time::timeout(
                    Duration::from_secs(120),
                    tokio::process::Command::new("sh")
                        .arg("-c")
                        .arg(&cmd)
                        .current_dir(&target.dir)
                        .stdin(std::process::Stdio::null())
                        .kill_on_drop(true)
                        .output(),
                )
                .await;
                let what = target
                    .image
                    .as_ref()
                    .map(|i| format!("image {i}"))
                    .unwrap_or_else(|| "the release".into());
                match out {
                    Ok(Ok(o)) if o.status.success() => {}
                    Ok(Ok(o)) => pf.problems.push(format!(
                        "artifact `{a}` is missing from {what} (`{cmd}` failed: {}{})",
                        o.status,
                        String::from_utf8_lossy(&o.stderr)
                            .lines()
                            .last()
                            .map(|l| format!(": {l}"))
                            .unwrap_or_default()
                    )),
                    Ok(Err(e)) => pf
                        .problems
                        .push(format!("artifact `{a}`: could not run `{cmd}`: {e}")),
                    Err(_) => pf.problems.push(format!(
                        "artifact `{a}`: `{cmd}` did not finish within 2 minutes"
                    )),
                }
            }
        }
    }
    if let Some(cron) = &cfg.cron {
        match crontab_lines(cron.file.as_deref()) {
            Ok(lines) => {
                let missing: Vec<&String> = cron
                    .entries
                    .iter()
                    .filter(|e| !lines.contains(&normalize_cron(e)))
                    .collect();
                if !missing.is_empty() {
                    let where_ = cron
                        .file
                        .as_ref()
                        .map(|f| f.display().to_string())
                        .unwrap_or_else(|| "the user's crontab".into());
                    let msg = format!(
                        "cron entr{} not installed in {where_}: {}",
                        if missing.len() == 1 { "y" } else { "ies" },
                        missing
                            .iter()
                            .map(|m| format!("`{m}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    match (cron.install, cron.missing) {
                        (true, _) => pf.warnings_push(format!(
                            "{msg}; they will be installed when the release is promoted"
                        )),
                        (false, Severity::Error) => pf.problems.push(msg),
                        (false, Severity::Warning) => pf.warnings_push(msg),
                    }
                }
            }
            Err(e) => pf.problems.push(format!(
                "cannot read the crontab to check cron entries: {e}"
            )),
        }
    }
    if let Some(prod) = &cfg.production_file {
        if !prod.is_file() {
            pf.problems.push(format!(
                "the production file {} does not exist",
                prod.display()
            ));
        }
        for f in strat.files(target) {
            if !same_file(&f, prod) {
                pf.problems.push(format!(
                    "the release would use {}, not the production file {}: refused",
                    f.display(),
                    prod.display()
                ));
            }
        }
    }
    if let Some(p) = &target.env_file {
        match EnvFile::read(p, &envfile::new_salt()) {
            Ok(e) => pf.env = Some(e),
            Err(e) => pf.problems.push(format!("cannot read the env file: {e}")),
        }
    }
    // The database: consistent, no drift, lint clean; the pending migrations classified.
    let st = match engine::status(db, &inputs.set, &inputs.settings, true).await {
        Ok(st) => st,
        Err(e) => {
            pf.class = e.class();
            pf.problems
                .push(format!("cannot read the database status: {e}"));
            return pf;
        }
    };
    pf.head_before = st.current_version;
    pf.fingerprint_before = st.drift.live_fingerprint.clone();
    if let Err(e) = engine::check_consistent(&st, Allow::default()) {
        pf.problems.push(e.to_string());
    }
    let pending: Vec<&Migration> = st
        .pending()
        .filter_map(|e| inputs.set.get(e.version))
        .collect();
    let dialect = inputs.url.dialect();
    pf.pending = pending
        .iter()
        .map(|m| PlannedMigration {
            version: m.version,
            name: m.name.clone(),
            class: classify(m, dialect).to_string(),
        })
        .collect();
    if cfg.lint {
        let linter = tidemark_lint::Linter::new(dialect, inputs.lint_levels.clone());
        match linter.lint(pending.iter().copied()) {
            Ok(findings) => {
                for f in findings
                    .iter()
                    .filter(|f| f.severity == tidemark_lint::Severity::Error)
                {
                    let at = f.position();
                    pf.problems.push(format!(
                        "lint: {}:{}: {} [{}]",
                        f.source.path.display(),
                        at.line,
                        f.message,
                        f.rule
                    ));
                }
            }
            Err(e) => pf.problems.push(format!("lint: {e}")),
        }
    }
    pf
}

impl Preflight {
    fn warnings_push(&mut self, msg: String) {
        self.warnings.push(msg);
    }
}

/// Run the checks for the verify window: every `interval`, each HTTP check and the schema
/// gate. `failure_threshold` failed rounds in a row fail the release; the window passes only
/// if its last round passed. Returns the number of rounds.
async fn verify(
    cfg: &DeployConfig,
    inputs: &Inputs,
    db: &mut dyn Driver,
    target: &Target,
    require: Require,
    rec: &mut Recorder<'_>,
) -> std::result::Result<u32, Failure> {
    let started = Instant::now();
    let mut consecutive = 0u32;
    let mut rounds = 0u32;
    let mut first: Option<Failure> = None;
    loop {
        let round_started = Instant::now();
        rounds += 1;
        let result = round(cfg, inputs, db, target, require).await;
        match result {
            Ok(()) => consecutive = 0,
            Err(f) => {
                consecutive += 1;
                if first.is_none() {
                    rec.emit(EventKind::CheckFailed {
                        check: f.check.clone(),
                        detail: f.detail.clone(),
                        status: f.status,
                        body: f.body.clone(),
                    })
                    .await;
                    first = Some(f.clone());
                }
                if consecutive >= cfg.failure_threshold {
                    rec.note(format!(
                        "{consecutive} failed check round(s) in a row (threshold {}): {}: {}",
                        cfg.failure_threshold, f.check, f.detail
                    ))
                    .await;
                    return Err(first.unwrap_or(f));
                }
            }
        }
        // A window that ends on failures below the threshold goes on until a round passes or
        // the threshold is reached.
        if started.elapsed() >= cfg.window && consecutive == 0 {
            return Ok(rounds);
        }
        let next = cfg.interval.saturating_sub(round_started.elapsed());
        tokio::time::sleep(next).await;
    }
}

async fn round(
    cfg: &DeployConfig,
    inputs: &Inputs,
    db: &mut dyn Driver,
    target: &Target,
    require: Require,
) -> std::result::Result<(), Failure> {
    for h in &cfg.http {
        let url = h.url.render_with(&|k| {
            (k == "port")
                .then(|| target.port.map(|p| p.to_string()))
                .flatten()
        });
        check::http(h, &url, &target.release).await?;
    }
    if cfg.schema_gate {
        check::schema(db, &inputs.set, &inputs.settings, require).await?;
    }
    Ok(())
}

/// Wait until the release passes one round of checks (after a rollback), at most the verify
/// window plus the failure threshold's worth of intervals.
pub(crate) async fn wait_serving(
    cfg: &DeployConfig,
    inputs: &Inputs,
    db: &mut dyn Driver,
    target: &Target,
    require: Require,
) -> std::result::Result<(), Failure> {
    let limit = cfg.window + cfg.interval * cfg.failure_threshold;
    let started = Instant::now();
    let pause = cfg.interval.min(Duration::from_millis(100));
    loop {
        match round(cfg, inputs, db, target, require).await {
            Ok(()) => return Ok(()),
            Err(f) if started.elapsed() >= limit => return Err(f),
            Err(_) => tokio::time::sleep(pause).await,
        }
    }
}

/// The nginx strategy's release and verify steps: start the new release beside the old one,
/// probe it directly, then move the traffic in the configured steps, each switch proven
/// through nginx and each step held for the verify window with the checks and the
/// per-upstream 5xx rate from nginx's access log.
#[allow(clippy::too_many_arguments)]
async fn nginx_release(
    ng: &NginxStrategy,
    cfg: &DeployConfig,
    inputs: &Inputs,
    db: &mut dyn Driver,
    sh: &Shell,
    target: &Target,
    previous: Option<&Target>,
    t: Instant,
    rec: &mut Recorder<'_>,
) -> Option<Failure> {
    let fail = |check: &str, detail: String| Failure {
        check: check.to_string(),
        detail,
        status: None,
        body: None,
    };
    let Some(port) = target.port else {
        let f = fail(
            "release",
            format!(
                "no free port in nginx.ports {}-{}",
                ng.cfg.ports.0, ng.cfg.ports.1
            ),
        );
        rec.finish(Step::Release, t, StepOutcome::Failed, f.detail.clone())
            .await;
        emit_failure(rec, &f).await;
        return Some(f);
    };
    match ng.release(sh, target, previous, Action::Start).await {
        Ok(did) => {
            for d in did {
                rec.note(d).await;
            }
        }
        Err(e) => {
            let f = fail("release", e);
            rec.finish(Step::Release, t, StepOutcome::Failed, f.detail.clone())
                .await;
            emit_failure(rec, &f).await;
            return Some(f);
        }
    }
    // Probed directly, before nginx sends it anything.
    if let Err(f) = wait_serving(cfg, inputs, db, target, Require::Latest).await {
        emit_failure(rec, &f).await;
        rec.finish(
            Step::Release,
            t,
            StepOutcome::Failed,
            format!(
                "release {} does not pass its checks on 127.0.0.1:{port}: nothing was switched",
                target.release
            ),
        )
        .await;
        return Some(f);
    }
    rec.finish(
        Step::Release,
        t,
        StepOutcome::Ok,
        format!(
            "release {} runs on 127.0.0.1:{port}{} and passes its checks directly",
            target.release,
            previous
                .map(|p| format!(" beside {}", p.release))
                .unwrap_or_default()
        ),
    )
    .await;
    let t = rec.start(Step::Verify).await;
    let steps = match previous {
        Some(_) => ng.cfg.steps.clone(),
        None => vec![100],
    };
    if let Some(p) = previous {
        ng.remember_live(&p.release).await;
    }
    let mut rounds = 0;
    for pct in steps {
        let routing = Routing {
            new: (target.release.clone(), port),
            old: previous.and_then(|p| Some((p.release.clone(), p.port?))),
            pct,
        };
        match ng.switch(sh, &routing).await {
            Ok(d) => rec.note(d).await,
            Err(e) => {
                let f = fail("nginx switch", e);
                emit_failure(rec, &f).await;
                rec.finish(Step::Verify, t, StepOutcome::Failed, f.detail.clone())
                    .await;
                return Some(f);
            }
        }
        // From the proven switch on (the proof's own requests are not the step's traffic).
        // The first release has no previous one to compare with or return traffic to: its
        // verify window is the direct checks only (said so in the timeline).
        let cursor = match previous {
            Some(_) => ng.cfg.access_log.as_deref().map(LogCursor::at_end),
            None => {
                if ng.cfg.max_5xx_rate.is_some() {
                    rec.note(format!(
                        "first release of {}: the upstream 5xx gate applies from the next release on (nothing to return traffic to)",
                        cfg.app
                    ))
                    .await;
                }
                None
            }
        };
        match verify_step(cfg, inputs, db, ng, target, pct, cursor, rec).await {
            Ok((n, what)) => {
                rounds += n;
                rec.note(what).await;
            }
            Err(f) => {
                rec.finish(
                    Step::Verify,
                    t,
                    StepOutcome::Failed,
                    format!("{}: {}", f.check, f.detail),
                )
                .await;
                return Some(f);
            }
        }
    }
    rec.finish(
        Step::Verify,
        t,
        StepOutcome::Ok,
        format!(
            "{rounds} round(s) of checks passed in {} step(s)",
            ng.cfg.steps.len()
        ),
    )
    .await;
    None
}

async fn emit_failure(rec: &mut Recorder<'_>, f: &Failure) {
    rec.emit(EventKind::CheckFailed {
        check: f.check.clone(),
        detail: f.detail.clone(),
        status: f.status,
        body: f.body.clone(),
    })
    .await;
}

/// One step of an nginx release, held for the verify window: the direct checks every
/// interval (failure threshold as in `verify`), and the new release's upstream 5xx rate from
/// the access log. A rate above the limit fails at once (given `min_requests` answers); too
/// few answers at the end of the window is inconclusive, extended or failed as configured,
/// never a pass.
#[allow(clippy::too_many_arguments)]
async fn verify_step(
    cfg: &DeployConfig,
    inputs: &Inputs,
    db: &mut dyn Driver,
    ng: &NginxStrategy,
    target: &Target,
    pct: u8,
    mut cursor: Option<LogCursor>,
    rec: &mut Recorder<'_>,
) -> std::result::Result<(u32, String), Failure> {
    let port = target.port.unwrap_or(0);
    let started = Instant::now();
    let mut window = cfg.window;
    let mut extensions = 0;
    let mut consecutive = 0u32;
    let mut rounds = 0u32;
    let mut first: Option<Failure> = None;
    let gate = ng.cfg.max_5xx_rate.filter(|_| cursor.is_some());
    let name = format!(
        "upstream 5xx rate of release {} through nginx (step {pct}%)",
        target.release
    );
    let rate_failure = |c: &LogCursor, max: f64| Failure {
        check: name.clone(),
        detail: format!(
            "{} of {} upstream answers were 5xx ({:.0}%, limit {:.0}%)",
            c.errors,
            c.answers,
            c.errors as f64 * 100.0 / c.answers as f64,
            max * 100.0
        ),
        status: Some(500),
        body: None,
    };
    loop {
        let round_started = Instant::now();
        rounds += 1;
        let mut result = round(cfg, inputs, db, target, Require::Latest).await;
        if result.is_ok()
            && let (Some(max), Some(c)) = (gate, cursor.as_mut())
        {
            c.read(port);
            if c.answers >= u64::from(ng.cfg.min_requests)
                && c.errors as f64 / c.answers as f64 > max
            {
                let f = rate_failure(c, max);
                emit_failure(rec, &f).await;
                return Err(f);
            }
        }
        match result.as_mut() {
            Ok(()) => consecutive = 0,
            Err(f) => {
                consecutive += 1;
                if first.is_none() {
                    emit_failure(rec, f).await;
                    first = Some(f.clone());
                }
                if consecutive >= cfg.failure_threshold {
                    let f = f.clone();
                    rec.note(format!(
                        "{consecutive} failed check round(s) in a row (threshold {}): {}: {}",
                        cfg.failure_threshold, f.check, f.detail
                    ))
                    .await;
                    return Err(first.unwrap_or(f));
                }
            }
        }
        if started.elapsed() >= window && consecutive == 0 {
            let Some((max, c)) = gate.zip(cursor.as_mut()) else {
                return Ok((
                    rounds,
                    format!(
                        "step {pct}%: {rounds} round(s) of checks passed over {}",
                        humantime::format_duration(window)
                    ),
                ));
            };
            c.read(port);
            if c.answers < u64::from(ng.cfg.min_requests) {
                let why = format!(
                    "inconclusive: {} upstream answer(s) from release {} in {} (nginx.min_requests = {}); too few to judge is never a pass",
                    c.answers,
                    target.release,
                    humantime::format_duration(window),
                    ng.cfg.min_requests
                );
                match ng.cfg.inconclusive {
                    Inconclusive::Extend(n) if extensions < n => {
                        extensions += 1;
                        window += cfg.window;
                        rec.note(format!(
                            "step {pct}%: {why}: held for another {} (extension {extensions} of {n})",
                            humantime::format_duration(cfg.window)
                        ))
                        .await;
                    }
                    _ => {
                        let f = Failure {
                            check: name.clone(),
                            detail: why,
                            status: None,
                            body: None,
                        };
                        emit_failure(rec, &f).await;
                        return Err(f);
                    }
                }
            } else if c.errors as f64 / c.answers as f64 > max {
                let f = rate_failure(c, max);
                emit_failure(rec, &f).await;
                return Err(f);
            } else {
                return Ok((
                    rounds,
                    format!(
                        "step {pct}%: {rounds} round(s) of checks passed over {}; release {}: {} upstream answers, {} 5xx (limit {:.0}%)",
                        humantime::format_duration(window),
                        target.release,
                        c.answers,
                        c.errors,
                        max * 100.0
                    ),
                ));
            }
        }
        let next = cfg.interval.saturating_sub(round_started.elapsed());
        tokio::time::sleep(next).await;
    }
}

/// What to do with the database on a rollback, decided before anything is touched.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DbMove {
    Nothing,
    Keep(String),
    Down(i64),
    Restore(String),
}

/// Decide the database move for reverting `versions` (applied after `to`).
fn decide(
    cfg: &DeployConfig,
    set: &MigrationSet,
    dialect: tidemark::Dialect,
    versions: &[i64],
    to: Option<i64>,
    backup_id: Option<&str>,
) -> std::result::Result<DbMove, String> {
    if versions.is_empty() {
        return Ok(DbMove::Nothing);
    }
    let mut classes = Vec::new();
    let mut without_down = Vec::new();
    for v in versions {
        match set.get(*v) {
            Some(m) => {
                classes.push((*v, classify(m, dialect)));
                if m.usable_down(dialect).is_none() {
                    without_down.push(*v);
                }
            }
            None => {
                classes.push((*v, "unknown"));
                without_down.push(*v);
            }
        }
    }
    let not_expand: Vec<String> = classes
        .iter()
        .filter(|(_, c)| *c != "expand-only")
        .map(|(v, c)| format!("{v} ({c})"))
        .collect();
    let down = || {
        if without_down.is_empty() {
            Ok(DbMove::Down(to.unwrap_or(0)))
        } else {
            Err(format!(
                "migration(s) {} have no down script",
                list(&without_down)
            ))
        }
    };
    let restore = || match backup_id {
        Some(b) => Ok(DbMove::Restore(b.to_string())),
        None => Err("there is no pre-deploy backup to restore".to_string()),
    };
    match cfg.db_policy {
        DbPolicy::Keep => {
            if not_expand.is_empty() {
                Ok(DbMove::Keep(format!(
                    "schema kept: migration(s) {} are expand-only (policy keep)",
                    list(versions)
                )))
            } else {
                Err(format!(
                    "policy keep, but migration(s) {} are not expand-only: the previous release may not run on this schema",
                    not_expand.join(", ")
                ))
            }
        }
        DbPolicy::Down => down(),
        DbPolicy::Restore => restore(),
        DbPolicy::Auto => {
            if not_expand.is_empty() {
                return Ok(DbMove::Keep(format!(
                    "schema kept: migration(s) {} are expand-only, the previous release runs on it (policy auto)",
                    list(versions)
                )));
            }
            match down() {
                Ok(m) => Ok(m),
                Err(why_not_down) => {
                    if cfg.allow_data_loss {
                        restore().map_err(|e| format!("{why_not_down}, and {e}"))
                    } else {
                        Err(format!(
                            "{why_not_down} and migration(s) {} are not expand-only; restoring the pre-deploy backup would lose the writes made since it, which rollback.allow_data_loss does not allow: decide between `tidemark backup restore {}` and fixing forward",
                            not_expand.join(", "),
                            backup_id.unwrap_or("<backup>")
                        ))
                    }
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn apply_db_move(
    mv: &DbMove,
    inputs: &Inputs,
    db: &mut Box<dyn Driver>,
    store: Option<&Store>,
    rec: &mut Recorder<'_>,
) -> std::result::Result<(), String> {
    match mv {
        DbMove::Nothing => Ok(()),
        DbMove::Keep(why) => {
            rec.note(why.clone()).await;
            Ok(())
        }
        DbMove::Down(to) => {
            match engine::down(
                db.as_mut(),
                &inputs.set,
                DownTarget::To(*to),
                false,
                &inputs.settings,
                &mut Quiet,
                None,
            )
            .await
            {
                Ok(r) => {
                    let versions: Vec<i64> = r.done.iter().map(|d| d.version).collect();
                    rec.emit(EventKind::MigrationsReverted { versions }).await;
                    Ok(())
                }
                Err(e) => Err(format!(
                    "reverting the migrations with their down scripts failed: {e}"
                )),
            }
        }
        DbMove::Restore(id) => {
            // A restore replaces the database and ends every session on it (PostgreSQL
            // terminates them): journal locally meanwhile, then connect again.
            if let Some(j) = rec.detach_db() {
                j.close().await;
            }
            let r = async {
                let store = store.ok_or_else(|| Error::Usage("backups are off".into()))?;
                let m = store.get(id)?;
                let dumper = tidemark::dumper(&inputs.url)?;
                // As `backup restore` does: under the migration lock, into a side database,
                // checked there, swapped in one step; the database keeps its own identity.
                let own_id =
                    tidemark::identity::ensure_locked(db.as_mut(), inputs.settings.lock_timeout)
                        .await?;
                let lock = db.lock(inputs.settings.lock_timeout, &mut ()).await?;
                let detail = serde_json::json!({ "backup_id": m.id, "by": "deploy rollback" });
                backup::restore(
                    db.as_mut(),
                    dumper.as_ref(),
                    store,
                    &m,
                    lock,
                    backup::RestoreInto {
                        database_id: &own_id,
                        inspect: &inputs.settings.inspect,
                        journal: Some(tidemark::history::JournalWrite {
                            run_id: &inputs.settings.run_id,
                            action: "restore",
                            version: None,
                            detail: Some(detail.to_string()),
                            actor: &inputs.settings.actor,
                        }),
                    },
                )
                .await
                .map(drop)
            }
            .await;
            match tidemark::connect(&inputs.url).await {
                Ok(fresh) => {
                    let old = std::mem::replace(db, fresh);
                    old.close().await;
                }
                Err(e) => {
                    return Err(format!(
                        "cannot connect to the database after restoring backup {id}: {e}"
                    ));
                }
            }
            if let Ok(j) = tidemark::connect(&inputs.url).await {
                // The restored journal ends where the backup was taken: journal again what
                // this run did since.
                let from = rec
                    .events
                    .iter()
                    .position(|e| matches!(&e.kind, EventKind::BackupTaken { id: b } if b == id))
                    .map(|i| i + 1)
                    .unwrap_or(rec.events.len());
                rec.attach_db_from(j, from).await;
            }
            match r {
                Ok(()) => {
                    rec.emit(EventKind::BackupRestored { id: id.clone() }).await;
                    Ok(())
                }
                Err(e) => Err(format!("restoring backup {id} failed: {e}")),
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn roll_back(
    cfg: &DeployConfig,
    inputs: &Inputs,
    db: &mut Box<dyn Driver>,
    strat: &dyn ReleaseStrategy,
    sh: &Shell,
    failed: &Target,
    prev_target: Option<&Target>,
    previous: Option<&Release>,
    applied: &[i64],
    head_before: Option<i64>,
    store: Option<&Store>,
    backup_id: Option<&str>,
    touch_app: bool,
    rec: &mut Recorder<'_>,
) -> bool {
    let mut ok = true;
    // A strategy that kept the previous release running (nginx) switches the traffic back
    // first: that release already runs on this schema, and every second counts. Otherwise
    // the database first: the previous release's own gate must pass when it starts.
    let app_first = touch_app && strat.keeps_previous() && prev_target.is_some();
    if app_first && let (Some(pt), Some(prev)) = (prev_target, previous) {
        match strat.switch_back(sh, failed, pt).await {
            Ok(did) => {
                for d in did {
                    rec.note(d).await;
                }
                rec.emit(EventKind::Serving {
                    release: prev.id.clone(),
                })
                .await;
                for d in strat.after_switch_back(sh, failed).await {
                    rec.note(d).await;
                }
            }
            Err(e) => {
                rec.emit(EventKind::LeftToDo {
                    text: format!(
                        "traffic could not be switched back to release {}: {e}",
                        prev.id
                    ),
                })
                .await;
                return false;
            }
        }
    }
    match decide(
        cfg,
        &inputs.set,
        inputs.url.dialect(),
        applied,
        head_before,
        backup_id,
    ) {
        Ok(mv) => {
            if let Err(e) = apply_db_move(&mv, inputs, db, store, rec).await {
                ok = false;
                rec.emit(EventKind::LeftToDo {
                    text: format!(
                        "the database is still at the failed release's schema: {e}. Bring it back by hand (`tidemark down --to {}` or `tidemark backup restore {}`), then run `tidemark check`",
                        head_before.unwrap_or(0),
                        backup_id.unwrap_or("<backup>")
                    ),
                })
                .await;
            }
        }
        Err(why) => {
            ok = false;
            rec.emit(EventKind::LeftToDo {
                text: format!(
                    "the database was left at the failed release's schema (migrations {}): {why}",
                    list(applied)
                ),
            })
            .await;
        }
    }
    // Then the application.
    match (prev_target, previous) {
        (Some(pt), Some(prev)) => {
            let switched = if app_first {
                Ok(Vec::new())
            } else if touch_app {
                strat.switch_back(sh, failed, pt).await
            } else {
                Ok(vec![format!(
                    "release {} was never replaced: it still serves",
                    prev.id
                )])
            };
            match switched {
                Ok(did) => {
                    for d in did {
                        rec.note(d).await;
                    }
                }
                Err(e) => {
                    rec.emit(EventKind::LeftToDo {
                        text: format!("release {} could not be started again: {e}", prev.id),
                    })
                    .await;
                    return false;
                }
            }
            let require = match prev.migration_head {
                Some(h) if inputs.set.get(h).is_some() => Require::Version(h),
                _ => Require::Latest,
            };
            let require = if ok { require } else { Require::Latest };
            let cfg_no_gate;
            let cfg_used = if ok {
                cfg
            } else {
                // The schema is not the previous release's: its gate cannot pass; the HTTP
                // checks still say whether it serves.
                cfg_no_gate = DeployConfig {
                    schema_gate: false,
                    ..cfg.clone()
                };
                &cfg_no_gate
            };
            let has_checks = !cfg_used.http.is_empty() || cfg_used.schema_gate;
            if has_checks {
                match wait_serving(cfg_used, inputs, db.as_mut(), pt, require).await {
                    Ok(()) if app_first => {}
                    Ok(()) => {
                        rec.emit(EventKind::Serving {
                            release: prev.id.clone(),
                        })
                        .await;
                    }
                    Err(f) => {
                        rec.emit(EventKind::LeftToDo {
                            text: format!(
                                "release {} was started again but does not pass its checks: {}: {}",
                                prev.id, f.check, f.detail
                            ),
                        })
                        .await;
                        return false;
                    }
                }
            }
        }
        _ if !touch_app => {
            rec.note("no release was started: nothing to stop").await;
        }
        _ => match strat.stop(sh, failed).await {
            Ok(did) => {
                for d in did {
                    rec.note(d).await;
                }
                rec.note("no release served before this one: nothing to return to")
                    .await;
            }
            Err(e) => {
                rec.emit(EventKind::LeftToDo {
                    text: format!(
                        "the failed release {} could not be stopped: {e}",
                        failed.release
                    ),
                })
                .await;
                return false;
            }
        },
    }
    ok
}

async fn finish(
    cfg: &DeployConfig,
    state: &State,
    mut rec: Recorder<'_>,
    run_id: &str,
    run_dir: Option<PathBuf>,
    outcome: Outcome,
    exit_code: i32,
) -> Result<RunResult> {
    let t = rec.start(Step::Report).await;
    rec.finish(
        Step::Report,
        t,
        StepOutcome::Ok,
        run_dir
            .as_ref()
            .map(|d| d.join("report.md").display().to_string())
            .unwrap_or_else(|| "dry run: no report written".into()),
    )
    .await;
    rec.emit(EventKind::Finished { outcome, exit_code }).await;
    let events = rec.close().await;
    let report = Report::from_events(&cfg.app, &events);
    if let Some(d) = &run_dir {
        report.write(d)?;
    }
    let _ = state;
    Ok(RunResult {
        run_id: run_id.to_string(),
        outcome,
        exit_code,
        report,
        run_dir,
    })
}

/// Roll back on demand: the serving release is replaced by `to` (default: the release that
/// served before it), with the database moved per policy, and the same checks as a deploy.
pub async fn rollback(
    cfg: &DeployConfig,
    inputs: &Inputs,
    to: Option<&str>,
    listener: &mut dyn Listener,
) -> Result<RunResult> {
    let state = State::open(&cfg.state_dir)?;
    let run_id = inputs.settings.run_id.clone();
    let actor = inputs.settings.actor.clone();
    let _lock = state.lock(&format!(
        "rollback, run {run_id} by {actor} (pid {}) since {}",
        std::process::id(),
        now()
    ))?;
    if let Some(intr) = interrupted(&state, cfg, &run_id, &actor).await? {
        return undo_interrupted(cfg, inputs, &state, intr, listener).await;
    }
    let Some(current) = serving_release(&state)? else {
        return Err(Error::Usage(format!(
            "no release of {} is serving (nothing in {}): nothing to roll back",
            cfg.app,
            state.dir().display()
        )));
    };
    let target = match to {
        Some(id) => state.release(id)?.ok_or_else(|| {
            Error::Usage(format!(
                "there is no release {id} (see `tidemark releases`)"
            ))
        })?,
        None => {
            let prev = current.previous.clone().ok_or_else(|| {
                Error::Usage(format!(
                    "release {} has no previous release to return to; name one with --to",
                    current.id
                ))
            })?;
            state
                .release(&prev)?
                .ok_or_else(|| Error::Usage(format!("the record of release {prev} is gone")))?
        }
    };
    if target.id == current.id {
        return Err(Error::Usage(format!(
            "release {} is already serving",
            target.id
        )));
    }
    if target.outcome != Outcome::Promoted {
        return Err(Error::Unsatisfied {
            class: ExitClass::Inconsistent,
            message: format!(
                "release {} never passed verification ({}): refusing to return to it",
                target.id,
                target.outcome.name()
            ),
        });
    }
    if !target.dir.is_dir() {
        return Err(Error::Unsatisfied {
            class: ExitClass::Inconsistent,
            message: format!(
                "the directory of release {} ({}) is gone: refusing",
                target.id,
                target.dir.display()
            ),
        });
    }
    let run_dir = state.run_dir(&run_id);
    let mut rec = Recorder::new(Some(&run_dir), &run_id, &actor, listener)?;
    rec.emit(EventKind::Started {
        run_id: run_id.clone(),
        kind: RunKind::Rollback,
        app: cfg.app.clone(),
        release: target.id.clone(),
        previous: Some(current.id.clone()),
        actor: actor.clone(),
        dry_run: false,
    })
    .await;
    let t = rec.start(Step::Preflight).await;
    let mut db = match tidemark::connect(&inputs.url).await {
        Ok(d) => d,
        Err(e) => {
            rec.finish(
                Step::Preflight,
                t,
                StepOutcome::Failed,
                format!("cannot connect to the database: {e}"),
            )
            .await;
            return finish(
                cfg,
                &state,
                rec,
                &run_id,
                Some(run_dir),
                Outcome::Failed,
                e.class().code(),
            )
            .await;
        }
    };
    // Is the target's schema reachable from the live one?
    let st = match engine::status(db.as_mut(), &inputs.set, &inputs.settings, true).await {
        Ok(s) => s,
        Err(e) => {
            rec.finish(Step::Preflight, t, StepOutcome::Failed, e.to_string())
                .await;
            db.close().await;
            return finish(
                cfg,
                &state,
                rec,
                &run_id,
                Some(run_dir),
                Outcome::Failed,
                e.class().code(),
            )
            .await;
        }
    };
    let live_head = st.current_version.unwrap_or(0);
    let target_head = target.migration_head.unwrap_or(0);
    let order = |v: i64| inputs.set.position(v);
    let to_revert: Vec<i64> = st
        .entries
        .iter()
        .filter(|e| e.state.is_applied())
        .filter(|e| match (order(e.version), order(target_head)) {
            (Some(a), Some(b)) => a > b,
            (Some(_), None) => target_head == 0,
            _ => false,
        })
        .map(|e| e.version)
        .collect();
    let behind = match (order(live_head), order(target_head)) {
        (Some(a), Some(b)) => a < b,
        (None, Some(_)) => true,
        _ => false,
    };
    let restore_backup = if target.id == current.previous.clone().unwrap_or_default() {
        current.backup_id.clone()
    } else {
        None
    };
    let store = backups_of(db.as_mut(), inputs, false)
        .await
        .ok()
        .flatten()
        .map(|s| s.0);
    let mv = if behind {
        Err(format!(
            "the database is at {live_head}, behind release {}'s {target_head}: deploy it instead",
            target.id
        ))
    } else {
        let mut v = to_revert.clone();
        v.reverse();
        decide(
            cfg,
            &inputs.set,
            inputs.url.dialect(),
            &v,
            target.migration_head,
            restore_backup.as_deref(),
        )
    };
    let mv = match mv {
        Ok(m) => m,
        Err(why) => {
            let msg = format!(
                "refusing to roll back to release {}: {why} (boundary: migration {} → {})",
                target.id, live_head, target_head
            );
            rec.finish(Step::Preflight, t, StepOutcome::Failed, msg)
                .await;
            rec.note("nothing was changed").await;
            db.close().await;
            return finish(
                cfg,
                &state,
                rec,
                &run_id,
                Some(run_dir),
                Outcome::Failed,
                ExitClass::Inconsistent.code(),
            )
            .await;
        }
    };
    rec.finish(
        Step::Preflight,
        t,
        StepOutcome::Ok,
        format!("release {} → {}", current.id, target.id),
    )
    .await;
    if let Ok(mut j) = db.connect_other(&inputs.url).await {
        if matches!(tidemark::history::exists(j.as_mut()).await, Ok(true)) {
            rec.attach_db(j).await;
        } else {
            j.close().await;
        }
    }
    let strat = strategy::for_config(cfg);
    let sh = shell(cfg, &run_dir);
    let t = rec.start(Step::Rollback).await;
    let mut ok = true;
    if let Err(e) = apply_db_move(&mv, inputs, &mut db, store.as_ref(), &mut rec).await {
        ok = false;
        rec.emit(EventKind::LeftToDo {
            text: format!("the database was not moved back: {e}"),
        })
        .await;
    }
    let from_t = target_of(cfg, &current);
    let to_t = target_of(cfg, &target);
    match strat.switch_back(&sh, &from_t, &to_t).await {
        Ok(did) => {
            for d in did {
                rec.note(d).await;
            }
            for d in strat.after_switch_back(&sh, &from_t).await {
                rec.note(d).await;
            }
        }
        Err(e) => {
            ok = false;
            rec.emit(EventKind::LeftToDo {
                text: format!("release {} could not be started: {e}", target.id),
            })
            .await;
        }
    }
    if ok {
        let require = match target.migration_head {
            Some(h) if inputs.set.get(h).is_some() => Require::Version(h),
            _ => Require::Latest,
        };
        match wait_serving(cfg, inputs, db.as_mut(), &to_t, require).await {
            Ok(()) => {
                state.set_serving(&target.id, &run_id)?;
                rec.emit(EventKind::Serving {
                    release: target.id.clone(),
                })
                .await;
            }
            Err(f) => {
                ok = false;
                rec.emit(EventKind::CheckFailed {
                    check: f.check.clone(),
                    detail: f.detail.clone(),
                    status: f.status,
                    body: f.body.clone(),
                })
                .await;
                rec.emit(EventKind::LeftToDo {
                    text: format!(
                        "release {} was started but does not pass its checks: {}: {}",
                        target.id, f.check, f.detail
                    ),
                })
                .await;
            }
        }
    }
    rec.finish(
        Step::Rollback,
        t,
        if ok {
            StepOutcome::Ok
        } else {
            StepOutcome::Failed
        },
        if ok {
            format!("release {} serves", target.id)
        } else {
            "the rollback did not complete: see what is left to do".into()
        },
    )
    .await;
    db.close().await;
    let (outcome, code) = if ok {
        (Outcome::RolledBack, 0)
    } else {
        (Outcome::RollbackFailed, ExitClass::RollbackFailed.code())
    };
    finish(cfg, &state, rec, &run_id, Some(run_dir), outcome, code).await
}

/// The newest run, when it is a deploy that was killed after it may have changed something
/// (its journal has no end, and its release has no record). A deploy killed before it changed
/// anything (preflight, backup) is closed here with a note, and `None` is returned.
async fn interrupted(
    state: &State,
    cfg: &DeployConfig,
    run_id: &str,
    actor: &str,
) -> Result<Option<Report>> {
    let Some(last) = state.runs()?.into_iter().rfind(|r| r != run_id) else {
        return Ok(None);
    };
    let events = state.events(&last)?;
    let r = Report::from_events(&cfg.app, &events);
    if r.outcome.is_some() || r.dry_run || r.kind != Some(RunKind::Deploy) {
        return Ok(None);
    }
    let touched = r.steps.iter().any(|s| {
        matches!(
            s.step,
            Step::Migrate | Step::Release | Step::Verify | Step::Promote | Step::Rollback
        )
    });
    if touched && !state.has_release(&r.release) {
        return Ok(Some(r));
    }
    // Nothing changed yet, or the release record was written (promote/rollback done): close it.
    let mut listener = ();
    let mut rec = Recorder::new(Some(&state.run_dir(&last)), &last, actor, &mut listener)?;
    rec.note(format!(
        "this deploy was interrupted in step {}; {} (noticed by run {run_id})",
        r.interrupted_in.map(|s| s.name()).unwrap_or("?"),
        if touched {
            "its release record had been written"
        } else {
            "nothing had been changed"
        }
    ))
    .await;
    let outcome = state
        .release(&r.release)?
        .map(|rel| rel.outcome)
        .unwrap_or(Outcome::Failed);
    rec.emit(EventKind::Finished {
        outcome,
        exit_code: 1,
    })
    .await;
    rec.close().await;
    Ok(None)
}

/// Undo a deploy that was killed half way: its migrations per the rollback policy, its release
/// stopped and the serving release started again, from what its journal says it did.
async fn undo_interrupted(
    cfg: &DeployConfig,
    inputs: &Inputs,
    state: &State,
    intr: Report,
    listener: &mut dyn Listener,
) -> Result<RunResult> {
    let run_id = inputs.settings.run_id.clone();
    let actor = inputs.settings.actor.clone();
    let previous = serving_release(state)?;
    let run_dir = state.run_dir(&run_id);
    let mut rec = Recorder::new(Some(&run_dir), &run_id, &actor, listener)?;
    rec.emit(EventKind::Started {
        run_id: run_id.clone(),
        kind: RunKind::Rollback,
        app: cfg.app.clone(),
        release: previous
            .as_ref()
            .map(|p| p.id.clone())
            .unwrap_or_else(|| "(none)".into()),
        previous: Some(intr.release.clone()),
        actor: actor.clone(),
        dry_run: false,
    })
    .await;
    let step = intr.interrupted_in.map(|s| s.name()).unwrap_or("?");
    rec.note(format!(
        "deploy {} of release {} was interrupted in step {step}: undoing what its journal says it did",
        intr.run_id, intr.release
    ))
    .await;
    let mut db = match tidemark::connect(&inputs.url).await {
        Ok(d) => d,
        Err(e) => {
            rec.emit(EventKind::LeftToDo {
                text: format!("cannot connect to the database: {e}"),
            })
            .await;
            return finish(
                cfg,
                state,
                rec,
                &run_id,
                Some(run_dir),
                Outcome::RollbackFailed,
                ExitClass::RollbackFailed.code(),
            )
            .await;
        }
    };
    if let Ok(j) = db.connect_other(&inputs.url).await {
        rec.attach_db(j).await;
    }
    let dir = cfg.dir_of(&intr.release);
    let dir = dir.canonicalize().unwrap_or(dir);
    let image = match &cfg.strategy {
        crate::config::StrategyConfig::Compose { image: Some(t), .. } => {
            Some(t.render_with(&|k| (k == "release").then(|| intr.release.clone())))
        }
        _ => None,
    };
    // The nginx strategy picked the killed release's port itself: its journal says which.
    let started_on = format!("started release {} on 127.0.0.1:", intr.release);
    let journaled_port = intr.timeline.iter().find_map(|t| {
        let rest = &t.event[t.event.find(&started_on)? + started_on.len()..];
        rest.split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse::<u16>()
            .ok()
    });
    let failed = Target {
        release: intr.release.clone(),
        env_file: cfg.env_file_of(&intr.release, &dir),
        dir: dir.clone(),
        port: cfg.port.or(journaled_port),
        image,
    };
    // Applied by the interrupted run: what its journal says, else what the history says was
    // applied after the serving release's head.
    let mut applied = intr.migrations_applied.clone();
    if applied.is_empty()
        && let Ok(st) = engine::status(db.as_mut(), &inputs.set, &inputs.settings, false).await
    {
        let head = previous.as_ref().and_then(|p| p.migration_head);
        let from = head.and_then(|h| inputs.set.position(h));
        applied = st
            .entries
            .iter()
            .filter(|e| e.state.is_applied())
            .filter(|e| match (inputs.set.position(e.version), from) {
                (Some(p), Some(f)) => p > f,
                (Some(_), None) => head.is_none(),
                _ => false,
            })
            .map(|e| e.version)
            .collect();
    }
    let head_before = applied
        .first()
        .and_then(|v| inputs.set.position(*v))
        .and_then(|p| p.checked_sub(1))
        .map(|p| inputs.set.migrations[p].version);
    let store = backups_of(db.as_mut(), inputs, false)
        .await
        .ok()
        .flatten()
        .map(|s| s.0);
    let touch_app = intr.steps.iter().any(|s| {
        matches!(
            s.step,
            Step::Release | Step::Verify | Step::Promote | Step::Rollback
        )
    });
    let strat = strategy::for_config(cfg);
    let sh = shell(cfg, &run_dir);
    let prev_target = previous.as_ref().map(|p| target_of(cfg, p));
    let t = rec.start(Step::Rollback).await;
    let ok = roll_back(
        cfg,
        inputs,
        &mut db,
        &*strat,
        &sh,
        &failed,
        prev_target.as_ref(),
        previous.as_ref(),
        &applied,
        head_before,
        store.as_ref(),
        intr.backup_id.as_deref(),
        touch_app,
        &mut rec,
    )
    .await;
    let outcome = if ok {
        Outcome::RolledBack
    } else {
        Outcome::RollbackFailed
    };
    rec.finish(
        Step::Rollback,
        t,
        if ok {
            StepOutcome::Ok
        } else {
            StepOutcome::Failed
        },
        if ok {
            format!(
                "the interrupted deploy of release {} was undone",
                intr.release
            )
        } else {
            "the rollback did not complete: see what is left to do".into()
        },
    )
    .await;
    let env = failed
        .env_file
        .as_ref()
        .and_then(|p| EnvFile::read(p, &envfile::new_salt()).ok());
    let record = Release {
        app: cfg.app.clone(),
        id: intr.release.clone(),
        run_id: intr.run_id.clone(),
        strategy: strat.name().to_string(),
        artifact: strat.artifact(&failed),
        dir,
        env_file: failed.env_file.clone(),
        env_sha256: env.as_ref().map(|e| e.sha256.clone()),
        env_keys: env.as_ref().map(|e| e.keys.clone()).unwrap_or_default(),
        env_salt: env.as_ref().map(|e| e.salt.clone()).unwrap_or_default(),
        unit_file: None,
        port: cfg.port,
        migration_head: applied.last().copied(),
        fingerprint: None,
        migrations_applied: applied.clone(),
        backup_id: intr.backup_id.clone(),
        previous: previous.as_ref().map(|p| p.id.clone()),
        started_at: intr.started_at.clone(),
        finished_at: now(),
        outcome,
        actor: intr.actor.clone(),
    };
    if let Err(e) = state.write_release(&record) {
        rec.warn(format!("could not write the release record: {e}"))
            .await;
    }
    if let Err(e) = releases_table::insert(db.as_mut(), &record).await {
        rec.warn(format!(
            "the release record is kept locally only (database: {e})"
        ))
        .await;
    }
    db.close().await;
    // Close the interrupted run's journal, so that the next deploy goes ahead.
    {
        let mut quiet = ();
        let mut old = Recorder::new(
            Some(&state.run_dir(&intr.run_id)),
            &intr.run_id,
            &actor,
            &mut quiet,
        )?;
        old.note(format!(
            "this deploy was interrupted in step {step}; run {run_id} undid it"
        ))
        .await;
        old.emit(EventKind::Finished {
            outcome,
            exit_code: if ok {
                ExitClass::RolledBack.code()
            } else {
                ExitClass::RollbackFailed.code()
            },
        })
        .await;
        old.close().await;
    }
    let code = if ok {
        0
    } else {
        ExitClass::RollbackFailed.code()
    };
    finish(cfg, state, rec, &run_id, Some(run_dir), outcome, code).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(policy: &str, allow_data_loss: bool) -> DeployConfig {
        DeployConfig::parse(
            Path::new("/srv/deploy.toml"),
            &format!(
                "app = \"a\"\n[release]\ndir = \"r\"\n[command]\nstart = \"true\"\n[rollback]\ndatabase = \"{policy}\"\nallow_data_loss = {allow_data_loss}\n"
            ),
        )
        .unwrap()
    }

    fn set(files: &[(&str, &str)]) -> (tempfile::TempDir, MigrationSet) {
        let d = tempfile::tempdir().unwrap();
        for (n, t) in files {
            std::fs::write(d.path().join(n), t).unwrap();
        }
        let s = MigrationSet::load(d.path(), None).unwrap();
        (d, s)
    }

    #[test]
    fn the_database_move_follows_the_policy_and_the_classes() {
        let pg = tidemark::Dialect::Postgres;
        let (_d, s) = set(&[
            ("1_a.up.sql", "CREATE TABLE a (id INT);"),
            ("1_a.down.sql", "DROP TABLE a;"),
            ("2_b.up.sql", "ALTER TABLE a ADD COLUMN b INT;"),
            ("2_b.down.sql", "ALTER TABLE a DROP COLUMN b;"),
            ("3_c.up.sql", "ALTER TABLE a DROP COLUMN b;"),
        ]);
        assert_eq!(classify(s.get(2).unwrap(), pg), "expand-only");
        assert_eq!(classify(s.get(3).unwrap(), pg), "destructive");
        let d = |p: &str, loss: bool, v: &[i64], to: Option<i64>, b: Option<&str>| {
            decide(&cfg(p, loss), &s, pg, v, to, b)
        };
        assert_eq!(d("auto", false, &[], Some(1), None), Ok(DbMove::Nothing));
        assert!(matches!(
            d("auto", false, &[2], Some(1), None),
            Ok(DbMove::Keep(_))
        ));
        assert_eq!(d("down", false, &[2], Some(1), None), Ok(DbMove::Down(1)));
        assert!(matches!(
            d("keep", false, &[2], Some(1), None),
            Ok(DbMove::Keep(_))
        ));
        // 3 is destructive and has no down script.
        let e = d("keep", false, &[3], Some(2), Some("b1")).unwrap_err();
        assert!(e.contains("not expand-only"), "{e}");
        let e = d("down", false, &[3], Some(2), Some("b1")).unwrap_err();
        assert!(e.contains("no down script"), "{e}");
        let e = d("auto", false, &[3], Some(2), Some("b1")).unwrap_err();
        assert!(e.contains("allow_data_loss") && e.contains("b1"), "{e}");
        assert_eq!(
            d("auto", true, &[3], Some(2), Some("b1")),
            Ok(DbMove::Restore("b1".into()))
        );
        assert!(d("restore", false, &[3], Some(2), None).is_err());
        assert_eq!(
            d("restore", false, &[2, 3], Some(1), Some("b1")),
            Ok(DbMove::Restore("b1".into()))
        );
    }
}
