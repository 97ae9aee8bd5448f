//! Verification checks: HTTP (status, body substring, timeout) and the schema gate. A check
//! that gets no answer fails; nothing is ever a pass by default.

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tidemark::gate::{self, Require};
use tidemark::{Driver, MigrationSet};

use crate::config::HttpCheck;

/// The most of a response body kept for the report.
pub const BODY_LIMIT: usize = 4096;

#[derive(Debug, Clone)]
pub struct Failure {
    /// Which check: `GET http://…` or `schema gate`.
    pub check: String,
    pub detail: String,
    pub status: Option<u16>,
    pub body: Option<String>,
}

/// One answer to a GET.
pub struct Answer {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    /// Cut to [`BODY_LIMIT`].
    pub body: String,
}

/// GET a URL (http only) within `timeout`, on a connection of its own that is closed after
/// (a switch behind nginx must be seen by a new connection, not one kept alive).
pub async fn get(url: &str, timeout: Duration) -> Result<Answer, String> {
    let u = url::Url::parse(url).map_err(|e| format!("bad URL `{url}`: {e}"))?;
    let host = u
        .host_str()
        .ok_or_else(|| format!("no host in `{url}`"))?
        .to_string();
    let port = u.port_or_known_default().unwrap_or(80);
    let path = match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_string(),
    };
    let work = async move {
        let host_for_connect = host.trim_start_matches('[').trim_end_matches(']');
        let stream = tokio::net::TcpStream::connect((host_for_connect, port))
            .await
            .map_err(|e| format!("no answer: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("no answer: {e}"))?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = hyper::Request::get(path)
            .header(hyper::header::HOST, format!("{host}:{port}"))
            .header(hyper::header::USER_AGENT, "tidemark-deploy")
            .header(hyper::header::CONNECTION, "close")
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let res = sender
            .send_request(req)
            .await
            .map_err(|e| format!("no answer: {e}"))?;
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = res
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        driver.abort();
        let cut = &body[..body.len().min(BODY_LIMIT)];
        Ok(Answer {
            status,
            headers,
            body: String::from_utf8_lossy(cut).into_owned(),
        })
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "no answer within {}",
            humantime::format_duration(timeout)
        )),
    }
}

/// GET a URL (http only) within `timeout`: status and body (cut to [`BODY_LIMIT`]).
pub async fn http_get(url: &str, timeout: Duration) -> Result<(u16, String), String> {
    get(url, timeout).await.map(|a| (a.status, a.body))
}

/// Does one answer satisfy the check?
fn judge(
    check: &HttpCheck,
    name: &str,
    status: u16,
    body: String,
    release: &str,
) -> Result<(), Failure> {
    if status != check.status {
        return Err(Failure {
            check: name.to_string(),
            detail: format!("status {status}, expected {}", check.status),
            status: Some(status),
            body: Some(body),
        });
    }
    let want = check
        .body_contains
        .as_ref()
        .map(|t| t.render_with(&|k| (k == "release").then(|| release.to_string())));
    if let Some(want) = want
        && !body.contains(want.as_str())
    {
        return Err(Failure {
            check: name.to_string(),
            detail: format!("status {status}, but the body does not contain `{want}`"),
            status: Some(status),
            body: Some(body),
        });
    }
    Ok(())
}

/// Run one HTTP check against the rendered URL, for `release`. With a 5xx-rate limit, the
/// round sends its samples and fails when the share of 5xx answers passes the limit; the other
/// answers must satisfy the check as usual. No answer is always a failure.
pub async fn http(check: &HttpCheck, url: &str, release: &str) -> Result<(), Failure> {
    let name = format!("GET {url}");
    let no_answer = |detail| Failure {
        check: name.clone(),
        detail,
        status: None,
        body: None,
    };
    let Some((samples, max)) = check.max_5xx_rate else {
        let (status, body) = http_get(url, check.timeout).await.map_err(no_answer)?;
        return judge(check, &name, status, body, release);
    };
    let mut errors = 0u32;
    let mut first: Option<(u16, String)> = None;
    for _ in 0..samples {
        let (status, body) = http_get(url, check.timeout).await.map_err(no_answer)?;
        if status >= 500 {
            errors += 1;
            first.get_or_insert((status, body));
        } else {
            judge(check, &name, status, body, release)?;
        }
    }
    let rate = f64::from(errors) / f64::from(samples);
    if rate > max {
        let (status, body) = first.unzip();
        return Err(Failure {
            check: format!("{name} (5xx rate)"),
            detail: format!(
                "{errors} of {samples} answers were 5xx ({:.0}%, limit {:.0}%)",
                rate * 100.0,
                max * 100.0
            ),
            status,
            body,
        });
    }
    Ok(())
}

/// The schema gate: is the database ready for a release built for these migrations?
pub async fn schema(
    db: &mut dyn Driver,
    set: &MigrationSet,
    settings: &tidemark::engine::Settings,
    require: Require,
) -> Result<(), Failure> {
    let what = match require {
        Require::Latest => "latest".to_string(),
        Require::Version(v) => v.to_string(),
    };
    let check = format!("schema gate (check --require {what})");
    match gate::check(db, set, settings, gate::Options::new(require)).await {
        Ok(r) if r.ok => Ok(()),
        Ok(r) => Err(Failure {
            check,
            detail: r.reasons.join("; "),
            status: None,
            body: None,
        }),
        Err(e) => Err(Failure {
            check,
            detail: format!("could not check the database: {e}"),
            status: None,
            body: None,
        }),
    }
}
