//! The Kubernetes manifests in `deploy/kubernetes/` as users copy them: valid against the
//! Kubernetes schemas (`kubernetes-validate`, which `.ci/run` installs; no cluster runs here),
//! and every tidemark command line in them accepted by the real `tidemark`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn manifests() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("deploy/kubernetes")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    files
}

#[test]
#[allow(clippy::print_stderr)] // the loud SKIPPED line of a developer's machine
fn the_manifests_are_valid_kubernetes() {
    // Argo Rollouts' AnalysisTemplate is a custom resource: no schema to validate against.
    let builtin: Vec<PathBuf> = manifests()
        .into_iter()
        .filter(|p| !std::fs::read_to_string(p).unwrap().contains("argoproj.io/"))
        .collect();
    let out = match Command::new("python3")
        .args(["-m", "kubernetes_validate", "--strict"])
        .args(&builtin)
        .output()
    {
        Ok(o) if !String::from_utf8_lossy(&o.stderr).contains("No module named") => o,
        other => {
            let e = other.map(|o| String::from_utf8_lossy(&o.stderr).into_owned());
            assert!(
                std::env::var_os("CI").is_none(),
                "kubernetes-validate is missing in CI: {e:?}"
            );
            eprintln!(
                "SKIPPED the_manifests_are_valid_kubernetes: kubernetes-validate not installed (pip install kubernetes-validate)"
            );
            return;
        }
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert_eq!(
        text.matches(" passed for resource ").count(),
        builtin.len(),
        "{text}"
    );
}

#[test]
fn every_tidemark_command_line_in_them_parses() {
    let mut checked = 0;
    for f in manifests() {
        let text = std::fs::read_to_string(&f).unwrap();
        let tidemark_image = text.contains("shop-migrations");
        for line in text.lines().map(str::trim) {
            let Some(list) = line.strip_prefix("args: ") else {
                continue;
            };
            if !tidemark_image {
                continue;
            }
            let args: Vec<String> = serde_json::from_str(list)
                .unwrap_or_else(|e| panic!("{}: `{line}`: {e}", f.display()));
            crate::common::image_command_line_parses(&args, &f.display().to_string());
            checked += 1;
        }
    }
    assert!(checked >= 5, "{checked} command lines");
}
