//! Backups of a SQLite database: `VACUUM INTO` gives a consistent, compact copy while others
//! may be reading; restore replaces the file atomically (rename), after the writers stopped.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use tidemark_core::driver::{Driver, Dumper};
use tidemark_core::{DatabaseUrl, Error, Result};

use crate::driver::{connect, file_of};

pub struct SqliteDumper {
    url: DatabaseUrl,
}

pub fn dumper(url: &DatabaseUrl) -> SqliteDumper {
    SqliteDumper { url: url.clone() }
}

fn file(url: &DatabaseUrl) -> Result<PathBuf> {
    file_of(url).ok_or_else(|| {
        Error::Usage(format!(
            "{url} is an in-memory database: there is nothing to back up or restore"
        ))
    })
}

#[async_trait]
impl Dumper for SqliteDumper {
    async fn check_tools(&self) -> Result<String> {
        file(&self.url)?;
        Ok("SQLite VACUUM INTO".into())
    }

    async fn dump(&self, path: &Path, _snapshot: Option<&str>) -> Result<()> {
        let mut d = connect(&self.url).await?;
        // VACUUM INTO wants a new or empty file; the store created an empty one (mode 0600).
        let target = path.display().to_string().replace('\'', "''");
        let r = d
            .run(&format!("VACUUM INTO '{target}'"))
            .await
            .map_err(|e| Error::db("VACUUM INTO failed", e));
        Box::new(d).close().await;
        r
    }

    async fn restore_into(&self, path: &Path, target: &DatabaseUrl) -> Result<()> {
        let to = file(target)?;
        std::fs::copy(path, &to).map_err(|e| Error::io(&to, e))?;
        Ok(())
    }

    async fn restore_replace(&self, path: &Path) -> Result<()> {
        let db = file(&self.url)?;
        let staged = PathBuf::from(format!("{}.tidemark-restore", db.display()));
        std::fs::copy(path, &staged).map_err(|e| Error::io(&staged, e))?;
        std::fs::File::open(&staged)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io(&staged, e))?;
        // The old write-ahead log belongs to the old file: it must not be replayed onto the
        // restored one.
        for suffix in ["-wal", "-shm", "-journal"] {
            let p = PathBuf::from(format!("{}{suffix}", db.display()));
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(&p, e)),
            }
        }
        std::fs::rename(&staged, &db).map_err(|e| Error::io(&db, e))
    }

    fn extension(&self) -> &'static str {
        "sqlite"
    }

    fn format(&self) -> &'static str {
        "SQLite database file (VACUUM INTO)"
    }
}
