//! Database URLs: the only place that knows a URL's raw text. Its `Display` and `Debug` both
//! redact the password, and there is deliberately no `Deref` to the raw string, so a password
//! cannot reach output, logs or reports by accident.

use std::fmt;

use crate::driver::Dialect;
use crate::error::{Error, Result};

#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    /// Normalised: the user-info percent-encoded, so every URL parser downstream (sqlx, the
    /// dump tools' option builders) reads the same user and password.
    raw: String,
    dialect: Dialect,
    /// Computed once from the parts, never from the raw text by search and replace.
    redacted: String,
    /// The password as the server receives it (decoded), to scrub it from foreign messages.
    password: Option<String>,
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
                // Only the scheme is echoed: whatever follows may be a secret.
                let other: String = other.chars().take(20).collect();
                return Err(Error::Usage(format!(
                    "unsupported database URL scheme `{other}:`; expected postgres://, mysql://, mariadb:// or sqlite://"
                )));
            }
        };
        if dialect == Dialect::Sqlite {
            return Ok(DatabaseUrl {
                raw: raw.to_string(),
                dialect,
                redacted: redact_query(raw),
                password: None,
            });
        }
        let Some(rest) = raw.get(scheme.len()..).and_then(|r| r.strip_prefix("://")) else {
            return Err(Error::Usage(format!(
                "malformed database URL {}: expected {scheme}://host/database",
                redact(raw)
            )));
        };
        let scheme_text = &raw[..scheme.len()];
        let parts = Parts::split(rest);
        let (raw, redacted, password) = match parts.userinfo {
            None => (raw.to_string(), redact_query(raw), None),
            Some(userinfo) => {
                let (user, password) = match userinfo.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (userinfo, None),
                };
                let user = encode_userinfo(user);
                let after = parts.after;
                match password {
                    None => {
                        let n = format!("{scheme_text}://{user}@{after}");
                        let r = redact_query(&n);
                        (n, r, None)
                    }
                    Some(p) => (
                        format!("{scheme_text}://{user}:{}@{after}", encode_userinfo(p)),
                        redact_query(&format!("{scheme_text}://{user}:***@{after}")),
                        Some(
                            percent_encoding::percent_decode_str(p)
                                .decode_utf8_lossy()
                                .into_owned(),
                        ),
                    ),
                }
            }
        };
        Ok(DatabaseUrl {
            raw,
            dialect,
            redacted,
            password,
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
        self.redacted.clone()
    }

    /// A message from elsewhere (a driver, a dump tool) with this URL and its password taken
    /// out, in whatever form they appear.
    pub fn scrub(&self, msg: &str) -> String {
        let mut out = msg.replace(&self.raw, &self.redacted);
        if let Some(p) = self.password.as_deref().filter(|p| !p.is_empty()) {
            out = out.replace(p, "***");
            let encoded = encode_userinfo(p);
            if encoded != p {
                out = out.replace(&encoded, "***");
            }
        }
        out
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
        // The user-info is already normalised, so parsing again only recomputes the parts.
        DatabaseUrl::parse(&raw).unwrap_or_else(|_| DatabaseUrl {
            redacted: redact(&raw),
            raw,
            dialect: self.dialect,
            password: self.password.clone(),
        })
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
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// A server URL after `scheme://`, split at the user-info.
struct Parts<'a> {
    userinfo: Option<&'a str>,
    /// Host, port, path and query.
    after: &'a str,
}

impl<'a> Parts<'a> {
    /// The user-info is everything up to the last `@` that is followed by something shaped like
    /// a host (then `/`, `?` or the end), whatever it contains: generated passwords hold `#`,
    /// `?`, `@` and `/`, unencoded. (An `@` inside a query value must then be written `%40`.)
    fn split(rest: &'a str) -> Parts<'a> {
        for (i, _) in rest.rmatch_indices('@') {
            let (userinfo, after) = (&rest[..i], &rest[i + 1..]);
            let host_end = after.find(['/', '?']).unwrap_or(after.len());
            let host_like = after[..host_end]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._~%:,[]".contains(c));
            // Without a password separator, a user-info holding `/`, `?` or `#` is more likely
            // a path or query with an `@` in it.
            let userinfo_like = userinfo.contains(':') || !userinfo.contains(['/', '?', '#']);
            if host_like && userinfo_like {
                return Parts {
                    userinfo: Some(userinfo),
                    after,
                };
            }
        }
        Parts {
            userinfo: None,
            after: rest,
        }
    }
}

/// Percent-encode what the user-info may not hold literally; escapes already there stay.
fn encode_userinfo(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let escape = b == b'%'
            && bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
        if escape || b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
        i += 1;
    }
    out
}

/// `password=` (and `sslpassword=`, `pass=`) query parameters shown as `***`.
fn redact_query(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_string();
    };
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
    format!("{base}?{}", redacted.join("&"))
}

/// Replace the password of a URL as typed (user-info and `password=` query parameters) with
/// `***`. For text that never became a [`DatabaseUrl`] (an error about it); a parsed URL keeps
/// its redacted form.
pub fn redact(raw: &str) -> String {
    let Some((scheme, rest)) = raw.split_once("://") else {
        return redact_query(raw);
    };
    match Parts::split(rest).userinfo {
        Some(ui) => {
            let shown = match ui.split_once(':') {
                Some((user, _)) => format!("{user}:***"),
                None => ui.to_string(),
            };
            redact_query(&format!("{scheme}://{shown}@{}", Parts::split(rest).after))
        }
        None => redact_query(raw),
    }
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
