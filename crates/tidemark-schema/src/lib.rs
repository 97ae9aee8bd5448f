//! The database-neutral schema model.
//!
//! Every driver's `inspect` produces a [`Schema`]; everything else in tidemark works on this
//! model only. The model has one canonical text form (one line per object, ordered), whose
//! SHA-256 is the schema [`Fingerprint`], and a pure [`diff`] that lists changes object by
//! object. Because tidemark only ever compares two inspections made by the *same* driver (live
//! and shadow), dialect quirks are normalised once, in the driver, and this crate stays free of
//! dialect knowledge and I/O.

mod canonical;
mod diff;
mod model;

pub use canonical::{
    Fingerprint, MIGRATION_TOOL_TABLES, Object, TIDEMARK_TABLES, is_bookkeeping_table,
};
pub use diff::{Change, ChangeKind, Diff, diff};
pub use model::{
    Check, Column, Domain, EnumType, Extension, ForeignKey, Function, Index, Schema, Sequence,
    Table, Trigger, Unique, View,
};
