//! `baseline --version V`: record 1..V as applied without running them, for a database that was
//! built before tidemark — but only when the live schema is verifiably the state after V.

use serde::Serialize;
use tidemark_schema::{Change, diff};

use crate::driver::Driver;
use crate::engine::Settings;
use crate::error::{Error, Result};
use crate::history::{self, HistoryState, HistoryWrite, JournalWrite};
use crate::migration::{Migration, MigrationSet};
use crate::replay;
use crate::url::DatabaseUrl;

#[derive(Debug, Clone, Serialize)]
pub struct BaselineReport {
    pub version: i64,
    pub recorded: Vec<i64>,
    /// How the live schema differs from the state after V (expected = replay).
    pub changes: Vec<Change>,
    pub forced: bool,
}

/// Verify and record, under the migration lock (taken here, so a program calling the library
/// is as safe as the command).
pub async fn baseline(
    driver: &mut dyn Driver,
    set: &MigrationSet,
    version: i64,
    force: bool,
    settings: &Settings,
    shadow_url: Option<&DatabaseUrl>,
    obs: &mut dyn crate::engine::Observer,
) -> Result<BaselineReport> {
    set.validate(driver.dialect())?;
    let guard = crate::engine::acquire(driver, settings, obs).await?;
    let report = baseline_locked(driver, set, version, force, settings, shadow_url).await?;
    // With sync on, the other tool must not run what is now recorded as applied.
    crate::sync::follow(driver, set, settings).await?;
    guard.release().await?;
    Ok(report)
}

async fn baseline_locked(
    driver: &mut dyn Driver,
    set: &MigrationSet,
    version: i64,
    force: bool,
    settings: &Settings,
    shadow_url: Option<&DatabaseUrl>,
) -> Result<BaselineReport> {
    let pos = set.position(version).ok_or_else(|| {
        Error::Usage(format!(
            "--version {version}: there is no migration with version {version}"
        ))
    })?;
    history::ensure(driver).await?;
    let h = history::read(driver).await?;
    if !h.entries.is_empty() {
        return Err(Error::Inconsistent(
            "the history is not empty: baseline is for a database that tidemark has never migrated; `tidemark repair` reconciles an existing history".into(),
        ));
    }
    let upto: Vec<&Migration> = set.migrations[..=pos].iter().collect();
    let (expected, _) = replay::final_schema_cached(driver, settings, shadow_url, &upto).await?;
    let live = driver.inspect(&settings.inspect).await?;
    let changes = diff(&expected, &live).changes;
    if !changes.is_empty() && !force {
        let lines: Vec<String> = changes.iter().take(20).map(|c| format!("  {c}")).collect();
        let more = if changes.len() > 20 {
            format!("\n  … and {} more", changes.len() - 20)
        } else {
            String::new()
        };
        return Err(Error::Inconsistent(format!(
            "the live schema is not the state after migration {version} ({} difference(s)):\n{}{more}\n\
             `tidemark repair --dry-run` works out which migrations are really applied; --force records the baseline anyway",
            changes.len(),
            lines.join("\n")
        )));
    }
    driver
        .begin()
        .await
        .map_err(|e| Error::db("could not begin", e))?;
    let r = async {
        for m in &upto {
            let class = settings.class_of(m, driver.dialect());
            history::insert(
                driver,
                &HistoryWrite {
                    version: m.version,
                    name: &m.name,
                    checksum: &m.checksum,
                    state: HistoryState::Applied,
                    execution_ms: 0,
                    applied_by: &settings.actor,
                    error: None,
                    statements_applied: None,
                    lint_class: class,
                },
            )
            .await?;
        }
        let detail = serde_json::json!({ "version": version, "forced": force, "differences": changes.len() });
        history::journal(
            driver,
            &JournalWrite { run_id: &settings.run_id, action: "baseline", version: Some(version), detail: Some(detail.to_string()), actor: &settings.actor },
        )
        .await?;
        if changes.is_empty() {
            history::set_fingerprint(driver, version, live.fingerprint().as_str()).await?;
        }
        Ok::<(), Error>(())
    }
    .await;
    match r {
        Ok(()) => driver
            .commit()
            .await
            .map_err(|e| Error::db("could not commit the baseline", e))?,
        Err(e) => {
            let _ = driver.rollback().await;
            return Err(e);
        }
    }
    Ok(BaselineReport {
        version,
        recorded: upto.iter().map(|m| m.version).collect(),
        changes,
        forced: force,
    })
}
