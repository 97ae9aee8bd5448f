//! Take over another tool's history: read its table as that tool writes it, map its rows to
//! migration files by version or by name, and turn it into a tidemark history. What it claims
//! is then checked with the same evidence as `repair`, so a history that lies is caught here too.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Serialize;

use crate::driver::{Dialect, Driver, Value};
use crate::error::{Error, Location, Result};
use crate::history::{History, HistoryEntry, HistoryState};
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
    /// The tool's claims as a tidemark history (checksums of today's files: other tools'
    /// checksums are not comparable), for the evidence planner.
    pub fn history(&self, set: &MigrationSet) -> History {
        let mut entries: Vec<HistoryEntry> = Vec::new();
        for (versions, state) in [
            (&self.applied, HistoryState::Applied),
            (&self.failed, HistoryState::Failed),
        ] {
            for v in versions {
                let Some(m) = set.get(*v) else { continue };
                entries.push(HistoryEntry {
                    version: m.version,
                    name: m.name.clone(),
                    checksum: m.checksum.clone(),
                    state,
                    applied_at: String::new(),
                    execution_ms: 0,
                    applied_by: String::new(),
                    schema_fingerprint: None,
                    error: (state == HistoryState::Failed)
                        .then(|| format!("marked failed/dirty by {}", self.table)),
                    statements_applied: None,
                    lint_class: None,
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
    let sql = match tool {
        Tool::GolangMigrate => {
            format!("SELECT version, CASE WHEN dirty THEN 1 ELSE 0 END FROM {table}")
        }
        Tool::Sqlx => format!(
            "SELECT version, CASE WHEN success THEN 1 ELSE 0 END FROM {table} ORDER BY version"
        ),
        Tool::Diesel => format!("SELECT CAST(version AS CHAR(64)), 1 FROM {table}"),
        Tool::Flyway => format!(
            "SELECT CAST(version AS CHAR(64)), CASE WHEN success THEN 1 ELSE 0 END, type FROM {table} WHERE version IS NOT NULL ORDER BY installed_rank"
        ),
        Tool::Seaorm => format!("SELECT version, 1 FROM {table}"),
        Tool::Alembic => format!("SELECT version_num, 1 FROM {table}"),
        Tool::Dbmate => format!("SELECT CAST(version AS CHAR(64)), 1 FROM {table}"),
    };
    // The version columns are numbers in some tools and text in others: read them as text.
    // PostgreSQL would pad CHAR(n), so it gets TEXT.
    let sql = if driver.dialect() == Dialect::Postgres {
        sql.replace("AS CHAR(64)", "AS TEXT")
    } else {
        sql
    };
    let rows = driver
        .query(&sql, &[])
        .await
        .map_err(|e| Error::db(format!("could not read {table}"), e))?;
    let mut out = Imported {
        tool,
        table,
        rows: rows.len(),
        applied: Vec::new(),
        failed: Vec::new(),
        unmatched: Vec::new(),
        baseline: None,
    };
    let text = |v: &Value| {
        v.clone()
            .into_text()
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    match tool {
        Tool::GolangMigrate => {
            // One row: the current version; everything up to it is applied.
            if rows.len() > 1 {
                return Err(Error::Inconsistent(format!(
                    "{table} has {} rows; golang-migrate keeps exactly one",
                    rows.len()
                )));
            }
            if let Some(r) = rows.first() {
                let v = r[0].as_i64().unwrap_or(0);
                let dirty = r[1].as_i64() == Some(1);
                let Some(pos) = set.position(v) else {
                    out.unmatched.push(v.to_string());
                    return Ok(out);
                };
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
        Tool::Flyway => {
            for r in &rows {
                let (ver, ok, kind) = (
                    text(&r[0]),
                    r[1].as_i64() == Some(1),
                    text(&r[2]).to_ascii_uppercase(),
                );
                let Some(v) = digits(&ver) else { continue };
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
                        version: ver,
                        covered_by_files: !below.is_empty(),
                    });
                    continue;
                }
                if set.get(v).is_none() {
                    out.unmatched.push(ver);
                    continue;
                }
                out.applied.retain(|x| *x != v);
                out.failed.retain(|x| *x != v);
                if kind.starts_with("UNDO") {
                    continue;
                }
                if ok {
                    out.applied.push(v)
                } else {
                    out.failed.push(v)
                }
            }
        }
        Tool::Seaorm => {
            for r in &rows {
                let name = text(&r[0]);
                match map_seaorm(set, &name) {
                    Some(v) => out.applied.push(v),
                    None => out.unmatched.push(name),
                }
            }
        }
        Tool::Alembic => {
            let dir = alembic_dir
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("alembic/versions"));
            let chain = alembic_chain(&dir)?;
            for r in &rows {
                let head = text(&r[0]);
                let Some(pos) = chain.iter().position(|rev| *rev == head) else {
                    out.unmatched.push(head);
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
                for m in &set.migrations[..=pos] {
                    out.applied.push(m.version);
                }
            }
        }
        Tool::Sqlx | Tool::Diesel | Tool::Dbmate => {
            for r in &rows {
                let raw = text(&r[0]);
                let ok = r[1].as_i64() == Some(1);
                match digits(&raw).filter(|v| set.get(*v).is_some()) {
                    Some(v) if ok => out.applied.push(v),
                    Some(v) => out.failed.push(v),
                    None => out.unmatched.push(raw),
                }
            }
        }
    }
    out.applied.sort_by_key(|v| set.position(*v));
    out.applied.dedup();
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
