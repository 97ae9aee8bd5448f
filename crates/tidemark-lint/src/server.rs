//! The server's own grammar, for the statements the dialect's `sqlparser` parser cannot read.
//!
//! PostgreSQL: libpg_query (the `pg_query` crate), which is the parser of PostgreSQL itself, so
//! a statement it accepts is one the server accepts, and one it rejects is one the server
//! rejects. What it reads is summarised as a [`ServerParse`]: the statement's class, and the
//! facts the data-loss, rename and index rules need (tables and columns dropped or renamed,
//! indexes built), so those rules see the statement too.
//!
//! MySQL and SQLite have no such parser to link: a few shapes that real projects use and that
//! `sqlparser` refuses are recognised instead (see [`mysql`]).

use pg_query::NodeEnum;
use pg_query::protobuf::{
    AlterTableCmd, AlterTableType as At, ConstrType, DropStmt, Node, ObjectType as Obj, RangeVar,
};
use tidemark_core::MigrationClass;

use MigrationClass::{Contract, Destructive, ExpandOnly, Unknown};

/// What the server's grammar read in one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerParse {
    /// The statement's class and why (the reason is empty for expand-only), before the
    /// migration's context: a change to a table the migration creates is expand-only, which
    /// the classifier decides from [`Fact::CreatesTable`] and [`ServerParse::table`].
    pub class: MigrationClass,
    pub why: &'static str,
    /// The table an `ALTER TABLE`, `CREATE INDEX` or rename is about, as [`crate::analysis::ident_key`]
    /// compares names (unquoted names arrive folded to lower case).
    pub table: Option<String>,
    pub facts: Vec<Fact>,
}

/// What a rule may need to know about a statement only the server's grammar could read.
/// Offsets are byte offsets in the statement text, where the grammar gives one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fact {
    CreatesTable(String),
    DropsTable {
        table: String,
        at: usize,
    },
    DropsColumn {
        table: String,
        column: String,
    },
    CreatesIndex {
        table: String,
        unique: bool,
        concurrently: bool,
        at: usize,
    },
    RenamesTable {
        table: String,
        to: String,
    },
    RenamesColumn {
        table: String,
        column: String,
        to: String,
    },
}

/// Parse one PostgreSQL statement with PostgreSQL's own grammar: what it holds, or the
/// server's error message.
pub fn postgres(text: &str) -> Result<ServerParse, String> {
    let parsed = pg_query::parse(text, 0).map_err(|e| match e {
        pg_query::Error::Parse(m) => m,
        other => other.to_string(),
    })?;
    let stmts = &parsed.protobuf.stmts;
    if stmts.len() != 1 {
        return Err(format!(
            "PostgreSQL's parser reads {} statements where the splitter found one",
            stmts.len()
        ));
    }
    let node = stmts[0].stmt.as_ref().and_then(|n| n.node.as_ref());
    Ok(node.map_or_else(|| ServerParse::new(ExpandOnly, ""), |n| statement(n, text)))
}

impl ServerParse {
    fn new(class: MigrationClass, why: &'static str) -> ServerParse {
        ServerParse {
            class,
            why,
            table: None,
            facts: Vec::new(),
        }
    }

    fn on(mut self, table: Option<String>) -> ServerParse {
        self.table = table;
        self
    }

    fn with(mut self, fact: Fact) -> ServerParse {
        self.facts.push(fact);
        self
    }
}

const REPLACES_FUNCTION: &str = "replaces a function the running release may call";
const DROPS_OBJECT: &str = "drops an object the running release may use";
const RENAMES: &str = "renames something the running release uses";

fn statement(node: &NodeEnum, text: &str) -> ServerParse {
    use ServerParse as P;
    match node {
        NodeEnum::DoStmt(_) => P::new(
            Unknown,
            "a DO block runs PL/pgSQL, which no rule reads: what it changes is not known",
        ),
        NodeEnum::PrepareStmt(_) | NodeEnum::ExecuteStmt(_) => {
            P::new(Unknown, "runs a prepared statement, which no rule reads")
        }
        NodeEnum::DeallocateStmt(_)
        | NodeEnum::CommentStmt(_)
        | NodeEnum::CreateStatsStmt(_)
        | NodeEnum::ReindexStmt(_)
        | NodeEnum::ClusterStmt(_)
        | NodeEnum::VacuumStmt(_)
        | NodeEnum::VariableSetStmt(_)
        | NodeEnum::TransactionStmt(_)
        | NodeEnum::GrantStmt(_)
        | NodeEnum::GrantRoleStmt(_)
        | NodeEnum::AlterDefaultPrivilegesStmt(_)
        | NodeEnum::AlterOwnerStmt(_)
        | NodeEnum::CreateRoleStmt(_)
        | NodeEnum::CreateSeqStmt(_)
        | NodeEnum::CreateEnumStmt(_)
        | NodeEnum::CompositeTypeStmt(_)
        | NodeEnum::CreateDomainStmt(_)
        | NodeEnum::CreateExtensionStmt(_)
        | NodeEnum::CreateSchemaStmt(_)
        | NodeEnum::CreateTrigStmt(_)
        | NodeEnum::CreateTableAsStmt(_)
        | NodeEnum::RefreshMatViewStmt(_)
        | NodeEnum::InsertStmt(_)
        | NodeEnum::SelectStmt(_) => P::new(ExpandOnly, ""),
        NodeEnum::CreateStmt(c) => {
            let table = relation(c.relation.as_ref());
            let p = P::new(ExpandOnly, "");
            match table {
                Some(t) => p.with(Fact::CreatesTable(t)),
                None => p,
            }
        }
        NodeEnum::IndexStmt(i) => {
            let table = relation(i.relation.as_ref()).unwrap_or_default();
            let at = i.relation.as_ref().map_or(0, |r| offset(r.location, text));
            let p = if i.unique {
                P::new(
                    Contract,
                    "a unique index on an existing table refuses writes the running release may make",
                )
            } else {
                P::new(ExpandOnly, "")
            };
            p.on(Some(table.clone())).with(Fact::CreatesIndex {
                table,
                unique: i.unique,
                concurrently: i.concurrent,
                at,
            })
        }
        NodeEnum::CreateFunctionStmt(f) if f.replace => P::new(Contract, REPLACES_FUNCTION),
        NodeEnum::CreateFunctionStmt(_) => P::new(ExpandOnly, ""),
        NodeEnum::ViewStmt(v) if v.replace => {
            P::new(Contract, "replaces a view the running release may read")
        }
        NodeEnum::ViewStmt(_) => P::new(ExpandOnly, ""),
        NodeEnum::AlterEnumStmt(e) if !e.old_val.is_empty() => {
            P::new(Contract, "renames a type's value the running release uses")
        }
        NodeEnum::AlterEnumStmt(_) => P::new(ExpandOnly, ""),
        NodeEnum::AlterSeqStmt(_) => P::new(
            Contract,
            "changes a sequence the running release draws values from",
        ),
        NodeEnum::AlterFunctionStmt(_) => {
            P::new(Contract, "changes a function the running release may call")
        }
        NodeEnum::AlterObjectSchemaStmt(_) => P::new(
            Contract,
            "moves an object to another schema: the running release may not find it",
        ),
        NodeEnum::CreatePolicyStmt(_) | NodeEnum::AlterPolicyStmt(_) => P::new(
            Contract,
            "a row security policy can hide rows from the running release",
        ),
        NodeEnum::RenameStmt(r) => {
            let table = relation(r.relation.as_ref());
            let mut p = P::new(Contract, RENAMES).on(table.clone());
            match (Obj::try_from(r.rename_type), table) {
                (Ok(Obj::ObjectTable), Some(t)) => {
                    p = p.with(Fact::RenamesTable {
                        table: t,
                        to: r.newname.clone(),
                    });
                }
                (Ok(Obj::ObjectColumn), Some(t)) => {
                    p = p.with(Fact::RenamesColumn {
                        table: t,
                        column: r.subname.clone(),
                        to: r.newname.clone(),
                    });
                }
                _ => {}
            }
            p
        }
        NodeEnum::DropStmt(d) => drop(d, text),
        NodeEnum::DropdbStmt(_) => P::new(Destructive, "drops data"),
        NodeEnum::TruncateStmt(_) => P::new(Destructive, "deletes every row"),
        NodeEnum::DeleteStmt(_) => P::new(Destructive, "deletes rows"),
        NodeEnum::UpdateStmt(_) | NodeEnum::MergeStmt(_) => P::new(
            Contract,
            "rewrites data in place: the running release may read it differently",
        ),
        NodeEnum::AlterTableStmt(a) => {
            let table = relation(a.relation.as_ref());
            let mut p = P::new(ExpandOnly, "").on(table.clone());
            for cmd in &a.cmds {
                let Some(NodeEnum::AlterTableCmd(cmd)) = cmd.node.as_ref() else {
                    continue;
                };
                let (class, why) = alter_table_cmd(cmd);
                if class > p.class {
                    p.class = class;
                    p.why = why;
                }
                if At::try_from(cmd.subtype) == Ok(At::AtDropColumn)
                    && let Some(t) = &table
                {
                    p.facts.push(Fact::DropsColumn {
                        table: t.clone(),
                        column: cmd.name.clone(),
                    });
                }
            }
            p
        }
        _ => P::new(Unknown, "no rule knows this kind of statement"),
    }
}

fn drop(d: &DropStmt, text: &str) -> ServerParse {
    let kind = Obj::try_from(d.remove_type).unwrap_or(Obj::Undefined);
    let mut p = match kind {
        Obj::ObjectTable | Obj::ObjectSchema => ServerParse::new(Destructive, "drops data"),
        Obj::ObjectSequence => ServerParse::new(
            Destructive,
            "drops a sequence and the position it had reached",
        ),
        Obj::ObjectIndex => ServerParse::new(
            Contract,
            "drops an index the running release may rely on (e.g. ON CONFLICT)",
        ),
        // Extended statistics only inform the planner: no query names them.
        Obj::ObjectStatisticExt => ServerParse::new(ExpandOnly, ""),
        _ => ServerParse::new(Contract, DROPS_OBJECT),
    };
    if kind == Obj::ObjectTable {
        for name in d.objects.iter().filter_map(last_name) {
            let at = word_offset(text, &name).unwrap_or(0);
            p.facts.push(Fact::DropsTable { table: name, at });
        }
    }
    p
}

fn alter_table_cmd(cmd: &AlterTableCmd) -> (MigrationClass, &'static str) {
    let Ok(kind) = At::try_from(cmd.subtype) else {
        return (Unknown, "no rule knows this table change");
    };
    match kind {
        At::AtAddColumn => {
            let Some(NodeEnum::ColumnDef(col)) = cmd.def.as_ref().and_then(|d| d.node.as_ref())
            else {
                return (Unknown, "no rule knows this table change");
            };
            let has = |t: ConstrType| {
                col.constraints.iter().any(|c| {
                    matches!(c.node.as_ref(), Some(NodeEnum::Constraint(c)) if c.contype == t as i32)
                })
            };
            let valued = col.raw_default.is_some()
                || has(ConstrType::ConstrDefault)
                || has(ConstrType::ConstrIdentity)
                || has(ConstrType::ConstrGenerated);
            if (col.is_not_null || has(ConstrType::ConstrNotnull)) && !valued {
                (
                    Contract,
                    "a NOT NULL column without a default: the running release's inserts do not set it",
                )
            } else {
                (ExpandOnly, "")
            }
        }
        At::AtDropColumn => (Destructive, "drops a column and its data"),
        At::AtAlterColumnType => (
            Contract,
            "changes a column's type (values may be converted or cut)",
        ),
        At::AtSetNotNull => (
            Contract,
            "NOT NULL refuses the running release's writes without a value",
        ),
        At::AtColumnDefault if cmd.def.is_none() => (
            Contract,
            "the running release's inserts may rely on the default",
        ),
        At::AtAddConstraint | At::AtAddIndexConstraint | At::AtAddIndex => (
            Contract,
            "a new constraint refuses writes the running release may make",
        ),
        At::AtAlterConstraint => (
            Contract,
            "changes when a constraint is checked, which the running release may rely on",
        ),
        At::AtDropConstraint => (
            Contract,
            "drops a key or index the running release may rely on (e.g. ON CONFLICT)",
        ),
        At::AtDropIdentity | At::AtDropExpression => (
            Contract,
            "the running release's inserts may rely on the generated value",
        ),
        At::AtAttachPartition | At::AtDetachPartition | At::AtDetachPartitionFinalize => (
            Contract,
            "moves rows into or out of the table the running release reads",
        ),
        At::AtEnableRowSecurity | At::AtForceRowSecurity => (
            Contract,
            "row security can hide rows from the running release",
        ),
        At::AtEnableTrig
        | At::AtEnableAlwaysTrig
        | At::AtEnableReplicaTrig
        | At::AtDisableTrig
        | At::AtEnableTrigAll
        | At::AtDisableTrigAll
        | At::AtEnableTrigUser
        | At::AtDisableTrigUser
        | At::AtEnableRule
        | At::AtEnableAlwaysRule
        | At::AtEnableReplicaRule
        | At::AtDisableRule => (
            Contract,
            "changes which triggers or rules fire on the running release's writes",
        ),
        At::AtColumnDefault
        | At::AtDropNotNull
        | At::AtValidateConstraint
        | At::AtSetStatistics
        | At::AtSetOptions
        | At::AtResetOptions
        | At::AtSetStorage
        | At::AtSetCompression
        | At::AtChangeOwner
        | At::AtClusterOn
        | At::AtDropCluster
        | At::AtSetLogged
        | At::AtSetUnLogged
        | At::AtSetAccessMethod
        | At::AtSetTableSpace
        | At::AtSetRelOptions
        | At::AtResetRelOptions
        | At::AtReplaceRelOptions
        | At::AtReplicaIdentity
        | At::AtDisableRowSecurity
        | At::AtNoForceRowSecurity
        | At::AtAddIdentity
        | At::AtSetIdentity => (ExpandOnly, ""),
        _ => (Unknown, "no rule knows this table change"),
    }
}

/// A relation's name as [`crate::analysis::table_key`] compares it.
fn relation(r: Option<&RangeVar>) -> Option<String> {
    r.map(|r| r.relname.clone()).filter(|n| !n.is_empty())
}

/// The last part of a qualified name (`schema.table` → `table`).
fn last_name(n: &Node) -> Option<String> {
    match n.node.as_ref()? {
        NodeEnum::List(l) => match l.items.last()?.node.as_ref()? {
            NodeEnum::String(s) => Some(s.sval.clone()),
            _ => None,
        },
        NodeEnum::String(s) => Some(s.sval.clone()),
        _ => None,
    }
}

/// Where `name` first stands as a whole word in `text` (ASCII case-insensitive).
pub(crate) fn word_offset(text: &str, name: &str) -> Option<usize> {
    let lower = text.to_ascii_lowercase();
    let name = name.to_ascii_lowercase();
    let ident = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_');
    lower.match_indices(&name).map(|(i, _)| i).find(|&i| {
        !ident(i.checked_sub(1).and_then(|j| lower.as_bytes().get(j)))
            && !ident(lower.as_bytes().get(i + name.len()))
    })
}

/// A location the grammar gives (-1 when it has none) as a byte offset in the text.
fn offset(location: i32, text: &str) -> usize {
    usize::try_from(location)
        .ok()
        .filter(|o| *o <= text.len())
        .unwrap_or(0)
}

/// MySQL statements real projects use that `sqlparser` refuses, recognised by their words.
pub mod mysql {
    use super::ServerParse;
    use crate::analysis::Word;
    use tidemark_core::MigrationClass::Unknown;

    /// `PREPARE stmt FROM @sql` (with `EXECUTE stmt`, the idiom for DDL that depends on the
    /// schema, e.g. dropping a foreign key only if it exists): the SQL it runs is built at run
    /// time, so no rule can read it.
    pub fn recognise(words: &[Word]) -> Option<ServerParse> {
        let w: Vec<&str> = words.iter().take(3).map(|w| w.upper.as_str()).collect();
        match w.as_slice() {
            ["PREPARE", _, "FROM"] => Some(ServerParse::new(
                Unknown,
                "prepares SQL built at run time, which no rule can read",
            )),
            _ => None,
        }
    }

    /// `sqlparser` does not know MySQL's `BINARY` column attribute (`VARCHAR(255) BINARY`, a
    /// binary collation for the column): the text with that word blanked out, same length, so
    /// every parser position still points into the original statement.
    pub fn without_binary_attribute(text: &str, words: &[Word]) -> Option<String> {
        let mut out = text.to_string();
        let mut changed = false;
        for (i, w) in words.iter().enumerate() {
            if w.upper != "BINARY" || i == 0 {
                continue;
            }
            // The attribute follows a character type or its length: `VARCHAR(255) BINARY`,
            // `TEXT BINARY`, `CHAR BINARY`. Elsewhere BINARY is a type or an operator.
            let before = text[..w.start].trim_end();
            let after_type = before.ends_with(')')
                || [
                    "CHAR",
                    "VARCHAR",
                    "TEXT",
                    "TINYTEXT",
                    "MEDIUMTEXT",
                    "LONGTEXT",
                ]
                .iter()
                .any(|t| before.to_ascii_uppercase().ends_with(t));
            if after_type {
                out.replace_range(w.start..w.end, &" ".repeat(w.end - w.start));
                changed = true;
            }
        }
        changed.then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg(sql: &str) -> ServerParse {
        postgres(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Every shape that made the fallback necessary on real projects' histories, written
    /// here in the same shape, with the class PostgreSQL's grammar lets us give it.
    #[test]
    fn shapes_sqlparser_cannot_read_get_a_class() {
        let cases: &[(&str, MigrationClass)] = &[
            ("DO $$ BEGIN PERFORM 1; END $$", Unknown),
            (
                "DO $$ DECLARE n int; BEGIN SELECT count(*) INTO n FROM t; END $$ LANGUAGE plpgsql",
                Unknown,
            ),
            ("DROP INDEX CONCURRENTLY IF EXISTS idx_a", Contract),
            ("drop index concurrently idx_a", Contract),
            ("COMMENT ON FUNCTION f(int4) IS NULL", ExpandOnly),
            ("COMMENT ON FUNCTION g(integer[]) IS 'why'", ExpandOnly),
            ("comment on constraint c_fk on t is 'why'", ExpandOnly),
            ("ALTER INDEX IF EXISTS old_idx RENAME TO new_idx", Contract),
            ("ALTER SEQUENCE a_id_seq RENAME TO b_id_seq", Contract),
            ("ALTER SEQUENCE a_id_seq OWNED BY a.id", Contract),
            ("REINDEX TABLE t", ExpandOnly),
            (
                "CREATE STATISTICS s (dependencies) ON a, b FROM t",
                ExpandOnly,
            ),
            ("DROP STATISTICS s1, s2", ExpandOnly),
            (
                "ALTER TABLE t ALTER CONSTRAINT t_fk NOT DEFERRABLE",
                Contract,
            ),
            ("ALTER TABLE t ADD CONSTRAINT t_nn NOT NULL c", Contract),
            (
                "CREATE TABLE t (a int, CONSTRAINT t_a_nn NOT NULL a, PRIMARY KEY (a))",
                ExpandOnly,
            ),
            (
                "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql COST 100 AS $b$ SELECT 1 $b$",
                Contract,
            ),
            ("PREPARE p AS SELECT 1", Unknown),
            (
                "ALTER TABLE t ALTER COLUMN c SET STATISTICS 1000, DROP COLUMN d",
                Destructive,
            ),
        ];
        let mut wrong = Vec::new();
        for (sql, want) in cases {
            let got = pg(sql);
            if got.class != *want {
                wrong.push(format!(
                    "{sql}: want {want}, got {} ({})",
                    got.class, got.why
                ));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn facts_for_the_rules() {
        assert_eq!(
            pg("ALTER TABLE t ALTER COLUMN c SET STATISTICS 1000, DROP COLUMN d").facts,
            vec![Fact::DropsColumn {
                table: "t".into(),
                column: "d".into()
            }]
        );
        assert_eq!(
            pg("CREATE TABLE \"T\" (a int, CONSTRAINT n NOT NULL a)").facts,
            vec![Fact::CreatesTable("T".into())]
        );
        let sql =
            "CREATE UNIQUE INDEX CONCURRENTLY i ON app.users (lower(email)) NULLS NOT DISTINCT";
        assert_eq!(
            pg(sql).facts,
            vec![Fact::CreatesIndex {
                table: "users".into(),
                unique: true,
                concurrently: true,
                at: sql.find("app.users").unwrap(),
            }]
        );
        assert_eq!(
            pg("DROP TABLE IF EXISTS a, app.b CASCADE").facts,
            vec![
                Fact::DropsTable {
                    table: "a".into(),
                    at: 21
                },
                Fact::DropsTable {
                    table: "b".into(),
                    at: 28
                },
            ]
        );
    }

    #[test]
    fn renames_are_facts() {
        assert_eq!(
            pg("ALTER TABLE t RENAME a TO b").facts,
            vec![Fact::RenamesColumn {
                table: "t".into(),
                column: "a".into(),
                to: "b".into()
            }]
        );
        assert_eq!(
            pg("ALTER TABLE IF EXISTS ONLY t RENAME TO u").facts,
            vec![Fact::RenamesTable {
                table: "t".into(),
                to: "u".into()
            }]
        );
        assert!(pg("ALTER INDEX IF EXISTS i RENAME TO j").facts.is_empty());
    }

    #[test]
    fn the_server_rejects_what_is_not_sql() {
        // A missing semicolon between two statements: sqlparser refuses it and so does the
        // server, which says where.
        let e =
            postgres("ALTER TABLE t DROP CONSTRAINT t_pkey\nALTER TABLE t ADD c int").unwrap_err();
        assert_eq!(e, "syntax error at or near \"ALTER\"");
        assert!(
            postgres("SELECT 1; SELECT 2")
                .unwrap_err()
                .contains("2 statements")
        );
    }

    #[test]
    fn mysql_shapes() {
        let words =
            |s: &str| crate::analysis::Stmt::new(0, s.into(), 0, tidemark_core::Dialect::MySql);
        let s = words("PREPARE stmt FROM @drop_fk");
        assert!(s.ast.is_err() || s.server.is_some());
        assert_eq!(mysql::recognise(&s.words).map(|p| p.class), Some(Unknown));
        let text = "ALTER TABLE t MODIFY COLUMN code VARCHAR(255) BINARY";
        let s = words(text);
        let blanked = mysql::without_binary_attribute(text, &s.words).unwrap();
        assert_eq!(blanked.len(), text.len());
        assert!(!blanked.contains("BINARY"));
        assert!(
            mysql::without_binary_attribute(
                "SELECT BINARY 'a' = 'A'",
                &words("SELECT BINARY 'a' = 'A'").words
            )
            .is_none()
        );
    }
}
