//! Everything the CLI prints: text for people (colour on a terminal, plain when piped), one JSON
//! document for machines, progress while long work runs.

pub mod json;
pub mod lint;
pub mod progress;

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use anstyle::{AnsiColor, Style};
use serde::Serialize;

use crate::cli::Format;

#[derive(Debug, Clone, Copy)]
pub struct Out {
    pub format: Format,
    pub quiet: bool,
    pub verbose: bool,
}

pub const GREEN: Style = AnsiColor::Green.on_default();
pub const YELLOW: Style = AnsiColor::Yellow.on_default();
pub const RED: Style = AnsiColor::Red.on_default();
pub const BOLD: Style = Style::new().bold();
pub const DIM: Style = Style::new().dimmed();

/// Wrap text in a style; anstream strips it where colour is off.
pub fn paint(style: Style, text: impl std::fmt::Display) -> String {
    format!("{style}{text}{style:#}")
}

/// The first error writing to stdout (a reader that went away, a full disk). After it nothing
/// more is written there, the command finishes what it is doing, and `main` turns a failed
/// write into its exit code: a closed pipe is not a failure, a full disk is.
static STDOUT_ERROR: Mutex<Option<std::io::ErrorKind>> = Mutex::new(None);

/// Print a line on stdout (colour stripped where it is off). Never panics: see
/// [`STDOUT_ERROR`].
pub fn print_line(text: &str) {
    let mut failed = STDOUT_ERROR.lock().unwrap_or_else(|e| e.into_inner());
    if failed.is_some() {
        return;
    }
    let mut out = anstream::stdout().lock();
    if let Err(e) = writeln!(out, "{text}").and_then(|_| out.flush()) {
        *failed = Some(e.kind());
    }
}

/// How writing to stdout went: `None` when it did, or the kind of the first failure.
pub fn stdout_error() -> Option<std::io::ErrorKind> {
    *STDOUT_ERROR.lock().unwrap_or_else(|e| e.into_inner())
}

impl Out {
    pub fn is_json(&self) -> bool {
        self.format == Format::Json
    }

    /// A line for people on stdout (nothing in JSON mode or with -q).
    pub fn line(&self, text: impl AsRef<str>) {
        if !self.quiet && !self.is_json() {
            print_line(text.as_ref());
        }
    }

    /// A warning on stderr (also in JSON mode, where stdout is reserved for the document).
    pub fn warn(&self, text: &str) {
        if !self.quiet {
            anstream::eprintln!("{} {text}", paint(YELLOW.bold(), "warning:"));
        }
    }

    pub fn json<T: Serialize>(&self, doc: &T) {
        match serde_json::to_string_pretty(doc) {
            Ok(s) => print_line(&s),
            Err(e) => eprintln!("error: could not render JSON: {e}"),
        }
    }

    /// Progress bars only for a person watching a terminal.
    pub fn interactive(&self) -> bool {
        !self.quiet && !self.is_json() && std::io::stderr().is_terminal()
    }
}
