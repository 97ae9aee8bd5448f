use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A whole inspected schema. Maps are ordered so that the canonical form is deterministic.
///
/// Object names are as the driver chose to display them: on PostgreSQL an object outside the
/// default schema is written `schema.name`, everywhere else it is the bare name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schema {
    pub tables: BTreeMap<String, Table>,
    pub views: BTreeMap<String, View>,
    pub sequences: BTreeMap<String, Sequence>,
    pub enums: BTreeMap<String, EnumType>,
    pub domains: BTreeMap<String, Domain>,
    /// Keyed by `name(argument types)`, since PostgreSQL allows overloading.
    pub functions: BTreeMap<String, Function>,
    /// Keyed by `table.trigger`.
    pub triggers: BTreeMap<String, Trigger>,
    pub extensions: BTreeMap<String, Extension>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    /// Columns by name. Column order is deliberately not part of the model: the same table built
    /// by `CREATE TABLE` and by a later `ALTER TABLE ADD COLUMN` is the same schema for the
    /// application.
    pub columns: BTreeMap<String, Column>,
    pub primary_key: Option<Vec<String>>,
    /// The primary key constraint's name when it was given one; `None` when the database
    /// generated it (`users_pkey`), like the keys of `uniques`.
    #[serde(default)]
    pub primary_key_name: Option<String>,
    /// Keyed by the constraint's explicit name, or by its definition when the database
    /// generated the name (so `users_email_key` and `users_email_key1` are the same thing).
    pub uniques: BTreeMap<String, Unique>,
    pub checks: BTreeMap<String, Check>,
    pub foreign_keys: BTreeMap<String, ForeignKey>,
    /// Indexes that do not back a constraint, keyed by name.
    pub indexes: BTreeMap<String, Index>,
    /// Dialect details that matter for equality (e.g. MySQL engine, SQLite `WITHOUT ROWID`).
    pub options: BTreeMap<String, String>,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// Normalised type, e.g. `bigint`, `varchar(100)`, `timestamp with time zone`, `text[]`.
    pub data_type: String,
    pub nullable: bool,
    /// Normalised default expression.
    pub default: Option<String>,
    /// `always` or `by default` for identity columns; `auto_increment` / `autoincrement`.
    pub identity: Option<String>,
    /// Generation expression with its kind, e.g. `stored: (price * qty)`.
    pub generated: Option<String>,
    pub collation: Option<String>,
    pub comment: Option<String>,
    /// Dialect details of the column that matter for equality and have no field of their own
    /// (e.g. MySQL `on_update=current_timestamp()`, `invisible=yes`).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unique {
    pub name: Option<String>,
    pub columns: Vec<String>,
    pub nulls_not_distinct: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub name: Option<String>,
    pub expression: String,
    /// PostgreSQL `NOT VALID`.
    pub not_valid: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKey {
    pub name: Option<String>,
    pub columns: Vec<String>,
    pub ref_table: String,
    pub ref_columns: Vec<String>,
    /// Normalised referential actions; `no action` is written as `None`.
    pub on_delete: Option<String>,
    pub on_update: Option<String>,
    pub deferrable: Option<String>,
    pub not_valid: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    pub unique: bool,
    /// Column names or expressions, each with its ordering/opclass suffix when not default.
    pub parts: Vec<String>,
    /// Access method (`btree`, `gin`, `hash`, `fulltext`, …); `btree` is the default.
    pub method: Option<String>,
    pub predicate: Option<String>,
    /// Non-key columns (PostgreSQL `INCLUDE`).
    pub include: Vec<String>,
    /// PostgreSQL 15+ `UNIQUE NULLS NOT DISTINCT`.
    #[serde(default)]
    pub nulls_not_distinct: bool,
    /// PostgreSQL: left invalid by a `CREATE INDEX CONCURRENTLY` that failed. It exists but is
    /// not used (nor, if unique, enforced), so it is not the index the migration made.
    #[serde(default)]
    pub invalid: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    pub definition: String,
    pub materialized: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sequence {
    pub data_type: String,
    pub start: i64,
    pub increment: i64,
    pub min_value: i64,
    pub max_value: i64,
    pub cycle: bool,
    /// `table.column` when the sequence is owned by a column (serial).
    pub owned_by: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnumType {
    pub labels: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Domain {
    pub data_type: String,
    pub nullable: bool,
    pub default: Option<String>,
    pub checks: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Function {
    pub kind: String,
    pub returns: String,
    pub language: String,
    /// The body as stored by the database, whitespace-normalised.
    pub body: String,
    pub volatility: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trigger {
    pub table: String,
    /// The full definition as the database prints it (e.g. `pg_get_triggerdef`).
    pub definition: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extension {
    pub schema: Option<String>,
}

impl Schema {
    /// True when the schema holds no object at all (tidemark's own tables are not counted).
    pub fn is_empty(&self) -> bool {
        self.objects().next().is_none()
    }
}
