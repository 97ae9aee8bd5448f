//! The down script must return the schema to where it was before the up script. With replay
//! evidence from a shadow database (see [`crate::replay`]) the rule reports what really
//! remained; without it, it checks what the SQL alone shows: every table, column, index and
//! view the up script creates is dropped again, and every rename is renamed back.

use std::collections::BTreeSet;

use sqlparser::ast::{
    AlterTableOperation, Expr, ObjectName, ObjectType, RenameTableNameKind, Statement,
};
use tidemark_core::{Dialect, MigrationClass};

use crate::analysis::{Ctx, Script, Unit, ident_key, table_key};
use crate::replay::RoundTrip;
use crate::rule::{ALL_DIALECTS, Category, Level, Rule, Sink};
use crate::server::{Fact, ServerParse};
use crate::source::Span;

pub struct DownDoesNotRevert;

const HELP: &str = "make the down script undo every change of the up script, in reverse order";

/// An object as both scripts name it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Object {
    Table(String),
    Column(String, String),
    Index(String),
    View(String),
    /// A rename of a table (old, new) or of a column (table, old, new) in the up script.
    TableRename(String, String),
    ColumnRename(String, String, String),
}

/// What the down script undoes.
#[derive(Default)]
struct Undone {
    tables: BTreeSet<String>,
    columns: BTreeSet<(String, String)>,
    indexes: BTreeSet<String>,
    views: BTreeSet<String>,
    table_renames: BTreeSet<(String, String)>,
    column_renames: BTreeSet<(String, String, String)>,
}

impl Undone {
    fn read(down: &Script) -> Option<Undone> {
        let mut u = Undone::default();
        for s in &down.stmts {
            let ast = match (s.ast.as_deref(), &s.server) {
                (Ok(ast), _) => ast,
                (Err(_), Some(p)) => {
                    u.read_server(p)?;
                    continue;
                }
                // A statement no parser can read may undo anything: no static verdict.
                (Err(_), None) => return None,
            };
            match ast {
                // Everything in the schema goes with it, and names here leave schemas out.
                Statement::Drop {
                    object_type: ObjectType::Schema,
                    cascade: true,
                    ..
                } => return None,
                Statement::Drop {
                    object_type, names, ..
                } => {
                    let set = match object_type {
                        ObjectType::Table => &mut u.tables,
                        ObjectType::Index => &mut u.indexes,
                        ObjectType::View | ObjectType::MaterializedView => &mut u.views,
                        _ => continue,
                    };
                    set.extend(names.iter().map(table_key));
                }
                Statement::AlterTable(a) => {
                    let t = table_key(&a.name);
                    for op in &a.operations {
                        match op {
                            AlterTableOperation::DropColumn { column_names, .. } => u
                                .columns
                                .extend(column_names.iter().map(|c| (t.clone(), ident_key(c)))),
                            AlterTableOperation::DropIndex { name } => {
                                u.indexes.insert(ident_key(name));
                            }
                            AlterTableOperation::RenameTable { table_name } => {
                                let (RenameTableNameKind::As(n) | RenameTableNameKind::To(n)) =
                                    table_name;
                                u.table_renames.insert((t.clone(), table_key(n)));
                            }
                            AlterTableOperation::RenameColumn {
                                old_column_name,
                                new_column_name,
                            } => {
                                u.column_renames.insert((
                                    t.clone(),
                                    ident_key(old_column_name),
                                    ident_key(new_column_name),
                                ));
                            }
                            _ => {}
                        }
                    }
                }
                Statement::RenameTable(rs) => {
                    for r in rs {
                        u.table_renames
                            .insert((table_key(&r.old_name), table_key(&r.new_name)));
                    }
                }
                _ => {}
            }
        }
        Some(u)
    }

    /// What a statement only the server's grammar read undoes, from its facts; None when
    /// what it does is opaque (a `DO` block, `PREPARE`), which may undo anything.
    fn read_server(&mut self, p: &ServerParse) -> Option<()> {
        if p.class == MigrationClass::Unknown || p.drops_schema_cascade {
            return None;
        }
        for fact in &p.facts {
            match fact {
                Fact::DropsTable { table, .. } => {
                    self.tables.insert(table.clone());
                }
                Fact::DropsColumn { table, column } => {
                    self.columns.insert((table.clone(), column.clone()));
                }
                Fact::DropsIndex { name, .. } => {
                    self.indexes.insert(name.clone());
                }
                Fact::DropsView(v) => {
                    self.views.insert(v.clone());
                }
                Fact::RenamesTable { table, to } => {
                    self.table_renames.insert((table.clone(), to.clone()));
                }
                Fact::RenamesColumn { table, column, to } => {
                    self.column_renames
                        .insert((table.clone(), column.clone(), to.clone()));
                }
                _ => {}
            }
        }
        Some(())
    }

    fn undoes(&self, o: &Object) -> bool {
        match o {
            Object::Table(t) => self.tables.contains(t),
            Object::Column(t, c) => {
                self.tables.contains(t) || self.columns.contains(&(t.clone(), c.clone()))
            }
            Object::Index(i) => self.indexes.contains(i),
            Object::View(v) => self.views.contains(v),
            Object::TableRename(old, new) => {
                self.table_renames.contains(&(new.clone(), old.clone()))
            }
            Object::ColumnRename(t, old, new) => {
                self.column_renames
                    .contains(&(t.clone(), new.clone(), old.clone()))
            }
        }
    }
}

fn describe(o: &Object) -> String {
    match o {
        Object::Table(t) => format!("does not drop table `{t}`"),
        Object::Column(t, c) => format!("does not drop column `{t}.{c}`"),
        Object::Index(i) => format!("does not drop index `{i}`"),
        Object::View(v) => format!("does not drop view `{v}`"),
        Object::TableRename(old, new) => format!("does not rename table `{new}` back to `{old}`"),
        Object::ColumnRename(t, old, new) => {
            format!("does not rename column `{t}.{new}` back to `{old}`")
        }
    }
}

/// An index's table and the columns it is built on: dropping either drops the index too.
struct IndexOn {
    table: String,
    columns: Vec<String>,
}

/// The objects an up statement creates or renames.
fn created(ast: &Statement) -> Vec<(Object, Option<IndexOn>)> {
    let key = |n: &ObjectName| table_key(n);
    match ast {
        Statement::CreateTable(t) => vec![(Object::Table(key(&t.name)), None)],
        Statement::CreateIndex(i) => i
            .name
            .as_ref()
            .map(|n| {
                let columns = i
                    .columns
                    .iter()
                    .filter_map(|c| match &c.column.expr {
                        Expr::Identifier(id) => Some(ident_key(id)),
                        _ => None,
                    })
                    .collect();
                let on = IndexOn {
                    table: key(&i.table_name),
                    columns,
                };
                (Object::Index(key(n)), Some(on))
            })
            .into_iter()
            .collect(),
        Statement::CreateView(v) => vec![(Object::View(key(&v.name)), None)],
        Statement::AlterTable(a) => {
            let t = key(&a.name);
            a.operations
                .iter()
                .filter_map(|op| match op {
                    AlterTableOperation::AddColumn { column_def, .. } => {
                        Some((Object::Column(t.clone(), ident_key(&column_def.name)), None))
                    }
                    AlterTableOperation::RenameColumn {
                        old_column_name,
                        new_column_name,
                    } => Some((
                        Object::ColumnRename(
                            t.clone(),
                            ident_key(old_column_name),
                            ident_key(new_column_name),
                        ),
                        None,
                    )),
                    AlterTableOperation::RenameTable { table_name } => {
                        let (RenameTableNameKind::As(n) | RenameTableNameKind::To(n)) = table_name;
                        Some((Object::TableRename(t.clone(), key(n)), None))
                    }
                    _ => None,
                })
                .collect()
        }
        Statement::RenameTable(rs) => rs
            .iter()
            .map(|r| {
                (
                    Object::TableRename(key(&r.old_name), key(&r.new_name)),
                    None,
                )
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The objects a statement only the server's grammar read creates or renames, from its facts.
fn created_by_server(p: &ServerParse) -> Vec<(Object, Option<IndexOn>)> {
    p.facts
        .iter()
        .filter_map(|f| match f {
            Fact::CreatesTable(t) => Some((Object::Table(t.clone()), None)),
            Fact::CreatesIndex {
                table,
                name: Some(name),
                columns,
                ..
            } => Some((
                Object::Index(name.clone()),
                Some(IndexOn {
                    table: table.clone(),
                    columns: columns.clone(),
                }),
            )),
            Fact::AddsColumn { table, column } => {
                Some((Object::Column(table.clone(), column.clone()), None))
            }
            Fact::CreatesView(v) => Some((Object::View(v.clone()), None)),
            Fact::RenamesTable { table, to } => {
                Some((Object::TableRename(table.clone(), to.clone()), None))
            }
            Fact::RenamesColumn { table, column, to } => Some((
                Object::ColumnRename(table.clone(), column.clone(), to.clone()),
                None,
            )),
            _ => None,
        })
        .collect()
}

impl Rule for DownDoesNotRevert {
    fn id(&self) -> &'static str {
        "down-does-not-revert"
    }
    fn category(&self) -> Category {
        Category::Reversibility
    }
    fn default_level(&self) -> Level {
        Level::Warning
    }
    fn dialects(&self) -> &'static [Dialect] {
        ALL_DIALECTS
    }
    fn description(&self) -> &'static str {
        "a down script that does not undo its up script: from the SQL, a created table, column, index or view it does not drop, or a rename it does not reverse; with a shadow-database replay, any schema difference left after up then down"
    }
    fn help(&self) -> &'static str {
        HELP
    }
    fn check(&self, cx: &Ctx, unit: &Unit, sink: &mut Sink) {
        let Some(down) = &unit.down else {
            return; // missing-down says so
        };
        if let Some(evidence) = cx.replay.and_then(|r| r.round_trip(unit.migration.version)) {
            let message = match evidence {
                RoundTrip::Clean => return,
                RoundTrip::Residue(changes) => {
                    let shown: Vec<&str> = changes.iter().take(3).map(String::as_str).collect();
                    let more = changes.len().saturating_sub(shown.len());
                    format!(
                        "after the up and this down script on a shadow database, the schema differs from before the up: {}{}",
                        shown.join("; "),
                        if more > 0 {
                            format!(" (and {more} more)")
                        } else {
                            String::new()
                        }
                    )
                }
                RoundTrip::DownFailed { line, message } => {
                    format!(
                        "this down script failed on a shadow database at line {line}: {message}"
                    )
                }
            };
            sink.report(&down.source, Span::at(0), None, message, HELP);
            return;
        }
        let Some(undone) = Undone::read(down) else {
            return;
        };
        let dropped_tables = &undone.tables;
        for stmt in &unit.up.stmts {
            let objects = match (stmt.ast.as_deref(), &stmt.server) {
                (Ok(ast), _) => created(ast),
                (Err(_), Some(p)) => created_by_server(p),
                (Err(_), None) => continue,
            };
            for (object, index_on) in objects {
                // An index goes away with its table (or materialized view), or with any
                // column it is built on.
                let goes_with = index_on.is_some_and(|on| {
                    dropped_tables.contains(&on.table)
                        || undone.views.contains(&on.table)
                        || on
                            .columns
                            .iter()
                            .any(|c| undone.columns.contains(&(on.table.clone(), c.clone())))
                });
                if undone.undoes(&object) || goes_with {
                    continue;
                }
                sink.statement(
                    &unit.up,
                    stmt,
                    stmt.span(),
                    format!(
                        "the down script ({}) {}",
                        // The file name: the finding itself names the up script's path beside it.
                        down.source
                            .path
                            .file_name()
                            .map_or(down.source.path.display(), |n| std::path::Path::new(n)
                                .display()),
                        describe(&object)
                    ),
                    HELP,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::replay::RoundTrip;
    use crate::testing::lint_files;
    use tidemark_core::Dialect;

    const RULE: &str = "down-does-not-revert";

    fn check(up: &str, down: &str, replay: Option<&dyn crate::ReplayEvidence>) -> Vec<String> {
        let files = [("1_a.up.sql", up), ("1_a.down.sql", down)];
        lint_files(Dialect::Postgres, &files, &[], replay)
            .into_iter()
            .filter(|f| f.starts_with(RULE))
            .map(|f| f[RULE.len() + 1..].to_string())
            .collect()
    }

    #[test]
    fn flags_creations_and_renames_the_down_script_leaves() {
        let up = "CREATE TABLE a (id int);\nALTER TABLE b ADD COLUMN c int;\nCREATE INDEX i ON b (c);\nALTER TABLE d RENAME COLUMN x TO y;";
        assert_eq!(
            check(up, "SELECT 1;", None),
            vec!["1:1", "2:1", "3:1", "4:1"]
        );
        assert_eq!(
            check(
                up,
                "DROP TABLE a;\nALTER TABLE d RENAME COLUMN x TO y;",
                None
            ),
            vec!["2:1", "3:1", "4:1"]
        );
    }

    #[test]
    fn accepts_a_down_script_that_undoes_everything() {
        let up = "CREATE TABLE a (id int);\nALTER TABLE a ADD COLUMN n int;\nCREATE INDEX i ON a (n);\nALTER TABLE b ADD COLUMN c int;\nALTER TABLE d RENAME TO e;";
        let down =
            "ALTER TABLE e RENAME TO d;\nALTER TABLE b DROP COLUMN c;\nDROP TABLE IF EXISTS a;";
        assert!(check(up, down, None).is_empty());
        // Dropping the column an index is built on drops the index.
        let up = "ALTER TABLE b ADD COLUMN c int;\nCREATE INDEX i ON b (c);";
        assert!(check(up, "ALTER TABLE b DROP COLUMN c;", None).is_empty());
        let up = "ALTER TABLE b ADD COLUMN c int;\nCREATE INDEX i ON b (lower(d));";
        assert_eq!(check(up, "ALTER TABLE b DROP COLUMN c;", None), vec!["2:1"]);
    }

    #[test]
    fn reads_what_only_postgresql_s_grammar_reads() {
        use crate::testing::assert_falls_back;
        // The usual pair: an index built and dropped CONCURRENTLY, which sqlparser cannot read
        // in the down script. Before, no verdict at all; now the drop is seen.
        let up = "-- tidemark:no-transaction\nCREATE INDEX CONCURRENTLY i ON users (email);";
        let down = "-- tidemark:no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS i;";
        assert_falls_back("DROP INDEX CONCURRENTLY IF EXISTS i;");
        assert!(check(up, down, None).is_empty());
        assert_eq!(
            check(
                up,
                "-- tidemark:no-transaction\nDROP INDEX CONCURRENTLY IF EXISTS j;",
                None
            ),
            vec!["2:1"]
        );
        // Up statements only the server's grammar reads: an index ON ONLY a partitioned
        // table, a column added beside SET STATISTICS.
        let up = "CREATE INDEX i ON ONLY events (at);\nALTER TABLE users ALTER COLUMN bio SET STATISTICS 100, ADD COLUMN nick text;";
        assert_falls_back("CREATE INDEX i ON ONLY events (at)");
        assert_falls_back(
            "ALTER TABLE users ALTER COLUMN bio SET STATISTICS 100, ADD COLUMN nick text",
        );
        assert_eq!(check(up, "SELECT 1;", None), vec!["1:1", "2:1"]);
        assert!(
            check(
                up,
                "ALTER TABLE users DROP COLUMN nick;\nALTER TABLE events DROP COLUMN at;",
                None
            )
            .is_empty(),
            "dropping the column an index is built on drops the index"
        );
        // An index on a materialized view goes with the view; a schema dropped with CASCADE
        // takes everything in it (names here leave schemas out: no static verdict).
        let up =
            "CREATE MATERIALIZED VIEW m AS SELECT 1 AS id;\nCREATE UNIQUE INDEX m_id ON m (id);";
        assert!(check(up, "DROP MATERIALIZED VIEW m;", None).is_empty());
        let up = "CREATE SCHEMA utils;\nCREATE TABLE utils.saved (id int);";
        assert!(check(up, "DROP SCHEMA utils CASCADE;", None).is_empty());
        assert!(
            check(
                up,
                "DROP SCHEMA IF EXISTS utils CASCADE;\nREINDEX TABLE x;",
                None
            )
            .is_empty()
        );
        // A down script the server's grammar reads but whose effect is opaque (a DO block):
        // still no static verdict.
        assert!(
            check(
                up,
                "DO $$ BEGIN EXECUTE 'ALTER TABLE users DROP COLUMN nick'; END $$;",
                None
            )
            .is_empty()
        );
    }

    #[test]
    fn gives_no_static_verdict_when_the_down_script_does_not_parse() {
        assert!(
            check(
                "CREATE TABLE a (id int);",
                "DO $$ BEGIN EXECUTE 'DROP TABLE a'; END $$;",
                None
            )
            .is_empty()
        );
    }

    #[test]
    fn replay_evidence_beats_the_static_check() {
        let up = "CREATE TABLE a (id int);";
        let residue =
            |v: i64| (v == 1).then(|| RoundTrip::Residue(vec!["table a: unexpected".into()]));
        assert_eq!(check(up, "DROP TABLE a;", Some(&residue)), vec!["1:1"]);
        let clean = |_: i64| Some(RoundTrip::Clean);
        assert!(
            check(up, "SELECT 1;", Some(&clean)).is_empty(),
            "the replay saw it is clean"
        );
        let none = |_: i64| None;
        assert_eq!(
            check(up, "SELECT 1;", Some(&none)),
            vec!["1:1"],
            "no evidence: static check"
        );
    }
}
