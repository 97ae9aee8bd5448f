use std::fmt;

use sha2::{Digest, Sha256};

use crate::model::Schema;

/// tidemark's own bookkeeping tables: never part of the fingerprint or a diff.
pub const TIDEMARK_TABLES: &[&str] = &[
    "tidemark_history",
    "tidemark_journal",
    "tidemark_identity",
    "tidemark_releases",
    "tidemark_repeatable",
];

/// The history tables of other migration tools. They are bookkeeping, not the application's
/// schema: a database taken over from golang-migrate, sqlx, diesel, Flyway, SeaORM, Alembic or
/// dbmate keeps its old table, and it must not count as drift.
pub const MIGRATION_TOOL_TABLES: &[&str] = &[
    "schema_migrations",
    "_sqlx_migrations",
    "__diesel_schema_migrations",
    "flyway_schema_history",
    "seaql_migrations",
    "alembic_version",
];

/// One object of the flattened schema: the unit of the canonical form and of [`crate::diff`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// What the object is, as people read it: `table users`, `column users.email`,
    /// `index idx_users_email on users`.
    pub path: String,
    /// The path of the table this object belongs to, so a diff can report a missing table once
    /// instead of once per column.
    pub parent: Option<String>,
    /// Properties in a fixed order. A property whose value is `None` is absent.
    pub fields: Vec<(&'static str, Option<String>)>,
}

impl Object {
    fn new(path: String, parent: Option<String>) -> Self {
        Object {
            path,
            parent,
            fields: Vec::new(),
        }
    }

    fn field(mut self, name: &'static str, value: impl Into<Option<String>>) -> Self {
        self.fields.push((name, value.into()));
        self
    }

    fn flag(self, name: &'static str, on: bool) -> Self {
        self.field(name, on.then(|| "yes".to_string()))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| v.as_deref())
    }
}

impl fmt::Display for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)?;
        let mut first = true;
        for (name, value) in &self.fields {
            let Some(value) = value else { continue };
            f.write_str(if first { ": " } else { "; " })?;
            first = false;
            write!(f, "{name}={}", escape(value))?;
        }
        Ok(())
    }
}

/// Keep one object per line whatever the value holds.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace(';', "\\;")
}

fn list(items: &[String]) -> String {
    items.join(", ")
}

/// `key=value, …` in key order, or `None` when there are none (so an empty map adds nothing to
/// the canonical form).
fn options(map: &std::collections::BTreeMap<String, String>) -> Option<String> {
    (!map.is_empty()).then(|| {
        map.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

/// Bookkeeping tables (tidemark's and other migration tools') are left out of the canonical
/// form, the fingerprint and every diff.
pub fn is_bookkeeping_table(name: &str) -> bool {
    let bare = name.rsplit('.').next().unwrap_or(name);
    TIDEMARK_TABLES.contains(&bare) || MIGRATION_TOOL_TABLES.contains(&bare)
}

impl Schema {
    /// Flatten the schema into objects in canonical order (tidemark's own tables left out).
    pub fn objects(&self) -> impl Iterator<Item = Object> + '_ {
        let mut out = Vec::new();
        for (name, ext) in &self.extensions {
            out.push(
                Object::new(format!("extension {name}"), None).field("schema", ext.schema.clone()),
            );
        }
        for (name, e) in &self.enums {
            out.push(Object::new(format!("enum {name}"), None).field("labels", list(&e.labels)));
        }
        for (name, d) in &self.domains {
            out.push(
                Object::new(format!("domain {name}"), None)
                    .field("type", d.data_type.clone())
                    .flag("not_null", !d.nullable)
                    .field("default", d.default.clone())
                    .field("checks", (!d.checks.is_empty()).then(|| list(&d.checks))),
            );
        }
        for (name, s) in &self.sequences {
            out.push(
                Object::new(format!("sequence {name}"), None)
                    .field("type", s.data_type.clone())
                    .field("start", s.start.to_string())
                    .field("increment", s.increment.to_string())
                    .field("min", s.min_value.to_string())
                    .field("max", s.max_value.to_string())
                    .flag("cycle", s.cycle)
                    .field("owned_by", s.owned_by.clone()),
            );
        }
        for (tname, t) in self.tables.iter().filter(|(n, _)| !is_bookkeeping_table(n)) {
            let tpath = format!("table {tname}");
            let mut opts: Vec<String> = t.options.iter().map(|(k, v)| format!("{k}={v}")).collect();
            opts.sort();
            out.push(
                Object::new(tpath.clone(), None)
                    .field("options", (!opts.is_empty()).then(|| list(&opts)))
                    .field("comment", t.comment.clone()),
            );
            let parent = Some(tpath);
            for (cname, c) in &t.columns {
                out.push(
                    Object::new(format!("column {tname}.{cname}"), parent.clone())
                        .field("type", c.data_type.clone())
                        .flag("not_null", !c.nullable)
                        .field("default", c.default.clone())
                        .field("identity", c.identity.clone())
                        .field("generated", c.generated.clone())
                        .field("collation", c.collation.clone())
                        .field("comment", c.comment.clone())
                        .field("options", options(&c.options)),
                );
            }
            if let Some(pk) = &t.primary_key {
                out.push(
                    Object::new(format!("primary key on {tname}"), parent.clone())
                        .field("columns", list(pk))
                        .field("name", t.primary_key_name.clone()),
                );
            }
            for (key, u) in &t.uniques {
                out.push(
                    Object::new(format!("constraint {key} on {tname}"), parent.clone())
                        .field("unique", list(&u.columns))
                        .flag("nulls_not_distinct", u.nulls_not_distinct),
                );
            }
            for (key, c) in &t.checks {
                out.push(
                    Object::new(format!("constraint {key} on {tname}"), parent.clone())
                        .field("check", c.expression.clone())
                        .flag("not_valid", c.not_valid),
                );
            }
            for (key, fk) in &t.foreign_keys {
                out.push(
                    Object::new(format!("constraint {key} on {tname}"), parent.clone())
                        .field("foreign_key", list(&fk.columns))
                        .field(
                            "references",
                            format!("{}({})", fk.ref_table, list(&fk.ref_columns)),
                        )
                        .field("on_delete", fk.on_delete.clone())
                        .field("on_update", fk.on_update.clone())
                        .field("deferrable", fk.deferrable.clone())
                        .flag("not_valid", fk.not_valid),
                );
            }
            for (iname, i) in &t.indexes {
                out.push(
                    Object::new(format!("index {iname} on {tname}"), parent.clone())
                        .flag("unique", i.unique)
                        .flag("nulls_not_distinct", i.nulls_not_distinct)
                        .flag("invalid", i.invalid)
                        .field("parts", list(&i.parts))
                        .field("method", i.method.clone())
                        .field("include", (!i.include.is_empty()).then(|| list(&i.include)))
                        .field("where", i.predicate.clone()),
                );
            }
        }
        for (name, v) in &self.views {
            let kind = if v.materialized {
                "materialized view"
            } else {
                "view"
            };
            out.push(
                Object::new(format!("{kind} {name}"), None)
                    .field("definition", v.definition.clone()),
            );
        }
        for (name, func) in &self.functions {
            out.push(
                Object::new(format!("{} {name}", func.kind), None)
                    .field("returns", func.returns.clone())
                    .field("language", func.language.clone())
                    .field("volatility", func.volatility.clone())
                    .field("body", func.body.clone()),
            );
        }
        for (key, trg) in &self.triggers {
            if is_bookkeeping_table(&trg.table) {
                continue;
            }
            let name = key.strip_prefix(&format!("{}.", trg.table)).unwrap_or(key);
            out.push(
                Object::new(
                    format!("trigger {name} on {}", trg.table),
                    Some(format!("table {}", trg.table)),
                )
                .field("definition", trg.definition.clone()),
            );
        }
        out.into_iter()
    }

    /// The canonical text: one line per object, in a fixed order, ending with a newline.
    pub fn canonical(&self) -> String {
        let mut s = String::new();
        for o in self.objects() {
            s.push_str(&o.to_string());
            s.push('\n');
        }
        s
    }

    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of_canonical(&self.canonical())
    }
}

/// SHA-256 (hex) of a schema's canonical form.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct Fingerprint(pub String);

impl Fingerprint {
    pub fn of_canonical(canonical: &str) -> Self {
        Fingerprint(hex::encode(Sha256::digest(canonical.as_bytes())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 hex digits, enough for people to compare two fingerprints at a glance.
    pub fn short(&self) -> &str {
        &self.0[..self.0.len().min(12)]
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Column, Table};

    fn users() -> Schema {
        let mut s = Schema::default();
        let mut t = Table::default();
        t.columns.insert(
            "id".into(),
            Column {
                data_type: "bigint".into(),
                ..Default::default()
            },
        );
        t.columns.insert(
            "email".into(),
            Column {
                data_type: "text".into(),
                nullable: true,
                default: Some("'a;b'".into()),
                ..Default::default()
            },
        );
        t.primary_key = Some(vec!["id".into()]);
        s.tables.insert("users".into(), t);
        s
    }

    #[test]
    fn canonical_is_one_line_per_object_and_escapes_separators() {
        assert_eq!(
            users().canonical(),
            "table users\n\
             column users.email: type=text; default='a\\;b'\n\
             column users.id: type=bigint; not_null=yes\n\
             primary key on users: columns=id\n"
        );
    }

    #[test]
    fn tidemark_tables_are_not_part_of_the_fingerprint() {
        let plain = users();
        let mut with_history = users();
        with_history
            .tables
            .insert("tidemark_history".into(), Table::default());
        with_history
            .tables
            .insert("public.tidemark_journal".into(), Table::default());
        with_history
            .tables
            .insert("tidemark_identity".into(), Table::default());
        assert_eq!(plain.fingerprint(), with_history.fingerprint());
        assert_eq!(plain.fingerprint().as_str().len(), 64);
    }

    #[test]
    fn fingerprint_changes_with_any_property() {
        let a = users();
        let mut b = users();
        b.tables
            .get_mut("users")
            .unwrap()
            .columns
            .get_mut("email")
            .unwrap()
            .nullable = false;
        assert_ne!(a.fingerprint(), b.fingerprint());
    }

    #[test]
    fn column_options_are_listed_in_key_order_and_absent_when_empty() {
        let mut s = users();
        let email = s
            .tables
            .get_mut("users")
            .unwrap()
            .columns
            .get_mut("email")
            .unwrap();
        email.options.insert("on_update".into(), "now()".into());
        email.options.insert("invisible".into(), "yes".into());
        let canonical = s.canonical();
        assert!(
            canonical.contains("column users.email: type=text; default='a\\;b'; options=invisible=yes, on_update=now()\n"),
            "{canonical}"
        );
        assert!(canonical.contains("column users.id: type=bigint; not_null=yes\n"));
    }

    #[test]
    fn empty_schema_is_empty() {
        let mut s = Schema::default();
        assert!(s.is_empty());
        s.tables.insert("tidemark_history".into(), Table::default());
        assert!(
            s.is_empty(),
            "tidemark's own tables do not make a schema non-empty"
        );
        assert!(!users().is_empty());
    }
}
