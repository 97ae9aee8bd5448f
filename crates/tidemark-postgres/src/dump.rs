//! Backups through pg_dump (custom format) and pg_restore. The password travels in PGPASSWORD,
//! never on the command line where `ps` would show it.

use std::path::Path;
use std::process::Stdio;

use async_trait::async_trait;
use tidemark_core::driver::{Driver, Dumper, LockGuard, Value};
use tidemark_core::{DatabaseUrl, Error, Result};

use crate::driver::{connect, quote_ident};
use crate::lock::LOCK_KEY;

pub struct PgDumper {
    url: DatabaseUrl,
}

pub fn dumper(url: &DatabaseUrl) -> PgDumper {
    PgDumper { url: url.clone() }
}

/// The URL without its password (for the tool's argument) and the password (for PGPASSWORD).
fn split_password(url: &DatabaseUrl) -> Result<(String, Option<String>)> {
    let mut u = url::Url::parse(url.expose_secret())
        .map_err(|e| Error::Usage(format!("invalid PostgreSQL URL {url}: {e}")))?;
    let mut password = u.password().map(|p| {
        percent_encoding::percent_decode_str(p)
            .decode_utf8_lossy()
            .into_owned()
    });
    let _ = u.set_password(None);
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if pairs.iter().any(|(k, _)| k == "password") {
        let mut q = u.query_pairs_mut();
        q.clear();
        for (k, v) in &pairs {
            if k == "password" {
                password = Some(v.clone());
            } else {
                q.append_pair(k, v);
            }
        }
    }
    // libpq wants postgresql:// or postgres://; both are what we accept.
    Ok((u.to_string(), password))
}

async fn run(
    tool: &str,
    args: &[String],
    password: Option<&str>,
    url: &DatabaseUrl,
) -> Result<String> {
    let mut cmd = tokio::process::Command::new(tool);
    // Interrupted (SIGINT/SIGTERM drops the future), the tool is killed with it rather than
    // left writing a dump nobody will list.
    cmd.kill_on_drop(true);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
    let out = cmd.output().await.map_err(|e| missing(tool, e))?;
    let scrub = |s: &[u8]| {
        let text = String::from_utf8_lossy(s).into_owned();
        let text = url.scrub(&text);
        match password {
            Some(p) if !p.is_empty() => text.replace(p, "***"),
            _ => text,
        }
    };
    if !out.status.success() {
        return Err(Error::Tool(format!(
            "{tool} failed ({}): {}",
            out.status,
            scrub(&out.stderr).trim()
        )));
    }
    Ok(scrub(&out.stdout))
}

fn missing(tool: &str, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        Error::Tool(format!(
            "{tool} was not found on PATH: install the PostgreSQL client tools (e.g. the postgresql-client package of the server's version); nothing was changed"
        ))
    } else {
        Error::Tool(format!("could not run {tool}: {e}"))
    }
}

/// `pg_dump (PostgreSQL) 15.4 (Debian 15.4-1)` → 15.
fn tool_major(version_output: &str) -> Option<u32> {
    let v = version_output
        .split(')')
        .nth(1)?
        .split_whitespace()
        .next()?;
    v.split('.').next()?.parse().ok()
}

impl PgDumper {
    async fn server_major(&self) -> Result<u32> {
        let d = connect(&self.url).await?;
        let v = d.version_num();
        Box::new(d).close().await;
        Ok((v / 10000) as u32)
    }
}

#[async_trait]
impl Dumper for PgDumper {
    async fn check_tools(&self) -> Result<String> {
        let server = self.server_major().await?;
        let mut found = Vec::new();
        for tool in ["pg_dump", "pg_restore"] {
            let out = run(tool, &["--version".to_string()], None, &self.url).await?;
            let major = tool_major(&out).ok_or_else(|| {
                Error::Tool(format!(
                    "cannot read the version of {tool} from `{}`",
                    out.trim()
                ))
            })?;
            if major < server {
                return Err(Error::Tool(format!(
                    "{tool} {major} cannot dump or restore a PostgreSQL {server} server: install the client tools of version {server} or later (postgresql-client-{server}); nothing was changed"
                )));
            }
            found.push(format!("{tool} {major}"));
        }
        Ok(found.join(", "))
    }

    async fn dump(&self, path: &Path, snapshot: Option<&str>) -> Result<()> {
        let (conn, password) = split_password(&self.url)?;
        let mut args = vec![
            "--format=custom".to_string(),
            "--no-password".to_string(),
            format!("--file={}", path.display()),
            format!("--dbname={conn}"),
        ];
        if let Some(s) = snapshot {
            args.push(format!("--snapshot={s}"));
        }
        run("pg_dump", &args, password.as_deref(), &self.url)
            .await
            .map(|_| ())
    }

    async fn restore_into(&self, path: &Path, target: &DatabaseUrl) -> Result<()> {
        let (conn, password) = split_password(target)?;
        let args = vec![
            "--no-owner".to_string(),
            "--no-privileges".to_string(),
            "--exit-on-error".to_string(),
            "--no-password".to_string(),
            format!("--dbname={conn}"),
            path.display().to_string(),
        ];
        run("pg_restore", &args, password.as_deref(), target)
            .await
            .map(|_| ())
    }

    async fn check_dump(&self, path: &Path) -> Result<()> {
        // `--list` reads the whole table of contents: a truncated or foreign file fails here.
        run(
            "pg_restore",
            &["--list".to_string(), path.display().to_string()],
            None,
            &self.url,
        )
        .await
        .map(|_| ())
        .map_err(|e| {
            Error::Inconsistent(format!(
                "pg_restore cannot read the dump {}: {e}; nothing was changed",
                path.display()
            ))
        })
    }

    async fn create_side(&self, side: &str) -> Result<DatabaseUrl> {
        let name = self.name()?;
        let mut admin: Box<dyn Driver> = Box::new(connect_maintenance(&self.url).await?);
        let r = async {
            let create = create_like(admin.as_mut(), &name, side).await?;
            admin
                .run(&create)
                .await
                .map_err(|e| Error::db(format!("could not create database {side}"), e))
        }
        .await;
        admin.close().await;
        r.map(|_| self.url.with_database(side))
    }

    async fn drop_side(&self, side: &str) -> Result<()> {
        let mut admin: Box<dyn Driver> = Box::new(connect_maintenance(&self.url).await?);
        let r = admin.drop_database(side).await;
        admin.close().await;
        r
    }

    async fn restore_full(&self, path: &Path, target: &DatabaseUrl) -> Result<()> {
        let (conn, password) = split_password(target)?;
        let args = vec![
            "--exit-on-error".to_string(),
            "--no-password".to_string(),
            format!("--dbname={conn}"),
            path.display().to_string(),
        ];
        run("pg_restore", &args, password.as_deref(), target)
            .await
            .map(|_| ())
    }

    /// Rename the live database to `old` and the side database to the live name in one
    /// transaction (`ALTER DATABASE … RENAME` is transactional). A database being renamed must
    /// have no sessions: the lock's own connection goes first, then every other session is
    /// stopped, except one holding the migration lock (a migration that started in that
    /// instant is waited for, never killed).
    async fn swap(&self, side: &str, old: &str, lock: Box<dyn LockGuard>) -> Result<()> {
        let name = self.name()?;
        let mut admin: Box<dyn Driver> = Box::new(connect_maintenance(&self.url).await?);
        lock.release().await?;
        let r = swap_renames(admin.as_mut(), &name, side, old).await;
        admin.close().await;
        r
    }

    fn extension(&self) -> &'static str {
        "dump"
    }

    fn format(&self) -> &'static str {
        "pg_dump custom format"
    }
}

impl PgDumper {
    fn name(&self) -> Result<String> {
        self.url
            .database()
            .ok_or_else(|| Error::Usage(format!("the URL {} names no database", self.url)))
    }
}

/// `CREATE DATABASE new` with the encoding and locale of `like`.
async fn create_like(admin: &mut dyn Driver, like: &str, new: &str) -> Result<String> {
    let rows = admin
        .query(
            "SELECT pg_encoding_to_char(encoding), datcollate, datctype FROM pg_database WHERE datname = $1",
            &[like.into()],
        )
        .await
        .map_err(|e| Error::db("could not read the database's encoding", e))?;
    let Some(row) = rows.into_iter().next() else {
        return Err(Error::Usage(format!("database {like} does not exist")));
    };
    let text: Vec<String> = row
        .into_iter()
        .map(|v| v.into_text().unwrap_or_default())
        .collect();
    let q = |s: &str| format!("'{}'", s.replace('\'', "''"));
    Ok(format!(
        "CREATE DATABASE {} TEMPLATE template0 ENCODING {} LC_COLLATE {} LC_CTYPE {}",
        quote_ident(new),
        q(&text[0]),
        q(&text[1]),
        q(&text[2])
    ))
}

async fn swap_renames(admin: &mut dyn Driver, name: &str, side: &str, old: &str) -> Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let holders = format!(
        "SELECT COUNT(*) FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted \
         AND l.database = (SELECT oid FROM pg_database WHERE datname = $1) \
         AND l.classid = ({LOCK_KEY}::int8 >> 32)::oid AND l.objid = ({LOCK_KEY}::int8 & 4294967295)::oid AND l.objsubid = 1"
    );
    let renames = [
        format!(
            "ALTER DATABASE {} RENAME TO {}",
            quote_ident(name),
            quote_ident(old)
        ),
        format!(
            "ALTER DATABASE {} RENAME TO {}",
            quote_ident(side),
            quote_ident(name)
        ),
    ];
    loop {
        let held = admin
            .query(&holders, &[name.into()])
            .await
            .map_err(|e| Error::db("could not look for the migration lock", e))?
            .first()
            .and_then(|r| r.first())
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if held == 0 {
            admin
                .query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                    &[name.into()],
                )
                .await
                .map_err(|e| Error::db(format!("could not stop the sessions of {name}"), e))?;
            admin
                .begin()
                .await
                .map_err(|e| Error::db("could not begin the swap", e))?;
            let mut renamed = Ok(());
            for r in &renames {
                renamed = admin.run(r).await;
                if renamed.is_err() {
                    break;
                }
            }
            match renamed {
                Ok(()) => {
                    return admin
                        .commit()
                        .await
                        .map_err(|e| Error::db("could not commit the swap", e));
                }
                Err(e) => {
                    let _ = admin.rollback().await;
                    // 55006: a session (re)connected in between; stop it again.
                    if e.code.as_deref() != Some("55006") {
                        return Err(Error::db(format!("could not swap {side} in as {name}"), e));
                    }
                }
            }
        }
        if std::time::Instant::now() > deadline {
            return Err(Error::Tool(format!(
                "could not put the restored copy in place: {name} kept getting sessions (or a migration held its lock) for 60 s"
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A connection to another database of the server (`postgres`, else `template1`), to drop and
/// create the one being restored.
async fn connect_maintenance(url: &DatabaseUrl) -> Result<crate::PgDriver> {
    match connect(&url.with_database("postgres")).await {
        Ok(d) => Ok(d),
        Err(_) => connect(&url.with_database("template1")).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_passwords() {
        assert_eq!(
            tool_major("pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)"),
            Some(15)
        );
        assert_eq!(tool_major("pg_restore (PostgreSQL) 9.6.24"), Some(9));
        let u = DatabaseUrl::parse("postgres://app:p%40ss@db:5432/prod?sslmode=require").unwrap();
        let (conn, pw) = split_password(&u).unwrap();
        assert_eq!(pw.as_deref(), Some("p@ss"));
        assert!(
            !conn.contains("p%40ss") && conn.contains("sslmode=require"),
            "{conn}"
        );
        let u = DatabaseUrl::parse("postgres://db/prod?user=app&password=x1").unwrap();
        let (conn, pw) = split_password(&u).unwrap();
        assert_eq!(pw.as_deref(), Some("x1"));
        assert!(!conn.contains("x1"), "{conn}");
    }
}
