//! Backups: taken before anything changes, kept in a persistent directory (never /tmp), each
//! with a manifest that says what it holds, and provably restorable (`verify` restores into a
//! scratch database and compares the schema fingerprint and row counts).
//!
//! The dumping itself is the database's own tool, behind [`Dumper`]; everything else (ids,
//! manifests, checksums, file modes, retention) is here, once.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tidemark_schema::Schema;

use crate::driver::{Dialect, Driver, Dumper, InspectOptions, Value};
use crate::error::{Error, Result};
use crate::identity;
use crate::url::DatabaseUrl;

pub const MANIFEST: &str = "manifest.json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub id: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub tidemark_version: String,
    /// The database URL with its password redacted.
    pub database: String,
    pub dialect: String,
    pub server: String,
    /// The identity of the database the backup was taken of ([`crate::identity`]); `None` in
    /// backups written before tidemark recorded identities ("identity unknown").
    #[serde(default)]
    pub database_id: Option<String>,
    /// Where that database lived, e.g. `postgres system_identifier=… oid=… database=shop`.
    #[serde(default)]
    pub server_identity: Option<String>,
    /// The newest applied migration when the backup was taken.
    pub history_head: Option<i64>,
    pub schema_fingerprint: String,
    pub row_counts: BTreeMap<String, i64>,
    pub size_bytes: u64,
    /// SHA-256 (hex) of the dump file.
    pub sha256: String,
    pub format: String,
    /// The dump's file name, in the backup's directory.
    pub file: String,
    /// Why it was taken: `manual`, `before up (run …)`, `before restore of …`.
    pub reason: String,
    pub run_id: Option<String>,
    pub duration_ms: u64,
}

/// The backups of one database: one subdirectory per backup, holding the dump and its
/// manifest. Inside a [`Vault`] that is `BASE/DATABASE-ID`; the folders of backups written
/// before identities (see [`Vault::legacy`]) are stores too.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

fn absolute(dir: &Path) -> Result<PathBuf> {
    Ok(if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| Error::io(dir, e))?
            .join(dir)
    })
}

fn restrict_dir(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io(path, e))?;
    }
    Ok(())
}

/// Create (or truncate) a file readable by its owner only.
fn private_file(path: &Path) -> Result<fs::File> {
    let mut o = OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let f = o.open(path).map_err(|e| Error::io(path, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io(path, e))?;
    }
    Ok(f)
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// `2026-11-23T18:46:26.780Z`: RFC 3339 in UTC with milliseconds, as everywhere in tidemark.
fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        ))
        .unwrap_or_default()
}

impl Store {
    /// Open the directory, creating it (mode 0700) if needed. tidemark never picks temporary
    /// storage itself (see [`default_dir`]); a configured one is the user's choice, and the CLI
    /// warns about it.
    pub fn open(dir: &Path) -> Result<Store> {
        let abs = absolute(dir)?;
        if !abs.exists() {
            fs::create_dir_all(&abs).map_err(|e| Error::io(&abs, e))?;
            restrict_dir(&abs)?;
        }
        Ok(Store { dir: abs })
    }

    /// The store at `dir` without creating anything (for reading: a missing directory holds no
    /// backups).
    pub fn at(dir: &Path) -> Result<Store> {
        Ok(Store {
            dir: absolute(dir)?,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn list(&self) -> Result<Vec<Manifest>> {
        let mut out = Vec::new();
        if !self.dir.is_dir() {
            return Ok(out);
        }
        for e in fs::read_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))? {
            let e = e.map_err(|e| Error::io(&self.dir, e))?;
            let m = e.path().join(MANIFEST);
            if m.is_file() {
                out.push(read_manifest(&m)?);
            }
        }
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    pub fn get(&self, id: &str) -> Result<Manifest> {
        if id.contains(['/', '\\']) || id.starts_with('.') {
            return Err(Error::Usage(format!("`{id}` is not a backup id")));
        }
        let m = self.dir.join(id).join(MANIFEST);
        if !m.is_file() {
            return Err(Error::Usage(format!(
                "no backup `{id}` in {} (`tidemark backup list` shows them)",
                self.dir.display()
            )));
        }
        read_manifest(&m)
    }

    /// The backup `id` if this store holds it.
    pub fn find(&self, id: &str) -> Result<Option<Manifest>> {
        if id.contains(['/', '\\']) || id.starts_with('.') || id.is_empty() {
            return Err(Error::Usage(format!("`{id}` is not a backup id")));
        }
        let m = self.dir.join(id).join(MANIFEST);
        if m.is_file() {
            read_manifest(&m).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The newest backup, if any.
    pub fn latest(&self) -> Result<Option<Manifest>> {
        Ok(self.list()?.pop())
    }

    pub fn data_path(&self, m: &Manifest) -> PathBuf {
        self.dir.join(&m.id).join(&m.file)
    }

    /// Does the dump still match its manifest?
    pub fn check(&self, m: &Manifest) -> Result<()> {
        let p = self.data_path(m);
        if !p.is_file() {
            return Err(Error::Inconsistent(format!(
                "backup {}: its dump {} is gone",
                m.id,
                p.display()
            )));
        }
        let sum = sha256_file(&p)?;
        if sum != m.sha256 {
            return Err(Error::Inconsistent(format!(
                "backup {} is corrupted: the dump's SHA-256 is {} but the manifest says {}; refusing to use it",
                m.id,
                &sum[..12],
                &m.sha256[..12.min(m.sha256.len())]
            )));
        }
        Ok(())
    }

    /// Remove the directories of backups that were never finished (no manifest) and whose
    /// process is gone ([`crate::scratch::dir_orphaned`]); returns their names.
    pub fn sweep_unfinished(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        if !self.dir.is_dir() {
            return Ok(out);
        }
        for e in fs::read_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))? {
            let e = e.map_err(|e| Error::io(&self.dir, e))?;
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p.is_dir()
                && !name.starts_with('.')
                && !p.join(MANIFEST).exists()
                && crate::scratch::dir_orphaned(&p)
            {
                fs::remove_dir_all(&p).map_err(|e| Error::io(&p, e))?;
                out.push(name);
            }
        }
        Ok(out)
    }

    /// Apply retention: keep the newest `keep` and those younger than `keep_days`; the newest
    /// backup is never deleted. With neither set nothing is deleted. Returns the deleted ids.
    pub fn prune(
        &self,
        keep: Option<usize>,
        keep_days: Option<u64>,
        now: time::OffsetDateTime,
    ) -> Result<Vec<String>> {
        let all = self.list()?;
        let doomed = doomed(&all, keep, keep_days, now);
        for id in &doomed {
            let d = self.dir.join(id);
            fs::remove_dir_all(&d).map_err(|e| Error::io(&d, e))?;
        }
        Ok(doomed)
    }
}

/// The backup directory as a whole: a folder per database id (`BASE/DATABASE-ID/BACKUP-ID`),
/// whatever the directory (the user's data directory, `[backup] dir`, `TIDEMARK_BACKUP_DIR`),
/// so that one backup volume can serve every database of a host. Backups written before
/// identities lie in the old places: flat in the base directory, or in the old default folder
/// named after the dialect and database (`legacy`).
#[derive(Debug, Clone)]
pub struct Vault {
    base: PathBuf,
    legacy: Vec<PathBuf>,
}

impl Vault {
    /// Nothing is created until a backup is written.
    pub fn new(base: &Path, legacy: &[PathBuf]) -> Result<Vault> {
        let base = absolute(base)?;
        let mut dirs = vec![base.clone()];
        for d in legacy {
            let d = absolute(d)?;
            if !dirs.contains(&d) {
                dirs.push(d);
            }
        }
        Ok(Vault { base, legacy: dirs })
    }

    pub fn base(&self) -> &Path {
        &self.base
    }

    fn checked(database_id: &str) -> Result<&str> {
        if crate::identity::is_database_id(database_id) {
            Ok(database_id)
        } else {
            Err(Error::Usage(format!(
                "`{database_id}` is not a database id (32 hex digits, as `tidemark status` and `tidemark backup list --all` show)"
            )))
        }
    }

    /// The backups of one database, for writing (the folders are created, mode 0700).
    pub fn open(&self, database_id: &str) -> Result<Store> {
        if !self.base.exists() {
            fs::create_dir_all(&self.base).map_err(|e| Error::io(&self.base, e))?;
            restrict_dir(&self.base)?;
        }
        Store::open(&self.base.join(Self::checked(database_id)?))
    }

    /// The backups of one database, for reading (nothing is created).
    pub fn peek(&self, database_id: &str) -> Result<Store> {
        Store::at(&self.base.join(Self::checked(database_id)?))
    }

    /// Every database with a folder here, by id.
    pub fn databases(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        if !self.base.is_dir() {
            return Ok(out);
        }
        for e in fs::read_dir(&self.base).map_err(|e| Error::io(&self.base, e))? {
            let e = e.map_err(|e| Error::io(&self.base, e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if crate::identity::is_database_id(&name) && e.path().is_dir() {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Backups from before identities ("identity unknown"), oldest first, each with its store.
    /// They may be of any database: they are listed, and restored only when named by id.
    pub fn legacy(&self) -> Result<Vec<(Store, Manifest)>> {
        let mut out = Vec::new();
        for d in &self.legacy {
            let store = Store::at(d)?;
            for m in store.list()? {
                if m.database_id.is_none() {
                    out.push((store.clone(), m));
                }
            }
        }
        out.sort_by(|(_, a), (_, b)| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Where backup `id` is, if anywhere: the database it belongs to (`None`: identity
    /// unknown), its store and manifest.
    pub fn locate(&self, id: &str) -> Result<Option<(Option<String>, Store, Manifest)>> {
        for db in self.databases()? {
            let store = self.peek(&db)?;
            if let Some(m) = store.find(id)? {
                return Ok(Some((Some(db), store, m)));
            }
        }
        for d in &self.legacy {
            let store = Store::at(d)?;
            if let Some(m) = store.find(id)?
                && m.database_id.is_none()
            {
                return Ok(Some((None, store, m)));
            }
        }
        Ok(None)
    }
}

/// Which backups retention deletes (pure; `all` oldest first).
pub fn doomed(
    all: &[Manifest],
    keep: Option<usize>,
    keep_days: Option<u64>,
    now: time::OffsetDateTime,
) -> Vec<String> {
    if keep.is_none() && keep_days.is_none() {
        return Vec::new();
    }
    let n = all.len();
    let mut out = Vec::new();
    for (i, m) in all.iter().enumerate() {
        let newest_rank = n - 1 - i; // 0 = newest
        if newest_rank == 0 {
            continue;
        }
        let by_count = keep.is_some_and(|k| newest_rank < k);
        let by_age = keep_days.is_some_and(|d| {
            time::OffsetDateTime::parse(
                &m.created_at,
                &time::format_description::well_known::Rfc3339,
            )
            .map(|t| now - t < time::Duration::days(d as i64))
            .unwrap_or(true)
        });
        if !by_count && !by_age {
            out.push(m.id.clone());
        }
    }
    out
}

fn read_manifest(path: &Path) -> Result<Manifest> {
    let text = fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| {
        Error::bad_input(
            crate::error::Location::file(path),
            format!("not a backup manifest: {e}"),
        )
    })
}

fn write_manifest(dir: &Path, m: &Manifest) -> Result<()> {
    let tmp = dir.join(format!("{MANIFEST}.tmp"));
    let mut f = private_file(&tmp)?;
    let text =
        serde_json::to_string_pretty(m).map_err(|e| Error::Usage(format!("manifest: {e}")))?;
    f.write_all(text.as_bytes())
        .map_err(|e| Error::io(&tmp, e))?;
    f.sync_all().map_err(|e| Error::io(&tmp, e))?;
    let path = dir.join(MANIFEST);
    fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))
}

fn quote_table(dialect: Dialect, name: &str) -> String {
    let q = |part: &str, c: char| format!("{c}{}{c}", part.replace(c, &format!("{c}{c}")));
    match dialect {
        Dialect::MySql => q(name, '`'),
        // PostgreSQL names outside `public` are displayed as `schema.table`.
        Dialect::Postgres => name
            .splitn(2, '.')
            .map(|p| q(p, '"'))
            .collect::<Vec<_>>()
            .join("."),
        Dialect::Sqlite => q(name, '"'),
    }
}

/// Exact row count of every table of the schema.
pub async fn row_counts(driver: &mut dyn Driver, schema: &Schema) -> Result<BTreeMap<String, i64>> {
    let d = driver.dialect();
    let tables: Vec<&String> = schema
        .tables
        .keys()
        .filter(|t| !tidemark_schema::is_bookkeeping_table(t))
        .collect();
    let mut out = BTreeMap::new();
    // A UNION ALL per hundred tables: few round trips even for large schemas.
    for chunk in tables.chunks(100) {
        let parts: Vec<String> = chunk
            .iter()
            .enumerate()
            .map(|(i, t)| format!("SELECT {i}, COUNT(*) FROM {}", quote_table(d, t)))
            .collect();
        let rows = driver
            .query(&parts.join(" UNION ALL "), &[])
            .await
            .map_err(|e| Error::db("could not count rows", e))?;
        for r in rows {
            let i = r.first().and_then(Value::as_i64).unwrap_or(-1);
            let n = r.get(1).and_then(Value::as_i64).unwrap_or(0);
            if let Some(t) = usize::try_from(i).ok().and_then(|i| chunk.get(i)) {
                out.insert((*t).clone(), n);
            }
        }
    }
    Ok(out)
}

/// `20261123T184627Z-81ab`: sortable by time, with a suffix so that two backups in the same
/// second (say `up`'s and a manual one) do not collide; `attempt` moves to another suffix.
fn new_id(attempt: u32) -> String {
    let now = time::OffsetDateTime::now_utc();
    let stamp = now
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap_or_default();
    let mix = now.nanosecond().wrapping_mul(2_654_435_761)
        ^ std::process::id().rotate_left(16)
        ^ attempt.wrapping_mul(40_503);
    format!("{stamp}-{:04x}", mix & 0xffff)
}

/// What to record about the database being backed up.
pub struct Subject<'a> {
    /// The database's identity ([`crate::identity::ensure`]); the backup is filed under it.
    pub database_id: &'a str,
    pub history_head: Option<i64>,
    pub reason: String,
    pub run_id: Option<&'a str>,
    pub inspect: &'a InspectOptions,
}

/// Take a backup. The tools are checked first; on any failure the partial backup is removed
/// and nothing else has changed.
pub async fn create(
    driver: &mut dyn Driver,
    dumper: &dyn Dumper,
    store: &Store,
    subject: Subject<'_>,
) -> Result<Manifest> {
    let started = std::time::Instant::now();
    dumper.check_tools().await?;
    // Recorded, not relied on (see crate::identity): a backup is not refused for want of it.
    let server_identity = crate::identity::server_identity(driver).await.ok();
    // The manifest and the dump must describe the same data even while the application
    // writes: share one snapshot where the database can (PostgreSQL); elsewhere the counts are
    // taken just before the dump (stop writers, or a verify may find a count moved).
    let snapshot = driver
        .export_snapshot()
        .await
        .map_err(|e| Error::db("could not open a snapshot for the backup", e))?;
    let described = async {
        let schema = driver.inspect(subject.inspect).await?;
        let counts = row_counts(driver, &schema).await?;
        Ok::<_, Error>((schema, counts))
    }
    .await;
    let (schema, counts) = match described {
        Ok(x) => x,
        Err(e) => {
            if snapshot.is_some() {
                let _ = driver.rollback().await;
            }
            return Err(e);
        }
    };
    let (id, dir) = {
        let mut attempt = 0;
        loop {
            let id = new_id(attempt);
            let dir = store.dir.join(&id);
            match fs::create_dir(&dir) {
                Ok(()) => break (id, dir),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 16 => {
                    attempt += 1
                }
                Err(e) => return Err(Error::io(&dir, e)),
            }
        }
    };
    // Until the manifest is written the directory is unfinished: removed by the signal
    // handler, or by the next run once its owner is gone ([`sweep_unfinished`]).
    crate::scratch::register_path(&dir);
    restrict_dir(&dir)?;
    let _ = crate::scratch::write_owner(&dir);
    let file = format!("data.{}", dumper.extension());
    let path = dir.join(&file);
    let database = driver.url().redacted();
    let dialect = driver.dialect().name().to_string();
    let server = format!("{} {}", driver.caps().flavor, driver.caps().server_version);
    let result = async {
        drop(private_file(&path)?); // so that the dump tool writes into a 0600 file
        dumper.dump(&path, snapshot.as_deref()).await?;
        let size = fs::metadata(&path).map_err(|e| Error::io(&path, e))?.len();
        let m = Manifest {
            id: id.clone(),
            created_at: now_rfc3339(),
            tidemark_version: env!("CARGO_PKG_VERSION").to_string(),
            database,
            dialect,
            server,
            database_id: Some(subject.database_id.to_string()),
            server_identity,
            history_head: subject.history_head,
            schema_fingerprint: schema.fingerprint().0,
            row_counts: counts,
            size_bytes: size,
            sha256: sha256_file(&path)?,
            format: dumper.format().to_string(),
            file,
            reason: subject.reason,
            run_id: subject.run_id.map(str::to_string),
            duration_ms: started.elapsed().as_millis() as u64,
        };
        write_manifest(&dir, &m)?;
        Ok(m)
    }
    .await;
    if snapshot.is_some() {
        let _ = driver.rollback().await;
    }
    if result.is_err() {
        let _ = fs::remove_dir_all(&dir);
    } else {
        let _ = fs::remove_file(dir.join(crate::scratch::OWNER_FILE));
    }
    crate::scratch::unregister_path(&dir);
    result
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub id: String,
    pub ok: bool,
    pub checksum_ok: bool,
    pub fingerprint_ok: bool,
    pub row_counts_ok: bool,
    pub restored_fingerprint: Option<String>,
    /// Tables whose row count differs: (table, manifest, restored).
    pub row_count_mismatches: Vec<(String, i64, Option<i64>)>,
    pub duration_ms: u64,
}

/// Restore into a scratch database and compare the schema fingerprint and the row counts with
/// the manifest. `live` is only used to create (and drop) the scratch database.
pub async fn verify(
    live: &mut dyn Driver,
    dumper: &dyn Dumper,
    store: &Store,
    m: &Manifest,
    inspect: &InspectOptions,
) -> Result<VerifyReport> {
    let started = std::time::Instant::now();
    let mut report = VerifyReport {
        id: m.id.clone(),
        ok: false,
        checksum_ok: false,
        fingerprint_ok: false,
        row_counts_ok: false,
        restored_fingerprint: None,
        row_count_mismatches: Vec::new(),
        duration_ms: 0,
    };
    if store.check(m).is_err() {
        report.duration_ms = started.elapsed().as_millis() as u64;
        return Ok(report);
    }
    report.checksum_ok = true;
    // `tm_verify_HOST_PID_EPOCH`, registered so that an interrupted verify drops it and the
    // next run can tell an orphan ([`crate::scratch`]).
    let name = crate::scratch::name("verify", None);
    let (url, sqlite_file) = if live.dialect() == Dialect::Sqlite {
        let p = store.dir.join(format!(".{name}.sqlite"));
        crate::scratch::register_path(&p);
        (
            DatabaseUrl::parse(&format!("sqlite://{}", p.display()))?,
            Some(p),
        )
    } else {
        crate::scratch::register_database(live.url(), &name);
        (live.create_database(&name).await?, None)
    };
    let outcome = async {
        dumper.restore_into(&store.data_path(m), &url).await?;
        let mut scratch = live.connect_other(&url).await?;
        let r = async {
            let schema = scratch.inspect(inspect).await?;
            let counts = row_counts(scratch.as_mut(), &schema).await?;
            Ok::<_, Error>((schema.fingerprint().0, counts))
        }
        .await;
        scratch.close().await;
        r
    }
    .await;
    match &sqlite_file {
        Some(p) => {
            let _ = fs::remove_file(p);
            crate::scratch::unregister_path(p);
        }
        None => match live.drop_database(&name).await {
            Ok(()) => crate::scratch::unregister_database(&name),
            Err(e) => tracing::warn!("could not drop the verification database {name}: {e}"),
        },
    }
    let (fp, counts) = outcome?;
    report.fingerprint_ok = fp == m.schema_fingerprint;
    report.restored_fingerprint = Some(fp);
    for (t, n) in &m.row_counts {
        if counts.get(t) != Some(n) {
            report
                .row_count_mismatches
                .push((t.clone(), *n, counts.get(t).copied()));
        }
    }
    for (t, n) in &counts {
        if !m.row_counts.contains_key(t) {
            report.row_count_mismatches.push((t.clone(), 0, Some(*n)));
        }
    }
    report.row_counts_ok = report.row_count_mismatches.is_empty();
    report.ok = report.checksum_ok && report.fingerprint_ok && report.row_counts_ok;
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// Run the configured command that stops whatever writes to the database (before a restore).
pub fn stop_writers(command: &str) -> Result<()> {
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .status()
        .map_err(|e| {
            Error::Tool(format!(
                "could not run the stop_writers command `{command}`: {e}"
            ))
        })?;
    if !status.success() {
        return Err(Error::Tool(format!(
            "the stop_writers command `{command}` failed ({status}); nothing was restored"
        )));
    }
    Ok(())
}

/// Is the dump the kind of file this database's tool writes? (A PostgreSQL dump fed to
/// MariaDB, or a manifest edited by hand, is refused before anything is touched.)
pub fn check_dump_kind(dialect: Dialect, path: &Path) -> Result<()> {
    let mut head = [0u8; 1024];
    let n = {
        let mut f = fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut n = 0;
        while n < head.len() {
            let k = f.read(&mut head[n..]).map_err(|e| Error::io(path, e))?;
            if k == 0 {
                break;
            }
            n += k;
        }
        n
    };
    let head = &head[..n];
    let text = String::from_utf8_lossy(head);
    let ok = match dialect {
        Dialect::Postgres => head.starts_with(b"PGDMP"),
        Dialect::Sqlite => head.starts_with(b"SQLite format 3\0"),
        Dialect::MySql => {
            !head.starts_with(b"PGDMP")
                && !head.starts_with(b"SQLite format 3")
                && (text.contains("MariaDB dump") || text.contains("MySQL dump"))
        }
    };
    if ok {
        return Ok(());
    }
    let what = if head.starts_with(b"PGDMP") {
        "a PostgreSQL custom-format dump"
    } else if head.starts_with(b"SQLite format 3") {
        "a SQLite database file"
    } else if text.contains("MariaDB dump") || text.contains("MySQL dump") {
        "a MariaDB/MySQL dump"
    } else {
        "not a dump tidemark knows"
    };
    Err(Error::Inconsistent(format!(
        "{} is {what}, not a {} backup; refusing to restore it (the database was not touched)",
        path.display(),
        dialect.name()
    )))
}

/// Everything that can be checked before the database is touched: the manifest's dialect, the
/// dump's checksum and kind, the tools, and that the tool can read the dump.
pub async fn check_restorable(
    dialect: Dialect,
    dumper: &dyn Dumper,
    store: &Store,
    m: &Manifest,
) -> Result<()> {
    if m.dialect != dialect.name() {
        return Err(Error::Usage(format!(
            "backup {} is a {} backup; it cannot be restored into a {} database (the database was not touched)",
            m.id,
            m.dialect,
            dialect.name()
        )));
    }
    store.check(m)?;
    let path = store.data_path(m);
    check_dump_kind(dialect, &path)?;
    dumper.check_tools().await?;
    dumper.check_dump(&path).await
}

/// What the restored copy is given before it replaces the live database.
pub struct RestoreInto<'a> {
    /// The live database's identity: it stays the same database (the dump brought its
    /// source's id).
    pub database_id: &'a str,
    pub inspect: &'a InspectOptions,
    /// Appended to the restored copy's journal (when it has one) before the swap.
    pub journal: Option<crate::history::JournalWrite<'a>>,
}

/// The side and old names of a restore of `live` ([`crate::scratch`]); for SQLite the side is
/// a file beside the database and there is no old one (the rename replaces it).
pub fn side_names(live: &DatabaseUrl) -> Result<(String, String)> {
    let db = live
        .database()
        .ok_or_else(|| Error::Usage(format!("the URL {live} names no database")))?;
    if live.dialect() == Dialect::Sqlite {
        return Ok((format!("{db}.tidemark-restore"), String::new()));
    }
    Ok((
        crate::scratch::name("restore", Some(&db)),
        crate::scratch::name("replaced", Some(&db)),
    ))
}

fn register_side(live: &DatabaseUrl, name: &str) {
    if live.dialect() == Dialect::Sqlite {
        crate::scratch::register_path(Path::new(name));
        for suffix in ["-journal", "-wal", "-shm"] {
            crate::scratch::register_path(Path::new(&format!("{name}{suffix}")));
        }
    } else {
        crate::scratch::register_database(live, name);
    }
}

fn unregister_side(live: &DatabaseUrl, name: &str) {
    if live.dialect() == Dialect::Sqlite {
        crate::scratch::unregister_path(Path::new(name));
        for suffix in ["-journal", "-wal", "-shm"] {
            crate::scratch::unregister_path(Path::new(&format!("{name}{suffix}")));
        }
    } else {
        crate::scratch::unregister_database(name);
    }
}

/// Replace the database with a backup without ever leaving less than it found: the dump is
/// loaded into a new database beside the live one, checked there against the manifest (schema
/// fingerprint, row counts), given the live database's identity and journal entry, and only
/// then swapped in, in one step ([`Dumper::swap`]); the old content is dropped after the swap.
/// Interrupted before the swap, the live database is untouched (the side copy is dropped by
/// the signal handler, or swept by the next run); after it, the database is the restored one.
/// `lock` is the migration lock, held by the caller since before the checks.
pub async fn restore(
    live: &mut dyn Driver,
    dumper: &dyn Dumper,
    store: &Store,
    m: &Manifest,
    lock: Box<dyn crate::driver::LockGuard>,
    into: RestoreInto<'_>,
) -> Result<()> {
    let url = live.url().clone();
    let (side, old) = side_names(&url)?;
    register_side(&url, &side);
    let staged = async {
        let side_url = dumper.create_side(&side).await?;
        dumper.restore_full(&store.data_path(m), &side_url).await?;
        let mut copy = live.connect_other(&side_url).await?;
        let r = async {
            let schema = copy.inspect(into.inspect).await?;
            let fp = schema.fingerprint().0;
            if fp != m.schema_fingerprint {
                return Err(Error::Inconsistent(format!(
                    "the restored copy of backup {} has schema fingerprint {} but the manifest says {}; the database was not touched",
                    m.id,
                    &fp[..12],
                    &m.schema_fingerprint[..12.min(m.schema_fingerprint.len())]
                )));
            }
            let counts = row_counts(copy.as_mut(), &schema).await?;
            if counts != m.row_counts {
                let diff: Vec<String> = m
                    .row_counts
                    .iter()
                    .filter(|(t, n)| counts.get(*t) != Some(n))
                    .map(|(t, n)| format!("{t}: {n} in the manifest, {:?} restored", counts.get(t)))
                    .collect();
                return Err(Error::Inconsistent(format!(
                    "the restored copy of backup {} does not hold the rows its manifest counts ({}); the database was not touched",
                    m.id,
                    diff.join(", ")
                )));
            }
            crate::identity::assign(copy.as_mut(), into.database_id).await?;
            if let Some(j) = &into.journal
                && crate::history::exists(copy.as_mut()).await.unwrap_or(false)
            {
                crate::history::journal(copy.as_mut(), j).await?;
            }
            Ok(())
        }
        .await;
        copy.close().await;
        r
    }
    .await;
    if let Err(e) = staged {
        if let Err(d) = dumper.drop_side(&side).await {
            tracing::warn!("could not drop the side copy {side}: {d}");
        } else {
            unregister_side(&url, &side);
        }
        return Err(e);
    }
    // A signal during the swap may drop both names: before the swap the side copy is spare
    // and the old name empty or absent; after it the side name is gone (PostgreSQL, SQLite) or
    // empty (MariaDB) and the old one holds what was replaced.
    if !old.is_empty() {
        crate::scratch::register_database(&url, &old);
    }
    let swapped = dumper.swap(&side, &old, lock).await;
    if let Err(e) = swapped {
        // The side copy is spare either way (not swapped in, or emptied by the move).
        if dumper.drop_side(&side).await.is_ok() {
            unregister_side(&url, &side);
        }
        return Err(Error::Tool(format!(
            "{e}\nthe restored copy was not put in place; `tidemark status` says what the database is now"
        )));
    }
    if !old.is_empty() {
        // MariaDB leaves the side database empty and the old one holding the replaced tables;
        // PostgreSQL renamed both. Each stays registered until it is gone.
        for n in [&old, &side] {
            match dumper.drop_side(n).await {
                Ok(()) => crate::scratch::unregister_database(n),
                Err(e) => tracing::warn!("could not drop {n} after the restore: {e}"),
            }
        }
    }
    unregister_side(&url, &side);
    Ok(())
}

/// Where backups go when nothing is configured: the user's data directory (never /tmp), a
/// folder per database id below it ([`Vault`]).
pub fn default_dir() -> Result<PathBuf> {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .ok_or_else(|| Error::Usage("no HOME: set [backup] dir or TIDEMARK_BACKUP_DIR".into()))?;
    Ok(base.join("tidemark/backups"))
}

/// The folder the default directory used before identities, named after the dialect and the
/// database as typed (`…/tidemark/backups/postgres-shop`): its backups are listed as "identity
/// unknown".
pub fn legacy_default_dir(url: &DatabaseUrl) -> Result<PathBuf> {
    let base = default_dir()?;
    let key: String = format!(
        "{}-{}",
        url.dialect(),
        url.database().unwrap_or_else(|| "default".into())
    )
    .chars()
    .map(|c| {
        if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
            c
        } else {
            '_'
        }
    })
    .collect();
    Ok(base.join(key))
}

/// Take a backup filed under the database's identity, assigning the identity first if the
/// database has none (`take_lock`: `None` when the caller holds the migration lock, else it is
/// taken, with this timeout, just for that). The identity goes in before the dump, so the dump
/// carries it. If the backup fails, an identity assigned for it is removed again: nothing
/// changed.
#[allow(clippy::too_many_arguments)]
pub async fn take(
    driver: &mut dyn Driver,
    vault: &Vault,
    dumper: &dyn Dumper,
    take_lock: Option<std::time::Duration>,
    history_head: Option<i64>,
    reason: String,
    run_id: Option<&str>,
    inspect: &InspectOptions,
) -> Result<(Store, Manifest)> {
    // A missing tool is found before the database is touched.
    dumper.check_tools().await?;
    let (id, assigned) = match identity::read(driver).await? {
        Some(id) => (id, false),
        None => match take_lock {
            None => (identity::ensure(driver).await?, true),
            Some(timeout) => (identity::ensure_locked(driver, timeout).await?, true),
        },
    };
    let r = async {
        let store = vault.open(&id)?;
        // Dumps a killed run never finished (no manifest, their process gone).
        for gone in store.sweep_unfinished()? {
            tracing::warn!(
                "removed {}, an unfinished backup left by an interrupted run",
                store.dir().join(gone).display()
            );
        }
        let m = create(
            driver,
            dumper,
            &store,
            Subject {
                database_id: &id,
                history_head,
                reason,
                run_id,
                inspect,
            },
        )
        .await?;
        Ok::<_, Error>((store, m))
    }
    .await;
    if r.is_err() && assigned {
        let _ = identity::remove(driver).await;
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(id: &str, created_at: &str) -> Manifest {
        Manifest {
            id: id.into(),
            created_at: created_at.into(),
            tidemark_version: "0".into(),
            database: String::new(),
            dialect: "sqlite".into(),
            server: String::new(),
            database_id: None,
            server_identity: None,
            history_head: None,
            schema_fingerprint: String::new(),
            row_counts: BTreeMap::new(),
            size_bytes: 0,
            sha256: String::new(),
            format: String::new(),
            file: String::new(),
            reason: String::new(),
            run_id: None,
            duration_ms: 0,
        }
    }

    #[test]
    fn retention_keeps_the_newest_always() {
        let now = time::OffsetDateTime::parse(
            "2026-11-23T00:00:00Z",
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        let all = vec![
            manifest("a", "2026-10-01T00:00:00Z"),
            manifest("b", "2026-11-01T00:00:00Z"),
            manifest("c", "2026-11-20T00:00:00Z"),
            manifest("d", "2026-11-22T00:00:00Z"),
        ];
        assert_eq!(doomed(&all, Some(2), None, now), vec!["a", "b"]);
        assert_eq!(doomed(&all, None, Some(7), now), vec!["a", "b"]);
        assert_eq!(
            doomed(&all, Some(3), Some(7), now),
            vec!["a"],
            "kept if either rule keeps it"
        );
        assert!(doomed(&all, None, None, now).is_empty());
        assert_eq!(
            doomed(&all, Some(0), Some(0), now),
            vec!["a", "b", "c"],
            "the newest is never deleted"
        );
    }

    #[test]
    fn the_default_directory_is_persistent_and_filed_by_database_id() {
        let d = default_dir().unwrap();
        assert!(!d.starts_with("/tmp"), "{}", d.display());
        assert!(d.ends_with("tidemark/backups"), "{}", d.display());
        let u = DatabaseUrl::parse("postgres://app:pw@db/shop").unwrap();
        assert_eq!(legacy_default_dir(&u).unwrap(), d.join("postgres-shop"));

        let tmp = tempfile::tempdir().unwrap();
        let vault = Vault::new(tmp.path(), &[]).unwrap();
        let id = crate::identity::new_id().unwrap();
        let store = vault.open(&id).unwrap();
        assert_eq!(store.dir(), tmp.path().join(&id));
        assert_eq!(vault.databases().unwrap(), vec![id]);
        assert!(
            matches!(vault.open("postgres-shop"), Err(Error::Usage(_))),
            "only a database id names a database's folder"
        );
        assert!(matches!(vault.peek("../x"), Err(Error::Usage(_))));
    }

    #[test]
    fn legacy_backups_are_those_without_an_id() {
        let tmp = tempfile::tempdir().unwrap();
        let vault = Vault::new(tmp.path(), &[]).unwrap();
        let old = manifest("20250101T000000Z-0001", "2025-01-01T00:00:00Z");
        let dir = tmp.path().join(&old.id);
        fs::create_dir(&dir).unwrap();
        write_manifest(&dir, &old).unwrap();
        let id = crate::identity::new_id().unwrap();
        let store = vault.open(&id).unwrap();
        let mut new = manifest("20260101T000000Z-0002", "2026-01-01T00:00:00Z");
        new.database_id = Some(id.clone());
        let ndir = store.dir().join(&new.id);
        fs::create_dir(&ndir).unwrap();
        write_manifest(&ndir, &new).unwrap();

        let legacy: Vec<String> = vault
            .legacy()
            .unwrap()
            .into_iter()
            .map(|(_, m)| m.id)
            .collect();
        assert_eq!(legacy, vec![old.id.clone()]);
        assert_eq!(vault.locate(&old.id).unwrap().unwrap().0, None);
        assert_eq!(vault.locate(&new.id).unwrap().unwrap().0, Some(id));
        assert!(vault.locate("20270101T000000Z-0003").unwrap().is_none());
    }

    #[test]
    fn quoting() {
        assert_eq!(
            quote_table(Dialect::Postgres, "app.users"),
            "\"app\".\"users\""
        );
        assert_eq!(quote_table(Dialect::MySql, "we`ird"), "`we``ird`");
    }
}
