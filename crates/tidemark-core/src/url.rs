//! Database URLs: the only place that knows a URL's raw text. Its `Display` and `Debug` both
//! redact the password, and there is deliberately no `Deref` to the raw string, so a password
//! cannot reach output, logs or reports by accident.

use std::fmt;

use crate::driver::Dialect;
use crate::error::{Error, Result};

#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    raw: String,
    dialect: Dialect,
}

impl DatabaseUrl {
    pub fn parse(raw: &str) -> Result<Self> {
        let raw = raw.trim();
        let scheme = raw
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let dialect = match scheme.as_str() {
            "postgres" | "postgresql" => Dialect::Postgres,
            "mysql" | "mariadb" => Dialect::MySql,
            "sqlite" | "sqlite3" => Dialect::Sqlite,
            "" => return Err(Error::Usage("the database URL is empty".into())),
            other => {
                return Err(Error::Usage(format!(
                    "unsupported database URL scheme `{other}:` in {}; expected postgres://, mysql://, mariadb:// or sqlite://",
                    redact(raw)
                )));
            }
        };
        if dialect != Dialect::Sqlite && !raw[scheme.len()..].starts_with("://") {
            return Err(Error::Usage(format!(
                "malformed database URL {}: expected {scheme}://host/database",
                redact(raw)
            )));
        }
        Ok(DatabaseUrl {
            raw: raw.to_string(),
            dialect,
        })
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The URL with its password, for the driver that opens the connection. Named loudly so
    /// that a call site that prints it stands out in review.
    pub fn expose_secret(&self) -> &str {
        &self.raw
    }

    pub fn redacted(&self) -> String {
        redact(&self.raw)
    }

    /// The same server with another database name (scratch and shadow databases). For SQLite
    /// the "database" is the file path.
    pub fn with_database(&self, database: &str) -> DatabaseUrl {
        let (base, query) = match self.raw.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (self.raw.as_str(), None),
        };
        let new_base = if self.dialect == Dialect::Sqlite {
            format!("sqlite://{database}")
        } else {
            let after_scheme = base.find("://").map(|i| i + 3).unwrap_or(0);
            match base[after_scheme..].find('/') {
                Some(slash) => format!("{}/{database}", &base[..after_scheme + slash]),
                None => format!("{base}/{database}"),
            }
        };
        let raw = match query {
            Some(q) if self.dialect != Dialect::Sqlite => format!("{new_base}?{q}"),
            _ => new_base,
        };
        DatabaseUrl {
            raw,
            dialect: self.dialect,
        }
    }

    /// The database name (server databases) or the path (SQLite), if the URL has one.
    pub fn database(&self) -> Option<String> {
        let base = self.raw.split(['?', '#']).next().unwrap_or_default();
        if self.dialect == Dialect::Sqlite {
            let rest = base.split_once(':').map(|x| x.1).unwrap_or_default();
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            return (!rest.is_empty()).then(|| rest.to_string());
        }
        let after_scheme = base.find("://").map(|i| i + 3)?;
        let path = &base[after_scheme..];
        let db = path.split_once('/').map(|x| x.1)?;
        (!db.is_empty()).then(|| percent_decode(db))
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Replace the password of a URL (userinfo and `password=` query parameters) with `***`.
pub fn redact(raw: &str) -> String {
    let mut out = raw.to_string();
    if let Some(start) = raw.find("://").map(|i| i + 3) {
        let end = raw[start..]
            .find(['/', '?', '#'])
            .map(|i| start + i)
            .unwrap_or(raw.len());
        let authority = &raw[start..end];
        if let Some(at) = authority.rfind('@') {
            let userinfo = &authority[..at];
            if let Some(colon) = userinfo.find(':') {
                out = format!(
                    "{}{}:***{}",
                    &raw[..start],
                    &userinfo[..colon],
                    &raw[start + at..]
                );
            }
        }
    }
    if let Some((base, query)) = out.clone().split_once('?') {
        let redacted: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _))
                    if k.to_ascii_lowercase().contains("password")
                        || k.eq_ignore_ascii_case("pass") =>
                {
                    format!("{k}=***")
                }
                _ => kv.to_string(),
            })
            .collect();
        out = format!("{base}?{}", redacted.join("&"));
    }
    out
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_password_everywhere() {
        let u = DatabaseUrl::parse("postgres://app:s3cr3t@db.example:5432/prod?sslmode=require")
            .unwrap();
        assert_eq!(
            u.to_string(),
            "postgres://app:***@db.example:5432/prod?sslmode=require"
        );
        assert!(!format!("{u:?}").contains("s3cr3t"));
        let u = DatabaseUrl::parse("mysql://root:p@ss:w@rd@host/db").unwrap();
        assert_eq!(u.to_string(), "mysql://root:***@host/db");
        let u = DatabaseUrl::parse("postgres://host/db?user=a&password=hunter2").unwrap();
        assert_eq!(u.to_string(), "postgres://host/db?user=a&password=***");
        let u = DatabaseUrl::parse("postgres://app@host/db").unwrap();
        assert_eq!(u.to_string(), "postgres://app@host/db");
    }

    #[test]
    fn knows_dialects_and_rejects_others() {
        assert_eq!(
            DatabaseUrl::parse("postgresql://h/d").unwrap().dialect(),
            Dialect::Postgres
        );
        assert_eq!(
            DatabaseUrl::parse("mariadb://h/d").unwrap().dialect(),
            Dialect::MySql
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite::memory:").unwrap().dialect(),
            Dialect::Sqlite
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite://app.db").unwrap().dialect(),
            Dialect::Sqlite
        );
        let e = DatabaseUrl::parse("oracle://x:secret@h/d")
            .unwrap_err()
            .to_string();
        assert!(e.contains("oracle") && !e.contains("secret"), "{e}");
        assert!(DatabaseUrl::parse("postgres:h").is_err());
    }

    #[test]
    fn swaps_database_names() {
        let u = DatabaseUrl::parse("postgres://u:pw@h:5432/app?sslmode=disable").unwrap();
        assert_eq!(u.database().as_deref(), Some("app"));
        let s = u.with_database("tm_scratch_1");
        assert_eq!(
            s.expose_secret(),
            "postgres://u:pw@h:5432/tm_scratch_1?sslmode=disable"
        );
        let s = DatabaseUrl::parse("mysql://root@h")
            .unwrap()
            .with_database("x");
        assert_eq!(s.expose_secret(), "mysql://root@h/x");
        assert_eq!(
            DatabaseUrl::parse("sqlite://dir/a.db")
                .unwrap()
                .database()
                .as_deref(),
            Some("dir/a.db")
        );
        assert_eq!(
            DatabaseUrl::parse("postgres://h/my%20db")
                .unwrap()
                .database()
                .as_deref(),
            Some("my db")
        );
    }
}
