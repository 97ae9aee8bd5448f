//! Take over another tool's history: read its table as that tool writes it, map its rows to
//! migration files by version or by name, and turn it into a tidemark history. What it claims
//! is then checked with the same evidence as `repair`, so a history that lies is caught here too.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Serialize;

use crate::driver::{Dialect, Driver, Value};
use crate::error::{Error, Location, Result};
use crate::history::{History, HistoryEntry, HistoryState, ImportedFacts};
use crate::migration::MigrationSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tool {
    GolangMigrate,
    Sqlx,
    Diesel,
    Flyway,
    Seaorm,
    Alembic,
    Dbmate,
}

impl FromStr for Tool {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "golang-migrate" | "migrate" => Tool::GolangMigrate,
            "sqlx" => Tool::Sqlx,
            "diesel" => Tool::Diesel,
            "flyway" => Tool::Flyway,
            "seaorm" | "sea-orm" => Tool::Seaorm,
            "alembic" => Tool::Alembic,
            "dbmate" => Tool::Dbmate,
            other => {
                return Err(format!(
                    "unknown tool `{other}` (golang-migrate, sqlx, diesel, flyway, seaorm, alembic, dbmate)"
                ));
            }
        })
    }
}

impl Tool {
    /// The history table the tool writes.
    pub fn table(self) -> &'static str {
        match self {
            Tool::GolangMigrate | Tool::Dbmate => "schema_migrations",
            Tool::Sqlx => "_sqlx_migrations",
            Tool::Diesel => "__diesel_schema_migrations",
            Tool::Flyway => "flyway_schema_history",
            Tool::Seaorm => "seaql_migrations",
            Tool::Alembic => "alembic_version",
        }
    }
}

/// What the other tool says, mapped to our files.
#[derive(Debug, Clone, Serialize)]
pub struct Imported {
    pub tool: Tool,
    pub table: &'static str,
    /// Rows read from the tool's table.
    pub rows: usize,
    /// Versions the tool records as applied (or failed/dirty), mapped to files.
    pub applied: Vec<i64>,
    pub failed: Vec<i64>,
    /// Rows that match no migration file.
    pub unmatched: Vec<String>,
    /// The baseline the history begins at (Flyway's BASELINE row), if any.
    pub baseline: Option<Baseline>,
    /// Every row read, with what the tool recorded about it.
    pub read: Vec<ReadRow>,
    /// Repeatable migrations the tool ran (Flyway), by description, and whether the file is
    /// unchanged since (by the tool's checksum).
    pub repeatables: Vec<(String, bool)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Baseline {
    /// The version as the tool wrote it.
    pub version: String,
    /// Some migration file is at or below it: the files create the baseline's schema.
    /// Otherwise the replay needs the schema at the baseline as a file of its own.
    pub covered_by_files: bool,
}

impl Imported {
    /// The tool's claims as a tidemark history (checksums of today's files, for the evidence
    /// planner; the tool's own checksum is kept beside them), with what the tool recorded:
    /// when, how long, who.
    pub fn history(&self, set: &MigrationSet) -> History {
        let mut entries: Vec<HistoryEntry> = Vec::new();
        for (versions, state) in [
            (&self.applied, HistoryState::Applied),
            (&self.failed, HistoryState::Failed),
        ] {
            for v in versions {
                let Some(m) = set.get(*v) else { continue };
                // The tool's own row for this version (the last one, as Flyway re-applies).
                let row = self.read.iter().rev().find(|r| {
                    r.version == Some(*v) && matches!(r.state.as_str(), "applied" | "failed")
                });
                entries.push(HistoryEntry {
                    version: m.version,
                    name: m.name.clone(),
                    checksum: m.checksum.clone(),
                    state,
                    applied_at: row.and_then(|r| r.applied_at.clone()).unwrap_or_default(),
                    execution_ms: row.and_then(|r| r.execution_ms).unwrap_or(0),
                    applied_by: row.and_then(|r| r.applied_by.clone()).unwrap_or_default(),
                    schema_fingerprint: None,
                    error: (state == HistoryState::Failed)
                        .then(|| format!("marked failed/dirty by {}", self.table)),
                    statements_applied: None,
                    lint_class: None,
                    imported: Some(ImportedFacts {
                        tool: tool_arg(self.tool).to_string(),
                        at: String::new(),
                        source_checksum: row.and_then(|r| r.checksum.clone()),
                    }),
                });
            }
        }
        entries.sort_by_key(|e| set.position(e.version));
        History {
            repeatables: Vec::new(),
            entries,
            exists: true,
        }
    }

    /// Rows whose file changed since the tool applied it, by the tool's own checksum.
    pub fn changed_files(&self) -> impl Iterator<Item = &ReadRow> {
        self.read.iter().filter(|r| r.changed_since())
    }
}

pub async fn table_exists(driver: &mut dyn Driver, table: &str) -> Result<bool> {
    let d = driver.dialect();
    let (sql, params): (&str, Vec<Value>) = match d {
        Dialect::Postgres => (
            "SELECT COUNT(*) FROM pg_tables WHERE tablename = $1 AND schemaname = ANY (current_schemas(false))",
            vec![table.into()],
        ),
        Dialect::MySql => (
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
            vec![table.into()],
        ),
        Dialect::Sqlite => (
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
            vec![table.into()],
        ),
    };
    let rows = driver
        .query(sql, &params)
        .await
        .map_err(|e| Error::db(format!("could not look for {table}"), e))?;
    Ok(rows
        .first()
        .and_then(|r| r.first())
        .and_then(Value::as_i64)
        .unwrap_or(0)
        > 0)
}

/// The other tools whose history table is in this database (golang-migrate and dbmate share
/// `schema_migrations`; golang-migrate's has a `dirty` column).
pub async fn detect(driver: &mut dyn Driver) -> Result<Vec<Tool>> {
    let mut found = Vec::new();
    for tool in [
        Tool::Sqlx,
        Tool::Diesel,
        Tool::Flyway,
        Tool::Seaorm,
        Tool::Alembic,
    ] {
        if table_exists(driver, tool.table()).await? {
            found.push(tool);
        }
    }
    if table_exists(driver, "schema_migrations").await? {
        let has_dirty = driver
            .query("SELECT dirty FROM schema_migrations WHERE 1 = 0", &[])
            .await
            .is_ok();
        found.push(if has_dirty {
            Tool::GolangMigrate
        } else {
            Tool::Dbmate
        });
    }
    Ok(found)
}

/// The tool's name as `--from` takes it.
pub fn tool_arg(tool: Tool) -> &'static str {
    match tool {
        Tool::GolangMigrate => "golang-migrate",
        Tool::Sqlx => "sqlx",
        Tool::Diesel => "diesel",
        Tool::Flyway => "flyway",
        Tool::Seaorm => "seaorm",
        Tool::Alembic => "alembic",
        Tool::Dbmate => "dbmate",
    }
}

fn digits(s: &str) -> Option<i64> {
    let d: String = s.chars().filter(char::is_ascii_digit).collect();
    d.parse().ok()
}

/// One row of the other tool's table as read, with what tidemark made of it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReadRow {
    /// The version (or SeaORM name, Alembic revision) as the tool wrote it.
    pub raw_version: String,
    /// The migration file it maps to.
    pub version: Option<i64>,
    /// `applied`, `failed`, `baseline`, `undo`, `repeatable` or `unmatched`.
    pub state: String,
    /// When the tool applied it (RFC 3339, UTC), where the tool records it.
    pub applied_at: Option<String>,
    pub execution_ms: Option<i64>,
    pub applied_by: Option<String>,
    /// The tool's own checksum (sqlx: SHA-384, hex; Flyway: CRC32 as a signed integer).
    pub checksum: Option<String>,
    /// The same checksum of today's file, by the tool's own algorithm; `None` when the tool
    /// records none or there is no file.
    pub file_checksum: Option<String>,
    pub description: Option<String>,
}

impl ReadRow {
    /// The file changed since the tool applied it (by the tool's own checksum).
    pub fn changed_since(&self) -> bool {
        matches!((&self.checksum, &self.file_checksum), (Some(a), Some(b)) if a != b)
    }
}

/// Milliseconds since the epoch (UTC) of a timestamp column, as each database computes them:
/// the column is read in the session's time zone, which is the one the tool wrote it in.
fn epoch_ms(d: Dialect, col: &str) -> String {
    match d {
        Dialect::Postgres => {
            format!("CAST(EXTRACT(EPOCH FROM CAST({col} AS TIMESTAMPTZ)) * 1000 AS BIGINT)")
        }
        Dialect::MySql => format!("CAST(UNIX_TIMESTAMP({col}) * 1000 AS SIGNED)"),
        Dialect::Sqlite => {
            format!("CAST(ROUND((julianday({col}) - 2440587.5) * 86400000) AS INTEGER)")
        }
    }
}

/// RFC 3339 (UTC, milliseconds) of milliseconds since the epoch.
pub fn rfc3339_ms(ms: i64) -> Option<String> {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&f).ok()
}

/// sqlx's checksum of a migration: SHA-384 of the file's text exactly as sqlx reads it
/// (`Migration::new` digests the SQL it read, byte for byte), hex.
pub fn sqlx_checksum(path: &Path) -> Result<String> {
    use sha2::Digest;
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    Ok(hex::encode(sha2::Sha384::digest(&bytes)))
}

/// Flyway's checksum of a script: CRC-32 over its lines without their line breaks (Java's
/// `BufferedReader.readLine`, a byte-order mark removed from the first), as a signed 32-bit
/// integer. An empty line adds nothing, so this is the CRC-32 of the text without `\r` and `\n`.
pub fn flyway_checksum(path: &Path) -> Result<i32> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&bytes);
    let mut crc = Crc32::new();
    for chunk in bytes.split(|&b| b == b'\n' || b == b'\r') {
        crc.update(chunk);
    }
    Ok(crc.finish() as i32)
}

/// CRC-32 (IEEE 802.3, as `java.util.zip.CRC32` and zlib compute it).
struct Crc32(u32);

impl Crc32 {
    fn new() -> Crc32 {
        Crc32(0xffff_ffff)
    }
    fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            let mut c = (self.0 ^ u32::from(b)) & 0xff;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            self.0 = (self.0 >> 8) ^ c;
        }
    }
    fn finish(&self) -> u32 {
        self.0 ^ 0xffff_ffff
    }
}

/// Read the tool's table. `alembic_dir` is where Alembic's revision files are (for the chain).
pub async fn read(
    driver: &mut dyn Driver,
    set: &MigrationSet,
    tool: Tool,
    alembic_dir: Option<&Path>,
) -> Result<Imported> {
    let table = tool.table();
    if !table_exists(driver, table).await? {
        return Err(Error::Usage(format!(
            "there is no {table} table in this database: nothing to import from {}",
            tool_name(tool)
        )));
    }
    let d = driver.dialect();
    // Every query reads the same columns: version (as text), success (1/0), kind, applied at
    // (ms since the epoch), execution time (ms), applied by, checksum (as text), description.
    let sql = match tool {
        Tool::GolangMigrate => format!(
            "SELECT CAST(version AS CHAR(64)), CASE WHEN dirty THEN 0 ELSE 1 END, NULL, NULL, NULL, NULL, NULL, NULL FROM {table}"
        ),
        Tool::Sqlx => {
            let hex = match d {
                Dialect::Postgres => "encode(checksum, 'hex')",
                _ => "LOWER(HEX(checksum))",
            };
            format!(
                "SELECT CAST(version AS CHAR(64)), CASE WHEN success THEN 1 ELSE 0 END, NULL, {}, CAST(execution_time / 1000000 AS SIGNED), NULL, {hex}, description FROM {table} ORDER BY version",
                epoch_ms(d, "installed_on")
            )
        }
        Tool::Diesel => format!(
            "SELECT CAST(version AS CHAR(64)), 1, NULL, {}, NULL, NULL, NULL, NULL FROM {table}",
            epoch_ms(d, "run_on")
        ),
        Tool::Flyway => format!(
            "SELECT CAST(version AS CHAR(64)), CASE WHEN success THEN 1 ELSE 0 END, type, {}, execution_time, installed_by, CAST(checksum AS CHAR(64)), script FROM {table} ORDER BY installed_rank",
            epoch_ms(d, "installed_on")
        ),
        Tool::Seaorm => format!(
            "SELECT version, 1, NULL, applied_at * 1000, NULL, NULL, NULL, NULL FROM {table}"
        ),
        Tool::Alembic => {
            format!("SELECT version_num, 1, NULL, NULL, NULL, NULL, NULL, NULL FROM {table}")
        }
        Tool::Dbmate => format!(
            "SELECT CAST(version AS CHAR(64)), 1, NULL, NULL, NULL, NULL, NULL, NULL FROM {table}"
        ),
    };
    // The version columns are numbers in some tools and text in others: read them as text.
    // PostgreSQL would pad CHAR(n), so it gets TEXT; it has no SIGNED either.
    let sql = match d {
        Dialect::Postgres => sql
            .replace("AS CHAR(64)", "AS TEXT")
            .replace("AS SIGNED", "AS BIGINT"),
        Dialect::Sqlite => sql.replace("AS SIGNED", "AS INTEGER"),
        Dialect::MySql => sql,
    };
    let raw = driver
        .query(&sql, &[])
        .await
        .map_err(|e| Error::db(format!("could not read {table}"), e))?;
    let text = |v: &Value| {
        v.clone()
            .into_text()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let rows: Vec<ReadRow> = raw
        .iter()
        .map(|r| ReadRow {
            raw_version: text(&r[0]).unwrap_or_default(),
            version: None,
            state: if r[1].as_i64() == Some(1) {
                "applied".into()
            } else {
                "failed".into()
            },
            applied_at: r[3].as_i64().and_then(rfc3339_ms),
            execution_ms: r[4].as_i64(),
            applied_by: text(&r[5]),
            checksum: text(&r[6]),
            file_checksum: None,
            description: text(&r[7]).or_else(|| text(&r[2]).map(|k| format!("type {k}"))),
        })
        .collect();
    let kinds: Vec<String> = raw
        .iter()
        .map(|r| text(&r[2]).unwrap_or_default().to_ascii_uppercase())
        .collect();
    let mut out = Imported {
        tool,
        table,
        rows: rows.len(),
        applied: Vec::new(),
        failed: Vec::new(),
        unmatched: Vec::new(),
        baseline: None,
        read: Vec::new(),
        repeatables: Vec::new(),
    };
    let mut read: Vec<ReadRow> = Vec::with_capacity(rows.len());
    match tool {
        Tool::GolangMigrate => {
            // One row: the current version; everything up to it is applied.
            if rows.len() > 1 {
                return Err(Error::Inconsistent(format!(
                    "{table} has {} rows; golang-migrate keeps exactly one",
                    rows.len()
                )));
            }
            if let Some(mut r) = rows.into_iter().next() {
                let v = digits(&r.raw_version).unwrap_or(0);
                let dirty = r.state == "failed";
                match set.position(v) {
                    None => {
                        r.state = "unmatched".into();
                        out.unmatched.push(v.to_string());
                    }
                    Some(pos) => {
                        r.version = Some(v);
                        for m in &set.migrations[..pos] {
                            out.applied.push(m.version);
                        }
                        if dirty {
                            out.failed.push(v)
                        } else {
                            out.applied.push(v)
                        }
                    }
                }
                read.push(r);
            }
        }
        Tool::Flyway => {
            for (mut r, kind) in rows.into_iter().zip(kinds) {
                let ok = r.state == "applied";
                let script = r.description.clone().unwrap_or_default();
                if r.raw_version.is_empty() {
                    // A repeatable migration (`R__…`): no version, keyed by its description.
                    if let Some(rep) = set.repeatables.iter().find(|x| {
                        x.migration.up.path.file_name().and_then(|n| n.to_str())
                            == Some(script.as_str())
                    }) {
                        r.file_checksum =
                            Some(flyway_checksum(&rep.migration.up.path)?.to_string());
                        r.state = "repeatable".into();
                        if ok {
                            out.repeatables.retain(|(d, _)| d != rep.description());
                            out.repeatables
                                .push((rep.description().to_string(), !r.changed_since()));
                        }
                    } else {
                        r.state = "unmatched".into();
                        out.unmatched.push(script);
                    }
                    read.push(r);
                    continue;
                }
                let Some(v) = digits(&r.raw_version) else {
                    r.state = "unmatched".into();
                    read.push(r);
                    continue;
                };
                if kind.contains("BASELINE") {
                    // Everything up to the baseline counts as applied: the files up to it
                    // (in order of application when the baseline has a file, else by number).
                    let below: Vec<i64> = match set.position(v) {
                        Some(p) => set.migrations[..=p].iter().map(|m| m.version).collect(),
                        None => set
                            .migrations
                            .iter()
                            .filter(|m| m.version <= v)
                            .map(|m| m.version)
                            .collect(),
                    };
                    for m in &below {
                        if !out.applied.contains(m) {
                            out.applied.push(*m);
                        }
                    }
                    out.baseline = Some(Baseline {
                        version: r.raw_version.clone(),
                        covered_by_files: !below.is_empty(),
                    });
                    r.state = "baseline".into();
                    read.push(r);
                    continue;
                }
                let Some(m) = set.get(v) else {
                    r.state = "unmatched".into();
                    out.unmatched.push(r.raw_version.clone());
                    read.push(r);
                    continue;
                };
                r.version = Some(v);
                out.applied.retain(|x| *x != v);
                out.failed.retain(|x| *x != v);
                if kind.starts_with("UNDO") {
                    r.state = "undo".into();
                    read.push(r);
                    continue;
                }
                r.file_checksum = Some(flyway_checksum(&m.up.path)?.to_string());
                if ok {
                    out.applied.push(v)
                } else {
                    out.failed.push(v)
                }
                read.push(r);
            }
        }
        Tool::Seaorm => {
            for mut r in rows {
                match map_seaorm(set, &r.raw_version) {
                    Some(v) => {
                        r.version = Some(v);
                        out.applied.push(v)
                    }
                    None => {
                        r.state = "unmatched".into();
                        out.unmatched.push(r.raw_version.clone())
                    }
                }
                read.push(r);
            }
        }
        Tool::Alembic => {
            let dir = alembic_dir
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("alembic/versions"));
            let chain = alembic_chain(&dir)?;
            for mut r in rows {
                let head = r.raw_version.clone();
                let Some(pos) = chain.iter().position(|rev| *rev == head) else {
                    r.state = "unmatched".into();
                    out.unmatched.push(head);
                    read.push(r);
                    continue;
                };
                if chain.len() != set.migrations.len() {
                    return Err(Error::Inconsistent(format!(
                        "the Alembic chain in {} has {} revisions but there are {} migration files; tidemark maps them one to one, in order",
                        dir.display(),
                        chain.len(),
                        set.migrations.len()
                    )));
                }
                r.version = Some(set.migrations[pos].version);
                for m in &set.migrations[..=pos] {
                    out.applied.push(m.version);
                }
                read.push(r);
            }
        }
        Tool::Sqlx | Tool::Diesel | Tool::Dbmate => {
            for mut r in rows {
                let ok = r.state == "applied";
                match digits(&r.raw_version).filter(|v| set.get(*v).is_some()) {
                    Some(v) => {
                        r.version = Some(v);
                        if tool == Tool::Sqlx
                            && let Some(m) = set.get(v)
                        {
                            r.file_checksum = Some(sqlx_checksum(&m.up.path)?);
                        }
                        if ok {
                            out.applied.push(v)
                        } else {
                            out.failed.push(v)
                        }
                    }
                    None => {
                        r.state = "unmatched".into();
                        out.unmatched.push(r.raw_version.clone())
                    }
                }
                read.push(r);
            }
        }
    }
    out.applied.sort_by_key(|v| set.position(*v));
    out.applied.dedup();
    out.read = read;
    Ok(out)
}

fn tool_name(t: Tool) -> &'static str {
    match t {
        Tool::GolangMigrate => "golang-migrate",
        Tool::Sqlx => "sqlx",
        Tool::Diesel => "diesel",
        Tool::Flyway => "Flyway",
        Tool::Seaorm => "SeaORM",
        Tool::Alembic => "Alembic",
        Tool::Dbmate => "dbmate",
    }
}

/// SeaORM names migrations `m20250511_073638_create_task_table`: match by the version its
/// digits form, else by the name after them.
fn map_seaorm(set: &MigrationSet, name: &str) -> Option<i64> {
    let rest = name.strip_prefix('m').unwrap_or(name);
    let mut parts = rest.splitn(3, '_');
    let (date, time, desc) = (
        parts.next()?,
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    if let Some(v) = digits(&format!("{date}{time}")).filter(|v| set.get(*v).is_some()) {
        return Some(v);
    }
    let by_name: Vec<i64> = set
        .migrations
        .iter()
        .filter(|m| !desc.is_empty() && m.name == desc)
        .map(|m| m.version)
        .collect();
    (by_name.len() == 1).then(|| by_name[0])
}

/// The revision chain of an Alembic versions directory, base first. Branches are refused.
pub fn alembic_chain(dir: &Path) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Error::Usage(format!(
            "cannot read the Alembic revisions in {} ({e}); pass --alembic-dir",
            dir.display()
        ))
    })?;
    let mut revs: Vec<(String, Option<String>, PathBuf)> = Vec::new();
    for e in entries.flatten() {
        let p = e.path();
        if p.extension().and_then(|x| x.to_str()) != Some("py") {
            continue;
        }
        let text = std::fs::read_to_string(&p).map_err(|err| Error::io(&p, err))?;
        let rev = assignment(&text, "revision");
        let down = assignment(&text, "down_revision");
        match rev {
            Some(Some(r)) => revs.push((r, down.flatten(), p)),
            _ => continue, // not a revision file (e.g. __init__.py)
        }
    }
    let mut chain: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    loop {
        let next: Vec<&(String, Option<String>, PathBuf)> =
            revs.iter().filter(|(_, d, _)| *d == current).collect();
        match next.len() {
            0 => break,
            1 => {
                chain.push(next[0].0.clone());
                current = Some(next[0].0.clone());
            }
            _ => {
                return Err(Error::bad_input(
                    Location::file(&next[1].2),
                    format!(
                        "Alembic branch: several revisions follow {}; merge the heads first",
                        current.as_deref().unwrap_or("base")
                    ),
                ));
            }
        }
    }
    if chain.len() != revs.len() {
        return Err(Error::Usage(format!(
            "the Alembic revisions in {} do not form one chain from the base",
            dir.display()
        )));
    }
    Ok(chain)
}

/// `name = 'value'`, `name = "value"` or `name = None` (type annotations allowed) at the start
/// of a line.
fn assignment(text: &str, name: &str) -> Option<Option<String>> {
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let rest = rest.trim_start();
        let rest = match rest.strip_prefix(':') {
            Some(r) => r.split_once('=').map(|x| x.1)?,
            None => rest.strip_prefix('=')?,
        };
        let v = rest.trim();
        if v.starts_with("None") {
            return Some(None);
        }
        let q = v.chars().next()?;
        if q == '\'' || q == '"' {
            return Some(v[1..].split(q).next().map(str::to_string));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alembic_chain_follows_down_revisions() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("b2_second.py"),
            "revision = 'b2'\ndown_revision = 'a1'\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("a1_first.py"),
            "revision: str = \"a1\"\ndown_revision: Union[str, None] = None\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("c3_third.py"),
            "revision = 'c3'\ndown_revision = 'b2'\n",
        )
        .unwrap();
        std::fs::write(d.path().join("__init__.py"), "").unwrap();
        assert_eq!(alembic_chain(d.path()).unwrap(), vec!["a1", "b2", "c3"]);
        std::fs::write(
            d.path().join("d4_branch.py"),
            "revision = 'd4'\ndown_revision = 'b2'\n",
        )
        .unwrap();
        assert!(
            alembic_chain(d.path())
                .unwrap_err()
                .to_string()
                .contains("branch")
        );
    }

    #[test]
    fn seaorm_names_map_by_version_or_name() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("20250511073638_create_task_table.sql"),
            "SELECT 1;",
        )
        .unwrap();
        std::fs::write(d.path().join("7_create_user_table.sql"), "SELECT 1;").unwrap();
        let set = MigrationSet::load(d.path(), None).unwrap();
        assert_eq!(
            map_seaorm(&set, "m20250511_073638_create_task_table"),
            Some(20250511073638)
        );
        assert_eq!(
            map_seaorm(&set, "m20240101_000000_create_user_table"),
            Some(7)
        );
        assert_eq!(map_seaorm(&set, "m20240101_000000_unknown"), None);
    }
}

/// What `import` found and did.
#[derive(Debug, Clone)]
pub struct ImportOutcome {
    /// Everything read from the other tool's table.
    pub imported: Imported,
    /// The tool's claims, checked by evidence.
    pub plan: crate::repair::RepairPlan,
    /// History changes written (empty for a plan only).
    pub applied: Vec<crate::repair::Applied>,
    /// After the import, the history agrees with the live schema (its fingerprint recorded).
    pub consistent: bool,
}

/// `import` as one operation: read the other tool's table, check its claims by evidence, and
/// with `carry_out` write tidemark's history under the migration lock (taken here, so a
/// program calling the library is as safe as the command). With `keep_in_sync` the other
/// tool's table is kept in step from then on.
#[allow(clippy::too_many_arguments)]
pub async fn import(
    driver: &mut dyn Driver,
    set: &MigrationSet,
    settings: &crate::engine::Settings,
    tool: Tool,
    alembic_dir: Option<&Path>,
    keep_in_sync: bool,
    carry_out: bool,
    obs: &mut dyn crate::engine::Observer,
) -> Result<ImportOutcome> {
    set.validate(driver.dialect())?;
    let guard = if carry_out {
        Some(crate::engine::acquire(driver, settings, obs).await?)
    } else {
        None
    };
    if keep_in_sync {
        crate::sync::check(tool, set)?;
    }
    let ours = crate::history::read(driver).await?;
    if !ours.entries.is_empty() {
        return Err(Error::Inconsistent(format!(
            "tidemark_history already has {} row(s): import takes over from another tool once; `tidemark repair` reconciles an existing history",
            ours.entries.len()
        )));
    }
    let imported = read(driver, set, tool, alembic_dir).await?;
    if let Some(b) = &imported.baseline
        && !b.covered_by_files
        && settings.shadow_baseline.is_none()
    {
        return Err(Error::Usage(format!(
            "{} begins at a baseline (version {}) whose schema no migration file creates, so the migrations after it cannot be replayed on an empty database; \
             give that schema as SQL with --baseline-schema FILE (e.g. `pg_dump --schema-only` of a database at the baseline), and keep it as `[shadow] baseline` in tidemark.toml",
            imported.table, b.version
        )));
    }
    let claimed = imported.history(set);
    let ev = crate::repair::gather(driver, set, settings, settings.shadow_url.as_ref()).await?;
    let plan = crate::repair::plan(set, &claimed, &ev);
    let Some(guard) = guard else {
        return Ok(ImportOutcome {
            imported,
            plan,
            applied: Vec::new(),
            consistent: false,
        });
    };
    crate::history::ensure(driver).await?;
    let applied = crate::repair::execute(
        driver,
        set,
        &plan,
        &crate::repair::Decisions::default(),
        settings,
        "import",
        Some(&claimed),
    )
    .await?;
    // Repeatable migrations the tool ran: recorded as run where the file is unchanged (by the
    // tool's checksum), else as run with the tool's checksum, so `up` runs them again as the
    // tool would.
    for (desc, unchanged) in &imported.repeatables {
        let Some(r) = set.repeatables.iter().find(|r| r.description() == desc) else {
            continue;
        };
        crate::history::ensure_repeatables(driver).await?;
        let sum = if *unchanged {
            r.migration.checksum.clone()
        } else {
            format!("{}:changed", tool_arg(tool))
        };
        crate::history::record_repeatable(driver, desc, &sum, 0, &settings.actor).await?;
    }
    let consistent = crate::repair::record_fingerprint_if_consistent(driver, set, &ev).await?;
    if keep_in_sync {
        crate::sync::set(driver, set, Some(tool), settings).await?;
    }
    guard.release().await?;
    Ok(ImportOutcome {
        imported,
        plan,
        applied,
        consistent,
    })
}
