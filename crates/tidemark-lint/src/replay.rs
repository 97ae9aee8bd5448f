//! The hook for rules that need a shadow database. Linting itself never connects: a caller
//! that can replay migrations (the CLI, with tidemark-core's `Replayer` on a scratch database)
//! does so first and hands the outcomes in through [`ReplayEvidence`]. Rules that find no
//! evidence for a migration fall back to what they can tell from the SQL alone.

use std::collections::BTreeMap;

/// What applying a migration's up script and then its down script on a shadow database (that
/// holds every earlier migration) did to the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoundTrip {
    /// The schema after the down script equals the schema before the up script.
    Clean,
    /// The schema differs; one line per object, e.g. `column users.role_id: unexpected`.
    Residue(Vec<String>),
    /// The down script failed on the shadow database.
    DownFailed {
        /// Line of the failing statement in the down script's file.
        line: usize,
        message: String,
    },
}

/// Replay outcomes by migration version.
pub trait ReplayEvidence {
    /// The outcome for a version, or `None` when it was not replayed.
    fn round_trip(&self, version: i64) -> Option<RoundTrip>;
}

impl ReplayEvidence for BTreeMap<i64, RoundTrip> {
    fn round_trip(&self, version: i64) -> Option<RoundTrip> {
        self.get(&version).cloned()
    }
}

/// A closure works too, e.g. one that looks outcomes up in a `Vec<Footprint>`.
impl<F: Fn(i64) -> Option<RoundTrip>> ReplayEvidence for F {
    fn round_trip(&self, version: i64) -> Option<RoundTrip> {
        self(version)
    }
}
