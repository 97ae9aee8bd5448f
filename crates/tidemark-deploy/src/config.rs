//! `deploy.toml`, beside `tidemark.toml`. Every key is documented in docs/deploy.md; an unknown
//! key, a bad value or an unknown `{placeholder}` is an error naming the key and the file
//! (exit 2), found before anything runs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tidemark::{Error, Location, Result};

use crate::template::{self, Template};

pub const FILE_NAME: &str = "deploy.toml";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    app: String,
    strategy: Option<String>,
    state_dir: Option<PathBuf>,
    release: RawRelease,
    command: Option<RawCommand>,
    compose: Option<RawCompose>,
    nginx: Option<RawNginx>,
    #[serde(default)]
    preflight: RawPreflight,
    #[serde(default)]
    verify: RawVerify,
    #[serde(default)]
    rollback: RawRollback,
    #[serde(default)]
    backup: RawBackup,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRelease {
    dir: String,
    env_file: Option<String>,
    port: Option<u16>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommand {
    start: String,
    stop: Option<String>,
    timeout: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCompose {
    file: PathBuf,
    service: String,
    project: Option<String>,
    image: Option<String>,
    timeout: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNginx {
    start: String,
    stop: String,
    timeout: Option<String>,
    include: PathBuf,
    url: String,
    ports: Option<String>,
    binary: Option<String>,
    prefix: Option<PathBuf>,
    conf: Option<PathBuf>,
    reload: Option<String>,
    drain: Option<String>,
    proof_timeout: Option<String>,
    steps: Option<Vec<u32>>,
    cohort_cookie: Option<String>,
    access_log: Option<PathBuf>,
    max_5xx_rate: Option<f64>,
    min_requests: Option<u32>,
    inconclusive: Option<String>,
    max_extensions: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPreflight {
    #[serde(default)]
    artifacts: Vec<String>,
    artifact_command: Option<String>,
    production_file: Option<PathBuf>,
    lint: Option<bool>,
    cron: Option<RawCron>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCron {
    file: Option<PathBuf>,
    entries: Vec<String>,
    missing: Option<String>,
    install: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVerify {
    window: Option<String>,
    interval: Option<String>,
    failure_threshold: Option<u32>,
    schema: Option<bool>,
    #[serde(default)]
    http: Vec<RawHttp>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    url: String,
    status: Option<u16>,
    body_contains: Option<String>,
    timeout: Option<String>,
    samples: Option<u32>,
    max_5xx_rate: Option<f64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRollback {
    database: Option<String>,
    allow_data_loss: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackup {
    enabled: Option<bool>,
}

/// What to do with the database when a release is rolled back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DbPolicy {
    /// Keep an expand-only schema, else down scripts, else the backup (when data loss is
    /// allowed), else stop and say what a person must decide.
    Auto,
    /// Revert this deploy's migrations with their down scripts.
    Down,
    /// Restore the pre-deploy backup.
    Restore,
    /// Leave the schema as it is (expand-only changes the old release can run on).
    Keep,
}

impl DbPolicy {
    pub fn name(self) -> &'static str {
        match self {
            DbPolicy::Auto => "auto",
            DbPolicy::Down => "down",
            DbPolicy::Restore => "restore",
            DbPolicy::Keep => "keep",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone)]
pub enum StrategyConfig {
    Command {
        start: Template,
        stop: Option<Template>,
        timeout: Duration,
    },
    Compose {
        file: PathBuf,
        service: String,
        project: Option<String>,
        image: Option<Template>,
        timeout: Duration,
    },
    Nginx(Box<NginxConfig>),
}

impl StrategyConfig {
    pub fn name(&self) -> &'static str {
        match self {
            StrategyConfig::Command { .. } => "command",
            StrategyConfig::Compose { .. } => "compose",
            StrategyConfig::Nginx(_) => "nginx",
        }
    }

    /// Longest a start/stop (or nginx) command may run.
    pub fn timeout(&self) -> Duration {
        match self {
            StrategyConfig::Command { timeout, .. } | StrategyConfig::Compose { timeout, .. } => {
                *timeout
            }
            StrategyConfig::Nginx(n) => n.timeout,
        }
    }
}

/// What a canary step does when it saw too few requests to judge the new release's 5xx rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inconclusive {
    /// Fail the step (and roll back).
    Fail,
    /// Hold the step for another window, at most this many times, then fail.
    Extend(u32),
}

/// `[nginx]`: blue-green and canary releases behind a local nginx.
#[derive(Debug, Clone)]
pub struct NginxConfig {
    /// Starts a release on `{port}` (a free port of `ports`), in the background.
    pub start: Template,
    /// Stops a release; needed, since the old release is stopped after the drain.
    pub stop: Template,
    pub timeout: Duration,
    /// The file tidemark writes (upstreams, `split_clients`, `log_format`), included in nginx's
    /// `http` block.
    pub include: PathBuf,
    /// An http:// URL through nginx, used to prove that a switch applied.
    pub url: String,
    /// The loopback ports releases are started on (inclusive).
    pub ports: (u16, u16),
    /// The nginx binary (or a wrapper), with `-p`/`-c` when set.
    pub binary: String,
    pub prefix: Option<PathBuf>,
    pub conf: Option<PathBuf>,
    /// A shell command that reloads nginx (e.g. `systemctl reload nginx`); default
    /// `BINARY [-p PREFIX] [-c CONF] -s reload`.
    pub reload: Option<String>,
    /// How long the replaced release keeps running after the switch, for the requests in
    /// flight through nginx's old workers.
    pub drain: Duration,
    /// How long the switch may take to show through nginx.
    pub proof_timeout: Duration,
    /// Canary steps: the share (percent) of clients sent to the new release, increasing, the
    /// last one 100. `[100]` is a plain blue-green switch.
    pub steps: Vec<u8>,
    /// Clients are put in cohorts by this cookie (by their address when they have none).
    pub cohort_cookie: Option<String>,
    /// The access log written with tidemark's `log_format` (upstream address and status).
    pub access_log: Option<PathBuf>,
    /// The 5xx-rate limit per step, from upstream statuses in the access log.
    pub max_5xx_rate: Option<f64>,
    /// Fewer upstream answers than this in a step is inconclusive, never a pass.
    pub min_requests: u32,
    pub inconclusive: Inconclusive,
}

#[derive(Debug, Clone)]
pub struct CronConfig {
    /// The crontab file to look in; `None`: the user's crontab (`crontab -l`).
    pub file: Option<PathBuf>,
    pub entries: Vec<String>,
    pub missing: Severity,
    /// Install missing entries (in a managed block) when the release is promoted.
    pub install: bool,
}

#[derive(Debug, Clone)]
pub struct HttpCheck {
    pub url: Template,
    pub status: u16,
    /// May contain `{release}`: a body that names the release tells the new release from an
    /// old process still answering on the port.
    pub body_contains: Option<Template>,
    pub timeout: Duration,
    /// With a 5xx-rate limit: requests per round, and the largest share of 5xx answers
    /// (0.0–1.0) a round may have.
    pub max_5xx_rate: Option<(u32, f64)>,
}

#[derive(Debug, Clone)]
pub struct DeployConfig {
    /// The file it was read from.
    pub path: PathBuf,
    pub app: String,
    pub state_dir: PathBuf,
    /// Where each release lives; may contain `{release}`.
    pub release_dir: Template,
    /// May contain `{dir}` and `{release}`.
    pub env_file: Option<Template>,
    pub port: Option<u16>,
    pub strategy: StrategyConfig,
    pub artifacts: Vec<String>,
    /// Checks one artifact (exit 0: present), e.g. inside an image:
    /// `docker run --rm {image} test -e {artifact}`. Without it, artifacts are paths in the
    /// release directory.
    pub artifact_command: Option<Template>,
    pub production_file: Option<PathBuf>,
    pub lint: bool,
    pub cron: Option<CronConfig>,
    pub window: Duration,
    pub interval: Duration,
    pub failure_threshold: u32,
    pub schema_gate: bool,
    pub http: Vec<HttpCheck>,
    pub db_policy: DbPolicy,
    pub allow_data_loss: bool,
    pub backup: bool,
}

fn usage(path: &Path, key: &str, msg: impl std::fmt::Display) -> Error {
    Error::bad_input(Location::file(path), format!("{key}: {msg}"))
}

fn duration(path: &Path, key: &str, v: Option<&str>, default: Duration) -> Result<Duration> {
    match v {
        None => Ok(default),
        Some(s) => humantime::parse_duration(s.trim()).map_err(|e| {
            usage(
                path,
                key,
                format!("`{s}` is not a duration ({e}); write e.g. 30s, 2m or 500ms"),
            )
        }),
    }
}

/// Parses a template for a key, with the placeholders it allows.
type TemplateParser<'a> = dyn Fn(&str, &str, &[&str]) -> Result<Template> + 'a;

fn nginx(
    path: &Path,
    n: &RawNginx,
    resolve: &dyn Fn(&Path) -> PathBuf,
    t: &TemplateParser<'_>,
) -> Result<NginxConfig> {
    let ports = match n.ports.as_deref().unwrap_or("9000-9099").split_once('-') {
        Some((a, b)) => match (a.trim().parse::<u16>(), b.trim().parse::<u16>()) {
            (Ok(a), Ok(b)) if a > 0 && a < b => (a, b),
            _ => None.ok_or_else(|| {
                usage(
                    path,
                    "nginx.ports",
                    "expected a range of at least two ports, e.g. \"9000-9099\"",
                )
            })?,
        },
        None => {
            return Err(usage(
                path,
                "nginx.ports",
                "expected a range of at least two ports, e.g. \"9000-9099\"",
            ));
        }
    };
    match url::Url::parse(&n.url) {
        Ok(u) if u.scheme() == "http" && u.host_str().is_some() => {}
        _ => {
            return Err(usage(
                path,
                "nginx.url",
                format!(
                    "`{}` is not an http:// URL through nginx (e.g. http://127.0.0.1/)",
                    n.url
                ),
            ));
        }
    }
    let steps: Vec<u32> = n.steps.clone().unwrap_or_else(|| vec![100]);
    if steps.is_empty()
        || steps.last() != Some(&100)
        || steps.windows(2).any(|w| w[0] >= w[1])
        || steps[0] == 0
    {
        return Err(usage(
            path,
            "nginx.steps",
            format!(
                "{steps:?}: percentages from 1 to 100, increasing, ending with 100 (e.g. [10, 50, 100])"
            ),
        ));
    }
    if let Some(c) = &n.cohort_cookie
        && (c.is_empty() || !c.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
    {
        return Err(usage(
            path,
            "nginx.cohort_cookie",
            format!("`{c}` is not a cookie name nginx can read (letters, digits, `_`)"),
        ));
    }
    let max_5xx_rate = match n.max_5xx_rate {
        Some(r) if !(0.0..1.0).contains(&r) => {
            return Err(usage(
                path,
                "nginx.max_5xx_rate",
                format!("{r} is not a share from 0.0 up to (not including) 1.0"),
            ));
        }
        Some(r) => {
            if n.access_log.is_none() {
                return Err(usage(
                    path,
                    "nginx.max_5xx_rate",
                    "needs nginx.access_log (the log written with tidemark's log_format)",
                ));
            }
            Some(r)
        }
        None => None,
    };
    let inconclusive = match (
        n.inconclusive.as_deref().unwrap_or("fail"),
        n.max_extensions,
    ) {
        ("fail", None) => Inconclusive::Fail,
        ("extend", m) => Inconclusive::Extend(m.unwrap_or(3).max(1)),
        ("fail", Some(_)) => {
            return Err(usage(
                path,
                "nginx.max_extensions",
                "only means something with inconclusive = \"extend\"",
            ));
        }
        (other, _) => {
            return Err(usage(
                path,
                "nginx.inconclusive",
                format!("`{other}` (expected \"fail\" or \"extend\")"),
            ));
        }
    };
    let min_requests = n.min_requests.unwrap_or(20);
    if min_requests == 0 {
        return Err(usage(
            path,
            "nginx.min_requests",
            "must be at least 1: a step with no requests is never a pass",
        ));
    }
    let binary = n.binary.clone().unwrap_or_else(|| "nginx".into());
    Ok(NginxConfig {
        start: t("nginx.start", &n.start, template::COMMAND)?,
        stop: t("nginx.stop", &n.stop, template::COMMAND)?,
        timeout: duration(
            path,
            "nginx.timeout",
            n.timeout.as_deref(),
            Duration::from_secs(60),
        )?,
        include: resolve(&n.include),
        url: n.url.clone(),
        ports,
        // A path with a slash is relative to the file; a bare name is looked up on PATH.
        binary: if binary.contains('/') {
            resolve(Path::new(&binary)).display().to_string()
        } else {
            binary
        },
        prefix: n.prefix.as_deref().map(resolve),
        conf: n.conf.as_deref().map(resolve),
        reload: n.reload.clone(),
        drain: duration(
            path,
            "nginx.drain",
            n.drain.as_deref(),
            Duration::from_secs(5),
        )?,
        proof_timeout: duration(
            path,
            "nginx.proof_timeout",
            n.proof_timeout.as_deref(),
            Duration::from_secs(5),
        )?,
        steps: steps.iter().map(|&s| s.min(100) as u8).collect(),
        cohort_cookie: n.cohort_cookie.clone(),
        access_log: n.access_log.as_deref().map(resolve),
        max_5xx_rate,
        min_requests,
        inconclusive,
    })
}

impl DeployConfig {
    /// Read and check `deploy.toml`. Relative paths in it are relative to its directory.
    pub fn load(path: &Path) -> Result<DeployConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<DeployConfig> {
        let raw: Raw = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| text[..s.start].matches('\n').count() + 1);
            Error::bad_input(
                Location {
                    path: path.to_path_buf(),
                    line,
                },
                e.message().to_string(),
            )
        })?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        let base = std::path::absolute(&base).unwrap_or(base);
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        if raw.app.trim().is_empty()
            || !raw
                .app
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return Err(usage(
                path,
                "app",
                format!(
                    "`{}` is not an app name (letters, digits, `-`, `_`, `.`)",
                    raw.app
                ),
            ));
        }
        let t = |key: &str, text: &str, allowed: &[&str]| {
            Template::parse(text, allowed).map_err(|e| usage(path, key, e))
        };
        let release_dir = t("release.dir", &raw.release.dir, &["release"])?;
        let env_file = raw
            .release
            .env_file
            .as_deref()
            .map(|e| t("release.env_file", e, &["dir", "release"]))
            .transpose()?;
        let strategy_name = raw.strategy.as_deref().unwrap_or("command");
        let strategy = match strategy_name {
            "command" => {
                let c = raw.command.as_ref().ok_or_else(|| {
                    usage(
                        path,
                        "command",
                        "strategy = \"command\" needs a [command] table with `start`",
                    )
                })?;
                if raw.compose.is_some() || raw.nginx.is_some() {
                    return Err(usage(
                        path,
                        if raw.compose.is_some() {
                            "compose"
                        } else {
                            "nginx"
                        },
                        "a [compose] or [nginx] table with strategy = \"command\"; remove it",
                    ));
                }
                StrategyConfig::Command {
                    start: t("command.start", &c.start, template::COMMAND)?,
                    stop: c
                        .stop
                        .as_deref()
                        .map(|s| t("command.stop", s, template::COMMAND))
                        .transpose()?,
                    timeout: duration(
                        path,
                        "command.timeout",
                        c.timeout.as_deref(),
                        Duration::from_secs(60),
                    )?,
                }
            }
            "compose" => {
                let c = raw.compose.as_ref().ok_or_else(|| {
                    usage(
                        path,
                        "compose",
                        "strategy = \"compose\" needs a [compose] table with `file` and `service`",
                    )
                })?;
                if raw.command.is_some() || raw.nginx.is_some() {
                    return Err(usage(
                        path,
                        if raw.command.is_some() {
                            "command"
                        } else {
                            "nginx"
                        },
                        "a [command] or [nginx] table with strategy = \"compose\"; remove it",
                    ));
                }
                StrategyConfig::Compose {
                    file: resolve(&c.file),
                    service: c.service.clone(),
                    project: c.project.clone(),
                    image: c
                        .image
                        .as_deref()
                        .map(|s| t("compose.image", s, &["release"]))
                        .transpose()?,
                    timeout: duration(
                        path,
                        "compose.timeout",
                        c.timeout.as_deref(),
                        Duration::from_secs(300),
                    )?,
                }
            }
            "nginx" => {
                let n = raw.nginx.as_ref().ok_or_else(|| {
                    usage(
                        path,
                        "nginx",
                        "strategy = \"nginx\" needs an [nginx] table with `start`, `stop`, `include` and `url`",
                    )
                })?;
                if raw.command.is_some() || raw.compose.is_some() {
                    return Err(usage(
                        path,
                        if raw.command.is_some() {
                            "command"
                        } else {
                            "compose"
                        },
                        "a [command] or [compose] table with strategy = \"nginx\"; remove it (the [nginx] table has start and stop)",
                    ));
                }
                if raw.release.port.is_some() {
                    return Err(usage(
                        path,
                        "release.port",
                        "the nginx strategy picks each release's port from nginx.ports; remove release.port",
                    ));
                }
                StrategyConfig::Nginx(Box::new(nginx(path, n, &resolve, &t)?))
            }
            other => {
                return Err(usage(
                    path,
                    "strategy",
                    format!("unknown strategy `{other}` (expected command, compose or nginx)"),
                ));
            }
        };
        let cron = match &raw.preflight.cron {
            None => None,
            Some(c) => Some(CronConfig {
                file: c.file.as_deref().map(resolve),
                entries: c.entries.clone(),
                install: c.install.unwrap_or(false),
                missing: match c.missing.as_deref().unwrap_or("error") {
                    "error" => Severity::Error,
                    "warning" => Severity::Warning,
                    other => {
                        return Err(usage(
                            path,
                            "preflight.cron.missing",
                            format!("`{other}` (expected \"error\" or \"warning\")"),
                        ));
                    }
                },
            }),
        };
        let mut http = Vec::new();
        for (i, h) in raw.verify.http.iter().enumerate() {
            let key = format!("verify.http[{i}]");
            let url = t(&format!("{key}.url"), &h.url, &["port"])?;
            let probe = url.render_with(&|_| Some("1".into()));
            match url::Url::parse(&probe) {
                Ok(u) if u.scheme() == "http" && u.host_str().is_some() => {}
                Ok(u) if u.scheme() == "https" => {
                    return Err(usage(
                        path,
                        &format!("{key}.url"),
                        "https checks are not supported yet: check the application on its http port (e.g. http://127.0.0.1:{port}/health)",
                    ));
                }
                _ => {
                    return Err(usage(
                        path,
                        &format!("{key}.url"),
                        format!("`{}` is not an http:// URL", h.url),
                    ));
                }
            }
            if h.url.contains("{port}")
                && raw.release.port.is_none()
                && !matches!(strategy, StrategyConfig::Nginx(_))
            {
                return Err(usage(
                    path,
                    &format!("{key}.url"),
                    "uses {port} but release.port is not set",
                ));
            }
            let status = h.status.unwrap_or(200);
            if !(100..=599).contains(&status) {
                return Err(usage(
                    path,
                    &format!("{key}.status"),
                    format!("{status} is not an HTTP status"),
                ));
            }
            let max_5xx_rate = match (h.max_5xx_rate, h.samples) {
                (None, None) => None,
                (None, Some(_)) => {
                    return Err(usage(
                        path,
                        &format!("{key}.samples"),
                        "only means something with max_5xx_rate",
                    ));
                }
                (Some(r), n) => {
                    if !(0.0..1.0).contains(&r) {
                        return Err(usage(
                            path,
                            &format!("{key}.max_5xx_rate"),
                            format!("{r} is not a share from 0.0 up to (not including) 1.0"),
                        ));
                    }
                    let n = n.unwrap_or(20);
                    if n == 0 || n > 1000 {
                        return Err(usage(
                            path,
                            &format!("{key}.samples"),
                            "must be from 1 to 1000",
                        ));
                    }
                    Some((n, r))
                }
            };
            http.push(HttpCheck {
                max_5xx_rate,
                url,
                status,
                body_contains: h
                    .body_contains
                    .as_deref()
                    .map(|b| t(&format!("{key}.body_contains"), b, &["release"]))
                    .transpose()?,
                timeout: duration(
                    path,
                    &format!("{key}.timeout"),
                    h.timeout.as_deref(),
                    Duration::from_secs(2),
                )?,
            });
        }
        let schema_gate = raw.verify.schema.unwrap_or(true);
        if http.is_empty() && !schema_gate {
            return Err(usage(
                path,
                "verify",
                "nothing to verify: add a [[verify.http]] check or set verify.schema = true",
            ));
        }
        let window = duration(
            path,
            "verify.window",
            raw.verify.window.as_deref(),
            Duration::from_secs(10),
        )?;
        let interval = duration(
            path,
            "verify.interval",
            raw.verify.interval.as_deref(),
            Duration::from_secs(1),
        )?;
        if interval.is_zero() || interval > window {
            return Err(usage(
                path,
                "verify.interval",
                "must be more than zero and at most verify.window",
            ));
        }
        let failure_threshold = raw.verify.failure_threshold.unwrap_or(3);
        if failure_threshold == 0 {
            return Err(usage(
                path,
                "verify.failure_threshold",
                "must be at least 1",
            ));
        }
        let db_policy = match raw.rollback.database.as_deref().unwrap_or("auto") {
            "auto" => DbPolicy::Auto,
            "down" => DbPolicy::Down,
            "restore" => DbPolicy::Restore,
            "keep" => DbPolicy::Keep,
            other => {
                return Err(usage(
                    path,
                    "rollback.database",
                    format!("`{other}` (expected auto, down, restore or keep)"),
                ));
            }
        };
        let backup = raw.backup.enabled.unwrap_or(true);
        if db_policy == DbPolicy::Restore && !backup {
            return Err(usage(
                path,
                "rollback.database",
                "\"restore\" needs the pre-deploy backup, but backup.enabled = false",
            ));
        }
        let artifact_command = raw
            .preflight
            .artifact_command
            .as_deref()
            .map(|c| {
                t(
                    "preflight.artifact_command",
                    c,
                    &["artifact", "image", "dir", "release"],
                )
            })
            .transpose()?;
        let state_dir = resolve(
            raw.state_dir
                .as_deref()
                .unwrap_or(Path::new(".tidemark/deploy")),
        )
        .join(&raw.app);
        Ok(DeployConfig {
            path: path.to_path_buf(),
            app: raw.app,
            state_dir,
            release_dir: release_dir.relative_to(&base),
            env_file,
            port: raw.release.port,
            strategy,
            artifacts: raw.preflight.artifacts,
            artifact_command,
            production_file: raw.preflight.production_file.as_deref().map(resolve),
            lint: raw.preflight.lint.unwrap_or(true),
            cron,
            window,
            interval,
            failure_threshold,
            schema_gate,
            http,
            db_policy,
            allow_data_loss: raw.rollback.allow_data_loss.unwrap_or(false),
            backup,
        })
    }

    /// The directory of a release.
    pub fn dir_of(&self, release: &str) -> PathBuf {
        PathBuf::from(
            self.release_dir
                .render_with(&|k| (k == "release").then(|| release.to_string())),
        )
    }

    /// The env file of a release in `dir`.
    pub fn env_file_of(&self, release: &str, dir: &Path) -> Option<PathBuf> {
        self.env_file.as_ref().map(|t| {
            let p = PathBuf::from(t.render_with(&|k| match k {
                "dir" => Some(dir.display().to_string()),
                "release" => Some(release.to_string()),
                _ => None,
            }));
            if p.is_absolute() { p } else { dir.join(p) }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
app = "todo"
[release]
dir = "releases/{release}"
env_file = "{dir}/.env"
port = 8080
[command]
start = "./app --port {port} --env-file {env_file} &"
stop = "kill $(cat {dir}/app.pid)"
[[verify.http]]
url = "http://127.0.0.1:{port}/health"
body_contains = "ok"
"#;

    fn parse(text: &str) -> Result<DeployConfig> {
        DeployConfig::parse(Path::new("/srv/todo/deploy.toml"), text)
    }

    #[test]
    fn a_good_file() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.app, "todo");
        assert_eq!(c.dir_of("v2"), PathBuf::from("/srv/todo/releases/v2"));
        assert_eq!(
            c.env_file_of("v2", &c.dir_of("v2")),
            Some(PathBuf::from("/srv/todo/releases/v2/.env"))
        );
        assert_eq!(
            c.state_dir,
            PathBuf::from("/srv/todo/.tidemark/deploy/todo")
        );
        assert_eq!(c.db_policy, DbPolicy::Auto);
        assert_eq!(c.failure_threshold, 3);
    }

    #[test]
    fn errors_name_the_key_and_the_file() {
        let e = parse(&GOOD.replace("port = 8080", "port = 8080\nprot = 1"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("deploy.toml") && e.contains("prot"), "{e}");
        let e = parse(&GOOD.replace("{env_file}", "{envfile}"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("command.start") && e.contains("{envfile}") && e.contains("deploy.toml"),
            "{e}"
        );
        let e = parse(&GOOD.replace("[command]", "[verify]\nwindow = \"soon\"\n[command]"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("verify.window") && e.contains("soon"), "{e}");
        let e = parse(&GOOD.replace("app = \"todo\"", "app = \"todo\"\nstrategy = \"k8s\""))
            .unwrap_err();
        assert_eq!(e.class(), tidemark::ExitClass::Usage);
        assert!(e.to_string().contains("k8s"));
        let e = parse(&GOOD.replace("http://", "https://"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("verify.http[0].url"), "{e}");
    }

    #[test]
    fn the_examples_in_the_docs_parse() {
        let readme = include_str!("../../../README.md");
        let at = readme
            .find("With docker compose")
            .expect("README compose example");
        let block = &readme[at..];
        let start = block.find("```toml\n").unwrap() + 8;
        let end = start + block[start..].find("```").unwrap();
        let c = parse(&block[start..end]).unwrap();
        assert_eq!(c.strategy.name(), "compose");
        assert_eq!(c.cron.unwrap().entries.len(), 1);
        // The README's compose example is deploy/compose/deploy.toml, word for word.
        assert_eq!(
            &block[start..end],
            include_str!("../../../deploy/compose/deploy.toml")
                .split_once("\napp = ")
                .map(|(_, rest)| format!("app = {rest}"))
                .unwrap()
        );
        let example = include_str!("../../../examples/deploy/deploy.toml");
        let c = parse(example).unwrap();
        assert_eq!(c.db_policy, DbPolicy::Down);
        // The nginx examples: the README's and examples/deploy-nginx.
        let at = readme
            .find("strategy = \"nginx\"")
            .expect("README nginx example");
        let start = readme[..at].rfind("```toml\n").unwrap() + 8;
        let end = start + readme[start..].find("```").unwrap();
        let c = parse(&readme[start..end]).unwrap();
        let StrategyConfig::Nginx(n) = &c.strategy else {
            panic!("not nginx")
        };
        assert_eq!(n.steps, [10, 50, 100]);
        assert_eq!(n.inconclusive, Inconclusive::Extend(3));
        let example = include_str!("../../../examples/deploy-nginx/deploy.toml");
        let c = parse(example).unwrap();
        let StrategyConfig::Nginx(n) = &c.strategy else {
            panic!("not nginx")
        };
        assert_eq!(n.ports, (8940, 8949));
        assert_eq!(
            n.include,
            PathBuf::from("/srv/todo/nginx/tidemark-shop.conf")
        );
    }

    const NGINX: &str = r#"
app = "shop"
strategy = "nginx"
[release]
dir = "releases/{release}"
[nginx]
start = "./app --port {port} &"
stop = "kill $(cat {dir}/app.pid)"
include = "nginx/shop.conf"
url = "http://127.0.0.1:8080/"
[[verify.http]]
url = "http://127.0.0.1:{port}/health"
"#;

    #[test]
    fn nginx_keys_are_checked() {
        let c = parse(NGINX).unwrap();
        let StrategyConfig::Nginx(n) = &c.strategy else {
            panic!("not nginx")
        };
        assert_eq!(n.steps, [100]);
        assert_eq!(n.ports, (9000, 9099));
        assert_eq!(n.min_requests, 20);
        assert_eq!(n.inconclusive, Inconclusive::Fail);
        assert_eq!(n.binary, "nginx");
        let bad = |extra: &str, key: &str| {
            let e = parse(&NGINX.replace("[[verify.http]]", &format!("{extra}\n[[verify.http]]")))
                .unwrap_err();
            assert_eq!(e.class(), tidemark::ExitClass::Usage, "{e}");
            let e = e.to_string();
            assert!(e.contains(key) && e.contains("deploy.toml"), "{key}: {e}");
        };
        bad("steps = [50, 10, 100]", "nginx.steps");
        bad("steps = [10, 50]", "nginx.steps");
        bad("steps = [0, 100]", "nginx.steps");
        bad("ports = \"9000\"", "nginx.ports");
        bad("ports = \"9010-9000\"", "nginx.ports");
        bad("max_5xx_rate = 0.1", "nginx.max_5xx_rate");
        bad(
            "access_log = \"x.log\"\nmax_5xx_rate = 1.5",
            "nginx.max_5xx_rate",
        );
        bad("inconclusive = \"pass\"", "nginx.inconclusive");
        bad("max_extensions = 2", "nginx.max_extensions");
        bad("min_requests = 0", "nginx.min_requests");
        bad("cohort_cookie = \"a-b\"", "nginx.cohort_cookie");
        bad("drain = \"soon\"", "nginx.drain");
        bad("colour = 1", "colour");
        let e = parse(&NGINX.replace("url = \"http://127.0.0.1:8080/\"", "url = \"https://x/\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("nginx.url"), "{e}");
        let e = parse(&NGINX.replace(
            "dir = \"releases/{release}\"",
            "dir = \"releases/{release}\"\nport = 8080",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("release.port") && e.contains("nginx.ports"),
            "{e}"
        );
        let e = parse(&NGINX.replace("stop = ", "stop_ = "))
            .unwrap_err()
            .to_string();
        assert!(e.contains("stop"), "{e}");
        let e = parse(&NGINX.replace("[nginx]", "[command]\nstart = \"x\"\n[nginx]"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("command"), "{e}");
    }
}
