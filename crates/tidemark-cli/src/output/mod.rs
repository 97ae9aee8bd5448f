//! Everything the CLI prints: text for people (colour on a terminal, plain when piped), one JSON
//! document for machines, progress while long work runs.

pub mod json;
pub mod lint;
pub mod progress;

use std::io::IsTerminal;

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

impl Out {
    pub fn is_json(&self) -> bool {
        self.format == Format::Json
    }

    /// A line for people on stdout (nothing in JSON mode or with -q).
    pub fn line(&self, text: impl AsRef<str>) {
        if !self.quiet && !self.is_json() {
            anstream::println!("{}", text.as_ref());
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
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("error: could not render JSON: {e}"),
        }
    }

    /// Progress bars only for a person watching a terminal.
    pub fn interactive(&self) -> bool {
        !self.quiet && !self.is_json() && std::io::stderr().is_terminal()
    }
}
