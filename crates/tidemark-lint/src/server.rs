//! The server's own grammar, for the statements the dialect's `sqlparser` parser cannot read.
//!
//! PostgreSQL: libpg_query (the `pg_query` crate), which is the parser of PostgreSQL itself, so
//! a statement it accepts is one the server accepts, and one it rejects is one the server
//! rejects. What it reads is summarised as a [`ServerParse`]: the statement's class, and the
//! facts the rules need (tables, columns, indexes and views created, dropped or renamed,
//! indexes rebuilt, columns set NOT NULL, changes that rewrite a table), so those rules see
//! the statement too.
//!
//! MySQL and SQLite have no such parser to link: a few shapes that real projects use and that
//! `sqlparser` refuses are recognised instead (see [`mysql`]).

use pg_query::NodeEnum;
use pg_query::protobuf::{
    AlterTableCmd, AlterTableType as At, ConstrType, DropBehavior, DropStmt, Node,
    ObjectType as Obj, RangeVar,
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
    /// `DROP SCHEMA … CASCADE`: everything in the schema goes too, which the facts (names
    /// without their schema) cannot list.
    pub drops_schema_cascade: bool,
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
        /// None for `CREATE INDEX ON t (…)`, which lets the server pick the name.
        name: Option<String>,
        /// The plain columns it is built on (expressions left out).
        columns: Vec<String>,
        unique: bool,
        concurrently: bool,
        at: usize,
    },
    /// `DROP INDEX [CONCURRENTLY]`, one fact per index named.
    DropsIndex {
        name: String,
        concurrently: bool,
        /// `CASCADE`, which `DROP INDEX CONCURRENTLY` refuses.
        cascade: bool,
        at: usize,
    },
    /// `REINDEX INDEX|TABLE|SCHEMA|DATABASE|SYSTEM name`.
    Reindexes {
        kind: ReindexKind,
        /// The index, table, schema or database named (empty when the statement names none,
        /// e.g. `REINDEX DATABASE` of the current one).
        name: String,
        concurrently: bool,
    },
    AddsColumn {
        table: String,
        column: String,
    },
    SetsNotNull {
        table: String,
        column: String,
    },
    /// A change that makes PostgreSQL rewrite the whole table (see the `table-rewrite` rule).
    RewritesTable {
        table: String,
        rewrite: Rewrite,
    },
    /// `CREATE [MATERIALIZED] VIEW`.
    CreatesView(String),
    DropsView(String),
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

/// Why a table change rewrites the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rewrite {
    /// `ALTER COLUMN … TYPE`, with the type as written (None if the grammar gave no name).
    ColumnType { column: String, to: Option<String> },
    /// `ADD COLUMN` with a value per row; `why` says which ("with the volatile default
    /// random()", "as bigserial …").
    AddedColumn { column: String, why: String },
    /// `SET LOGGED` / `SET UNLOGGED`.
    Logging,
}

/// What a `REINDEX` rebuilds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReindexKind {
    Index,
    Table,
    Schema,
    Database,
    System,
}

impl ReindexKind {
    pub fn keyword(self) -> &'static str {
        match self {
            ReindexKind::Index => "INDEX",
            ReindexKind::Table => "TABLE",
            ReindexKind::Schema => "SCHEMA",
            ReindexKind::Database => "DATABASE",
            ReindexKind::System => "SYSTEM",
        }
    }
}

/// Functions whose value differs per row, so PostgreSQL must write it into every row of a
/// table a column with such a default is added to.
pub(crate) const VOLATILE_FUNCTIONS: &[&str] = &[
    "random",
    "gen_random_uuid",
    "uuid_generate_v1",
    "uuid_generate_v4",
    "clock_timestamp",
    "timeofday",
    "nextval",
];

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
            drops_schema_cascade: false,
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
        NodeEnum::ReindexStmt(r) => reindex(r),
        NodeEnum::CreateTableAsStmt(c) => {
            let name = relation(c.into.as_ref().and_then(|i| i.rel.as_ref()));
            let p = P::new(ExpandOnly, "");
            match (Obj::try_from(c.objtype), name) {
                (Ok(Obj::ObjectMatview), Some(v)) => p.with(Fact::CreatesView(v)),
                (_, Some(t)) => p.with(Fact::CreatesTable(t)),
                (_, None) => p,
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
                name: Some(i.idxname.clone()).filter(|n| !n.is_empty()),
                columns: i
                    .index_params
                    .iter()
                    .filter_map(|p| match p.node.as_ref() {
                        Some(NodeEnum::IndexElem(e)) if !e.name.is_empty() => Some(e.name.clone()),
                        _ => None,
                    })
                    .collect(),
                unique: i.unique,
                concurrently: i.concurrent,
                at,
            })
        }
        NodeEnum::CreateFunctionStmt(f) if f.replace => P::new(Contract, REPLACES_FUNCTION),
        NodeEnum::CreateFunctionStmt(_) => P::new(ExpandOnly, ""),
        NodeEnum::ViewStmt(v) => {
            let p = if v.replace {
                P::new(Contract, "replaces a view the running release may read")
            } else {
                P::new(ExpandOnly, "")
            };
            match relation(v.view.as_ref()) {
                Some(name) => p.with(Fact::CreatesView(name)),
                None => p,
            }
        }
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
                if let Some(t) = &table {
                    p.facts.extend(alter_table_facts(t, cmd));
                }
            }
            p
        }
        _ => P::new(Unknown, "no rule knows this kind of statement"),
    }
}

/// What one `ALTER TABLE` subcommand does that a rule needs to know.
fn alter_table_facts(table: &str, cmd: &AlterTableCmd) -> Vec<Fact> {
    let t = || table.to_string();
    let column = || cmd.name.clone();
    let mut facts = Vec::new();
    match At::try_from(cmd.subtype) {
        Ok(At::AtDropColumn) => facts.push(Fact::DropsColumn {
            table: t(),
            column: column(),
        }),
        Ok(At::AtSetNotNull) => facts.push(Fact::SetsNotNull {
            table: t(),
            column: column(),
        }),
        Ok(At::AtAlterColumnType) => {
            let ty = match cmd.def.as_ref().and_then(|d| d.node.as_ref()) {
                Some(NodeEnum::ColumnDef(c)) => type_name(c.type_name.as_ref()),
                _ => None,
            };
            facts.push(Fact::RewritesTable {
                table: t(),
                rewrite: Rewrite::ColumnType {
                    column: column(),
                    to: ty,
                },
            });
        }
        Ok(At::AtAddColumn) => {
            if let Some(NodeEnum::ColumnDef(col)) = cmd.def.as_ref().and_then(|d| d.node.as_ref()) {
                facts.push(Fact::AddsColumn {
                    table: t(),
                    column: col.colname.clone(),
                });
                if let Some(why) = added_column_rewrites(col) {
                    facts.push(Fact::RewritesTable {
                        table: t(),
                        rewrite: Rewrite::AddedColumn {
                            column: col.colname.clone(),
                            why,
                        },
                    });
                }
            }
        }
        Ok(At::AtSetLogged | At::AtSetUnLogged) => facts.push(Fact::RewritesTable {
            table: t(),
            rewrite: Rewrite::Logging,
        }),
        _ => {}
    }
    facts
}

/// Why adding this column rewrites the table, if it does: a serial type, an identity or
/// stored generated column, or a volatile default (a value per row).
fn added_column_rewrites(col: &pg_query::protobuf::ColumnDef) -> Option<String> {
    if let Some(ty) = type_name(col.type_name.as_ref())
        && ty.ends_with("serial")
    {
        return Some(format!("as {ty} (a nextval() default per row)"));
    }
    let constraints = col
        .constraints
        .iter()
        .filter_map(|c| match c.node.as_ref() {
            Some(NodeEnum::Constraint(c)) => Some(c),
            _ => None,
        });
    let mut defaults: Vec<&Node> = col.raw_default.iter().map(|d| &**d).collect();
    for c in constraints {
        match ConstrType::try_from(c.contype) {
            Ok(ConstrType::ConstrIdentity) => {
                return Some("as an identity column".into());
            }
            // PostgreSQL 18's virtual generated columns are computed on read: no rewrite.
            Ok(ConstrType::ConstrGenerated) if c.generated_kind != "v" => {
                return Some("as a stored generated column".into());
            }
            Ok(ConstrType::ConstrDefault) => defaults.extend(c.raw_expr.as_deref()),
            _ => {}
        }
    }
    defaults
        .into_iter()
        .find_map(volatile_call)
        .map(|f| format!("with the volatile default {f}()"))
}

/// The first volatile function ([`VOLATILE_FUNCTIONS`]) an expression calls.
fn volatile_call(expr: &Node) -> Option<&'static str> {
    let all = |nodes: &[Node]| nodes.iter().find_map(volatile_call);
    let boxed = |n: &Option<Box<Node>>| n.as_deref().and_then(volatile_call);
    match expr.node.as_ref()? {
        NodeEnum::FuncCall(f) => {
            let name = f.funcname.last().and_then(|n| match n.node.as_ref() {
                Some(NodeEnum::String(s)) => Some(s.sval.to_ascii_lowercase()),
                _ => None,
            });
            VOLATILE_FUNCTIONS
                .iter()
                .copied()
                .find(|v| name.as_deref() == Some(*v))
                .or_else(|| all(&f.args))
        }
        NodeEnum::TypeCast(c) => boxed(&c.arg),
        NodeEnum::AExpr(e) => boxed(&e.lexpr).or_else(|| boxed(&e.rexpr)),
        NodeEnum::CoalesceExpr(c) => all(&c.args),
        NodeEnum::BoolExpr(b) => all(&b.args),
        NodeEnum::List(l) => all(&l.items),
        _ => None,
    }
}

/// A type as written (`bigint`, `varchar`), schema left out (`pg_catalog.int8` → `int8`).
fn type_name(t: Option<&pg_query::protobuf::TypeName>) -> Option<String> {
    match t?.names.last()?.node.as_ref()? {
        NodeEnum::String(s) => Some(s.sval.clone()),
        _ => None,
    }
}

fn reindex(r: &pg_query::protobuf::ReindexStmt) -> ServerParse {
    use pg_query::protobuf::ReindexObjectType as R;
    let kind = match R::try_from(r.kind) {
        Ok(R::ReindexObjectIndex) => ReindexKind::Index,
        Ok(R::ReindexObjectTable) => ReindexKind::Table,
        Ok(R::ReindexObjectSchema) => ReindexKind::Schema,
        Ok(R::ReindexObjectDatabase) => ReindexKind::Database,
        Ok(R::ReindexObjectSystem) => ReindexKind::System,
        _ => return ServerParse::new(ExpandOnly, ""),
    };
    let name = relation(r.relation.as_ref()).unwrap_or_else(|| r.name.clone());
    // `REINDEX (CONCURRENTLY) …` and `REINDEX … CONCURRENTLY` both arrive as an option;
    // `(CONCURRENTLY false)` turns it off.
    let concurrently = r.params.iter().any(|p| match p.node.as_ref() {
        Some(NodeEnum::DefElem(d)) if d.defname == "concurrently" => {
            match d.arg.as_ref().and_then(|a| a.node.as_ref()) {
                Some(NodeEnum::Boolean(b)) => b.boolval,
                Some(NodeEnum::String(s)) => !matches!(s.sval.as_str(), "false" | "off"),
                Some(NodeEnum::Integer(i)) => i.ival != 0,
                _ => true,
            }
        }
        _ => false,
    });
    ServerParse::new(ExpandOnly, "")
        .on((kind == ReindexKind::Table).then(|| name.clone()))
        .with(Fact::Reindexes {
            kind,
            name,
            concurrently,
        })
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
    let cascade = DropBehavior::try_from(d.behavior) == Ok(DropBehavior::DropCascade);
    p.drops_schema_cascade = cascade && kind == Obj::ObjectSchema;
    for name in d.objects.iter().filter_map(last_name) {
        let at = word_offset(text, &name).unwrap_or(0);
        match kind {
            Obj::ObjectTable => p.facts.push(Fact::DropsTable { table: name, at }),
            Obj::ObjectIndex => p.facts.push(Fact::DropsIndex {
                name,
                concurrently: d.concurrent,
                cascade,
                at,
            }),
            Obj::ObjectView | Obj::ObjectMatview => p.facts.push(Fact::DropsView(name)),
            _ => {}
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
                name: Some("i".into()),
                columns: vec![],
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
    fn index_drops_and_rebuilds_are_facts() {
        let sql = "DROP INDEX CONCURRENTLY IF EXISTS app.idx_a";
        assert_eq!(
            pg(sql).facts,
            vec![Fact::DropsIndex {
                name: "idx_a".into(),
                concurrently: true,
                cascade: false,
                at: sql.find("idx_a").unwrap(),
            }]
        );
        let facts = pg("DROP INDEX a, b CASCADE").facts;
        assert!(
            matches!(&facts[..], [Fact::DropsIndex { name: a, concurrently: false, cascade: true, .. }, Fact::DropsIndex { name: b, .. }] if a == "a" && b == "b"),
            "{facts:?}"
        );
        let reindex = |sql: &str| match &pg(sql).facts[..] {
            [
                Fact::Reindexes {
                    kind,
                    name,
                    concurrently,
                },
            ] => (*kind, name.clone(), *concurrently),
            other => panic!("{sql}: {other:?}"),
        };
        assert_eq!(
            reindex("REINDEX TABLE app.events"),
            (ReindexKind::Table, "events".into(), false)
        );
        assert_eq!(
            reindex("REINDEX INDEX CONCURRENTLY idx_a"),
            (ReindexKind::Index, "idx_a".into(), true)
        );
        assert_eq!(
            reindex("REINDEX (VERBOSE, CONCURRENTLY) SCHEMA app"),
            (ReindexKind::Schema, "app".into(), true)
        );
        assert_eq!(
            reindex("REINDEX (CONCURRENTLY false) DATABASE app"),
            (ReindexKind::Database, "app".into(), false)
        );
    }

    #[test]
    fn table_changes_are_facts() {
        let facts = pg("ALTER TABLE IF EXISTS ONLY t ALTER COLUMN c SET NOT NULL, ALTER COLUMN d TYPE bigint, ADD COLUMN e uuid DEFAULT gen_random_uuid(), ADD COLUMN f int DEFAULT 0, ADD COLUMN g bigserial, SET UNLOGGED").facts;
        let rewrite = |rewrite: Rewrite| Fact::RewritesTable {
            table: "t".into(),
            rewrite,
        };
        let added = |column: &str, why: &str| {
            rewrite(Rewrite::AddedColumn {
                column: column.into(),
                why: why.into(),
            })
        };
        let adds = |column: &str| Fact::AddsColumn {
            table: "t".into(),
            column: column.into(),
        };
        assert_eq!(
            facts,
            vec![
                Fact::SetsNotNull {
                    table: "t".into(),
                    column: "c".into()
                },
                rewrite(Rewrite::ColumnType {
                    column: "d".into(),
                    to: Some("int8".into())
                }),
                adds("e"),
                added("e", "with the volatile default gen_random_uuid()"),
                adds("f"),
                adds("g"),
                added("g", "as bigserial (a nextval() default per row)"),
                rewrite(Rewrite::Logging),
            ]
        );
        // A virtual generated column (PostgreSQL 18) is computed on read; a stored one is
        // written into every row.
        let facts = pg("ALTER TABLE t ADD COLUMN v int GENERATED ALWAYS AS (a + 1) VIRTUAL, ADD COLUMN s int GENERATED ALWAYS AS (a + 1) STORED, ADD COLUMN n timestamptz DEFAULT (clock_timestamp()::date)").facts;
        assert_eq!(
            facts,
            vec![
                adds("v"),
                adds("s"),
                added("s", "as a stored generated column"),
                adds("n"),
                added("n", "with the volatile default clock_timestamp()"),
            ]
        );
        assert_eq!(
            pg("CREATE MATERIALIZED VIEW m AS SELECT 1").facts,
            vec![Fact::CreatesView("m".into())]
        );
        assert_eq!(
            pg("CREATE TABLE c AS SELECT 1").facts,
            vec![Fact::CreatesTable("c".into())]
        );
        assert_eq!(
            pg("DROP MATERIALIZED VIEW IF EXISTS app.m").facts,
            vec![Fact::DropsView("m".into())]
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
