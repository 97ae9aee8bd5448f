use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::canonical::Object;
use crate::model::Schema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Expected (present in the reference schema, e.g. the replayed migrations), absent live.
    Missing,
    /// Present live only.
    Unexpected,
    /// Present on both sides with different properties.
    Modified,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Missing => "missing",
            ChangeKind::Unexpected => "unexpected",
            ChangeKind::Modified => "modified",
        }
    }
}

/// One difference, object by object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// e.g. `column users.role_id`.
    pub object: String,
    pub kind: ChangeKind,
    /// For `modified`: each changed property as `type varchar(100) → text`; for the others the
    /// object's canonical properties, so a person sees what is missing or extra.
    pub detail: Option<String>,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kind, &self.detail) {
            (ChangeKind::Modified, Some(d)) => write!(f, "{}: {d}", self.object),
            (kind, _) => write!(f, "{}: {}", self.object, kind.as_str()),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diff {
    pub changes: Vec<Change>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Paths of the objects a change touches (for footprints and repair evidence).
    pub fn objects(&self) -> impl Iterator<Item = &str> {
        self.changes.iter().map(|c| c.object.as_str())
    }
}

impl fmt::Display for Diff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.changes {
            writeln!(f, "{c}")?;
        }
        Ok(())
    }
}

fn show(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("(none)")
}

fn properties(o: &Object) -> Option<String> {
    let parts: Vec<String> = o
        .fields
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k} {v}")))
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

fn order_key(o: &Object) -> (String, u8, String) {
    let group = o.parent.clone().unwrap_or_else(|| o.path.clone());
    let rank = match o.path.split(' ').next().unwrap_or("") {
        "table" => 0,
        "column" => 1,
        "primary" => 2,
        "constraint" => 3,
        "index" => 4,
        "trigger" => 5,
        _ => 6,
    };
    (group, rank, o.path.clone())
}

/// Compare `expected` (the reference, e.g. the schema the migrations produce) with `actual`
/// (e.g. the live database). Pure; the order of changes is the canonical object order.
///
/// When a whole table is missing or unexpected, its columns, keys and indexes are not listed
/// one by one: the table is the change.
pub fn diff(expected: &Schema, actual: &Schema) -> Diff {
    let exp: BTreeMap<String, Object> = expected.objects().map(|o| (o.path.clone(), o)).collect();
    let act: BTreeMap<String, Object> = actual.objects().map(|o| (o.path.clone(), o)).collect();
    let order: Vec<&Object> = {
        // One order for both sides: by table (a table, then its columns, keys, indexes), so a
        // person reads the changes of one table together.
        let mut v: Vec<&Object> = exp.values().collect();
        v.extend(act.values().filter(|o| !exp.contains_key(&o.path)));
        v.sort_by_cached_key(|o| order_key(o));
        v
    };
    let whole_tables: BTreeSet<&str> = order
        .iter()
        .filter(|o| o.parent.is_none() && (exp.contains_key(&o.path) != act.contains_key(&o.path)))
        .map(|o| o.path.as_str())
        .collect();

    let mut changes = Vec::new();
    for o in order {
        if o.parent
            .as_deref()
            .is_some_and(|p| whole_tables.contains(p))
        {
            continue;
        }
        match (exp.get(&o.path), act.get(&o.path)) {
            (Some(e), None) => changes.push(Change {
                object: o.path.clone(),
                kind: ChangeKind::Missing,
                detail: properties(e),
            }),
            (None, Some(a)) => changes.push(Change {
                object: o.path.clone(),
                kind: ChangeKind::Unexpected,
                detail: properties(a),
            }),
            (Some(e), Some(a)) if e.fields != a.fields => {
                let mut names: Vec<&'static str> = e.fields.iter().map(|(k, _)| *k).collect();
                for (k, _) in &a.fields {
                    if !names.contains(k) {
                        names.push(k);
                    }
                }
                let details: Vec<String> = names
                    .into_iter()
                    .filter_map(|k| {
                        let ev = e
                            .fields
                            .iter()
                            .find(|(n, _)| *n == k)
                            .and_then(|(_, v)| v.clone());
                        let av = a
                            .fields
                            .iter()
                            .find(|(n, _)| *n == k)
                            .and_then(|(_, v)| v.clone());
                        (ev != av).then(|| format!("{k} {} → {}", show(&ev), show(&av)))
                    })
                    .collect();
                changes.push(Change {
                    object: o.path.clone(),
                    kind: ChangeKind::Modified,
                    detail: Some(details.join("; ")),
                });
            }
            _ => {}
        }
    }
    Diff { changes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Column, Index, Table};

    fn col(t: &str) -> Column {
        Column {
            data_type: t.into(),
            nullable: true,
            ..Default::default()
        }
    }

    fn base() -> Schema {
        let mut s = Schema::default();
        let mut users = Table::default();
        users.columns.insert("id".into(), col("bigint"));
        users.columns.insert("role_id".into(), col("bigint"));
        s.tables.insert("users".into(), users);
        let mut tasks = Table::default();
        tasks.columns.insert("title".into(), col("varchar(100)"));
        s.tables.insert("tasks".into(), tasks);
        s
    }

    #[test]
    fn equal_schemas_have_no_changes() {
        assert!(diff(&base(), &base()).is_empty());
    }

    #[test]
    fn reports_missing_unexpected_and_modified_objects() {
        let expected = base();
        let mut live = base();
        live.tables
            .get_mut("users")
            .unwrap()
            .columns
            .remove("role_id");
        live.tables.get_mut("users").unwrap().indexes.insert(
            "idx_users_email".into(),
            Index {
                unique: true,
                parts: vec!["email".into()],
                ..Default::default()
            },
        );
        live.tables
            .get_mut("tasks")
            .unwrap()
            .columns
            .insert("title".into(), col("text"));
        let d = diff(&expected, &live);
        let lines: Vec<String> = d.changes.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            lines,
            vec![
                "column tasks.title: type varchar(100) → text",
                "column users.role_id: missing",
                "index idx_users_email on users: unexpected",
            ]
        );
    }

    #[test]
    fn a_missing_table_is_one_change_not_one_per_column() {
        let expected = base();
        let mut live = base();
        live.tables.remove("tasks");
        let d = diff(&expected, &live);
        assert_eq!(d.changes.len(), 1);
        assert_eq!(d.changes[0].to_string(), "table tasks: missing");
        let back = diff(&live, &expected);
        assert_eq!(back.changes[0].kind, ChangeKind::Unexpected);
        assert_eq!(back.changes.len(), 1);
    }
}
