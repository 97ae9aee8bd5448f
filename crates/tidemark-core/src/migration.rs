//! Migration files: the layouts tidemark reads (its own, diesel's, Flyway's and dbmate's),
//! checksums, directives, and every check of bad input that must happen before the database is
//! touched.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::driver::Dialect;
use crate::error::{Error, Location, Result};
use crate::split::{self, Stmt};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// `VERSION_NAME.up.sql` + `VERSION_NAME.down.sql`, or up-only `VERSION_NAME.sql`
    /// (golang-migrate and sqlx use the same names).
    Native,
    /// `VERSION_NAME/up.sql` + `down.sql` (+ `metadata.toml`).
    Diesel,
    /// `V1__name.sql` + `U1__name.sql`.
    Flyway,
    /// `VERSION_name.sql` with `-- migrate:up` / `-- migrate:down` sections.
    Dbmate,
}

impl Layout {
    pub fn name(self) -> &'static str {
        match self {
            Layout::Native => "native",
            Layout::Diesel => "diesel",
            Layout::Flyway => "flyway",
            Layout::Dbmate => "dbmate",
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Layout {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "native" | "sqlx" | "golang-migrate" => Ok(Layout::Native),
            "diesel" => Ok(Layout::Diesel),
            "flyway" => Ok(Layout::Flyway),
            "dbmate" => Ok(Layout::Dbmate),
            other => Err(format!(
                "unknown layout `{other}` (expected native, diesel, flyway or dbmate)"
            )),
        }
    }
}

/// One SQL script (an up or a down) and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub path: PathBuf,
    /// The script text with CRLF normalised to LF and any byte-order mark removed.
    pub sql: String,
    /// Line of the file on which `sql` starts (1 unless the script is a dbmate section).
    pub first_line: usize,
}

impl Script {
    /// The script's statements, with lines counted in the file.
    pub fn statements(&self, dialect: Dialect) -> Result<Vec<Stmt>> {
        let mut stmts = split::split(&self.sql, dialect).map_err(|e| {
            Error::bad_input(
                Location::line(&self.path, e.line + self.first_line - 1),
                e.message,
            )
        })?;
        for s in &mut stmts {
            s.line += self.first_line - 1;
        }
        Ok(stmts)
    }

    /// True when the script holds no statement (empty, blank or only comments).
    pub fn is_empty(&self, dialect: Dialect) -> bool {
        self.statements(dialect)
            .map(|s| s.is_empty())
            .unwrap_or(false)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub version: i64,
    pub name: String,
    pub up: Script,
    pub down: Option<Script>,
    /// SHA-256 (hex) of the up script as in [`Script::sql`].
    pub checksum: String,
    /// False when the file asks to run outside a transaction.
    pub transactional: bool,
    /// `-- tidemark:verify <query>`: a query whose first column of its first row says whether
    /// the migration's effect is in place (true, non-zero; false, zero, no row). The evidence
    /// for a migration the schema cannot place (one that changes only data).
    pub verify: Option<String>,
    /// The version as the file names it, as its own tool records it: `001` (golang-migrate,
    /// sqlx and dbmate keep the digits; the first two parse them as a number), diesel's digits
    /// without dashes, Flyway's dotted version (`1.1` for `V1_1__…`).
    pub written_version: String,
    /// Order of application; see [`SortKey`].
    sort_key: SortKey,
}

impl Migration {
    /// A down script that exists and holds at least one statement.
    pub fn usable_down(&self, dialect: Dialect) -> Option<&Script> {
        self.down.as_ref().filter(|d| !d.is_empty(dialect))
    }
}

/// How a layout orders its migrations as its own tool does: numbers for the native layout
/// (golang-migrate and sqlx parse the version as an integer); diesel compares its version
/// strings (digits only) as text, so `2026-05-27-120000` runs before `2026-05-27-120000-0000`
/// and both before `2026-05-28-…`; dbmate compares whole file names as text; Flyway compares
/// the dotted parts as numbers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum SortKey {
    Number(i64),
    Parts(Vec<u64>),
    Text(String),
}

#[derive(Debug, Clone)]
pub struct MigrationSet {
    pub dir: PathBuf,
    pub layout: Layout,
    /// In order of application.
    pub migrations: Vec<Migration>,
    /// Files that are plainly not migrations, each with a reason.
    pub warnings: Vec<String>,
    /// Flyway's repeatable migrations (`R__description.sql`), in Flyway's order (by
    /// description). They run after the versioned ones, again whenever their checksum changes.
    pub repeatables: Vec<Repeatable>,
}

/// A repeatable migration: no version; re-run whenever its checksum changes. Recorded in
/// `tidemark_repeatable`, keyed by its description, never in `tidemark_history`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repeatable {
    /// Its script as a migration (version 0, name = description), so that everything that
    /// runs a migration (the engine, the shadow replay) runs it the same way.
    pub migration: Migration,
}

impl Repeatable {
    pub fn description(&self) -> &str {
        &self.migration.name
    }
}

impl MigrationSet {
    /// Read a migrations directory, detecting the layout unless one is given. Every problem is
    /// reported with its file (and line where there is one) before anything else happens.
    pub fn load(dir: &Path, layout: Option<Layout>) -> Result<MigrationSet> {
        let meta = std::fs::metadata(dir).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::Usage(format!(
                    "migrations directory {} does not exist (run `tidemark init`, or pass --dir)",
                    dir.display()
                ))
            } else {
                Error::io(dir, e)
            }
        })?;
        if !meta.is_dir() {
            return Err(Error::Usage(format!(
                "{} is not a directory",
                dir.display()
            )));
        }
        let entries = list_dir(dir)?;
        let layout = match layout {
            Some(l) => l,
            None => detect_layout(&entries)?,
        };
        let mut loader = Loader {
            dir: dir.to_path_buf(),
            found: BTreeMap::new(),
            warnings: Vec::new(),
            repeatables: BTreeMap::new(),
        };
        match layout {
            Layout::Native => loader.native(&entries)?,
            Layout::Diesel => loader.diesel(&entries)?,
            Layout::Flyway => loader.flyway(&entries)?,
            Layout::Dbmate => loader.dbmate(&entries)?,
        }
        loader.finish(layout)
    }

    pub fn get(&self, version: i64) -> Option<&Migration> {
        self.migrations.iter().find(|m| m.version == version)
    }

    /// Position of a version in order of application.
    pub fn position(&self, version: i64) -> Option<usize> {
        self.migrations.iter().position(|m| m.version == version)
    }

    pub fn latest(&self) -> Option<&Migration> {
        self.migrations.last()
    }

    /// Checks that need the dialect (statements split cleanly, no up script empty, a file's
    /// own transactions balanced). Run before touching the database; `lint` runs it too, so
    /// lint rejects exactly what `up` rejects.
    pub fn validate(&self, dialect: Dialect) -> Result<()> {
        for m in self
            .migrations
            .iter()
            .chain(self.repeatables.iter().map(|r| &r.migration))
        {
            // An up script with no statement is a valid no-op migration (real projects keep
            // them to align version numbers across databases); lint says so, once.
            let stmts = m.up.statements(dialect)?;
            check_own_transactions(&m.up, &stmts)?;
            if let Some(down) = &m.down {
                let stmts = down.statements(dialect)?;
                check_own_transactions(down, &stmts)?;
            }
        }
        Ok(())
    }
}

/// How a script runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunMode {
    /// In a transaction of tidemark's, together with its history row.
    Transaction,
    /// Statement by statement, outside tidemark's transaction, for the reason given.
    Outside(Outside),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outside {
    /// The file asks for it (`-- tidemark:no-transaction`, diesel's metadata, Flyway's conf,
    /// dbmate's `transaction:false`).
    Asked,
    /// The database commits DDL by itself (MySQL/MariaDB).
    NoTransactionalDdl,
    /// The file controls its own transaction (`BEGIN; … COMMIT;`, as golang-migrate and
    /// dbmate files often do): it runs as written.
    OwnTransaction { line: usize },
    /// A statement that the server refuses inside a transaction block.
    Statement { line: usize, text: String },
}

impl RunMode {
    pub fn is_transaction(&self) -> bool {
        matches!(self, RunMode::Transaction)
    }

    /// Why the script runs outside a transaction, for plans and messages (`None` inside one).
    pub fn reason(&self) -> Option<String> {
        match self {
            RunMode::Transaction => None,
            RunMode::Outside(Outside::Asked) => {
                Some("the file asks to run outside a transaction".into())
            }
            RunMode::Outside(Outside::NoTransactionalDdl) => {
                Some("the database commits each DDL statement by itself".into())
            }
            RunMode::Outside(Outside::OwnTransaction { line }) => Some(format!(
                "the file controls its own transaction (line {line}); it runs as written"
            )),
            RunMode::Outside(Outside::Statement { line, text }) => Some(format!(
                "`{text}` (line {line}) cannot run inside a transaction block"
            )),
        }
    }
}

/// The major version of a server's version string (`15.20 (Debian …)` → 15).
fn server_major(version: &str) -> Option<u32> {
    let digits: String = version
        .trim()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The first statement the server refuses to run inside a transaction block, if any.
/// `server_version` is the server's own string; empty when unknown (lint), then the current
/// rules apply (`ALTER TYPE … ADD VALUE` runs in a transaction from PostgreSQL 12 on).
pub fn refuses_transaction<'a>(
    stmts: &'a [Stmt],
    dialect: Dialect,
    server_version: &str,
) -> Option<&'a Stmt> {
    stmts.iter().find(|s| {
        let kw = split::leading_keywords(&s.text, 6);
        let first = kw.first().map(String::as_str);
        match dialect {
            Dialect::Postgres => match first {
                Some("VACUUM") => true,
                Some("CREATE" | "DROP" | "REINDEX") => kw.iter().any(|w| w == "CONCURRENTLY"),
                Some("ALTER") => {
                    let words = split::leading_keywords(&s.text, 64);
                    let detach = words.iter().any(|w| w == "DETACH")
                        && words.iter().any(|w| w == "CONCURRENTLY");
                    let add_value = kw.get(1).map(String::as_str) == Some("TYPE")
                        && words.windows(2).any(|w| w[0] == "ADD" && w[1] == "VALUE")
                        && server_major(server_version).is_some_and(|v| v < 12);
                    detach || add_value
                }
                _ => false,
            },
            Dialect::Sqlite => first == Some("VACUUM"),
            Dialect::MySql => false,
        }
    })
}

impl Migration {
    /// How `script` (this migration's up or down script) runs on a server of `dialect` whose
    /// version string is `server_version` ("" when unknown). A file that controls its own
    /// transaction, or holds a statement the server refuses inside one, runs outside
    /// tidemark's transaction by itself: as the tool it was written for ran it.
    pub fn run_mode(
        &self,
        script: &Script,
        dialect: Dialect,
        transactional_ddl: bool,
        server_version: &str,
    ) -> Result<RunMode> {
        if !self.transactional {
            return Ok(RunMode::Outside(Outside::Asked));
        }
        if !transactional_ddl {
            return Ok(RunMode::Outside(Outside::NoTransactionalDdl));
        }
        let stmts = script.statements(dialect)?;
        if let Some(s) = stmts
            .iter()
            .find(|s| split::is_transaction_control(&s.text))
        {
            return Ok(RunMode::Outside(Outside::OwnTransaction { line: s.line }));
        }
        if let Some(s) = refuses_transaction(&stmts, dialect, server_version) {
            return Ok(RunMode::Outside(Outside::Statement {
                line: s.line,
                text: split::summarize(&s.text, 40),
            }));
        }
        Ok(RunMode::Transaction)
    }
}

/// A file may control its own transactions (it then runs as written), but every transaction
/// it opens must end in it: a `BEGIN` left open would hold tidemark's history writes in a
/// transaction that the end of the session rolls back.
fn check_own_transactions(script: &Script, stmts: &[Stmt]) -> Result<()> {
    let mut open: Option<&Stmt> = None;
    for s in stmts
        .iter()
        .filter(|s| split::is_transaction_control(&s.text))
    {
        let starts = split::starts_transaction(&s.text);
        match (starts, open) {
            (true, Some(o)) => {
                return Err(Error::bad_input(
                    Location::line(&script.path, s.line),
                    format!(
                        "`{}` opens a transaction inside the one opened at line {}; end that one first (COMMIT)",
                        split::summarize(&s.text, 40),
                        o.line
                    ),
                ));
            }
            (true, None) => open = Some(s),
            (false, Some(_)) => open = None,
            (false, None) => {
                return Err(Error::bad_input(
                    Location::line(&script.path, s.line),
                    format!(
                        "`{}` ends a transaction that the file never began; remove it (tidemark runs each migration in a transaction of its own), or begin one with BEGIN",
                        split::summarize(&s.text, 40)
                    ),
                ));
            }
        }
    }
    if let Some(o) = open {
        return Err(Error::bad_input(
            Location::line(&script.path, o.line),
            format!(
                "`{}` opens a transaction that the file never ends; add COMMIT at the end",
                split::summarize(&o.text, 40)
            ),
        ));
    }
    Ok(())
}

/// A directory entry: name, and whether it is a directory.
struct Entry {
    name: String,
    path: PathBuf,
    is_dir: bool,
}

fn list_dir(dir: &Path) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let e = e.map_err(|e| Error::io(dir, e))?;
        let path = e.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string)
        else {
            return Err(Error::bad_input(
                Location::file(&path),
                "file name is not valid UTF-8",
            ));
        };
        if name.starts_with('.') {
            continue; // .gitkeep, editor files
        }
        let is_dir = path.is_dir();
        out.push(Entry { name, path, is_dir });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn is_sql(name: &str) -> bool {
    name.len() > 4 && name[name.len() - 4..].eq_ignore_ascii_case(".sql")
}

fn strip_sql(name: &str) -> &str {
    &name[..name.len() - 4]
}

fn is_flyway_name(name: &str) -> bool {
    let b = name.as_bytes();
    is_sql(name)
        && matches!(b.first(), Some(b'V' | b'U'))
        && b.get(1).is_some_and(u8::is_ascii_digit)
        && name.contains("__")
}

fn detect_layout(entries: &[Entry]) -> Result<Layout> {
    if entries
        .iter()
        .any(|e| e.is_dir && e.path.join("up.sql").is_file())
    {
        return Ok(Layout::Diesel);
    }
    if entries.iter().any(|e| {
        !e.is_dir && (is_flyway_name(&e.name) || (is_sql(&e.name) && e.name.starts_with("R__")))
    }) {
        return Ok(Layout::Flyway);
    }
    for e in entries.iter().filter(|e| !e.is_dir && is_sql(&e.name)) {
        if let Ok(text) = crate::input::read_migration(&e.path)
            && text
                .lines()
                .any(|l| is_dbmate_marker(l, "up") || is_dbmate_marker(l, "down"))
        {
            return Ok(Layout::Dbmate);
        }
    }
    Ok(Layout::Native)
}

fn is_dbmate_marker(line: &str, section: &str) -> bool {
    let l = line.trim();
    let Some(rest) = l.strip_prefix("--") else {
        return false;
    };
    let rest = rest.trim_start();
    rest.strip_prefix("migrate:")
        .is_some_and(|r| r.split_whitespace().next() == Some(section))
}

/// Read a file as UTF-8 with CRLF normalised and a byte-order mark removed; a FIFO, a device,
/// an oversized file or control characters are bad input ([`crate::input`]).
fn read_sql(path: &Path) -> Result<String> {
    let text = crate::input::read_migration(path)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    Ok(text.replace("\r\n", "\n"))
}

pub fn checksum(sql: &str) -> String {
    hex::encode(Sha256::digest(sql.replace("\r\n", "\n").as_bytes()))
}

/// Parse a version written with digits and optional separators (`-`, `.`, `_` between digit
/// groups). Returns the number formed by its digits.
fn parse_version(text: &str, path: &Path) -> Result<i64> {
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    if digits.is_empty() {
        return Err(Error::bad_input(
            Location::file(path),
            format!("`{text}` is not a version number"),
        ));
    }
    digits.parse::<i64>().map_err(|_| {
        Error::bad_input(
            Location::file(path),
            format!("version `{text}` is too large (at most 18 digits)"),
        )
    })
}

/// Flyway's `*.sql.conf`: true when it says `executeInTransaction=false`.
fn flyway_conf_no_transaction(conf: &Path) -> Result<bool> {
    let text = std::fs::read_to_string(conf).map_err(|err| Error::io(conf, err))?;
    let mut no_tx = false;
    for (i, line) in text.lines().enumerate() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        if k.trim() == "executeInTransaction" {
            match v.trim() {
                "false" => no_tx = true,
                "true" => no_tx = false,
                other => {
                    return Err(Error::bad_input(
                        Location::line(conf, i + 1),
                        format!("executeInTransaction must be true or false, not `{other}`"),
                    ));
                }
            }
        }
    }
    Ok(no_tx)
}

/// The directives a script may carry in its leading comments.
#[derive(Debug, Default)]
struct Directives {
    no_transaction: bool,
    verify: Option<String>,
}

fn directives(script: &Script) -> Result<Directives> {
    let mut d = Directives::default();
    for (i, line) in script.sql.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        let Some(comment) = t.strip_prefix("--") else {
            break;
        };
        let comment = comment.trim();
        // sqlx writes this directive without a prefix.
        if comment == "no-transaction" {
            d.no_transaction = true;
            continue;
        }
        let Some(directive) = comment.strip_prefix("tidemark:") else {
            continue;
        };
        let word = directive.split_whitespace().next().unwrap_or_default();
        match word {
            "no-transaction" => d.no_transaction = true,
            "verify" => {
                let query = directive.trim_start()["verify".len()..]
                    .trim()
                    .trim_end_matches(';')
                    .trim();
                if query.is_empty() {
                    return Err(Error::bad_input(
                        Location::line(&script.path, script.first_line + i),
                        "`tidemark:verify` needs a query on the same line, e.g. `-- tidemark:verify SELECT COUNT(*) = 0 FROM orders WHERE total < 1000`",
                    ));
                }
                d.verify = Some(query.to_string());
            }
            // Lint directives belong to the linter; it checks them itself.
            "lint-ignore" | "lint-ignore-file" => {}
            other => {
                return Err(Error::bad_input(
                    Location::line(&script.path, script.first_line + i),
                    format!(
                        "unknown directive `tidemark:{other}` (known: no-transaction, verify, lint-ignore, lint-ignore-file)"
                    ),
                ));
            }
        }
    }
    Ok(d)
}

/// One migration as found on disk, before checks that span files.
struct Found {
    name: String,
    written: String,
    up: Option<Script>,
    down: Option<Script>,
    sort_key: SortKey,
    force_no_transaction: bool,
    /// The file or directory that defined it first, for duplicate messages.
    origin: PathBuf,
}

struct Loader {
    dir: PathBuf,
    found: BTreeMap<i64, Found>,
    warnings: Vec<String>,
    /// Flyway repeatables by description: (script, asks to run outside a transaction).
    repeatables: BTreeMap<String, (Script, bool)>,
}

enum Part {
    Up,
    Down,
}

impl Loader {
    fn warn(&mut self, path: &Path, why: &str) {
        self.warnings.push(format!("{}: {why}", path.display()));
    }

    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        version: i64,
        written: &str,
        name: &str,
        sort_key: SortKey,
        part: Part,
        script: Script,
        origin: &Path,
    ) -> Result<()> {
        let entry = self.found.entry(version).or_insert_with(|| Found {
            name: name.to_string(),
            written: written.to_string(),
            up: None,
            down: None,
            sort_key: sort_key.clone(),
            force_no_transaction: false,
            origin: origin.to_path_buf(),
        });
        let slot = match part {
            Part::Up => &mut entry.up,
            Part::Down => &mut entry.down,
        };
        if entry.name != name || entry.sort_key != sort_key || slot.is_some() {
            return Err(Error::bad_input(
                Location::file(origin),
                format!(
                    "duplicate version {version}: also used by {}",
                    entry.origin.display()
                ),
            ));
        }
        *slot = Some(script);
        Ok(())
    }

    fn script(path: &Path) -> Result<Script> {
        Ok(Script {
            path: path.to_path_buf(),
            sql: read_sql(path)?,
            first_line: 1,
        })
    }

    fn native(&mut self, entries: &[Entry]) -> Result<()> {
        for e in entries {
            if e.is_dir {
                self.warn(&e.path, "a directory, not a migration file (ignored)");
                continue;
            }
            if !is_sql(&e.name) {
                self.warn(&e.path, "not a .sql file (ignored)");
                continue;
            }
            let stem = strip_sql(&e.name);
            let (stem, part) = if let Some(s) = stem.strip_suffix(".up") {
                (s, Part::Up)
            } else if let Some(s) = stem.strip_suffix(".down") {
                (s, Part::Down)
            } else {
                (stem, Part::Up)
            };
            let parsed = stem.split_once('_').filter(|(v, n)| {
                !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) && !n.is_empty()
            });
            let Some((v, name)) = parsed else {
                return Err(Error::bad_input(
                    Location::file(&e.path),
                    "the name does not parse as a migration: expected VERSION_NAME.up.sql, VERSION_NAME.down.sql or VERSION_NAME.sql (VERSION made of digits)",
                ));
            };
            let version = parse_version(v, &e.path)?;
            self.add(
                version,
                v,
                name,
                SortKey::Number(version),
                part,
                Self::script(&e.path)?,
                &e.path,
            )?;
        }
        Ok(())
    }

    fn diesel(&mut self, entries: &[Entry]) -> Result<()> {
        for e in entries {
            if !e.is_dir {
                self.warn(&e.path, "not a diesel migration directory (ignored)");
                continue;
            }
            let up = e.path.join("up.sql");
            let looks_like_migration = e.name.as_bytes().first().is_some_and(u8::is_ascii_digit);
            if !up.is_file() {
                if looks_like_migration {
                    return Err(Error::bad_input(
                        Location::file(&e.path),
                        "diesel migration directory without up.sql",
                    ));
                }
                self.warn(&e.path, "not a diesel migration directory (ignored)");
                continue;
            }
            let Some((v, name)) = e.name.split_once('_').filter(|(v, n)| {
                !n.is_empty()
                    && v.bytes().all(|b| b.is_ascii_digit() || b == b'-')
                    && v.bytes().any(|b| b.is_ascii_digit())
            }) else {
                return Err(Error::bad_input(
                    Location::file(&e.path),
                    "the directory name does not parse as a diesel migration: expected VERSION_NAME, e.g. 2019-09-12-100000_create_users",
                ));
            };
            let version = parse_version(v, &e.path)?;
            let digits: String = v.chars().filter(char::is_ascii_digit).collect();
            self.add(
                version,
                &digits,
                name,
                SortKey::Text(digits.clone()),
                Part::Up,
                Self::script(&up)?,
                &e.path,
            )?;
            let down = e.path.join("down.sql");
            if down.is_file() {
                self.add(
                    version,
                    &digits,
                    name,
                    SortKey::Text(digits.clone()),
                    Part::Down,
                    Self::script(&down)?,
                    &e.path,
                )?;
            }
            let meta = e.path.join("metadata.toml");
            if meta.is_file() {
                let text = std::fs::read_to_string(&meta).map_err(|err| Error::io(&meta, err))?;
                let table: toml::Table = toml::from_str(&text).map_err(|err| {
                    Error::bad_input(Location::file(&meta), format!("invalid TOML: {err}"))
                })?;
                match table.get("run_in_transaction") {
                    Some(toml::Value::Boolean(false)) => {
                        if let Some(f) = self.found.get_mut(&version) {
                            f.force_no_transaction = true;
                        }
                    }
                    Some(toml::Value::Boolean(true)) | None => {}
                    Some(other) => {
                        return Err(Error::bad_input(
                            Location::file(&meta),
                            format!("run_in_transaction must be true or false, not {other}"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    fn flyway(&mut self, entries: &[Entry]) -> Result<()> {
        for e in entries {
            if e.is_dir {
                self.warn(&e.path, "a directory, not a migration file (ignored)");
                continue;
            }
            if e.name.ends_with(".sql.conf") {
                continue; // read with its script below
            }
            if !is_sql(&e.name) {
                self.warn(&e.path, "not a .sql file (ignored)");
                continue;
            }
            if let Some(desc) = e.name.strip_prefix("R__") {
                let desc = strip_sql(desc);
                if desc.is_empty() {
                    return Err(Error::bad_input(
                        Location::file(&e.path),
                        "the name does not parse as a Flyway repeatable migration: expected R__<description>.sql",
                    ));
                }
                // Flyway shows `_` in a description as a space.
                let desc = desc.replace('_', " ");
                let conf = e.path.with_file_name(format!("{}.conf", e.name));
                let no_tx = conf.is_file() && flyway_conf_no_transaction(&conf)?;
                let script = Self::script(&e.path)?;
                if let Some((other, _)) = self.repeatables.insert(desc.clone(), (script, no_tx)) {
                    return Err(Error::bad_input(
                        Location::file(&e.path),
                        format!(
                            "duplicate repeatable migration `{desc}`: also used by {}",
                            other.path.display()
                        ),
                    ));
                }
                continue;
            }
            let stem = strip_sql(&e.name);
            let parsed = stem.split_once("__").and_then(|(head, desc)| {
                let (part, ver) = match head.as_bytes().first() {
                    Some(b'V') => (Part::Up, &head[1..]),
                    Some(b'U') => (Part::Down, &head[1..]),
                    _ => return None,
                };
                let ok = !ver.is_empty()
                    && ver
                        .bytes()
                        .all(|b| b.is_ascii_digit() || b == b'.' || b == b'_')
                    && ver.as_bytes()[0].is_ascii_digit()
                    && !desc.is_empty();
                ok.then_some((part, ver, desc))
            });
            let Some((part, ver, desc)) = parsed else {
                return Err(Error::bad_input(
                    Location::file(&e.path),
                    "the name does not parse as a Flyway migration: expected V<VERSION>__<description>.sql or U<VERSION>__<description>.sql",
                ));
            };
            let version = parse_version(ver, &e.path)?;
            let parts: Vec<u64> = ver
                .split(['.', '_'])
                .filter(|p| !p.is_empty())
                .map(|p| p.parse().unwrap_or(u64::MAX))
                .collect();
            let is_up = matches!(part, Part::Up);
            self.add(
                version,
                &ver.replace('_', "."),
                desc,
                SortKey::Parts(parts),
                part,
                Self::script(&e.path)?,
                &e.path,
            )?;
            let conf = e.path.with_file_name(format!("{}.conf", e.name));
            if is_up
                && conf.is_file()
                && flyway_conf_no_transaction(&conf)?
                && let Some(f) = self.found.get_mut(&version)
            {
                f.force_no_transaction = true;
            }
        }
        Ok(())
    }

    fn dbmate(&mut self, entries: &[Entry]) -> Result<()> {
        for e in entries {
            if e.is_dir {
                self.warn(&e.path, "a directory, not a migration file (ignored)");
                continue;
            }
            if !is_sql(&e.name) {
                self.warn(&e.path, "not a .sql file (ignored)");
                continue;
            }
            let stem = strip_sql(&e.name);
            let Some((v, name)) = stem.split_once('_').filter(|(v, n)| {
                !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) && !n.is_empty()
            }) else {
                return Err(Error::bad_input(
                    Location::file(&e.path),
                    "the name does not parse as a dbmate migration: expected VERSION_name.sql",
                ));
            };
            let version = parse_version(v, &e.path)?;
            let text = read_sql(&e.path)?;
            let lines: Vec<&str> = text.split('\n').collect();
            let up_at = lines.iter().position(|l| is_dbmate_marker(l, "up"));
            let down_at = lines.iter().position(|l| is_dbmate_marker(l, "down"));
            let Some(up_at) = up_at else {
                return Err(Error::bad_input(
                    Location::file(&e.path),
                    "dbmate migration without a `-- migrate:up` line",
                ));
            };
            if down_at.is_some_and(|d| d < up_at) {
                return Err(Error::bad_input(
                    Location::line(&e.path, down_at.unwrap_or(0) + 1),
                    "`-- migrate:down` comes before `-- migrate:up`",
                ));
            }
            let up_end = down_at.unwrap_or(lines.len());
            let section = |from: usize, to: usize| Script {
                path: e.path.clone(),
                sql: lines[from + 1..to].join("\n"),
                first_line: from + 2,
            };
            let no_tx = lines[up_at].contains("transaction:false");
            // dbmate applies its files in the order of their names compared as text (Go's
            // `sort.Slice` on `FileName` in `FindMigrations`), so `10_c.sql` runs before
            // `1_a.sql` and `2_b.sql`; tidemark keeps that order for dbmate's layout.
            let key = SortKey::Text(e.name.clone());
            self.add(
                version,
                v,
                name,
                key.clone(),
                Part::Up,
                section(up_at, up_end),
                &e.path,
            )?;
            if let Some(d) = down_at {
                self.add(
                    version,
                    v,
                    name,
                    key,
                    Part::Down,
                    section(d, lines.len()),
                    &e.path,
                )?;
            }
            if no_tx && let Some(f) = self.found.get_mut(&version) {
                f.force_no_transaction = true;
            }
        }
        Ok(())
    }

    fn finish(self, layout: Layout) -> Result<MigrationSet> {
        let mut migrations = Vec::with_capacity(self.found.len());
        for (version, f) in self.found {
            let Some(up) = f.up else {
                let down = f.down.map(|d| d.path).unwrap_or(f.origin);
                return Err(Error::bad_input(
                    Location::file(&down),
                    format!("down script for version {version} without an up script"),
                ));
            };
            let d = directives(&up)?;
            if let Some(down) = &f.down {
                directives(down)?;
            }
            migrations.push(Migration {
                version,
                written_version: f.written,
                name: f.name,
                checksum: checksum(&up.sql),
                transactional: !(d.no_transaction || f.force_no_transaction),
                verify: d.verify,
                up,
                down: f.down,
                sort_key: f.sort_key,
            });
        }
        migrations.sort_by(|a, b| a.sort_key.cmp(&b.sort_key).then(a.version.cmp(&b.version)));
        // Two diesel versions with the same digits but a different order would be ambiguous.
        for w in migrations.windows(2) {
            if w[0].sort_key.cmp(&w[1].sort_key) == Ordering::Equal {
                return Err(Error::bad_input(
                    Location::file(&w[1].up.path),
                    format!(
                        "duplicate version {}: also used by {}",
                        w[1].version,
                        w[0].up.path.display()
                    ),
                ));
            }
        }
        let mut repeatables = Vec::with_capacity(self.repeatables.len());
        for (desc, (up, no_tx)) in self.repeatables {
            if up.sql.trim().is_empty() {
                return Err(Error::bad_input(
                    Location::file(&up.path),
                    "the repeatable migration is empty",
                ));
            }
            let d = directives(&up)?;
            repeatables.push(Repeatable {
                migration: Migration {
                    version: 0,
                    written_version: String::new(),
                    checksum: checksum(&up.sql),
                    transactional: !(d.no_transaction || no_tx),
                    verify: None,
                    sort_key: SortKey::Text(desc.clone()),
                    name: desc,
                    up,
                    down: None,
                },
            });
        }
        Ok(MigrationSet {
            dir: self.dir,
            layout,
            migrations,
            warnings: self.warnings,
            repeatables,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (name, body) in files {
            let p = d.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
        d
    }

    fn load(files: &[(&str, &str)]) -> Result<MigrationSet> {
        let d = dir(files);
        MigrationSet::load(d.path(), None)
    }

    fn err(files: &[(&str, &str)]) -> String {
        load(files).unwrap_err().to_string()
    }

    #[test]
    fn native_layout_pairs_up_and_down() {
        let s = load(&[
            ("0002_tasks.up.sql", "CREATE TABLE tasks (id int);"),
            ("0002_tasks.down.sql", "DROP TABLE tasks;"),
            ("0001_users.sql", "CREATE TABLE users (id int);"),
            ("README.md", "docs"),
            (".gitkeep", ""),
        ])
        .unwrap();
        assert_eq!(s.layout, Layout::Native);
        let v: Vec<(i64, &str, bool)> = s
            .migrations
            .iter()
            .map(|m| (m.version, m.name.as_str(), m.down.is_some()))
            .collect();
        assert_eq!(v, vec![(1, "users", false), (2, "tasks", true)]);
        assert_eq!(s.warnings.len(), 1);
        assert!(s.warnings[0].contains("README.md"));
    }

    #[test]
    fn checksum_ignores_crlf_and_bom() {
        let a = load(&[("1_a.sql", "CREATE TABLE a (id int);\nSELECT 1;\n")]).unwrap();
        let b = load(&[(
            "1_a.sql",
            "\u{feff}CREATE TABLE a (id int);\r\nSELECT 1;\r\n",
        )])
        .unwrap();
        assert_eq!(a.migrations[0].checksum, b.migrations[0].checksum);
        assert_eq!(
            a.migrations[0].checksum,
            checksum("CREATE TABLE a (id int);\nSELECT 1;\n")
        );
    }

    #[test]
    fn bad_inputs_name_the_file() {
        let e = err(&[("1_a.sql", "SELECT 1;"), ("001_b.up.sql", "SELECT 2;")]);
        assert!(e.contains("duplicate version 1"), "{e}");
        let e = err(&[("1_a.down.sql", "SELECT 1;")]);
        assert!(
            e.contains("1_a.down.sql") && e.contains("without an up"),
            "{e}"
        );
        let e = err(&[("12a_x.up.sql", "SELECT 1;")]);
        assert!(
            e.contains("12a_x.up.sql") && e.contains("does not parse"),
            "{e}"
        );
        // Empty and comment-only up scripts are no-op migrations (see validate).
        let s = load(&[("1_a.sql", "  \n")]).unwrap();
        s.validate(Dialect::Postgres).unwrap();
        let e = err(&[("99999999999999999999_a.sql", "SELECT 1;")]);
        assert!(e.contains("too large"), "{e}");
    }

    #[test]
    fn non_utf8_is_rejected_with_its_line() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("1_a.sql"), b"SELECT 1;\nSELECT '\xff';\n").unwrap();
        let e = MigrationSet::load(d.path(), None).unwrap_err().to_string();
        assert!(e.contains("1_a.sql:2") && e.contains("UTF-8"), "{e}");
    }

    #[test]
    fn directives() {
        let s = load(&[
            (
                "1_a.sql",
                "-- tidemark:no-transaction\nCREATE INDEX CONCURRENTLY i ON t (a);",
            ),
            ("2_b.sql", "-- no-transaction\nSELECT 1;"),
            ("3_c.sql", "SELECT 1;\n-- tidemark:no-transaction\n"),
        ])
        .unwrap();
        let tx: Vec<bool> = s.migrations.iter().map(|m| m.transactional).collect();
        assert_eq!(
            tx,
            vec![false, false, true],
            "a directive must come before the first statement"
        );
        let e = err(&[(
            "1_a.sql",
            "-- comment\n-- tidemark:no-transactoin\nSELECT 1;",
        )]);
        assert!(
            e.contains("1_a.sql:2") && e.contains("unknown directive"),
            "{e}"
        );
    }

    #[test]
    fn files_that_control_their_own_transaction_run_as_written() {
        // golang-migrate's and dbmate's idiom: accepted, and run outside tidemark's transaction.
        let s = load(&[("1_a.sql", "BEGIN;\nCREATE TABLE a (id int);\nCOMMIT;")]).unwrap();
        s.validate(Dialect::Postgres).unwrap();
        let m = &s.migrations[0];
        assert_eq!(
            m.run_mode(&m.up, Dialect::Postgres, true, "15.2").unwrap(),
            RunMode::Outside(Outside::OwnTransaction { line: 1 })
        );
        // Unbalanced transaction control is refused, naming the line.
        for (body, line, what) in [
            ("CREATE TABLE a (id int);\nCOMMIT;", 2, "never began"),
            (
                "SELECT 1;\nBEGIN;\nCREATE TABLE a (id int);",
                2,
                "never ends",
            ),
            (
                "BEGIN;\nBEGIN;\nSELECT 1;\nCOMMIT;",
                2,
                "inside the one opened at line 1",
            ),
        ] {
            let s = load(&[("1_a.sql", body)]).unwrap();
            let e = s.validate(Dialect::Postgres).unwrap_err().to_string();
            assert!(
                e.contains(&format!("1_a.sql:{line}")) && e.contains(what),
                "{e}"
            );
        }
        let s = load(&[("1_a.sql", "-- only a comment\n")]).unwrap();
        s.validate(Dialect::Sqlite).unwrap();
        assert!(
            s.migrations[0]
                .up
                .statements(Dialect::Sqlite)
                .unwrap()
                .is_empty()
        );
        let s = load(&[("1_a.sql", "SELECT 'unterminated;\n")]).unwrap();
        let e = s.validate(Dialect::Sqlite).unwrap_err().to_string();
        assert!(e.contains("1_a.sql:1") && e.contains("unterminated"), "{e}");
    }

    #[test]
    fn statements_refused_in_a_transaction_take_the_migration_out_of_one() {
        let s = load(&[
            ("1_a.sql", "CREATE TABLE t (a int, b int);"),
            (
                "2_b.sql",
                "SELECT 1;\nCREATE UNIQUE INDEX CONCURRENTLY i ON t (a);",
            ),
            ("3_c.sql", "DROP INDEX CONCURRENTLY i;"),
            ("4_d.sql", "VACUUM t;"),
            ("5_e.sql", "ALTER TYPE mood ADD VALUE 'meh';"),
            ("6_f.sql", "REFRESH MATERIALIZED VIEW CONCURRENTLY mv;"),
        ])
        .unwrap();
        let mode = |v: i64, d: Dialect, server: &str| {
            let m = s.get(v).unwrap();
            m.run_mode(&m.up, d, true, server).unwrap()
        };
        assert_eq!(mode(1, Dialect::Postgres, "15.2"), RunMode::Transaction);
        assert!(
            matches!(
                mode(2, Dialect::Postgres, "15.2"),
                RunMode::Outside(Outside::Statement { line: 2, .. })
            ),
            "{:?}",
            mode(2, Dialect::Postgres, "15.2")
        );
        assert!(!mode(3, Dialect::Postgres, "15.2").is_transaction());
        assert!(!mode(4, Dialect::Postgres, "15.2").is_transaction());
        assert!(!mode(4, Dialect::Sqlite, "3.45.0").is_transaction());
        // ADD VALUE runs in a transaction from PostgreSQL 12 on.
        assert!(mode(5, Dialect::Postgres, "15.2").is_transaction());
        assert!(!mode(5, Dialect::Postgres, "11.22").is_transaction());
        assert!(mode(6, Dialect::Postgres, "15.2").is_transaction());
        let m = s.get(1).unwrap();
        assert_eq!(
            m.run_mode(&m.up, Dialect::MySql, false, "10.11").unwrap(),
            RunMode::Outside(Outside::NoTransactionalDdl)
        );
    }

    #[test]
    fn diesel_layout_orders_digit_strings_as_text() {
        let s = load(&[
            ("2026-05-28-000000_c/up.sql", "SELECT 3;"),
            ("2026-05-27-120000-0000_b/up.sql", "SELECT 2;"),
            (
                "2026-05-27-120000-0000_b/metadata.toml",
                "run_in_transaction = false\n",
            ),
            ("2026-05-27-120000_a/up.sql", "SELECT 1;"),
            ("2026-05-27-120000_a/down.sql", "SELECT -1;"),
            ("00000000000000_diesel_initial_setup/up.sql", "SELECT 0;"),
            ("schema.rs", "// not a migration"),
        ])
        .unwrap();
        assert_eq!(s.layout, Layout::Diesel);
        let names: Vec<&str> = s.migrations.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, vec!["diesel_initial_setup", "a", "b", "c"]);
        assert_eq!(s.migrations[1].version, 20260527120000);
        assert_eq!(s.migrations[2].version, 202605271200000000);
        assert!(!s.migrations[2].transactional);
        assert!(s.migrations[1].down.is_some());
        assert_eq!(s.warnings.len(), 1);
        let e = err(&[
            ("2026-01-01-000000_a/up.sql", "SELECT 1;"),
            ("2026-01-02-000000_b/down.sql", "SELECT 1;"),
        ]);
        assert!(e.contains("without up.sql"), "{e}");
    }

    #[test]
    fn flyway_layout() {
        let s = load(&[
            ("V2__add_tasks.sql", "SELECT 2;"),
            ("V1__init.sql", "SELECT 1;"),
            ("U2__add_tasks.sql", "SELECT -2;"),
            ("V10__later.sql", "SELECT 10;"),
            ("V10__later.sql.conf", "executeInTransaction=false\n"),
        ])
        .unwrap();
        assert_eq!(s.layout, Layout::Flyway);
        let v: Vec<i64> = s.migrations.iter().map(|m| m.version).collect();
        assert_eq!(v, vec![1, 2, 10]);
        assert!(s.migrations[1].down.is_some());
        assert!(!s.migrations[2].transactional);
        let s = load(&[
            ("V1__a.sql", "SELECT 1;"),
            ("R__views_b.sql", "SELECT 2;"),
            ("R__a_functions.sql", "SELECT 3;"),
        ])
        .unwrap();
        assert_eq!(s.migrations.len(), 1);
        let r: Vec<&str> = s.repeatables.iter().map(|r| r.description()).collect();
        assert_eq!(
            r,
            ["a functions", "views b"],
            "in Flyway's order: by description"
        );
        let e = err(&[("V1__a.sql", "SELECT 1;"), ("R__.sql", "SELECT 1;")]);
        assert!(e.contains("R__.sql") && e.contains("repeatable"), "{e}");
        let e = err(&[("V1__a.sql", "SELECT 1;"), ("V2_b.sql", "SELECT 1;")]);
        assert!(
            e.contains("V2_b.sql") && e.contains("does not parse"),
            "{e}"
        );
    }

    #[test]
    fn dbmate_layout_sections_keep_file_lines() {
        let s = load(&[(
            "20250101000000_users.sql",
            "-- migrate:up\nCREATE TABLE users (id int);\n\nCREATE INDEX i ON users (id);\n\n-- migrate:down\nDROP TABLE users;\n",
        )])
        .unwrap();
        assert_eq!(s.layout, Layout::Dbmate);
        let m = &s.migrations[0];
        let up = m.up.statements(Dialect::Sqlite).unwrap();
        assert_eq!(up.len(), 2);
        assert_eq!(up[0].line, 2);
        assert_eq!(up[1].line, 4);
        let down = m
            .down
            .as_ref()
            .unwrap()
            .statements(Dialect::Sqlite)
            .unwrap();
        assert_eq!(down[0].line, 7);
        assert_eq!(
            m.checksum,
            checksum("CREATE TABLE users (id int);\n\nCREATE INDEX i ON users (id);\n")
        );
        let s = load(&[(
            "1_a.sql",
            "-- migrate:up transaction:false\nSELECT 1;\n-- migrate:down\n",
        )])
        .unwrap();
        assert!(!s.migrations[0].transactional);
        assert!(
            s.migrations[0].usable_down(Dialect::Sqlite).is_none(),
            "an empty down section counts as missing"
        );
    }

    #[test]
    fn each_layout_orders_as_its_tool_does() {
        // dbmate sorts file names as text: `10_c.sql` < `1_a.sql` < `2_b.sql`.
        let s = load(&[
            ("1_a.sql", "-- migrate:up\nSELECT 1;\n"),
            ("2_b.sql", "-- migrate:up\nSELECT 2;\n"),
            ("10_c.sql", "-- migrate:up\nSELECT 10;\n"),
        ])
        .unwrap();
        assert_eq!(s.layout, Layout::Dbmate);
        let v: Vec<i64> = s.migrations.iter().map(|m| m.version).collect();
        assert_eq!(v, vec![10, 1, 2]);
        // golang-migrate and sqlx parse the version as a number.
        let s = load(&[
            ("1_a.up.sql", "SELECT 1;"),
            ("2_b.up.sql", "SELECT 2;"),
            ("10_c.up.sql", "SELECT 10;"),
        ])
        .unwrap();
        let v: Vec<i64> = s.migrations.iter().map(|m| m.version).collect();
        assert_eq!(v, vec![1, 2, 10]);
    }

    #[test]
    fn missing_directory_is_a_usage_error() {
        let e = MigrationSet::load(Path::new("/nonexistent/migrations"), None).unwrap_err();
        assert_eq!(e.class(), crate::error::ExitClass::Usage);
        assert!(e.to_string().contains("tidemark init"));
    }
}
