//! Release strategies: how a release is made to serve, and how the previous one is made to
//! serve again. `command` (shell templates) and `compose` (docker compose) live here; the
//! `nginx` strategy (blue-green, canary; `crate::nginx`) implements the same trait: its `release`
//! starts the new release on a fresh port beside the old one, `promote` stops the old one, and
//! `switch_back` points the upstream back.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;

use crate::config::{DeployConfig, StrategyConfig};
use crate::template::{Template, shell_quote};

/// A release as a strategy sees it.
#[derive(Debug, Clone)]
pub struct Target {
    pub release: String,
    pub dir: PathBuf,
    pub env_file: Option<PathBuf>,
    pub port: Option<u16>,
    /// The image tag (compose with `compose.image`).
    pub image: Option<String>,
}

/// What the release step must do with the running application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing serves yet.
    Start,
    /// Replace the running application with a new process/container, which reads the env
    /// file and image anew. Never a mere restart: a restart keeps the old environment.
    Recreate,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Recreate => "recreate",
        }
    }
}

/// Runs shell commands for a run, their output appended to the run's `commands.log`.
pub struct Shell {
    pub log: PathBuf,
    pub timeout: Duration,
}

impl Shell {
    /// Run `sh -c cmd` in `cwd`; the error carries the exit status and the end of the output.
    pub async fn run(&self, cmd: &str, cwd: &Path, env: &[(&str, String)]) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("{}: {e}", self.log.display()))?;
        let start = log.metadata().map(|m| m.len()).unwrap_or(0);
        let out = log
            .try_clone()
            .map_err(|e| format!("{}: {e}", self.log.display()))?;
        let mut c = tokio::process::Command::new("sh");
        c.arg("-c")
            .arg(cmd)
            .current_dir(if cwd.is_dir() { cwd } else { Path::new(".") })
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c
            .spawn()
            .map_err(|e| format!("could not run `{cmd}`: {e}"))?;
        let status = match tokio::time::timeout(self.timeout, child.wait()).await {
            Ok(s) => s.map_err(|e| format!("`{cmd}`: {e}"))?,
            Err(_) => {
                let _ = child.kill().await;
                return Err(format!(
                    "`{cmd}` did not finish within {}{}",
                    humantime::format_duration(self.timeout),
                    self.tail(start)
                ));
            }
        };
        if status.success() {
            Ok(())
        } else {
            Err(format!("`{cmd}` failed ({status}){}", self.tail(start)))
        }
    }

    /// Does `sh -c cmd` succeed (quietly)? For tool detection.
    pub async fn probe(&self, cmd: &str) -> bool {
        let mut c = tokio::process::Command::new("sh");
        c.arg("-c")
            .arg(cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        matches!(
            tokio::time::timeout(Duration::from_secs(30), c.status()).await,
            Ok(Ok(s)) if s.success()
        )
    }

    fn tail(&self, from: u64) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.seek(SeekFrom::Start(from));
            let _ = f.take(64 * 1024).read_to_string(&mut s);
        }
        let lines: Vec<&str> = s.lines().collect();
        let tail = &lines[lines.len().saturating_sub(10)..];
        if tail.is_empty() {
            String::new()
        } else {
            format!("\n  output:\n    {}", tail.join("\n    "))
        }
    }
}

#[async_trait]
pub trait ReleaseStrategy: Send + Sync {
    fn name(&self) -> &'static str;
    /// The compose/unit files this strategy uses for a release (preflight compares them with
    /// `preflight.production_file`).
    fn files(&self, t: &Target) -> Vec<PathBuf>;
    /// What is released: a directory or an image.
    fn artifact(&self, t: &Target) -> String;
    /// Make `new` serve in place of `previous`. Returns what it did, one line each.
    async fn release(
        &self,
        sh: &Shell,
        new: &Target,
        previous: Option<&Target>,
        action: Action,
    ) -> Result<Vec<String>, String>;
    /// Make `previous` serve again in place of `failed`.
    async fn switch_back(
        &self,
        sh: &Shell,
        failed: &Target,
        previous: &Target,
    ) -> Result<Vec<String>, String>;
    /// Stop a release that serves (a rollback with nothing to return to).
    async fn stop(&self, sh: &Shell, t: &Target) -> Result<Vec<String>, String>;
    /// The new release passed verification: finish the release (the nginx strategy stops the
    /// previous one after its drain).
    async fn promote(
        &self,
        _sh: &Shell,
        _new: &Target,
        _previous: Option<&Target>,
    ) -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }
    /// After `switch_back` proved the previous release serving: stop the failed one (the
    /// nginx strategy does it after its drain, so the recovery is measured without it).
    async fn after_switch_back(&self, _sh: &Shell, _failed: &Target) -> Vec<String> {
        Vec::new()
    }
    /// Does the previous release keep running beside the new one until promote? Then a
    /// rollback switches the traffic back first (the old release already runs on this
    /// schema) and moves the database after.
    fn keeps_previous(&self) -> bool {
        false
    }
    /// The nginx strategy, whose switch and canary steps the pipeline drives.
    fn as_nginx(&self) -> Option<&crate::nginx::NginxStrategy> {
        None
    }
}

pub fn for_config(cfg: &DeployConfig) -> Box<dyn ReleaseStrategy> {
    match &cfg.strategy {
        StrategyConfig::Command {
            start,
            stop,
            timeout: _,
        } => Box::new(CommandStrategy {
            start: start.clone(),
            stop: stop.clone(),
        }),
        StrategyConfig::Compose {
            file,
            service,
            project,
            image: _,
            timeout: _,
        } => Box::new(ComposeStrategy {
            file: file.clone(),
            service: service.clone(),
            project: project.clone(),
            bin: std::sync::OnceLock::new(),
        }),
        StrategyConfig::Nginx(n) => {
            Box::new(crate::nginx::NginxStrategy::new(&cfg.app, (**n).clone()))
        }
    }
}

fn vars<'a>(t: &'a Target, previous: Option<&'a Target>) -> impl Fn(&str) -> Option<String> + 'a {
    move |k| match k {
        "release" => Some(t.release.clone()),
        "dir" => Some(t.dir.display().to_string()),
        "port" => t.port.map(|p| p.to_string()),
        "env_file" => t.env_file.as_ref().map(|p| p.display().to_string()),
        "previous" => previous.map(|p| p.release.clone()),
        _ => None,
    }
}

pub(crate) fn env_of(t: &Target) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("TIDEMARK_RELEASE", t.release.clone()),
        ("TIDEMARK_RELEASE_DIR", t.dir.display().to_string()),
    ];
    if let Some(p) = t.port {
        env.push(("TIDEMARK_PORT", p.to_string()));
    }
    if let Some(i) = &t.image {
        env.push(("TIDEMARK_IMAGE", i.clone()));
    }
    env
}

/// Start/stop shell templates: systemd units, a process manager, anything.
pub struct CommandStrategy {
    pub start: Template,
    pub stop: Option<Template>,
}

impl CommandStrategy {
    pub fn render_start(&self, t: &Target, previous: Option<&Target>) -> String {
        self.start.render_shell(&vars(t, previous))
    }

    pub fn render_stop(&self, t: &Target, previous: Option<&Target>) -> Option<String> {
        self.stop
            .as_ref()
            .map(|s| s.render_shell(&vars(t, previous)))
    }
}

/// Compose or unit files named in a shell command: every word ending in `.yml`, `.yaml` or
/// `.service` (as in `-f docker-compose.prod.yml`, `--file=x.yaml`, `systemctl restart
/// app.service`), relative to `cwd` unless absolute.
pub fn files_in_command(cmd: &str, cwd: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for w in cmd.split_whitespace() {
        let w = w.strip_prefix("--file=").unwrap_or(w);
        let w = w.trim_matches(|c: char| "'\";&|()<>".contains(c));
        if !(w.ends_with(".yml") || w.ends_with(".yaml") || w.ends_with(".service")) {
            continue;
        }
        let p = Path::new(w);
        let p = if p.is_absolute() || w.ends_with(".service") && !w.contains('/') {
            // A bare unit name is systemd's, not a path.
            p.to_path_buf()
        } else {
            cwd.join(p)
        };
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

#[async_trait]
impl ReleaseStrategy for CommandStrategy {
    fn name(&self) -> &'static str {
        "command"
    }

    fn files(&self, t: &Target) -> Vec<PathBuf> {
        let mut out = files_in_command(&self.render_start(t, None), &t.dir);
        if let Some(stop) = self.render_stop(t, None) {
            for f in files_in_command(&stop, &t.dir) {
                if !out.contains(&f) {
                    out.push(f);
                }
            }
        }
        out
    }

    fn artifact(&self, t: &Target) -> String {
        t.dir.display().to_string()
    }

    async fn release(
        &self,
        sh: &Shell,
        new: &Target,
        previous: Option<&Target>,
        _action: Action,
    ) -> Result<Vec<String>, String> {
        let mut did = Vec::new();
        if let Some(prev) = previous
            && let Some(stop) = self.render_stop(prev, None)
        {
            sh.run(&stop, &prev.dir, &env_of(prev))
                .await
                .map_err(|e| format!("stopping release {}: {e}", prev.release))?;
            did.push(format!("stopped release {} (command.stop)", prev.release));
        }
        let start = self.render_start(new, previous);
        sh.run(&start, &new.dir, &env_of(new))
            .await
            .map_err(|e| format!("starting release {}: {e}", new.release))?;
        did.push(format!("started release {} (command.start)", new.release));
        Ok(did)
    }

    async fn switch_back(
        &self,
        sh: &Shell,
        failed: &Target,
        previous: &Target,
    ) -> Result<Vec<String>, String> {
        let mut did = Vec::new();
        if let Some(stop) = self.render_stop(failed, Some(previous)) {
            // A failed release may not be running at all; its stop failing is not fatal, the
            // start of the previous one (and its checks) says whether it worked.
            match sh.run(&stop, &failed.dir, &env_of(failed)).await {
                Ok(()) => did.push(format!("stopped release {} (command.stop)", failed.release)),
                Err(e) => did.push(format!("stopping release {} failed: {e}", failed.release)),
            }
        }
        let start = self.render_start(previous, None);
        sh.run(&start, &previous.dir, &env_of(previous))
            .await
            .map_err(|e| format!("starting release {} again: {e}", previous.release))?;
        did.push(format!(
            "started release {} again (command.start)",
            previous.release
        ));
        Ok(did)
    }

    async fn stop(&self, sh: &Shell, t: &Target) -> Result<Vec<String>, String> {
        match self.render_stop(t, None) {
            Some(stop) => {
                sh.run(&stop, &t.dir, &env_of(t))
                    .await
                    .map_err(|e| format!("stopping release {}: {e}", t.release))?;
                Ok(vec![format!(
                    "stopped release {} (command.stop)",
                    t.release
                )])
            }
            None => Err("command.stop is not set: nothing can stop the release".into()),
        }
    }
}

/// docker compose, built in: `docker compose` (v2) or `docker-compose` (v1), whichever works
/// here, with the production file and the release's env file.
pub struct ComposeStrategy {
    pub file: PathBuf,
    pub service: String,
    pub project: Option<String>,
    bin: std::sync::OnceLock<String>,
}

impl ComposeStrategy {
    /// `docker compose` when the compose plugin answers, else `docker-compose`.
    pub async fn detect(&self, sh: &Shell) -> Result<String, String> {
        if let Some(b) = self.bin.get() {
            return Ok(b.clone());
        }
        let bin = if sh.probe("docker compose version").await {
            "docker compose"
        } else if sh.probe("docker-compose version").await {
            "docker-compose"
        } else {
            return Err(
                "neither `docker compose` nor `docker-compose` works on this machine".into(),
            );
        };
        let _ = self.bin.set(bin.to_string());
        Ok(bin.to_string())
    }

    fn command(&self, bin: &str, t: &Target, recreate: bool) -> String {
        let mut c = format!("{bin} -f {}", shell_quote(&self.file.display().to_string()));
        if let Some(env) = &t.env_file {
            c.push_str(&format!(
                " --env-file {}",
                shell_quote(&env.display().to_string())
            ));
        }
        if let Some(p) = &self.project {
            c.push_str(&format!(" -p {}", shell_quote(p)));
        }
        c.push_str(" up -d");
        if recreate {
            c.push_str(" --force-recreate");
        }
        c.push(' ');
        c.push_str(&shell_quote(&self.service));
        c
    }

    async fn up(&self, sh: &Shell, t: &Target, recreate: bool) -> Result<String, String> {
        let bin = self.detect(sh).await?;
        let cmd = self.command(&bin, t, recreate);
        let cwd = self.file.parent().unwrap_or(Path::new("."));
        sh.run(&cmd, cwd, &env_of(t)).await?;
        Ok(cmd)
    }
}

#[async_trait]
impl ReleaseStrategy for ComposeStrategy {
    fn name(&self) -> &'static str {
        "compose"
    }

    fn files(&self, _t: &Target) -> Vec<PathBuf> {
        vec![self.file.clone()]
    }

    fn artifact(&self, t: &Target) -> String {
        t.image
            .clone()
            .unwrap_or_else(|| t.dir.display().to_string())
    }

    async fn release(
        &self,
        sh: &Shell,
        new: &Target,
        _previous: Option<&Target>,
        action: Action,
    ) -> Result<Vec<String>, String> {
        let cmd = self
            .up(sh, new, action == Action::Recreate)
            .await
            .map_err(|e| format!("releasing {}: {e}", new.release))?;
        Ok(vec![format!(
            "{} release {}: {cmd}",
            action.name(),
            new.release
        )])
    }

    async fn switch_back(
        &self,
        sh: &Shell,
        _failed: &Target,
        previous: &Target,
    ) -> Result<Vec<String>, String> {
        // Recreated with *its* image and env file: a restart would keep the failed one's.
        let cmd = self
            .up(sh, previous, true)
            .await
            .map_err(|e| format!("recreating release {}: {e}", previous.release))?;
        Ok(vec![format!(
            "recreated release {}: {cmd}",
            previous.release
        )])
    }

    async fn stop(&self, sh: &Shell, t: &Target) -> Result<Vec<String>, String> {
        let bin = self.detect(sh).await?;
        let mut cmd = format!("{bin} -f {}", shell_quote(&self.file.display().to_string()));
        if let Some(p) = &self.project {
            cmd.push_str(&format!(" -p {}", shell_quote(p)));
        }
        cmd.push_str(&format!(" stop {}", shell_quote(&self.service)));
        let cwd = self.file.parent().unwrap_or(Path::new("."));
        sh.run(&cmd, cwd, &env_of(t)).await?;
        Ok(vec![format!("stopped release {}: {cmd}", t.release)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_named_in_commands() {
        let f = files_in_command(
            "docker-compose -f docker-compose.dev.yml --env-file .env up -d && systemctl restart app.service",
            Path::new("/srv"),
        );
        assert_eq!(
            f,
            [
                PathBuf::from("/srv/docker-compose.dev.yml"),
                PathBuf::from("app.service")
            ]
        );
        assert!(files_in_command("rm -f /srv/app.pid", Path::new("/")).is_empty());
        assert_eq!(
            files_in_command("compose -f x.yml; run", Path::new("/a")),
            [PathBuf::from("/a/x.yml")]
        );
        assert_eq!(
            files_in_command("compose --file=/x/prod.yaml up", Path::new("/")),
            [PathBuf::from("/x/prod.yaml")]
        );
    }
}
