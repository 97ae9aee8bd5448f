//! `tidemark lint [PATHS]`: lint migration files. It never connects to a database: the dialect
//! comes from `--dialect`, the database URL's scheme, or `[lint] dialect`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tidemark::{Dialect, Error, Location, Migration, MigrationSet, Result, env};
use tidemark_lint::{Levels, Linter, RoundTrip, Severity};

use crate::cli::LintArgs;
use crate::context::Context;
use crate::output::lint::{Summary, list_rules, render};

pub async fn run(ctx: &Context, args: &LintArgs) -> Result<i32> {
    let levels = Levels::from_config(ctx.config.lint.as_ref())?;
    if args.list_rules {
        list_rules(&ctx.out, &levels);
        return Ok(0);
    }
    let dialect = dialect(ctx, args)?;
    let paths = if args.paths.is_empty() {
        vec![ctx.dir()]
    } else {
        args.paths.clone()
    };
    let mut findings = Vec::new();
    let mut migrations = 0;
    let mut statements = 0;
    let mut classes = Vec::new();
    let since = ctx.config.lint.as_ref().and_then(|l| l.since);
    let applied = if args.pending {
        Some(applied_versions(ctx).await?)
    } else {
        None
    };
    let changed = match &args.changed_since {
        Some(r) => Some(changed_files(r)?),
        None => None,
    };
    for path in &paths {
        let (set, selected) = load(ctx, path).map_err(as_bad_input)?;
        // The same checks `up` makes before it touches the database: lint rejects exactly what
        // `up` rejects (exit 2, naming file and line).
        set.validate(dialect)?;
        for w in &set.warnings {
            ctx.out.warn(w);
        }
        let evidence = if args.replay {
            replay(ctx, args, dialect, &set).await?
        } else {
            BTreeMap::new()
        };
        // As `up` will run them: each statement's wait for a table lock bounded, unless
        // `[migrate] statement_lock_timeout` turns it off.
        let linter = Linter::new(dialect, levels.clone())
            .with_statement_lock_timeout(ctx.settings(None)?.statement_lock_timeout);
        let linter = if args.replay {
            linter.with_replay(&evidence)
        } else {
            linter
        };
        // Only what is about to ship: not yet applied (--pending), changed in this branch
        // (--changed-since), newer than the adoption baseline ([lint] since).
        let chosen: Vec<&Migration> = set
            .migrations
            .iter()
            .filter(|m| selected.as_ref().is_none_or(|s| s.contains(&m.version)))
            .filter(|m| since.is_none_or(|v| m.version > v))
            .filter(|m| applied.as_ref().is_none_or(|a| !a.contains(&m.version)))
            .filter(|m| {
                changed.as_ref().is_none_or(|c| {
                    c.contains(&canonical(&m.up.path))
                        || m.down
                            .as_ref()
                            .is_some_and(|d| c.contains(&canonical(&d.path)))
                })
            })
            .collect();
        migrations += chosen.len();
        for m in &chosen {
            statements += tidemark_lint::Unit::analyze(m, dialect)
                .map_or(0, |u| u.scripts().map(|s| s.stmts.len()).sum());
            let c = tidemark_lint::classify(m, dialect);
            classes.push(crate::output::lint::ClassDoc {
                version: m.version,
                file: m.up.path.display().to_string(),
                class: c.class,
                reasons: c.reasons,
            });
        }
        findings.extend(linter.lint(chosen).map_err(as_bad_input)?);
    }
    let summary = Summary {
        dialect,
        migrations,
        statements,
        errors: findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count(),
        warnings: findings
            .iter()
            .filter(|f| f.severity == Severity::Warning)
            .count(),
        classes,
    };
    render(&ctx.out, &findings, &summary);
    Ok(if summary.errors > 0 { 1 } else { 0 })
}

/// Up, down and up again on a shadow database for every migration with a down script.
async fn replay(
    ctx: &Context,
    args: &LintArgs,
    dialect: Dialect,
    set: &MigrationSet,
) -> Result<BTreeMap<i64, RoundTrip>> {
    let server = match (dialect, ctx.shadow_url(&args.shadow)?) {
        (_, Some(u)) => u,
        (Dialect::Sqlite, None) => tidemark::DatabaseUrl::parse("sqlite::memory:")?,
        (d, None) => {
            return Err(Error::Usage(format!(
                "--replay on {d} needs a server to replay on: pass --shadow-url (tidemark creates and drops a scratch database there) or set [shadow] url"
            )));
        }
    };
    if server.dialect() != dialect {
        return Err(Error::Usage(format!(
            "the shadow database {server} is not {dialect}"
        )));
    }
    let mut conn = tidemark::connect(&server).await?;
    let mut shadow = tidemark::replay::Shadow::open(conn.as_mut(), None).await?;
    let settings = ctx.settings(None)?;
    let sp = crate::output::progress::spinner(
        &ctx.out,
        format!(
            "replaying {} migrations up, down and up",
            set.migrations.len()
        ),
    );
    let r = tidemark::replay::round_trips(&mut shadow, set, &settings.inspect).await;
    drop(sp);
    shadow.close().await;
    conn.close().await;
    Ok(r?
        .into_iter()
        .map(|(v, t)| {
            let t = match t {
                tidemark::replay::RoundTrip::Clean => RoundTrip::Clean,
                tidemark::replay::RoundTrip::Residue(r) => RoundTrip::Residue(r),
                tidemark::replay::RoundTrip::DownFailed { line, message } => {
                    RoundTrip::DownFailed { line, message }
                }
            };
            (v, t)
        })
        .collect())
}

/// `--dialect`, else the database URL's scheme (never connecting), else `[lint] dialect`.
fn dialect(ctx: &Context, args: &LintArgs) -> Result<Dialect> {
    if let Some(d) = &args.dialect {
        return d.parse().map_err(Error::Usage);
    }
    let url_configured = ctx.global.database_url.is_some()
        || std::env::var(env::GENERIC_DATABASE_URL).is_ok_and(|s| !s.is_empty())
        || ctx.config.database_url.is_some();
    if url_configured {
        return Ok(ctx.database_url()?.dialect());
    }
    if let Some(d) = ctx.config.lint.as_ref().and_then(|l| l.dialect.as_deref()) {
        return d
            .parse()
            .map_err(|e| Error::Usage(format!("tidemark.toml [lint] dialect: {e}")));
    }
    Err(Error::Usage(
        "lint needs to know the SQL dialect: pass --dialect postgres|mysql|sqlite, configure a database URL, or set `dialect` under [lint] in tidemark.toml".into(),
    ))
}

/// The migration set a path belongs to, and which versions of it to lint (`None`: all).
/// Versions recorded as applied in the database at `-d` (the only lint mode that connects).
async fn applied_versions(ctx: &Context) -> Result<Vec<i64>> {
    let mut db = ctx.connect().await.map_err(|e| match e {
        Error::Usage(m) => Error::Usage(format!("--pending needs the database (-d): {m}")),
        e => e,
    })?;
    let h = tidemark::history::read(db.as_mut()).await;
    db.close().await;
    Ok(h?
        .entries
        .iter()
        .filter(|e| e.state == tidemark::history::HistoryState::Applied)
        .map(|e| e.version)
        .collect())
}

/// Files changed since a git ref (committed, staged, unstaged and untracked), canonical.
fn changed_files(reference: &str) -> Result<Vec<PathBuf>> {
    let git = |args: &[&str]| -> Result<String> {
        let out = std::process::Command::new("git")
            .args(args)
            .output()
            .map_err(|e| Error::Usage(format!("--changed-since needs git: {e}")))?;
        if !out.status.success() {
            return Err(Error::Usage(format!(
                "--changed-since {reference}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let top = git(&["rev-parse", "--show-toplevel"])?;
    let top = Path::new(top.trim());
    let mut files = git(&["diff", "--name-only", reference, "--"])?;
    files.push_str(&git(&[
        "ls-files",
        "--others",
        "--exclude-standard",
        "--full-name",
    ])?);
    Ok(files
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| canonical(&top.join(l)))
        .collect())
}

fn load(ctx: &Context, path: &Path) -> Result<(MigrationSet, Option<Vec<i64>>)> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::Usage(format!("lint: cannot read {}: {e}", path.display())))?;
    if meta.is_dir() {
        return Ok((MigrationSet::load(path, ctx.layout()?)?, None));
    }
    // A file: find the migration it belongs to. Its directory is the migrations directory,
    // except in diesel's layout, where it is the directory above.
    let file = canonical(path);
    let mut first_error = None;
    for dir in path.ancestors().skip(1).take(2) {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        match MigrationSet::load(dir, ctx.layout()?) {
            Ok(set) => {
                let versions: Vec<i64> = set
                    .migrations
                    .iter()
                    .filter(|m| {
                        canonical(&m.up.path) == file
                            || m.down.as_ref().is_some_and(|d| canonical(&d.path) == file)
                    })
                    .map(|m| m.version)
                    .collect();
                if !versions.is_empty() {
                    return Ok((set, Some(versions)));
                }
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| {
        Error::bad_input(
            Location::file(path),
            "not a migration file: its directory does not hold it as a migration (lint a directory, or name an up or down script)",
        )
    }))
}

fn canonical(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| p.to_path_buf())
}

/// For lint, an unreadable file is bad input (exit 2): exit 1 means "error-level findings".
fn as_bad_input(e: Error) -> Error {
    match e {
        Error::Io { path, source } => {
            Error::bad_input(Location::file(path), format!("cannot read: {source}"))
        }
        other => other,
    }
}
