//! Which protocol does a port speak? Asked only after a connection failed or hung, so that a
//! `mysql://` URL pointed at a PostgreSQL port (or the reverse) is named as such instead of
//! hanging until the server gives up ("expected to read 4 bytes") or printing a protocol byte.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a connection attempt may take before tidemark says what it found. A server that
/// answers at all answers within this; `TIDEMARK_CONNECT_TIMEOUT` (e.g. `30s`) changes it.
pub fn connect_timeout() -> Duration {
    std::env::var(crate::env::CONNECT_TIMEOUT)
        .ok()
        .and_then(|v| humantime::parse_duration(&v).ok())
        .unwrap_or(Duration::from_secs(10))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Postgres,
    MySql,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Postgres => "PostgreSQL",
            Protocol::MySql => "MySQL/MariaDB",
        }
    }
}

/// A MySQL or MariaDB server speaks first: a greeting whose fifth byte is the protocol version
/// (10). A PostgreSQL server waits for the client, and answers an SSLRequest with `S` or `N`.
pub async fn identify(host: &str, port: u16) -> Option<Protocol> {
    let mut s = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect((host, port)))
        .await
        .ok()?
        .ok()?;
    let mut greeting = [0u8; 5];
    if let Ok(Ok(_)) =
        tokio::time::timeout(Duration::from_millis(500), s.read_exact(&mut greeting)).await
    {
        return (greeting[3] == 0 && greeting[4] == 10).then_some(Protocol::MySql);
    }
    // 8 bytes: length 8, then the SSLRequest code 80877103.
    s.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
        .await
        .ok()?;
    let mut answer = [0u8; 1];
    tokio::time::timeout(Duration::from_secs(1), s.read_exact(&mut answer))
        .await
        .ok()?
        .ok()?;
    matches!(answer[0], b'S' | b'N').then_some(Protocol::Postgres)
}

/// The error for a connection that failed or hung: names the protocol the port really
/// speaks when it is not the one the URL asked for.
pub async fn explain(expected: Protocol, host: &str, port: u16) -> Option<String> {
    match identify(host, port).await {
        Some(found) if found != expected => Some(format!(
            "{host}:{port} speaks {}, not {}: check the URL's scheme and port",
            found.name(),
            expected.name()
        )),
        _ => None,
    }
}

/// `10s`, `1m 30s`: how durations are shown in messages.
pub fn format_duration(d: Duration) -> String {
    humantime::format_duration(Duration::from_millis(d.as_millis() as u64)).to_string()
}
