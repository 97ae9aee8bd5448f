//! Replay on a shadow database: apply migrations one at a time on a scratch database and
//! inspect after each. One machine serves `drift` (the schema the history says the database
//! should have), `repair` and `import` (which migrations' footprints are really in the live
//! schema), `baseline` (does the live schema equal state V) and lint's reversibility check.

use std::collections::BTreeMap;

use tidemark_schema::{Object, Schema};

use crate::driver::{Dialect, Driver, InspectOptions};
use crate::error::{Error, Result};
use crate::migration::{Migration, MigrationSet};
use crate::replay_cache::{CachedState, ReplayCache};
use crate::url::DatabaseUrl;

/// A scratch database to replay migrations on, dropped by [`Shadow::close`].
pub struct Shadow {
    pub driver: Box<dyn Driver>,
    /// The connection that created the scratch database and the name to drop.
    owner: Option<(Box<dyn Driver>, String)>,
    /// The schema the migrations start from, run on the shadow first (and again after a
    /// rebuild): for a history that begins at a baseline whose schema is in no migration file.
    seed: Option<crate::migration::Script>,
}

/// `tm_shadow_HOST_PID_EPOCH`: the next run can tell an orphan ([`crate::scratch`]).
fn scratch_name() -> String {
    crate::scratch::name("shadow", None)
}

impl Shadow {
    /// Open a shadow for `live`: on SQLite an in-memory database; elsewhere a scratch database
    /// created on the server of `shadow_url` if given (any database there the user may connect
    /// to; tidemark creates and drops its own scratch database beside it), else on the live
    /// server itself.
    pub async fn open(live: &mut dyn Driver, shadow_url: Option<&DatabaseUrl>) -> Result<Shadow> {
        if let Some(u) = shadow_url
            && u.dialect() != live.dialect()
        {
            return Err(Error::Usage(format!(
                "the shadow database {u} is {} but the database is {}; they must be the same kind",
                u.dialect(),
                live.dialect()
            )));
        }
        if live.dialect() == Dialect::Sqlite && shadow_url.is_none() {
            let url = DatabaseUrl::parse("sqlite::memory:")?;
            return Ok(Shadow {
                driver: live.connect_other(&url).await?,
                owner: None,
                seed: None,
            });
        }
        let mut owner = match shadow_url {
            Some(u) => live.connect_other(u).await?,
            None => live.connect_other(live.url()).await?,
        };
        let name = scratch_name();
        // Registered before it exists: a signal between CREATE and the registration would
        // otherwise leave it (dropping a database that is not there is harmless).
        crate::scratch::register_database(owner.url(), &name);
        let url = owner.create_database(&name).await.map_err(|e| {
            Error::Usage(format!(
                "could not create a shadow database to replay the migrations on ({e}); \
                 grant CREATE DATABASE, or point --shadow-url / [shadow] url at a server where tidemark may create one"
            ))
        })?;
        match live.connect_other(&url).await {
            Ok(driver) => Ok(Shadow {
                driver,
                owner: Some((owner, name)),
                seed: None,
            }),
            Err(e) => {
                let _ = owner.drop_database(&name).await;
                crate::scratch::unregister_database(&name);
                Err(e)
            }
        }
    }

    /// A shadow on a database the caller made (and drops): e.g. a drill's scratch database,
    /// which its sweeper knows by name. [`Shadow::close`] only closes the connection.
    pub fn on(driver: Box<dyn Driver>) -> Shadow {
        Shadow {
            driver,
            owner: None,
            seed: None,
        }
    }

    /// Open a shadow as [`Shadow::open`] does, and run the baseline schema of `settings` on it
    /// first when one is configured.
    pub async fn open_for(
        live: &mut dyn Driver,
        settings: &crate::engine::Settings,
        shadow_url: Option<&DatabaseUrl>,
    ) -> Result<Shadow> {
        let seed = match &settings.shadow_baseline {
            Some(p) => Some(read_seed(p)?),
            None => None,
        };
        let mut shadow = Shadow::open(live, shadow_url).await?;
        shadow.seed = seed;
        if let Err(e) = shadow.run_seed().await {
            shadow.close().await;
            return Err(e);
        }
        Ok(shadow)
    }

    async fn run_seed(&mut self) -> Result<()> {
        let Some(seed) = &self.seed else {
            return Ok(());
        };
        let d = self.driver.as_mut();
        for s in seed.statements(d.dialect())? {
            d.run(&s.text).await.map_err(|e| {
                Error::Inconsistent(format!(
                    "the baseline schema does not load on the shadow database: {}:{}: {e}",
                    seed.path.display(),
                    s.line
                ))
            })?;
        }
        Ok(())
    }

    /// Drop the scratch database.
    pub async fn close(self) {
        self.driver.close().await;
        if let Some((mut owner, name)) = self.owner {
            match owner.drop_database(&name).await {
                Ok(()) => crate::scratch::unregister_database(&name),
                Err(e) => tracing::warn!("could not drop the shadow database {name}: {e}"),
            }
            owner.close().await;
        }
    }

    /// Apply one migration's up script (in a transaction where the database allows).
    pub async fn apply(&mut self, m: &Migration) -> Result<()> {
        self.run_script(m, &m.up).await.map_err(|f| {
            Error::Inconsistent(format!(
                "the migrations do not replay on an empty database: migration {} ({}) failed on the shadow at {}:{}: {}\n  \
                 drift and repair compare the live schema with a replay, so every migration must apply to an empty database",
                m.version,
                m.name,
                m.up.path.display(),
                f.line,
                f.message
            ))
        })
    }

    /// Run a script of a migration on the shadow, in a transaction where the database allows;
    /// a failing statement is reported with its line.
    async fn run_script(
        &mut self,
        m: &Migration,
        script: &crate::migration::Script,
    ) -> std::result::Result<(), ScriptFailure> {
        let d = self.driver.as_mut();
        let stmts = script.statements(d.dialect()).map_err(|e| ScriptFailure {
            line: 0,
            message: e.to_string(),
            partial: false,
        })?;
        let caps = d.caps();
        let tx = m
            .run_mode(
                script,
                d.dialect(),
                caps.transactional_ddl,
                &caps.server_version,
            )
            .map_err(|e| ScriptFailure {
                line: 0,
                message: e.to_string(),
                partial: false,
            })?
            .is_transaction();
        // A file that controls its own transaction runs as written; after a failure inside it
        // the session must be rolled back before anything else runs on it.
        let mut own_open = false;
        if tx {
            d.begin().await.map_err(|e| ScriptFailure {
                line: 0,
                message: e.to_string(),
                partial: false,
            })?;
        }
        for (i, s) in stmts.iter().enumerate() {
            if !tx && crate::split::is_transaction_control(&s.text) {
                own_open = crate::split::starts_transaction(&s.text);
            }
            if let Err(e) = d.run(&s.text).await {
                if tx || own_open {
                    let _ = d.rollback().await;
                }
                return Err(ScriptFailure {
                    line: s.line,
                    message: e.to_string(),
                    partial: !tx && i > 0,
                });
            }
        }
        if tx {
            d.commit().await.map_err(|e| ScriptFailure {
                line: 0,
                message: e.to_string(),
                partial: false,
            })?;
        }
        Ok(())
    }

    /// Start again from an empty database and apply `migrations`.
    pub async fn rebuild(&mut self, migrations: &[Migration]) -> Result<()> {
        match &mut self.owner {
            Some((owner, name)) => {
                owner.drop_database(name).await?;
                let url = owner.create_database(name).await?;
                let fresh = owner.connect_other(&url).await?;
                let old = std::mem::replace(&mut self.driver, fresh);
                old.close().await;
            }
            None => {
                let fresh = self
                    .driver
                    .connect_other(&DatabaseUrl::parse("sqlite::memory:")?)
                    .await?;
                let old = std::mem::replace(&mut self.driver, fresh);
                old.close().await;
            }
        }
        self.run_seed().await?;
        for m in migrations {
            self.apply(m).await?;
        }
        Ok(())
    }

    pub async fn inspect(&mut self, opts: &InspectOptions) -> Result<Schema> {
        self.driver.inspect(opts).await
    }
}

/// A baseline schema file (e.g. `pg_dump --schema-only`, `mariadb-dump --no-data`,
/// `sqlite3 .schema`), with the client's own meta-commands (`\\connect`, `\\restrict`, lines
/// that start with a backslash) left out: they are not SQL.
fn read_seed(path: &std::path::Path) -> Result<crate::migration::Script> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::Usage(format!(
            "cannot read the baseline schema {}: {e}",
            path.display()
        ))
    })?;
    let text = text
        .strip_prefix('\u{feff}')
        .unwrap_or(&text)
        .replace("\r\n", "\n");
    // Blank, not removed, so that every line keeps its number for messages.
    let sql: Vec<&str> = text
        .split('\n')
        .map(|l| {
            if l.trim_start().starts_with('\\') {
                ""
            } else {
                l
            }
        })
        .collect();
    Ok(crate::migration::Script {
        path: path.to_path_buf(),
        sql: sql.join("\n"),
        first_line: 1,
    })
}

/// A script that failed on the shadow.
#[derive(Debug)]
struct ScriptFailure {
    line: usize,
    message: String,
    /// Statements before it took effect and could not be rolled back.
    partial: bool,
}

/// What applying a migration's up script and then its down script did on the shadow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoundTrip {
    /// The schema after the down script equals the schema before the up script.
    Clean,
    /// What differs, one line per object (`column users.role_id: unexpected`).
    Residue(Vec<String>),
    /// The down script failed at this line of its file.
    DownFailed { line: usize, message: String },
}

/// For every migration with a down script, in order: up, down, and compare with the state
/// before the up. Where DDL is transactional the down script runs in a transaction that is
/// rolled back after the inspection, so the shadow is back at the state after the up; elsewhere
/// the up is applied again (and after a residue the shadow is rebuilt from scratch).
pub async fn round_trips(
    shadow: &mut Shadow,
    set: &MigrationSet,
    opts: &InspectOptions,
) -> Result<BTreeMap<i64, RoundTrip>> {
    let mut out = BTreeMap::new();
    let dialect = shadow.driver.dialect();
    let transactional_ddl = shadow.driver.caps().transactional_ddl;
    for (k, m) in set.migrations.iter().enumerate() {
        let Some(down) = m.usable_down(dialect) else {
            shadow.apply(m).await?;
            continue;
        };
        let before = shadow.inspect(opts).await?;
        shadow.apply(m).await?;
        let in_tx = transactional_ddl
            && m.run_mode(
                down,
                dialect,
                transactional_ddl,
                &shadow.driver.caps().server_version,
            )?
            .is_transaction();
        if in_tx {
            let d = shadow.driver.as_mut();
            d.begin()
                .await
                .map_err(|e| Error::db("shadow: could not begin", e))?;
            let mut failed = None;
            for s in down.statements(dialect)? {
                if let Err(e) = d.run(&s.text).await {
                    failed = Some(RoundTrip::DownFailed {
                        line: s.line,
                        message: e.to_string(),
                    });
                    break;
                }
            }
            let outcome = match failed {
                Some(f) => f,
                None => {
                    let after = d.inspect(opts).await?;
                    residue(&before, &after)
                }
            };
            d.rollback()
                .await
                .map_err(|e| Error::db("shadow: could not roll back", e))?;
            out.insert(m.version, outcome);
            continue;
        }
        match shadow.run_script(m, down).await {
            Ok(()) => {
                let after = shadow.inspect(opts).await?;
                let outcome = residue(&before, &after);
                if outcome == RoundTrip::Clean {
                    shadow.apply(m).await?;
                } else {
                    shadow.rebuild(&set.migrations[..=k]).await?;
                }
                out.insert(m.version, outcome);
            }
            Err(f) => {
                out.insert(
                    m.version,
                    RoundTrip::DownFailed {
                        line: f.line,
                        message: f.message,
                    },
                );
                if f.partial {
                    shadow.rebuild(&set.migrations[..=k]).await?;
                }
            }
        }
    }
    Ok(out)
}

fn residue(before: &Schema, after: &Schema) -> RoundTrip {
    let d = tidemark_schema::diff(before, after);
    if d.is_empty() {
        RoundTrip::Clean
    } else {
        RoundTrip::Residue(d.changes.iter().map(|c| c.to_string()).collect())
    }
}

/// The schema after each migration of a replay.
#[derive(Debug, Clone)]
pub struct State {
    /// The migration after which this is the state; `None` for the empty start.
    pub version: Option<i64>,
    pub schema: Schema,
}

/// Replay `migrations` in order, inspecting after each one. The first state is the empty
/// start (as the shadow was created).
pub async fn states(
    shadow: &mut Shadow,
    migrations: &[&Migration],
    opts: &InspectOptions,
) -> Result<Vec<State>> {
    let mut out = Vec::with_capacity(migrations.len() + 1);
    out.push(State {
        version: None,
        schema: shadow.inspect(opts).await?,
    });
    for m in migrations {
        shadow.apply(m).await?;
        out.push(State {
            version: Some(m.version),
            schema: shadow.inspect(opts).await?,
        });
    }
    Ok(out)
}

/// Replay `migrations` and inspect only at the end.
pub async fn final_schema(
    shadow: &mut Shadow,
    migrations: &[&Migration],
    opts: &InspectOptions,
) -> Result<Schema> {
    for m in migrations {
        shadow.apply(m).await?;
    }
    shadow.inspect(opts).await
}

/// The objects of a schema by path.
pub fn objects(s: &Schema) -> BTreeMap<String, Object> {
    s.objects().map(|o| (o.path.clone(), o)).collect()
}

/// A migration's footprint: every object whose state differs between before and after it.
/// Unlike [`tidemark_schema::diff`], nothing is collapsed: a new table brings all its columns.
#[derive(Debug, Clone, Default)]
pub struct Footprint {
    /// Path → (state before, state after); `None` means absent.
    pub objects: BTreeMap<String, (Option<Object>, Option<Object>)>,
}

impl Footprint {
    pub fn between(
        before: &BTreeMap<String, Object>,
        after: &BTreeMap<String, Object>,
    ) -> Footprint {
        let mut objects = BTreeMap::new();
        for (p, a) in after {
            match before.get(p) {
                Some(b) if b == a => {}
                b => {
                    objects.insert(p.clone(), (b.cloned(), Some(a.clone())));
                }
            }
        }
        for (p, b) in before {
            if !after.contains_key(p) {
                objects.insert(p.clone(), (Some(b.clone()), None));
            }
        }
        Footprint { objects }
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

/// The schema without the objects at `paths` that stand on their own (views, functions,
/// triggers, sequences, enums, domains, tables): what Flyway-style repeatable migrations
/// create is left out of the evidence about versioned ones.
pub fn without(schema: &Schema, paths: &std::collections::BTreeSet<String>) -> Schema {
    let mut s = schema.clone();
    s.views.retain(|name, v| {
        let kind = if v.materialized {
            "materialized view"
        } else {
            "view"
        };
        !paths.contains(&format!("{kind} {name}"))
    });
    s.functions
        .retain(|name, f| !paths.contains(&format!("{} {name}", f.kind)));
    s.triggers.retain(|key, t| {
        let name = key.strip_prefix(&format!("{}.", t.table)).unwrap_or(key);
        !paths.contains(&format!("trigger {name} on {}", t.table))
    });
    s.sequences
        .retain(|name, _| !paths.contains(&format!("sequence {name}")));
    s.enums
        .retain(|name, _| !paths.contains(&format!("enum {name}")));
    s.domains
        .retain(|name, _| !paths.contains(&format!("domain {name}")));
    s.tables
        .retain(|name, _| !paths.contains(&format!("table {name}")));
    s
}

/// What a replay leaves as evidence: the fingerprint of every state (index k = after the k-th
/// migration; 0 = empty) and each migration's footprint. Never every state's whole schema: that
/// grows with the square of the number of migrations (5,000 migrations took 23 GB).
#[derive(Debug, Clone, Default)]
pub struct Trail {
    pub fingerprints: Vec<String>,
    /// `footprints[k]` is migration k+1's.
    pub footprints: Vec<Footprint>,
    /// The objects of the starting state (an empty shadow may have some, e.g. PostgreSQL's
    /// extensions from the template).
    pub start: Vec<String>,
    pub stats: ReplayStats,
}

/// Where a replay's evidence came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReplayStats {
    /// Migrations whose state was taken from the replay cache.
    pub cached: usize,
    /// Migrations applied on a shadow database.
    pub replayed: usize,
}

impl Trail {
    /// Every object some state of the replay has.
    pub fn known_paths(&self) -> std::collections::BTreeSet<&String> {
        self.start
            .iter()
            .chain(self.footprints.iter().flat_map(|f| f.objects.keys()))
            .collect()
    }
}

impl Trail {
    /// From states already in memory (tests, small replays).
    pub fn of(states: &[State]) -> Trail {
        let mut t = Trail::default();
        let mut prev: Option<BTreeMap<String, Object>> = None;
        for s in states {
            t.fingerprints.push(s.schema.fingerprint().0);
            let cur = objects(&s.schema);
            match &prev {
                Some(p) => t.footprints.push(Footprint::between(p, &cur)),
                None => t.start = cur.keys().cloned().collect(),
            }
            prev = Some(cur);
        }
        t
    }
}

/// Replay every migration of the set (in order), keeping for evidence only the fingerprints
/// and footprints ([`Trail`]): one schema at a time is held.
pub async fn replay_all(
    shadow: &mut Shadow,
    set: &MigrationSet,
    opts: &InspectOptions,
) -> Result<Trail> {
    let ms: Vec<&Migration> = set.migrations.iter().collect();
    replay_from(shadow, &ms, opts, None, Trail::default()).await
}

/// The replay cache for replays that would run on `live`'s shadow, when it is on: keyed by the
/// server the shadow is on (the live one, or `shadow_url`'s), the dialect, the inspection scope
/// and the baseline schema.
pub async fn cache_for(
    live: &mut dyn Driver,
    settings: &crate::engine::Settings,
    shadow_url: Option<&DatabaseUrl>,
) -> Option<ReplayCache> {
    let dir = settings.replay_cache.clone()?;
    let version = match shadow_url {
        None => live.caps().server_version.clone(),
        Some(u) => {
            let d = live.connect_other(u).await.ok()?;
            let v = d.caps().server_version.clone();
            d.close().await;
            v
        }
    };
    let seed = match &settings.shadow_baseline {
        Some(p) => Some(read_seed(p).ok()?.sql),
        None => None,
    };
    Some(ReplayCache::new(
        dir,
        live.dialect(),
        &version,
        &settings.inspect,
        seed.as_deref(),
    ))
}

/// The longest prefix of the replay of `ms` that the cache holds, as a trail: its
/// `fingerprints` cover states 0..n (n = `fingerprints.len() - 1` migrations).
pub fn cached_prefix(cache: &ReplayCache, keys: &[String], ms: &[&Migration]) -> Trail {
    let mut t = Trail::default();
    for (k, key) in keys.iter().enumerate() {
        let version = k.checked_sub(1).map(|i| ms[i].version);
        let Some(mut s) = cache.state(key, version) else {
            break;
        };
        let fingerprint = std::mem::take(&mut s.fingerprint);
        if k == 0 {
            t.start = std::mem::take(&mut s.start);
        } else {
            let Some(f) = s.footprint() else { break };
            t.footprints.push(f);
        }
        t.fingerprints.push(fingerprint);
    }
    t.stats.cached = t.fingerprints.len().saturating_sub(1);
    t
}

/// Replay `ms` on the shadow from where `known` (a [`cached_prefix`], or empty) ends: the
/// shadow is brought to that state without inspecting (its fingerprint is checked against the
/// cache's once there), then each further migration is applied and inspected. Every state
/// learnt is stored in the cache, and the last state's whole schema too.
pub async fn replay_from(
    shadow: &mut Shadow,
    ms: &[&Migration],
    opts: &InspectOptions,
    cache: Option<(&ReplayCache, &[String])>,
    known: Trail,
) -> Result<Trail> {
    let mut t = known;
    let mut prev = loop {
        if t.fingerprints.is_empty() {
            let start = shadow.inspect(opts).await?;
            let fingerprint = start.fingerprint().0;
            let objs = objects(&start);
            t.start = objs.keys().cloned().collect();
            if let Some((c, keys)) = cache {
                let mut st = CachedState::new(None, fingerprint.clone(), &Footprint::default());
                st.start = t.start.clone();
                c.store_state(&keys[0], &st);
            }
            t.fingerprints.push(fingerprint);
            break objs;
        }
        let k = t.fingerprints.len() - 1;
        for m in &ms[..k] {
            shadow.apply(m).await?;
        }
        t.stats.replayed += k;
        let s = shadow.inspect(opts).await?;
        if s.fingerprint().0 == t.fingerprints[k] {
            break objects(&s);
        }
        // The cache says otherwise than this server: trust neither the prefix nor its entries
        // (they are overwritten as the replay goes).
        tracing::warn!(
            "the replay cache disagrees with the shadow database after migration {}; replaying from the start",
            ms[k - 1].version
        );
        shadow.rebuild(&[]).await?;
        t = Trail {
            stats: ReplayStats {
                replayed: t.stats.replayed,
                ..ReplayStats::default()
            },
            ..Trail::default()
        };
    };
    let first = t.fingerprints.len() - 1;
    for (i, m) in ms.iter().enumerate().skip(first) {
        shadow.apply(m).await?;
        t.stats.replayed += 1;
        let s = shadow.inspect(opts).await?;
        let fingerprint = s.fingerprint().0;
        let cur = objects(&s);
        let f = Footprint::between(&prev, &cur);
        if let Some((c, keys)) = cache {
            c.store_state(
                &keys[i + 1],
                &CachedState::new(Some(m.version), fingerprint.clone(), &f),
            );
            if i + 1 == ms.len() {
                c.store_schema(&keys[i + 1], &s);
            }
        }
        drop(s);
        t.fingerprints.push(fingerprint);
        t.footprints.push(f);
        prev = cur;
    }
    if let Some((c, _)) = cache {
        c.prune();
    }
    Ok(t)
}

/// The schema after `ms`, from the cache when it holds it, else replayed on a shadow of
/// `live` (and stored).
pub async fn final_schema_cached(
    live: &mut dyn Driver,
    settings: &crate::engine::Settings,
    shadow_url: Option<&DatabaseUrl>,
    ms: &[&Migration],
) -> Result<(Schema, ReplayStats)> {
    let cache = cache_for(live, settings, shadow_url).await;
    let key = cache.as_ref().and_then(|c| c.keys(ms).pop());
    if let (Some(c), Some(key)) = (&cache, &key)
        && let Some(s) = c.schema(key)
    {
        let stats = ReplayStats {
            cached: ms.len(),
            replayed: 0,
        };
        return Ok((s, stats));
    }
    let mut shadow = Shadow::open_for(live, settings, shadow_url).await?;
    let expected = final_schema(&mut shadow, ms, &settings.inspect).await;
    shadow.close().await;
    let expected = expected?;
    if let (Some(c), Some(key)) = (&cache, &key) {
        c.store_schema(key, &expected);
        c.prune();
    }
    let stats = ReplayStats {
        cached: 0,
        replayed: ms.len(),
    };
    Ok((expected, stats))
}
