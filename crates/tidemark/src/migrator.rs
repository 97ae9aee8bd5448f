//! tidemark inside the application: what the commands do, with the same safety (the lock, the
//! backup before a change, the journal, the drift checks, the gate), returning typed reports
//! and printing nothing.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tidemark_core::backup::{self, Manifest, Vault};
use tidemark_core::config::{self, Config};
use tidemark_core::engine::{self, Allow, BeforeChange, Observer, Quiet, RunReport, Settings};
use tidemark_core::gate::{self, CheckReport, Require};
use tidemark_core::plan::{Plan, UpTarget};
use tidemark_core::repair::{self, Decisions, RepairPlan};
use tidemark_core::status::Status;
use tidemark_core::{DatabaseUrl, Driver, Error, MigrationSet, Result, env};

/// How a replica of an application starts when several start at once (Kubernetes, a rolling
/// deploy): one of them migrates, the others wait for the schema they were built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Startup {
    /// Apply what is pending (under the lock: of replicas starting together exactly one
    /// migrates, the others find nothing left to do), then pass the gate.
    Migrate,
    /// Never migrate: wait until the gate passes (another replica, a Job or a deploy migrates).
    Wait,
}

/// The engine for one database and one set of migrations.
///
/// ```no_run
/// # async fn start() -> tidemark::Result<()> {
/// use tidemark::{Migrator, Startup};
/// use tidemark::gate::Require;
/// // tidemark.toml gives the migrations directory, layout, schemas, lock timeouts, backups;
/// // the URL comes from TIDEMARK_DATABASE_URL or DATABASE_URL when the file has none.
/// let m = Migrator::from_config("tidemark.toml".as_ref(), None)?;
/// let ready = m
///     .start(Startup::Migrate, Require::Latest, std::time::Duration::from_secs(120))
///     .await?;
/// assert!(ready.ok);
/// # Ok(()) }
/// ```
pub struct Migrator {
    url: DatabaseUrl,
    set: MigrationSet,
    settings: Settings,
    /// Where backups go (`None`: no backup before a change).
    backups: Option<PathBuf>,
}

impl Migrator {
    /// Migrations from a directory, in any layout tidemark reads; backups to the user's data
    /// directory (as the command does), classes recorded when the `lint` feature is on.
    pub fn new(url: &str, migrations: &Path) -> Result<Migrator> {
        Ok(Migrator {
            url: DatabaseUrl::parse(url)?,
            set: MigrationSet::load(migrations, None)?,
            settings: default_settings(),
            backups: Some(backup::default_dir()?),
        })
    }

    /// Migrations compiled into the binary with [`crate::embed_migrations!`].
    pub fn embedded(url: &str, migrations: &crate::EmbeddedMigrations) -> Result<Migrator> {
        Ok(Migrator {
            url: DatabaseUrl::parse(url)?,
            set: migrations.load()?,
            settings: default_settings(),
            backups: Some(backup::default_dir()?),
        })
    }

    /// Everything from a `tidemark.toml`, as the command reads it: `dir`, `layout`,
    /// `schemas`, `lock_timeout`, `[migrate]`, `[shadow] url`, `[backup] dir/enabled`. The URL:
    /// `url`, else `TIDEMARK_DATABASE_URL`, else `DATABASE_URL`, else `database_url` there.
    pub fn from_config(path: &Path, url: Option<&str>) -> Result<Migrator> {
        let cfg = Config::load(path)?;
        let raw = match url {
            Some(u) => u.to_string(),
            None => std::env::var(env::DATABASE_URL)
                .or_else(|_| std::env::var(env::GENERIC_DATABASE_URL))
                .ok()
                .or_else(|| cfg.database_url.clone())
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "{}: no database URL (database_url, or TIDEMARK_DATABASE_URL / DATABASE_URL)",
                        path.display()
                    ))
                })?,
        };
        let url = if raw.starts_with("sqlite://") && !raw.contains(":memory:") {
            // Relative SQLite paths are relative to the file, as for the command.
            let p = Path::new(raw.trim_start_matches("sqlite://"));
            DatabaseUrl::parse(&format!("sqlite://{}", cfg.resolve(p).display()))?
        } else {
            DatabaseUrl::parse(&raw)?
        };
        let dir = cfg.resolve(cfg.dir.as_deref().unwrap_or(Path::new("migrations")));
        let layout = cfg
            .layout
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(Error::Usage)?;
        let mut settings = default_settings();
        settings.inspect.schemas = cfg.schemas.clone().unwrap_or_default();
        if let Some(t) = cfg.lock_timeout()? {
            settings.lock_timeout = t;
        }
        if let Some(u) = cfg.shadow.as_ref().and_then(|s| s.url.as_deref()) {
            settings.shadow_url = Some(DatabaseUrl::parse(u)?);
        }
        if let Some(m) = &cfg.migrate {
            if let Some(t) = &m.statement_lock_timeout {
                settings.statement_lock_timeout =
                    Some(config::parse_duration(t, "statement_lock_timeout")?)
                        .filter(|d| !d.is_zero());
            }
            if let Some(n) = m.lock_retries {
                settings.lock_retries = n;
            }
        }
        let b = cfg.backup.clone().unwrap_or_default();
        let backups = if !b.enabled.unwrap_or(true) {
            None
        } else if let Some(d) = std::env::var_os(env::BACKUP_DIR).filter(|v| !v.is_empty()) {
            Some(PathBuf::from(d))
        } else {
            Some(match &b.dir {
                Some(d) => cfg.resolve(d),
                None => backup::default_dir()?,
            })
        };
        Ok(Migrator {
            url,
            set: MigrationSet::load(&dir, layout)?,
            settings,
            backups,
        })
    }

    /// Change settings (lock timeouts, the shadow database, who is acting…).
    pub fn with_settings(mut self, f: impl FnOnce(&mut Settings)) -> Migrator {
        f(&mut self.settings);
        self
    }

    /// Where backups go before a change; `None` turns them off.
    pub fn with_backups(mut self, dir: Option<PathBuf>) -> Migrator {
        self.backups = dir;
        self
    }

    pub fn migrations(&self) -> &MigrationSet {
        &self.set
    }

    async fn connect(&self) -> Result<Box<dyn Driver>> {
        crate::connect(&self.url).await
    }

    /// Each migration's state and the drift, established by replay when no fingerprint was
    /// recorded (nothing is written).
    pub async fn status(&self) -> Result<Status> {
        let mut db = self.connect().await?;
        let r = async {
            let mut st = engine::status(db.as_mut(), &self.set, &self.settings, true).await?;
            engine::establish_drift(
                db.as_mut(),
                &self.set,
                &self.settings,
                &mut st,
                &mut Quiet,
                engine::Record::No,
            )
            .await;
            Ok(st)
        }
        .await;
        db.close().await;
        r
    }

    /// Apply what is pending: refuses on drift, failed, modified or missing migrations (exit
    /// class 20), backs up first when backups are on, under the lock, journaled.
    pub async fn up(&self) -> Result<RunReport> {
        self.up_observed(&mut Quiet).await
    }

    async fn up_observed(&self, obs: &mut dyn Observer) -> Result<RunReport> {
        let mut db = self.connect().await?;
        let mut hook = match &self.backups {
            Some(dir) => Some(BackupFirst {
                vault: Vault::new(dir, &[])?,
                dumper: crate::dumper(&self.url)?,
                settings: &self.settings,
            }),
            None => None,
        };
        let r = engine::up(
            db.as_mut(),
            &self.set,
            &UpTarget {
                to: None,
                single_transaction: false,
            },
            Allow::default(),
            &self.settings,
            obs,
            hook.as_mut().map(|h| h as &mut dyn BeforeChange),
        )
        .await;
        db.close().await;
        r
    }

    /// The application gate: may a release built for these migrations run on this database?
    pub async fn check(&self, require: Require) -> Result<CheckReport> {
        let mut db = self.connect().await?;
        let r = gate::check(
            db.as_mut(),
            &self.set,
            &self.settings,
            gate::Options::new(require),
        )
        .await;
        db.close().await;
        r
    }

    /// What `repair` would do (nothing is written).
    pub async fn repair_plan(&self) -> Result<RepairPlan> {
        let mut db = self.connect().await?;
        let r = repair::repair(
            db.as_mut(),
            &self.set,
            &self.settings,
            &Decisions::default(),
            false,
            &mut Quiet,
        )
        .await
        .map(|o| o.plan);
        db.close().await;
        r
    }

    /// A verified backup of the database, filed under its identity.
    pub async fn backup(&self) -> Result<Manifest> {
        let dir = self
            .backups
            .as_ref()
            .ok_or_else(|| Error::Usage("backups are off for this Migrator".into()))?;
        let mut db = self.connect().await?;
        let r = async {
            let h = tidemark_core::history::read(db.as_mut()).await?;
            let head = Status::compute(&self.set, &h).current_version;
            let dumper = crate::dumper(&self.url)?;
            backup::take(
                db.as_mut(),
                &Vault::new(dir, &[])?,
                dumper.as_ref(),
                Some(self.settings.lock_timeout),
                head,
                "requested by the application".into(),
                Some(&self.settings.run_id),
                &self.settings.inspect,
            )
            .await
            .map(|(_, m)| m)
        }
        .await;
        db.close().await;
        r
    }

    /// Start-up of one replica among many. `Migrate`: apply what is pending (the lock makes
    /// exactly one replica do it; the others wait for the lock and find nothing to do), then
    /// pass the gate. `Wait`: poll the gate until it passes. Either way, at most `wait`; a
    /// replica built for an older schema passes only when the migrations after its own are
    /// expand-only. Progress goes to the `tracing` log, nothing prints.
    pub async fn start(
        &self,
        mode: Startup,
        require: Require,
        wait: Duration,
    ) -> Result<CheckReport> {
        let deadline = Instant::now() + wait;
        if mode == Startup::Migrate {
            let settings = Settings {
                lock_timeout: wait,
                ..self.settings.clone()
            };
            let me = Migrator {
                url: self.url.clone(),
                set: self.set.clone(),
                settings,
                backups: self.backups.clone(),
            };
            let report = me.up_observed(&mut StartupLog).await?;
            if !report.done.is_empty() {
                tracing::info!(
                    "tidemark: applied {} migration(s), now at {:?}",
                    report.done.len(),
                    report.current_version
                );
            }
        }
        let mut told = false;
        loop {
            let r = self.check(require).await;
            match r {
                Ok(r) if r.ok => return Ok(r),
                Ok(r) if Instant::now() >= deadline => return Ok(r),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Ok(r) => {
                    if !told {
                        tracing::info!(
                            "tidemark: waiting for the schema: {}",
                            r.reasons.join("; ")
                        );
                        told = true;
                    }
                }
                Err(e) => {
                    if !told {
                        tracing::info!("tidemark: waiting for the database: {e}");
                        told = true;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

fn default_settings() -> Settings {
    #[allow(unused_mut)]
    let mut s = Settings::default();
    #[cfg(feature = "lint")]
    {
        s.classifier = Some(std::sync::Arc::new(tidemark_lint::LintClassifier));
    }
    s
}

/// The backup before a change, as the command takes it (under the lock the engine holds).
struct BackupFirst<'a> {
    vault: Vault,
    dumper: Box<dyn tidemark_core::Dumper>,
    settings: &'a Settings,
}

#[async_trait::async_trait]
impl BeforeChange for BackupFirst<'_> {
    async fn before_change(
        &mut self,
        driver: &mut dyn Driver,
        plan: &Plan,
        status: &Status,
    ) -> Result<Option<String>> {
        let (_, m) = backup::take(
            driver,
            &self.vault,
            self.dumper.as_ref(),
            None,
            status.current_version,
            format!(
                "before {} migration(s) (run {})",
                plan.steps.len(),
                self.settings.run_id
            ),
            Some(&self.settings.run_id),
            &self.settings.inspect,
        )
        .await?;
        Ok(Some(m.id))
    }
}

/// Start-up progress in the application's log.
struct StartupLog;

impl Observer for StartupLog {
    fn event(&mut self, event: engine::Event<'_>) {
        match event {
            engine::Event::LockWaiting { holder } => {
                tracing::info!("tidemark: another replica is migrating ({holder}); waiting")
            }
            engine::Event::StepFinished { step, ms } => {
                tracing::info!("tidemark: applied {} {} ({ms} ms)", step.version, step.name)
            }
            engine::Event::Warning(w) => tracing::warn!("tidemark: {w}"),
            _ => {}
        }
    }
}
