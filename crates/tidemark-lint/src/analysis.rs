//! What rules look at: each script split with tidemark-core's splitter (so lines match what
//! the engine runs) and each statement parsed with the dialect's `sqlparser` parser; what that
//! parser cannot read goes to the server's own grammar ([`crate::server`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use sqlparser::ast::{AlterTableOperation, Ident, ObjectName, ObjectNamePart, Statement};
use sqlparser::dialect::{Dialect as SqlDialect, MySqlDialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;
use tidemark_core::{Dialect, Migration, Result};

use crate::ignore::Ignores;
use crate::replay::ReplayEvidence;
use crate::server::{self, Fact, ServerParse};
use crate::source::{SourceFile, Span};

/// What every rule may consult besides the migration itself.
pub struct Ctx<'a> {
    pub dialect: Dialect,
    /// Results of replaying migrations on a shadow database, when the caller has them.
    pub replay: Option<&'a dyn ReplayEvidence>,
    /// How long `up` lets each statement wait for a table lock (`[migrate]
    /// statement_lock_timeout`); `None` when it is turned off and statements wait as long as
    /// the server's own setting says.
    pub statement_lock_timeout: Option<std::time::Duration>,
}

/// One migration, analysed.
pub struct Unit<'a> {
    pub migration: &'a Migration,
    pub up: Script,
    /// The down script when it holds at least one statement (an empty one counts as missing).
    pub down: Option<Script>,
    /// Tables the up script creates: they are empty, so locks and rewrites on them are cheap.
    created_tables: BTreeSet<String>,
    /// `(table, column)` pairs the up script adds.
    added_columns: BTreeSet<(String, String)>,
    /// Indexes the up script creates by name, with their table.
    created_indexes: BTreeMap<String, String>,
}

impl<'a> Unit<'a> {
    pub fn analyze(migration: &'a Migration, dialect: Dialect) -> Result<Unit<'a>> {
        let up = Script::analyze(&migration.up, dialect)?;
        let down = match migration.usable_down(dialect) {
            Some(d) => Some(Script::analyze(d, dialect)?),
            None => None,
        };
        let mut created_tables = BTreeSet::new();
        let mut added_columns = BTreeSet::new();
        let mut created_indexes = BTreeMap::new();
        for s in &up.stmts {
            match s.ast.as_deref() {
                Ok(Statement::CreateTable(t)) => {
                    created_tables.insert(table_key(&t.name));
                }
                Ok(Statement::CreateIndex(i)) => {
                    if let Some(name) = &i.name {
                        created_indexes.insert(table_key(name), table_key(&i.table_name));
                    }
                }
                Ok(Statement::AlterTable(a)) => {
                    for op in &a.operations {
                        if let AlterTableOperation::AddColumn { column_def, .. } = op {
                            added_columns.insert((table_key(&a.name), ident_key(&column_def.name)));
                        }
                    }
                }
                _ => {}
            }
            for fact in s.server.iter().flat_map(|p| &p.facts) {
                match fact {
                    Fact::CreatesTable(t) => {
                        created_tables.insert(t.clone());
                    }
                    Fact::AddsColumn { table, column } => {
                        added_columns.insert((table.clone(), column.clone()));
                    }
                    Fact::CreatesIndex {
                        table,
                        name: Some(name),
                        ..
                    } => {
                        created_indexes.insert(name.clone(), table.clone());
                    }
                    _ => {}
                }
            }
        }
        Ok(Unit {
            migration,
            up,
            down,
            created_tables,
            added_columns,
            created_indexes,
        })
    }

    /// True when the up script creates this table itself, so it holds no rows yet.
    pub fn creates_table(&self, name: &ObjectName) -> bool {
        self.created_tables.contains(&table_key(name))
    }

    /// [`Unit::creates_table`] for a name as [`table_key`] gives it.
    pub fn creates_table_key(&self, key: &str) -> bool {
        self.created_tables.contains(key)
    }

    /// The table of an index the up script creates (by its name as [`table_key`] gives it).
    pub fn created_index_table(&self, index: &str) -> Option<&str> {
        self.created_indexes.get(index).map(String::as_str)
    }

    /// True when the up script adds this column itself.
    pub fn adds_column(&self, table: &ObjectName, column: &Ident) -> bool {
        self.added_columns
            .contains(&(table_key(table), ident_key(column)))
    }

    /// Both scripts, up first.
    pub fn scripts(&self) -> impl Iterator<Item = &Script> {
        std::iter::once(&self.up).chain(self.down.as_ref())
    }
}

/// One script, split and parsed.
pub struct Script {
    pub source: Arc<SourceFile>,
    pub stmts: Vec<Stmt>,
    pub ignores: Ignores,
}

impl Script {
    pub fn analyze(script: &tidemark_core::Script, dialect: Dialect) -> Result<Script> {
        let source = Arc::new(SourceFile {
            path: script.path.clone(),
            text: script.sql.clone(),
            first_line: script.first_line,
        });
        // One tree per table and column list for the INSERTs (their rows are not kept): a
        // syntax tree is 3.5 KB, and a data load is hundreds of thousands of INSERTs.
        let mut inserts: std::collections::HashMap<String, Arc<Statement>> = Default::default();
        let stmts: Vec<Stmt> = script
            .statements(dialect)?
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let mut stmt = Stmt::new(i, s.text, s.start, dialect);
                if let Ok(ast) = &mut stmt.ast
                    && matches!(**ast, Statement::Insert(_))
                {
                    let shared = inserts
                        .entry(ast.to_string())
                        .or_insert_with(|| ast.clone());
                    *ast = shared.clone();
                }
                stmt
            })
            .collect();
        let ignores = Ignores::parse(&source.text, &stmts);
        Ok(Script {
            source,
            stmts,
            ignores,
        })
    }
}

/// Why the parser refused a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseFailure {
    pub message: String,
    /// Byte offset in the statement where the parser stopped, when it says.
    pub offset: Option<usize>,
    /// PostgreSQL: the server's own grammar refuses the statement too, with this message (the
    /// statement is not valid SQL for the server, not merely unknown to `sqlparser`).
    pub server: Option<String>,
}

/// A word of a statement outside quotes and comments, upper-cased, with its byte offsets in
/// the statement text. Lets rules recognise statements the parser cannot read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub upper: String,
    pub start: usize,
    pub end: usize,
}

/// One statement of a script.
pub struct Stmt {
    /// 0-based position in the script.
    pub index: usize,
    pub text: String,
    /// Byte offset of `text` in the script.
    pub start: usize,
    pub words: Vec<Word>,
    /// Shared: the INSERTs of one table and column list have one tree between them
    /// ([`Script::analyze`]).
    pub ast: std::result::Result<Arc<Statement>, ParseFailure>,
    /// When `sqlparser` cannot read the statement but the server's grammar can (PostgreSQL's
    /// own parser; MySQL: recognised shapes), what it read: its class and the facts rules need.
    pub server: Option<ServerParse>,
}

impl Stmt {
    pub fn new(index: usize, text: String, start: usize, dialect: Dialect) -> Stmt {
        let mut words = words(&text);
        let mut ast = parse(&text, dialect);
        let mut server = None;
        if let Err(failure) = &mut ast {
            match dialect {
                Dialect::Postgres => match server::postgres(&text) {
                    Ok(p) => server = Some(p),
                    Err(e) => failure.server = Some(e),
                },
                Dialect::MySql => {
                    let blanked = server::mysql::without_binary_attribute(&text, &words);
                    if let Some(Ok(a)) = blanked.map(|b| parse(&b, dialect)) {
                        ast = Ok(a);
                    } else {
                        server = server::mysql::recognise(&words);
                    }
                }
                Dialect::Sqlite => {}
            }
        }
        // Data loading (`INSERT … VALUES …`) can be nearly all of a large file, and no rule
        // reads the rows: neither their syntax tree nor their words are kept (a 50 MB file of
        // INSERTs held 6.8 GB of them). What rules and the classification look at stays: the
        // statement, its table and columns, its first words.
        if let Ok(Statement::Insert(insert)) = &mut ast {
            insert.source = None;
            words.truncate(3);
            words.shrink_to_fit();
        }
        let ast = ast.map(Arc::new);
        Stmt {
            index,
            text,
            start,
            words,
            ast,
            server,
        }
    }

    /// True when a parser read the statement: `sqlparser`, or the server's grammar.
    pub fn readable(&self) -> bool {
        self.ast.is_ok() || self.server.is_some()
    }

    /// The whole statement, in script offsets.
    pub fn span(&self) -> Span {
        Span::new(self.start, self.start + self.text.len())
    }

    /// A span the parser reported, in script offsets; the statement's start when the parser
    /// has no position for that node.
    pub fn span_of(&self, sp: sqlparser::tokenizer::Span) -> Span {
        let start = offset_of(&self.text, sp.start.line, sp.start.column);
        let end = offset_of(&self.text, sp.end.line, sp.end.column);
        match (start, end) {
            (Some(s), Some(e)) if e >= s => Span::new(self.start + s, self.start + e),
            (Some(s), _) => Span::at(self.start + s),
            _ => Span::at(self.start),
        }
    }

    /// The first occurrence of a word (upper case), in script offsets.
    pub fn word_span(&self, upper: &str) -> Option<Span> {
        self.words
            .iter()
            .find(|w| w.upper == upper)
            .map(|w| Span::new(self.start + w.start, self.start + w.end))
    }

    /// True when the first words are exactly `prefix`.
    pub fn starts_with_words(&self, prefix: &[&str]) -> bool {
        self.words.len() >= prefix.len()
            && self.words.iter().zip(prefix).all(|(w, p)| w.upper == *p)
    }

    /// True when `word` is among the first `n` words.
    pub fn has_word_within(&self, word: &str, n: usize) -> bool {
        self.words.iter().take(n).any(|w| w.upper == word)
    }

    /// A short one-line form of the statement for messages.
    pub fn summary(&self) -> String {
        tidemark_core::split::summarize(&self.text, 60)
    }
}

fn sql_dialect(d: Dialect) -> Box<dyn SqlDialect> {
    match d {
        Dialect::Postgres => Box::new(PostgreSqlDialect {}),
        Dialect::MySql => Box::new(MySqlDialect {}),
        Dialect::Sqlite => Box::new(SQLiteDialect {}),
    }
}

fn parse(text: &str, dialect: Dialect) -> std::result::Result<Statement, ParseFailure> {
    match Parser::parse_sql(sql_dialect(dialect).as_ref(), text) {
        Ok(mut v) if v.len() == 1 => Ok(v.remove(0)),
        Ok(v) if v.is_empty() => Err(ParseFailure {
            message: "the parser sees no statement here (only a comment?)".into(),
            offset: None,
            server: None,
        }),
        Ok(v) => Err(ParseFailure {
            message: format!(
                "the parser reads {} statements where the splitter found one",
                v.len()
            ),
            offset: None,
            server: None,
        }),
        Err(e) => {
            // sqlparser ends its messages with " at Line: L, Column: C".
            let raw = e.to_string();
            let raw = raw.strip_prefix("sql parser error: ").unwrap_or(&raw);
            let (message, offset) = match raw.rsplit_once(" at Line: ") {
                Some((msg, pos)) => {
                    let mut nums = pos.split(", Column: ").map(|n| n.trim().parse::<u64>());
                    let off = match (nums.next(), nums.next()) {
                        (Some(Ok(l)), Some(Ok(c))) => offset_of(text, l, c),
                        _ => None,
                    };
                    (msg.to_string(), off)
                }
                None => (raw.to_string(), None),
            };
            Err(ParseFailure {
                message,
                offset,
                server: None,
            })
        }
    }
}

/// Byte offset of a 1-based (line, column-in-characters) position; `None` for the parser's
/// "no position" (line 0) and for positions outside the text.
fn offset_of(text: &str, line: u64, column: u64) -> Option<usize> {
    if line == 0 || column == 0 {
        return None;
    }
    let mut line_start = 0;
    for _ in 1..line {
        line_start += text[line_start..].find('\n')? + 1;
    }
    let rest = &text[line_start..];
    let col = usize::try_from(column - 1).ok()?;
    match rest.char_indices().nth(col) {
        Some((i, _)) => Some(line_start + i),
        None if rest.chars().count() == col => Some(line_start + rest.len()),
        None => None,
    }
}

/// The words of a statement outside quotes and comments.
fn words(text: &str) -> Vec<Word> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'\'' | b'"' | b'`' => {
                i += 1;
                while i < b.len() && b[i] != c {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b'$' => {
                // A PostgreSQL dollar-quoted body: skip to the closing tag.
                let tag_end = text[i + 1..]
                    .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                    .map(|k| i + 1 + k);
                match tag_end {
                    Some(e) if b[e] == b'$' => {
                        let tag = &text[i..=e];
                        i = text[e + 1..]
                            .find(tag)
                            .map_or(b.len(), |k| e + 1 + k + tag.len());
                    }
                    _ => i += 1,
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let s = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                out.push(Word {
                    upper: text[s..i].to_ascii_uppercase(),
                    start: s,
                    end: i,
                });
            }
            _ => i += 1,
        }
    }
    out
}

/// An identifier as the database compares it: unquoted names fold to lower case (PostgreSQL
/// folds them; MySQL and SQLite compare table names case-insensitively on common setups).
pub fn ident_key(i: &Ident) -> String {
    if i.quote_style.is_some() {
        i.value.clone()
    } else {
        i.value.to_lowercase()
    }
}

/// A table name without its schema, as [`ident_key`] compares it.
pub fn table_key(name: &ObjectName) -> String {
    match name.0.last() {
        Some(ObjectNamePart::Identifier(i)) => ident_key(i),
        _ => name.to_string().to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_skip_quotes_comments_and_bodies() {
        let w: Vec<String> = words(
            "CREATE /* INDEX */ FUNCTION f() AS $b$ DROP TABLE x $b$ -- TRUNCATE\n LANGUAGE 'DROP' \"CLUSTER\" sql",
        )
        .into_iter()
        .map(|w| w.upper)
        .collect();
        assert_eq!(w, vec!["CREATE", "FUNCTION", "F", "AS", "LANGUAGE", "SQL"]);
    }

    #[test]
    fn parser_positions_become_byte_offsets() {
        let text = "ALTER TABLE t\n  DROP COLUMN ü_x, DROP COLUMN b";
        assert_eq!(offset_of(text, 1, 1), Some(0));
        assert_eq!(offset_of(text, 2, 3), Some(16));
        assert_eq!(offset_of(text, 0, 0), None);
        assert_eq!(offset_of(text, 9, 1), None);
        let s = Stmt::new(0, text.into(), 100, Dialect::Postgres);
        let Ok(Statement::AlterTable(a)) = s.ast.as_deref() else {
            panic!("{:?}", s.ast.err())
        };
        let AlterTableOperation::DropColumn { column_names, .. } = &a.operations[1] else {
            panic!()
        };
        let span = s.span_of(column_names[0].span);
        assert_eq!(&text[span.start - 100..span.end - 100], "b");
    }

    #[test]
    fn the_rows_of_an_insert_are_not_kept() {
        let s = Stmt::new(
            0,
            "INSERT INTO big (id, name) VALUES (1, 'a'), (2, 'b'), (3, 'c')".into(),
            0,
            Dialect::Postgres,
        );
        let Ok(Statement::Insert(i)) = s.ast.as_deref() else {
            panic!("not an insert: {:?}", s.ast.is_ok())
        };
        assert!(i.source.is_none());
        assert_eq!(i.table.to_string(), "big");
        assert!(s.starts_with_words(&["INSERT", "INTO", "BIG"]));
    }

    #[test]
    fn inserts_into_one_table_share_one_tree() {
        let script = tidemark_core::Script {
            path: "1_load.up.sql".into(),
            sql: "INSERT INTO big (id) VALUES (1);\nINSERT INTO big (id) VALUES (2);\n\
                  INSERT INTO other (id) VALUES (3);\n"
                .into(),
            first_line: 1,
        };
        let s = Script::analyze(&script, Dialect::Postgres).unwrap();
        let tree = |i: usize| s.stmts[i].ast.as_ref().ok().unwrap().clone();
        assert!(Arc::ptr_eq(&tree(0), &tree(1)));
        assert!(!Arc::ptr_eq(&tree(0), &tree(2)));
        assert_eq!(tree(2).to_string().trim_end(), "INSERT INTO other (id)");
    }

    #[test]
    fn parse_failures_keep_the_parser_position() {
        let s = Stmt::new(
            0,
            "DROP INDEX CONCURRENTLY\n  idx".into(),
            0,
            Dialect::Postgres,
        );
        let f = s.ast.unwrap_err();
        assert!(f.message.starts_with("Expected: "), "{}", f.message);
        assert_eq!(f.offset, Some(26));
    }
}
