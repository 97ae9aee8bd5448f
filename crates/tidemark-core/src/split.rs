//! The statement splitter: turns a migration script into statements, each with the line it
//! starts on, so that every error can name `file:line`.
//!
//! It is a lexer, not a parser, so it never rejects SQL it does not understand. It knows what
//! can hide a `;`: quotes of each dialect, line and (nested, on PostgreSQL) block comments,
//! PostgreSQL dollar-quoted bodies, SQL-standard `BEGIN ATOMIC … END` bodies, SQLite and MySQL
//! trigger/routine bodies (`BEGIN … END`, with `CASE … END` nested inside), and the MySQL
//! client's `DELIMITER` command.

use std::fmt;

use crate::driver::Dialect;

/// One statement of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stmt {
    /// The statement without its terminator, starting at its first token (leading comments
    /// are not part of it).
    pub text: String,
    /// 1-based line of the statement's first token in the script.
    pub line: usize,
    /// 1-based position of the statement in the script.
    pub index: usize,
    /// Byte offsets of `text` in the script.
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for SplitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// What kind of body the current statement may have, decided from its first keywords.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    /// An ordinary statement: `;` ends it.
    None,
    /// PostgreSQL `CREATE FUNCTION|PROCEDURE`: only `BEGIN ATOMIC` opens a block.
    Atomic,
    /// SQLite `CREATE TRIGGER`, MySQL `CREATE PROCEDURE|FUNCTION|TRIGGER|EVENT`: `BEGIN` opens one.
    Compound,
}

struct Lexer<'a> {
    src: &'a str,
    b: &'a [u8],
    dialect: Dialect,
    i: usize,
    line: usize,
}

impl<'a> Lexer<'a> {
    fn peek(&self, k: usize) -> u8 {
        *self.b.get(self.i + k).unwrap_or(&0)
    }

    fn bump(&mut self) {
        if self.b[self.i] == b'\n' {
            self.line += 1;
        }
        self.i += 1;
    }

    fn err(&self, line: usize, message: impl Into<String>) -> SplitError {
        SplitError {
            line,
            message: message.into(),
        }
    }

    fn starts_line_comment(&self) -> bool {
        match self.peek(0) {
            b'-' if self.peek(1) == b'-' => {
                // MySQL wants whitespace after `--`; `1--1` is arithmetic there.
                self.dialect != Dialect::MySql
                    || matches!(self.peek(2), b' ' | b'\t' | b'\r' | b'\n' | 0)
            }
            b'#' => self.dialect == Dialect::MySql,
            _ => false,
        }
    }

    fn skip_line_comment(&mut self) {
        while self.i < self.b.len() && self.b[self.i] != b'\n' {
            self.i += 1;
        }
    }

    fn skip_block_comment(&mut self) -> Result<(), SplitError> {
        let start_line = self.line;
        let nests = self.dialect == Dialect::Postgres;
        let mut depth = 0usize;
        while self.i < self.b.len() {
            if self.peek(0) == b'/' && self.peek(1) == b'*' {
                if depth == 0 || nests {
                    depth += 1;
                }
                self.i += 2;
            } else if self.peek(0) == b'*' && self.peek(1) == b'/' {
                self.i += 2;
                depth -= 1;
                if depth == 0 {
                    return Ok(());
                }
            } else {
                self.bump();
            }
        }
        Err(self.err(start_line, "unterminated /* comment"))
    }

    /// Skip a quoted string or identifier opened by `q` at `self.i`.
    fn skip_quoted(&mut self, q: u8, backslash: bool) -> Result<(), SplitError> {
        let start_line = self.line;
        let close = if q == b'[' { b']' } else { q };
        self.i += 1;
        while self.i < self.b.len() {
            let c = self.peek(0);
            if backslash && c == b'\\' {
                self.i += 1;
                if self.i < self.b.len() {
                    self.bump();
                }
                continue;
            }
            if c == close {
                if q != b'[' && self.peek(1) == close {
                    self.i += 2;
                    continue;
                }
                self.i += 1;
                return Ok(());
            }
            self.bump();
        }
        let what = match q {
            b'\'' => "string literal",
            b'"' if self.dialect == Dialect::MySql => "string literal",
            _ => "quoted identifier",
        };
        Err(self.err(
            start_line,
            format!("unterminated {what} (opened with {})", q as char),
        ))
    }

    /// At a `$`: if it opens a PostgreSQL dollar quote, skip the whole quoted body.
    fn try_dollar_quote(&mut self) -> Result<bool, SplitError> {
        if self.dialect != Dialect::Postgres {
            return Ok(false);
        }
        if self.i > 0 && is_ident_byte(self.b[self.i - 1]) {
            return Ok(false);
        }
        let mut j = self.i + 1;
        if j < self.b.len() && self.b[j].is_ascii_digit() {
            return Ok(false); // $1 is a parameter
        }
        while j < self.b.len() && (self.b[j].is_ascii_alphanumeric() || self.b[j] == b'_') {
            j += 1;
        }
        if j >= self.b.len() || self.b[j] != b'$' {
            return Ok(false);
        }
        let tag = &self.src[self.i..=j];
        let start_line = self.line;
        self.i = j + 1;
        match self.src[self.i..].find(tag) {
            Some(rel) => {
                let end = self.i + rel + tag.len();
                while self.i < end {
                    self.bump();
                }
                Ok(true)
            }
            None => Err(self.err(
                start_line,
                format!("unterminated dollar-quoted string (opened with {tag})"),
            )),
        }
    }

    fn read_word(&mut self) -> &'a str {
        let s = self.i;
        while self.i < self.b.len() && is_ident_byte(self.b[self.i]) {
            self.i += 1;
        }
        &self.src[s..self.i]
    }

    /// The next word after whitespace and comments, without consuming anything.
    fn next_word(&self) -> String {
        let mut j = self.i;
        loop {
            while j < self.b.len() && self.b[j].is_ascii_whitespace() {
                j += 1;
            }
            if self.b.get(j) == Some(&b'-') && self.b.get(j + 1) == Some(&b'-') {
                while j < self.b.len() && self.b[j] != b'\n' {
                    j += 1;
                }
                continue;
            }
            break;
        }
        let s = j;
        while j < self.b.len() && is_ident_byte(self.b[j]) {
            j += 1;
        }
        self.src[s..j].to_ascii_uppercase()
    }
}

fn is_ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

fn body_kind(dialect: Dialect, words: &[String]) -> Body {
    let mut w = words.iter().map(String::as_str);
    if w.next() != Some("CREATE") {
        return Body::None;
    }
    let mut rest: Vec<&str> = w.collect();
    // Skip modifiers between CREATE and the object kind.
    rest.retain(|x| {
        !matches!(
            *x,
            "OR" | "REPLACE" | "TEMP" | "TEMPORARY" | "DEFINER" | "ALGORITHM" | "SQL" | "SECURITY"
        )
    });
    let kind = rest.iter().find(|x| {
        matches!(
            **x,
            "FUNCTION" | "PROCEDURE" | "TRIGGER" | "EVENT" | "TABLE" | "INDEX" | "VIEW"
        )
    });
    match (dialect, kind.copied()) {
        (Dialect::Postgres, Some("FUNCTION" | "PROCEDURE")) => Body::Atomic,
        (Dialect::Sqlite, Some("TRIGGER")) => Body::Compound,
        (Dialect::MySql, Some("FUNCTION" | "PROCEDURE" | "TRIGGER" | "EVENT")) => Body::Compound,
        _ => Body::None,
    }
}

/// Split `sql` into statements.
pub fn split(sql: &str, dialect: Dialect) -> Result<Vec<Stmt>, SplitError> {
    let mut lx = Lexer {
        src: sql,
        b: sql.as_bytes(),
        dialect,
        i: 0,
        line: 1,
    };
    let mut out = Vec::new();
    let mut delimiter = ";".to_string();

    // Per-statement state.
    let mut start: Option<(usize, usize)> = None; // (byte, line) of the first token
    let mut last_end = 0usize; // end of the last significant token
    let mut words: Vec<String> = Vec::new();
    let mut body = Body::None;
    let mut depth = 0usize;

    macro_rules! finish {
        () => {
            if let Some((s, line)) = start.take() {
                out.push(Stmt {
                    text: sql[s..last_end].to_string(),
                    line,
                    index: out.len() + 1,
                    start: s,
                    end: last_end,
                });
            }
            words.clear();
            body = Body::None;
            depth = 0;
        };
    }

    while lx.i < lx.b.len() {
        let c = lx.peek(0);
        if c.is_ascii_whitespace() {
            lx.bump();
            continue;
        }
        // The MySQL client's DELIMITER command, only between statements at a line start.
        if dialect == Dialect::MySql
            && start.is_none()
            && (c == b'D' || c == b'd')
            && lx.b.len() >= lx.i + 10
            && lx.b[lx.i..lx.i + 9].eq_ignore_ascii_case(b"DELIMITER")
            && matches!(lx.b[lx.i + 9], b' ' | b'\t')
        {
            let line_end = sql[lx.i..]
                .find('\n')
                .map(|k| lx.i + k)
                .unwrap_or(sql.len());
            let d = sql[lx.i + 10..line_end].trim();
            if d.is_empty() {
                return Err(lx.err(lx.line, "DELIMITER needs a delimiter"));
            }
            delimiter = d.to_string();
            lx.i = line_end;
            continue;
        }
        if lx.starts_line_comment() {
            lx.skip_line_comment();
            continue;
        }
        if c == b'/' && lx.peek(1) == b'*' {
            // MySQL executable comments (`/*! … */`) are statements, not comments.
            let executable = dialect == Dialect::MySql
                && (lx.peek(2) == b'!' || (lx.peek(2) == b'M' && lx.peek(3) == b'!'));
            let (s, line) = (lx.i, lx.line);
            lx.skip_block_comment()?;
            if executable {
                start.get_or_insert((s, line));
                last_end = lx.i;
            }
            continue;
        }
        // Statement terminator.
        if depth == 0 && sql[lx.i..].starts_with(delimiter.as_str()) {
            lx.i += delimiter.len();
            finish!();
            continue;
        }
        let tok_start = (lx.i, lx.line);
        match c {
            b'\'' => {
                let backslash = dialect == Dialect::MySql
                    || (dialect == Dialect::Postgres
                        && lx.i > 0
                        && matches!(lx.b[lx.i - 1], b'E' | b'e')
                        && (lx.i < 2 || !is_ident_byte(lx.b[lx.i - 2])));
                lx.skip_quoted(b'\'', backslash)?;
            }
            b'"' => lx.skip_quoted(b'"', dialect == Dialect::MySql)?,
            b'`' if dialect != Dialect::Postgres => lx.skip_quoted(b'`', false)?,
            b'[' if dialect == Dialect::Sqlite => lx.skip_quoted(b'[', false)?,
            b'$' => {
                if !lx.try_dollar_quote()? {
                    lx.i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                let word = lx.read_word().to_ascii_uppercase();
                if words.len() < 8 {
                    words.push(word.clone());
                    body = body_kind(dialect, &words);
                }
                match (body, word.as_str()) {
                    (Body::Atomic, "BEGIN") if lx.next_word() == "ATOMIC" => depth += 1,
                    (Body::Compound, "BEGIN") => depth += 1,
                    (Body::Atomic | Body::Compound, "CASE") if depth > 0 => depth += 1,
                    (Body::Atomic | Body::Compound, "END") if depth > 0 => {
                        // MySQL `END IF`, `END LOOP`, … close blocks we do not count.
                        let next = lx.next_word();
                        if !(dialect == Dialect::MySql
                            && matches!(next.as_str(), "IF" | "LOOP" | "WHILE" | "REPEAT"))
                        {
                            depth -= 1;
                        }
                    }
                    _ => {}
                }
            }
            _ => {
                // Any other byte; step over whole UTF-8 characters.
                lx.bump();
                while lx.i < lx.b.len() && (lx.b[lx.i] & 0xC0) == 0x80 {
                    lx.i += 1;
                }
            }
        }
        start.get_or_insert(tok_start);
        last_end = lx.i;
    }
    if depth > 0
        && let Some((_, line)) = start
    {
        return Err(lx.err(
            line,
            "statement body opened with BEGIN is not closed with END",
        ));
    }
    if let Some((s, line)) = start {
        out.push(Stmt {
            text: sql[s..last_end].to_string(),
            line,
            index: out.len() + 1,
            start: s,
            end: last_end,
        });
    }
    Ok(out)
}

/// The first `n` keywords of a statement, upper-cased (comments skipped).
pub fn leading_keywords(text: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while out.len() < n {
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix("--") {
            rest = r.split_once('\n').map(|x| x.1).unwrap_or("");
            continue;
        }
        if let Some(r) = rest.strip_prefix("/*") {
            rest = r.split_once("*/").map(|x| x.1).unwrap_or("");
            continue;
        }
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        out.push(rest[..end].to_ascii_uppercase());
        rest = &rest[end..];
    }
    out
}

/// True for statements that start, end or abandon a transaction. tidemark manages
/// transactions itself; such a statement inside a transactional migration would commit the
/// migration half way and leave its history row behind.
pub fn is_transaction_control(text: &str) -> bool {
    let kw = leading_keywords(text, 2);
    match kw.first().map(String::as_str) {
        Some("BEGIN") => !matches!(kw.get(1).map(String::as_str), Some("ATOMIC")),
        Some("START") => kw.get(1).map(String::as_str) == Some("TRANSACTION"),
        Some("COMMIT" | "END" | "ABORT") => true,
        Some("ROLLBACK") => kw.get(1).map(String::as_str) != Some("TO"),
        _ => false,
    }
}

/// True for the transaction-control statements that open one (`BEGIN`, `START TRANSACTION`).
pub fn starts_transaction(text: &str) -> bool {
    is_transaction_control(text)
        && matches!(
            leading_keywords(text, 1).first().map(String::as_str),
            Some("BEGIN" | "START")
        )
}

/// A statement on one line, shortened to `max` characters, for messages.
pub fn summarize(text: &str, max: usize) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        let cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(sql: &str, d: Dialect) -> Vec<String> {
        split(sql, d).unwrap().into_iter().map(|s| s.text).collect()
    }

    #[test]
    fn splits_simple_statements_with_lines() {
        let sql = "-- users\nCREATE TABLE a (id int);\n\n  INSERT INTO a VALUES (1);\nSELECT 1";
        let s = split(sql, Dialect::Postgres).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].text, "CREATE TABLE a (id int)");
        assert_eq!((s[0].line, s[0].index), (2, 1));
        assert_eq!((s[1].line, s[1].index), (4, 2));
        assert_eq!(s[2].text, "SELECT 1");
        assert_eq!(&sql[s[1].start..s[1].end], s[1].text);
    }

    #[test]
    fn comments_only_is_no_statement() {
        assert!(
            split("-- nothing\n/* at all; */\n;;\n", Dialect::Postgres)
                .unwrap()
                .is_empty()
        );
        assert!(
            split("# mysql comment; here\n", Dialect::MySql)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn quotes_hide_semicolons() {
        let sql = "INSERT INTO t VALUES ('a;b', 'it''s;'); SELECT \"we;ird\" FROM t;";
        assert_eq!(texts(sql, Dialect::Postgres).len(), 2);
        let my = r#"INSERT INTO t VALUES ('a\';b', "x;y"); SELECT `c;d` FROM t"#;
        assert_eq!(texts(my, Dialect::MySql).len(), 2);
        let lite = "SELECT [a;b] FROM t; SELECT 2";
        assert_eq!(texts(lite, Dialect::Sqlite).len(), 2);
        let e = "SELECT E'\\';x'; SELECT 2";
        assert_eq!(texts(e, Dialect::Postgres).len(), 2);
    }

    #[test]
    fn postgres_block_comments_nest() {
        let sql = "/* outer /* inner; */ still; */ SELECT 1; SELECT 2";
        assert_eq!(texts(sql, Dialect::Postgres), vec!["SELECT 1", "SELECT 2"]);
    }

    #[test]
    fn dollar_quoted_bodies() {
        let sql = "CREATE FUNCTION f() RETURNS int AS $body$ BEGIN RETURN 1; END; $body$ LANGUAGE plpgsql;\n\
                   DO $$ BEGIN PERFORM 1; END $$;\nSELECT $1::int";
        let s = texts(sql, Dialect::Postgres);
        assert_eq!(s.len(), 3, "{s:?}");
        assert!(s[0].ends_with("LANGUAGE plpgsql"));
        assert!(s[1].starts_with("DO $$"));
    }

    #[test]
    fn begin_atomic_bodies_with_case() {
        let sql = "CREATE FUNCTION f(x int) RETURNS int LANGUAGE sql BEGIN ATOMIC\n  SELECT CASE WHEN x > 0 THEN 1 ELSE 0 END;\n  SELECT 2;\nEND;\nSELECT 3;";
        let s = split(sql, Dialect::Postgres).unwrap();
        assert_eq!(s.len(), 2, "{s:?}");
        assert!(s[0].text.ends_with("END"));
        assert_eq!(s[1].line, 5);
    }

    #[test]
    fn plain_begin_is_a_statement_on_postgres() {
        assert_eq!(
            texts("BEGIN; SELECT 1; COMMIT;", Dialect::Postgres),
            vec!["BEGIN", "SELECT 1", "COMMIT"]
        );
    }

    #[test]
    fn sqlite_trigger_bodies() {
        let sql = "CREATE TRIGGER trg AFTER INSERT ON a BEGIN\n  UPDATE b SET n = n + 1;\n  INSERT INTO log VALUES (CASE WHEN new.x THEN 1 END);\nEND;\nCREATE TABLE c (x);";
        let s = texts(sql, Dialect::Sqlite);
        assert_eq!(s.len(), 2, "{s:?}");
        assert!(s[0].ends_with("END"));
    }

    #[test]
    fn mysql_routines_and_delimiter() {
        let sql = "CREATE PROCEDURE p() BEGIN\n  IF 1 THEN SELECT 1; END IF;\n  label: LOOP LEAVE label; END LOOP;\nEND;\nSELECT 2;";
        let s = texts(sql, Dialect::MySql);
        assert_eq!(s.len(), 2, "{s:?}");
        let sql = "DELIMITER //\nCREATE TRIGGER t BEFORE INSERT ON a FOR EACH ROW BEGIN SET NEW.x = 1; END//\nDELIMITER ;\nSELECT 1;";
        let s = split(sql, Dialect::MySql).unwrap();
        assert_eq!(s.len(), 2, "{s:?}");
        assert!(s[0].text.ends_with("END"));
        assert_eq!(s[1].text, "SELECT 1");
        assert_eq!(s[1].line, 4);
    }

    #[test]
    fn mysql_executable_comments_are_statements() {
        let s = texts("/*!40101 SET NAMES utf8 */;\nSELECT 1;", Dialect::MySql);
        assert_eq!(s, vec!["/*!40101 SET NAMES utf8 */", "SELECT 1"]);
    }

    #[test]
    fn unterminated_things_are_errors_with_lines() {
        let e = split("SELECT 1;\nSELECT 'oops;\n", Dialect::Postgres).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("unterminated string"), "{e}");
        let e = split("SELECT 1;\n\n/* never closed", Dialect::Sqlite).unwrap_err();
        assert_eq!(e.line, 3);
        let e = split("DO $x$ body", Dialect::Postgres).unwrap_err();
        assert!(e.message.contains("$x$"));
    }

    #[test]
    fn utf8_text_survives() {
        let s = texts(
            "INSERT INTO t VALUES ('日本語;'); SELECT 'ü' AS ü;",
            Dialect::Postgres,
        );
        assert_eq!(
            s,
            vec!["INSERT INTO t VALUES ('日本語;')", "SELECT 'ü' AS ü"]
        );
    }

    #[test]
    fn transaction_control_is_recognised() {
        for t in [
            "BEGIN",
            "begin transaction",
            "START TRANSACTION",
            "COMMIT",
            "END",
            "ROLLBACK",
        ] {
            assert!(is_transaction_control(t), "{t}");
        }
        for t in [
            "ROLLBACK TO SAVEPOINT a",
            "SELECT 1",
            "CREATE TABLE begin_x (a int)",
            "BEGIN ATOMIC",
        ] {
            assert!(!is_transaction_control(t), "{t}");
        }
    }

    #[test]
    fn summarize_shortens() {
        assert_eq!(summarize("SELECT\n   1,\n 2", 80), "SELECT 1, 2");
        assert_eq!(summarize("abcdefghij", 5), "abcd…");
    }
}
