//! Drills: rehearse a restore, a rollback and a repair on scratch copies — never on the live
//! database — time each step, and keep the figures. A backup that was never restored and a
//! down script that never ran are hopes, not plans (seed 004's maintenance list: "check the
//! backup files, test the rollback script, measure the recovery time").
//!
//! - [`restore`]: the latest (or a named) backup → a scratch database → fingerprint and row
//!   counts against the manifest → the application gate; the sum of the steps is the measured
//!   recovery time.
//! - [`rollback`]: on a scratch copy (the latest backup, else a replay of the migrations), revert
//!   the newest N migrations with their down scripts and apply them again, checking after each
//!   direction that the schema is what it was; a down script that leaves something behind fails
//!   the drill and names the objects.
//! - [`repair`]: on a scratch copy, delete the newest history rows (seed 000's incident) and run
//!   the evidence-based repair; passes when it writes back exactly the rows that were deleted.
//!
//! Scratch databases are named `tm_drill_<unix secs>_<host>_<pid>_<random>` ([`Scratches`]):
//! every one is dropped when its drill ends (also on failure; the CLI drops them on Ctrl-C), and
//! [`Scratches::sweep`] drops those left by a killed run — by their prefix, when their process
//! is gone (same host) or they are older than the sweep age.
//!
//! The figures go to a local file filed under the database's identity ([`Journal`]), not into
//! the database: a drill writes nothing to the live database, and a journal kept there would be
//! rolled back by the very restore the drill rehearses.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tidemark_schema::{Object, Schema};

use crate::backup::{self, Manifest, Store};
use crate::driver::{Dialect, Driver, Dumper};
use crate::engine::{self, Allow, Settings};
use crate::error::{Error, Result};
use crate::gate;
use crate::history;
use crate::migration::MigrationSet;
use crate::plan::{DownTarget, UpTarget};
use crate::replay::{self, Footprint, Shadow};
use crate::status::Status;
use crate::url::DatabaseUrl;

/// The prefix of every scratch database (and SQLite scratch file) a drill makes.
pub const PREFIX: &str = "tm_drill_";
/// The journal of drills, in the database's folder of the backup directory.
pub const JOURNAL_FILE: &str = "drills.jsonl";
/// Where SQLite scratch files go, in the database's folder of the backup directory.
pub const SCRATCH_DIR: &str = ".drill-scratch";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Restore,
    Rollback,
    Repair,
    /// An A/A rollback of the serving release to itself through the deploy strategy
    /// (`tidemark-deploy`); only when asked for, since it touches the running application.
    Deploy,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Restore, Kind::Rollback, Kind::Repair, Kind::Deploy];
    /// What `drill all` runs: everything that works on scratch copies only.
    pub const SCRATCH: [Kind; 3] = [Kind::Restore, Kind::Rollback, Kind::Repair];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Restore => "restore",
            Kind::Rollback => "rollback",
            Kind::Repair => "repair",
            Kind::Deploy => "deploy",
        }
    }
}

impl std::str::FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Kind, String> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| format!("`{s}` is not a drill (restore, rollback, repair, deploy)"))
    }
}

/// One timed step of a drill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepResult {
    pub name: String,
    pub ok: bool,
    pub duration_ms: u64,
    /// What it found or did, one line.
    #[serde(default)]
    pub detail: Option<String>,
}

/// The outcome of one drill, as journaled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillReport {
    pub drill: Kind,
    /// Unique per drill run (the run id of the command).
    pub run_id: String,
    /// RFC 3339, UTC, when it started.
    pub started_at: String,
    pub database_id: String,
    /// The database, its password redacted.
    pub database: String,
    pub ok: bool,
    pub steps: Vec<StepResult>,
    /// The sum of the steps: for `restore`, the measured recovery time.
    pub total_ms: u64,
    pub target_ms: Option<u64>,
    /// Passed, but slower than the target by this much.
    pub missed_target_by_ms: Option<u64>,
    /// Why it failed, one reason per line (objects named).
    pub failures: Vec<String>,
    /// Where the scratch copy came from: `backup ID` or `replay of migrations up to V`.
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub backup_id: Option<String>,
    /// The migrations the drill exercised (rollback: reverted and re-applied; repair: rows
    /// removed and restored).
    #[serde(default)]
    pub versions: Vec<i64>,
}

impl DrillReport {
    /// 0 passed within target, 1 failed, 20 passed but missed its target.
    pub fn exit_code(&self) -> i32 {
        if !self.ok {
            1
        } else if self.missed_target_by_ms.is_some() {
            20
        } else {
            0
        }
    }
}

/// The exit code of several drills: 1 if any failed, else 20 if any missed its target, else 0.
pub fn exit_code(reports: &[DrillReport]) -> i32 {
    reports.iter().map(DrillReport::exit_code).fold(
        0,
        |a, c| {
            if a == 1 || c == 1 { 1 } else { a.max(c) }
        },
    )
}

/// What a drill is asked.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Recovery-time target per drill.
    pub targets: BTreeMap<Kind, Duration>,
    /// The backup to restore (default: the newest of this database).
    pub backup_id: Option<String>,
    /// Rollback: how many of the newest migrations to revert and re-apply (default 1).
    pub steps: Option<usize>,
    /// Repair: how many of the newest history rows to delete (default 3, at most all).
    pub rows: Option<usize>,
    /// Pause this long once the scratch database exists (tests use it to kill a drill mid-way).
    pub pause: Option<Duration>,
}

/// The database being drilled: read only — the drills never write to it.
pub struct Subject<'a> {
    pub live: &'a mut dyn Driver,
    pub database_id: &'a str,
    /// This database's backups (in the backup directory, filed under its identity).
    pub store: &'a Store,
    pub dumper: &'a dyn Dumper,
    pub set: &'a MigrationSet,
    pub settings: &'a Settings,
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        ))
        .unwrap_or_default()
}

/// Builds a report step by step (also for the deploy drill, in `tidemark-deploy`).
pub struct Run {
    pub r: DrillReport,
    pause: Option<Duration>,
}

impl Run {
    fn new(kind: Kind, s: &Subject<'_>, opts: &Options) -> Run {
        Run::begin(
            kind,
            &s.settings.run_id,
            s.database_id,
            &s.live.url().redacted(),
            opts,
        )
    }

    pub fn begin(
        kind: Kind,
        run_id: &str,
        database_id: &str,
        database: &str,
        opts: &Options,
    ) -> Run {
        Run {
            r: DrillReport {
                drill: kind,
                run_id: run_id.to_string(),
                started_at: now_rfc3339(),
                database_id: database_id.to_string(),
                database: database.to_string(),
                ok: true,
                steps: Vec::new(),
                total_ms: 0,
                target_ms: opts.targets.get(&kind).map(|d| d.as_millis() as u64),
                missed_target_by_ms: None,
                failures: Vec::new(),
                source: None,
                backup_id: None,
                versions: Vec::new(),
            },
            pause: opts.pause,
        }
    }

    pub fn step(&mut self, name: &str, started: Instant, ok: bool, detail: Option<String>) {
        self.r.steps.push(StepResult {
            name: name.to_string(),
            ok,
            duration_ms: started.elapsed().as_millis() as u64,
            detail,
        });
        if !ok {
            self.r.ok = false;
        }
    }

    pub fn fail(&mut self, name: &str, started: Instant, why: String) {
        self.step(name, started, false, Some(first_line(&why)));
        self.r.failures.push(why);
    }

    async fn pause(&self) {
        if let Some(p) = self.pause {
            tokio::time::sleep(p).await;
        }
    }

    pub fn finish(mut self) -> DrillReport {
        self.r.total_ms = self.r.steps.iter().map(|s| s.duration_ms).sum();
        if self.r.ok
            && let Some(t) = self.r.target_ms
            && self.r.total_ms > t
        {
            self.r.missed_target_by_ms = Some(self.r.total_ms - t);
        }
        self.r
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

// ---------------------------------------------------------------------------------------------
// Scratch databases

fn host_tag() -> String {
    use sha2::{Digest, Sha256};
    let host = fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    hex::encode(Sha256::digest(host.trim().as_bytes()))[..6].to_string()
}

fn scratch_name() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut r = [0u8; 2];
    let _ = getrandom::fill(&mut r);
    format!(
        "{PREFIX}{}_{}_{}_{}",
        now.as_secs(),
        host_tag(),
        std::process::id(),
        hex::encode(r)
    )
}

/// The parts of a scratch name: (created, host tag, pid).
fn parse_scratch_name(name: &str) -> Option<(u64, String, u32)> {
    let rest = name.strip_prefix(PREFIX)?;
    let rest = rest.strip_suffix(".sqlite").unwrap_or(rest);
    let mut it = rest.split('_');
    let secs = it.next()?.parse().ok()?;
    let host = it.next()?.to_string();
    let pid = it.next()?.parse().ok()?;
    it.next()?;
    Some((secs, host, pid))
}

fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true // cannot tell: age decides
    }
}

/// Should the sweeper drop this scratch database left by another run?
fn is_leftover(name: &str, now_secs: u64, max_age: Duration) -> bool {
    let Some((secs, host, pid)) = parse_scratch_name(name) else {
        return false;
    };
    if pid == std::process::id() && host == host_tag() {
        return false; // ours
    }
    let old = now_secs.saturating_sub(secs) >= max_age.as_secs();
    let dead = host == host_tag() && !process_alive(pid);
    old || dead
}

/// The scratch databases of one drill command: created on the live server (a file in the
/// scratch directory for SQLite) through a connection of their own, and dropped again.
pub struct Scratches {
    dialect: Dialect,
    /// Where SQLite scratch files go.
    dir: PathBuf,
    /// A connection to the live server, used only to create and drop databases.
    owner: tokio::sync::Mutex<Option<Box<dyn Driver>>>,
    /// The URL of that connection, to open a fresh one for [`Scratches::drop_all`].
    admin: DatabaseUrl,
    made: std::sync::Mutex<BTreeSet<String>>,
}

impl Scratches {
    /// `dir`: where SQLite scratch files go (created when needed).
    pub async fn open(live: &dyn Driver, dir: &Path) -> Result<Scratches> {
        let owner = if live.dialect() == Dialect::Sqlite {
            None
        } else {
            Some(live.connect_other(live.url()).await?)
        };
        Ok(Scratches {
            dialect: live.dialect(),
            dir: dir.to_path_buf(),
            owner: tokio::sync::Mutex::new(owner),
            admin: live.url().clone(),
            made: std::sync::Mutex::new(BTreeSet::new()),
        })
    }

    fn remember(&self, name: &str, on: bool) {
        if let Ok(mut m) = self.made.lock() {
            if on {
                m.insert(name.to_string());
            } else {
                m.remove(name);
            }
        }
    }

    /// The scratch databases made and not dropped yet.
    pub fn outstanding(&self) -> Vec<String> {
        self.made
            .lock()
            .map(|m| m.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn sqlite_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.sqlite"))
    }

    /// Create an empty scratch database; returns its name and URL.
    pub async fn create(&self) -> Result<(String, DatabaseUrl)> {
        let name = scratch_name();
        if self.dialect == Dialect::Sqlite {
            fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
            let p = self.sqlite_path(&name);
            self.remember(&name, true);
            // There from the start, so that a sweep finds what a killed drill left.
            fs::File::create(&p).map_err(|e| Error::io(&p, e))?;
            return Ok((
                name,
                DatabaseUrl::parse(&format!("sqlite://{}", p.display()))?,
            ));
        }
        let mut owner = self.owner.lock().await;
        let d = owner
            .as_mut()
            .ok_or_else(|| Error::Usage("no connection to create a scratch database".into()))?;
        self.remember(&name, true);
        let url = d.create_database(&name).await.map_err(|e| {
            Error::Usage(format!(
                "could not create a scratch database for the drill ({e}); a drill needs the right to create databases on the server"
            ))
        })?;
        Ok((name, url))
    }

    async fn drop_with(&self, d: Option<&mut Box<dyn Driver>>, name: &str) -> Result<()> {
        if self.dialect == Dialect::Sqlite {
            let p = self.sqlite_path(name);
            for suffix in ["", "-wal", "-shm", "-journal", ".tidemark-lock"] {
                let f = PathBuf::from(format!("{}{suffix}", p.display()));
                match fs::remove_file(&f) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io(&f, e)),
                }
            }
        } else {
            let d =
                d.ok_or_else(|| Error::Usage("no connection to drop a scratch database".into()))?;
            d.drop_database(name).await?;
        }
        self.remember(name, false);
        Ok(())
    }

    /// Drop one scratch database.
    pub async fn drop(&self, name: &str) -> Result<()> {
        let mut owner = self.owner.lock().await;
        self.drop_with(owner.as_mut(), name).await
    }

    /// Drop every scratch database made and not dropped yet, through a fresh connection (the
    /// drill may have been interrupted mid-statement). Returns what could not be dropped.
    pub async fn drop_all(&self) -> Vec<(String, String)> {
        let names = self.outstanding();
        let mut failed = Vec::new();
        if names.is_empty() {
            return failed;
        }
        let mut fresh = None;
        if self.dialect != Dialect::Sqlite {
            let owner = self.owner.lock().await;
            if let Some(o) = owner.as_ref() {
                match o.connect_other(&self.admin).await {
                    Ok(d) => fresh = Some(d),
                    Err(e) => {
                        return names.into_iter().map(|n| (n, e.to_string())).collect();
                    }
                }
            }
        }
        for n in names {
            if let Err(e) = self.drop_with(fresh.as_mut(), &n).await {
                failed.push((n, e.to_string()));
            }
        }
        if let Some(d) = fresh {
            d.close().await;
        }
        failed
    }

    /// Every scratch database of any drill on this server (or in the scratch directory).
    pub async fn existing(&self) -> Result<Vec<String>> {
        let names: Vec<String> = match self.dialect {
            Dialect::Sqlite => match fs::read_dir(&self.dir) {
                Ok(rd) => rd
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".sqlite"))
                    .map(|n| n.trim_end_matches(".sqlite").to_string())
                    .collect(),
                Err(_) => Vec::new(),
            },
            d => {
                let sql = if d == Dialect::Postgres {
                    "SELECT datname::text FROM pg_database"
                } else {
                    "SELECT CAST(SCHEMA_NAME AS CHAR) FROM information_schema.SCHEMATA"
                };
                let mut owner = self.owner.lock().await;
                let o = owner.as_mut().ok_or_else(|| {
                    Error::Usage("no connection to list scratch databases".into())
                })?;
                o.query(sql, &[])
                    .await
                    .map_err(|e| Error::db("could not list the databases", e))?
                    .into_iter()
                    .filter_map(|r| r.into_iter().next().and_then(|v| v.into_text()))
                    .collect()
            }
        };
        Ok(names
            .into_iter()
            .filter(|n| n.starts_with(PREFIX))
            .collect())
    }

    /// Drop the scratch databases that killed drills left: those of a process that is gone
    /// (on this host), or older than `max_age`. Returns the names dropped.
    pub async fn sweep(&self, max_age: Duration) -> Result<Vec<String>> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut dropped = Vec::new();
        for n in self.existing().await? {
            if is_leftover(&n, now, max_age) {
                match self.drop(&n).await {
                    Ok(()) => dropped.push(n),
                    Err(e) => tracing::warn!("could not sweep the scratch database {n}: {e}"),
                }
            }
        }
        Ok(dropped)
    }

    pub async fn close(self) {
        if let Some(d) = self.owner.into_inner() {
            d.close().await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Drill journal

/// The drill journal of one database: a JSON line per drill, in the database's folder of the
/// backup directory (beside its backups, filed under its identity).
pub struct Journal {
    path: PathBuf,
}

impl Journal {
    pub fn of(store: &Store) -> Journal {
        Journal {
            path: store.dir().join(JOURNAL_FILE),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn append(&self, r: &DrillReport) -> Result<()> {
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let mut o = OpenOptions::new();
        o.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        let mut f = o.open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        let line = serde_json::to_string(r).map_err(|e| Error::Tool(e.to_string()))?;
        writeln!(f, "{line}").map_err(|e| Error::io(&self.path, e))?;
        f.sync_all().map_err(|e| Error::io(&self.path, e))
    }

    /// Every drill, oldest first. A line that does not parse (a write cut short) is skipped.
    pub fn read(&self) -> Result<Vec<DrillReport>> {
        match fs::read_to_string(&self.path) {
            Ok(t) => Ok(t
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Error::io(&self.path, e)),
        }
    }

    /// The newest `last` drills of each kind, oldest first.
    pub fn trend(&self, last: usize) -> Result<BTreeMap<Kind, Vec<DrillReport>>> {
        let mut out: BTreeMap<Kind, Vec<DrillReport>> = BTreeMap::new();
        for r in self.read()? {
            out.entry(r.drill).or_default().push(r);
        }
        for v in out.values_mut() {
            let skip = v.len().saturating_sub(last);
            v.drain(..skip);
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------------
// The drills

/// Run the drills asked for, each on its own scratch copies; a sweep of leftovers first.
/// Every report is appended to `journal` as soon as it is known.
pub async fn run(
    s: &mut Subject<'_>,
    kinds: &[Kind],
    opts: &Options,
    scratch: &Scratches,
    journal: &Journal,
) -> Result<Vec<DrillReport>> {
    let mut out = Vec::new();
    for k in kinds {
        let r = match k {
            Kind::Restore => restore(s, opts, scratch).await?,
            Kind::Rollback => rollback(s, opts, scratch).await?,
            Kind::Repair => repair(s, opts, scratch).await?,
            Kind::Deploy => {
                return Err(Error::Usage(
                    "the deploy drill runs through the deploy pipeline (tidemark-deploy), not on a scratch copy".into(),
                ));
            }
        };
        journal.append(&r)?;
        out.push(r);
    }
    Ok(out)
}

/// Pick the backup: `--backup ID` (of this database) or the newest.
fn pick(store: &Store, id: Option<&str>) -> Result<Option<Manifest>> {
    match id {
        Some(id) => match store.find(id)? {
            Some(m) => Ok(Some(m)),
            None => Err(Error::Usage(format!(
                "--backup {id}: no such backup of this database in {} (`tidemark backup list` shows them)",
                store.dir().display()
            ))),
        },
        None => store.latest(),
    }
}

/// Row counts and fingerprint of a restored copy against its manifest; the mismatches.
async fn compare_with_manifest(
    d: &mut dyn Driver,
    m: &Manifest,
    settings: &Settings,
) -> Result<Vec<String>> {
    let schema = d.inspect(&settings.inspect).await?;
    let counts = backup::row_counts(d, &schema).await?;
    let mut bad = Vec::new();
    let fp = schema.fingerprint().0;
    if fp != m.schema_fingerprint {
        bad.push(format!(
            "schema fingerprint {} differs from the manifest's {}",
            &fp[..12],
            &m.schema_fingerprint[..12.min(m.schema_fingerprint.len())]
        ));
    }
    for (t, n) in &m.row_counts {
        match counts.get(t) {
            Some(c) if c == n => {}
            Some(c) => bad.push(format!("table {t}: {c} rows, the manifest says {n}")),
            None => bad.push(format!("table {t}: missing, the manifest says {n} rows")),
        }
    }
    for (t, c) in &counts {
        if !m.row_counts.contains_key(t) {
            bad.push(format!("table {t}: {c} rows, not in the manifest"));
        }
    }
    Ok(bad)
}

/// Restore drill: find → restore into a scratch database → verify against the manifest → gate.
pub async fn restore(
    s: &mut Subject<'_>,
    opts: &Options,
    scratch: &Scratches,
) -> Result<DrillReport> {
    let mut run = Run::new(Kind::Restore, s, opts);
    let t = Instant::now();
    let m = match pick(s.store, opts.backup_id.as_deref())? {
        Some(m) => m,
        None => {
            run.fail(
                "find",
                t,
                format!(
                    "there is no backup of this database in {}: nothing to restore (`tidemark backup create`)",
                    s.store.dir().display()
                ),
            );
            return Ok(run.finish());
        }
    };
    run.r.backup_id = Some(m.id.clone());
    run.r.source = Some(format!("backup {}", m.id));
    if m.dialect != s.live.dialect().name() {
        run.fail(
            "find",
            t,
            format!("backup {} is a {} backup", m.id, m.dialect),
        );
        return Ok(run.finish());
    }
    if let Err(e) = s.store.check(&m) {
        run.fail("find", t, e.to_string());
        return Ok(run.finish());
    }
    run.step(
        "find",
        t,
        true,
        Some(format!(
            "backup {} ({} bytes, checksum ok, taken {})",
            m.id, m.size_bytes, m.created_at
        )),
    );

    let t = Instant::now();
    let (name, url) = scratch.create().await?;
    let body = async {
        run.pause().await;
        if let Err(e) = s.dumper.restore_into(&s.store.data_path(&m), &url).await {
            run.fail(
                "restore",
                t,
                format!("restore of backup {} failed: {e}", m.id),
            );
            return Ok(());
        }
        run.step(
            "restore",
            t,
            true,
            Some(format!("into scratch database {name}")),
        );
        let mut copy = s.live.connect_other(&url).await?;
        let r = async {
            let t = Instant::now();
            let bad = compare_with_manifest(copy.as_mut(), &m, s.settings).await?;
            if bad.is_empty() {
                run.step(
                    "verify",
                    t,
                    true,
                    Some(format!(
                        "fingerprint and row counts of {} table(s) match the manifest",
                        m.row_counts.len()
                    )),
                );
            } else {
                run.fail(
                    "verify",
                    t,
                    format!(
                        "the restored copy does not match backup {}'s manifest:\n  {}",
                        m.id,
                        bad.join("\n  ")
                    ),
                );
                return Ok(());
            }
            let t = Instant::now();
            let Some(head) = m.history_head else {
                run.step(
                    "gate",
                    t,
                    true,
                    Some("skipped: the backup holds no migration history".into()),
                );
                return Ok(());
            };
            let require = if s.set.position(head).is_some() {
                gate::Require::Version(head)
            } else {
                gate::Require::Latest
            };
            let mut settings = s.settings.clone();
            settings.shadow_url = None;
            match gate::check(copy.as_mut(), s.set, &settings, gate::Options::new(require)).await {
                Ok(rep) if rep.ok => run.step(
                    "gate",
                    t,
                    true,
                    Some(format!(
                        "an application built for migration {head} may start on the restored copy"
                    )),
                ),
                Ok(rep) => run.fail(
                    "gate",
                    t,
                    format!(
                        "the application gate refuses the restored copy (require {head}): {}",
                        rep.reasons.join("; ")
                    ),
                ),
                Err(e) => run.fail("gate", t, format!("the application gate failed: {e}")),
            }
            Ok::<_, Error>(())
        }
        .await;
        copy.close().await;
        r
    }
    .await;
    let dropped = scratch.drop(&name).await;
    body?;
    dropped?;
    Ok(run.finish())
}

/// A scratch copy of the live database: from the newest backup when it was taken at the live
/// history's head (the backup `up` takes before it migrates is older than the schema it
/// leaves), else the migrations replayed up to that head. Returns the connection.
async fn copy_of_live(
    s: &mut Subject<'_>,
    run: &mut Run,
    url: &DatabaseUrl,
) -> Result<Option<Box<dyn Driver>>> {
    let t = Instant::now();
    let h = history::read(s.live).await?;
    let head = Status::compute(s.set, &h).current_version;
    if let Some(m) = s.store.latest()?
        && head.is_some()
        && m.history_head == head
    {
        run.r.backup_id = Some(m.id.clone());
        run.r.source = Some(format!("backup {}", m.id));
        if let Err(e) = s.store.check(&m) {
            run.fail("copy", t, e.to_string());
            return Ok(None);
        }
        if let Err(e) = s.dumper.restore_into(&s.store.data_path(&m), url).await {
            run.fail("copy", t, format!("restore of backup {} failed: {e}", m.id));
            return Ok(None);
        }
        run.step("copy", t, true, Some(format!("restored backup {}", m.id)));
        return Ok(Some(s.live.connect_other(url).await?));
    }
    let Some(head) = head else {
        run.fail(
            "copy",
            t,
            "no migration is applied to this database: nothing to rehearse".into(),
        );
        return Ok(None);
    };
    run.r.source = Some(format!("replay of migrations up to {head}"));
    let mut copy = s.live.connect_other(url).await?;
    let mut settings = s.settings.clone();
    settings.run_id = engine::new_run_id();
    let r = engine::up(
        copy.as_mut(),
        s.set,
        &UpTarget {
            to: Some(head),
            single_transaction: false,
        },
        Allow::default(),
        &settings,
        &mut engine::Quiet,
        None,
    )
    .await;
    match r {
        Ok(_) => {
            run.step(
                "copy",
                t,
                true,
                Some(format!(
                    "replayed migrations up to {head} (no backup taken at {head})"
                )),
            );
            Ok(Some(copy))
        }
        Err(e) => {
            copy.close().await;
            run.fail("copy", t, format!("replay of the migrations failed: {e}"));
            Ok(None)
        }
    }
}

/// The applied migrations of a copy, newest last.
async fn applied(d: &mut dyn Driver, set: &MigrationSet) -> Result<Vec<i64>> {
    let h = history::read(d).await?;
    let mut v: Vec<i64> = h
        .entries
        .iter()
        .filter(|e| e.state == history::HistoryState::Applied)
        .map(|e| e.version)
        .collect();
    v.sort_by_key(|x| set.position(*x).unwrap_or(usize::MAX));
    Ok(v)
}

fn describe(path: &str, expected: Option<&Object>, actual: Option<&Object>) -> String {
    match (expected, actual) {
        (None, Some(_)) => format!("{path}: left behind"),
        (Some(_), None) => format!("{path}: missing"),
        _ => format!("{path}: not as it was"),
    }
}

/// Rollback drill: revert the newest N migrations of a scratch copy and apply them again.
pub async fn rollback(
    s: &mut Subject<'_>,
    opts: &Options,
    scratch: &Scratches,
) -> Result<DrillReport> {
    let mut run = Run::new(Kind::Rollback, s, opts);
    let n = opts.steps.unwrap_or(1).max(1);
    let (name, url) = scratch.create().await?;
    let body = async {
        run.pause().await;
        let Some(mut copy) = copy_of_live(s, &mut run, &url).await? else {
            return Ok(());
        };
        let r = rollback_on(s, &mut run, copy.as_mut(), n, scratch).await;
        copy.close().await;
        r
    }
    .await;
    let dropped = scratch.drop(&name).await;
    body?;
    dropped?;
    Ok(run.finish())
}

async fn rollback_on(
    s: &mut Subject<'_>,
    run: &mut Run,
    copy: &mut dyn Driver,
    n: usize,
    scratch: &Scratches,
) -> Result<()> {
    let applied = applied(copy, s.set).await?;
    let last: Vec<i64> = applied.iter().rev().take(n).copied().collect();
    if last.is_empty() {
        run.fail(
            "revert",
            Instant::now(),
            "the copy has no applied migration to revert".into(),
        );
        return Ok(());
    }
    run.r.versions = last.clone();
    // What each migration changes, from a replay of the migrations up to the newest one.
    let t = Instant::now();
    let Some(top) = last.first().and_then(|v| s.set.position(*v)) else {
        run.fail(
            "replay",
            t,
            format!("migration {} is applied but its file is gone", last[0]),
        );
        return Ok(());
    };
    let ms: Vec<&crate::migration::Migration> = s.set.migrations[..=top].iter().collect();
    // On a scratch database of the drill's own, so that a killed drill's sweep finds it too.
    let (name, url) = scratch.create().await?;
    let states = async {
        let mut shadow = Shadow::on(copy.connect_other(&url).await?);
        let states = replay::states(&mut shadow, &ms, &s.settings.inspect).await;
        shadow.close().await;
        states
    }
    .await;
    scratch.drop(&name).await?;
    let states = match states {
        Ok(x) => x,
        Err(e) => {
            run.fail("replay", t, e.to_string());
            return Ok(());
        }
    };
    run.step(
        "replay",
        t,
        true,
        Some(format!(
            "what migrations {} change, from a replay on a scratch database",
            last.iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )),
    );
    let mut settings = s.settings.clone();
    settings.run_id = engine::new_run_id();
    let mut before_each: Vec<(i64, Schema)> = Vec::new();
    for v in &last {
        let t = Instant::now();
        let before = copy.inspect(&settings.inspect).await?;
        let r = engine::down(
            copy,
            s.set,
            DownTarget::Steps(1),
            true,
            &settings,
            &mut engine::Quiet,
            None,
        )
        .await;
        if let Err(e) = r {
            run.fail(
                &format!("down {v}"),
                t,
                format!("the down script of migration {v} failed: {e}"),
            );
            return Ok(());
        }
        let after = copy.inspect(&settings.inspect).await?;
        let pos = s.set.position(*v).unwrap_or(0) + 1;
        let fp = Footprint::between(
            &replay::objects(&states[pos - 1].schema),
            &replay::objects(&states[pos].schema),
        );
        let (b, a) = (replay::objects(&before), replay::objects(&after));
        let mut wrong = Vec::new();
        for (path, (pre, _)) in &fp.objects {
            if a.get(path) != pre.as_ref() {
                wrong.push(describe(path, pre.as_ref(), a.get(path)));
            }
        }
        let paths: BTreeSet<&String> = b.keys().chain(a.keys()).collect();
        for p in paths {
            if !fp.objects.contains_key(p) && b.get(p) != a.get(p) {
                wrong.push(format!(
                    "{p}: changed by the down script, though migration {v} does not touch it"
                ));
            }
        }
        if wrong.is_empty() {
            run.step(
                &format!("down {v}"),
                t,
                true,
                Some(format!(
                    "schema back to the state before {v} ({})",
                    &after.fingerprint().0[..12]
                )),
            );
        } else {
            run.fail(
                &format!("down {v}"),
                t,
                format!(
                    "the down script of migration {v} does not restore the schema before it:\n  {}",
                    wrong.join("\n  ")
                ),
            );
            return Ok(());
        }
        before_each.push((*v, before));
    }
    for (v, before) in before_each.iter().rev() {
        let t = Instant::now();
        let r = engine::up(
            copy,
            s.set,
            &UpTarget {
                to: Some(*v),
                single_transaction: false,
            },
            Allow {
                drift: true,
                ..Allow::default()
            },
            &settings,
            &mut engine::Quiet,
            None,
        )
        .await;
        if let Err(e) = r {
            run.fail(
                &format!("up {v}"),
                t,
                format!("re-applying migration {v} failed: {e}"),
            );
            return Ok(());
        }
        let after = copy.inspect(&settings.inspect).await?;
        let d = tidemark_schema::diff(before, &after);
        if d.is_empty() {
            run.step(
                &format!("up {v}"),
                t,
                true,
                Some(format!(
                    "fingerprint {} as before the drill",
                    &after.fingerprint().0[..12]
                )),
            );
        } else {
            run.fail(
                &format!("up {v}"),
                t,
                format!(
                    "after down and up again, migration {v} leaves another schema:\n  {}",
                    d.changes
                        .iter()
                        .map(|c| c.to_string())
                        .collect::<Vec<_>>()
                        .join("\n  ")
                ),
            );
            return Ok(());
        }
    }
    Ok(())
}

/// Repair drill: delete the newest history rows of a scratch copy and let `repair` work them
/// out from the schema alone.
pub async fn repair(
    s: &mut Subject<'_>,
    opts: &Options,
    scratch: &Scratches,
) -> Result<DrillReport> {
    let mut run = Run::new(Kind::Repair, s, opts);
    let (name, url) = scratch.create().await?;
    let body = async {
        run.pause().await;
        let Some(mut copy) = copy_of_live(s, &mut run, &url).await? else {
            return Ok(());
        };
        let r = repair_on(s, &mut run, copy.as_mut(), opts.rows.unwrap_or(3).max(1)).await;
        copy.close().await;
        r
    }
    .await;
    let dropped = scratch.drop(&name).await;
    body?;
    dropped?;
    Ok(run.finish())
}

type Row = (i64, String, String, &'static str);

fn rows_of(h: &history::History) -> Vec<Row> {
    h.entries
        .iter()
        .map(|e| {
            (
                e.version,
                e.name.clone(),
                e.checksum.clone(),
                e.state.as_str(),
            )
        })
        .collect()
}

async fn repair_on(
    s: &mut Subject<'_>,
    run: &mut Run,
    copy: &mut dyn Driver,
    rows: usize,
) -> Result<()> {
    let t = Instant::now();
    let original = history::read(copy).await?;
    let applied = applied(copy, s.set).await?;
    let doomed: Vec<i64> = applied.iter().rev().take(rows).copied().collect();
    if doomed.is_empty() {
        run.fail("forget", t, "the copy has no history row to remove".into());
        return Ok(());
    }
    run.r.versions = doomed.clone();
    for v in &doomed {
        history::delete(copy, *v).await?;
    }
    run.step(
        "forget",
        t,
        true,
        Some(format!(
            "deleted the history rows of {} (as in seed 000)",
            doomed
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )),
    );
    let t = Instant::now();
    let mut settings = s.settings.clone();
    settings.run_id = engine::new_run_id();
    settings.shadow_url = None;
    let out = crate::repair::repair(
        copy,
        s.set,
        &settings,
        &crate::repair::Decisions::default(),
        true,
        &mut engine::Quiet,
    )
    .await;
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            run.fail("repair", t, format!("repair failed: {e}"));
            return Ok(());
        }
    };
    let after = history::read(copy).await?;
    let mut wrong = Vec::new();
    let (want, got) = (rows_of(&original), rows_of(&after));
    for r in &want {
        if !got.contains(r) {
            wrong.push(format!(
                "history row {} ({}, {}) not restored",
                r.0, r.1, r.3
            ));
        }
    }
    for r in &got {
        if !want.contains(r) {
            wrong.push(format!(
                "history row {} ({}, {}) not there before",
                r.0, r.1, r.3
            ));
        }
    }
    if !out.consistent {
        wrong.push(format!(
            "after the repair the history still disagrees with the schema: {}",
            out.plan.summary()
        ));
    }
    for u in &out.plan.unexplained {
        wrong.push(format!("{u}: no migration explains it"));
    }
    for v in &out.undecided {
        wrong.push(format!("migration {v}: needs a person's decision"));
    }
    if wrong.is_empty() {
        run.step(
            "repair",
            t,
            true,
            Some(format!(
                "the evidence restored the {} row(s) exactly: {}",
                doomed.len(),
                out.plan.summary()
            )),
        );
    } else {
        run.fail(
            "repair",
            t,
            format!(
                "the repair does not restore the history exactly:\n  {}",
                wrong.join("\n  ")
            ),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_names_parse_and_leftovers_are_judged() {
        let n = scratch_name();
        assert!(n.len() < 63, "{n}");
        let (secs, host, pid) = parse_scratch_name(&n).unwrap();
        assert_eq!(pid, std::process::id());
        assert_eq!(host, host_tag());
        // Our own: never swept.
        assert!(!is_leftover(&n, secs + 10_000, Duration::from_secs(60)));
        // Another host's, young: kept; old: swept.
        let other = format!("{PREFIX}{secs}_zzzzzz_1_abcd");
        assert!(!is_leftover(&other, secs + 10, Duration::from_secs(3600)));
        assert!(is_leftover(&other, secs + 4000, Duration::from_secs(3600)));
        // This host, a process that is gone: swept at once.
        let dead = format!("{PREFIX}{secs}_{}_{}_abcd", host_tag(), u32::MAX - 1);
        assert!(is_leftover(&dead, secs, Duration::from_secs(3600)));
        assert!(!is_leftover("tm_shadow_1_2", secs, Duration::ZERO));
        assert!(!is_leftover("tm_drill_x", secs, Duration::ZERO));
    }

    #[test]
    fn the_journal_keeps_every_drill_and_the_trend_the_newest_per_kind() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::at(dir.path()).unwrap();
        let j = Journal::of(&store);
        assert!(j.trend(5).unwrap().is_empty(), "no file yet: no drills");
        let mk = |kind: Kind, ms: u64| DrillReport {
            drill: kind,
            run_id: format!("r{ms}"),
            started_at: String::new(),
            database_id: String::new(),
            database: String::new(),
            ok: ms.is_multiple_of(2),
            steps: vec![],
            total_ms: ms,
            target_ms: None,
            missed_target_by_ms: None,
            failures: vec![],
            source: None,
            backup_id: None,
            versions: vec![],
        };
        for ms in 1..=4 {
            j.append(&mk(Kind::Restore, ms)).unwrap();
        }
        j.append(&mk(Kind::Repair, 10)).unwrap();
        // A line cut short by a crash is skipped, not fatal.
        std::fs::OpenOptions::new()
            .append(true)
            .open(j.path())
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"{\"drill\": \"rest"))
            .unwrap();
        let t = j.trend(2).unwrap();
        let ms: Vec<u64> = t[&Kind::Restore].iter().map(|r| r.total_ms).collect();
        assert_eq!(ms, [3, 4], "the newest two, oldest first");
        assert_eq!(t[&Kind::Repair].len(), 1);
        assert_eq!(j.read().unwrap().len(), 5);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(j.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn exit_codes_combine() {
        let mk = |ok: bool, missed: Option<u64>| DrillReport {
            drill: Kind::Restore,
            run_id: "r".into(),
            started_at: String::new(),
            database_id: String::new(),
            database: String::new(),
            ok,
            steps: vec![],
            total_ms: 0,
            target_ms: None,
            missed_target_by_ms: missed,
            failures: vec![],
            source: None,
            backup_id: None,
            versions: vec![],
        };
        assert_eq!(exit_code(&[mk(true, None)]), 0);
        assert_eq!(exit_code(&[mk(true, Some(5)), mk(true, None)]), 20);
        assert_eq!(exit_code(&[mk(true, Some(5)), mk(false, None)]), 1);
        assert_eq!(exit_code(&[mk(false, None), mk(true, Some(5))]), 1);
    }
}
