//! Every rule, one module each, listed once in [`RULES`]: `--list-rules`, rule ids in config
//! and in ignore comments all derive from that list.

use sqlparser::ast::{AlterTable, ObjectName, Statement, TableFactor, TableWithJoins};

use crate::analysis::{Stmt, Unit};
use crate::rule::Rule;
use crate::server::Fact;
use crate::source::Span;

pub(crate) mod add_not_null_without_default;
mod change_column_type;
mod concurrently_in_transaction;
mod constraint_without_not_valid;
mod create_index_without_concurrently;
mod create_without_if_not_exists;
mod data_migration_without_verify;
mod delete_without_where;
mod down_does_not_revert;
mod drop_column;
mod drop_index_without_concurrently;
mod drop_table;
mod drop_without_if_exists;
mod empty_migration;
mod invalid_lint_ignore;
mod lock_wait_without_timeout;
mod missing_down;
mod multiple_ddl_statements;
mod rename_column;
mod rename_table;
mod set_not_null;
mod table_rewrite;
mod truncate_table;
mod unparsable_statement;
mod update_without_where;
mod vacuum_full_or_cluster;

pub use invalid_lint_ignore::ID as INVALID_LINT_IGNORE;

/// All rules, grouped as in docs/lint.md.
pub static RULES: &[&dyn Rule] = &[
    // Data loss.
    &drop_table::DropTable,
    &drop_column::DropColumn,
    &truncate_table::TruncateTable,
    &delete_without_where::DeleteWithoutWhere,
    &update_without_where::UpdateWithoutWhere,
    // Breaks the running release.
    &rename_table::RenameTable,
    &rename_column::RenameColumn,
    &change_column_type::ChangeColumnType,
    &add_not_null_without_default::AddNotNullWithoutDefault,
    // Long locks (PostgreSQL).
    &create_index_without_concurrently::CreateIndexWithoutConcurrently,
    &drop_index_without_concurrently::DropIndexWithoutConcurrently,
    &constraint_without_not_valid::ConstraintWithoutNotValid,
    &set_not_null::SetNotNull,
    &table_rewrite::TableRewrite,
    &vacuum_full_or_cluster::VacuumFullOrCluster,
    &lock_wait_without_timeout::LockWaitWithoutTimeout,
    // Half-apply risk.
    &multiple_ddl_statements::MultipleDdlStatements,
    &concurrently_in_transaction::ConcurrentlyInTransaction,
    // Idempotency (off unless configured).
    &create_without_if_not_exists::CreateWithoutIfNotExists,
    &drop_without_if_exists::DropWithoutIfExists,
    // Evidence for `repair` and `import`.
    &data_migration_without_verify::DataMigrationWithoutVerify,
    // Reversibility.
    &missing_down::MissingDown,
    &down_does_not_revert::DownDoesNotRevert,
    // The lint itself.
    &empty_migration::EmptyMigration,
    &unparsable_statement::UnparsableStatement,
    &invalid_lint_ignore::InvalidLintIgnore,
];

/// The up script's statements that the parser could read.
pub(crate) fn parsed<'u>(unit: &'u Unit) -> impl Iterator<Item = (&'u Stmt, &'u Statement)> {
    unit.up
        .stmts
        .iter()
        .filter_map(|s| s.ast.as_deref().ok().map(|ast| (s, ast)))
}

/// What the server's grammar read in the up script's statements `sqlparser` could not read
/// (see [`crate::server`]): the facts the data-loss, rename, index, lock and rewrite rules need.
pub(crate) fn server_facts<'u>(unit: &'u Unit) -> impl Iterator<Item = (&'u Stmt, &'u Fact)> {
    unit.up
        .stmts
        .iter()
        .filter(|s| s.ast.is_err())
        .flat_map(|s| {
            s.server
                .iter()
                .flat_map(move |p| p.facts.iter().map(move |f| (s, f)))
        })
}

/// The span of the first whole-word `name` in a statement (the statement's start if absent).
pub(crate) fn name_span(stmt: &Stmt, name: &str) -> Span {
    match crate::server::word_offset(&stmt.text, name) {
        Some(i) => Span::new(stmt.start + i, stmt.start + i + name.len()),
        None => Span::at(stmt.start),
    }
}

/// `ALTER TABLE` statements of the up script.
pub(crate) fn alter_tables<'u>(unit: &'u Unit) -> impl Iterator<Item = (&'u Stmt, &'u AlterTable)> {
    parsed(unit).filter_map(|(s, ast)| match ast {
        Statement::AlterTable(a) => Some((s, a)),
        _ => None,
    })
}

/// The table a `FROM`/`UPDATE` item names, if it names one.
pub(crate) fn table_name(t: &TableWithJoins) -> Option<&ObjectName> {
    match &t.relation {
        TableFactor::Table { name, .. } => Some(name),
        _ => None,
    }
}
