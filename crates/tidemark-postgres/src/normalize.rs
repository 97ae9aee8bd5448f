//! Pure helpers for inspection: the names PostgreSQL generates for constraints, and text
//! normalisation of definitions. No I/O, unit-tested below.

/// `NAMEDATALEN - 1`: the longest identifier PostgreSQL keeps, in bytes.
const MAX_IDENTIFIER: usize = 63;

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary
/// (PostgreSQL's `pg_mbcliplen` for UTF-8).
fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// PostgreSQL's `makeObjectName`: `name1[_name2]_label`, the longer of the two names shortened
/// first so that the whole fits in 63 bytes.
pub fn make_object_name(name1: &str, name2: Option<&str>, label: &str) -> String {
    let overhead = label.len() + 1 + usize::from(name2.is_some());
    let avail = MAX_IDENTIFIER.saturating_sub(overhead);
    let (mut n1, mut n2) = (name1.len(), name2.map_or(0, str::len));
    while n1 + n2 > avail {
        if n1 > n2 {
            n1 -= 1;
        } else {
            n2 -= 1;
        }
    }
    let mut out = clip(name1, n1).to_string();
    if let Some(name2) = name2 {
        out.push('_');
        out.push_str(clip(name2, n2));
    }
    out.push('_');
    out.push_str(label);
    out
}

/// PostgreSQL's `ChooseIndexNameAddition` / `ChooseForeignKeyConstraintNameAddition`: the
/// column names joined by `_`, cut off once the result is at least 64 bytes long.
pub fn name_addition(columns: &[String]) -> String {
    let mut buf = String::new();
    for c in columns {
        if !buf.is_empty() {
            buf.push('_');
        }
        buf.push_str(clip(c, MAX_IDENTIFIER));
        if buf.len() > MAX_IDENTIFIER {
            break;
        }
    }
    buf
}

/// Is `name` the one PostgreSQL picks by default for `table`, `addition` and `label` (e.g.
/// `orders_user_id_fkey`), or one of its numbered variants (`orders_user_id_fkey1`, chosen when
/// the plain name was taken)?
pub fn is_default_name(name: &str, table: &str, addition: Option<&str>, label: &str) -> bool {
    if name == make_object_name(table, addition, label) {
        return true;
    }
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 || name[name.len() - digits..].starts_with('0') {
        return false;
    }
    let numbered = format!("{label}{}", &name[name.len() - digits..]);
    name == make_object_name(table, addition, &numbered)
}

/// Calls `f` for each character of `s` with whether it is outside quotes (`'…'`, `"…"`,
/// `$tag$…$tag$`), so that normalisation never touches the inside of a literal.
fn scan(s: &str, mut f: impl FnMut(char, bool)) {
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\'' | '"' => {
                // A doubled quote inside is just the close followed by a new open: the state
                // ends up right either way.
                f(c, false);
                i += 1;
                while i < chars.len() {
                    f(chars[i], false);
                    i += 1;
                    if chars[i - 1] == c {
                        break;
                    }
                }
            }
            '$' if i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_') => {
                // `$tag$` or `$$` opens a dollar-quoted string; `$1` is a parameter, and a `$`
                // inside an identifier (`a$b`) is part of it.
                let tag_end = chars[i + 1..]
                    .iter()
                    .position(|&ch| !(ch.is_alphanumeric() || ch == '_'))
                    .map(|p| i + 1 + p);
                let starts_with_digit = chars.get(i + 1).is_some_and(char::is_ascii_digit);
                match tag_end {
                    Some(end) if chars[end] == '$' && !starts_with_digit => {
                        let tag: Vec<char> = chars[i..=end].to_vec();
                        for &ch in &tag {
                            f(ch, false);
                        }
                        i = end + 1;
                        while i < chars.len() {
                            if chars[i..].starts_with(&tag) {
                                for &ch in &tag {
                                    f(ch, false);
                                }
                                i += tag.len();
                                break;
                            }
                            f(chars[i], false);
                            i += 1;
                        }
                    }
                    _ => {
                        f(c, true);
                        i += 1;
                    }
                }
            }
            _ => {
                f(c, true);
                i += 1;
            }
        }
    }
}

/// Collapse every run of whitespace outside quotes into one space and trim both ends, so a
/// definition does not change with its indentation.
pub fn collapse_whitespace(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending_space = false;
    scan(s.trim(), |c, outside| {
        if outside && c.is_whitespace() {
            pending_space = true;
            return;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.push(c);
    });
    out
}

/// A view definition as `pg_get_viewdef` prints it, whitespace-normalised and without the
/// trailing semicolon.
pub fn view_definition(def: &str) -> String {
    let s = collapse_whitespace(def);
    s.strip_suffix(';')
        .map(str::trim_end)
        .unwrap_or(&s)
        .to_string()
}

/// `(a > 0)` → `a > 0`, but `(a > 0) AND (b > 0)` stays as it is.
pub fn strip_outer_parens(expr: &str) -> &str {
    let e = expr.trim();
    if !(e.starts_with('(') && e.ends_with(')')) {
        return e;
    }
    let mut depth = 0i32;
    let mut closes_early = false;
    let last = e.chars().count() - 1;
    let mut idx = 0;
    scan(e, |c, outside| {
        if outside {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 && idx != last {
                        closes_early = true;
                    }
                }
                _ => {}
            }
        }
        idx += 1;
    });
    if closes_early || depth != 0 {
        e
    } else {
        e[1..e.len() - 1].trim()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(c: &[&str]) -> Vec<String> {
        c.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn default_names_as_postgres_builds_them() {
        assert_eq!(make_object_name("users", None, "pkey"), "users_pkey");
        assert_eq!(
            make_object_name("users", Some(&name_addition(&cols(&["a", "b"]))), "key"),
            "users_a_b_key"
        );
        // 63 bytes at most, the longer part shortened first.
        let long_table = "t".repeat(60);
        let n = make_object_name(&long_table, Some("email"), "key");
        assert_eq!(n.len(), 63);
        assert_eq!(n, format!("{}_email_key", "t".repeat(53)));
        let n = make_object_name("orders", Some(&"c".repeat(70)), "fkey");
        assert_eq!(n, format!("orders_{}_fkey", "c".repeat(51)));
        // A multibyte character is never split.
        let n = make_object_name(&"é".repeat(40), None, "pkey");
        assert!(n.len() <= 63 && n.ends_with("_pkey"));
    }

    #[test]
    fn recognises_default_and_numbered_names_only() {
        assert!(is_default_name("t_pkey", "t", None, "pkey"));
        assert!(is_default_name("t_pkey1", "t", None, "pkey"));
        assert!(is_default_name("t_a_key", "t", Some("a"), "key"));
        assert!(is_default_name("t_a_key12", "t", Some("a"), "key"));
        assert!(is_default_name("t_a_check", "t", Some("a"), "check"));
        assert!(!is_default_name("t_a_key01", "t", Some("a"), "key"));
        assert!(!is_default_name("t_a_key", "t", Some("b"), "key"));
        assert!(!is_default_name(
            "users_email_unique",
            "users",
            Some("email"),
            "key"
        ));
        assert!(!is_default_name("old_pkey", "new", None, "pkey"));
        assert!(!is_default_name("t_pkey_", "t", None, "pkey"));
    }

    #[test]
    fn whitespace_is_collapsed_outside_quotes_only() {
        assert_eq!(
            collapse_whitespace("  SELECT a,\n\t  b FROM   t WHERE x = 'a  b' AND \"c  d\" = 1 "),
            "SELECT a, b FROM t WHERE x = 'a  b' AND \"c  d\" = 1"
        );
        assert_eq!(
            collapse_whitespace("BEGIN\n  RETURN $x$ a  b $x$ ||  $1;\nEND"),
            "BEGIN RETURN $x$ a  b $x$ || $1; END"
        );
        assert_eq!(collapse_whitespace("'it''s  ok'   x"), "'it''s  ok' x");
        assert_eq!(collapse_whitespace("'unterminated  "), "'unterminated");
        assert_eq!(view_definition(" SELECT 1;\n"), "SELECT 1");
    }

    #[test]
    fn outer_parentheses_only_when_they_enclose_everything() {
        assert_eq!(strip_outer_parens("(a > 0)"), "a > 0");
        assert_eq!(
            strip_outer_parens("(a > 0) AND (b > 0)"),
            "(a > 0) AND (b > 0)"
        );
        assert_eq!(strip_outer_parens("a > 0"), "a > 0");
        assert_eq!(strip_outer_parens("(x = ')(')"), "x = ')('");
        assert_eq!(strip_outer_parens("("), "(");
        assert_eq!(strip_outer_parens("()"), "");
    }
}
