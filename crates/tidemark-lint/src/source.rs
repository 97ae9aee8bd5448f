//! Where a finding is: a byte span in a script. Lines and columns are computed only when a
//! finding is rendered, from the script text, so no rule can get them wrong.

use std::path::PathBuf;

/// One script as the linter read it: an up or down script, or a dbmate section of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    pub path: PathBuf,
    /// The script text (CRLF normalised, as tidemark-core reads it).
    pub text: String,
    /// Line of the file on which `text` starts (1 unless the script is a dbmate section).
    pub first_line: usize,
}

/// Byte offsets into [`SourceFile::text`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }

    /// An empty span at `offset`.
    pub fn at(offset: usize) -> Span {
        Span::new(offset, offset)
    }
}

/// A 1-based line of the file and a 1-based column counted in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl SourceFile {
    /// The file position of a byte offset. Offsets past the end (or inside a character) are
    /// clamped, so a wrong span shows a nearby position instead of panicking.
    pub fn position(&self, offset: usize) -> Position {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Position {
            line: self.first_line + before.matches('\n').count(),
            column: before[line_start..].chars().count() + 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let f = SourceFile {
            path: "a.sql".into(),
            text: "SELECT 1;\n  ü DROP".into(),
            first_line: 1,
        };
        assert_eq!(f.position(0), Position { line: 1, column: 1 });
        assert_eq!(f.position(10), Position { line: 2, column: 1 });
        // `DROP` follows a two-byte character: column 5, not 6.
        let drop = f.text.find("DROP").unwrap();
        assert_eq!(f.position(drop), Position { line: 2, column: 5 });
        assert_eq!(f.position(10_000), Position { line: 2, column: 9 });
        let section = SourceFile { first_line: 7, ..f };
        assert_eq!(section.position(10).line, 8);
    }
}
