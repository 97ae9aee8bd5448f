//! `backup create | list | verify | restore | prune`, and the backup `up`/`down` take first.

use async_trait::async_trait;
use tidemark::backup::{self, Manifest, Store, Vault};
use tidemark::engine::BeforeChange;
use tidemark::plan::Plan;
use tidemark::status::Status;
use tidemark::{DatabaseUrl, Driver, Dumper, Error, Result, history, identity};

use crate::cli::BackupCommand;
use crate::context::{BackupSettings, Context};
use crate::output::json::{BackupDoc, BackupListDoc};
use crate::output::progress::spinner;
use crate::output::{BOLD, DIM, GREEN, RED, paint};

pub fn open_vault(s: &BackupSettings, ctx: &Context) -> Result<Vault> {
    if ["/tmp", "/var/tmp", "/dev/shm"]
        .iter()
        .any(|t| s.dir.starts_with(t))
    {
        ctx.out.warn(&format!(
            "backups go to {}, temporary storage that a reboot empties",
            s.dir.display()
        ));
    }
    Vault::new(&s.dir, &s.legacy)
}

fn human_size(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// What to say when a database's identity was assigned elsewhere ([`identity::moved`]).
pub fn moved_note(from: &str) -> String {
    format!(
        "this identity was assigned to {from}; the database has been moved, renamed or copied since. \
         If it is a copy of another database, it shares that database's backups: give it its own \
         identity by dropping its tidemark_identity table (tidemark assigns a new one with the next backup or change)"
    )
}

/// Warn when the database's identity was assigned elsewhere.
async fn warn_if_moved(ctx: &Context, driver: &mut dyn Driver) {
    if let Ok(Some((from, _))) = identity::moved(driver).await {
        ctx.out.warn(&moved_note(&from));
    }
}

use tidemark::backup::take;

/// The backup `up` and `down` take under the lock before they change anything.
pub struct BackupFirst<'a> {
    pub ctx: &'a Context,
    pub vault: Vault,
    pub dumper: Box<dyn Dumper>,
    pub settings: BackupSettings,
    pub inspect: tidemark::driver::InspectOptions,
    pub run_id: String,
}

impl<'a> BackupFirst<'a> {
    /// `None` when backups are off (`--no-backup`, `[backup] enabled = false`, in-memory SQLite).
    pub fn new(
        ctx: &'a Context,
        url: &DatabaseUrl,
        no_backup: bool,
        settings: &tidemark::engine::Settings,
    ) -> Result<Option<BackupFirst<'a>>> {
        let s = ctx.backup_settings(url)?;
        if no_backup || !s.enabled {
            return Ok(None);
        }
        Ok(Some(BackupFirst {
            ctx,
            vault: open_vault(&s, ctx)?,
            dumper: tidemark::dumper(url)?,
            settings: s,
            inspect: settings.inspect.clone(),
            run_id: settings.run_id.clone(),
        }))
    }
}

#[async_trait]
impl BeforeChange for BackupFirst<'_> {
    async fn before_change(
        &mut self,
        driver: &mut dyn Driver,
        plan: &Plan,
        status: &Status,
    ) -> Result<Option<String>> {
        let sp = spinner(
            &self.ctx.out,
            "taking a backup before changing anything".into(),
        );
        // The engine holds the lock here.
        let r = take(
            driver,
            &self.vault,
            self.dumper.as_ref(),
            None,
            status.current_version,
            format!(
                "before {} migration(s) (run {})",
                plan.steps.len(),
                self.run_id
            ),
            Some(&self.run_id),
            &self.inspect,
        )
        .await;
        drop(sp);
        if r.is_ok() {
            warn_if_moved(self.ctx, driver).await;
        }
        let (store, m) = r.map_err(|e| match e {
            Error::Tool(msg) => Error::Tool(format!("{msg}\nthe backup before the migrations failed, so nothing was migrated (--no-backup skips it)")),
            other => other,
        })?;
        self.ctx.out.line(format!(
            "  {} backup {} {}",
            paint(GREEN, "✓"),
            m.id,
            paint(
                DIM,
                format!(
                    "({}, {} ms, {})",
                    human_size(m.size_bytes),
                    m.duration_ms,
                    store.dir().display()
                )
            )
        ));
        let pruned = store.prune(
            self.settings.keep,
            self.settings.keep_days,
            time::OffsetDateTime::now_utc(),
        )?;
        if !pruned.is_empty() {
            self.ctx.out.line(paint(
                DIM,
                format!("    retention removed {} old backup(s)", pruned.len()),
            ));
        }
        Ok(Some(m.id))
    }
}

/// "postgres://app:***@db/shop (database 3f2a…)", or "(identity unknown)" for a backup taken
/// before identities.
fn source_of(m: &Manifest) -> String {
    match &m.database_id {
        Some(id) => format!("{} (database {id})", m.database),
        None => format!("{} (identity unknown)", m.database),
    }
}

fn target_of(url: &DatabaseUrl, id: Option<&str>) -> String {
    match id {
        Some(id) => format!("{} (database {id})", url.redacted()),
        None => format!("{} (no identity yet)", url.redacted()),
    }
}

/// A backup picked for `verify` or `restore`.
struct Picked {
    store: Store,
    m: Manifest,
    /// Of another database, named by `--from-database`.
    foreign: bool,
}

/// Pick the backup `id` (or `latest`) of this database (`own`), or of `--from-database` when
/// given. Another database's backup is never taken without `--from-database`, and `latest` never
/// picks a backup whose database is unknown.
fn pick(
    vault: &Vault,
    url: &DatabaseUrl,
    own: Option<&str>,
    from: Option<&str>,
    id: &str,
    verb: &str,
) -> Result<Picked> {
    if let Some(f) = from
        && !identity::is_database_id(f)
    {
        return Err(Error::Usage(format!(
            "--from-database {f}: not a database id (32 hex digits, as `tidemark backup list --all` shows)"
        )));
    }
    let picked = if id == "latest" {
        let Some(src) = from.or(own) else {
            return Err(Error::Usage(format!(
                "{} has no identity yet, so no backup is filed under it; `latest` never picks another database's backup or one taken before identities. `tidemark backup list --all` shows every backup in {}: name one by its id, or pass --from-database ID",
                url.redacted(),
                vault.base().display()
            )));
        };
        let store = vault.peek(src)?;
        let Some(m) = store.latest()? else {
            return Err(Error::Usage(format!(
                "there are no backups of database {src} in {} (`tidemark backup list --all` shows every database's)",
                vault.base().display()
            )));
        };
        Picked {
            store,
            m,
            foreign: from.is_some_and(|f| Some(f) != own),
        }
    } else {
        let Some((db, store, m)) = vault.locate(id)? else {
            return Err(Error::Usage(format!(
                "no backup `{id}` in {} (`tidemark backup list --all` shows them)",
                vault.base().display()
            )));
        };
        match (db, from) {
            (Some(db), Some(f)) if db != f => {
                return Err(Error::Usage(format!(
                    "backup {id} is a backup of {}, not of --from-database {f}",
                    source_of(&m)
                )));
            }
            (Some(db), None) if Some(db.as_str()) != own => {
                return Err(Error::Usage(format!(
                    "backup {id} is a backup of another database, {}; this is {}. To {verb} it here anyway, pass --from-database {db}",
                    source_of(&m),
                    target_of(url, own)
                )));
            }
            (Some(db), _) => {
                // The folder says whose it is; the manifest must agree (a backup moved by hand).
                if m.database_id.as_deref() != Some(db.as_str()) {
                    return Err(Error::Inconsistent(format!(
                        "backup {id} lies in the folder of database {db} but its manifest says it is of {}; refusing to use it",
                        source_of(&m)
                    )));
                }
                Picked {
                    store,
                    foreign: Some(db.as_str()) != own,
                    m,
                }
            }
            (None, Some(_)) => {
                return Err(Error::Usage(format!(
                    "backup {id} was taken before tidemark recorded database identities, so it is of no database id; name it without --from-database"
                )));
            }
            (None, None) => Picked {
                store,
                m,
                foreign: false,
            },
        }
    };
    if picked.m.dialect != url.dialect().name() {
        return Err(Error::Usage(format!(
            "backup {} is a {} backup ({}); it cannot be used with {}",
            picked.m.id,
            picked.m.dialect,
            picked.m.database,
            url.redacted()
        )));
    }
    Ok(picked)
}

fn print_table(ctx: &Context, all: &[Manifest]) {
    ctx.out.line(paint(
        DIM,
        format!(
            "  {:<22}  {:<20}  {:>10}  {:>8}  {:<12}  {}",
            "ID", "CREATED (UTC)", "SIZE", "HEAD", "FINGERPRINT", "REASON"
        ),
    ));
    for m in all {
        ctx.out.line(format!(
            "  {:<22}  {:<20}  {:>10}  {:>8}  {:<12}  {}",
            m.id,
            m.created_at.replace('T', " ").trim_end_matches('Z'),
            human_size(m.size_bytes),
            m.history_head
                .map(|v| v.to_string())
                .unwrap_or_else(|| "-".into()),
            &m.schema_fingerprint[..12.min(m.schema_fingerprint.len())],
            m.reason
        ));
    }
}

/// `backup list`: this database's backups, and those of unknown identity; with `all` (or
/// when the database cannot be reached to read its id) every database's.
async fn list(ctx: &Context, url: &DatabaseUrl, vault: &Vault, all: bool) -> Result<i32> {
    let mut all = all;
    // A SQLite file that is gone would be created empty by connecting; its backups are what
    // the user is looking for.
    let gone = url.dialect() == tidemark::Dialect::Sqlite
        && url
            .database()
            .is_some_and(|p| !p.contains(":memory:") && !std::path::Path::new(&p).exists());
    let connected = if gone {
        Err(Error::Usage(format!(
            "{} does not exist",
            url.database().unwrap_or_default()
        )))
    } else {
        ctx.connect().await
    };
    let own = match connected {
        Ok(mut db) => {
            warn_if_moved(ctx, db.as_mut()).await;
            let id = identity::read(db.as_mut()).await;
            db.close().await;
            id?
        }
        Err(e) => {
            ctx.out.warn(&format!(
                "cannot read the identity of {} ({e}); listing every database's backups",
                url.redacted()
            ));
            all = true;
            None
        }
    };
    let mut groups: Vec<(String, Store, Vec<Manifest>)> = Vec::new();
    let ids = if all {
        vault.databases()?
    } else {
        own.iter().cloned().collect()
    };
    for id in ids {
        let store = vault.peek(&id)?;
        let ms = store.list()?;
        if !ms.is_empty() || !all {
            groups.push((id, store, ms));
        }
    }
    let legacy: Vec<(Store, Manifest)> = vault
        .legacy()?
        .into_iter()
        .filter(|(_, m)| all || m.dialect == url.dialect().name())
        .collect();
    if ctx.out.is_json() {
        let dir = match (&own, all) {
            (Some(id), false) => vault.base().join(id),
            _ => vault.base().to_path_buf(),
        };
        ctx.out.json(&BackupListDoc {
            dir: dir.display().to_string(),
            database_id: own.clone(),
            backups: groups
                .iter()
                .flat_map(|(_, st, ms)| ms.iter().map(|m| BackupDoc::new(st, m)))
                .collect(),
            identity_unknown: legacy.iter().map(|(st, m)| BackupDoc::new(st, m)).collect(),
        });
        return Ok(0);
    }
    if !all {
        match &own {
            Some(id) => ctx.out.line(format!(
                "{} {}",
                paint(BOLD, target_of(url, Some(id))),
                paint(DIM, vault.base().join(id).display().to_string())
            )),
            None => ctx.out.line(format!(
                "{} has no identity yet (tidemark assigns one with its first backup or change), so no backups are filed under it {}",
                url.redacted(),
                paint(DIM, "(`--all` lists every database's)")
            )),
        }
    }
    for (id, store, ms) in &groups {
        if all {
            let whose = ms
                .last()
                .map(source_of)
                .unwrap_or_else(|| format!("database {id}"));
            let here = if own.as_deref() == Some(id.as_str()) {
                " · this database"
            } else {
                ""
            };
            ctx.out.line(format!(
                "\n{}{here} {}",
                paint(BOLD, whose),
                paint(DIM, store.dir().display().to_string())
            ));
        }
        if ms.is_empty() {
            ctx.out.line("  no backups yet");
        } else {
            print_table(ctx, ms);
        }
    }
    if all && groups.is_empty() {
        ctx.out
            .line(format!("no backups yet in {}", vault.base().display()));
    }
    if !legacy.is_empty() {
        ctx.out.line(format!(
            "\n{} {}",
            paint(BOLD, "identity unknown"),
            paint(
                DIM,
                "(taken before tidemark recorded database identities; of the database shown, restorable only by id)"
            )
        ));
        let ms: Vec<Manifest> = legacy.iter().map(|(_, m)| m.clone()).collect();
        print_table(ctx, &ms);
        for m in &ms {
            ctx.out
                .line(paint(DIM, format!("  {} was of {}", m.id, m.database)));
        }
    }
    Ok(0)
}

pub async fn run(ctx: &Context, cmd: BackupCommand) -> Result<i32> {
    let url = ctx.database_url()?;
    let s = ctx.backup_settings(&url)?;
    let vault = open_vault(&s, ctx)?;
    let settings = ctx.settings(None)?;
    match cmd {
        BackupCommand::List { all } => list(ctx, &url, &vault, all).await,
        BackupCommand::Create { reason } => {
            let mut db = ctx.connect().await?;
            let dumper = tidemark::dumper(&url)?;
            let r = async {
                let head = history::read(db.as_mut()).await.ok().and_then(|h| {
                    let set = ctx.migrations().ok()?;
                    tidemark::status::Status::compute(&set, &h).current_version
                });
                let sp = spinner(&ctx.out, "dumping".into());
                let r = take(
                    db.as_mut(),
                    &vault,
                    dumper.as_ref(),
                    Some(settings.lock_timeout),
                    head,
                    reason,
                    Some(&settings.run_id),
                    &settings.inspect,
                )
                .await;
                drop(sp);
                let (store, m) = r?;
                warn_if_moved(ctx, db.as_mut()).await;
                // Journal it when tidemark already keeps a journal here (never create tables
                // just to say so).
                if history::exists(db.as_mut()).await.unwrap_or(false) {
                    let detail = serde_json::json!({ "backup_id": m.id, "reason": m.reason, "database_id": m.database_id });
                    let _ = history::journal(
                        db.as_mut(),
                        &history::JournalWrite {
                            run_id: &settings.run_id,
                            action: "backup",
                            version: None,
                            detail: Some(detail.to_string()),
                            actor: &settings.actor,
                        },
                    )
                    .await;
                }
                Ok::<_, Error>((store, m))
            }
            .await;
            db.close().await;
            let (store, m) = r?;
            if ctx.out.is_json() {
                ctx.out.json(&BackupDoc::new(&store, &m));
            } else {
                ctx.out.line(format!(
                    "{} backup {} · {} · {} ms · {}",
                    paint(GREEN, "✓"),
                    paint(BOLD, &m.id),
                    human_size(m.size_bytes),
                    m.duration_ms,
                    store.data_path(&m).display()
                ));
            }
            let pruned = store.prune(s.keep, s.keep_days, time::OffsetDateTime::now_utc())?;
            if !pruned.is_empty() {
                ctx.out.line(paint(
                    DIM,
                    format!("retention removed {} old backup(s)", pruned.len()),
                ));
            }
            Ok(0)
        }
        BackupCommand::Verify { id, from_database } => {
            let mut db = ctx.connect().await?;
            let r = async {
                warn_if_moved(ctx, db.as_mut()).await;
                let own = identity::read(db.as_mut()).await?;
                let p = pick(
                    &vault,
                    &url,
                    own.as_deref(),
                    from_database.as_deref(),
                    &id,
                    "verify",
                )?;
                let dumper = tidemark::dumper(&url)?;
                let sp = spinner(
                    &ctx.out,
                    format!("restoring {} into a scratch database", p.m.id),
                );
                let r = backup::verify(
                    db.as_mut(),
                    dumper.as_ref(),
                    &p.store,
                    &p.m,
                    &settings.inspect,
                )
                .await;
                drop(sp);
                Ok::<_, Error>((p.m, r?))
            }
            .await;
            db.close().await;
            let (m, r) = r?;
            if ctx.out.is_json() {
                ctx.out.json(&r);
            } else if r.ok {
                ctx.out.line(format!(
                    "{} backup {} of {} restores: checksum, schema fingerprint and the row counts of {} table(s) match ({} ms)",
                    paint(GREEN, "✓"),
                    m.id,
                    source_of(&m),
                    m.row_counts.len(),
                    r.duration_ms
                ));
            } else {
                if !r.checksum_ok {
                    anstream::eprintln!(
                        "{} the dump's checksum does not match its manifest (corrupted or changed)",
                        paint(RED.bold(), "failed:")
                    );
                } else if !r.fingerprint_ok {
                    anstream::eprintln!(
                        "{} the restored schema's fingerprint differs from the manifest's",
                        paint(RED.bold(), "failed:")
                    );
                }
                for (t, want, got) in &r.row_count_mismatches {
                    anstream::eprintln!(
                        "{} table {t}: {want} rows in the manifest, {} restored",
                        paint(RED.bold(), "failed:"),
                        got.map(|g| g.to_string()).unwrap_or_else(|| "none".into())
                    );
                }
            }
            Ok(if r.ok { 0 } else { 20 })
        }
        BackupCommand::Restore {
            id,
            no_backup,
            from_database,
            lock_timeout,
        } => {
            let settings = ctx.settings(lock_timeout.as_deref())?;
            restore(
                ctx,
                &url,
                &s,
                &vault,
                &settings,
                &id,
                no_backup,
                from_database,
            )
            .await
        }
        BackupCommand::Prune { keep, keep_days } => {
            let (keep, keep_days) = (keep.or(s.keep), keep_days.or(s.keep_days));
            if keep.is_none() && keep_days.is_none() {
                return Err(Error::Usage(
                    "prune needs --keep N and/or --keep-days D (or [backup] keep / keep_days)"
                        .into(),
                ));
            }
            let mut db = ctx.connect().await?;
            let own = identity::read(db.as_mut()).await;
            db.close().await;
            // Only this database's folder: retention never reaches another database's backups,
            // nor those of unknown identity (they may be anyone's).
            let (gone, left) = match own? {
                Some(id) => {
                    let store = vault.peek(&id)?;
                    let gone = store.prune(keep, keep_days, time::OffsetDateTime::now_utc())?;
                    (gone, store.list()?.len())
                }
                None => (Vec::new(), 0),
            };
            if ctx.out.is_json() {
                ctx.out
                    .json(&serde_json::json!({ "deleted": gone, "kept": left }));
            } else {
                ctx.out.line(format!(
                    "{} deleted {} backup(s) of {}, kept {left}",
                    paint(GREEN, "✓"),
                    gone.len(),
                    url.redacted()
                ));
            }
            Ok(0)
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn restore(
    ctx: &Context,
    url: &DatabaseUrl,
    s: &BackupSettings,
    vault: &Vault,
    settings: &tidemark::engine::Settings,
    id: &str,
    no_backup: bool,
    from_database: Option<String>,
) -> Result<i32> {
    let dumper = tidemark::dumper(url)?;
    let mut db = ctx.connect().await?;
    warn_if_moved(ctx, db.as_mut()).await;
    let own = identity::read(db.as_mut()).await;
    let own = match own {
        Ok(o) => o,
        Err(e) => {
            db.close().await;
            return Err(e);
        }
    };
    let picked = pick(
        vault,
        url,
        own.as_deref(),
        from_database.as_deref(),
        id,
        "restore",
    );
    let Picked { store, m, foreign } = match picked {
        Ok(p) => p,
        Err(e) => {
            db.close().await;
            return Err(e);
        }
    };
    let target = target_of(url, own.as_deref());
    let what = if foreign {
        format!(
            "backup {} of ANOTHER database, {}, taken {}: it overwrites {target}",
            m.id,
            source_of(&m),
            m.created_at
        )
    } else if m.database_id.is_none() {
        format!(
            "backup {} of {}, taken {} before tidemark recorded database identities: it replaces {target}",
            m.id,
            source_of(&m),
            m.created_at
        )
    } else {
        format!(
            "backup {} of {}, taken {}: it replaces the database as it is now",
            m.id,
            source_of(&m),
            m.created_at
        )
    };
    if !ctx.global.yes {
        db.close().await;
        return Err(Error::Usage(format!(
            "restoring {what}; pass --yes to go ahead"
        )));
    }
    // Everything that can be checked is checked before anything changes: a wrong dialect, a
    // corrupted or foreign dump leaves the database as it is.
    if let Err(e) = backup::check_restorable(url.dialect(), dumper.as_ref(), &store, &m).await {
        db.close().await;
        return Err(e);
    }
    ctx.out.line(format!("restoring {what}"));
    struct Waiting<'a>(&'a Context);
    impl tidemark::driver::LockWait for Waiting<'_> {
        fn waiting(&mut self, holder: &str) {
            self.0.out.line(format!(
                "  waiting for the migration lock (held by {holder}); a running migration is never stopped"
            ));
        }
    }
    // The migration lock, from before the safety backup until the swap: a migration running
    // now finishes first (or the restore gives up after --lock-timeout), and none starts while
    // the database is replaced.
    let lock = match db.lock(settings.lock_timeout, &mut Waiting(ctx)).await {
        Ok(l) => l,
        Err(e) => {
            db.close().await;
            return Err(e);
        }
    };
    let prepared = async {
        // The target keeps its own identity through the restore (the restored copy is given
        // it before the swap), so it needs one now: its safety backup is filed under it.
        let own_id = match &own {
            Some(id) => id.clone(),
            None => identity::ensure(db.as_mut()).await?,
        };
        // A way back from the restore itself.
        let safety = if no_backup {
            None
        } else {
            let (_, safety) = take(
                db.as_mut(),
                vault,
                dumper.as_ref(),
                None,
                None,
                format!("before restoring {} of {}", m.id, source_of(&m)),
                Some(&settings.run_id),
                &settings.inspect,
            )
            .await?;
            ctx.out.line(format!(
                "  {} backup of the current state first: {}",
                paint(GREEN, "✓"),
                safety.id
            ));
            Some(safety.id)
        };
        if let Some(cmd) = &s.stop_writers {
            ctx.out.line(format!("  stopping writers: {cmd}"));
            backup::stop_writers(cmd)?;
        }
        Ok::<_, Error>((own_id, safety))
    }
    .await;
    let (own_id, safety) = match prepared {
        Ok(x) => x,
        Err(e) => {
            drop(lock);
            db.close().await;
            return Err(e);
        }
    };
    let started = std::time::Instant::now();
    let sp = spinner(
        &ctx.out,
        format!("restoring {} into a new database beside the live one", m.id),
    );
    let detail = serde_json::json!({
        "backup_id": m.id, "safety_backup": safety,
        "source_database": m.database, "source_database_id": m.database_id,
    });
    let r = backup::restore(
        db.as_mut(),
        dumper.as_ref(),
        &store,
        &m,
        lock,
        backup::RestoreInto {
            database_id: &own_id,
            inspect: &settings.inspect,
            journal: Some(history::JournalWrite {
                run_id: &settings.run_id,
                action: "restore",
                version: None,
                detail: Some(detail.to_string()),
                actor: &settings.actor,
            }),
        },
    )
    .await;
    drop(sp);
    db.close().await;
    if let Err(e) = r {
        let hint = safety
            .map(|s| format!("\nthe state before the restore is in backup {s}"))
            .unwrap_or_default();
        return Err(match e {
            Error::Tool(msg) => Error::Tool(format!("{msg}{hint}")),
            Error::Inconsistent(msg) => Error::Inconsistent(format!("{msg}{hint}")),
            other => Error::Tool(format!("{other}{hint}")),
        });
    }
    let ms = started.elapsed().as_millis();
    let mut db = ctx.connect().await?;
    // The restored copy was given the target's id before the swap; assigning it again records
    // where the database lives now (PostgreSQL: the side database's oid).
    let reidentified = identity::assign(db.as_mut(), &own_id).await;
    // Afterwards the schema must be what the restored history says.
    let schema = db.inspect(&settings.inspect).await;
    let h = history::read(db.as_mut()).await;
    db.close().await;
    reidentified?;
    let schema = schema?;
    let fp = schema.fingerprint();
    let matches = fp.as_str() == m.schema_fingerprint;
    // The cheap drift check of `status`: the restored schema against the fingerprint
    // the restored history recorded.
    let drift = match (h, ctx.migrations()) {
        (Ok(h), Ok(set)) => {
            let mut st = tidemark::status::Status::compute(&set, &h);
            st.set_live_fingerprint(fp.0.clone(), schema.is_empty());
            st.drift.status.as_str()
        }
        _ => "unknown",
    };
    if ctx.out.is_json() {
        ctx.out.json(&serde_json::json!({
            "restored": m.id, "safety_backup": safety, "duration_ms": ms,
            "schema_fingerprint": fp.as_str(), "matches_manifest": matches, "drift": drift,
            "database": url.redacted(), "database_id": own_id,
            "source_database": m.database, "source_database_id": m.database_id,
            "from_other_database": foreign,
        }));
    } else {
        let into = if foreign {
            format!(" over {} (it keeps its id)", target_of(url, Some(&own_id)))
        } else {
            String::new()
        };
        ctx.out.line(format!(
            "{} restored backup {} of {}{into} in {ms} ms; schema fingerprint {} the manifest's; drift {drift}",
            paint(GREEN, "✓"),
            m.id,
            source_of(&m),
            if matches { "matches" } else { "DIFFERS FROM" }
        ));
    }
    Ok(if matches { 0 } else { 20 })
}
