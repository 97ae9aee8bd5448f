//! The `nginx` strategy against a real nginx (Debian's package; `.ci/run` installs it): each
//! test starts its own nginx master with its own prefix, configuration and loopback port, and
//! stops it at the end. A load generator on loopback counts every request that fails (no
//! connection, a 502/504, any non-200) while releases are switched, canaried and rolled back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tidemark_test::TestDb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;
use crate::deploy::{Proj, STOP_TEMPLATE, free_port, start_template, steps, testapp};

/// Requests every zero-downtime run must have answered (at least).
const N: u64 = 3000;

fn nginx_bin() -> PathBuf {
    find_nginx().expect("nginx is installed")
}

fn find_nginx() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// Without nginx the tests are skipped, except where they are required (CI).
#[allow(clippy::print_stderr)] // the loud SKIPPED line, as for the database tests
fn have_nginx(test: &str) -> bool {
    if find_nginx().is_some() {
        return true;
    }
    if std::env::var_os("TIDEMARK_TEST_REQUIRE_DB").is_some() {
        panic!(
            "{test}: nginx is not installed but TIDEMARK_TEST_REQUIRE_DB is: `apt-get install nginx-light` (.ci/run installs it)"
        );
    }
    eprintln!("SKIPPED {test}: nginx is not installed");
    false
}

/// An nginx master of the test's own: prefix `<proj>/nginx`, listening on a free loopback
/// port, including tidemark's file for app `shop`.
struct Nginx {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Nginx {
    fn conf_text(dir: &Path, port: u16) -> String {
        let d = dir.display();
        format!(
            r#"worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    include {d}/tidemark-shop.conf;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://$tidemark_shop_upstream;
            add_header X-Tidemark-Release $tidemark_shop_release always;
            add_header X-Tidemark-Config $tidemark_shop_config always;
            add_header X-Tidemark-Upstream $upstream_addr always;
            access_log {d}/tidemark-shop.log tidemark_shop;
        }}
    }}
}}
"#
        )
    }

    fn start(p: &Proj) -> Nginx {
        let dir = p.path().join("nginx");
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        std::fs::write(dir.join("nginx.conf"), Self::conf_text(&dir, port)).unwrap();
        // What tidemark writes before the first release: one placeholder upstream.
        let inc = dir.join("tidemark-shop.conf");
        if !inc.exists() {
            std::fs::write(
                &inc,
                "log_format tidemark_shop '$msec|$upstream_addr|$upstream_status|$status|$tidemark_shop_release';\n\
                 upstream tidemark_shop_p1 { server 127.0.0.1:1; }\n\
                 map $host $tidemark_shop_upstream { default tidemark_shop_p1; }\n\
                 map $host $tidemark_shop_release { default \"\"; }\n\
                 map $host $tidemark_shop_config { default initial; }\n",
            )
            .unwrap();
        }
        let child = Command::new(nginx_bin())
            .arg("-p")
            .arg(format!("{}/", dir.display()))
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .spawn()
            .expect("start nginx");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "nginx did not come up: {}",
                std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Nginx { child, port, dir }
    }

    fn include(&self) -> String {
        std::fs::read_to_string(self.dir.join("tidemark-shop.conf")).unwrap()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // TERM: the master stops its workers and exits.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// A port range of the test's own, below the ephemeral ports the load generator's client
/// sockets use.
fn port_range(test: &str) -> (u16, u16) {
    let h = test
        .bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    let base = 20000 + (h % 1000) as u16 * 10;
    (base, base + 9)
}

/// deploy.toml for the nginx strategy; `nginx_extra` goes into `[nginx]`.
fn config(p: &Proj, ng: &Nginx, test: &str, nginx_extra: &str) {
    let (a, b) = port_range(test);
    p.write(
        "deploy.toml",
        &format!(
            r#"app = "shop"
strategy = "nginx"

[release]
dir = "releases/{{release}}"
env_file = "{{dir}}/.env"

[nginx]
start = '''{start}'''
stop = '''{stop}'''
include = "nginx/tidemark-shop.conf"
url = "http://127.0.0.1:{front}/"
ports = "{a}-{b}"
prefix = "nginx"
conf = "nginx/nginx.conf"
drain = "300ms"
{proof}
{nginx_extra}

[verify]
window = "1s"
interval = "100ms"
failure_threshold = 3

[[verify.http]]
url = "http://127.0.0.1:{{port}}/health"
body_contains = "ok release={{release}}"
timeout = "1s"
"#,
            start = start_template(&testapp()),
            stop = STOP_TEMPLATE,
            front = ng.port,
            proof = if nginx_extra.contains("proof_timeout") {
                ""
            } else {
                "proof_timeout = \"3s\""
            },
        ),
    );
}

/// What the load generator saw.
#[derive(Debug, Default)]
struct Stats {
    total: u64,
    failed: u64,
    by_release: BTreeMap<String, u64>,
    failures: Vec<String>,
}

impl Stats {
    fn served_by(&self, release: &str) -> u64 {
        self.by_release.get(release).copied().unwrap_or(0)
    }
}

/// A bounded load generator: `workers` loops, each sending `GET /` through nginx on a fresh
/// connection with a cookie `uid` (its cohort), until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
    workers: Vec<tokio::task::JoinHandle<Stats>>,
}

async fn one(port: u16, uid: u64) -> Result<(u16, String), String> {
    let work = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        s.write_all(
            format!(
                "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: uid={uid}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .map_err(|e| format!("write: {e}"))?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf)
            .await
            .map_err(|e| format!("read: {e}"))?;
        let text = String::from_utf8_lossy(&buf);
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                format!(
                    "no status in {:?}",
                    text.chars().take(80).collect::<String>()
                )
            })?;
        let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
        Ok((status, body.to_string()))
    };
    tokio::time::timeout(Duration::from_secs(5), work)
        .await
        .unwrap_or_else(|_| Err("no answer within 5 s".into()))
}

impl Load {
    fn start(port: u16, workers: u64) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicU64::new(0));
        let workers = (0..workers)
            .map(|w| {
                let (stop, count) = (stop.clone(), count.clone());
                tokio::spawn(async move {
                    let mut st = Stats::default();
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        // Many clients: a new cohort cookie per request.
                        let uid = w * 1_000_000 + i;
                        st.total += 1;
                        match one(port, uid).await {
                            Ok((200, body)) => {
                                let rel = body
                                    .trim()
                                    .strip_prefix("hello from release ")
                                    .unwrap_or("?")
                                    .to_string();
                                *st.by_release.entry(rel).or_default() += 1;
                            }
                            Ok((status, body)) => {
                                st.failed += 1;
                                if st.failures.len() < 5 {
                                    st.failures.push(format!("{status}: {}", body.trim()));
                                }
                            }
                            Err(e) => {
                                st.failed += 1;
                                if st.failures.len() < 5 {
                                    st.failures.push(e);
                                }
                            }
                        }
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    st
                })
            })
            .collect();
        Load {
            stop,
            count,
            workers,
        }
    }

    async fn wait_for(&self, n: u64) {
        while self.count.load(Ordering::Relaxed) < n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stop once at least `n` requests were sent in all.
    async fn finish(self, n: u64) -> Stats {
        self.wait_for(n).await;
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Stats::default();
        for w in self.workers {
            let s = w.await.unwrap();
            all.total += s.total;
            all.failed += s.failed;
            for (k, v) in s.by_release {
                *all.by_release.entry(k).or_default() += v;
            }
            all.failures.extend(s.failures);
        }
        all
    }
}

/// `tidemark ARGS` on a blocking thread, so the load keeps running meanwhile.
async fn tm_async(p: &Proj, args: &[&str]) -> Run {
    let mut c = command(p.path());
    c.arg("-d").arg(&p.url).args(args);
    tokio::task::spawn_blocking(move || c.output().expect("run tidemark").into())
        .await
        .unwrap()
}

/// GET / through nginx: the release that answered.
fn through(ng: &Nginx) -> String {
    crate::deploy::get(ng.port, "/")
        .map(|(_, b)| b.trim().to_string())
        .unwrap_or_default()
}

fn timeline(j: &serde_json::Value) -> String {
    j["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["event"].as_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

fn port_of(p: &Proj, release: &str) -> u16 {
    let r: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            p.path()
                .join(format!(".tidemark/deploy/shop/releases/{release}.json")),
        )
        .unwrap(),
    )
    .unwrap();
    r["port"].as_u64().expect("the release's port is recorded") as u16
}

fn listening(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

async fn db(test: &str) -> TestDb {
    TestDb::sqlite(test).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nginx_blue_green_switch_and_rollback_lose_no_request() {
    let test = "nginx_blue_green_switch_and_rollback_lose_no_request";
    if !have_nginx(test) {
        return;
    }
    let db = db(test).await;
    let p = Proj::new(&db);
    let ng = Nginx::start(&p);
    config(&p, &ng, test, "");
    p.release("v1", "");
    p.release("v2", "");
    tm_async(&p, &["deploy", "--release", "v1"]).await.ok();
    assert_eq!(through(&ng), "hello from release v1");
    let v1_port = port_of(&p, "v1");

    // Blue-green under load.
    let load = Load::start(ng.port, 6);
    load.wait_for(300).await;
    let r = tm_async(&p, &["deploy", "--release", "v2", "--format", "json"]).await;
    let st = load.finish(N).await;
    r.ok();
    let j = r.json();
    assert_eq!(
        st.failed, 0,
        "requests lost during the switch: {} of {}: {:?}",
        st.failed, st.total, st.failures
    );
    assert!(
        st.served_by("v1") > 0 && st.served_by("v2") > 0,
        "the load did not span the switch: {st:?}"
    );
    let v2_port = port_of(&p, "v2");
    assert_ne!(v1_port, v2_port, "a new release gets a port of its own");
    assert_eq!(through(&ng), "hello from release v2");
    assert!(!listening(v1_port), "v1 is stopped after the drain");
    let tl = timeline(&j);
    assert!(
        tl.contains("all traffic to release v2")
            && tl.contains("proven through nginx")
            && tl.contains("stopped release v1 (nginx.stop) after a drain of 300ms"),
        "{tl}"
    );
    assert!(
        ng.include()
            .contains(&format!("server 127.0.0.1:{v2_port}"))
    );

    // An on-demand rollback under load: v1 started again beside v2, switched, v2 stopped.
    let load = Load::start(ng.port, 6);
    load.wait_for(300).await;
    let r = tm_async(&p, &["rollback", "--format", "json"]).await;
    let st = load.finish(N).await;
    r.ok();
    assert_eq!(
        st.failed, 0,
        "requests lost during the rollback: {} of {}: {:?}",
        st.failed, st.total, st.failures
    );
    assert!(st.served_by("v1") > 0 && st.served_by("v2") > 0, "{st:?}");
    assert_eq!(through(&ng), "hello from release v1");
    assert!(!listening(v2_port), "v2 is stopped after the drain");

    // The generator does count failures: with the serving release killed behind nginx's
    // back, requests fail.
    let pid_file = p.path().join("releases/v1/app.pid");
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    Command::new("kill").arg(pid.trim()).status().unwrap();
    // No stale pid file behind: its number may be handed out again.
    std::fs::remove_file(&pid_file).unwrap();
    while listening(v1_port) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let st = Load::start(ng.port, 2).finish(50).await;
    assert!(
        st.failed >= 50,
        "a dead upstream must count as failures: {st:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nginx_a_release_failing_after_the_switch_is_rolled_back_under_load() {
    let test = "nginx_a_release_failing_after_the_switch_is_rolled_back_under_load";
    if !have_nginx(test) {
        return;
    }
    let db = db(test).await;
    let p = Proj::new(&db);
    let ng = Nginx::start(&p);
    config(&p, &ng, test, "");
    p.release("v1", "");
    tm_async(&p, &["deploy", "--release", "v1"]).await.ok();
    // v2 passes its direct probe, then its health check fails once it serves through nginx.
    let fail_file = p.path().join("v2-broken");
    p.release("v2", &format!("FAIL_FILE={}\n", fail_file.display()));
    let load = Load::start(ng.port, 6);
    load.wait_for(300).await;
    let deploy = tm_async(&p, &["deploy", "--release", "v2", "--format", "json"]);
    let breaker = async {
        let started = Instant::now();
        while through(&ng) != "hello from release v2" {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "v2 never served"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        std::fs::write(&fail_file, "").unwrap();
    };
    let (r, ()) = tokio::join!(deploy, breaker);
    let st = load.finish(N).await;
    r.code(30);
    let j = r.json();
    assert_eq!(
        st.failed, 0,
        "requests lost during the rollback: {} of {}: {:?}",
        st.failed, st.total, st.failures
    );
    assert!(st.served_by("v2") > 0 && st.served_by("v1") > 0, "{st:?}");
    assert_eq!(j["serving"], "v1");
    assert_eq!(through(&ng), "hello from release v1");
    let recovery = j["recovery_ms"].as_u64().expect("recovery measured");
    assert!(
        recovery < 1000,
        "{recovery} ms from the first failed check to v1 serving through nginx"
    );
    let tl = timeline(&j);
    assert!(tl.contains("all traffic to release v1"), "{tl}");
    assert!(
        !listening(port_of(&p, "v2")),
        "the failed release is stopped"
    );
}

/// Under load, a slow machine may need longer than one window for `min_requests` answers
/// at 10 %: extended, so the verdict is about the 5xx rate, not the machine's speed.
const LOADED: &str = "inconclusive = \"extend\"\nmax_extensions = 10\n";

fn gate(extra: &str) -> String {
    format!(
        "steps = [10, 50, 100]\ncohort_cookie = \"uid\"\naccess_log = \"nginx/tidemark-shop.log\"\nmax_5xx_rate = 0.05\nmin_requests = 20\n{extra}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nginx_canary_steps_promote_a_healthy_release() {
    let test = "nginx_canary_steps_promote_a_healthy_release";
    if !have_nginx(test) {
        return;
    }
    let db = db(test).await;
    let p = Proj::new(&db);
    let ng = Nginx::start(&p);
    config(&p, &ng, test, "");
    p.release("v1", "");
    tm_async(&p, &["deploy", "--release", "v1"]).await.ok();
    config(&p, &ng, test, &gate(LOADED));
    p.release("v2", "");
    let load = Load::start(ng.port, 6);
    load.wait_for(200).await;
    let r = tm_async(&p, &["deploy", "--release", "v2", "--format", "json"]).await;
    let st = load.finish(N).await;
    r.ok();
    assert_eq!(st.failed, 0, "{st:?}");
    let tl = timeline(&r.json());
    for want in [
        "10% of clients to release v2",
        "50% of clients to release v2",
        "all traffic to release v2",
        "step 10%:",
        "step 50%:",
        "step 100%:",
    ] {
        assert!(tl.contains(want), "`{want}` not in\n{tl}");
    }
    // The upstream statuses were read: each step saw the new release's answers.
    assert!(tl.contains("upstream answers, 0 5xx"), "{tl}");
    assert!(st.served_by("v1") > 0 && st.served_by("v2") > 0, "{st:?}");
    assert_eq!(through(&ng), "hello from release v2");
    // Cohorts, not round robin: one client (cookie) stays with one release.
    let inc = ng.include();
    assert!(
        inc.contains("split_clients") && !inc.contains("weight="),
        "{inc}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nginx_canary_with_5xx_is_rolled_back_at_the_first_step() {
    let test = "nginx_canary_with_5xx_is_rolled_back_at_the_first_step";
    if !have_nginx(test) {
        return;
    }
    let db = db(test).await;
    let p = Proj::new(&db);
    let ng = Nginx::start(&p);
    config(&p, &ng, test, "");
    p.release("v1", "");
    tm_async(&p, &["deploy", "--release", "v1"]).await.ok();
    config(&p, &ng, test, &gate(LOADED));
    p.release("v2", "ERROR_RATE=20\n");
    let load = Load::start(ng.port, 6);
    load.wait_for(200).await;
    let r = tm_async(&p, &["deploy", "--release", "v2", "--format", "json"]).await;
    let st = load.finish(500).await;
    r.code(30);
    let j = r.json();
    let f = &j["failure"];
    let detail = f["detail"].as_str().unwrap();
    assert!(
        f["check"].as_str().unwrap().contains("step 10%") && detail.contains("5xx"),
        "{f}"
    );
    // The rate is the upstream's, about 20 %.
    let tl = timeline(&j);
    assert!(
        !tl.contains("50% of clients"),
        "stopped at the first step:\n{tl}"
    );
    assert_eq!(j["serving"], "v1");
    assert_eq!(through(&ng), "hello from release v1");
    // The canary's errors reached clients (10 % of them); nothing else failed.
    assert!(st.failed > 0 && st.failed < st.total / 5, "{st:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nginx_a_canary_without_traffic_is_inconclusive_never_a_pass() {
    let test = "nginx_a_canary_without_traffic_is_inconclusive_never_a_pass";
    if !have_nginx(test) {
        return;
    }
    let db = db(test).await;
    let p = Proj::new(&db);
    let ng = Nginx::start(&p);
    config(&p, &ng, test, "");
    p.release("v1", "");
    tm_async(&p, &["deploy", "--release", "v1"]).await.ok();

    // inconclusive = "fail": the first step fails.
    config(&p, &ng, test, &gate(""));
    p.release("v2", "");
    let r = tm_async(&p, &["deploy", "--release", "v2", "--format", "json"]).await;
    r.code(30);
    let j = r.json();
    let detail = j["failure"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("inconclusive") && detail.contains("0 upstream answer"),
        "{detail}"
    );
    assert_eq!(through(&ng), "hello from release v1");

    // inconclusive = "extend": held longer, then failed all the same.
    config(
        &p,
        &ng,
        test,
        &gate("inconclusive = \"extend\"\nmax_extensions = 1\n"),
    );
    p.release("v3", "");
    let r = tm_async(&p, &["deploy", "--release", "v3", "--format", "json"]).await;
    r.code(30);
    let j = r.json();
    let tl = timeline(&j);
    assert!(
        tl.contains("held for another 1s (extension 1 of 1)"),
        "{tl}"
    );
    assert!(
        j["failure"]["detail"]
            .as_str()
            .unwrap()
            .contains("inconclusive"),
        "{}",
        j["failure"]
    );
    assert_eq!(through(&ng), "hello from release v1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nginx_a_config_that_does_not_test_clean_switches_nothing() {
    let test = "nginx_a_config_that_does_not_test_clean_switches_nothing";
    if !have_nginx(test) {
        return;
    }
    let db = db(test).await;
    let p = Proj::new(&db);
    let ng = Nginx::start(&p);
    config(&p, &ng, test, "");
    p.release("v1", "");
    tm_async(&p, &["deploy", "--release", "v1"]).await.ok();
    let before = ng.include();

    // nginx's own configuration is broken: preflight refuses, nothing changed.
    let conf = ng.dir.join("nginx.conf");
    let good = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(
        &conf,
        good.replace(
            "worker_processes 1;",
            "worker_processes 1;\nbogus_directive on;",
        ),
    )
    .unwrap();
    p.release("v2", "");
    let r = tm_async(&p, &["deploy", "--release", "v2"]).await;
    r.code(20);
    assert!(
        r.all()
            .contains("nginx's configuration does not test clean")
            && r.all().contains("bogus_directive"),
        "{}",
        r.all()
    );
    assert_eq!(ng.include(), before);
    assert!(
        !p.path().join("releases/v2/app.pid").exists(),
        "v2 was not started"
    );
    std::fs::write(&conf, good).unwrap();

    // `nginx -t` fails at the switch itself (a wrapper fails it once the include names v2):
    // the include is put back, nothing switched, rolled back.
    let wrapper = p.path().join("nginx-wrapper.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nfor a; do [ \"$a\" = -t ] && grep -q 'release v3' {inc} && {{ echo 'nginx: [emerg] simulated failure' >&2; exit 1; }}; done\nexec {bin} \"$@\"\n",
            inc = ng.dir.join("tidemark-shop.conf").display(),
            bin = nginx_bin().display()
        ),
    )
    .unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(&wrapper)
        .status()
        .unwrap();
    config(
        &p,
        &ng,
        test,
        &format!("binary = \"{}\"", wrapper.display()),
    );
    p.release("v3", "");
    let r = tm_async(&p, &["deploy", "--release", "v3", "--format", "json"]).await;
    r.code(30);
    let j = r.json();
    let detail = j["failure"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("nginx -t failed")
            && detail.contains("nothing was switched")
            && detail.contains("simulated failure"),
        "{detail}"
    );
    assert!(detail.contains("the include file was put back"), "{detail}");
    // The rollback then wrote (and proved) all traffic to v1 again: v3 is in no upstream.
    let inc = ng.include();
    assert!(
        !inc.contains("release v3")
            && inc.contains(&format!("server 127.0.0.1:{} ", port_of(&p, "v1"))),
        "{inc}"
    );
    assert_eq!(through(&ng), "hello from release v1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nginx_a_reload_that_did_not_apply_is_caught_by_the_proof() {
    let test = "nginx_a_reload_that_did_not_apply_is_caught_by_the_proof";
    if !have_nginx(test) {
        return;
    }
    let db = db(test).await;
    let p = Proj::new(&db);
    let ng = Nginx::start(&p);
    config(&p, &ng, test, "");
    p.release("v1", "");
    tm_async(&p, &["deploy", "--release", "v1"]).await.ok();
    // The reload command succeeds but reaches no nginx (as a `systemctl reload` of another
    // unit would): the old configuration keeps serving.
    config(
        &p,
        &ng,
        test,
        "reload = \"true\"\nproof_timeout = \"500ms\"",
    );
    p.release("v2", "");
    let r = tm_async(&p, &["deploy", "--release", "v2", "--format", "json"]).await;
    r.code(30);
    let j = r.json();
    let detail = j["failure"]["detail"].as_str().unwrap();
    assert!(detail.contains("the reload did not apply"), "{detail}");
    assert_eq!(j["serving"], "v1");
    assert_eq!(through(&ng), "hello from release v1");
    assert_eq!(
        steps(&j)
            .iter()
            .find(|s| s.0 == "rollback")
            .map(|s| s.1.as_str()),
        Some("ok")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_preflight_checks_the_include_is_really_included() {
    let test = "nginx_preflight_checks_the_include_is_really_included";
    if !have_nginx(test) {
        return;
    }
    let db = db(test).await;
    let p = Proj::new(&db);
    let ng = Nginx::start(&p);
    p.release("v1", "");
    // No nginx binary there: said so, nothing started.
    config(&p, &ng, test, "binary = \"/nonexistent/sbin/nginx\"");
    let r = tm_async(&p, &["deploy", "--release", "v1"]).await;
    r.code(20);
    assert!(
        r.all()
            .contains("nginx is not installed here: no `/nonexistent/sbin/nginx`"),
        "{}",
        r.all()
    );
    config(&p, &ng, test, "");
    // nginx.conf includes another file than the one tidemark writes.
    let conf = ng.dir.join("nginx.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::copy(ng.dir.join("tidemark-shop.conf"), ng.dir.join("other.conf")).unwrap();
    std::fs::write(&conf, text.replace("tidemark-shop.conf;", "other.conf;")).unwrap();
    let r = tm_async(&p, &["deploy", "--release", "v1"]).await;
    r.code(20);
    assert!(
        r.all().contains("nginx does not include") && r.all().contains("tidemark-shop.conf"),
        "{}",
        r.all()
    );
    assert!(!p.path().join("releases/v1/app.pid").exists());
}
