//! Backups through mariadb-dump/mysqldump and the mariadb/mysql client. Credentials go in a
//! private option file (`--defaults-extra-file`), never on the command line.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use async_trait::async_trait;
use tidemark_core::driver::{Driver, Dumper};
use tidemark_core::{DatabaseUrl, Error, Result};

use crate::driver::{connect, quote_ident};

pub struct MySqlDumper {
    url: DatabaseUrl,
}

pub fn dumper(url: &DatabaseUrl) -> MySqlDumper {
    MySqlDumper { url: url.clone() }
}

/// Which tools to use for a server: MariaDB's for MariaDB, MySQL's for MySQL, each falling back
/// to the other name (Debian ships `mysqldump` as a link to `mariadb-dump`).
fn tools(mariadb: bool) -> ([&'static str; 2], [&'static str; 2]) {
    if mariadb {
        (["mariadb-dump", "mysqldump"], ["mariadb", "mysql"])
    } else {
        (["mysqldump", "mariadb-dump"], ["mysql", "mariadb"])
    }
}

/// A `[client]` option file (mode 0600, removed when dropped) with the URL's credentials.
fn option_file(url: &DatabaseUrl) -> Result<(tempfile::NamedTempFile, String)> {
    let raw = url.expose_secret().replacen("mariadb://", "mysql://", 1);
    let u =
        url::Url::parse(&raw).map_err(|e| Error::Usage(format!("invalid MySQL URL {url}: {e}")))?;
    let dec = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let db = url
        .database()
        .ok_or_else(|| Error::Usage(format!("the URL {url} names no database")))?;
    let mut text = String::from("[client]\n");
    if !u.username().is_empty() {
        text.push_str(&format!("user={}\n", dec(u.username())));
    }
    if let Some(p) = u.password() {
        text.push_str(&format!(
            "password=\"{}\"\n",
            dec(p).replace('\\', "\\\\").replace('"', "\\\"")
        ));
    }
    if let Some(h) = u.host_str() {
        text.push_str(&format!("host={h}\nprotocol=tcp\n"));
    }
    if let Some(p) = u.port() {
        text.push_str(&format!("port={p}\n"));
    }
    for (k, v) in u.query_pairs() {
        match k.as_ref() {
            "socket" => text.push_str(&format!("socket={v}\n")),
            "ssl-mode" | "sslmode" if v.eq_ignore_ascii_case("disabled") => {
                text.push_str("skip-ssl\n")
            }
            _ => {}
        }
    }
    let mut f = tempfile::Builder::new()
        .prefix(".tidemark-my-")
        .tempfile()
        .map_err(|e| Error::Tool(format!("could not write an option file: {e}")))?;
    f.write_all(text.as_bytes())
        .map_err(|e| Error::Tool(format!("could not write an option file: {e}")))?;
    Ok((f, db))
}

async fn run(
    candidates: &[&str],
    args: &[String],
    stdin_file: Option<&Path>,
) -> Result<(String, String)> {
    let mut last_err = None;
    for tool in candidates {
        let mut cmd = tokio::process::Command::new(tool);
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        match stdin_file {
            Some(p) => {
                let f = std::fs::File::open(p).map_err(|e| Error::io(p, e))?;
                cmd.stdin(Stdio::from(f));
            }
            None => {
                cmd.stdin(Stdio::null());
            }
        }
        match cmd.output().await {
            Ok(out) if out.status.success() => {
                return Ok((
                    tool.to_string(),
                    String::from_utf8_lossy(&out.stdout).into_owned(),
                ));
            }
            Ok(out) => {
                return Err(Error::Tool(format!(
                    "{tool} failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => last_err = Some(tool.to_string()),
            Err(e) => return Err(Error::Tool(format!("could not run {tool}: {e}"))),
        }
    }
    Err(Error::Tool(format!(
        "{} was not found on PATH: install the MariaDB/MySQL client tools (mariadb-client or mysql-client); nothing was changed",
        last_err.unwrap_or_default()
    )))
}

/// `mariadb-dump from 11.4.2-MariaDB` / `mysqldump  Ver 10.19 Distrib 10.11.6-MariaDB` /
/// `mysqldump  Ver 8.0.36 for Linux` → (major, is MariaDB).
fn tool_version(out: &str) -> Option<(u32, bool)> {
    let mariadb = out.contains("MariaDB");
    let v = if let Some(rest) = out.split("Distrib ").nth(1) {
        rest
    } else if let Some(rest) = out.split(" from ").nth(1) {
        rest
    } else {
        out.split("Ver ").nth(1)?
    };
    let major = v.split(['.', ' ', '-']).next()?.parse().ok()?;
    Some((major, mariadb))
}

impl MySqlDumper {
    async fn server(&self) -> Result<(u32, bool)> {
        let d = connect(&self.url).await?;
        let caps = d.caps().clone();
        Box::new(d).close().await;
        let major = caps
            .server_version
            .split(['.', '-'])
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        Ok((major, caps.flavor == "MariaDB"))
    }
}

#[async_trait]
impl Dumper for MySqlDumper {
    async fn check_tools(&self) -> Result<String> {
        let (server_major, server_mariadb) = self.server().await?;
        let (dump, client) = tools(server_mariadb);
        let (tool, out) = run(&dump, &["--version".to_string()], None).await?;
        let (major, mariadb) = tool_version(&out).ok_or_else(|| {
            Error::Tool(format!(
                "cannot read the version of {tool} from `{}`",
                out.trim()
            ))
        })?;
        let server_name = if server_mariadb { "MariaDB" } else { "MySQL" };
        if mariadb != server_mariadb {
            return Err(Error::Tool(format!(
                "{tool} is {}'s but the server is {server_name} {server_major}: install the {server_name} client tools; nothing was changed",
                if mariadb { "MariaDB" } else { "MySQL" }
            )));
        }
        if major < server_major {
            return Err(Error::Tool(format!(
                "{tool} {major} is older than the {server_name} {server_major} server: install client tools of version {server_major} or later; nothing was changed"
            )));
        }
        let (ctool, _) = run(&client, &["--version".to_string()], None).await?;
        Ok(format!("{tool} {major}, {ctool}"))
    }

    async fn dump(&self, path: &Path, _snapshot: Option<&str>) -> Result<()> {
        let (opts, db) = option_file(&self.url)?;
        let (_, server_mariadb) = self.server().await?;
        let args = vec![
            format!("--defaults-extra-file={}", opts.path().display()),
            "--single-transaction".into(),
            "--routines".into(),
            "--triggers".into(),
            "--events".into(),
            "--hex-blob".into(),
            "--no-tablespaces".into(),
            "--skip-dump-date".into(),
            format!("--result-file={}", path.display()),
            db,
        ];
        run(&tools(server_mariadb).0, &args, None).await.map(|_| ())
    }

    async fn restore_into(&self, path: &Path, target: &DatabaseUrl) -> Result<()> {
        let (opts, db) = option_file(target)?;
        let (_, server_mariadb) = self.server().await?;
        let args = vec![
            format!("--defaults-extra-file={}", opts.path().display()),
            db,
        ];
        run(&tools(server_mariadb).1, &args, Some(path))
            .await
            .map(|_| ())
    }

    /// Drop the database and create it again with the same character set and collation, then
    /// load the dump, so that objects made after the backup do not survive.
    async fn restore_replace(&self, path: &Path) -> Result<()> {
        let name = self
            .url
            .database()
            .ok_or_else(|| Error::Usage(format!("the URL {} names no database", self.url)))?;
        let mut admin: Box<dyn Driver> = Box::new(connect(&self.url).await?);
        let rows = admin
            .query("SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = DATABASE()", &[])
            .await
            .map_err(|e| Error::db("could not read the database's character set", e))?;
        let row: Vec<String> = rows
            .into_iter()
            .next()
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.into_text().unwrap_or_default())
            .collect();
        let (cs, co) = (
            row.first().cloned().unwrap_or_else(|| "utf8mb4".into()),
            row.get(1).cloned().unwrap_or_default(),
        );
        admin.drop_database(&name).await?;
        let collate = if co.is_empty() {
            String::new()
        } else {
            format!(" COLLATE {co}")
        };
        admin
            .run(&format!(
                "CREATE DATABASE {} CHARACTER SET {cs}{collate}",
                quote_ident(&name)
            ))
            .await
            .map_err(|e| Error::db(format!("could not create database {name} again"), e))?;
        admin.close().await;
        self.restore_into(path, &self.url).await
    }

    fn extension(&self) -> &'static str {
        "sql"
    }

    fn format(&self) -> &'static str {
        "mysqldump SQL"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_versions() {
        assert_eq!(
            tool_version(
                "mysqldump  Ver 10.19 Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)"
            ),
            Some((10, true))
        );
        assert_eq!(
            tool_version("mariadb-dump from 11.4.2-MariaDB, client 10.19 for Linux (x86_64)"),
            Some((11, true))
        );
        assert_eq!(
            tool_version(
                "mysqldump  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)"
            ),
            Some((8, false))
        );
    }

    #[test]
    fn option_file_keeps_the_password_off_the_command_line() {
        let u = DatabaseUrl::parse("mysql://app:s%22e%40cret@db:3307/shop").unwrap();
        let (f, db) = option_file(&u).unwrap();
        assert_eq!(db, "shop");
        let text = std::fs::read_to_string(f.path()).unwrap();
        assert!(
            text.contains("password=\"s\\\"e@cret\"") && text.contains("port=3307"),
            "{text}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(f.path()).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }
}
