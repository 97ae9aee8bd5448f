//! Repair by evidence: which migrations are really applied, which are pending and which are
//! half applied, decided from the live schema rather than from a history table that may lie.
//!
//! Every migration is replayed on a shadow database and the schema inspected after each one.
//! If the live schema equals the state after migration k exactly, 1..k are applied and the rest
//! are not. Otherwise each migration's *footprint* (the objects it creates, alters or drops) is
//! looked up in the live schema: all of it there → applied, none → pending, some → half applied.
//! Objects a later migration changes again are evidence for that later one, not this one.
//!
//! The plan is built by a pure function ([`plan`]), so `--dry-run` shows exactly what `--yes`
//! does, and it is tested without a database.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use tidemark_schema::{Object, Schema};

use crate::driver::Driver;
use crate::engine::Settings;
use crate::error::{Error, Result};
use crate::history::{self, History, HistoryState, HistoryWrite, JournalWrite};
use crate::migration::MigrationSet;
use crate::replay::{self, Footprint, Shadow, State};
use crate::status::{MigrationState, Status};
use crate::url::DatabaseUrl;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Record as applied without running it: its effects are in the live schema.
    Adopt,
    /// Not applied: left (or put back) as pending, for `up` to run.
    Replay,
    /// A history row whose effects are absent: remove the row.
    Forget,
    /// A modified file whose effect is unchanged: record the new checksum.
    RefreshChecksum,
    /// Some of its objects exist, some do not: a person decides.
    HalfApplied,
    /// Not recorded, and it changes no schema object of its own (data only, or everything it
    /// touches is changed again later): the schema cannot tell whether it ran, so a person
    /// decides. Never a default either way: running a data migration twice damages data.
    Undetermined,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Adopt => "adopt",
            Action::Replay => "replay",
            Action::Forget => "forget",
            Action::RefreshChecksum => "refresh_checksum",
            Action::HalfApplied => "half_applied",
            Action::Undetermined => "undetermined",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RepairStep {
    pub version: i64,
    pub name: String,
    pub action: Action,
    pub reason: String,
    /// Objects of its footprint found in the live schema.
    pub present: Vec<String>,
    /// Objects of its footprint not found (or found in another shape).
    pub missing: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RepairPlan {
    /// The live schema equals the state after this migration exactly.
    pub matches_state_after: Option<i64>,
    pub steps: Vec<RepairStep>,
    pub live_fingerprint: String,
    /// Live objects that no migration creates.
    pub unexplained: Vec<String>,
    pub notes: Vec<String>,
    /// Where the evidence came from: the replay cache, or a replay.
    pub replay: replay::ReplayStats,
}

impl RepairPlan {
    /// Steps that change history when carried out.
    pub fn changes(&self) -> impl Iterator<Item = &RepairStep> {
        self.steps
            .iter()
            .filter(|s| s.action != Action::Replay || s.reason.contains("recorded as failed"))
    }

    /// Steps a person must decide (`--adopt V` or `--pending V`).
    pub fn undecided(&self) -> impl Iterator<Item = &RepairStep> {
        self.steps
            .iter()
            .filter(|s| matches!(s.action, Action::HalfApplied | Action::Undetermined))
    }

    /// The evidence in one sentence, as `status` and the refusals of `up` show it: "the live
    /// schema equals the state after migration 3; 1 unrecorded migration(s) are in fact
    /// applied".
    pub fn summary(&self) -> String {
        let what = match self.matches_state_after {
            Some(v) => format!("the live schema equals the state after migration {v}"),
            None => "the live schema equals no state of the migrations exactly".to_string(),
        };
        let count = |a: Action| self.steps.iter().filter(|s| s.action == a).count();
        let mut extra = Vec::new();
        let adopt = count(Action::Adopt);
        if adopt > 0 {
            extra.push(format!(
                "{adopt} unrecorded migration(s) are in fact applied"
            ));
        }
        let forget = count(Action::Forget);
        if forget > 0 {
            extra.push(format!(
                "{forget} recorded migration(s) are in fact not applied"
            ));
        }
        let half = count(Action::HalfApplied);
        if half > 0 {
            extra.push(format!("{half} half applied"));
        }
        let undetermined: Vec<String> = self
            .steps
            .iter()
            .filter(|s| s.action == Action::Undetermined)
            .map(|s| s.version.to_string())
            .collect();
        if !undetermined.is_empty() {
            extra.push(format!(
                "the schema cannot tell whether {} ran (no schema change of its own)",
                undetermined.join(", ")
            ));
        }
        if extra.is_empty() {
            what
        } else {
            format!("{what}; {}", extra.join(", "))
        }
    }
}

/// The replayed states (index k = after the k-th migration of the set; 0 = empty) and the live
/// schema.
pub struct Evidence {
    /// Fingerprints and footprints of the replayed states (not their schemas).
    pub trail: replay::Trail,
    pub live: Schema,
    /// What each migration's `-- tidemark:verify` query said on the live database: its effect
    /// is in place (true) or not (false). Absent when it has none, or the query failed.
    pub verified: BTreeMap<i64, bool>,
    /// The fingerprint of the live schema as it is, when `live` leaves out what repeatable
    /// migrations created (the fingerprint recorded after a repair must be of the real schema).
    pub live_fingerprint: Option<String>,
}

impl Evidence {
    /// From states already in memory (tests).
    pub fn from_states(live: Schema, states: &[State]) -> Evidence {
        Evidence {
            trail: replay::Trail::of(states),
            live,
            verified: Default::default(),
            live_fingerprint: None,
        }
    }
}

/// Replay every migration on a shadow database and inspect the live one.
pub async fn gather(
    live: &mut dyn Driver,
    set: &MigrationSet,
    settings: &Settings,
    shadow_url: Option<&DatabaseUrl>,
) -> Result<Evidence> {
    set.validate(live.dialect())?;
    let ms: Vec<&crate::migration::Migration> = set.migrations.iter().collect();
    let cache = replay::cache_for(live, settings, shadow_url).await;
    let keys = cache.as_ref().map(|c| c.keys(&ms));
    let cached = match (&cache, &keys) {
        (Some(c), Some(k)) => replay::cached_prefix(c, k, &ms),
        _ => replay::Trail::default(),
    };
    let reps: Vec<&crate::migration::Migration> =
        set.repeatables.iter().map(|r| &r.migration).collect();
    let reps_key = keys
        .as_ref()
        .and_then(|k| k.last())
        .map(|k| crate::replay_cache::ReplayCache::with_repeatables(k, &reps));
    let cached_created = match (&cache, &reps_key) {
        _ if reps.is_empty() => Some(Default::default()),
        (Some(c), Some(k)) => c.created(k),
        _ => None,
    };
    let (trail, created) = match cached_created {
        // Every state (and what the repeatable migrations create) is known: no shadow at all.
        Some(created) if cached.fingerprints.len() == ms.len() + 1 => (cached, created),
        cached_created => {
            let mut shadow = Shadow::open_for(live, settings, shadow_url).await?;
            let cache_keys = cache.as_ref().zip(keys.as_deref());
            let trail =
                replay::replay_from(&mut shadow, &ms, &settings.inspect, cache_keys, cached).await;
            // Repeatable migrations run after all versioned ones: what they create says
            // nothing about which versioned migrations ran, so it is left out of the live
            // schema.
            let created = match (&trail, cached_created) {
                (Ok(_), Some(c)) => Ok(c),
                (Ok(_), None) => {
                    let r = repeatables_footprint(&mut shadow, set, &settings.inspect).await;
                    if let (Ok(r), Some(c), Some(k)) = (&r, &cache, &reps_key) {
                        c.store_created(k, r);
                    }
                    r
                }
                _ => Ok(Default::default()),
            };
            shadow.close().await;
            (trail?, created?)
        }
    };
    let live_schema = live.inspect(&settings.inspect).await?;
    let live_fingerprint = Some(live_schema.fingerprint().0);
    let live_schema = if created.is_empty() {
        live_schema
    } else {
        replay::without(&live_schema, &created)
    };
    let verified = verify_queries(live, set).await;
    Ok(Evidence {
        trail,
        live: live_schema,
        verified,
        live_fingerprint,
    })
}

/// Run each migration's `-- tidemark:verify` query on the live database. A query that fails
/// (e.g. its table is not there yet) tells nothing, and the migration stays undetermined.
async fn verify_queries(live: &mut dyn Driver, set: &MigrationSet) -> BTreeMap<i64, bool> {
    let mut out = BTreeMap::new();
    for m in &set.migrations {
        let Some(q) = &m.verify else { continue };
        let Ok(rows) = live.query(q, &[]).await else {
            continue;
        };
        let present = rows
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next())
            .is_some_and(|v| match v.as_i64() {
                Some(n) => n != 0,
                None => v.into_text().is_some_and(|t| {
                    matches!(t.trim().to_ascii_lowercase().as_str(), "t" | "true" | "yes")
                }),
            });
        out.insert(m.version, present);
    }
    out
}

/// The objects the repeatable migrations create on top of the last state.
async fn repeatables_footprint(
    shadow: &mut Shadow,
    set: &MigrationSet,
    opts: &crate::driver::InspectOptions,
) -> Result<std::collections::BTreeSet<String>> {
    // The shadow is at the state after the last versioned migration.
    let before = replay::objects(&shadow.inspect(opts).await?);
    for r in &set.repeatables {
        shadow.apply(&r.migration).await?;
    }
    let after = replay::objects(&shadow.inspect(opts).await?);
    Ok(after
        .into_keys()
        .filter(|p| !before.contains_key(p))
        .collect())
}

/// What the live schema says about one migration.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Found {
    /// Every object of its own footprint is there as it leaves it.
    Present,
    /// None is.
    Absent,
    Partial,
    /// It leaves no object of its own (data only, or everything it touches is changed again
    /// later): the schema cannot tell.
    NoFootprint,
}

struct Judged {
    found: Found,
    present: Vec<String>,
    missing: Vec<String>,
}

/// The states an object goes through over the migrations: (position, state from then on).
type Timeline = Vec<(usize, Option<Object>)>;

/// Judge migration `k` (1-based) by the objects of its footprint. An object counts as evidence
/// that `k` ran when its live state is one it has after `k` (as `k` left it, or as a later
/// migration changed it again), and as evidence that `k` did not run when its live state is the
/// one before `k` and no later state. When the state before `k` comes back later (a table
/// created here and dropped later), the object says nothing about `k`.
fn judge(
    k: usize,
    footprint: &Footprint,
    timelines: &BTreeMap<String, Timeline>,
    live: &BTreeMap<String, Object>,
) -> Judged {
    let mut present = Vec::new();
    let mut missing = Vec::new();
    let mut before_like = 0usize;
    let mut counted = 0usize;
    for (path, (before, after)) in &footprint.objects {
        let l = live.get(path);
        let later: Vec<Option<&Object>> = std::iter::once(after.as_ref())
            .chain(
                timelines[path]
                    .iter()
                    .filter(|(j, _)| *j > k)
                    .map(|(_, o)| o.as_ref()),
            )
            .collect();
        let label = match after {
            Some(_) => path.clone(),
            None => format!("{path} (dropped)"),
        };
        let was_before = l == before.as_ref();
        if was_before && later.contains(&before.as_ref()) {
            continue; // ambiguous
        }
        counted += 1;
        if later.contains(&l) {
            present.push(label);
        } else {
            before_like += usize::from(was_before);
            missing.push(label);
        }
    }
    let found = match (present.is_empty(), missing.is_empty()) {
        (true, true) => Found::NoFootprint,
        (false, true) => Found::Present,
        (true, false) if before_like == counted => Found::Absent,
        // Objects there in a shape that is neither before nor after this migration: not clean
        // either way.
        _ => Found::Partial,
    };
    Judged {
        found,
        present,
        missing,
    }
}

/// Build the repair plan. Pure.
pub fn plan(set: &MigrationSet, history: &History, ev: &Evidence) -> RepairPlan {
    let st = Status::compute(set, history);
    let live = replay::objects(&ev.live);
    let live_fp = ev.live.fingerprint();
    let fps = &ev.trail.fingerprints;
    let n = set.migrations.len();
    let mut notes = Vec::new();

    // Position (1-based, 0 = nothing) of the newest migration recorded as applied.
    let recorded_head = set
        .migrations
        .iter()
        .rposition(|m| {
            history
                .get(m.version)
                .is_some_and(|h| h.state == HistoryState::Applied)
        })
        .map(|p| p + 1)
        .unwrap_or(0);

    // Positions (1-based) of migrations whose having run the evidence cannot tell.
    let mut undetermined: BTreeSet<usize> = BTreeSet::new();

    // Exact matches: runs of consecutive states equal to the live schema. Within a run the
    // migrations change no schema (data only), so prefer the recorded head when it is inside.
    let matching: Vec<usize> = (0..=n).filter(|&k| fps[k] == live_fp.0).collect();
    let exact: Option<usize> = if matching.is_empty() {
        None
    } else {
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for &k in &matching {
            match runs.last_mut() {
                Some((_, b)) if *b + 1 == k => *b = k,
                _ => runs.push((k, k)),
            }
        }
        let (a, b) = runs
            .iter()
            .copied()
            .find(|(a, b)| (*a..=*b).contains(&recorded_head))
            .unwrap_or(*runs.last().expect("non-empty"));
        let chosen = recorded_head.clamp(a, b);
        // The migrations after the recorded head inside the run change no schema: whether
        // they ran, the schema cannot tell, and an unrecorded one is not evidence that it did
        // not (the history is what is in doubt).
        undetermined.extend(chosen + 1..=b);
        if a != b {
            notes.push(format!(
                "the live schema equals the states after {} to {}: the migrations in between change no schema",
                version_at(set, a),
                version_at(set, b)
            ));
        }
        Some(chosen)
    };

    // Footprints and, per object, the timeline of its states.
    let footprints: &[Footprint] = &ev.trail.footprints;
    let mut timelines: BTreeMap<String, Timeline> = BTreeMap::new();
    for (i, f) in footprints.iter().enumerate() {
        for (p, (_, after)) in &f.objects {
            timelines
                .entry(p.clone())
                .or_default()
                .push((i + 1, after.clone()));
        }
    }
    let judged: Vec<Judged> = (0..n)
        .map(|k| judge(k + 1, &footprints[k], &timelines, &live))
        .collect();

    // Is migration k (0-based) applied according to the evidence?
    let applied_by_evidence = |k: usize| -> Option<bool> {
        if let Some(m) = exact {
            return Some(k < m);
        }
        match judged[k].found {
            Found::Present => Some(true),
            Found::Absent => Some(false),
            Found::Partial => None,
            // No footprint of its own: migrations run in order, so it ran if a later one with a
            // footprint did; otherwise the schema cannot tell.
            Found::NoFootprint => (k + 1..n)
                .any(|j| judged[j].found == Found::Present || judged[j].found == Found::Partial)
                .then_some(true),
        }
    };

    let mut steps = Vec::new();
    for (k, m) in set.migrations.iter().enumerate() {
        let entry = st
            .entries
            .iter()
            .find(|e| e.version == m.version)
            .expect("every file has a status entry");
        let j = &judged[k];
        let evidence = match (exact, &j.found) {
            (Some(x), _) if k < x => format!(
                "the live schema equals the state after {}",
                version_at(set, x)
            ),
            (Some(x), _) => format!(
                "the live schema equals the state after {}, before this migration",
                version_at(set, x)
            ),
            (None, Found::Present) => "all of its objects exist".to_string(),
            (None, Found::Absent) => "none of its objects exist".to_string(),
            (None, Found::Partial) => "some of its objects exist, some do not".to_string(),
            (None, Found::NoFootprint) => {
                "it changes no schema object of its own, so its position decides".to_string()
            }
        };
        let (present, missing) = (j.present.clone(), j.missing.clone());
        let step = |action: Action, reason: String| RepairStep {
            version: m.version,
            name: m.name.clone(),
            action,
            reason,
            present: present.clone(),
            missing: missing.clone(),
        };
        let applied = applied_by_evidence(k);
        let cannot_tell = undetermined.contains(&(k + 1))
            || (exact.is_none() && j.found == Found::NoFootprint && applied.is_none());
        if cannot_tell
            && matches!(
                entry.state,
                MigrationState::Pending | MigrationState::Failed
            )
        {
            // The migration's own query decides where the schema cannot.
            if let Some(&present) = ev.verified.get(&m.version) {
                steps.push(if present {
                    step(
                        Action::Adopt,
                        "its `tidemark:verify` query says its effect is in place".into(),
                    )
                } else {
                    step(
                        Action::Replay,
                        "its `tidemark:verify` query says its effect is not in place: `up` runs it"
                            .into(),
                    )
                });
                continue;
            }
            let what = if footprints[k].is_empty() {
                "it changes only data"
            } else {
                "every object it touches is changed again by a later migration"
            };
            steps.push(step(
                Action::Undetermined,
                format!(
                    "{what}: the schema cannot tell whether it ran; decide with --adopt {v} (it ran) or --pending {v} (it did not; `up` runs it)",
                    v = m.version
                ),
            ));
            continue;
        }
        let s = match (entry.state, applied) {
            (MigrationState::Applied, Some(true)) => None,
            (MigrationState::Applied, Some(false)) => Some(step(
                Action::Forget,
                format!("recorded as applied, but {evidence}"),
            )),
            (MigrationState::Applied, None) => Some(step(
                Action::HalfApplied,
                format!("recorded as applied, but {evidence}"),
            )),
            (MigrationState::Modified, Some(true)) => Some(step(
                Action::RefreshChecksum,
                format!(
                    "the file was changed after it was applied, and its effect is in place: {evidence}"
                ),
            )),
            (MigrationState::Modified, _) => Some(step(
                Action::HalfApplied,
                format!(
                    "the file was changed after it was applied and the live schema does not show its effect ({evidence})"
                ),
            )),
            (MigrationState::Failed, Some(true)) => Some(step(
                Action::Adopt,
                format!("recorded as failed, but {evidence}"),
            )),
            (MigrationState::Failed, Some(false)) => Some(step(
                Action::Replay,
                format!(
                    "recorded as failed, but {evidence}: the failed record is cleared and `up` runs it"
                ),
            )),
            (MigrationState::Failed, None) => Some(step(
                Action::HalfApplied,
                format!("recorded as failed: {evidence}"),
            )),
            (MigrationState::Pending, Some(true)) => {
                Some(step(Action::Adopt, format!("not recorded, but {evidence}")))
            }
            (MigrationState::Pending, Some(false)) => {
                Some(step(Action::Replay, format!("pending: {evidence}")))
            }
            (MigrationState::Pending, None) => Some(step(
                Action::HalfApplied,
                format!("not recorded: {evidence}"),
            )),
            (MigrationState::Missing, _) => None,
        };
        steps.extend(s);
    }
    for e in st
        .entries
        .iter()
        .filter(|e| e.state == MigrationState::Missing)
    {
        notes.push(format!(
            "migration {} ({}) is recorded but its file is gone: there is no evidence about it; restore the file, or pass --forget {}",
            e.version, e.name, e.version
        ));
    }

    // Live objects that no state of the replay has.
    let known: BTreeSet<&String> = ev.trail.known_paths();
    let unexplained: Vec<String> = live
        .keys()
        .filter(|p| !known.contains(p))
        .cloned()
        .collect();

    RepairPlan {
        matches_state_after: exact.filter(|&x| x > 0).map(|x| version_at(set, x)),
        steps,
        live_fingerprint: live_fp.0,
        unexplained,
        notes,
        replay: ev.trail.stats,
    }
}

fn version_at(set: &MigrationSet, k: usize) -> i64 {
    if k == 0 {
        0
    } else {
        set.migrations[k - 1].version
    }
}

/// What `repair` found and did.
#[derive(Debug, Clone)]
pub struct RepairOutcome {
    pub plan: RepairPlan,
    /// History changes written (empty for a plan only).
    pub applied: Vec<Applied>,
    /// After the changes, the history agrees with the live schema (its fingerprint recorded).
    pub consistent: bool,
    /// Half-applied or undetermined migrations still waiting for a person's decision.
    pub undecided: Vec<i64>,
}

/// `repair` as one operation: gather the evidence, plan, and with `carry_out` write the plan
/// under the migration lock (taken here, so a program calling the library is as safe as the
/// command). Replays on `settings.shadow_url` (or the live server, memory for SQLite).
pub async fn repair(
    driver: &mut dyn Driver,
    set: &MigrationSet,
    settings: &Settings,
    decisions: &Decisions,
    carry_out: bool,
    obs: &mut dyn crate::engine::Observer,
) -> Result<RepairOutcome> {
    set.validate(driver.dialect())?;
    let guard = if carry_out {
        let g = crate::engine::acquire(driver, settings, obs).await?;
        history::ensure(driver).await?;
        Some(g)
    } else {
        None
    };
    let h = history::read(driver).await?;
    let ev = gather(driver, set, settings, settings.shadow_url.as_ref()).await?;
    let plan = plan(set, &h, &ev);
    let undecided: Vec<i64> = plan
        .undecided()
        .map(|s| s.version)
        .filter(|v| !decisions.adopt.contains(v) && !decisions.pending.contains(v))
        .collect();
    let Some(guard) = guard else {
        return Ok(RepairOutcome {
            plan,
            applied: Vec::new(),
            consistent: false,
            undecided,
        });
    };
    let applied = execute(driver, set, &plan, decisions, settings, "repair", None).await?;
    let consistent = record_fingerprint_if_consistent(driver, set, &ev).await?;
    // With sync on, the other tool must not run what is now recorded as applied.
    crate::sync::follow(driver, set, settings).await?;
    guard.release().await?;
    Ok(RepairOutcome {
        plan,
        applied,
        consistent,
        undecided,
    })
}

/// What `repair --resume` did.
#[derive(Debug, Clone, Serialize)]
pub struct Resumed {
    pub version: i64,
    /// 1-based: the first statement run now (the ones before it had run when it failed).
    pub from_statement: usize,
    pub statements: usize,
    /// The checksum recorded before (of the file that failed) and now (of the fixed file).
    pub checksum_before: String,
    pub checksum_after: String,
}

/// Finish a migration that failed part way outside a transaction, after its file was fixed
/// (without `carry_out`, only check that it can be and say what would run):
/// the statements from the one that failed on run under the lock, and the migration is then
/// recorded as applied with the fixed file's checksum (journaled as `repair:resume`). The
/// statements that had run are not run again: the history row counts them. A statement that
/// fails again leaves the row failed at its new position.
pub async fn resume(
    driver: &mut dyn Driver,
    set: &MigrationSet,
    settings: &Settings,
    version: i64,
    carry_out: bool,
    obs: &mut dyn crate::engine::Observer,
) -> Result<Resumed> {
    set.validate(driver.dialect())?;
    let guard = crate::engine::acquire(driver, settings, obs).await?;
    let held = guard.held_condition();
    // As `up` runs statements: they give up waiting for a table lock, and none runs once the
    // migration lock is lost.
    let r = match crate::engine::set_statement_lock_timeout(driver, settings.statement_lock_timeout)
        .await
    {
        Ok(()) => resume_locked(driver, set, settings, version, carry_out, held.as_deref()).await,
        Err(e) => Err(e),
    };
    if settings.statement_lock_timeout.is_some() {
        let _ = crate::engine::set_statement_lock_timeout(driver, None).await;
    }
    guard.release().await?;
    r
}

async fn resume_locked(
    driver: &mut dyn Driver,
    set: &MigrationSet,
    settings: &Settings,
    version: i64,
    carry_out: bool,
    held: Option<&str>,
) -> Result<Resumed> {
    let h = history::read(driver).await?;
    let row = h.get(version).filter(|r| r.state == HistoryState::Failed);
    let Some((row, done)) = row.and_then(|r| r.statements_applied.map(|k| (r, k as usize))) else {
        return Err(Error::Usage(format!(
            "--resume {version}: migration {version} is not recorded as failed part way through (only a migration run statement by statement can be resumed; `tidemark status` shows its state)"
        )));
    };
    let m = set.get(version).ok_or_else(|| {
        Error::Usage(format!(
            "--resume {version}: there is no migration file with version {version}"
        ))
    })?;
    let stmts = m.up.statements(driver.dialect())?;
    if done > stmts.len() {
        return Err(Error::Usage(format!(
            "--resume {version}: {} statement(s) had run, but {} now has {}: it cannot be resumed where it stopped",
            done,
            m.up.path.display(),
            stmts.len()
        )));
    }
    let resumed = Resumed {
        version,
        from_statement: done + 1,
        statements: stmts.len(),
        checksum_before: row.checksum.clone(),
        checksum_after: m.checksum.clone(),
    };
    if !carry_out {
        return Ok(resumed);
    }
    let started = std::time::Instant::now();
    let mut w = HistoryWrite {
        version,
        name: &m.name,
        checksum: &row.checksum,
        state: HistoryState::Failed,
        execution_ms: row.execution_ms,
        applied_by: &settings.actor,
        error: Some("resuming (or its process died)"),
        statements_applied: Some(done as i64),
        lint_class: settings.class_of(m, driver.dialect()),
    };
    for (i, s) in stmts.iter().enumerate().skip(done) {
        crate::engine::ensure_held(driver, held, version).await?;
        if let Err(e) = driver.run(&s.text).await {
            let msg = format!(
                "statement {} of {} failed again at {}:{}: {}",
                i + 1,
                stmts.len(),
                m.up.path.display(),
                s.line,
                e.message
            );
            w.error = Some(&msg);
            w.statements_applied = Some(i as i64);
            history::update(driver, &w).await?;
            return Err(Error::db(
                format!(
                    "resuming migration {version}: statement {} ({}:{}) failed",
                    i + 1,
                    m.up.path.display(),
                    s.line
                ),
                e,
            ));
        }
        w.statements_applied = Some(i as i64 + 1);
        history::update(driver, &w).await?;
    }
    w.state = HistoryState::Applied;
    w.error = None;
    w.checksum = &m.checksum;
    w.execution_ms = row.execution_ms + started.elapsed().as_millis() as i64;
    history::update(driver, &w).await?;
    history::journal(
        driver,
        &JournalWrite {
            run_id: &settings.run_id,
            action: "repair:resume",
            version: Some(version),
            detail: Some(serde_json::to_string(&resumed).unwrap_or_default()),
            actor: &settings.actor,
        },
    )
    .await?;
    Ok(resumed)
}

/// Decisions a person gives for half-applied migrations (and files that are gone).
#[derive(Debug, Clone, Default)]
pub struct Decisions {
    /// Record as applied (the person completes or accepts what is there).
    pub adopt: Vec<i64>,
    /// Treat as not applied (the person removes what is there); `up` will run it.
    pub pending: Vec<i64>,
    /// Remove the history row of a migration whose file is gone.
    pub forget: Vec<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    pub version: i64,
    pub action: String,
}

/// Carry out a plan: history changes in one transaction, each journaled. Half-applied
/// migrations without a decision are recorded as `failed` (with what exists and what does not),
/// so that `up` and `check` stop until a person decides. Nothing in the schema is touched.
///
/// `imported`: for `import`, the rows another tool's history claims, written first (in the
/// same transaction) and then corrected by the plan.
pub async fn execute(
    driver: &mut dyn Driver,
    set: &MigrationSet,
    plan: &RepairPlan,
    decisions: &Decisions,
    settings: &Settings,
    journal_action: &str,
    imported: Option<&History>,
) -> Result<Vec<Applied>> {
    // A decision must match what the evidence leaves open (or already concludes).
    let step_action = |v: i64| plan.steps.iter().find(|s| s.version == v).map(|s| s.action);
    for v in &decisions.adopt {
        if !matches!(
            step_action(*v),
            Some(Action::HalfApplied | Action::Undetermined | Action::Adopt)
        ) {
            return Err(Error::Usage(format!(
                "--adopt {v}: the evidence leaves nothing to decide about migration {v} in this plan"
            )));
        }
    }
    for v in &decisions.pending {
        if !matches!(
            step_action(*v),
            Some(Action::HalfApplied | Action::Undetermined | Action::Replay)
        ) {
            return Err(Error::Usage(format!(
                "--pending {v}: the evidence leaves nothing to decide about migration {v} in this plan"
            )));
        }
    }
    let h = match imported {
        Some(i) => i.clone(),
        None => history::read(driver).await?,
    };
    for v in &decisions.forget {
        if set.get(*v).is_some() || h.get(*v).is_none() {
            return Err(Error::Usage(format!(
                "--forget {v}: only a recorded migration whose file is gone can be forgotten this way"
            )));
        }
    }
    driver
        .begin()
        .await
        .map_err(|e| Error::db("could not begin the repair transaction", e))?;
    let result = async {
        if imported.is_some() {
            write_imported(driver, set, &h, settings, journal_action).await?;
        }
        write_all(driver, set, plan, decisions, settings, journal_action, &h).await
    }
    .await;
    match result {
        Ok(done) => {
            driver
                .commit()
                .await
                .map_err(|e| Error::db("could not commit the repair", e))?;
            Ok(done)
        }
        Err(e) => {
            let _ = driver.rollback().await;
            Err(e)
        }
    }
}

async fn write_imported(
    driver: &mut dyn Driver,
    set: &MigrationSet,
    h: &History,
    settings: &Settings,
    journal_action: &str,
) -> Result<()> {
    for e in &h.entries {
        let class = e.lint_class.or_else(|| {
            set.get(e.version)
                .and_then(|m| settings.class_of(m, driver.dialect()))
        });
        history::insert(
            driver,
            &HistoryWrite {
                version: e.version,
                name: &e.name,
                checksum: &e.checksum,
                state: e.state,
                execution_ms: 0,
                applied_by: &settings.actor,
                error: e.error.as_deref(),
                statements_applied: None,
                lint_class: class,
            },
        )
        .await?;
        // Keep what the other tool recorded: when, how long, who, its checksum.
        if let Some(facts) = &e.imported {
            history::set_imported(
                driver,
                e.version,
                facts,
                Some(e.applied_at.as_str()).filter(|a| !a.is_empty()),
                Some(e.execution_ms).filter(|_| !e.applied_at.is_empty() || e.execution_ms > 0),
                Some(e.applied_by.as_str()).filter(|a| !a.is_empty()),
            )
            .await?;
        }
        history::journal(
            driver,
            &JournalWrite {
                run_id: &settings.run_id,
                action: &format!("{journal_action}:record"),
                version: Some(e.version),
                detail: Some(
                    serde_json::json!({
                        "state": e.state.as_str(),
                        "imported": e.imported,
                        "applied_at": e.applied_at,
                        "execution_ms": e.execution_ms,
                        "applied_by": e.applied_by,
                    })
                    .to_string(),
                ),
                actor: &settings.actor,
            },
        )
        .await?;
    }
    Ok(())
}

/// A row taken over from another tool keeps that tool's facts when the evidence rewrites it.
async fn keep_facts(
    driver: &mut dyn Driver,
    recorded: Option<&crate::history::HistoryEntry>,
) -> Result<()> {
    if let Some(r) = recorded
        && let Some(f) = &r.imported
    {
        history::set_imported(
            driver,
            r.version,
            f,
            Some(r.applied_at.as_str()).filter(|a| !a.is_empty()),
            None,
            Some(r.applied_by.as_str()).filter(|a| !a.is_empty()),
        )
        .await?;
    }
    Ok(())
}

async fn write_all(
    driver: &mut dyn Driver,
    set: &MigrationSet,
    plan: &RepairPlan,
    decisions: &Decisions,
    settings: &Settings,
    journal_action: &str,
    h: &History,
) -> Result<Vec<Applied>> {
    let mut done = Vec::new();
    for s in &plan.steps {
        let m = set.get(s.version).expect("plan steps come from files");
        let recorded = h.get(s.version);
        let action = match s.action {
            Action::HalfApplied | Action::Undetermined if decisions.adopt.contains(&s.version) => {
                "adopt"
            }
            Action::HalfApplied | Action::Undetermined
                if decisions.pending.contains(&s.version) =>
            {
                "reset"
            }
            Action::HalfApplied => "mark_half_applied",
            Action::Undetermined => "mark_undetermined",
            Action::Adopt => "adopt",
            Action::Forget => "forget",
            Action::RefreshChecksum => "refresh_checksum",
            Action::Replay if recorded.is_some() => "reset",
            Action::Replay => continue,
        };
        let class = settings.class_of(m, driver.dialect());
        let row = |state, error: Option<&'static str>| HistoryWrite {
            version: m.version,
            name: &m.name,
            checksum: &m.checksum,
            state,
            execution_ms: 0,
            applied_by: &settings.actor,
            error,
            statements_applied: None,
            lint_class: class,
        };
        match action {
            "adopt" => {
                history::delete(driver, m.version).await?;
                history::insert(driver, &row(HistoryState::Applied, None)).await?;
                keep_facts(driver, recorded).await?;
            }
            "forget" | "reset" => {
                history::delete(driver, m.version).await?;
            }
            "refresh_checksum" => {
                history::delete(driver, m.version).await?;
                let mut w = row(HistoryState::Applied, None);
                let prev = recorded.cloned();
                w.execution_ms = prev.as_ref().map(|p| p.execution_ms).unwrap_or(0);
                history::insert(driver, &w).await?;
                keep_facts(driver, recorded).await?;
            }
            _ => {
                // Undecided: the history says what is true (half applied, or unknown whether
                // it ran) and blocks `up` until a person decides.
                let msg = if s.action == Action::Undetermined {
                    format!(
                        "undetermined: {}; decide with `tidemark repair --adopt {v}` or `--pending {v}`",
                        s.reason.split(';').next().unwrap_or_default(),
                        v = m.version
                    )
                } else {
                    format!(
                        "half applied: present [{}]; missing [{}]; decide with `tidemark repair --adopt {v}` or `--pending {v}`",
                        s.present.join(", "),
                        s.missing.join(", "),
                        v = m.version
                    )
                };
                history::delete(driver, m.version).await?;
                let mut w = row(HistoryState::Failed, None);
                w.error = Some(&msg);
                history::insert(driver, &w).await?;
            }
        }
        let detail = serde_json::json!({ "name": m.name, "reason": s.reason, "present": s.present, "missing": s.missing });
        history::journal(
            driver,
            &JournalWrite {
                run_id: &settings.run_id,
                action: &format!("{journal_action}:{action}"),
                version: Some(m.version),
                detail: Some(detail.to_string()),
                actor: &settings.actor,
            },
        )
        .await?;
        done.push(Applied {
            version: m.version,
            action: action.to_string(),
        });
    }
    for v in &decisions.forget {
        history::delete(driver, *v).await?;
        history::journal(
            driver,
            &JournalWrite {
                run_id: &settings.run_id,
                action: &format!("{journal_action}:forget"),
                version: Some(*v),
                detail: None,
                actor: &settings.actor,
            },
        )
        .await?;
        done.push(Applied {
            version: *v,
            action: "forget".into(),
        });
    }
    Ok(done)
}

/// After a repair: when the live schema equals the replayed state of what history now says is
/// applied (a prefix of the migrations), record its fingerprint on the head row so that
/// `status` and `up` can tell drift cheaply again.
pub async fn record_fingerprint_if_consistent(
    driver: &mut dyn Driver,
    set: &MigrationSet,
    ev: &Evidence,
) -> Result<bool> {
    let h = history::read(driver).await?;
    let st = Status::compute(set, &h);
    if st
        .entries
        .iter()
        .any(|e| !matches!(e.state, MigrationState::Applied | MigrationState::Pending))
    {
        return Ok(false);
    }
    let applied = st
        .entries
        .iter()
        .filter(|e| e.state == MigrationState::Applied)
        .count();
    let is_prefix = st
        .entries
        .iter()
        .take(applied)
        .all(|e| e.state == MigrationState::Applied);
    let Some(head) = st.current_version else {
        return Ok(false);
    };
    if !is_prefix || ev.trail.fingerprints.get(applied) != Some(&ev.live.fingerprint().0) {
        return Ok(false);
    }
    let fp = ev
        .live_fingerprint
        .clone()
        .unwrap_or_else(|| ev.live.fingerprint().0);
    history::set_fingerprint(driver, head, &fp).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::HistoryEntry;
    use tidemark_schema::{Column, Index, Table};

    /// A set of `n` migration files; their content does not matter to the pure planner.
    fn files(n: usize) -> (tempfile::TempDir, MigrationSet) {
        let d = tempfile::tempdir().unwrap();
        for i in 1..=n {
            std::fs::write(
                d.path().join(format!("{i}_m{i}.sql")),
                format!("SELECT {i};"),
            )
            .unwrap();
        }
        let s = MigrationSet::load(d.path(), None).unwrap();
        (d, s)
    }

    fn table(s: &mut Schema, name: &str) {
        let mut t = Table::default();
        t.columns.insert(
            "id".into(),
            Column {
                data_type: "integer".into(),
                ..Default::default()
            },
        );
        s.tables.insert(name.into(), t);
    }

    fn index(s: &mut Schema, t: &str, name: &str) {
        s.tables.get_mut(t).unwrap().indexes.insert(
            name.into(),
            Index {
                parts: vec!["id".into()],
                ..Default::default()
            },
        );
    }

    fn recorded(set: &MigrationSet, versions: &[i64]) -> History {
        History {
            exists: true,
            repeatables: Vec::new(),
            entries: versions
                .iter()
                .map(|&v| HistoryEntry {
                    version: v,
                    name: format!("m{v}"),
                    checksum: set.get(v).unwrap().checksum.clone(),
                    state: HistoryState::Applied,
                    applied_at: String::new(),
                    execution_ms: 0,
                    applied_by: String::new(),
                    schema_fingerprint: None,
                    error: None,
                    statements_applied: None,
                    lint_class: None,
                    imported: None,
                })
                .collect(),
        }
    }

    /// States where migration k creates table `tk`, except those listed as data-only.
    fn states(n: usize, data_only: &[usize]) -> Vec<State> {
        let mut out = vec![State {
            version: None,
            schema: Schema::default(),
        }];
        let mut s = Schema::default();
        for k in 1..=n {
            if !data_only.contains(&k) {
                table(&mut s, &format!("t{k}"));
            }
            out.push(State {
                version: Some(k as i64),
                schema: s.clone(),
            });
        }
        out
    }

    fn actions(p: &RepairPlan) -> Vec<(i64, &'static str)> {
        p.steps
            .iter()
            .map(|s| (s.version, s.action.as_str()))
            .collect()
    }

    #[test]
    fn history_behind_reality_adopts_what_is_there() {
        // S0 in small: recorded 1–3, applied 1–6, files 1–8.
        let (_d, set) = files(8);
        let st = states(8, &[]);
        let ev = Evidence::from_states(st[6].schema.clone(), &st);
        let p = plan(&set, &recorded(&set, &[1, 2, 3]), &ev);
        assert_eq!(p.matches_state_after, Some(6));
        assert_eq!(
            actions(&p),
            vec![
                (4, "adopt"),
                (5, "adopt"),
                (6, "adopt"),
                (7, "replay"),
                (8, "replay")
            ]
        );
        assert!(
            p.steps[0].reason.contains("equals the state after 6"),
            "{}",
            p.steps[0].reason
        );
    }

    #[test]
    fn empty_history_and_a_half_applied_migration() {
        // S1 variant: migration 4 creates two indexes; only one exists. 5 and 6 are there, 7 not.
        let (_d, set) = files(7);
        let mut st = vec![State {
            version: None,
            schema: Schema::default(),
        }];
        let mut s = Schema::default();
        for k in 1..=7 {
            match k {
                4 => {
                    index(&mut s, "t1", "a");
                    index(&mut s, "t1", "b");
                }
                _ => table(&mut s, &format!("t{k}")),
            }
            st.push(State {
                version: Some(k),
                schema: s.clone(),
            });
        }
        let mut live = st[6].schema.clone();
        live.tables.get_mut("t1").unwrap().indexes.remove("b");
        let ev = Evidence::from_states(live, &st);
        let p = plan(&set, &History::default(), &ev);
        assert_eq!(p.matches_state_after, None);
        assert_eq!(
            actions(&p),
            vec![
                (1, "adopt"),
                (2, "adopt"),
                (3, "adopt"),
                (4, "half_applied"),
                (5, "adopt"),
                (6, "adopt"),
                (7, "replay")
            ]
        );
        let four = &p.steps[3];
        assert_eq!(four.present, vec!["index a on t1"]);
        assert_eq!(four.missing, vec!["index b on t1"]);
    }

    #[test]
    fn recorded_but_absent_is_forgotten_and_data_only_follows_order() {
        let (_d, set) = files(5);
        // 3 is data-only; live has 1, 2, 4 but not 5; history claims 1..5.
        let st = states(5, &[3]);
        let mut live = st[4].schema.clone();
        live.tables.remove("t4");
        table(&mut live, "t4");
        let ev = Evidence::from_states(live, &st);
        let p = plan(&set, &recorded(&set, &[1, 2, 3, 4, 5]), &ev);
        assert_eq!(
            p.matches_state_after,
            Some(4),
            "data-only 3 makes 3 and 4 ambiguous; history decides"
        );
        assert_eq!(actions(&p), vec![(5, "forget")]);
    }

    #[test]
    fn data_only_migration_without_later_evidence_is_undetermined() {
        // History says 1; the schema is the state after 2, which is also the state after the
        // data-only 3. Whether 3 ran (by hand, beside 2) the schema cannot tell: a decision,
        // never "pending" by default (running it again may damage data).
        let (_d, set) = files(3);
        let st = states(3, &[3]);
        let ev = Evidence::from_states(st[2].schema.clone(), &st);
        let p = plan(&set, &recorded(&set, &[1]), &ev);
        assert_eq!(p.matches_state_after, Some(2));
        assert_eq!(actions(&p), vec![(2, "adopt"), (3, "undetermined")]);
        assert_eq!(p.undecided().count(), 1);
        // Recorded as applied, it is not in doubt.
        let p = plan(&set, &recorded(&set, &[1, 2, 3]), &ev);
        assert_eq!(actions(&p), vec![]);
    }

    #[test]
    fn objects_changed_later_are_evidence_for_the_later_migration() {
        // 1 creates t1 with id; 2 adds column x; 3 changes x's type. Live has x with the old type.
        let (_d, set) = files(3);
        let mut s0 = Schema::default();
        let mut st = vec![State {
            version: None,
            schema: s0.clone(),
        }];
        table(&mut s0, "t1");
        st.push(State {
            version: Some(1),
            schema: s0.clone(),
        });
        s0.tables.get_mut("t1").unwrap().columns.insert(
            "x".into(),
            Column {
                data_type: "integer".into(),
                ..Default::default()
            },
        );
        st.push(State {
            version: Some(2),
            schema: s0.clone(),
        });
        let live = s0.clone();
        s0.tables
            .get_mut("t1")
            .unwrap()
            .columns
            .get_mut("x")
            .unwrap()
            .data_type = "bigint".into();
        st.push(State {
            version: Some(3),
            schema: s0,
        });
        // Make the exact match impossible so the footprint path is used: an extra live table.
        let mut live = live;
        table(&mut live, "extra");
        let ev = Evidence::from_states(live, &st);
        let p = plan(&set, &History::default(), &ev);
        assert_eq!(actions(&p), vec![(1, "adopt"), (2, "adopt"), (3, "replay")]);
        assert_eq!(p.unexplained.len(), 2, "{:?}", p.unexplained);
    }

    #[test]
    fn modified_file_with_unchanged_effect_refreshes_its_checksum() {
        let (_d, set) = files(2);
        let st = states(2, &[]);
        let mut h = recorded(&set, &[1, 2]);
        h.entries[1].checksum = "old".into();
        let ev = Evidence::from_states(st[2].schema.clone(), &st);
        let p = plan(&set, &h, &ev);
        assert_eq!(actions(&p), vec![(2, "refresh_checksum")]);
    }
}
