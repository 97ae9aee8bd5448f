//! The local state directory of an app (`<state_dir>/<app>/`): the deploy lock, the immutable
//! release records, which release is serving, and one directory per run with its event journal
//! (`events.jsonl`), its reports and the output of the commands it ran. It is what `releases`,
//! `report` and `rollback` read, so they work when the database is the thing that is broken.
//!
//! ```text
//! <state>/lock              flock'ed by the running deploy; says who holds it
//! <state>/releases/ID.json  one immutable record per release
//! <state>/serving.json      the release that serves now
//! <state>/runs/RUN/         events.jsonl, report.json, report.md, commands.log
//! ```

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tidemark::{Error, Result};

/// How a deploy or rollback ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Verified and now serving.
    Promoted,
    /// Failed verification; the previous release serves again (exit 30).
    RolledBack,
    /// The rollback itself failed: a person must act (exit 31).
    RollbackFailed,
    /// Stopped before the release changed (preflight, backup or migration failure).
    Failed,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Promoted => "promoted",
            Outcome::RolledBack => "rolled_back",
            Outcome::RollbackFailed => "rollback_failed",
            Outcome::Failed => "failed",
        }
    }
}

/// The compose or unit file a release was started with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitFile {
    pub path: PathBuf,
    pub sha256: String,
}

/// One release, as deployed. Written once, when its deploy ends; never changed afterwards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub app: String,
    pub id: String,
    pub run_id: String,
    /// `command` or `compose`.
    pub strategy: String,
    /// The release directory.
    pub dir: PathBuf,
    /// What was released: the directory, or the image tag.
    pub artifact: String,
    pub env_file: Option<PathBuf>,
    /// SHA-256 of the env file (never its content).
    pub env_sha256: Option<String>,
    /// Per key, a salted SHA-256 of its value, so that a later deploy can name the keys whose
    /// value changed without anyone storing a value.
    #[serde(default)]
    pub env_keys: BTreeMap<String, String>,
    #[serde(default)]
    pub env_salt: String,
    pub unit_file: Option<UnitFile>,
    pub port: Option<u16>,
    /// The newest applied migration after migrating.
    pub migration_head: Option<i64>,
    /// Schema fingerprint after migrating.
    pub fingerprint: Option<String>,
    /// The migrations this deploy applied.
    pub migrations_applied: Vec<i64>,
    /// The backup taken before the deploy changed anything.
    pub backup_id: Option<String>,
    /// The release that served before this one.
    pub previous: Option<String>,
    pub started_at: String,
    pub finished_at: String,
    pub outcome: Outcome,
    pub actor: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Serving {
    pub release: String,
    pub since: String,
    pub run_id: String,
}

pub struct State {
    dir: PathBuf,
}

/// `2026-11-23T18:46:26.780Z`.
pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        ))
        .unwrap_or_default()
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
    }
    fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

impl State {
    pub fn open(dir: &Path) -> Result<State> {
        for sub in ["releases", "runs"] {
            let d = dir.join(sub);
            fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
        }
        Ok(State {
            dir: dir.to_path_buf(),
        })
    }

    /// Open without creating anything (read-only commands).
    pub fn existing(dir: &Path) -> State {
        State {
            dir: dir.to_path_buf(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn run_dir(&self, run_id: &str) -> PathBuf {
        self.dir.join("runs").join(run_id)
    }

    /// Take the app's deploy lock, or say who holds it.
    pub fn lock(&self, holder: &str) -> Result<DeployLock> {
        let path = self.dir.join("lock");
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match f.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let mut who = String::new();
                let _ = f.read_to_string(&mut who);
                return Err(Error::Unsatisfied {
                    class: tidemark::ExitClass::Operational,
                    message: format!(
                        "another deploy or rollback of this app is running: {} (lock {})",
                        if who.trim().is_empty() {
                            "holder unknown".to_string()
                        } else {
                            who.trim().to_string()
                        },
                        path.display()
                    ),
                });
            }
            Err(fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        let _ = f.set_len(0);
        let _ = f.rewind();
        let _ = writeln!(f, "{holder}");
        let _ = f.flush();
        Ok(DeployLock { _file: f })
    }

    pub fn releases(&self) -> Result<Vec<Release>> {
        let dir = self.dir.join("releases");
        let mut out = Vec::new();
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::io(&dir, e)),
        };
        for entry in rd {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            let p = entry.path();
            if p.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let text = fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
            let r: Release = serde_json::from_str(&text).map_err(|e| {
                Error::bad_input(
                    tidemark::Location::file(&p),
                    format!("not a release record: {e}"),
                )
            })?;
            out.push(r);
        }
        out.sort_by(|a, b| (&a.started_at, &a.id).cmp(&(&b.started_at, &b.id)));
        Ok(out)
    }

    pub fn release(&self, id: &str) -> Result<Option<Release>> {
        Ok(self.releases()?.into_iter().find(|r| r.id == id))
    }

    pub fn has_release(&self, id: &str) -> bool {
        self.release_path(id).exists()
    }

    fn release_path(&self, id: &str) -> PathBuf {
        self.dir.join("releases").join(format!("{id}.json"))
    }

    /// Write a release record once; an existing record is never replaced.
    pub fn write_release(&self, r: &Release) -> Result<()> {
        let path = self.release_path(&r.id);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        let text = serde_json::to_string_pretty(r).unwrap_or_default();
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| Error::io(&path, e))
    }

    pub fn serving(&self) -> Result<Option<Serving>> {
        let p = self.dir.join("serving.json");
        match fs::read_to_string(&p) {
            Ok(t) => serde_json::from_str(&t).map(Some).map_err(|e| {
                Error::bad_input(tidemark::Location::file(&p), format!("unreadable: {e}"))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&p, e)),
        }
    }

    pub fn set_serving(&self, release: &str, run_id: &str) -> Result<()> {
        let s = Serving {
            release: release.to_string(),
            since: now(),
            run_id: run_id.to_string(),
        };
        write_atomic(
            &self.dir.join("serving.json"),
            serde_json::to_string_pretty(&s)
                .unwrap_or_default()
                .as_bytes(),
        )
    }

    /// Every run, oldest first (run ids sort by time).
    pub fn runs(&self) -> Result<Vec<String>> {
        let dir = self.dir.join("runs");
        let mut out = Vec::new();
        match fs::read_dir(&dir) {
            Ok(rd) => {
                for e in rd.flatten() {
                    if e.path().join("events.jsonl").is_file() {
                        out.push(e.file_name().to_string_lossy().into_owned());
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&dir, e)),
        }
        out.sort();
        Ok(out)
    }

    pub fn events(&self, run_id: &str) -> Result<Vec<crate::event::Event>> {
        let p = self.run_dir(run_id).join("events.jsonl");
        let text = fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(line) {
                Ok(e) => out.push(e),
                // A line cut short by a kill is the end of the journal, not an error.
                Err(_) if i + 1 == text.lines().count() => break,
                Err(e) => {
                    return Err(Error::bad_input(
                        tidemark::Location::line(&p, i + 1),
                        format!("not a journal event: {e}"),
                    ));
                }
            }
        }
        Ok(out)
    }
}

/// Held for the whole deploy; the kernel releases it when the process ends, even by SIGKILL.
pub struct DeployLock {
    _file: File,
}
