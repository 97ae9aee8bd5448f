//! Migrations embedded in the binary by [`crate::embed_migrations!`].

use std::path::{Path, PathBuf};

use tidemark_core::{Error, MigrationSet, Result};

/// A migrations directory compiled into the binary: checked at compile time by the loader the
/// command uses, read at run time the same way.
///
/// ```
/// // The path is relative to the crate's Cargo.toml.
/// static MIGRATIONS: tidemark::EmbeddedMigrations =
///     tidemark::embed_migrations!("../tidemark-testapp/migrations");
/// let set = MIGRATIONS.load().unwrap();
/// assert_eq!(set.migrations.len(), 2);
/// assert!(set.migrations[0].up.path.starts_with("../tidemark-testapp/migrations"));
/// ```
///
/// A directory that is not a valid migrations directory does not compile:
///
/// ```compile_fail
/// static MIGRATIONS: tidemark::EmbeddedMigrations = tidemark::embed_migrations!("no-such-directory");
/// ```
///
/// Nor does a directory with a bad file (here an unterminated quote in `002_bad.up.sql`; the
/// compile error is the loader's message naming the file and line):
///
/// ```compile_fail
/// static MIGRATIONS: tidemark::EmbeddedMigrations =
///     tidemark::embed_migrations!("tests/fixtures/bad-migrations");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedMigrations {
    dir: &'static str,
    files: &'static [(&'static str, &'static [u8])],
}

impl EmbeddedMigrations {
    /// Used by the macro.
    #[doc(hidden)]
    pub const fn new(
        dir: &'static str,
        files: &'static [(&'static str, &'static [u8])],
    ) -> EmbeddedMigrations {
        EmbeddedMigrations { dir, files }
    }

    /// The directory as written in the macro, e.g. `migrations`.
    pub fn dir(&self) -> &'static str {
        self.dir
    }

    /// The migrations, exactly as `MigrationSet::load` reads the directory. The files are laid
    /// out in a private temporary directory for the loader and removed right after; paths in
    /// the result (and so in every message) are the directory's as written in the macro.
    pub fn load(&self) -> Result<MigrationSet> {
        let tmp = tempfile::Builder::new()
            .prefix(".tidemark-embedded-")
            .tempdir()
            .map_err(|e| Error::Usage(format!("could not lay out the embedded migrations: {e}")))?;
        let root = tmp.path().join("m");
        for (rel, bytes) in self.files {
            let p = root.join(rel);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
            }
            std::fs::write(&p, bytes).map_err(|e| Error::io(&p, e))?;
        }
        let mut set = MigrationSet::load(&root, None)?;
        let shown = Path::new(self.dir);
        let rebase = |p: &mut PathBuf| {
            if let Ok(rel) = p.strip_prefix(&root) {
                *p = shown.join(rel);
            }
        };
        rebase(&mut set.dir);
        for m in &mut set.migrations {
            rebase(&mut m.up.path);
            if let Some(d) = &mut m.down {
                rebase(&mut d.path);
            }
        }
        Ok(set)
    }
}
