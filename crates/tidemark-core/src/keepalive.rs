//! Keeps the migration lock's own session alive. The lock lives on a connection that is idle
//! while the migrations run on another one; a server idle timeout (`idle_session_timeout`,
//! `wait_timeout`) or a proxy would close it in the middle of a long migration, and with it
//! the lock. A task owns that connection and pings it at an interval shorter than any sane
//! timeout; the engine still checks, before each commit, that the lock is held (see
//! `LockGuard::held_condition`), because a failover or a kill can end a session regardless.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How often the lock session is pinged: `TIDEMARK_LOCK_KEEPALIVE` (e.g. `5s`), else 15 s.
pub fn interval() -> Duration {
    std::env::var(crate::env::LOCK_KEEPALIVE)
        .ok()
        .and_then(|v| humantime::parse_duration(&v).ok())
        .filter(|d| !d.is_zero())
        .unwrap_or(Duration::from_secs(15))
}

/// A cheap round trip on the connection; false when the session is gone.
pub type Ping<C> = for<'a> fn(&'a mut C) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>>;

/// Owns a connection in a task that pings it until [`Keeper::stop`] hands it back. Dropped
/// without `stop` (an error path, a panic), the task ends and drops the connection, which ends
/// the session and frees the lock, as before.
pub struct Keeper<C: Send + 'static> {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Option<C>>>,
}

impl<C: Send + 'static> Keeper<C> {
    pub fn start(conn: C, ping: Ping<C>) -> Keeper<C> {
        let (stop, mut stopped) = oneshot::channel::<()>();
        let every = interval();
        let task = tokio::spawn(async move {
            let mut conn = conn;
            loop {
                tokio::select! {
                    _ = &mut stopped => return Some(conn),
                    _ = tokio::time::sleep(every) => {
                        if !ping(&mut conn).await {
                            // The session is gone; the engine's check before the next commit
                            // says so. Nothing to hand back.
                            return None;
                        }
                    }
                }
            }
        });
        Keeper {
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stop pinging and get the connection back (`None` if its session ended meanwhile).
    pub async fn stop(mut self) -> Option<C> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.task.take() {
            Some(t) => t.await.ok().flatten(),
            None => None,
        }
    }
}
