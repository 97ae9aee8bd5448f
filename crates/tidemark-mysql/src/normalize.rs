//! Pure normalisation of what MariaDB and MySQL print in information_schema, so that one schema
//! reads the same whichever way its DDL was written, whichever of the two servers printed it,
//! and whatever the database is called (the shadow database that replays migrations has a
//! different name from the live one).

use std::collections::BTreeMap;

/// The server family and version, which decide the catalog SQL and how defaults are spelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Server {
    pub mariadb: bool,
    pub version: (u32, u32, u32),
}

impl Server {
    /// From `Capabilities::flavor` and `SELECT VERSION()` (`10.11.19-MariaDB-0+deb12u1`,
    /// `8.0.36`, `8.4.0-commercial`). An unreadable version counts as 0.0.0.
    pub fn new(flavor: &str, version: &str) -> Server {
        let mut numbers = version
            .split(|c: char| !c.is_ascii_digit())
            .take(3)
            .map(|n| n.parse().unwrap_or(0));
        let mut next = || numbers.next().unwrap_or(0);
        Server {
            mariadb: flavor.eq_ignore_ascii_case("mariadb")
                || version.to_ascii_lowercase().contains("mariadb"),
            version: (next(), next(), next()),
        }
    }

    pub fn mysql_at_least(&self, version: (u32, u32, u32)) -> bool {
        !self.mariadb && self.version >= version
    }
}

/// Calls `f` for each piece of `sql`: `true` for a quoted part (string literal or quoted
/// identifier, quotes included), `false` for the text between. MySQL strings may escape with a
/// backslash or a doubled quote; identifiers only with a doubled backtick. An unterminated
/// quote runs to the end (the catalog should never hold one, but it must not break anything).
fn pieces(sql: &str, mut f: impl FnMut(bool, &str)) {
    let bytes = sql.as_bytes();
    let (mut i, mut start) = (0, 0);
    while i < bytes.len() {
        let q = bytes[i];
        if q != b'\'' && q != b'"' && q != b'`' {
            i += 1;
            continue;
        }
        if start < i {
            f(false, &sql[start..i]);
        }
        let open = i;
        i += 1;
        while i < bytes.len() {
            if bytes[i] == b'\\' && q != b'`' {
                i += 2;
            } else if bytes[i] == q {
                if bytes.get(i + 1) == Some(&q) {
                    i += 2;
                } else {
                    i += 1;
                    break;
                }
            } else {
                i += 1;
            }
        }
        let end = i.min(bytes.len());
        f(true, &sql[open..end]);
        i = end;
        start = end;
    }
    if start < bytes.len() {
        f(false, &sql[start..]);
    }
}

/// Whitespace runs outside quotes become one space; leading and trailing whitespace go.
pub(crate) fn squash(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    pieces(sql.trim(), |quoted, part| {
        if quoted {
            out.push_str(part);
            return;
        }
        let mut space = false;
        for c in part.chars() {
            if c.is_whitespace() {
                space = true;
            } else {
                if space {
                    out.push(' ');
                    space = false;
                }
                out.push(c);
            }
        }
        if space {
            out.push(' ');
        }
    });
    out
}

fn lower_outside_quotes(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    pieces(sql, |quoted, part| {
        if quoted {
            out.push_str(part);
        } else {
            out.push_str(&part.to_lowercase());
        }
    });
    out
}

/// `COLUMN_TYPE` (or a routine's `DTD_IDENTIFIER`) in one spelling: lower case outside quotes
/// (enum labels keep theirs), and no integer display width, which MySQL 8 no longer prints and
/// which changes nothing but how a client pads. Two widths stay, as MySQL 8 keeps them:
/// `tinyint(1)`, which drivers and ORMs read as boolean, and the width of a `zerofill` column.
/// MariaDB's `year(4)` is MySQL's `year`.
pub(crate) fn column_type(raw: &str) -> String {
    let t = lower_outside_quotes(&squash(raw));
    for base in [
        "tinyint",
        "smallint",
        "mediumint",
        "int",
        "integer",
        "bigint",
    ] {
        let Some(rest) = t.strip_prefix(base) else {
            continue;
        };
        let Some(inner) = rest.strip_prefix('(') else {
            continue;
        };
        let Some((width, after)) = inner.split_once(')') else {
            continue;
        };
        let keep = (base == "tinyint" && width == "1") || after.contains("zerofill");
        if !keep && !width.is_empty() && width.bytes().all(|b| b.is_ascii_digit()) {
            return format!("{base}{after}");
        }
    }
    if t == "year(4)" {
        return "year".into();
    }
    t
}

/// What `COLUMN_TYPE` starts with, e.g. `int` for `int unsigned`, `decimal` for `decimal(10,2)`.
fn base_type(data_type: &str) -> &str {
    let end = data_type.find(['(', ' ']).unwrap_or(data_type.len());
    &data_type[..end]
}

fn is_numeric(data_type: &str) -> bool {
    matches!(
        base_type(data_type),
        "tinyint"
            | "smallint"
            | "mediumint"
            | "int"
            | "integer"
            | "bigint"
            | "decimal"
            | "numeric"
            | "float"
            | "double"
            | "real"
            | "year"
    )
}

/// A string value as one SQL literal: single quotes, a quote doubled. (Backslashes are left as
/// they are: the canonical form is compared, not executed.)
pub(crate) fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The value of a MariaDB string literal as information_schema prints it (`'it\'s'`), or
/// `None` if `raw` is not one whole literal.
fn unquote_literal(raw: &str) -> Option<String> {
    let inner = raw.strip_prefix('\'')?.strip_suffix('\'')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                '0' => out.push('\0'),
                'b' => out.push('\u{8}'),
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'Z' => out.push('\u{1a}'),
                // LIKE wildcards keep their backslash, as MySQL does.
                c @ ('%' | '_') => {
                    out.push('\\');
                    out.push(c);
                }
                other => out.push(other),
            },
            '\'' => {
                // Only a doubled quote can stand inside; anything else means two literals.
                if chars.next()? != '\'' {
                    return None;
                }
                out.push('\'');
            }
            c => out.push(c),
        }
    }
    Some(out)
}

/// An expression default or `ON UPDATE` value. The current-time function is the common case and
/// has many spellings (`CURRENT_TIMESTAMP`, `current_timestamp()`, `now()`, `localtimestamp`):
/// they all become `current_timestamp()` (with the precision when one is given).
pub(crate) fn expression(raw: &str) -> String {
    let s = squash(raw);
    let lower = s.to_ascii_lowercase();
    let (name, args) = match lower.split_once('(') {
        Some((name, rest)) => (name.trim(), rest.strip_suffix(')').map(str::trim)),
        None => (lower.as_str(), Some("")),
    };
    let is_now = matches!(
        name,
        "current_timestamp" | "now" | "localtimestamp" | "localtime"
    );
    match args {
        Some(args) if is_now && args.bytes().all(|b| b.is_ascii_digit()) => {
            format!("current_timestamp({args})")
        }
        _ => s,
    }
}

/// `COLUMN_DEFAULT` in one spelling for both servers: `None` for no default and for `DEFAULT
/// NULL` (the same thing), string literals single-quoted, numbers bare, expressions as the
/// server prints them.
///
/// MariaDB prints SQL: `'abc'` quoted (backslash escapes), `NULL` as the word, numbers bare,
/// expressions such as `current_timestamp()`. MySQL 8 prints the bare value (`abc`) and marks an
/// expression default with `DEFAULT_GENERATED` in `EXTRA`; NULL is SQL NULL.
pub(crate) fn default_value(
    raw: Option<&str>,
    server: Server,
    default_generated: bool,
    data_type: &str,
) -> Option<String> {
    let raw = raw?;
    if server.mariadb {
        if raw == "NULL" {
            return None;
        }
        if raw.starts_with('\'') {
            return Some(match unquote_literal(raw) {
                Some(value) => quote_literal(&value),
                None => raw.to_string(),
            });
        }
        return Some(expression(raw));
    }
    if default_generated {
        return Some(expression(raw));
    }
    if is_numeric(data_type) || (base_type(data_type) == "bit" && raw.starts_with("b'")) {
        return Some(raw.to_string());
    }
    Some(quote_literal(raw))
}

/// What the `EXTRA` column of information_schema.COLUMNS says.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Extra {
    pub auto_increment: bool,
    pub default_generated: bool,
    pub on_update: Option<String>,
    /// `virtual` or `stored`.
    pub generated: Option<&'static str>,
    pub invisible: bool,
    /// Words not understood, kept so that a difference still shows.
    pub other: Vec<String>,
}

pub(crate) fn parse_extra(extra: &str) -> Extra {
    let lower = extra.to_lowercase();
    let mut words = lower.split_whitespace().peekable();
    let mut out = Extra::default();
    while let Some(w) = words.next() {
        match w {
            "auto_increment" => out.auto_increment = true,
            "default_generated" => out.default_generated = true,
            "invisible" => out.invisible = true,
            "on" if words.peek() == Some(&"update") => {
                words.next();
                out.on_update = words.next().map(expression);
            }
            "virtual" | "stored" | "persistent" if words.peek() == Some(&"generated") => {
                words.next();
                out.generated = Some(if w == "virtual" { "virtual" } else { "stored" });
            }
            other => out.other.push(other.to_string()),
        }
    }
    out
}

/// `CREATE_OPTIONS` of information_schema.TABLES (`row_format=COMPACT partitioned
/// `encrypted`=yes`) as options, names and values lower-cased; a bare word is `word=yes`.
pub(crate) fn table_options(create_options: &str) -> BTreeMap<String, String> {
    create_options
        .split_whitespace()
        .map(|opt| {
            let (k, v) = opt.split_once('=').unwrap_or((opt, "yes"));
            let clean = |s: &str| {
                s.trim_matches(|c| c == '`' || c == '\'' || c == '"')
                    .to_lowercase()
            };
            (clean(k), clean(v))
        })
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

/// Removes `` `db`. `` qualifiers naming the current database, which MariaDB and MySQL write
/// into every view definition, so that the same view in databases of other names compares
/// equal. Other databases' qualifiers and quoted text stay.
pub(crate) fn strip_qualifier(sql: &str, database: &str) -> String {
    let qualifier = format!("`{}`", database.replace('`', "``"));
    let mut out = String::with_capacity(sql.len());
    let mut skip_dot = false;
    pieces(sql, |quoted, part| {
        if skip_dot {
            skip_dot = false;
            if let Some(rest) = part.strip_prefix('.').filter(|_| !quoted) {
                out.push_str(rest);
                return;
            }
            // Not followed by a dot after all: the identifier was not a qualifier.
            out.push_str(&qualifier);
        }
        if quoted && part == qualifier {
            skip_dot = true;
        } else {
            out.push_str(part);
        }
    });
    if skip_dot {
        out.push_str(&qualifier);
    }
    out
}

fn digits_after(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix)
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// MySQL names an unnamed unique key after its first column, adding `_2`, `_3` on a clash.
pub(crate) fn is_generated_unique_name(name: &str, first_column: &str) -> bool {
    name == first_column || digits_after(name, &format!("{first_column}_"))
}

/// InnoDB names an unnamed foreign key `<table>_ibfk_<n>`.
pub(crate) fn is_generated_fk_name(name: &str, table: &str) -> bool {
    digits_after(name, &format!("{table}_ibfk_"))
}

/// MySQL 8 names an unnamed check `<table>_chk_<n>`; MariaDB names a table-level one
/// `CONSTRAINT_<n>` and a column-level one after its column (information_schema says
/// `LEVEL = 'Column'`).
pub(crate) fn is_generated_check_name(
    name: &str,
    table: &str,
    server: Server,
    column_level: bool,
) -> bool {
    if server.mariadb {
        column_level || digits_after(name, "CONSTRAINT_")
    } else {
        digits_after(name, &format!("{table}_chk_"))
    }
}

/// A referential action; InnoDB treats `RESTRICT` and `NO ACTION` alike (and MariaDB and MySQL
/// print the default differently), so both are the default, `None`.
pub(crate) fn referential_action(rule: &str) -> Option<String> {
    let r = rule.trim().to_ascii_lowercase();
    (!r.is_empty() && r != "restrict" && r != "no action").then_some(r)
}

/// `(expr)` for an index part or key; left alone if the whole text is already parenthesised.
pub(crate) fn parenthesize(expr: &str) -> String {
    let e = squash(expr);
    let mut depth = 0i32;
    let mut wrapped = e.starts_with('(');
    let mut offset = 0;
    pieces(&e, |quoted, part| {
        if quoted {
            offset += part.len();
            return;
        }
        for (i, c) in part.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 && offset + i + 1 != e.len() {
                        wrapped = false;
                    }
                }
                _ => {}
            }
        }
        offset += part.len();
    });
    if wrapped { e } else { format!("({e})") }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARIADB: Server = Server {
        mariadb: true,
        version: (10, 11, 19),
    };
    const MYSQL: Server = Server {
        mariadb: false,
        version: (8, 0, 36),
    };

    #[test]
    fn server_versions() {
        assert_eq!(
            Server::new("MariaDB", "10.11.19-MariaDB-0+deb12u1"),
            MARIADB
        );
        assert_eq!(Server::new("MySQL", "8.0.36"), MYSQL);
        assert!(Server::new("MySQL", "8.4.0-commercial").mysql_at_least((8, 0, 16)));
        assert!(!MARIADB.mysql_at_least((8, 0, 0)));
        assert_eq!(Server::new("MySQL", "junk").version, (0, 0, 0));
    }

    #[test]
    fn squash_keeps_quoted_text() {
        assert_eq!(
            squash("  SET  NEW.a =\n 'x  y' ,\t`a  b`  "),
            "SET NEW.a = 'x  y' , `a  b`"
        );
        assert_eq!(squash("'it\\'s  x'  y"), "'it\\'s  x' y");
        assert_eq!(squash("'unterminated  "), "'unterminated");
    }

    #[test]
    fn integer_display_widths_go_except_boolean_and_zerofill() {
        assert_eq!(column_type("int(11)"), "int");
        assert_eq!(column_type("INT"), "int");
        assert_eq!(column_type("bigint(20) unsigned"), "bigint unsigned");
        assert_eq!(column_type("tinyint(1)"), "tinyint(1)");
        assert_eq!(column_type("tinyint(4)"), "tinyint");
        assert_eq!(
            column_type("int(10) unsigned zerofill"),
            "int(10) unsigned zerofill"
        );
        assert_eq!(column_type("year(4)"), "year");
        assert_eq!(column_type("decimal(10,2)"), "decimal(10,2)");
        assert_eq!(column_type("VARCHAR(100)"), "varchar(100)");
        assert_eq!(
            column_type("enum('Small','Large')"),
            "enum('Small','Large')"
        );
        assert_eq!(column_type("integer"), "integer");
    }

    #[test]
    fn mariadb_and_mysql_defaults_have_one_spelling() {
        let d = |raw, server, generated, ty| default_value(raw, server, generated, ty);
        // Strings.
        assert_eq!(
            d(Some("'abc'"), MARIADB, false, "varchar(5)").as_deref(),
            Some("'abc'")
        );
        assert_eq!(
            d(Some("abc"), MYSQL, false, "varchar(5)").as_deref(),
            Some("'abc'")
        );
        assert_eq!(
            d(Some("'it\\'s'"), MARIADB, false, "text").as_deref(),
            Some("'it''s'")
        );
        assert_eq!(
            d(Some("it's"), MYSQL, false, "text").as_deref(),
            Some("'it''s'")
        );
        assert_eq!(
            d(Some("'NULL'"), MARIADB, false, "text").as_deref(),
            Some("'NULL'")
        );
        assert_eq!(d(Some("''"), MARIADB, false, "text").as_deref(), Some("''"));
        assert_eq!(d(Some(""), MYSQL, false, "text").as_deref(), Some("''"));
        // NULL and no default.
        assert_eq!(d(Some("NULL"), MARIADB, false, "int"), None);
        assert_eq!(d(None, MARIADB, false, "int"), None);
        assert_eq!(d(None, MYSQL, false, "int"), None);
        // Numbers, bits.
        assert_eq!(d(Some("0"), MARIADB, false, "int").as_deref(), Some("0"));
        assert_eq!(d(Some("0"), MYSQL, false, "int").as_deref(), Some("0"));
        assert_eq!(
            d(Some("1.50"), MYSQL, false, "decimal(10,2)").as_deref(),
            Some("1.50")
        );
        assert_eq!(
            d(Some("0"), MYSQL, false, "varchar(3)").as_deref(),
            Some("'0'")
        );
        assert_eq!(
            d(Some("b'1'"), MYSQL, false, "bit(1)").as_deref(),
            Some("b'1'")
        );
        // Expressions.
        assert_eq!(
            d(Some("current_timestamp()"), MARIADB, false, "timestamp").as_deref(),
            Some("current_timestamp()")
        );
        assert_eq!(
            d(Some("CURRENT_TIMESTAMP"), MYSQL, true, "timestamp").as_deref(),
            Some("current_timestamp()")
        );
        assert_eq!(
            d(Some("CURRENT_TIMESTAMP(3)"), MYSQL, true, "datetime(3)").as_deref(),
            Some("current_timestamp(3)")
        );
        assert_eq!(
            d(Some("uuid()"), MARIADB, false, "varchar(36)").as_deref(),
            Some("uuid()")
        );
    }

    #[test]
    fn extra_is_understood_word_by_word() {
        assert_eq!(
            parse_extra("DEFAULT_GENERATED on update CURRENT_TIMESTAMP"),
            Extra {
                default_generated: true,
                on_update: Some("current_timestamp()".into()),
                ..Default::default()
            }
        );
        let e = parse_extra("on update current_timestamp(3)");
        assert_eq!(e.on_update.as_deref(), Some("current_timestamp(3)"));
        assert!(parse_extra("auto_increment").auto_increment);
        assert_eq!(parse_extra("STORED GENERATED").generated, Some("stored"));
        assert_eq!(parse_extra("VIRTUAL GENERATED").generated, Some("virtual"));
        let odd = parse_extra("INVISIBLE SOMETHING new");
        assert!(odd.invisible);
        assert_eq!(odd.other, vec!["something", "new"]);
        assert_eq!(parse_extra(""), Extra::default());
    }

    #[test]
    fn create_options_become_table_options() {
        let o = table_options("row_format=COMPACT partitioned `encrypted`=yes");
        assert_eq!(o.get("row_format").map(String::as_str), Some("compact"));
        assert_eq!(o.get("partitioned").map(String::as_str), Some("yes"));
        assert_eq!(o.get("encrypted").map(String::as_str), Some("yes"));
        assert!(table_options("").is_empty());
    }

    #[test]
    fn view_definitions_lose_the_current_database_qualifier_only() {
        let sql = "select `tm_a`.`users`.`id` AS `id`,'`tm_a`.x' AS `s` from `tm_a`.`users` join `other`.`t` where `tm_a` = 1";
        assert_eq!(
            strip_qualifier(sql, "tm_a"),
            "select `users`.`id` AS `id`,'`tm_a`.x' AS `s` from `users` join `other`.`t` where `tm_a` = 1"
        );
        assert_eq!(strip_qualifier("`tm_a`", "tm_a"), "`tm_a`");
        assert_eq!(strip_qualifier("`tm_ab`.`t`", "tm_a"), "`tm_ab`.`t`");
    }

    #[test]
    fn generated_names() {
        assert!(is_generated_unique_name("email", "email"));
        assert!(is_generated_unique_name("email_2", "email"));
        assert!(!is_generated_unique_name("uq_email", "email"));
        assert!(!is_generated_unique_name("email_", "email"));
        assert!(is_generated_fk_name("posts_ibfk_1", "posts"));
        assert!(!is_generated_fk_name("fk_posts_user", "posts"));
        assert!(is_generated_check_name("CONSTRAINT_1", "t", MARIADB, false));
        assert!(is_generated_check_name("price", "t", MARIADB, true));
        assert!(!is_generated_check_name("price_pos", "t", MARIADB, false));
        assert!(is_generated_check_name("t_chk_1", "t", MYSQL, false));
        assert!(!is_generated_check_name("CONSTRAINT_1", "t", MYSQL, false));
    }

    #[test]
    fn actions_and_parentheses() {
        assert_eq!(referential_action("RESTRICT"), None);
        assert_eq!(referential_action("NO ACTION"), None);
        assert_eq!(referential_action("SET NULL").as_deref(), Some("set null"));
        assert_eq!(parenthesize("lower(`email`)"), "(lower(`email`))");
        assert_eq!(parenthesize("(lower(`email`))"), "(lower(`email`))");
        assert_eq!(parenthesize("(a) + (b)"), "((a) + (b))");
        assert_eq!(parenthesize("(')')"), "(')')");
    }
}
