//! Backups through mariadb-dump/mysqldump and the mariadb/mysql client. Credentials go in a
//! private option file (`--defaults-extra-file`), never on the command line.

use std::path::Path;
use std::process::Stdio;

use async_trait::async_trait;
use tidemark_core::driver::{Driver, Dumper, LockGuard, Value};
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

/// The connection as client arguments, and the password apart. The password travels in the
/// child's environment (`MYSQL_PWD`), never on the command line (`ps` shows it) nor in a file:
/// an option file (`--defaults-extra-file`) is left behind with the password in it when
/// tidemark is killed, and the tools cannot be told to read one from an inherited descriptor
/// without unsafe code. A process's environment is readable only by its user and root (as a
/// 0600 file would be) and dies with it. MySQL 8 calls `MYSQL_PWD` deprecated but still honours
/// it; MariaDB supports it.
fn client_args(url: &DatabaseUrl) -> Result<(Vec<String>, Option<String>, String)> {
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
    let mut args = Vec::new();
    if !u.username().is_empty() {
        args.push(format!("--user={}", dec(u.username())));
    }
    let password = u.password().map(dec);
    if let Some(h) = u.host_str() {
        args.push(format!("--host={h}"));
        args.push("--protocol=tcp".into());
    }
    if let Some(p) = u.port() {
        args.push(format!("--port={p}"));
    }
    for (k, v) in u.query_pairs() {
        match k.as_ref() {
            "socket" => args.push(format!("--socket={v}")),
            "ssl-mode" | "sslmode" if v.eq_ignore_ascii_case("disabled") => {
                args.push("--skip-ssl".into())
            }
            _ => {}
        }
    }
    Ok((args, password, db))
}

async fn run(
    candidates: &[&str],
    args: &[String],
    password: Option<&str>,
    stdin_file: Option<&Path>,
) -> Result<(String, String)> {
    let mut last_err = None;
    for tool in candidates {
        let mut cmd = tokio::process::Command::new(tool);
        // Interrupted (SIGINT/SIGTERM drops the future), the tool is killed with it.
        cmd.kill_on_drop(true);
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        if let Some(p) = password {
            cmd.env("MYSQL_PWD", p);
        }
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
                let text = String::from_utf8_lossy(&out.stderr).into_owned();
                let text = match password {
                    Some(p) if !p.is_empty() => text.replace(p, "***"),
                    _ => text,
                };
                return Err(Error::Tool(format!(
                    "{tool} failed ({}): {}",
                    out.status,
                    text.trim()
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
        let (tool, out) = run(&dump, &["--version".to_string()], None, None).await?;
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
        let (ctool, _) = run(&client, &["--version".to_string()], None, None).await?;
        Ok(format!("{tool} {major}, {ctool}"))
    }

    async fn dump(&self, path: &Path, _snapshot: Option<&str>) -> Result<()> {
        let (mut args, password, db) = client_args(&self.url)?;
        let (_, server_mariadb) = self.server().await?;
        args.extend([
            "--single-transaction".into(),
            "--routines".into(),
            "--triggers".into(),
            "--events".into(),
            "--hex-blob".into(),
            "--no-tablespaces".into(),
            "--skip-dump-date".into(),
            format!("--result-file={}", path.display()),
            db,
        ]);
        run(&tools(server_mariadb).0, &args, password.as_deref(), None)
            .await
            .map(|_| ())
    }

    async fn restore_into(&self, path: &Path, target: &DatabaseUrl) -> Result<()> {
        let (mut args, password, db) = client_args(target)?;
        let (_, server_mariadb) = self.server().await?;
        args.push(db);
        run(
            &tools(server_mariadb).1,
            &args,
            password.as_deref(),
            Some(path),
        )
        .await
        .map(|_| ())
    }

    async fn create_side(&self, side: &str) -> Result<DatabaseUrl> {
        // The driver creates it with the live database's character set and collation.
        let mut admin: Box<dyn Driver> = Box::new(connect(&self.url).await?);
        let r = admin.create_database(side).await;
        admin.close().await;
        r
    }

    async fn drop_side(&self, side: &str) -> Result<()> {
        let mut admin: Box<dyn Driver> = Box::new(connect(&self.url).await?);
        let r = admin.drop_database(side).await;
        admin.close().await;
        r
    }

    /// Every base table of the live database goes to `old` and every one of `side` comes in,
    /// in one `RENAME TABLE` statement (atomic on MariaDB and MySQL, under the migration lock,
    /// which is a server-wide named lock and stays held). Views, triggers and routines cannot
    /// move between databases: the restored ones are created again right after, from their
    /// definitions in `side` (triggers are taken off the tables for the move).
    async fn swap(&self, side: &str, old: &str, lock: Box<dyn LockGuard>) -> Result<()> {
        let name = self
            .url
            .database()
            .ok_or_else(|| Error::Usage(format!("the URL {} names no database", self.url)))?;
        let mut live: Box<dyn Driver> = Box::new(connect(&self.url).await?);
        let mut from: Box<dyn Driver> = Box::new(connect(&self.url.with_database(side)).await?);
        let r = swap_tables(live.as_mut(), from.as_mut(), &name, side, old).await;
        from.close().await;
        live.close().await;
        let released = lock.release().await;
        r.and(released)
    }

    fn extension(&self) -> &'static str {
        "sql"
    }

    fn format(&self) -> &'static str {
        "mysqldump SQL"
    }
}

async fn texts(d: &mut dyn Driver, sql: &str, params: &[Value]) -> Result<Vec<Vec<String>>> {
    let rows = d
        .query(sql, params)
        .await
        .map_err(|e| Error::db("could not list the objects to swap", e))?;
    Ok(rows
        .into_iter()
        .map(|r| {
            r.into_iter()
                .map(|v| v.into_text().unwrap_or_default())
                .collect()
        })
        .collect())
}

/// The restored views, triggers and routines, as statements that create them in the live
/// database (read on a connection whose default database is the side one, so that SHOW CREATE
/// leaves the database name out).
async fn definitions(from: &mut dyn Driver, side: &str) -> Result<(Vec<String>, Vec<String>)> {
    let q = quote_ident;
    let mut views = Vec::new();
    for r in texts(
        from,
        "SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME",
        &[side.into()],
    )
    .await?
    {
        let def = texts(from, &format!("SHOW CREATE VIEW {}", q(&r[0])), &[]).await?;
        if let Some(sql) = def.first().and_then(|d| d.get(1)) {
            views.push(sql.clone());
        }
    }
    let mut others = Vec::new();
    for r in texts(
        from,
        "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? ORDER BY ACTION_ORDER",
        &[side.into()],
    )
    .await?
    {
        let def = texts(from, &format!("SHOW CREATE TRIGGER {}", q(&r[0])), &[]).await?;
        if let Some(sql) = def.first().and_then(|d| d.get(2)) {
            others.push(sql.clone());
        }
    }
    for r in texts(
        from,
        "SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? ORDER BY ROUTINE_NAME",
        &[side.into()],
    )
    .await?
    {
        let def = texts(from, &format!("SHOW CREATE {} {}", r[1], q(&r[0])), &[]).await?;
        if let Some(sql) = def.first().and_then(|d| d.get(2)) {
            others.push(sql.clone());
        }
    }
    Ok((views, others))
}

async fn drop_triggers(d: &mut dyn Driver, schema: &str) -> Result<()> {
    for r in texts(
        d,
        "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?",
        &[schema.into()],
    )
    .await?
    {
        d.run(&format!(
            "DROP TRIGGER {}.{}",
            quote_ident(schema),
            quote_ident(&r[0])
        ))
        .await
        .map_err(|e| Error::db("could not take a trigger off for the swap", e))?;
    }
    Ok(())
}

async fn swap_tables(
    live: &mut dyn Driver,
    from: &mut dyn Driver,
    name: &str,
    side: &str,
    old: &str,
) -> Result<()> {
    let q = quote_ident;
    let tables = |schema: &str| {
        format!(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{}' AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
            schema.replace('\'', "''")
        )
    };
    let (views, others) = definitions(from, side).await?;
    let side_tables = texts(from, &tables(side), &[]).await?;
    let live_tables = texts(live, &tables(name), &[]).await?;
    // Triggers stop a table from moving to another database ("Trigger in wrong schema").
    drop_triggers(from, side).await?;
    drop_triggers(live, name).await?;
    live.create_database(old).await?;
    let mut moves: Vec<String> = live_tables
        .iter()
        .map(|r| format!("{}.{} TO {}.{}", q(name), q(&r[0]), q(old), q(&r[0])))
        .collect();
    moves.extend(
        side_tables
            .iter()
            .map(|r| format!("{}.{} TO {}.{}", q(side), q(&r[0]), q(name), q(&r[0]))),
    );
    if !moves.is_empty() {
        live.run(&format!("RENAME TABLE {}", moves.join(", ")))
            .await
            .map_err(|e| Error::db(format!("could not swap the restored tables into {name}"), e))?;
    }
    // The live database's own views and routines go; the restored ones come.
    for r in texts(
        live,
        "SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DATABASE()",
        &[],
    )
    .await?
    {
        live.run(&format!("DROP VIEW IF EXISTS {}", q(&r[0])))
            .await
            .map_err(|e| Error::db("could not drop a replaced view", e))?;
    }
    for r in texts(
        live,
        "SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE()",
        &[],
    )
    .await?
    {
        live.run(&format!("DROP {} IF EXISTS {}", r[1], q(&r[0])))
            .await
            .map_err(|e| Error::db("could not drop a replaced routine", e))?;
    }
    // Views may use views: create them in passes until none is left or no pass gets further.
    let mut pending = views;
    while !pending.is_empty() {
        let before = pending.len();
        let mut failed = Vec::new();
        let mut last = None;
        for v in pending {
            if let Err(e) = live.run(&v).await {
                last = Some(e);
                failed.push(v);
            }
        }
        if let Some(e) = last
            && failed.len() == before
        {
            return Err(Error::db("could not create a restored view", e));
        }
        pending = failed;
    }
    for sql in others {
        live.run(&sql)
            .await
            .map_err(|e| Error::db("could not create a restored trigger or routine", e))?;
    }
    Ok(())
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
    fn the_password_stays_off_the_command_line() {
        let u = DatabaseUrl::parse("mysql://app:s%22e%40cret@db:3307/shop").unwrap();
        let (args, password, db) = client_args(&u).unwrap();
        assert_eq!(db, "shop");
        assert_eq!(password.as_deref(), Some("s\"e@cret"));
        assert!(args.iter().all(|a| !a.contains("cret")), "{args:?}");
        assert!(args.contains(&"--port=3307".to_string()), "{args:?}");
    }
}
