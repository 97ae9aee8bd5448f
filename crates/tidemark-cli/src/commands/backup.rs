//! `backup create | list | verify | restore | prune`, and the backup `up`/`down` take first.

use async_trait::async_trait;
use tidemark::backup::{self, Manifest, Store, Subject};
use tidemark::engine::BeforeChange;
use tidemark::plan::Plan;
use tidemark::status::Status;
use tidemark::{DatabaseUrl, Driver, Dumper, Error, Result, history};

use crate::cli::BackupCommand;
use crate::context::{BackupSettings, Context};
use crate::output::json::{BackupDoc, BackupListDoc};
use crate::output::progress::spinner;
use crate::output::{BOLD, DIM, GREEN, RED, paint};

pub fn open_store(s: &BackupSettings, ctx: &Context) -> Result<Store> {
    if ["/tmp", "/var/tmp", "/dev/shm"]
        .iter()
        .any(|t| s.dir.starts_with(t))
    {
        ctx.out.warn(&format!(
            "backups go to {}, temporary storage that a reboot empties",
            s.dir.display()
        ));
    }
    Store::open(&s.dir)
}

fn human_size(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// The backup `up` and `down` take under the lock before they change anything.
pub struct BackupFirst<'a> {
    pub ctx: &'a Context,
    pub store: Store,
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
            store: open_store(&s, ctx)?,
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
        let m = backup::create(
            driver,
            self.dumper.as_ref(),
            &self.store,
            Subject {
                history_head: status.current_version,
                reason: format!(
                    "before {} migration(s) (run {})",
                    plan.steps.len(),
                    self.run_id
                ),
                run_id: Some(&self.run_id),
                inspect: &self.inspect,
            },
        )
        .await;
        drop(sp);
        let m = m.map_err(|e| match e {
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
                    self.store.dir().display()
                )
            )
        ));
        let pruned = self.store.prune(
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

fn resolve(store: &Store, id: &str) -> Result<Manifest> {
    if id == "latest" {
        return store.latest()?.ok_or_else(|| {
            Error::Usage(format!("there are no backups in {}", store.dir().display()))
        });
    }
    store.get(id)
}

pub async fn run(ctx: &Context, cmd: BackupCommand) -> Result<i32> {
    let url = ctx.database_url()?;
    let s = ctx.backup_settings(&url)?;
    let store = open_store(&s, ctx)?;
    let settings = ctx.settings(None)?;
    match cmd {
        BackupCommand::List => {
            let all = store.list()?;
            if ctx.out.is_json() {
                ctx.out.json(&BackupListDoc::new(&store, &all));
            } else if all.is_empty() {
                ctx.out
                    .line(format!("no backups yet in {}", store.dir().display()));
            } else {
                ctx.out
                    .line(paint(DIM, format!("{}", store.dir().display())));
                ctx.out.line(paint(
                    DIM,
                    format!(
                        "  {:<22}  {:<20}  {:>10}  {:>8}  {:<12}  {}",
                        "ID", "CREATED (UTC)", "SIZE", "HEAD", "FINGERPRINT", "REASON"
                    ),
                ));
                for m in &all {
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
            Ok(0)
        }
        BackupCommand::Create { reason } => {
            let mut db = ctx.connect().await?;
            let dumper = tidemark::dumper(&url)?;
            let r = async {
                let head = history::read(db.as_mut()).await.ok().and_then(|h| {
                    let set = ctx.migrations().ok()?;
                    tidemark::status::Status::compute(&set, &h).current_version
                });
                let sp = spinner(&ctx.out, "dumping".into());
                let m = backup::create(
                    db.as_mut(),
                    dumper.as_ref(),
                    &store,
                    Subject {
                        history_head: head,
                        reason,
                        run_id: Some(&settings.run_id),
                        inspect: &settings.inspect,
                    },
                )
                .await;
                drop(sp);
                let m = m?;
                // Journal it when tidemark already keeps a journal here (never create tables
                // just to say so).
                if history::exists(db.as_mut()).await.unwrap_or(false) {
                    let detail = serde_json::json!({ "backup_id": m.id, "reason": m.reason });
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
                Ok::<_, Error>(m)
            }
            .await;
            db.close().await;
            let m = r?;
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
        BackupCommand::Verify { id } => {
            let m = resolve(&store, &id)?;
            let mut db = ctx.connect().await?;
            let dumper = tidemark::dumper(&url)?;
            let sp = spinner(
                &ctx.out,
                format!("restoring {} into a scratch database", m.id),
            );
            let r =
                backup::verify(db.as_mut(), dumper.as_ref(), &store, &m, &settings.inspect).await;
            drop(sp);
            db.close().await;
            let r = r?;
            if ctx.out.is_json() {
                ctx.out.json(&r);
            } else if r.ok {
                ctx.out.line(format!(
                    "{} backup {} restores: checksum, schema fingerprint and the row counts of {} table(s) match ({} ms)",
                    paint(GREEN, "✓"),
                    m.id,
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
        BackupCommand::Restore { id, no_backup } => {
            let m = resolve(&store, &id)?;
            if !ctx.global.yes {
                return Err(Error::Usage(format!(
                    "restoring replaces the database {url} with backup {} ({}); pass --yes to go ahead",
                    m.id, m.created_at
                )));
            }
            store.check(&m)?;
            let dumper = tidemark::dumper(&url)?;
            dumper.check_tools().await?;
            // A way back from the restore itself.
            let safety = if no_backup {
                None
            } else {
                let mut db = ctx.connect().await?;
                let r = backup::create(
                    db.as_mut(),
                    dumper.as_ref(),
                    &store,
                    Subject {
                        history_head: None,
                        reason: format!("before restoring {}", m.id),
                        run_id: Some(&settings.run_id),
                        inspect: &settings.inspect,
                    },
                )
                .await;
                db.close().await;
                let safety = r?;
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
            let started = std::time::Instant::now();
            let sp = spinner(&ctx.out, format!("restoring {}", m.id));
            let r = backup::restore(dumper.as_ref(), &store, &m).await;
            drop(sp);
            if let Err(e) = r {
                let hint = safety
                    .map(|s| format!("\nthe state before the restore is in backup {s}"))
                    .unwrap_or_default();
                return Err(match e {
                    Error::Tool(msg) => Error::Tool(format!("{msg}{hint}")),
                    other => Error::Tool(format!("{other}{hint}")),
                });
            }
            let ms = started.elapsed().as_millis();
            // Afterwards the schema must be what the restored history says.
            let mut db = ctx.connect().await?;
            let schema = db.inspect(&settings.inspect).await;
            let h = history::read(db.as_mut()).await;
            let journal = async {
                if history::exists(db.as_mut()).await.unwrap_or(false) {
                    let detail = serde_json::json!({ "backup_id": m.id, "safety_backup": safety });
                    history::journal(
                        db.as_mut(),
                        &history::JournalWrite {
                            run_id: &settings.run_id,
                            action: "restore",
                            version: None,
                            detail: Some(detail.to_string()),
                            actor: &settings.actor,
                        },
                    )
                    .await?;
                }
                Ok::<_, Error>(())
            }
            .await;
            db.close().await;
            journal?;
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
                }));
            } else {
                ctx.out.line(format!("{} restored backup {} in {ms} ms; schema fingerprint {} the manifest's; drift {drift}", paint(GREEN, "✓"), m.id, if matches { "matches" } else { "DIFFERS FROM" }));
            }
            Ok(if matches { 0 } else { 20 })
        }
        BackupCommand::Prune { keep, keep_days } => {
            let (keep, keep_days) = (keep.or(s.keep), keep_days.or(s.keep_days));
            if keep.is_none() && keep_days.is_none() {
                return Err(Error::Usage(
                    "prune needs --keep N and/or --keep-days D (or [backup] keep / keep_days)"
                        .into(),
                ));
            }
            let gone = store.prune(keep, keep_days, time::OffsetDateTime::now_utc())?;
            let left = store.list()?.len();
            if ctx.out.is_json() {
                ctx.out
                    .json(&serde_json::json!({ "deleted": gone, "kept": left }));
            } else {
                ctx.out.line(format!(
                    "{} deleted {} backup(s), kept {left}",
                    paint(GREEN, "✓"),
                    gone.len()
                ));
            }
            Ok(0)
        }
    }
}
