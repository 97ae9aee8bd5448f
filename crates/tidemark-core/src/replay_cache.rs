//! The replay cache: what a replay on a shadow database learnt, kept on disk so that the next
//! `status`, `repair`, `import`, `drift` or `baseline` does not replay again.
//!
//! The schema after the k-th migration depends only on the first k migrations (their scripts,
//! in order), on the schema the shadow starts from (the baseline schema, if any), on the kind
//! and version of the server the replay runs on, on what is inspected and on the inspection
//! code itself. A state is filed under a key that is the SHA-256 of exactly those: the key of
//! state k is the hash of the key of state k−1 and migration k's version and checksum, and the
//! key of the empty start hashes the rest. A changed migration file changes the key of its
//! state and of every later one, so a stale entry is never found, never mind used.
//!
//! What is kept per state is what the evidence needs ([`crate::replay::Trail`]): the state's
//! fingerprint and the footprint of the migration that led to it; for the last state of a
//! replay also its whole schema (what `drift` and `baseline` compare with). Entries are written
//! to a temporary file and renamed into place, so a reader never sees half an entry; an entry
//! that does not parse is a miss (and is removed). The directory is safe to delete at any time,
//! and is pruned to a size bound, least recently used first.
//!
//! Where: `TIDEMARK_CACHE_DIR` (`off` turns the cache off), else `$XDG_CACHE_HOME/tidemark/replay`,
//! else `~/.cache/tidemark/replay`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tidemark_schema::{Object, Schema};

use crate::driver::{Dialect, InspectOptions};
use crate::migration::Migration;
use crate::replay::Footprint;

/// Bumped whenever what an entry holds, or how a key is made, changes.
const FORMAT: &str = "tidemark replay cache v1";

/// Default bound on the directory's size; `TIDEMARK_CACHE_MAX_MB` changes it.
const DEFAULT_MAX_BYTES: u64 = 512 * 1024 * 1024;

/// The cache directory as the environment says: `None` when it is turned off or there is no
/// home directory to put it in.
pub fn default_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("TIDEMARK_CACHE_DIR") {
        if d.is_empty() || d == "off" {
            return None;
        }
        return Some(PathBuf::from(d));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("tidemark").join("replay"))
}

/// One replayed state as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedState {
    /// The migration after which this is the state (`None`: the empty start); for people who
    /// look into the directory, and checked on load.
    pub version: Option<i64>,
    pub fingerprint: String,
    /// The footprint of the migration that led here (empty for the start).
    #[serde(default)]
    pub footprint: Vec<FootprintEntry>,
    /// The objects of the start state (only for the start).
    #[serde(default)]
    pub start: Vec<String>,
}

/// One object of a footprint: its path, its state before and after (absent: `None`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FootprintEntry {
    pub path: String,
    pub before: Option<StoredObject>,
    pub after: Option<StoredObject>,
}

/// An [`Object`] as stored: its field names are owned strings on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredObject {
    pub path: String,
    pub parent: Option<String>,
    pub fields: Vec<(String, Option<String>)>,
}

impl StoredObject {
    fn of(o: &Object) -> StoredObject {
        StoredObject {
            path: o.path.clone(),
            parent: o.parent.clone(),
            fields: o
                .fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        }
    }

    fn object(self) -> Option<Object> {
        let mut fields = Vec::with_capacity(self.fields.len());
        for (k, v) in self.fields {
            fields.push((intern(&k)?, v));
        }
        Some(Object {
            path: self.path,
            parent: self.parent,
            fields,
        })
    }
}

/// Field names are `&'static str` in the schema model; names read back from the cache are
/// made static once each. The model has a few dozen; more than this many distinct names means
/// the entry is not one tidemark wrote, and it is treated as a miss.
fn intern(name: &str) -> Option<&'static str> {
    static NAMES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let mut names = NAMES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(n) = names.get(name) {
        return Some(n);
    }
    if names.len() >= 512 {
        return None;
    }
    let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
    names.insert(leaked);
    Some(leaked)
}

impl CachedState {
    pub fn new(version: Option<i64>, fingerprint: String, footprint: &Footprint) -> CachedState {
        CachedState {
            version,
            fingerprint,
            footprint: footprint
                .objects
                .iter()
                .map(|(p, (b, a))| FootprintEntry {
                    path: p.clone(),
                    before: b.as_ref().map(StoredObject::of),
                    after: a.as_ref().map(StoredObject::of),
                })
                .collect(),
            start: Vec::new(),
        }
    }

    /// The footprint as the evidence uses it; `None` when an entry is malformed.
    pub fn footprint(self) -> Option<Footprint> {
        let mut objects = BTreeMap::new();
        for e in self.footprint {
            let before = match e.before {
                Some(o) => Some(o.object()?),
                None => None,
            };
            let after = match e.after {
                Some(o) => Some(o.object()?),
                None => None,
            };
            objects.insert(e.path, (before, after));
        }
        Some(Footprint { objects })
    }
}

/// The cache for one kind of replay: one server version, one dialect, one inspection scope,
/// one baseline schema.
#[derive(Debug, Clone)]
pub struct ReplayCache {
    dir: PathBuf,
    /// The key of the empty start.
    root: String,
}

impl ReplayCache {
    /// `server_version` is that of the server the shadow database is on; `seed` the baseline
    /// schema's text the shadow starts from.
    pub fn new(
        dir: PathBuf,
        dialect: Dialect,
        server_version: &str,
        opts: &InspectOptions,
        seed: Option<&str>,
    ) -> ReplayCache {
        let mut h = Sha256::new();
        for part in [
            FORMAT,
            env!("CARGO_PKG_VERSION"),
            &dialect.to_string(),
            server_version,
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        for s in &opts.schemas {
            h.update(b"schema:");
            h.update(s.as_bytes());
            h.update([0]);
        }
        if let Some(seed) = seed {
            h.update(b"seed:");
            h.update(Sha256::digest(seed.as_bytes()));
        }
        ReplayCache {
            dir,
            root: hex::encode(h.finalize()),
        }
    }

    /// `keys[k]`: the key of the state after the first k migrations (`keys[0]`: the start).
    pub fn keys(&self, migrations: &[&Migration]) -> Vec<String> {
        let mut keys = Vec::with_capacity(migrations.len() + 1);
        keys.push(self.root.clone());
        for m in migrations {
            let prev = keys.last().map(String::as_str).unwrap_or_default();
            let mut h = Sha256::new();
            h.update(prev.as_bytes());
            h.update(m.version.to_le_bytes());
            h.update(m.checksum.as_bytes());
            h.update([u8::from(m.transactional)]);
            keys.push(hex::encode(h.finalize()));
        }
        keys
    }

    fn path(&self, kind: &str, key: &str) -> PathBuf {
        // Two levels, so that no directory holds tens of thousands of files.
        self.dir.join(&key[..2]).join(format!("{key}.{kind}.json"))
    }

    fn load<T: serde::de::DeserializeOwned>(&self, kind: &str, key: &str) -> Option<T> {
        let p = self.path(kind, key);
        let bytes = std::fs::read(&p).ok()?;
        match serde_json::from_slice(&bytes) {
            Ok(v) => {
                touch(&p);
                Some(v)
            }
            Err(e) => {
                tracing::debug!(
                    "replay cache: {} does not parse ({e}); removed",
                    p.display()
                );
                let _ = std::fs::remove_file(&p);
                None
            }
        }
    }

    /// Written to a temporary file and renamed into place. A cache that cannot be written is
    /// not an error: the next run replays again.
    fn store<T: Serialize>(&self, kind: &str, key: &str, value: &T) {
        let p = self.path(kind, key);
        let tmp = p.with_extension(format!("tmp{}", std::process::id()));
        let result = (|| -> std::io::Result<()> {
            std::fs::create_dir_all(p.parent().unwrap_or(&self.dir))?;
            let bytes = serde_json::to_vec(value)?;
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, &p)
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            tracing::debug!("replay cache: could not write {}: {e}", p.display());
        }
    }

    /// The state stored under `key`, if it is the state after `version`.
    pub fn state(&self, key: &str, version: Option<i64>) -> Option<CachedState> {
        self.load::<CachedState>("state", key)
            .filter(|s| s.version == version)
    }

    pub fn store_state(&self, key: &str, state: &CachedState) {
        self.store("state", key, state);
    }

    /// The whole schema of the state under `key`.
    pub fn schema(&self, key: &str) -> Option<Schema> {
        self.load("schema", key)
    }

    pub fn store_schema(&self, key: &str, schema: &Schema) {
        self.store("schema", key, schema);
    }

    /// What the repeatable migrations create on top of the state under `key`.
    pub fn created(&self, key: &str) -> Option<BTreeSet<String>> {
        self.load("created", key)
    }

    pub fn store_created(&self, key: &str, created: &BTreeSet<String>) {
        self.store("created", key, created);
    }

    /// The key of `repeatables` run on top of the state under `key`.
    pub fn with_repeatables(key: &str, repeatables: &[&Migration]) -> String {
        let mut h = Sha256::new();
        h.update(b"repeatables:");
        h.update(key.as_bytes());
        for r in repeatables {
            h.update(r.name.as_bytes());
            h.update([0]);
            h.update(r.checksum.as_bytes());
        }
        hex::encode(h.finalize())
    }

    /// Keep the directory under its size bound (`TIDEMARK_CACHE_MAX_MB`, default 512): the
    /// least recently used entries go first, down to three quarters of the bound.
    pub fn prune(&self) {
        let max = std::env::var("TIDEMARK_CACHE_MAX_MB")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map(|mb| mb * 1024 * 1024)
            .unwrap_or(DEFAULT_MAX_BYTES);
        prune_dir(&self.dir, max);
    }
}

/// Mark an entry as used (its modification time is its last use).
fn touch(p: &Path) {
    if let Ok(f) = std::fs::File::options().append(true).open(p) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
}

fn prune_dir(dir: &Path, max: u64) {
    let mut files = Vec::new();
    let mut total = 0u64;
    let Ok(subdirs) = std::fs::read_dir(dir) else {
        return;
    };
    for sub in subdirs.flatten() {
        let Ok(entries) = std::fs::read_dir(sub.path()) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(md) = e.metadata() else { continue };
            if !md.is_file() {
                continue;
            }
            total += md.len();
            let used = md.modified().unwrap_or(std::time::UNIX_EPOCH);
            files.push((used, md.len(), e.path()));
        }
    }
    if total <= max {
        return;
    }
    files.sort();
    let target = max / 4 * 3;
    for (_, len, p) in files {
        if total <= target {
            break;
        }
        if std::fs::remove_file(&p).is_ok() {
            total = total.saturating_sub(len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(dir: &Path, version: &str) -> ReplayCache {
        ReplayCache::new(
            dir.to_path_buf(),
            Dialect::Postgres,
            version,
            &InspectOptions::default(),
            None,
        )
    }

    #[test]
    fn the_key_changes_with_the_server_the_scope_and_the_seed() {
        let d = tempfile::tempdir().unwrap();
        let a = cache(d.path(), "15.2");
        assert_eq!(a.root, cache(d.path(), "15.2").root);
        assert_ne!(a.root, cache(d.path(), "16.1").root);
        let scoped = ReplayCache::new(
            d.path().into(),
            Dialect::Postgres,
            "15.2",
            &InspectOptions {
                schemas: vec!["app".into()],
            },
            None,
        );
        assert_ne!(a.root, scoped.root);
        let seeded = ReplayCache::new(
            d.path().into(),
            Dialect::Postgres,
            "15.2",
            &InspectOptions::default(),
            Some("CREATE TABLE t (id int);"),
        );
        assert_ne!(a.root, seeded.root);
        let mysql = ReplayCache::new(
            d.path().into(),
            Dialect::MySql,
            "15.2",
            &InspectOptions::default(),
            None,
        );
        assert_ne!(a.root, mysql.root);
    }

    #[test]
    fn a_state_round_trips_and_a_malformed_entry_is_a_miss_and_removed() {
        let d = tempfile::tempdir().unwrap();
        let c = cache(d.path(), "15.2");
        let before = Object {
            path: "table t".into(),
            parent: None,
            fields: vec![],
        };
        let after = Object {
            path: "column t.id".into(),
            parent: Some("table t".into()),
            fields: vec![("type", Some("integer".into())), ("not_null", None)],
        };
        let mut fp = Footprint::default();
        fp.objects
            .insert("table t".into(), (Some(before.clone()), None));
        fp.objects
            .insert("column t.id".into(), (None, Some(after.clone())));
        let key = c.root.clone();
        c.store_state(&key, &CachedState::new(Some(3), "abc".into(), &fp));
        assert!(c.state(&key, Some(4)).is_none(), "another version's state");
        let s = c.state(&key, Some(3)).expect("stored");
        assert_eq!(s.fingerprint, "abc");
        let back = s.footprint().expect("well formed");
        assert_eq!(back.objects["table t"], (Some(before), None));
        assert_eq!(back.objects["column t.id"], (None, Some(after)));

        let p = c.path("state", &key);
        std::fs::write(&p, b"{ not json").unwrap();
        assert!(c.state(&key, Some(3)).is_none());
        assert!(!p.exists(), "a malformed entry is removed");
    }

    #[test]
    fn pruning_removes_the_least_recently_used_first() {
        let d = tempfile::tempdir().unwrap();
        let sub = d.path().join("ab");
        std::fs::create_dir_all(&sub).unwrap();
        let old = sub.join("old.state.json");
        let new = sub.join("new.state.json");
        std::fs::write(&old, vec![b'x'; 600]).unwrap();
        std::fs::write(&new, vec![b'x'; 600]).unwrap();
        let long_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        std::fs::File::options()
            .append(true)
            .open(&old)
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        prune_dir(d.path(), 1000);
        assert!(!old.exists());
        assert!(new.exists());
        prune_dir(d.path(), 1000);
        assert!(new.exists(), "under the bound nothing goes");
    }
}
