//! Backups of a SQLite database: `VACUUM INTO` gives a consistent, compact copy while others
//! may be reading; restore replaces the file atomically (rename), after the writers stopped.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use tidemark_core::driver::{Driver, Dumper, LockGuard};
use tidemark_core::{DatabaseUrl, Error, Result};

use crate::driver::{connect, file_of};

fn remove_if_there(p: &Path) -> Result<()> {
    match std::fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(p, e)),
    }
}

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

    async fn create_side(&self, side: &str) -> Result<DatabaseUrl> {
        // A journal left beside an earlier side copy would be "rolled back" into this one.
        self.drop_side(side).await?;
        DatabaseUrl::parse(&format!("sqlite://{side}"))
    }

    async fn drop_side(&self, side: &str) -> Result<()> {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            remove_if_there(&PathBuf::from(format!("{side}{suffix}")))?;
        }
        Ok(())
    }

    /// Rename the restored file over the live one: atomic, so the database is the old file or
    /// the restored one whenever it is interrupted. The live file's write-ahead log is
    /// checkpointed into it first (so that nothing committed lives only in the log) and removed
    /// after: it belongs to the old file and must not be replayed onto the restored one.
    async fn swap(&self, side: &str, _old: &str, lock: Box<dyn LockGuard>) -> Result<()> {
        let db = file(&self.url)?;
        let staged = PathBuf::from(side);
        std::fs::File::open(&staged)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io(&staged, e))?;
        // The restored copy must be complete in its own file: nothing of it in a journal or
        // log that the rename would leave behind.
        for suffix in ["-wal", "-shm", "-journal"] {
            let p = PathBuf::from(format!("{side}{suffix}"));
            if p.exists() {
                return Err(Error::Tool(format!(
                    "the restored copy {side} still has {}; refusing to swap it in (the database was not touched)",
                    p.display()
                )));
            }
        }
        // Opening the live database rolls back a hot journal and the checkpoint folds a
        // write-ahead log into the file, so its sidecars hold nothing the old file needs...
        let mut d = connect(&self.url).await?;
        let r = d
            .query("PRAGMA wal_checkpoint(TRUNCATE)", &[])
            .await
            .map_err(|e| Error::db("could not checkpoint the write-ahead log", e));
        Box::new(d).close().await;
        if r?
            .first()
            .and_then(|r| r.first())
            .and_then(tidemark_core::driver::Value::as_i64)
            .unwrap_or(0)
            != 0
        {
            return Err(Error::Tool(format!(
                "{} is in use (its write-ahead log could not be checkpointed): stop the application first ([backup] stop_writers); the database was not touched",
                db.display()
            )));
        }
        // ...and they go before the rename: left beside the restored file, a journal or log of
        // the old one would be replayed into it.
        for suffix in ["-wal", "-shm", "-journal"] {
            remove_if_there(&PathBuf::from(format!("{}{suffix}", db.display())))?;
        }
        std::fs::rename(&staged, &db).map_err(|e| Error::io(&db, e))?;
        lock.release().await
    }

    fn extension(&self) -> &'static str {
        "sqlite"
    }

    fn format(&self) -> &'static str {
        "SQLite database file (VACUUM INTO)"
    }
}
