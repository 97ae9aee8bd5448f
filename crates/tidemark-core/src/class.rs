//! What a migration does to the release that is running when it is applied: the classification
//! the application gate and the rollback policy rely on.
//!
//! Core only defines the classes and the [`Classifier`] hook; the classifier itself parses SQL
//! and lives in `tidemark-lint`. The class is recorded in the history when a migration is
//! applied, so that an older release, which no longer has the file, can still judge it.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::driver::Dialect;
use crate::migration::Migration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MigrationClass {
    /// Adds objects or relaxes rules: the release before it keeps working, nothing is lost.
    ExpandOnly,
    /// Something could not be classified (a statement the parser cannot read, or one no rule
    /// knows). Treated like `Contract`: never as expand-only.
    Unknown,
    /// Renames, tightens, rewrites data in place or removes something the release before it
    /// may use; no data is lost.
    Contract,
    /// Loses data: drops a table or column, deletes or truncates rows.
    Destructive,
}

impl MigrationClass {
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationClass::ExpandOnly => "expand-only",
            MigrationClass::Unknown => "unknown",
            MigrationClass::Contract => "contract",
            MigrationClass::Destructive => "destructive",
        }
    }

    /// True only for expand-only: an older release may run on the schema after it.
    pub fn keeps_older_release_working(self) -> bool {
        self == MigrationClass::ExpandOnly
    }
}

impl fmt::Display for MigrationClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MigrationClass {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "expand-only" => Ok(MigrationClass::ExpandOnly),
            "unknown" => Ok(MigrationClass::Unknown),
            "contract" => Ok(MigrationClass::Contract),
            "destructive" => Ok(MigrationClass::Destructive),
            other => Err(format!("unknown migration class `{other}`")),
        }
    }
}

/// A migration's class and the statements that decided it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Classification {
    pub class: MigrationClass,
    /// Why, one line per deciding statement (`line 3: DROP COLUMN users.email`); empty for a
    /// migration that only expands.
    pub reasons: Vec<String>,
}

/// Classifies migrations (implemented by `tidemark-lint`).
pub trait Classifier: Send + Sync {
    fn classify(&self, migration: &Migration, dialect: Dialect) -> Classification;
}

impl fmt::Debug for dyn Classifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Classifier")
    }
}
