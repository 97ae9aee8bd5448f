//! Resolving settings: a flag beats an environment variable beats tidemark.toml.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tidemark::config::{self, Config};
use tidemark::engine::Settings;
use tidemark::{DatabaseUrl, Driver, Error, Layout, MigrationSet, Result, env};

use crate::cli::Global;
use crate::output::Out;

pub struct BackupSettings {
    /// The backup directory; each database's backups are in a folder named by its id.
    pub dir: PathBuf,
    /// Where backups written before identities may be ("identity unknown").
    pub legacy: Vec<PathBuf>,
    pub keep: Option<usize>,
    pub keep_days: Option<u64>,
    pub enabled: bool,
    pub stop_writers: Option<String>,
}

pub struct Context {
    pub global: Global,
    pub config: Config,
    pub out: Out,
}

const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(60);

impl Context {
    pub fn new(global: Global, out: Out) -> Result<Context> {
        let config = match &global.config {
            Some(p) => {
                if !p.is_file() {
                    return Err(Error::Usage(format!(
                        "--config {}: no such file",
                        p.display()
                    )));
                }
                Config::load(p)?
            }
            None => {
                let p = Path::new(config::FILE_NAME);
                if p.is_file() {
                    Config::load(p)?
                } else {
                    Config::default()
                }
            }
        };
        Ok(Context {
            global,
            config,
            out,
        })
    }

    pub fn database_url(&self) -> Result<DatabaseUrl> {
        let raw = self
            .global
            .database_url
            .clone()
            .or_else(|| std::env::var(env::GENERIC_DATABASE_URL).ok().filter(|s| !s.is_empty()))
            .or_else(|| self.config.database_url.as_deref().map(|u| self.relative_to_config(u)))
            .ok_or_else(|| {
                Error::Usage(format!(
                    "no database URL: pass --database-url, set {} or {}, or set database_url in tidemark.toml",
                    env::DATABASE_URL,
                    env::GENERIC_DATABASE_URL
                ))
            })?;
        DatabaseUrl::parse(&raw)
    }

    /// A SQLite path in tidemark.toml is relative to the file, like `dir`, so the project works
    /// from any working directory.
    fn relative_to_config(&self, url: &str) -> String {
        let Some(rest) = url.strip_prefix("sqlite://") else {
            return url.to_string();
        };
        let (path, query) = rest
            .split_once('?')
            .map(|(p, q)| (p, Some(q)))
            .unwrap_or((rest, None));
        if path.is_empty() || path.starts_with('/') || path.starts_with(':') {
            return url.to_string();
        }
        let joined = self.config.resolve(Path::new(path));
        match query {
            Some(q) => format!("sqlite://{}?{q}", joined.display()),
            None => format!("sqlite://{}", joined.display()),
        }
    }

    pub fn dir(&self) -> PathBuf {
        match (&self.global.dir, &self.config.dir) {
            (Some(d), _) => d.clone(),
            (None, Some(d)) => self.config.resolve(d),
            (None, None) => self.config.resolve(Path::new("migrations")),
        }
    }

    pub fn layout(&self) -> Result<Option<Layout>> {
        let raw = self
            .global
            .layout
            .as_deref()
            .or(self.config.layout.as_deref());
        raw.map(|l| l.parse::<Layout>().map_err(Error::Usage))
            .transpose()
    }

    pub fn migrations(&self) -> Result<MigrationSet> {
        let set = MigrationSet::load(&self.dir(), self.layout()?)?;
        for w in &set.warnings {
            self.out.warn(&w.to_string());
        }
        Ok(set)
    }

    pub fn lock_timeout(&self, flag: Option<&str>) -> Result<Duration> {
        match flag {
            Some(f) => config::parse_duration(f, "--lock-timeout"),
            None => Ok(self.config.lock_timeout()?.unwrap_or(DEFAULT_LOCK_TIMEOUT)),
        }
    }

    pub fn settings(&self, lock_timeout: Option<&str>) -> Result<Settings> {
        let mut s = Settings {
            lock_timeout: self.lock_timeout(lock_timeout)?,
            ..Settings::default()
        };
        s.inspect.schemas = self.config.schemas.clone().unwrap_or_default();
        s.shadow_url = self.shadow_url(&crate::cli::ShadowArgs { shadow_url: None })?;
        s.classifier = Some(std::sync::Arc::new(tidemark_lint::LintClassifier));
        s.shadow_baseline = self
            .config
            .shadow
            .as_ref()
            .and_then(|c| c.baseline.as_ref())
            .map(|p| self.config.resolve(p));
        s.sync = match self.config.sync.as_ref().and_then(|c| c.tool.as_deref()) {
            Some(t) => Some(
                t.parse()
                    .map_err(|e| Error::Usage(format!("tidemark.toml [sync] tool: {e}")))?,
            ),
            None => None,
        };
        if let Some(m) = &self.config.migrate {
            if let Some(t) = &m.statement_lock_timeout {
                s.statement_lock_timeout = Some(config::parse_duration(
                    t,
                    "statement_lock_timeout (in [migrate])",
                )?)
                .filter(|d| !d.is_zero());
            }
            if let Some(n) = m.lock_retries {
                s.lock_retries = n;
            }
        }
        Ok(s)
    }

    /// [`Context::settings_with_shadow`] with `up`/`down`'s lock-wait flags.
    pub fn settings_for_run(
        &self,
        lock_timeout: Option<&str>,
        shadow: &crate::cli::ShadowArgs,
        wait: &crate::cli::LockWaitArgs,
    ) -> Result<Settings> {
        let mut s = self.settings_with_shadow(lock_timeout, shadow)?;
        if let Some(t) = &wait.statement_lock_timeout {
            s.statement_lock_timeout = Some(config::parse_duration(t, "--statement-lock-timeout")?)
                .filter(|d| !d.is_zero());
        }
        if let Some(n) = wait.lock_retries {
            s.lock_retries = n;
        }
        Ok(s)
    }

    /// [`Context::settings`] with a command's `--shadow-url`.
    pub fn settings_with_shadow(
        &self,
        lock_timeout: Option<&str>,
        shadow: &crate::cli::ShadowArgs,
    ) -> Result<Settings> {
        let mut s = self.settings(lock_timeout)?;
        s.shadow_url = self.shadow_url(shadow)?;
        Ok(s)
    }

    /// `--shadow-url`, else `[shadow] url`.
    pub fn shadow_url(&self, flag: &crate::cli::ShadowArgs) -> Result<Option<DatabaseUrl>> {
        let raw = flag
            .shadow_url
            .clone()
            .or_else(|| self.config.shadow.as_ref().and_then(|s| s.url.clone()));
        raw.map(|u| DatabaseUrl::parse(&u)).transpose()
    }

    /// Where backups go and how long they stay: TIDEMARK_BACKUP_DIR, else `[backup] dir`, else
    /// the user's data directory; a folder per database id below it.
    pub fn backup_settings(&self, url: &DatabaseUrl) -> Result<BackupSettings> {
        let cfg = self.config.backup.clone().unwrap_or_default();
        let (dir, legacy) = match (
            std::env::var_os(env::BACKUP_DIR).filter(|v| !v.is_empty()),
            &cfg.dir,
        ) {
            (Some(d), _) => (PathBuf::from(d), Vec::new()),
            (None, Some(d)) => (self.config.resolve(d), Vec::new()),
            // Before identities the default was a folder named after the dialect and database.
            (None, None) => (
                tidemark::backup::default_dir()?,
                vec![tidemark::backup::legacy_default_dir(url)?],
            ),
        };
        let in_memory = url.dialect() == tidemark::Dialect::Sqlite
            && url.database().is_none_or(|d| d.contains(":memory:"));
        Ok(BackupSettings {
            dir,
            legacy,
            keep: cfg.keep,
            keep_days: cfg.keep_days,
            enabled: cfg.enabled.unwrap_or(true) && !in_memory,
            stop_writers: cfg.stop_writers,
        })
    }

    /// Connect, and sweep what interrupted runs left on the server (a SIGKILL runs no
    /// handler), saying what each leftover meant and that it is gone.
    pub async fn connect(&self) -> Result<Box<dyn Driver>> {
        let url = self.database_url()?;
        let mut d = tidemark::connect(&url).await?;
        match tidemark::scratch::sweep(d.as_mut()).await {
            Ok(swept) => {
                for s in swept {
                    self.out.warn(&s);
                }
            }
            Err(e) => tracing::debug!("no sweep of leftovers: {e}"),
        }
        Ok(d)
    }
}
