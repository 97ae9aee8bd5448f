//! `embed_migrations!("migrations")`: the migrations directory goes into the binary, so an
//! image cannot ship without them (seed 002's deploy lost time to a missing piece of the
//! image). The directory is read at compile time with the same loader and the same checks as
//! the command, in any layout tidemark reads: a bad file is a compile error naming it.
//!
//! Each file is embedded with `include_bytes!`, so editing a migration rebuilds the crate. A
//! new file is seen on the next build of the crate; add `println!("cargo:rerun-if-changed=migrations")`
//! to the crate's `build.rs` to rebuild when files are added (as sqlx documents for `migrate!`).

use std::path::{Path, PathBuf};

use proc_macro::TokenStream;
use quote::quote;

/// `tidemark::embed_migrations!("migrations")` (the path relative to the crate's
/// `Cargo.toml`) expands to a `tidemark::EmbeddedMigrations`.
#[proc_macro]
pub fn embed_migrations(input: TokenStream) -> TokenStream {
    let lit = match syn::parse::<syn::LitStr>(input) {
        Ok(l) => l,
        Err(e) => return e.to_compile_error().into(),
    };
    let root = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_default();
    match embed(&root, &lit.value()) {
        Ok(files) => {
            let dir = lit.value();
            let entries = files.iter().map(|(rel, abs)| {
                let abs = abs.display().to_string();
                quote! { (#rel, include_bytes!(#abs) as &'static [u8]) }
            });
            quote! {
                ::tidemark::EmbeddedMigrations::new(#dir, &[ #(#entries),* ])
            }
            .into()
        }
        Err(e) => syn::Error::new(lit.span(), e).to_compile_error().into(),
    }
}

/// Load the directory as the command would (any layout, every check of the loader) and list
/// its files, relative path and absolute path. An error names the file.
fn embed(root: &Path, dir: &str) -> Result<Vec<(String, PathBuf)>, String> {
    let abs = root.join(dir);
    let set = tidemark_core::MigrationSet::load(&abs, None)
        .map_err(|e| format!("tidemark::embed_migrations!: {e}"))?;
    // The database is known only at run time (where `up` checks the files against it again):
    // here a file must split into statements for at least one dialect, so an unterminated
    // quote or comment, or BEGIN/COMMIT in a transactional file, does not compile.
    let checks: Vec<_> = [
        tidemark_core::Dialect::Postgres,
        tidemark_core::Dialect::MySql,
        tidemark_core::Dialect::Sqlite,
    ]
    .into_iter()
    .map(|d| set.validate(d))
    .collect();
    if let Some(Err(e)) = checks
        .iter()
        .all(|c| c.is_err())
        .then(|| checks.into_iter().next())
        .flatten()
    {
        return Err(format!("tidemark::embed_migrations!: {e}"));
    }
    let mut files = Vec::new();
    collect(&abs, &abs, &mut files).map_err(|e| format!("{}: {e}", abs.display()))?;
    if set.migrations.is_empty() {
        return Err(format!(
            "tidemark::embed_migrations!: {} holds no migration",
            abs.display()
        ));
    }
    Ok(files)
}

/// Every regular file below `dir` (migrations, diesel's folders and metadata, Flyway's
/// `.conf`), so the loader sees at run time exactly what it saw here.
fn collect(base: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if p.is_dir() {
            collect(base, &p, out)?;
        } else if p.is_file() {
            let rel = p
                .strip_prefix(base)
                .unwrap_or(&p)
                .to_string_lossy()
                .into_owned();
            out.push((rel, p));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (n, b) in files {
            let p = d.path().join("migrations").join(n);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b).unwrap();
        }
        d
    }

    #[test]
    fn every_layout_is_embedded_whole() {
        let d = dir(&[
            ("2019-09-12-100000_users/up.sql", "CREATE TABLE u (id int);"),
            ("2019-09-12-100000_users/down.sql", "DROP TABLE u;"),
            (
                "2019-09-12-100000_users/metadata.toml",
                "run_in_transaction = false\n",
            ),
        ]);
        let files = embed(d.path(), "migrations").unwrap();
        let names: Vec<&str> = files.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(
            names,
            [
                "2019-09-12-100000_users/down.sql",
                "2019-09-12-100000_users/metadata.toml",
                "2019-09-12-100000_users/up.sql"
            ]
        );
    }

    #[test]
    fn the_other_layouts_are_embedded_whole() {
        // Native (golang-migrate, sqlx): up and down files; a dot-file is not embedded.
        let d = dir(&[
            ("001_users.up.sql", "CREATE TABLE u (id int);"),
            ("001_users.down.sql", "DROP TABLE u;"),
            (".keep", ""),
        ]);
        let names: Vec<String> = embed(d.path(), "migrations")
            .unwrap()
            .into_iter()
            .map(|(r, _)| r)
            .collect();
        assert_eq!(names, ["001_users.down.sql", "001_users.up.sql"]);
        // Flyway: versioned, undo, repeatable and a per-script .conf.
        let d = dir(&[
            ("V1_1__users.sql", "CREATE TABLE u (id int);"),
            ("U1_1__users.sql", "DROP TABLE u;"),
            ("V1_1__users.sql.conf", "executeInTransaction=false\n"),
            (
                "R__view.sql",
                "CREATE OR REPLACE VIEW v AS SELECT 1 AS one;",
            ),
        ]);
        let names: Vec<String> = embed(d.path(), "migrations")
            .unwrap()
            .into_iter()
            .map(|(r, _)| r)
            .collect();
        assert_eq!(
            names,
            [
                "R__view.sql",
                "U1_1__users.sql",
                "V1_1__users.sql",
                "V1_1__users.sql.conf"
            ]
        );
        // dbmate: one file, two sections.
        let d = dir(&[(
            "20240101120000_users.sql",
            "-- migrate:up\nCREATE TABLE u (id int);\n\n-- migrate:down\nDROP TABLE u;\n",
        )]);
        let files = embed(d.path(), "migrations").unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].0, "20240101120000_users.sql");
    }

    /// What becomes the compile error: the loader's own message, naming the file.
    #[test]
    fn a_bad_file_is_an_error_naming_it() {
        let d = dir(&[("1_a.sql", "SELECT 1;"), ("1_b.sql", "SELECT 2;")]);
        let e = embed(d.path(), "migrations").unwrap_err();
        assert!(e.contains("1_b.sql") || e.contains("1_a.sql"), "{e}");
        assert!(e.contains("duplicate"), "{e}");
        let d = dir(&[("12x_a.up.sql", "SELECT 1;")]);
        assert!(
            embed(d.path(), "migrations")
                .unwrap_err()
                .contains("12x_a.up.sql")
        );
        assert!(embed(d.path(), "nowhere").is_err());
        // An unterminated quote: the file and its line.
        let d = dir(&[("001_a.up.sql", "SELECT 1;\nINSERT INTO t VALUES ('x);\n")]);
        let e = embed(d.path(), "migrations").unwrap_err();
        assert!(e.contains("001_a.up.sql") && e.contains(":2"), "{e}");
    }
}
