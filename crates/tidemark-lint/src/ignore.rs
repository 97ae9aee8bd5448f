//! Inline ignores: `-- tidemark:lint-ignore RULE[,RULE…] reason` silences those rules for one
//! statement (the one on the same line, or the next one below the comment), and
//! `-- tidemark:lint-ignore-file RULE[,RULE…] reason` for the whole file. A reason is required:
//! an ignore is a decision someone made, and the next reader needs to know why.

use crate::analysis::Stmt;
use crate::rule::{Rule, find};
use crate::source::Span;

const STMT_DIRECTIVE: &str = "tidemark:lint-ignore";
const FILE_DIRECTIVE: &str = "tidemark:lint-ignore-file";

/// A valid ignore.
#[derive(Debug, Clone)]
pub struct Ignore {
    /// Canonical rule ids (aliases resolved).
    pub rules: Vec<&'static str>,
    /// `None` for a file-level ignore; else the statement (0-based index) it applies to.
    pub statement: Option<usize>,
    pub reason: String,
}

/// An ignore comment that cannot be honoured, and why.
#[derive(Debug, Clone)]
pub struct BadIgnore {
    pub span: Span,
    pub message: String,
    pub help: String,
}

#[derive(Debug, Clone, Default)]
pub struct Ignores {
    pub valid: Vec<Ignore>,
    pub bad: Vec<BadIgnore>,
}

impl Ignores {
    /// Find the ignore comments of a script. `stmts` are the script's statements, with
    /// offsets into `text`.
    pub fn parse(text: &str, stmts: &[Stmt]) -> Ignores {
        let mut out = Ignores::default();
        let mut line_start = 0;
        for line in text.split('\n') {
            let here = line_start;
            line_start += line.len() + 1;
            let Some(dash) = line.find("--") else {
                continue;
            };
            let comment = line[dash + 2..].trim_start();
            if !comment.starts_with(STMT_DIRECTIVE) {
                continue;
            }
            let span = Span::new(here + dash, here + line.len());
            let (file_level, rest) = match comment.strip_prefix(FILE_DIRECTIVE) {
                Some(r) => (true, r),
                None => (false, &comment[STMT_DIRECTIVE.len()..]),
            };
            if !rest.is_empty() && !rest.starts_with(char::is_whitespace) {
                // e.g. `tidemark:lint-ignored`: not our directive; tidemark-core rejects
                // unknown directives at the top of a file, but not further down.
                out.bad.push(BadIgnore {
                    span,
                    message: format!(
                        "unknown directive `{}`",
                        comment.split_whitespace().next().unwrap_or(comment)
                    ),
                    help: "write `-- tidemark:lint-ignore RULE reason` or `-- tidemark:lint-ignore-file RULE reason`".into(),
                });
                continue;
            }
            let rest = rest.trim();
            let (ids, reason) = rest
                .split_once(char::is_whitespace)
                .map_or((rest, ""), |(i, r)| (i, r.trim()));
            let directive = if file_level {
                FILE_DIRECTIVE
            } else {
                STMT_DIRECTIVE
            };
            if ids.is_empty() {
                out.bad.push(BadIgnore {
                    span,
                    message: format!("`{directive}` names no rule"),
                    help: format!("write `-- {directive} RULE reason`; `tidemark lint --list-rules` lists the rules"),
                });
                continue;
            }
            let mut rules = Vec::new();
            let mut unknown = Vec::new();
            for id in ids.split(',').filter(|s| !s.is_empty()) {
                match find(id) {
                    Some(r) => rules.push(Rule::id(r)),
                    None => unknown.push(id),
                }
            }
            if !unknown.is_empty() {
                out.bad.push(BadIgnore {
                    span,
                    message: format!(
                        "`{directive}` names an unknown rule `{}`",
                        unknown.join("`, `")
                    ),
                    help: "use a rule id from `tidemark lint --list-rules`".into(),
                });
                continue;
            }
            if reason.is_empty() {
                out.bad.push(BadIgnore {
                    span,
                    message: format!("`{directive} {ids}` gives no reason, so it is not honoured"),
                    help: format!("say why it is safe: `-- {directive} {ids} <reason>`"),
                });
                continue;
            }
            let statement = if file_level {
                None
            } else {
                let trailing = !line[..dash].trim().is_empty();
                match target(text, stmts, here, trailing) {
                    Some(i) => Some(i),
                    None => {
                        out.bad.push(BadIgnore {
                            span,
                            message: format!("`{directive} {ids}` is not next to a statement"),
                            help: "put it on the line above the statement (or at the end of the statement's line), or use `tidemark:lint-ignore-file`".into(),
                        });
                        continue;
                    }
                }
            };
            out.valid.push(Ignore {
                rules,
                statement,
                reason: reason.to_string(),
            });
        }
        out
    }

    /// True when a valid ignore silences `rule` for `statement` (`None`: the script as a whole).
    pub fn silences(&self, rule: &str, statement: Option<usize>) -> bool {
        self.valid.iter().any(|i| {
            i.rules.contains(&rule)
                && (i.statement.is_none() || i.statement == statement && statement.is_some())
        })
    }

    pub fn silences_file(&self, rule: &str) -> bool {
        self.valid
            .iter()
            .any(|i| i.statement.is_none() && i.rules.contains(&rule))
    }
}

/// The statement an ignore comment on the line starting at `line_start` applies to: a comment
/// after code applies to the statement on that line; a comment on a line of its own applies to
/// the next statement, with only blank or comment lines between them.
fn target(text: &str, stmts: &[Stmt], line_start: usize, trailing: bool) -> Option<usize> {
    let line_end = text[line_start..]
        .find('\n')
        .map_or(text.len(), |k| line_start + k);
    if trailing {
        // The statement whose text reaches onto this line; the last one if several end here.
        return stmts
            .iter()
            .filter(|s| s.start <= line_end && s.start + s.text.len() >= line_start)
            .map(|s| s.index)
            .next_back();
    }
    let next = stmts.iter().find(|s| s.start > line_end)?;
    let between = &text[line_end..next.start];
    // Only blank lines and comment lines may separate the comment from its statement.
    let lines: Vec<&str> = between.split('\n').collect();
    let clean = lines
        .iter()
        .take(lines.len().saturating_sub(1))
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with("--"));
    clean.then_some(next.index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidemark_core::Dialect;

    fn parse(sql: &str) -> Ignores {
        let stmts: Vec<Stmt> = tidemark_core::split::split(sql, Dialect::Postgres)
            .unwrap()
            .into_iter()
            .enumerate()
            .map(|(i, s)| Stmt::new(i, s.text, s.start, Dialect::Postgres))
            .collect();
        Ignores::parse(sql, &stmts)
    }

    #[test]
    fn line_ignores_target_the_next_or_same_line_statement() {
        let sql = "SELECT 1;\n-- tidemark:lint-ignore drop-table emptied by 041\n-- another comment\n\nDROP TABLE a;\nDROP TABLE b; -- tidemark:lint-ignore drop-table,ban-drop-column also fine\nSELECT 2;";
        let i = parse(sql);
        assert!(i.bad.is_empty(), "{:?}", i.bad);
        assert_eq!(i.valid.len(), 2);
        assert_eq!(i.valid[0].statement, Some(1));
        assert_eq!(i.valid[0].reason, "emptied by 041");
        assert_eq!(i.valid[1].statement, Some(2));
        assert_eq!(i.valid[1].rules, vec!["drop-table", "drop-column"]);
        assert!(i.silences("drop-table", Some(1)));
        assert!(!i.silences("drop-table", Some(3)));
        assert!(!i.silences("drop-column", Some(1)));
        assert!(!i.silences("drop-table", None));
    }

    #[test]
    fn a_line_ignore_does_not_reach_past_code() {
        let sql = "-- tidemark:lint-ignore drop-table reason\nSELECT 1;\nDROP TABLE a;";
        let i = parse(sql);
        assert_eq!(i.valid[0].statement, Some(0));
        assert!(!i.silences("drop-table", Some(1)));
    }

    #[test]
    fn file_ignores_apply_everywhere() {
        let i = parse(
            "DROP TABLE a;\n-- tidemark:lint-ignore-file drop-table archive tables, see ADR 12\n",
        );
        assert!(i.silences("drop-table", Some(0)));
        assert!(i.silences("drop-table", None));
        assert!(i.silences_file("drop-table"));
    }

    #[test]
    fn bad_ignores_are_reported_and_not_honoured() {
        let sql = "-- tidemark:lint-ignore drop-table\nDROP TABLE a;\n-- tidemark:lint-ignore drop-tabel typo\nDROP TABLE b;\n-- tidemark:lint-ignore-file\n-- tidemark:lint-ignored x y\nSELECT 1;\n-- tidemark:lint-ignore drop-table nothing below";
        let i = parse(sql);
        let msgs: Vec<&str> = i.bad.iter().map(|b| b.message.as_str()).collect();
        assert_eq!(msgs.len(), 5, "{msgs:?}");
        assert!(msgs[0].contains("no reason"), "{msgs:?}");
        assert!(msgs[1].contains("`drop-tabel`"), "{msgs:?}");
        assert!(msgs[2].contains("names no rule"), "{msgs:?}");
        assert!(msgs[3].contains("unknown directive"), "{msgs:?}");
        assert!(msgs[4].contains("not next to a statement"), "{msgs:?}");
        assert!(i.valid.is_empty());
        assert_eq!(&sql[i.bad[0].span.start..i.bad[0].span.start + 2], "--");
    }
}
