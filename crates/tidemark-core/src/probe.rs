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

/// Loopback or a Unix socket directory: a connection that never leaves the machine.
pub fn is_local_host(host: &str) -> bool {
    host.starts_with('/')
        || host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Where a driver connects: a TCP port, or a Unix socket (nothing to probe).
pub struct Endpoint<'a> {
    pub host: &'a str,
    pub port: u16,
    pub socket: bool,
}

/// Run a driver's connection attempt within the connect timeout. When it fails or hangs, say
/// which protocol the port really speaks if it is not `expected` (a `mysql://` URL at a
/// PostgreSQL port hangs until the server gives up; the reverse fails with a protocol byte).
/// `failed` turns the driver's own error into tidemark's.
pub async fn connect_within<T, E>(
    url: &crate::url::DatabaseUrl,
    expected: Protocol,
    at: Endpoint<'_>,
    connecting: impl std::future::Future<Output = std::result::Result<T, E>>,
    failed: impl FnOnce(E) -> crate::error::Error,
) -> crate::error::Result<T> {
    use crate::error::Error;
    let timeout = connect_timeout();
    let wrong_port = || async {
        if at.socket {
            return None;
        }
        explain(expected, at.host, at.port).await
    };
    // A connection that is slow to start may be waiting on a server of the other kind (each
    // waits for the other to speak first): after a moment, ask the port what it is.
    let connecting = tokio::time::timeout(timeout, connecting);
    tokio::pin!(connecting);
    let result = tokio::select! {
        r = &mut connecting => r,
        why = async {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            match wrong_port().await {
                Some(why) => why,
                None => std::future::pending().await,
            }
        } => return Err(Error::Usage(format!("could not connect to {url}: {why}"))),
    };
    match result {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => match wrong_port().await {
            Some(why) => Err(Error::Usage(format!("could not connect to {url}: {why}"))),
            None => Err(failed(e)),
        },
        Err(_) => {
            let why = wrong_port().await.unwrap_or_else(|| {
                format!(
                    "no answer from {}:{} within {} (TIDEMARK_CONNECT_TIMEOUT sets the limit)",
                    at.host,
                    at.port,
                    format_duration(timeout)
                )
            });
            Err(Error::db(
                format!("could not connect to {url}"),
                crate::driver::DbError::new(why),
            ))
        }
    }
}
