//! The `nginx` strategy: blue-green and canary releases behind a local nginx.
//!
//! The new release starts on a free loopback port beside the old one. tidemark owns one file,
//! `nginx.include`, included in nginx's `http` block: an upstream per running release (always
//! `127.0.0.1:PORT`, never a hostname, which nginx would resolve only once), a `split_clients`
//! that puts each client (by cookie, else address) in a cohort, and tidemark's `log_format`.
//! A switch writes that file atomically (temp file + rename), runs `nginx -t` (and puts the
//! old file back when it fails, so nothing is switched), reloads, and then **proves** the
//! switch through nginx: a reload that fails to apply (a port nginx cannot bind, a signal sent
//! to another master) leaves the old configuration serving with nothing but an error-log line,
//! so the switch only counts once a response through nginx carries the new config serial.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::config::NginxConfig;
use crate::strategy::{Action, ReleaseStrategy, Shell, Target};

/// Where traffic goes: all of it to `new`, or `pct` percent of the clients to `new` and the
/// rest to `old`.
#[derive(Debug, Clone)]
pub struct Routing {
    pub new: (String, u16),
    pub old: Option<(String, u16)>,
    pub pct: u8,
}

pub struct NginxStrategy {
    pub cfg: NginxConfig,
    /// The app name as nginx identifiers allow it (`shop-api` → `shop_api`).
    key: String,
    app: String,
    /// Releases this process knows to be running (started by it, or kept by a deploy).
    running: Mutex<Vec<String>>,
    serial: std::sync::atomic::AtomicU32,
    /// The config serial proven live through nginx that sends all traffic to one release.
    /// A switch back to that release also counts as done when nginx still serves this
    /// serial: after a reload that did not apply, the old configuration is what serves.
    live_all_to: Mutex<Option<(String, String)>>,
}

/// The nginx identifier for an app name.
pub fn key_of(app: &str) -> String {
    app.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

impl NginxStrategy {
    pub fn new(app: &str, cfg: NginxConfig) -> NginxStrategy {
        NginxStrategy {
            key: key_of(app),
            app: app.to_string(),
            cfg,
            running: Mutex::new(Vec::new()),
            serial: std::sync::atomic::AtomicU32::new(0),
            live_all_to: Mutex::new(None),
        }
    }

    fn var(&self, what: &str) -> String {
        format!("tidemark_{}_{what}", self.key)
    }

    /// The `log_format` name tidemark installs; the server block logs with it.
    pub fn log_format(&self) -> String {
        format!("tidemark_{}", self.key)
    }

    /// The variable `proxy_pass` uses (`proxy_pass http://$tidemark_APP_upstream;`).
    pub fn upstream_var(&self) -> String {
        self.var("upstream")
    }

    fn mark_running(&self, release: &str, running: bool) {
        if let Ok(mut r) = self.running.lock() {
            r.retain(|x| x != release);
            if running {
                r.push(release.to_string());
            }
        }
    }

    fn is_running(&self, release: &str) -> bool {
        self.running
            .lock()
            .map(|r| r.iter().any(|x| x == release))
            .unwrap_or(false)
    }

    /// The include file's text for a routing, with a serial that proves it applied.
    pub fn render(&self, r: &Routing, serial: &str) -> String {
        let up = |port: u16| format!("tidemark_{}_p{port}", self.key);
        let mut s = format!(
            "# Written by tidemark for app `{}`: every deploy rewrites it (temp file + rename).\n\
             # Include it in nginx's http block; the server block uses $tidemark_{k}_upstream,\n\
             # the X-Tidemark-* headers and the {lf} log format (docs/deploy.md, nginx strategy).\n\
             # serial {serial}\n\
             log_format {lf} '$msec|$upstream_addr|$upstream_status|$status|${rel}';\n",
            self.app,
            k = self.key,
            lf = self.log_format(),
            rel = self.var("release"),
        );
        let mut releases = vec![&r.new];
        if let Some(o) = &r.old
            && r.pct < 100
        {
            releases.push(o);
        }
        for (id, port) in &releases {
            s.push_str(&format!(
                "upstream {} {{ server 127.0.0.1:{port} max_fails=0; }}  # release {id}\n",
                up(*port)
            ));
        }
        // The cohort key: the cookie when the client has one, else its address.
        let cohort = self.var("cohort");
        match &self.cfg.cohort_cookie {
            Some(c) => s.push_str(&format!(
                "map $cookie_{c} ${cohort} {{ \"\" $remote_addr; default $cookie_{c}; }}\n"
            )),
            None => s.push_str(&format!(
                "map $remote_addr ${cohort} {{ default $remote_addr; }}\n"
            )),
        }
        // split_clients hands out the first percentages first: the 10 % cohort stays inside
        // the 50 % one, so a client moved to the new release is not moved back as it grows.
        s.push_str(&format!(
            "split_clients \"${cohort}\" ${} {{\n",
            self.upstream_var()
        ));
        match &r.old {
            Some((_, old_port)) if r.pct < 100 => {
                s.push_str(&format!("    {}% {};\n", r.pct, up(r.new.1)));
                s.push_str(&format!("    * {};\n", up(*old_port)));
            }
            _ => s.push_str(&format!("    * {};\n", up(r.new.1))),
        }
        s.push_str("}\n");
        s.push_str(&format!(
            "map ${} ${} {{\n",
            self.upstream_var(),
            self.var("release")
        ));
        for (id, port) in &releases {
            s.push_str(&format!("    {} \"{id}\";\n", up(*port)));
        }
        s.push_str("}\n");
        s.push_str(&format!(
            "map $host ${} {{ default \"{serial}\"; }}\n",
            self.var("config")
        ));
        s
    }

    fn next_serial(&self, release: &str) -> String {
        let n = self
            .serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let t = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
        format!("{release}-{n}-{:x}", (t / 1000) as u64)
    }

    fn base_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(p) = &self.cfg.prefix {
            a.push("-p".to_string());
            a.push(format!("{}/", p.display()));
        }
        if let Some(c) = &self.cfg.conf {
            a.push("-c".to_string());
            a.push(c.display().to_string());
        }
        a
    }

    /// Run the nginx binary with `-p`/`-c` and `args`: its combined output, or an error that
    /// carries it.
    async fn nginx(&self, args: &[&str]) -> Result<String, String> {
        let mut c = tokio::process::Command::new(&self.cfg.binary);
        c.args(self.base_args())
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let shown = format!(
            "{} {} {}",
            self.cfg.binary,
            self.base_args().join(" "),
            args.join(" ")
        )
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
        let out = tokio::time::timeout(self.cfg.timeout, c.output())
            .await
            .map_err(|_| format!("`{shown}` did not finish in time"))?
            .map_err(|e| format!("could not run `{shown}`: {e}"))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(text)
        } else {
            let tail: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
            let tail = &tail[tail.len().saturating_sub(5)..];
            Err(format!(
                "`{shown}` failed ({}): {}",
                out.status,
                tail.join(" / ")
            ))
        }
    }

    /// `nginx -t`.
    pub async fn test(&self) -> Result<(), String> {
        self.nginx(&["-q", "-t"]).await.map(|_| ())
    }

    /// `nginx -T`: the whole configuration as nginx reads it.
    pub async fn dump(&self) -> Result<String, String> {
        self.nginx(&["-T"]).await
    }

    async fn reload(&self, sh: &Shell) -> Result<(), String> {
        match &self.cfg.reload {
            Some(cmd) => sh.run(cmd, Path::new("."), &[]).await,
            None => self.nginx(&["-s", "reload"]).await.map(|_| ()),
        }
    }

    /// Preflight: nginx runs, its config tests clean, tidemark's include is really included
    /// and used, and a port is free. Problems stop the deploy; warnings do not.
    pub async fn preflight(&self, previous: Option<&Target>) -> (Vec<String>, Vec<String>) {
        let mut problems = Vec::new();
        let mut warnings = Vec::new();
        if !self.cfg.include.exists() {
            // Nothing serves through it yet: an include with a placeholder upstream lets
            // nginx -t pass until the first release is switched in.
            let text = self.render(
                &Routing {
                    new: ("(none)".into(), self.cfg.ports.0),
                    old: None,
                    pct: 100,
                },
                "initial",
            );
            match write_atomic(&self.cfg.include, &text) {
                Ok(()) => warnings.push(format!(
                    "nginx.include {} did not exist: wrote an initial one (no release behind it yet)",
                    self.cfg.include.display()
                )),
                Err(e) => problems.push(format!("nginx.include: {e}")),
            }
        }
        let found = if self.cfg.binary.contains('/') {
            Path::new(&self.cfg.binary).is_file()
        } else {
            std::env::var_os("PATH").is_some_and(|paths| {
                std::env::split_paths(&paths).any(|d| d.join(&self.cfg.binary).is_file())
            })
        };
        if !found {
            problems.push(format!(
                "nginx is not installed here: no `{}` (nginx.binary){}",
                self.cfg.binary,
                if self.cfg.binary.contains('/') {
                    ""
                } else {
                    " on PATH"
                }
            ));
            return (problems, warnings);
        }
        match self.test().await {
            Err(e) => problems.push(format!(
                "nginx's configuration does not test clean before the deploy: {e}"
            )),
            Ok(()) => match self.dump().await {
                Err(e) => problems.push(format!("nginx -T: {e}")),
                Ok(all) => {
                    let inc = self.cfg.include.display().to_string();
                    let canon = self
                        .cfg
                        .include
                        .canonicalize()
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|_| inc.clone());
                    let included = all.lines().any(|l| {
                        l.strip_prefix("# configuration file ")
                            .map(|f| f.trim_end_matches(':'))
                            .is_some_and(|f| f == inc || f == canon)
                    });
                    if !included {
                        problems.push(format!(
                            "nginx does not include {inc} (not in `nginx -T`): add `include {inc};` to the http block"
                        ));
                    } else if !all.contains(&format!("${}", self.upstream_var())) {
                        problems.push(format!(
                            "no server block of nginx uses ${} (`proxy_pass http://${};`): the switch would change nothing",
                            self.upstream_var(),
                            self.upstream_var()
                        ));
                    }
                    if let Some(log) = &self.cfg.access_log {
                        let want = format!("{} {}", log.display(), self.log_format());
                        let same = |p: &str| {
                            // A relative path in nginx's configuration is relative to its prefix.
                            let p = match &self.cfg.prefix {
                                Some(pre) if !p.starts_with('/') => pre.join(p),
                                _ => PathBuf::from(p),
                            };
                            p == *log
                                || p.canonicalize()
                                    .ok()
                                    .zip(log.canonicalize().ok())
                                    .is_some_and(|(a, b)| a == b)
                        };
                        let found = all.lines().any(|l| {
                            let w: Vec<&str> = l
                                .split(|c: char| c.is_whitespace() || c == ';')
                                .filter(|w| !w.is_empty())
                                .collect();
                            w.len() >= 3
                                && w[0] == "access_log"
                                && w[2] == self.log_format()
                                && same(w[1])
                        });
                        if !found {
                            problems.push(format!(
                                "nginx.access_log: no `access_log {want};` in nginx's configuration: the 5xx rate could not be read"
                            ));
                        }
                    }
                }
            },
        }
        let avoid: Vec<u16> = previous.and_then(|p| p.port).into_iter().collect();
        if self.free_port(&avoid).is_none() {
            problems.push(format!(
                "no free port in nginx.ports {}-{}",
                self.cfg.ports.0, self.cfg.ports.1
            ));
        }
        if let Some(w) = previous.and_then(|p| p.port).and_then(memory_warning) {
            warnings.push(w);
        }
        (problems, warnings)
    }

    /// The first port of the range that nothing listens on, other than `avoid`.
    pub fn free_port(&self, avoid: &[u16]) -> Option<u16> {
        (self.cfg.ports.0..=self.cfg.ports.1)
            .filter(|p| !avoid.contains(p))
            .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
    }

    fn vars<'a>(&self, t: &'a Target) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| match k {
            "release" => Some(t.release.clone()),
            "dir" => Some(t.dir.display().to_string()),
            "port" => t.port.map(|p| p.to_string()),
            "env_file" => t.env_file.as_ref().map(|p| p.display().to_string()),
            _ => None,
        }
    }

    /// Start a release on its port (nginx.start).
    pub async fn start(&self, sh: &Shell, t: &Target) -> Result<String, String> {
        let cmd = self.cfg.start.render_shell(&self.vars(t));
        sh.run(&cmd, &t.dir, &crate::strategy::env_of(t))
            .await
            .map_err(|e| format!("starting release {}: {e}", t.release))?;
        self.mark_running(&t.release, true);
        Ok(format!(
            "started release {} on 127.0.0.1:{} (nginx.start)",
            t.release,
            t.port.unwrap_or(0)
        ))
    }

    async fn stop_now(&self, sh: &Shell, t: &Target) -> Result<String, String> {
        let cmd = self.cfg.stop.render_shell(&self.vars(t));
        sh.run(&cmd, &t.dir, &crate::strategy::env_of(t))
            .await
            .map_err(|e| format!("stopping release {}: {e}", t.release))?;
        self.mark_running(&t.release, false);
        Ok(format!("stopped release {} (nginx.stop)", t.release))
    }

    /// Stop a release that no longer gets traffic, after the drain time: requests already
    /// handed to it by nginx's old workers finish first.
    pub async fn drain_and_stop(&self, sh: &Shell, t: &Target) -> Result<String, String> {
        tokio::time::sleep(self.cfg.drain).await;
        let did = self.stop_now(sh, t).await?;
        Ok(format!(
            "{did} after a drain of {}",
            humantime::format_duration(self.cfg.drain)
        ))
    }

    /// Note the config serial nginx serves now, known to send all traffic to `release`
    /// (the promoted release, before a deploy switches anything).
    pub async fn remember_live(&self, release: &str) {
        if let Ok(h) = get_headers(&self.cfg.url, Duration::from_secs(2)).await
            && let Some(serial) = header(&h, "x-tidemark-config")
            && let Ok(mut l) = self.live_all_to.lock()
        {
            *l = Some((serial, release.to_string()));
        }
    }

    /// Switch: write the include, `nginx -t` (the old file back on failure: nothing
    /// switched), reload, prove through nginx. Returns what it did.
    pub async fn switch(&self, sh: &Shell, r: &Routing) -> Result<String, String> {
        let started = Instant::now();
        let serial = self.next_serial(&r.new.0);
        let before = std::fs::read_to_string(&self.cfg.include).ok();
        write_atomic(&self.cfg.include, &self.render(r, &serial))
            .map_err(|e| format!("nginx.include: {e}"))?;
        if let Err(e) = self.test().await {
            let restored = match &before {
                Some(b) => write_atomic(&self.cfg.include, b)
                    .map(|()| "the include file was put back")
                    .unwrap_or("the include file could NOT be put back"),
                None => "",
            };
            return Err(format!(
                "nginx -t failed with the new include, nothing was switched ({restored}): {e}"
            ));
        }
        self.reload(sh)
            .await
            .map_err(|e| format!("reloading nginx: {e}"))?;
        let full = r.pct == 100 || r.old.is_none();
        let mut accept = vec![serial.clone()];
        let fallback = self
            .live_all_to
            .lock()
            .ok()
            .and_then(|l| l.clone())
            .filter(|(_, rel)| full && *rel == r.new.0)
            .map(|(s, _)| s);
        accept.extend(fallback.clone());
        let seen = self
            .prove(&accept, full.then_some(r.new.1))
            .await
            .map_err(|e| {
                format!("the reload did not apply: {e} (nginx keeps serving its old configuration; see its error log)")
            })?;
        if let Ok(mut l) = self.live_all_to.lock() {
            *l = full.then(|| (seen.clone(), r.new.0.clone()));
        }
        if seen != serial {
            return Ok(format!(
                "nginx: {} → the reload did not apply, but nginx still serves config serial {seen}, which sends all traffic to release {} (proven through nginx in {} ms)",
                describe(r),
                r.new.0,
                started.elapsed().as_millis()
            ));
        }
        Ok(format!(
            "nginx: {} → proven through nginx in {} ms (config serial {serial})",
            describe(r),
            started.elapsed().as_millis()
        ))
    }

    /// Poll `nginx.url` until a response carries the config serial (and, for a full switch,
    /// comes from the expected upstream).
    async fn prove(&self, accept: &[String], upstream: Option<u16>) -> Result<String, String> {
        let serial = accept.first().map(String::as_str).unwrap_or("");
        let started = Instant::now();
        loop {
            let last = match get_headers(&self.cfg.url, Duration::from_secs(2)).await {
                Ok(h) => {
                    let config = header(&h, "x-tidemark-config");
                    let addr = header(&h, "x-tidemark-upstream");
                    let addr_ok = match (upstream, &addr) {
                        (Some(p), Some(a)) => a.ends_with(&format!(":{p}")),
                        _ => true,
                    };
                    match config {
                        Some(c) if accept.contains(&c) && addr_ok => return Ok(c),
                        Some(c) => format!(
                            "config serial {c}, upstream {}",
                            addr.as_deref().unwrap_or("-")
                        ),
                        None => "no X-Tidemark-Config header in the response (is the server block's snippet there?)".into(),
                    }
                }
                Err(e) => e,
            };
            if started.elapsed() >= self.cfg.proof_timeout {
                return Err(format!(
                    "after {} through {}: {last}, expected serial {serial}",
                    humantime::format_duration(self.cfg.proof_timeout),
                    self.cfg.url
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Wait until something answers HTTP on a port (any status): a release just started.
    async fn wait_answering(&self, port: u16) -> Result<(), String> {
        let started = Instant::now();
        let url = format!("http://127.0.0.1:{port}/");
        loop {
            match get_headers(&url, Duration::from_secs(1)).await {
                Ok(_) => return Ok(()),
                Err(e) if started.elapsed() >= self.cfg.timeout => {
                    return Err(format!("nothing answers on 127.0.0.1:{port}: {e}"));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }
}

pub fn describe(r: &Routing) -> String {
    match &r.old {
        Some((old, _)) if r.pct < 100 => format!(
            "{}% of clients to release {} (127.0.0.1:{}), the rest to {old}",
            r.pct, r.new.0, r.new.1
        ),
        _ => format!("all traffic to release {} (127.0.0.1:{})", r.new.0, r.new.1),
    }
}

fn header(h: &hyper::HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.to_string())
}

/// Write a file atomically: a temp file beside it, then rename.
pub fn write_atomic(path: &Path, text: &str) -> Result<(), String> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tidemark-tmp"));
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// GET `url` with a fresh connection: the response headers.
pub async fn get_headers(url: &str, timeout: Duration) -> Result<hyper::HeaderMap, String> {
    crate::check::get(url, timeout).await.map(|a| a.headers)
}

/// Reads tidemark's access log from where a step began: upstream answers per address.
pub struct LogCursor {
    path: PathBuf,
    offset: u64,
    partial: String,
    /// Upstream answers of the watched release, and how many were 5xx.
    pub answers: u64,
    pub errors: u64,
}

impl LogCursor {
    /// A cursor at the current end of the log (a missing log is empty).
    pub fn at_end(path: &Path) -> LogCursor {
        let offset = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        LogCursor {
            path: path.to_path_buf(),
            offset,
            partial: String::new(),
            answers: 0,
            errors: 0,
        }
    }

    /// Read the lines written since, counting the upstream statuses of `port`. A retried
    /// request lists every upstream it tried (`127.0.0.1:9001, 127.0.0.1:9000` with `502,
    /// 200`): each attempt counts for its own upstream, so a crashing canary shows even when
    /// the retry hides it from the client.
    pub fn read(&mut self, port: u16) {
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return;
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if len < self.offset {
            // Rotated: start over at the top of the new file.
            self.offset = 0;
        }
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut buf = Vec::new();
        if f.read_to_end(&mut buf).is_err() {
            return;
        }
        self.offset += buf.len() as u64;
        self.partial.push_str(&String::from_utf8_lossy(&buf));
        let want = format!("127.0.0.1:{port}");
        while let Some(i) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=i).collect();
            let (a, e) = count_line(line.trim_end(), &want);
            self.answers += a;
            self.errors += e;
        }
    }
}

/// `msec|upstream_addr|upstream_status|status|release`: the upstream answers (and 5xx) of
/// `addr` in one line.
pub fn count_line(line: &str, addr: &str) -> (u64, u64) {
    let f: Vec<&str> = line.split('|').collect();
    if f.len() < 4 {
        return (0, 0);
    }
    // Attempts are separated by `, ` and internal redirects by ` : `.
    let split = |s: &str| -> Vec<String> {
        s.split([',', ':'])
            .map(|x| x.trim().to_string())
            .collect::<Vec<_>>()
    };
    // Addresses contain a colon themselves: split them on `, ` and ` : ` only.
    let addrs: Vec<&str> = f[1]
        .split(", ")
        .flat_map(|x| x.split(" : "))
        .map(str::trim)
        .collect();
    let statuses = split(f[2]);
    let (mut answers, mut errors) = (0, 0);
    for (a, s) in addrs.iter().zip(statuses.iter()) {
        if *a != addr {
            continue;
        }
        if let Ok(code) = s.parse::<u16>() {
            answers += 1;
            if code >= 500 {
                errors += 1;
            }
        }
    }
    (answers, errors)
}

/// The resident memory of the process listening on `port`, compared with what is available:
/// a warning when a second release of that size may not fit.
fn memory_warning(port: u16) -> Option<String> {
    let rss = listener_rss_kb(port)?;
    let avail = std::fs::read_to_string("/proc/meminfo")
        .ok()?
        .lines()
        .find(|l| l.starts_with("MemAvailable:"))?
        .split_whitespace()
        .nth(1)?
        .parse::<u64>()
        .ok()?;
    (avail < rss * 2).then(|| {
        format!(
            "memory: the serving release uses {} MB and {} MB are available; two releases side by side may not fit",
            rss / 1024,
            avail / 1024
        )
    })
}

/// VmRSS (kB) of the process holding a listening socket on 127.0.0.1/0.0.0.0:`port` (Linux).
fn listener_rss_kb(port: u16) -> Option<u64> {
    let hex = format!(":{port:04X}");
    let mut inodes = Vec::new();
    for f in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(t) = std::fs::read_to_string(f) else {
            continue;
        };
        for l in t.lines().skip(1) {
            let c: Vec<&str> = l.split_whitespace().collect();
            // local_address, st == 0A (LISTEN), inode
            if c.len() > 9 && c[1].ends_with(&hex) && c[3] == "0A" {
                inodes.push(format!("socket:[{}]", c[9]));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    for p in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(l) = std::fs::read_link(fd.path())
                && inodes.iter().any(|i| l.as_os_str() == i.as_str())
            {
                let status = std::fs::read_to_string(p.path().join("status")).ok()?;
                return status
                    .lines()
                    .find(|l| l.starts_with("VmRSS:"))?
                    .split_whitespace()
                    .nth(1)?
                    .parse()
                    .ok();
            }
        }
    }
    None
}

#[async_trait]
impl ReleaseStrategy for NginxStrategy {
    fn name(&self) -> &'static str {
        "nginx"
    }

    fn files(&self, t: &Target) -> Vec<PathBuf> {
        crate::strategy::files_in_command(&self.cfg.start.render_shell(&self.vars(t)), &t.dir)
    }

    fn artifact(&self, t: &Target) -> String {
        t.dir.display().to_string()
    }

    fn keeps_previous(&self) -> bool {
        true
    }

    fn as_nginx(&self) -> Option<&crate::nginx::NginxStrategy> {
        Some(self)
    }

    /// Start the new release beside the old one; the switch comes after the direct probe
    /// (the pipeline drives it: see `pipeline::nginx_release`).
    async fn release(
        &self,
        sh: &Shell,
        new: &Target,
        previous: Option<&Target>,
        _action: Action,
    ) -> Result<Vec<String>, String> {
        if let Some(p) = previous {
            self.mark_running(&p.release, true);
        }
        Ok(vec![self.start(sh, new).await?])
    }

    /// All traffic back to `previous` (started first when it is not running), proven through
    /// nginx, then the failed release stopped after the drain.
    async fn switch_back(
        &self,
        sh: &Shell,
        _failed: &Target,
        previous: &Target,
    ) -> Result<Vec<String>, String> {
        let mut did = Vec::new();
        let port = previous
            .port
            .ok_or_else(|| format!("release {} has no recorded port", previous.release))?;
        let answering = get_headers(&format!("http://127.0.0.1:{port}/"), Duration::from_secs(1))
            .await
            .is_ok();
        if !self.is_running(&previous.release) && !answering {
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
                return Err(format!(
                    "port {port} of release {} is taken by another process",
                    previous.release
                ));
            }
            did.push(self.start(sh, previous).await?);
            self.wait_answering(port).await?;
        }
        did.push(
            self.switch(
                sh,
                &Routing {
                    new: (previous.release.clone(), port),
                    old: None,
                    pct: 100,
                },
            )
            .await?,
        );
        Ok(did)
    }

    async fn after_switch_back(&self, sh: &Shell, failed: &Target) -> Vec<String> {
        if failed.port.is_none() {
            return Vec::new();
        }
        match self.drain_and_stop(sh, failed).await {
            Ok(d) => vec![d],
            // Traffic is back on the previous release; a failed release that will not stop
            // is reported, but it gets no traffic.
            Err(e) => vec![format!("could not stop release {}: {e}", failed.release)],
        }
    }

    async fn stop(&self, sh: &Shell, t: &Target) -> Result<Vec<String>, String> {
        Ok(vec![self.stop_now(sh, t).await?])
    }

    async fn promote(
        &self,
        sh: &Shell,
        _new: &Target,
        previous: Option<&Target>,
    ) -> Result<Vec<String>, String> {
        match previous {
            Some(p) => Ok(vec![self.drain_and_stop(sh, p).await?]),
            None => Ok(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_of_the_serving_release_is_found_by_its_port() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let rss = listener_rss_kb(port).expect("this process listens on the port");
        assert!(rss > 0);
        drop(l);
        assert_eq!(listener_rss_kb(port), None);
    }

    #[test]
    fn the_include_sends_cohorts_not_weights() {
        let cfg = crate::config::DeployConfig::parse(
            Path::new("/srv/deploy.toml"),
            "app = \"shop-api\"\nstrategy = \"nginx\"\n[release]\ndir = \"r\"\n[nginx]\nstart = \"s\"\nstop = \"t\"\ninclude = \"i.conf\"\nurl = \"http://127.0.0.1/\"\ncohort_cookie = \"uid\"\n",
        )
        .unwrap();
        let crate::config::StrategyConfig::Nginx(n) = cfg.strategy else {
            panic!()
        };
        let ng = NginxStrategy::new("shop-api", *n);
        let text = ng.render(
            &Routing {
                new: ("v2".into(), 9001),
                old: Some(("v1".into(), 9000)),
                pct: 10,
            },
            "s1",
        );
        assert!(
            text.contains("map $cookie_uid $tidemark_shop_api_cohort"),
            "{text}"
        );
        assert!(
            text.contains("    10% tidemark_shop_api_p9001;\n    * tidemark_shop_api_p9000;"),
            "{text}"
        );
        assert!(text.contains("server 127.0.0.1:9001 ") && !text.contains("weight"));
        assert!(text.contains("map $host $tidemark_shop_api_config { default \"s1\"; }"));
        // All traffic to one release: the other is not an upstream at all.
        let full = ng.render(
            &Routing {
                new: ("v2".into(), 9001),
                old: Some(("v1".into(), 9000)),
                pct: 100,
            },
            "s2",
        );
        assert!(!full.contains("9000") && full.contains("* tidemark_shop_api_p9001;"));
    }

    #[test]
    fn upstream_statuses_are_counted_per_upstream_with_retries() {
        let a = "127.0.0.1:9001";
        assert_eq!(count_line("1.0|127.0.0.1:9001|200|200|v2", a), (1, 0));
        assert_eq!(count_line("1.0|127.0.0.1:9001|500|500|v2", a), (1, 1));
        // Retried: the canary's 502 is hidden from the client, but counted.
        assert_eq!(
            count_line("1.0|127.0.0.1:9001, 127.0.0.1:9000|502, 200|200|v2", a),
            (1, 1)
        );
        assert_eq!(count_line("1.0|127.0.0.1:9000|200|200|v1", a), (0, 0));
        assert_eq!(count_line("1.0|-|-|499|", a), (0, 0));
        assert_eq!(count_line("garbage", a), (0, 0));
    }
}
