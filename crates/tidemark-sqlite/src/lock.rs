//! The migration lock for SQLite: an exclusive OS file lock (`flock`) on a side file. The
//! kernel releases it when the process dies, so a killed migrator cannot leave a stale lock
//! (unlike a lock file whose existence is the lock).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tidemark_core::driver::{LockGuard, LockWait};
use tidemark_core::{Error, Result};

pub struct FileLock {
    /// `None` for an in-memory database, which no other process can reach.
    file: Option<File>,
}

pub fn lock_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(".tidemark-lock");
    PathBuf::from(p)
}

pub async fn acquire(
    db: Option<&Path>,
    timeout: Duration,
    waiting: &mut dyn LockWait,
) -> Result<Box<dyn LockGuard>> {
    let Some(db) = db else {
        return Ok(Box::new(FileLock { file: None }));
    };
    let path = lock_path(db);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    let started = Instant::now();
    let mut told = false;
    let mut pause = Duration::from_millis(10);
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) => {
                if !told {
                    waiting.waiting(&holder(&mut file));
                    told = true;
                }
                if started.elapsed() >= timeout {
                    return Err(Error::LockTimeout {
                        waited: timeout,
                        holder: format!(
                            " (held by {}, lock file {})",
                            holder(&mut file),
                            path.display()
                        ),
                    });
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            Err(TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
    }
    // Say who holds it, for whoever waits next.
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = write!(file, "pid {}", std::process::id());
    let _ = file.flush();
    Ok(Box::new(FileLock { file: Some(file) }))
}

fn holder(file: &mut File) -> String {
    let mut s = String::new();
    let _ = file.rewind();
    let _ = file.read_to_string(&mut s);
    if s.trim().is_empty() {
        "another process".into()
    } else {
        format!("process {}", s.trim().trim_start_matches("pid "))
    }
}

#[async_trait]
impl LockGuard for FileLock {
    async fn release(self: Box<Self>) -> Result<()> {
        if let Some(f) = self.file {
            let _ = f.unlock();
        }
        Ok(())
    }
}
