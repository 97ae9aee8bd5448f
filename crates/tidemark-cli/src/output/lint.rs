//! Rendering of lint findings: text like a compiler's, one JSON document, or GitHub workflow
//! annotations. Line and column are computed here, from each finding's byte span.

use anstyle::{AnsiColor, Style};
use serde::Serialize;
use tidemark::Dialect;
use tidemark_lint::{ALIASES, Levels, RULES, Violation};

use super::{BOLD, DIM, GREEN, Out, RED, YELLOW, paint};
use crate::cli::Format;

const CYAN: Style = AnsiColor::Cyan.on_default();

pub struct Summary {
    pub dialect: Dialect,
    pub migrations: usize,
    /// Statements of the linted up and down scripts.
    pub statements: usize,
    pub errors: usize,
    pub warnings: usize,
    /// Each linted migration's class, with the statements that decided it.
    pub classes: Vec<ClassDoc>,
}

/// What a migration does to the release running beside it (recorded in the history when it
/// is applied; the gate and the deploy's rollback policy rely on it).
#[derive(Serialize)]
pub struct ClassDoc {
    pub version: i64,
    pub file: String,
    pub class: tidemark::MigrationClass,
    pub reasons: Vec<String>,
}

/// `lint --format json`: 1-based lines and columns (columns count characters).
#[derive(Serialize)]
pub struct LintDoc<'a> {
    pub findings: Vec<FindingDoc>,
    pub errors: usize,
    pub warnings: usize,
    pub migrations: usize,
    pub statements: usize,
    pub dialect: Dialect,
    pub classes: &'a [ClassDoc],
}

#[derive(Serialize)]
pub struct FindingDoc {
    pub rule: &'static str,
    pub severity: &'static str,
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub help: String,
}

impl FindingDoc {
    fn new(v: &Violation) -> FindingDoc {
        let at = v.position();
        FindingDoc {
            rule: v.rule,
            severity: v.severity.name(),
            file: v.source.path.display().to_string(),
            line: at.line,
            column: at.column,
            message: v.message.clone(),
            help: v.help.clone(),
        }
    }
}

pub fn render(out: &Out, findings: &[Violation], summary: &Summary) {
    let docs: Vec<FindingDoc> = findings.iter().map(FindingDoc::new).collect();
    match out.format {
        Format::Json => out.json(&LintDoc {
            findings: docs,
            errors: summary.errors,
            warnings: summary.warnings,
            migrations: summary.migrations,
            statements: summary.statements,
            dialect: summary.dialect,
            classes: &summary.classes,
        }),
        Format::Github => {
            for f in &docs {
                crate::output::print_line(&github(f).to_string());
            }
            out.line(summary_line(summary));
        }
        Format::Text => {
            for f in &docs {
                let sev = match f.severity {
                    "error" => paint(RED.bold(), "error"),
                    _ => paint(YELLOW.bold(), "warning"),
                };
                crate::output::print_line(&format!(
                    "{}: {sev}{}: {}",
                    paint(BOLD, format!("{}:{}:{}", f.file, f.line, f.column)),
                    paint(BOLD, format!("[{}]", f.rule)),
                    f.message
                ));
                crate::output::print_line(&format!("  {} {}", paint(CYAN.bold(), "help:"), f.help));
            }
            for c in summary
                .classes
                .iter()
                .filter(|c| c.class != tidemark::MigrationClass::ExpandOnly)
            {
                out.line(format!(
                    "{}: {} {}",
                    paint(BOLD, &c.file),
                    paint(YELLOW, c.class),
                    paint(DIM, c.reasons.join("; "))
                ));
            }
            out.line(summary_line(summary));
        }
    }
}

fn summary_line(s: &Summary) -> String {
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let what = plural(s.migrations, "migration");
    if s.errors == 0 && s.warnings == 0 {
        return format!(
            "{} {what} checked ({}): no findings",
            paint(GREEN.bold(), "ok:"),
            s.dialect
        );
    }
    format!(
        "{}, {} in {what} ({})",
        paint(
            if s.errors > 0 { RED.bold() } else { BOLD },
            plural(s.errors, "error")
        ),
        plural(s.warnings, "warning"),
        s.dialect
    )
}

/// A workflow command: `::error file=…,line=…,col=…,title=…::message`. Values are escaped as
/// the runner expects (`%`, CR, LF everywhere; `:` and `,` in properties as well).
fn github(f: &FindingDoc) -> String {
    fn data(s: &str) -> String {
        s.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    }
    fn prop(s: &str) -> String {
        data(s).replace(':', "%3A").replace(',', "%2C")
    }
    format!(
        "::{} file={},line={},col={},title={}::{}",
        f.severity,
        prop(&f.file),
        f.line,
        f.column,
        prop(&format!("tidemark lint: {}", f.rule)),
        data(&format!("{}\nhelp: {}", f.message, f.help))
    )
}

#[derive(Serialize)]
struct RulesDoc {
    rules: Vec<RuleDoc>,
    /// Other ids a rule answers to (squawk's), alias → rule.
    aliases: std::collections::BTreeMap<&'static str, &'static str>,
}

#[derive(Serialize)]
struct RuleDoc {
    id: &'static str,
    category: &'static str,
    default_level: &'static str,
    /// The level after tidemark.toml.
    level: &'static str,
    dialects: Vec<&'static str>,
    description: &'static str,
    help: &'static str,
}

/// `lint --list-rules`.
pub fn list_rules(out: &Out, levels: &Levels) {
    let docs: Vec<RuleDoc> = RULES
        .iter()
        .map(|r| RuleDoc {
            id: r.id(),
            category: r.category().name(),
            default_level: r.default_level().name(),
            level: levels.get(*r).name(),
            dialects: r.dialects().iter().map(|d| d.name()).collect(),
            description: r.description(),
            help: r.help(),
        })
        .collect();
    if out.is_json() {
        out.json(&RulesDoc {
            rules: docs,
            aliases: ALIASES.iter().copied().collect(),
        });
        return;
    }
    let width = docs.iter().map(|d| d.id.len()).max().unwrap_or(0);
    for d in &docs {
        let level = match d.level {
            "error" => paint(RED.bold(), "error  "),
            "warning" => paint(YELLOW.bold(), "warning"),
            _ => paint(DIM, "off    "),
        };
        let dialects = if d.dialects.len() == tidemark_lint::rule::ALL_DIALECTS.len() {
            "all".to_string()
        } else {
            d.dialects.join(",")
        };
        let changed = if d.level != d.default_level {
            format!(" (default {})", d.default_level)
        } else {
            String::new()
        };
        crate::output::print_line(&format!(
            "{}  {level}  {dialects:<8}  {}{changed}",
            paint(BOLD, format!("{:<width$}", d.id)),
            d.description
        ));
        crate::output::print_line(&format!(
            "{:<width$}  {} {}",
            "",
            paint(CYAN, "instead:"),
            d.help
        ));
    }
}
