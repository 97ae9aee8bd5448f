//! Input that cannot hang: a migration is a regular file (or a symlink to one) of bounded
//! size, read without blocking on a FIFO or a device, and text without control characters.
//! The loader calls [`read_migration`] for every script; nothing here touches a database.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::Path;

use crate::error::{Error, Location, Result};

/// The largest migration file read unless `TIDEMARK_MAX_FILE_SIZE` says otherwise: far above
/// any hand-written migration, far below what would exhaust a small host's memory.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 256 << 20;

/// The limit in force: `TIDEMARK_MAX_FILE_SIZE` (bytes, or with a `K`/`M`/`G` suffix, powers of
/// 1024), else [`DEFAULT_MAX_FILE_BYTES`].
pub fn max_file_bytes() -> Result<u64> {
    let Some(v) = std::env::var_os(crate::env::MAX_FILE_SIZE) else {
        return Ok(DEFAULT_MAX_FILE_BYTES);
    };
    let v = v.to_string_lossy().trim().to_ascii_uppercase();
    let v = v.trim_end_matches("IB").trim_end_matches('B');
    let (digits, mult) = match v.chars().last() {
        Some('K') => (&v[..v.len() - 1], 1u64 << 10),
        Some('M') => (&v[..v.len() - 1], 1 << 20),
        Some('G') => (&v[..v.len() - 1], 1 << 30),
        _ => (v, 1),
    };
    digits
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|n| *n > 0)
        .ok_or_else(|| {
            Error::Usage(format!(
                "{}: `{v}` is not a size (bytes, or with K, M or G)",
                crate::env::MAX_FILE_SIZE
            ))
        })
}

fn kind(ft: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if ft.is_char_device() {
            return "a character device";
        }
        if ft.is_block_device() {
            return "a block device";
        }
        if ft.is_socket() {
            return "a socket";
        }
    }
    if ft.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// Open `path` for reading if it is a regular file (following symlinks) of at most `max`
/// bytes. Opened non-blocking, so that a FIFO swapped in after the check cannot hang the open;
/// the type and size are checked again on the open file.
pub fn open_regular(path: &Path, max: u64) -> Result<(File, u64)> {
    let check = |meta: &std::fs::Metadata| -> Result<u64> {
        if !meta.is_file() {
            return Err(Error::bad_input(
                Location::file(path),
                format!(
                    "is {}, not a regular file: a migration must be a file (or a symlink to one)",
                    kind(meta.file_type())
                ),
            ));
        }
        if meta.len() > max {
            return Err(Error::bad_input(
                Location::file(path),
                format!(
                    "is {} bytes, over the limit of {max} bytes for a migration file (raise it with {}=SIZE)",
                    meta.len(),
                    crate::env::MAX_FILE_SIZE
                ),
            ));
        }
        Ok(meta.len())
    };
    check(&std::fs::metadata(path).map_err(|e| Error::io(path, e))?)?;
    let mut o = OpenOptions::new();
    o.read(true);
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NONBLOCK (Linux): opening a FIFO for reading returns at once instead of waiting
        // for a writer; on a regular file it changes nothing.
        o.custom_flags(0o4000);
    }
    let f = o.open(path).map_err(|e| Error::io(path, e))?;
    let len = check(&f.metadata().map_err(|e| Error::io(path, e))?)?;
    Ok((f, len))
}

/// Read a migration script: a regular file of bounded size, valid UTF-8, without control
/// characters (a NUL byte makes SQLite spin, MariaDB stop half way and PostgreSQL refuse the
/// message). Returns the text as it is in the file.
pub fn read_migration(path: &Path) -> Result<String> {
    let max = max_file_bytes()?;
    let (f, len) = open_regular(path, max)?;
    let mut bytes = Vec::with_capacity(len as usize);
    // `take`: a file that grows while being read stops at the limit.
    f.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > max {
        return Err(Error::bad_input(
            Location::file(path),
            format!(
                "grew over the limit of {max} bytes while being read (raise it with {}=SIZE)",
                crate::env::MAX_FILE_SIZE
            ),
        ));
    }
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let line = e.as_bytes()[..valid]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            return Err(Error::bad_input(
                Location::line(path, line),
                "the file is not valid UTF-8 (save it as UTF-8)",
            ));
        }
    };
    check_text(path, &text)?;
    Ok(text)
}

/// Control characters other than whitespace (tab, line feed, vertical tab, form feed,
/// carriage return) are bad input, named with their line and column.
pub fn check_text(path: &Path, text: &str) -> Result<()> {
    let Some((at, c)) = text
        .char_indices()
        .find(|(_, c)| c.is_control() && !matches!(c, '\t' | '\n' | '\u{b}' | '\u{c}' | '\r'))
    else {
        return Ok(());
    };
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    let what = if c == '\0' {
        "a NUL byte".to_string()
    } else {
        format!("the control character U+{:04X}", c as u32)
    };
    Err(Error::bad_input(
        Location::line(path, line),
        format!(
            "contains {what} at column {column}; a migration is text (remove it, or write it as an escape in the SQL)"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_named_with_their_place() {
        let p = Path::new("m/1_a.up.sql");
        assert!(check_text(p, "SELECT 1;\r\n\tSELECT '\u{c}';\n").is_ok());
        let e = check_text(p, "SELECT 1;\nSELECT 'a\0b';\n").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains(":2") && msg.contains("NUL") && msg.contains("column 10"),
            "{msg}"
        );
        assert!(matches!(e, Error::BadInput { .. }));
        let e = check_text(p, "SELECT '\u{1b}[31m';").unwrap_err();
        assert!(e.to_string().contains("U+001B"), "{e}");
    }

    #[test]
    fn only_regular_files_of_bounded_size() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("1_a.up.sql");
        std::fs::write(&f, "SELECT 1;\n").unwrap();
        assert_eq!(read_migration(&f).unwrap(), "SELECT 1;\n");
        assert!(
            open_regular(&f, 4)
                .unwrap_err()
                .to_string()
                .contains("over the limit")
        );
        let e = open_regular(dir.path(), 1 << 20).unwrap_err().to_string();
        assert!(e.contains("a directory"), "{e}");
        let e = open_regular(Path::new("/dev/zero"), 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(e.contains("character device"), "{e}");
    }
}
