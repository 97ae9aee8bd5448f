//! The test application behaves as the deploy tests rely on: it serves its release, takes its
//! env file once at start, and breaks on request.
//!
//! These tests are also why `cargo test --workspace` leaves `target/debug/tidemark-testapp`
//! behind: cargo builds a package's binaries only for that package's own integration tests,
//! and the deploy, nginx and replica tests of `tidemark-cli` run this binary.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const APP: &str = env!("CARGO_BIN_EXE_tidemark-testapp");

/// A running test application, stopped when dropped.
struct Running(Child, u16);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn start(env_file: &Path, extra_env: &[(&str, &str)]) -> Running {
    let port = free_port();
    let mut cmd = Command::new(APP);
    cmd.args(["--port", &port.to_string(), "--env-file"])
        .arg(env_file)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let app = Running(cmd.spawn().expect("start the test application"), port);
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the test application did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    app
}

/// `GET path` over a plain HTTP/1.0 connection: (status, body).
fn get(app: &Running, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", app.1)).expect("connect");
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").expect("send");
    let mut response = String::new();
    s.read_to_string(&mut response).expect("read");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn env_file(dir: &Path, text: &str) -> std::path::PathBuf {
    let p = dir.join("app.env");
    std::fs::write(&p, text).expect("write the env file");
    p
}

#[test]
fn serves_its_release_and_its_env_file_as_read_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = env_file(
        dir.path(),
        "# comment\nexport RELEASE=\"r7\"\nGREETING=hi\n",
    );
    let app = start(&env, &[]);
    assert_eq!(get(&app, "/"), (200, "hello from release r7\n".into()));
    assert_eq!(get(&app, "/health"), (200, "ok release=r7\n".into()));
    assert_eq!(get(&app, "/env/GREETING"), (200, "hi".into()));
    assert_eq!(get(&app, "/env/MISSING").0, 404);
    // A changed file is not taken up by the running process: only a new process reads it.
    std::fs::write(&env, "RELEASE=r8\n").expect("rewrite the env file");
    assert_eq!(get(&app, "/health"), (200, "ok release=r7\n".into()));
}

#[test]
fn breaks_when_told_to() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fail = dir.path().join("fail");
    let text = format!("RELEASE=bad\nERROR_RATE=50\nFAIL_FILE={}\n", fail.display());
    let env = env_file(dir.path(), &text);
    let app = start(&env, &[]);
    // Half of the requests fail, spread evenly.
    let codes: Vec<u16> = (0..10).map(|_| get(&app, "/").0).collect();
    assert_eq!(codes.iter().filter(|&&c| c == 500).count(), 5, "{codes:?}");
    assert_eq!(get(&app, "/health").0, 200);
    std::fs::write(&fail, "").expect("create the fail file");
    let (status, body) = get(&app, "/health");
    assert_eq!(status, 500);
    assert!(body.contains("exists"), "{body}");

    let healthy_env = env_file(dir.path(), "RELEASE=env\n");
    let from_process = start(&healthy_env, &[("FAIL_HEALTH", "1")]);
    let (status, body) = get(&from_process, "/health");
    assert_eq!(status, 500);
    assert!(body.contains("FAIL_HEALTH=1"), "{body}");
}

#[test]
fn bad_arguments_are_a_usage_error() {
    let out = Command::new(APP)
        .arg("--port")
        .arg("eighty")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--port: `eighty` is not a port"));
    let out = Command::new(APP).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--port is required"));
}
