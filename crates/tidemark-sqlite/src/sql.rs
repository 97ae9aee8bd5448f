//! A small SQLite lexer and the few structural reads inspection needs from the `CREATE` text
//! that SQLite keeps in `sqlite_schema.sql`: what the pragmas do not tell (check constraints,
//! generation expressions, column collations, `AUTOINCREMENT`, deferrable foreign keys, index
//! expressions and predicates, the bodies of views and triggers).
//!
//! It is deliberately not a parser: it knows quotes, comments and parentheses, splits a
//! parenthesised list at its top-level commas and looks for keywords at depth 0. Text it does
//! not understand is skipped, never an error, because the text was accepted by SQLite already.
//!
//! [`render`] gives the canonical spelling of a run of tokens: unquoted words lower-cased
//! (SQLite keywords and identifiers are case-insensitive), quoted identifiers unquoted where
//! that changes nothing, string literals untouched, one space between tokens except where SQL
//! is conventionally written without (`f(x)`, `a.b`, `(1, 2)`, `-1`), and comments dropped. So
//! `CHECK (Price>0)` and `check ( price > 0 )` read the same.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A bare word: keyword, identifier or number.
    Word,
    /// `"x"`, `` `x` `` or `[x]`.
    QuotedIdent,
    /// `'text'`.
    Str,
    /// `x'00ff'`.
    Blob,
    Open,
    Close,
    Comma,
    Dot,
    /// Any other operator or punctuation.
    Punct,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
}

/// The text with its tokens.
pub(crate) struct Sql<'a> {
    pub src: &'a str,
    pub tokens: Vec<Token>,
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// The end of a quoted run starting at `i` (the opening quote), a doubled closing quote
/// standing for itself; the end of the text if it is unterminated.
fn quoted_end(b: &[u8], i: usize, close: u8, doubled: bool) -> usize {
    let mut j = i + 1;
    while j < b.len() {
        if b[j] == close {
            if doubled && b.get(j + 1) == Some(&close) {
                j += 2;
                continue;
            }
            return j + 1;
        }
        j += 1;
    }
    b.len()
}

pub(crate) fn lex(src: &str) -> Sql<'_> {
    let b = src.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        let kind = match c {
            _ if c.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = src[i..].find('\n').map_or(b.len(), |n| i + n + 1);
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = src[i + 2..].find("*/").map_or(b.len(), |n| i + 2 + n + 2);
                continue;
            }
            b'\'' => {
                i = quoted_end(b, i, b'\'', true);
                Kind::Str
            }
            b'"' | b'`' => {
                i = quoted_end(b, i, c, true);
                Kind::QuotedIdent
            }
            b'[' => {
                i = quoted_end(b, i, b']', false);
                Kind::QuotedIdent
            }
            b'x' | b'X' if b.get(i + 1) == Some(&b'\'') => {
                i = quoted_end(b, i + 1, b'\'', true);
                Kind::Blob
            }
            b'(' => {
                i += 1;
                Kind::Open
            }
            b')' => {
                i += 1;
                Kind::Close
            }
            b',' => {
                i += 1;
                Kind::Comma
            }
            b'.' if !b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                i += 1;
                Kind::Dot
            }
            _ if c.is_ascii_digit() || c == b'.' => {
                // A number: digits, a fraction, an exponent with its sign, hex digits.
                let hex = c == b'0' && matches!(b.get(i + 1), Some(b'x' | b'X'));
                i += 1;
                while i < b.len() {
                    let exponent_sign =
                        !hex && matches!(b[i], b'+' | b'-') && matches!(b[i - 1], b'e' | b'E');
                    if !(is_word_byte(b[i]) || b[i] == b'.' || exponent_sign) {
                        break;
                    }
                    i += 1;
                }
                Kind::Word
            }
            _ if is_word_byte(c) => {
                while i < b.len() && is_word_byte(b[i]) {
                    i += 1;
                }
                Kind::Word
            }
            _ => {
                let rest = &src[i..];
                let len = ["->>", "||", "<=", ">=", "==", "!=", "<>", "<<", ">>", "->"]
                    .iter()
                    .find(|op| rest.starts_with(**op))
                    .map_or_else(
                        || rest.chars().next().map_or(1, char::len_utf8),
                        |op| op.len(),
                    );
                i += len;
                Kind::Punct
            }
        };
        tokens.push(Token {
            kind,
            start,
            end: i.min(b.len()),
        });
    }
    Sql { src, tokens }
}

/// Keywords after which `(` opens a list or a subquery rather than a function's arguments, and
/// after which `-`/`+` is a sign.
const SPACED_KEYWORDS: &[&str] = &[
    "and",
    "or",
    "not",
    "in",
    "exists",
    "as",
    "when",
    "then",
    "else",
    "is",
    "on",
    "between",
    "like",
    "glob",
    "regexp",
    "match",
    "select",
    "from",
    "where",
    "values",
    "check",
    "key",
    "unique",
    "references",
    "using",
    "over",
    "filter",
    "case",
    "return",
    "returning",
    "by",
    "set",
    "join",
    "union",
    "all",
    "except",
    "intersect",
    "with",
    "escape",
    "having",
    "limit",
    "offset",
    "default",
    "begin",
    "end",
    "each",
    "row",
    "of",
    "into",
];

impl<'a> Sql<'a> {
    pub fn text(&self, t: Token) -> &'a str {
        &self.src[t.start..t.end]
    }

    /// The lower-cased word at `i`, if token `i` is a bare word.
    pub fn word(&self, i: usize) -> Option<String> {
        self.tokens
            .get(i)
            .filter(|t| t.kind == Kind::Word)
            .map(|t| self.text(*t).to_ascii_lowercase())
    }

    pub fn is_word(&self, i: usize, word: &str) -> bool {
        self.tokens
            .get(i)
            .is_some_and(|t| t.kind == Kind::Word && self.text(*t).eq_ignore_ascii_case(word))
    }

    pub fn kind(&self, i: usize) -> Option<Kind> {
        self.tokens.get(i).map(|t| t.kind)
    }

    /// The name token `i` stands for: a bare word, or a quoted identifier (or string, which
    /// SQLite also accepts as a name) without its quotes.
    pub fn ident(&self, i: usize) -> Option<String> {
        let t = *self.tokens.get(i)?;
        let raw = self.text(t);
        match t.kind {
            Kind::Word => Some(raw.to_string()),
            Kind::QuotedIdent | Kind::Str => Some(unquote(raw)),
            _ => None,
        }
    }

    /// The index of the `)` matching the `(` at `open`, or the end of the tokens.
    pub fn close_of(&self, open: usize) -> usize {
        let mut depth = 0usize;
        for (i, t) in self.tokens.iter().enumerate().skip(open) {
            match t.kind {
                Kind::Open => depth += 1,
                Kind::Close => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return i;
                    }
                }
                _ => {}
            }
        }
        self.tokens.len()
    }

    /// Split `from..to` at its top-level commas.
    pub fn split_commas(&self, from: usize, to: usize) -> Vec<(usize, usize)> {
        let mut items = Vec::new();
        let (mut depth, mut start) = (0usize, from);
        for i in from..to.min(self.tokens.len()) {
            match self.tokens[i].kind {
                Kind::Open => depth += 1,
                Kind::Close => depth = depth.saturating_sub(1),
                Kind::Comma if depth == 0 => {
                    items.push((start, i));
                    start = i + 1;
                }
                _ => {}
            }
        }
        if start < to.min(self.tokens.len()) {
            items.push((start, to.min(self.tokens.len())));
        }
        items
    }

    /// The first top-level token at or after `from` (before `to`) that is `word`.
    pub fn find_word(&self, from: usize, to: usize, word: &str) -> Option<usize> {
        let mut depth = 0usize;
        for i in from..to.min(self.tokens.len()) {
            match self.tokens[i].kind {
                Kind::Open => depth += 1,
                Kind::Close => depth = depth.saturating_sub(1),
                _ if depth == 0 && self.is_word(i, word) => return Some(i),
                _ => {}
            }
        }
        None
    }

    /// The index just after the name of the object a `CREATE … VIEW|TRIGGER|INDEX|TABLE` makes:
    /// past `CREATE`, `TEMP`, `UNIQUE`, `VIRTUAL`, the object keyword, `IF NOT EXISTS` and a
    /// schema qualifier.
    pub fn after_object_name(&self) -> usize {
        let mut i = 0;
        while let Some(w) = self.word(i) {
            if matches!(
                w.as_str(),
                "create" | "temp" | "temporary" | "unique" | "virtual"
            ) {
                i += 1;
            } else {
                break;
            }
        }
        i += 1; // VIEW, TRIGGER, INDEX, TABLE
        if self.is_word(i, "if") && self.is_word(i + 1, "not") && self.is_word(i + 2, "exists") {
            i += 3;
        }
        if self.kind(i + 1) == Some(Kind::Dot) {
            i += 2;
        }
        (i + 1).min(self.tokens.len())
    }

    /// The canonical text of tokens `from..to` (see the module documentation).
    pub fn render(&self, from: usize, to: usize) -> String {
        let mut out = String::new();
        let mut prev: Option<(Kind, String)> = None;
        let mut sign = false; // the previous token was a unary sign
        for t in &self.tokens[from.min(self.tokens.len())..to.min(self.tokens.len())] {
            let piece = match t.kind {
                Kind::Word => self.text(*t).to_ascii_lowercase(),
                Kind::QuotedIdent => {
                    let name = unquote(self.text(*t));
                    if is_plain_identifier(&name) {
                        name.to_ascii_lowercase()
                    } else {
                        format!("\"{}\"", name.replace('"', "\"\""))
                    }
                }
                Kind::Blob => format!("x{}", &self.text(*t)[1..]),
                _ => self.text(*t).to_string(),
            };
            let keyword_before = |p: &Option<(Kind, String)>| matches!(p, Some((Kind::Word, w)) if SPACED_KEYWORDS.contains(&w.as_str()));
            let space = match (&prev, t.kind) {
                (None, _) => false,
                _ if sign => false,
                (Some((Kind::Open | Kind::Dot, _)), _) => false,
                (_, Kind::Close | Kind::Comma | Kind::Dot) => false,
                (_, Kind::Punct) if piece == ";" => false,
                (Some((Kind::Word | Kind::QuotedIdent, _)), Kind::Open) => keyword_before(&prev),
                _ => true,
            };
            sign = t.kind == Kind::Punct
                && (piece == "-" || piece == "+")
                && match &prev {
                    None => true,
                    Some((Kind::Open | Kind::Comma | Kind::Punct, _)) => true,
                    Some((Kind::Word, _)) => keyword_before(&prev),
                    _ => false,
                };
            if space {
                out.push(' ');
            }
            out.push_str(&piece);
            prev = Some((t.kind, piece));
        }
        out
    }

    pub fn render_all(&self) -> String {
        self.render(0, self.tokens.len())
    }
}

/// `"a""b"` → `a"b`, `[x]` → `x`, `'it''s'` → `it's`.
pub(crate) fn unquote(raw: &str) -> String {
    let mut chars = raw.chars();
    match chars.next() {
        Some(q @ ('"' | '`' | '\'')) => {
            let inner = raw[1..].strip_suffix(q).unwrap_or(&raw[1..]);
            let doubled: String = [q, q].iter().collect();
            inner.replace(&doubled, &q.to_string())
        }
        Some('[') => raw[1..].strip_suffix(']').unwrap_or(&raw[1..]).to_string(),
        _ => raw.to_string(),
    }
}

fn is_plain_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The canonical text of a whole SQL fragment (a default, an expression, a declared type).
pub(crate) fn canonical(fragment: &str) -> String {
    lex(fragment).render_all()
}

/// What the `CREATE TABLE` text says beyond the pragmas.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct TableSql {
    /// `CREATE VIRTUAL TABLE … USING module(args)`: the canonical `module(args)`.
    pub using: Option<String>,
    /// Per column (lower-cased name).
    pub columns: Vec<ColumnSql>,
    /// Check constraints, column- and table-level: (name, canonical expression).
    pub checks: Vec<(Option<String>, String)>,
    pub foreign_keys: Vec<ForeignKeySql>,
    pub autoincrement: bool,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ColumnSql {
    /// Lower-cased.
    pub name: String,
    /// Lower-cased.
    pub collation: Option<String>,
    /// The canonical generation expression.
    pub generated: Option<String>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ForeignKeySql {
    /// Lower-cased.
    pub columns: Vec<String>,
    /// Lower-cased.
    pub ref_table: String,
    /// `DEFERRABLE INITIALLY DEFERRED`, the only form that actually defers in SQLite.
    pub initially_deferred: bool,
}

/// Words that start a column constraint (and so end the one before).
const COLUMN_CONSTRAINT_WORDS: &[&str] = &[
    "constraint",
    "primary",
    "not",
    "null",
    "unique",
    "check",
    "default",
    "collate",
    "references",
    "generated",
    "as",
];

impl Sql<'_> {
    fn initially_deferred(&self, from: usize, to: usize) -> bool {
        (from..to).any(|i| {
            self.is_word(i, "deferrable")
                && !(i > 0 && self.is_word(i - 1, "not"))
                && self.is_word(i + 1, "initially")
                && self.is_word(i + 2, "deferred")
        })
    }

    /// `(a, b)` at `open`: the lower-cased names and the index after `)`.
    fn name_list(&self, open: usize) -> (Vec<String>, usize) {
        let close = self.close_of(open);
        let names = self
            .split_commas(open + 1, close)
            .into_iter()
            .filter_map(|(s, _)| self.ident(s).map(|n| n.to_lowercase()))
            .collect();
        (names, close + 1)
    }

    fn table_constraint(&self, (from, to): (usize, usize), t: &mut TableSql) {
        let mut i = from;
        let mut name = None;
        if self.is_word(i, "constraint") {
            name = self.ident(i + 1);
            i += 2;
        }
        if (from..to).any(|j| self.is_word(j, "autoincrement")) {
            t.autoincrement = true;
        }
        if self.is_word(i, "check") && self.kind(i + 1) == Some(Kind::Open) {
            let close = self.close_of(i + 1);
            t.checks.push((name, self.render(i + 2, close)));
        } else if self.is_word(i, "foreign") && self.kind(i + 2) == Some(Kind::Open) {
            let (columns, next) = self.name_list(i + 2);
            if self.is_word(next, "references") {
                t.foreign_keys.push(ForeignKeySql {
                    columns,
                    ref_table: self.ident(next + 1).unwrap_or_default().to_lowercase(),
                    initially_deferred: self.initially_deferred(next, to),
                });
            }
        }
    }

    fn column_definition(&self, (from, to): (usize, usize), t: &mut TableSql) {
        let name = self.ident(from).unwrap_or_default().to_lowercase();
        let mut column = ColumnSql {
            name: name.clone(),
            ..Default::default()
        };
        let mut constraint_name = None;
        let mut i = from + 1;
        while i < to {
            if self.kind(i) == Some(Kind::Open) {
                i = self.close_of(i) + 1; // a type's size, a default's expression
                continue;
            }
            let Some(word) = self.word(i) else {
                i += 1;
                continue;
            };
            let pending = constraint_name.take();
            match word.as_str() {
                "constraint" => {
                    constraint_name = self.ident(i + 1);
                    i += 2;
                    continue;
                }
                "autoincrement" => t.autoincrement = true,
                "collate" => {
                    column.collation = self.ident(i + 1).map(|c| c.to_lowercase());
                    i += 1;
                }
                "check" if self.kind(i + 1) == Some(Kind::Open) => {
                    let close = self.close_of(i + 1);
                    t.checks.push((pending, self.render(i + 2, close)));
                    i = close;
                }
                "as" if self.kind(i + 1) == Some(Kind::Open) => {
                    let close = self.close_of(i + 1);
                    column.generated = Some(self.render(i + 2, close));
                    i = close;
                }
                "references" => {
                    // The clause runs to the next column constraint; `SET NULL`, `SET
                    // DEFAULT` and `NOT DEFERRABLE` are still part of it.
                    let end = (i + 1..to)
                        .find(|&j| {
                            self.word(j)
                                .is_some_and(|w| COLUMN_CONSTRAINT_WORDS.contains(&w.as_str()))
                                && !self.is_word(j - 1, "set")
                                && !(self.is_word(j, "not") && self.is_word(j + 1, "deferrable"))
                        })
                        .unwrap_or(to);
                    t.foreign_keys.push(ForeignKeySql {
                        columns: vec![name.clone()],
                        ref_table: self.ident(i + 1).unwrap_or_default().to_lowercase(),
                        initially_deferred: self.initially_deferred(i, end),
                    });
                    i = end;
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
        t.columns.push(column);
    }
}

/// Read a `CREATE TABLE` (or `CREATE VIRTUAL TABLE`) statement.
pub(crate) fn table(sql: &str) -> TableSql {
    let s = lex(sql);
    let mut t = TableSql::default();
    let name_end = s.after_object_name();
    if s.is_word(name_end, "using") {
        t.using = Some(s.render(name_end + 1, s.tokens.len()));
        return t;
    }
    let Some(open) = (name_end..s.tokens.len()).find(|&i| s.kind(i) == Some(Kind::Open)) else {
        return t; // CREATE TABLE … AS SELECT: the pragmas say all there is
    };
    let close = s.close_of(open);
    for item in s.split_commas(open + 1, close) {
        let first = s.word(item.0);
        let is_constraint = first.as_deref().is_some_and(|w| {
            matches!(w, "constraint" | "primary" | "unique" | "check" | "foreign")
        });
        if is_constraint {
            s.table_constraint(item, &mut t);
        } else {
            s.column_definition(item, &mut t);
        }
    }
    t
}

/// What a `CREATE INDEX` text says: the canonical text of each key part and of the `WHERE`
/// predicate.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct IndexSql {
    pub parts: Vec<String>,
    pub predicate: Option<String>,
}

pub(crate) fn index(sql: &str) -> IndexSql {
    let s = lex(sql);
    let start = s.after_object_name();
    let Some(open) = (start..s.tokens.len()).find(|&i| s.kind(i) == Some(Kind::Open)) else {
        return IndexSql::default();
    };
    let close = s.close_of(open);
    IndexSql {
        parts: s
            .split_commas(open + 1, close)
            .into_iter()
            .map(|(a, b)| s.render(a, b))
            .collect(),
        predicate: s
            .find_word(close + 1, s.tokens.len(), "where")
            .map(|w| s.render(w + 1, s.tokens.len())),
    }
}

/// The canonical text of a view or trigger after its name: `as select …`,
/// `before insert on t begin … end`. Neither the name nor `IF NOT EXISTS` is part of it.
pub(crate) fn body_after_name(sql: &str) -> String {
    let s = lex(sql);
    let start = s.after_object_name();
    let mut end = s.tokens.len();
    if end > start && s.tokens[end - 1].kind == Kind::Punct && s.text(s.tokens[end - 1]) == ";" {
        end -= 1;
    }
    s.render(start, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_is_one_spelling_for_case_spaces_and_quotes() {
        for (a, b) in [
            ("CHECK (Price>0)", "check ( price > 0 )"),
            ("lower( \"Email\" )", "LOWER([email])"),
            ("a IN (1,2)", "a in ( 1 , 2 )"),
            ("x >= -1", "x>=- 1"),
            ("t.a||'X'", "t . a || 'X'"),
            ("VARCHAR ( 50 )", "varchar(50)"),
            ("a -- comment\n+ b", "a /* c */ + b"),
        ] {
            assert_eq!(canonical(a), canonical(b), "{a} vs {b}");
        }
        assert_eq!(canonical("CHECK (Price>0)"), "check (price > 0)");
        assert_eq!(canonical("LOWER(Email)"), "lower(email)");
        assert_eq!(canonical("a IN (1,2)"), "a in (1, 2)");
        assert_eq!(
            canonical("x >= -1 AND y = - 2.5e-3"),
            "x >= -1 and y = -2.5e-3"
        );
        assert_eq!(canonical("a - 1"), "a - 1");
        assert_eq!(
            canonical("'It''s' || \"odd name\""),
            "'It''s' || \"odd name\""
        );
        assert_eq!(canonical("X'0aFF'"), "x'0aFF'");
        assert_eq!(canonical("json ->> '$.a'"), "json ->> '$.a'");
    }

    #[test]
    fn lexing_never_fails_on_unterminated_text() {
        assert_eq!(canonical("'open"), "'open");
        assert_eq!(canonical("a /* open"), "a");
        assert_eq!(canonical("\"open"), "open");
        assert_eq!(canonical(""), "");
        let s = lex("((");
        assert_eq!(s.close_of(0), 2);
    }

    #[test]
    fn reads_a_create_table() {
        let t = table(
            "CREATE TABLE \"Orders\" (\n\
               id INTEGER PRIMARY KEY AUTOINCREMENT,\n\
               code TEXT COLLATE NOCASE CONSTRAINT code_len CHECK (length(code) > 2) UNIQUE,\n\
               qty INT NOT NULL DEFAULT (1 + 1) CHECK (qty > 0),\n\
               total INT GENERATED ALWAYS AS (qty * 2) STORED,\n\
               half REAL AS (qty / 2.0),\n\
               user_id INT REFERENCES users(id) ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED NOT NULL,\n\
               \"check\" TEXT, -- a column called check\n\
               CONSTRAINT positive CHECK (qty>=0),\n\
               CHECK (total < 100),\n\
               FOREIGN KEY (code, qty) REFERENCES \"Codes\" (code, n) NOT DEFERRABLE INITIALLY DEFERRED,\n\
               UNIQUE (code, qty)\n\
             ) STRICT",
        );
        assert!(t.autoincrement);
        assert_eq!(t.using, None);
        let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["id", "code", "qty", "total", "half", "user_id", "check"]
        );
        assert_eq!(t.columns[1].collation.as_deref(), Some("nocase"));
        assert_eq!(t.columns[3].generated.as_deref(), Some("qty * 2"));
        assert_eq!(t.columns[4].generated.as_deref(), Some("qty / 2.0"));
        assert_eq!(
            t.checks,
            vec![
                (Some("code_len".into()), "length(code) > 2".into()),
                (None, "qty > 0".into()),
                (Some("positive".into()), "qty >= 0".into()),
                (None, "total < 100".into()),
            ]
        );
        assert_eq!(
            t.foreign_keys,
            vec![
                ForeignKeySql {
                    columns: vec!["user_id".into()],
                    ref_table: "users".into(),
                    initially_deferred: true,
                },
                ForeignKeySql {
                    columns: vec!["code".into(), "qty".into()],
                    ref_table: "codes".into(),
                    initially_deferred: false,
                },
            ]
        );
    }

    #[test]
    fn reads_virtual_tables_and_tables_without_a_column_list() {
        let t = table("CREATE VIRTUAL TABLE docs USING FTS5(title, body)");
        assert_eq!(t.using.as_deref(), Some("fts5(title, body)"));
        assert_eq!(table("CREATE TABLE t AS SELECT 1"), TableSql::default());
        assert_eq!(table(""), TableSql::default());
    }

    #[test]
    fn reads_a_create_index() {
        let i = index(
            "CREATE UNIQUE INDEX IF NOT EXISTS main.ix ON t (lower(email), id DESC) WHERE deleted_at IS NULL",
        );
        assert_eq!(i.parts, ["lower(email)", "id desc"]);
        assert_eq!(i.predicate.as_deref(), Some("deleted_at is null"));
        assert_eq!(index("CREATE INDEX ix ON t(a)").predicate, None);
    }

    #[test]
    fn bodies_leave_out_the_name() {
        assert_eq!(
            body_after_name("CREATE VIEW IF NOT EXISTS \"V\" AS SELECT  *  FROM t"),
            "as select * from t"
        );
        assert_eq!(
            body_after_name(
                "CREATE TRIGGER trg AFTER INSERT ON t BEGIN\n  UPDATE t SET n = n+1; END"
            ),
            "after insert on t begin update t set n = n + 1; end"
        );
    }
}
