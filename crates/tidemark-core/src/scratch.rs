//! What a run leaves behind if it is interrupted: scratch databases (shadows, verification
//! copies, a restore's side database), unfinished dump directories. Each is named so that the
//! next run can tell whose it was (`tm_KIND_HOST_PID_EPOCH[_TARGET]`: the host and process that
//! made it, when, and for restores which database it belongs to), and registered while it
//! exists, so that a SIGINT/SIGTERM handler can remove it ([`registered`]). After a SIGKILL
//! nothing runs: the next run sweeps by name and age ([`orphaned`]).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::url::DatabaseUrl;

/// A leftover older than this is swept whoever made it (another host's run cannot be asked
/// whether it is still alive; no replay or restore takes a day).
pub const MAX_AGE_SECS: u64 = 24 * 3600;

/// Something to remove if the run is interrupted.
#[derive(Debug, Clone)]
pub enum Leftover {
    /// A database `name`, dropped through a connection to `server`.
    Database { server: DatabaseUrl, name: String },
    /// A file or directory.
    Path(PathBuf),
}

static REGISTRY: Mutex<Vec<Leftover>> = Mutex::new(Vec::new());

fn registry() -> std::sync::MutexGuard<'static, Vec<Leftover>> {
    // A panic while holding the lock poisons it; the list itself is still good.
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn register(l: Leftover) {
    registry().push(l);
}

pub fn register_database(server: &DatabaseUrl, name: &str) {
    register(Leftover::Database {
        server: server.clone(),
        name: name.to_string(),
    });
}

pub fn register_path(p: &Path) {
    register(Leftover::Path(p.to_path_buf()));
}

/// Forget a database that was dropped (or handed over, as a restore's side database is by the
/// swap).
pub fn unregister_database(name: &str) {
    registry().retain(|l| !matches!(l, Leftover::Database { name: n, .. } if n == name));
}

pub fn unregister_path(p: &Path) {
    registry().retain(|l| !matches!(l, Leftover::Path(q) if q == p));
}

/// Take everything still registered (for the signal handler).
pub fn take_registered() -> Vec<Leftover> {
    std::mem::take(&mut *registry())
}

fn epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn short_hash(s: &str) -> String {
    hex::encode(&Sha256::digest(s.as_bytes())[..4])
}

/// This host, as 8 hex digits (`/etc/hostname`, else the kernel's node name).
pub fn host_tag() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    short_hash(host.trim())
}

/// The tag of the database a restore's side or old database belongs to.
pub fn target_tag(database: &str) -> String {
    short_hash(database)
}

/// A fresh name: `tm_KIND_HOST_PID_EPOCH`, and `_TARGET` when `target` is given. At most 48
/// characters (PostgreSQL allows 63, MariaDB 64). Two names made in the same second by the same
/// process differ by a counter folded into the epoch's place.
pub fn name(kind: &str, target: Option<&str>) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let mut n = format!(
        "tm_{kind}_{}_{}_{}",
        host_tag(),
        std::process::id(),
        epoch() * 100 + seq % 100
    );
    if let Some(t) = target {
        n.push('_');
        n.push_str(&target_tag(t));
    }
    n
}

/// A parsed scratch name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scratch {
    pub kind: String,
    pub host: String,
    pub pid: u32,
    /// Unix seconds when it was made.
    pub created: u64,
    pub target: Option<String>,
}

pub fn parse(name: &str) -> Option<Scratch> {
    let rest = name.strip_prefix("tm_")?;
    let parts: Vec<&str> = rest.split('_').collect();
    if !(4..=5).contains(&parts.len()) {
        return None;
    }
    let hex8 = |s: &str| s.len() == 8 && s.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex8(parts[1]) {
        return None;
    }
    let target = match parts.get(4) {
        Some(t) if hex8(t) => Some(t.to_string()),
        Some(_) => return None,
        None => None,
    };
    Some(Scratch {
        kind: parts[0].to_string(),
        host: parts[1].to_string(),
        pid: parts[2].parse().ok()?,
        created: parts[3].parse::<u64>().ok()? / 100,
        target,
    })
}

/// Is the process that made it gone? Only known for this host; elsewhere only age tells.
pub fn orphaned(s: &Scratch) -> bool {
    let old = epoch().saturating_sub(s.created) > MAX_AGE_SECS;
    let here = s.host == host_tag();
    old || (here && s.pid != std::process::id() && !alive(s.pid))
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists() || !Path::new("/proc/self").exists()
}

/// The owner file of an unfinished dump directory: host tag and pid, so that the next run can
/// tell a dump in progress from one whose process was killed.
pub const OWNER_FILE: &str = ".owner";

pub fn write_owner(dir: &Path) -> std::io::Result<()> {
    std::fs::write(
        dir.join(OWNER_FILE),
        format!("{} {} {}\n", host_tag(), std::process::id(), epoch()),
    )
}

/// Was the unfinished directory's maker killed (or is it a day old)?
pub fn dir_orphaned(dir: &Path) -> bool {
    let owner = std::fs::read_to_string(dir.join(OWNER_FILE)).unwrap_or_default();
    let mut it = owner.split_whitespace();
    let (host, pid, created) = (it.next(), it.next(), it.next());
    match (
        host,
        pid.and_then(|p| p.parse().ok()),
        created.and_then(|c| c.parse().ok()),
    ) {
        (Some(h), Some(pid), Some(created)) => orphaned(&Scratch {
            kind: String::new(),
            host: h.to_string(),
            pid,
            created,
            target: None,
        }),
        // No owner file (written by an older tidemark): by the directory's age.
        _ => std::fs::metadata(dir)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|e| e.as_secs() > MAX_AGE_SECS),
    }
}

/// What the sweep found and did, one sentence each.
pub type Swept = Vec<String>;

/// After a SIGKILL nothing ran to clean up: remove the scratch databases whose process is gone
/// (shadows and verification copies of any database on the server; a restore's side and
/// replaced copies of this one), and say what each one means. A restore's leftovers are only
/// touched when the migration lock is free (no restore is running).
pub async fn sweep(live: &mut dyn crate::driver::Driver) -> crate::error::Result<Swept> {
    use crate::driver::{Dialect, Value};
    let mut out = Vec::new();
    let Some(db) = live.url().database() else {
        return Ok(out);
    };
    if live.dialect() == Dialect::Sqlite {
        let side = format!("{db}.tidemark-restore");
        if Path::new(&side).exists()
            && let Ok(lock) = live.lock(std::time::Duration::ZERO, &mut ()).await
        {
            let _ = lock.release().await;
            for suffix in ["-journal", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{side}{suffix}"));
            }
            if std::fs::remove_file(&side).is_ok() {
                out.push(format!(
                    "a restore of this database was interrupted before the swap: the database is as it was before it; removed the partly restored copy {side}"
                ));
            }
        }
        return Ok(out);
    }
    let sql = match live.dialect() {
        Dialect::Postgres => "SELECT datname FROM pg_database WHERE datname LIKE 'tm\\_%'",
        _ => "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'tm\\_%'",
    };
    let names: Vec<String> = live
        .query(sql, &[])
        .await
        .map_err(|e| crate::error::Error::db("could not list scratch databases", e))?
        .into_iter()
        .filter_map(|r| r.into_iter().next().and_then(Value::into_text))
        .collect();
    let mine = target_tag(&db);
    let mut lock_free = None;
    for name in names {
        let Some(s) = parse(&name) else { continue };
        if !orphaned(&s) {
            continue;
        }
        let ours = s.target.as_deref() == Some(mine.as_str());
        let what = match s.kind.as_str() {
            "shadow" => format!(
                "removed the shadow database {name} left by an interrupted run (process {})",
                s.pid
            ),
            "verify" => format!(
                "removed the verification database {name} left by an interrupted `backup verify` (process {})",
                s.pid
            ),
            "restore" | "replaced" if ours => {
                if lock_free.is_none() {
                    // The killed process's lock session ends when the server notices its
                    // connection closed, which can lag the process's death by a moment on a
                    // busy server: wait briefly instead of leaving the copy for the next run.
                    let wait = std::time::Duration::from_secs(2);
                    lock_free = Some(match live.lock(wait, &mut ()).await {
                        Ok(l) => {
                            let _ = l.release().await;
                            true
                        }
                        Err(_) => false,
                    });
                }
                if lock_free != Some(true) {
                    continue;
                }
                if s.kind == "restore" && !has_tables(live, &name).await {
                    // MariaDB: the tables moved; only the views, triggers and routines that are
                    // recreated after the move may be missing.
                    format!(
                        "a restore of this database was interrupted just after its tables were swapped in: the database holds the restored tables; if it has views, triggers or routines, run the restore again to be sure they are all there; removed {name}"
                    )
                } else if s.kind == "restore" {
                    format!(
                        "a restore of this database was interrupted before the swap: the database is as it was before it; removed the partly restored copy {name}"
                    )
                } else {
                    format!(
                        "a restore of this database was interrupted after the swap: the database is the restored one; removed the replaced copy {name}"
                    )
                }
            }
            _ => continue,
        };
        let swapped = s.kind == "replaced" || (s.kind == "restore" && what.contains("just after"));
        match live.drop_database(&name).await {
            Ok(()) => out.push(what),
            Err(e) => out.push(format!("could not remove {name}: {e}")),
        }
        // The restored copy was given the database's identity where it was made (beside the
        // live one); the interrupted restore did not get to record where it lives now.
        if swapped && let Ok(Some(id)) = crate::identity::read(live).await {
            let _ = crate::identity::assign(live, &id).await;
        }
    }
    Ok(out)
}

/// Does the database `name` hold base tables? (PostgreSQL: it exists at all, since its side
/// copy is renamed, never emptied.)
async fn has_tables(live: &mut dyn crate::driver::Driver, name: &str) -> bool {
    use crate::driver::{Dialect, Value};
    if live.dialect() != Dialect::MySql {
        return true;
    }
    live.query(
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE'",
        &[name.into()],
    )
    .await
    .ok()
    .and_then(|r| r.first().and_then(|r| r.first()).and_then(Value::as_i64))
    .is_some_and(|n| n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let n = name("shadow", None);
        assert!(n.len() <= 48, "{n}");
        let s = parse(&n).unwrap();
        assert_eq!(s.kind, "shadow");
        assert_eq!(s.pid, std::process::id());
        assert!(!orphaned(&s), "our own is not an orphan");
        let r = name("restore", Some("shop"));
        assert!(r.len() <= 48, "{r}");
        assert_eq!(parse(&r).unwrap().target, Some(target_tag("shop")));
        assert_eq!(parse("tm_shadow_1234_abc"), None);
        assert_eq!(parse("users"), None);
        let dead = Scratch {
            kind: "shadow".into(),
            host: host_tag(),
            pid: u32::MAX - 1,
            created: epoch(),
            target: None,
        };
        assert!(orphaned(&dead));
        let elsewhere = Scratch {
            host: "00000000".into(),
            ..dead
        };
        assert!(
            !orphaned(&elsewhere),
            "another host's recent one is left alone"
        );
    }
}
