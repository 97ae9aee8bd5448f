//! `tidemark.toml`. Every key is optional; unknown keys are an error naming the key, so a typo
//! never silently turns a setting off.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Location, Result};

pub const FILE_NAME: &str = "tidemark.toml";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub database_url: Option<String>,
    pub dir: Option<PathBuf>,
    pub layout: Option<String>,
    /// PostgreSQL schemas to inspect (default: all but the system schemas).
    pub schemas: Option<Vec<String>>,
    /// How long to wait for the migration lock, e.g. `"30s"`, `"2m"`.
    pub lock_timeout: Option<String>,
    pub backup: Option<BackupConfig>,
    pub lint: Option<LintConfig>,
    pub shadow: Option<ShadowConfig>,
    pub migrate: Option<MigrateConfig>,
    pub drill: Option<DrillConfig>,
    pub sync: Option<SyncConfig>,
    /// The directory the file was read from; relative paths in it are relative to this.
    #[serde(skip)]
    pub base: PathBuf,
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupConfig {
    pub dir: Option<PathBuf>,
    pub keep: Option<usize>,
    pub keep_days: Option<u64>,
    pub enabled: Option<bool>,
    /// A shell command run before a restore to stop whatever writes to the database.
    pub stop_writers: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LintConfig {
    /// Severity per rule id: `"error"`, `"warning"` or `"off"`.
    #[serde(default)]
    pub rules: std::collections::BTreeMap<String, String>,
    /// The dialect to lint for when no database URL is configured.
    pub dialect: Option<String>,
    /// Judge only migrations after this version: a project adopting tidemark with a long
    /// history lints what it writes from now on, not what ran years ago.
    pub since: Option<i64>,
}

/// How migrations behave beside a live application.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrateConfig {
    /// How long one statement may wait for a table lock before it gives up (and is retried),
    /// so that the application's queries never queue behind a waiting `ALTER TABLE` for longer
    /// than this. `"0s"` waits forever. Default 5s.
    pub statement_lock_timeout: Option<String>,
    /// How often a migration that gave up waiting for a lock is tried again. Default 3.
    pub lock_retries: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowConfig {
    pub url: Option<String>,
    /// A SQL file holding the schema at the baseline a history begins at (when no migration
    /// file creates it): run on every shadow database before the migrations are replayed.
    pub baseline: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// Keep this tool's history table in step: `sqlx`, `golang-migrate`, `dbmate`, `diesel`
    /// or `flyway`.
    pub tool: Option<String>,
}

/// `[drill]`: recovery-time targets per drill and how drills run.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillConfig {
    /// Recovery-time targets, e.g. `"2m"`: a drill that passes slower exits 20.
    pub restore_target: Option<String>,
    pub rollback_target: Option<String>,
    pub repair_target: Option<String>,
    pub deploy_target: Option<String>,
    /// Rollback drill: how many of the newest migrations to revert and re-apply (default 1).
    pub rollback_steps: Option<usize>,
    /// Repair drill: how many of the newest history rows to remove (default 3).
    pub repair_rows: Option<usize>,
    /// Scratch databases of killed drills older than this are dropped by the next drill
    /// (default `"1h"`; those of a process that is gone on this host at once).
    pub sweep_after: Option<String>,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut cfg: Config = toml::from_str(&text).map_err(|e| {
            let line = e.span().map(|s| text[..s.start].matches('\n').count() + 1);
            let msg = e.message().to_string();
            Error::bad_input(
                Location {
                    path: path.to_path_buf(),
                    line,
                },
                msg,
            )
        })?;
        cfg.base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        cfg.path = Some(path.to_path_buf());
        Ok(cfg)
    }

    /// A path from the file, made relative to the file's directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() || self.base.as_os_str().is_empty() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    pub fn lock_timeout(&self) -> Result<Option<Duration>> {
        self.lock_timeout
            .as_deref()
            .map(|s| parse_duration(s, "lock_timeout"))
            .transpose()
    }
}

/// Durations as people write them: `30s`, `2m`, `1h 30m`, `500ms`.
pub fn parse_duration(s: &str, what: &str) -> Result<Duration> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        Error::Usage(format!(
            "{what}: `{s}` is not a duration ({e}); write e.g. 30s, 2m or 500ms"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_errors_naming_key_and_line() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(FILE_NAME);
        std::fs::write(&p, "dir = \"m\"\ndatabse_url = \"x\"\n").unwrap();
        let e = Config::load(&p).unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("tidemark.toml:2") && s.contains("databse_url"),
            "{s}"
        );
        assert_eq!(e.class(), crate::error::ExitClass::Usage);
        std::fs::write(&p, "[backup]\nkeep = 3\nkep_days = 2\n").unwrap();
        assert!(
            Config::load(&p)
                .unwrap_err()
                .to_string()
                .contains("kep_days")
        );
    }

    #[test]
    fn paths_are_relative_to_the_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(FILE_NAME);
        std::fs::write(
            &p,
            "dir = \"db/migrations\"\nlock_timeout = \"90s\"\n[lint.rules]\ndrop-table = \"off\"\n",
        )
        .unwrap();
        let c = Config::load(&p).unwrap();
        assert_eq!(
            c.resolve(c.dir.as_ref().unwrap()),
            d.path().join("db/migrations")
        );
        assert_eq!(c.lock_timeout().unwrap(), Some(Duration::from_secs(90)));
        assert_eq!(c.lint.unwrap().rules["drop-table"], "off");
        assert!(
            parse_duration("soon", "--lock-timeout")
                .unwrap_err()
                .to_string()
                .contains("--lock-timeout")
        );
    }
}
