//! Test support: a scratch database per test on the real servers, dropped afterwards.
//!
//! `TestDb::postgres` / `TestDb::mysql` read `TIDEMARK_TEST_PG_URL` / `TIDEMARK_TEST_MYSQL_URL`
//! (an admin URL: any database the user can connect to, e.g. `postgres://postgres@127.0.0.1/postgres`)
//! and create `tm_t_<time>_<rand>_<test>` there. Without the URL the test is skipped with a loud
//! message, unless `TIDEMARK_TEST_REQUIRE_DB` is set (CI), which turns the skip into a failure.
//! There is deliberately no default localhost URL.

#![allow(clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;
use tidemark::{DatabaseUrl, Dialect, Driver, env};

/// How old a leftover scratch database must be before a later run drops it (a crashed test run
/// cannot drop its own).
const STALE_AFTER_SECS: u64 = 2 * 3600;

pub struct TestDb {
    url: DatabaseUrl,
    dialect: Dialect,
    /// Server databases: the name to drop and the admin URL to drop it through.
    server: Option<(String, DatabaseUrl)>,
    /// SQLite: the directory holding the file.
    dir: Option<tempfile::TempDir>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn scratch_name(test: &str) -> String {
    let tag: String = test
        .rsplit("::")
        .take(2)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("_")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let rand: u32 = rand::rng().random_range(0..0xff_ffff);
    let mut name = format!("tm_t_{}_{rand:06x}_{tag}", now_secs());
    name.truncate(63);
    name
}

/// The admin URL for a server, or `None` when tests must be skipped.
/// The admin URL of a test server from its variable, or `None` (and a loud SKIPPED line) when it
/// is not set; a panic when it must be (CI).
pub fn admin_url(var: &str, test: &str) -> Option<DatabaseUrl> {
    match std::env::var(var) {
        Ok(u) if !u.trim().is_empty() => {
            Some(DatabaseUrl::parse(&u).unwrap_or_else(|e| panic!("{var}: {e}")))
        }
        _ => {
            if std::env::var_os(env::TEST_REQUIRE_DB).is_some() {
                panic!(
                    "{test}: {var} is not set but {} is: database tests must not be skipped",
                    env::TEST_REQUIRE_DB
                );
            }
            eprintln!(
                "SKIPPED {test}: {var} not set (set it to run this test against a real server)"
            );
            None
        }
    }
}

/// Run an async admin operation on a fresh runtime in its own thread, so it works from `Drop`
/// and from inside or outside a runtime alike.
fn block_on_thread<F, T>(f: F) -> T
where
    F: FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>> + Send + 'static,
    T: Send + 'static,
{
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(f())
    })
    .join()
    .expect("admin thread panicked")
}

async fn sweep(admin: &mut dyn Driver) {
    let sql = match admin.dialect() {
        Dialect::Postgres => "SELECT datname FROM pg_database WHERE datname LIKE 'tm\\_t\\_%'",
        Dialect::MySql => {
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'tm\\_t\\_%'"
        }
        Dialect::Sqlite => return,
    };
    let Ok(rows) = admin.query(sql, &[]).await else {
        return;
    };
    let cutoff = now_secs().saturating_sub(STALE_AFTER_SECS);
    for row in rows {
        let Some(name) = row.into_iter().next().and_then(|v| v.into_text()) else {
            continue;
        };
        let born: u64 = name
            .split('_')
            .nth(2)
            .and_then(|t| t.parse().ok())
            .unwrap_or(u64::MAX);
        if born < cutoff {
            let _ = admin.drop_database(&name).await;
        }
    }
}

static SWEPT_PG: OnceLock<()> = OnceLock::new();
static SWEPT_MY: OnceLock<()> = OnceLock::new();

impl TestDb {
    pub async fn postgres(test: &str) -> Option<TestDb> {
        Self::server(env::TEST_PG_URL, test, &SWEPT_PG)
    }

    pub async fn mysql(test: &str) -> Option<TestDb> {
        Self::server(env::TEST_MYSQL_URL, test, &SWEPT_MY)
    }

    /// Server databases need no `await` here, but keep the same shape as the others.
    fn server(var: &str, test: &str, swept: &'static OnceLock<()>) -> Option<TestDb> {
        let admin = admin_url(var, test)?;
        let name = scratch_name(test);
        let (a, n) = (admin.clone(), name.clone());
        let sweep_now = swept.set(()).is_ok();
        let url = block_on_thread(move || {
            Box::pin(async move {
                let mut d = tidemark::connect(&a)
                    .await
                    .unwrap_or_else(|e| panic!("cannot connect to the test server {a}: {e}"));
                if sweep_now {
                    sweep(d.as_mut()).await;
                }
                let url = d
                    .create_database(&n)
                    .await
                    .unwrap_or_else(|e| panic!("cannot create scratch database {n}: {e}"));
                d.close().await;
                url
            })
        });
        let dialect = url.dialect();
        Some(TestDb {
            url,
            dialect,
            server: Some((name, admin)),
            dir: None,
        })
    }

    pub async fn sqlite(_test: &str) -> Option<TestDb> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("test.db");
        let url = DatabaseUrl::parse(&format!("sqlite://{}", path.display())).expect("url");
        Some(TestDb {
            url,
            dialect: Dialect::Sqlite,
            server: None,
            dir: Some(dir),
        })
    }

    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// The URL as a string for the CLI (`-d`).
    pub fn url_string(&self) -> String {
        self.url.expose_secret().to_string()
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The SQLite file, if this is SQLite.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.path().join("test.db"))
    }

    pub async fn connect(&self) -> Box<dyn Driver> {
        tidemark::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.url))
    }

    /// Run SQL statements directly (set-up and checks in tests).
    pub async fn exec(&self, sql: &str) {
        let mut d = self.connect().await;
        for stmt in tidemark::split::split(sql, self.dialect).expect("test SQL splits") {
            d.run(&stmt.text)
                .await
                .unwrap_or_else(|e| panic!("test SQL failed: {e}\n{}", stmt.text));
        }
        d.close().await;
    }

    /// Rows of a query, each value as text (NULL as `None`).
    pub async fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let mut d = self.connect().await;
        let rows = d
            .query(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("test query failed: {e}\n{sql}"));
        d.close().await;
        rows.into_iter()
            .map(|r| r.into_iter().map(|v| v.into_text()).collect())
            .collect()
    }

    /// The first column of the first row, as text.
    pub async fn scalar(&self, sql: &str) -> Option<String> {
        self.rows(sql)
            .await
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next())
            .flatten()
    }

    /// Does a table exist (in the default schema)?
    pub async fn has_table(&self, table: &str) -> bool {
        let sql = match self.dialect {
            Dialect::Postgres => format!(
                "SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = '{table}'"
            ),
            Dialect::MySql => format!(
                "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{table}'"
            ),
            Dialect::Sqlite => format!(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '{table}'"
            ),
        };
        self.scalar(&sql).await.as_deref() != Some("0")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((name, admin)) = self.server.take() {
            block_on_thread(move || {
                Box::pin(async move {
                    if let Ok(mut d) = tidemark::connect(&admin).await {
                        if let Err(e) = d.drop_database(&name).await {
                            eprintln!("warning: could not drop scratch database {name}: {e}");
                        }
                        d.close().await;
                    }
                })
            });
        }
    }
}

/// A directory of migration files for a test.
pub struct Migrations {
    dir: tempfile::TempDir,
}

impl Migrations {
    pub fn new(files: &[(&str, &str)]) -> Migrations {
        let dir = tempfile::tempdir().expect("tempdir");
        let m = Migrations { dir };
        for (name, body) in files {
            m.write(name, body);
        }
        m
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, name: &str, body: &str) {
        let p = self.dir.path().join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(p, body).expect("write migration");
    }

    pub fn remove(&self, name: &str) {
        std::fs::remove_file(self.dir.path().join(name)).expect("remove migration");
    }
}

/// One test body run on PostgreSQL, MySQL/MariaDB and SQLite, like ripgrep's `rgtest!`:
///
/// ```text
/// db_test!(applies_everything, |db| async move {
///     // db: tidemark_test::TestDb
/// });
/// ```
#[macro_export]
macro_rules! db_test {
    ($(#[$meta:meta])* $name:ident, |$db:ident| $body:expr) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some($db) = $crate::TestDb::postgres(concat!(module_path!(), "::postgres")).await {
                    $body.await
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mysql() {
                if let Some($db) = $crate::TestDb::mysql(concat!(module_path!(), "::mysql")).await {
                    $body.await
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                if let Some($db) = $crate::TestDb::sqlite(concat!(module_path!(), "::sqlite")).await {
                    $body.await
                }
            }
        }
    };
}
