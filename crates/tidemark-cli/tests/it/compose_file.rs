//! The docker compose file in `deploy/compose/` as users copy it (no Docker daemon runs here):
//! valid YAML of the shape compose needs, the application gated on the one-shot migration,
//! backups on a named volume, every tidemark command line in it accepted by the real
//! `tidemark`, and the README showing it word for word.

use std::path::Path;
use std::process::Command;

fn compose_text() -> String {
    let p =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/compose/docker-compose.prod.yml");
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The compose file as JSON, through Python's YAML parser (PyYAML, which Debian's python3
/// has); `None` (and a SKIPPED line) where it is missing outside CI.
#[allow(clippy::print_stderr)] // the loud SKIPPED line of a developer's machine
fn compose_json() -> Option<serde_json::Value> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin.read())))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(compose_text().as_bytes())?;
            c.wait_with_output()
        });
    match out {
        Ok(o) if o.status.success() => Some(serde_json::from_slice(&o.stdout).unwrap()),
        Ok(o) if !String::from_utf8_lossy(&o.stderr).contains("No module named") => {
            panic!(
                "the compose file is not valid YAML: {}",
                String::from_utf8_lossy(&o.stderr)
            )
        }
        other => {
            assert!(
                std::env::var_os("TIDEMARK_TEST_REQUIRE_DB").is_none(),
                "python3 with PyYAML is missing in CI: {other:?}"
            );
            eprintln!("SKIPPED the compose file's checks: python3 with PyYAML is not installed");
            None
        }
    }
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_application_starts_only_after_the_migration_succeeded() {
    let Some(c) = compose_json() else { return };
    let services = &c["services"];
    let migrate = &services["migrate"];
    // The tidemark image's entrypoint is `tidemark`: the command is its arguments.
    let args = strings(&migrate["command"]);
    assert!(args.iter().any(|a| a == "up"), "{args:?}");
    crate::common::image_command_line_parses(&args, "the migrate service");
    assert_eq!(migrate["restart"], "no", "a one-shot service");
    assert_eq!(
        migrate["depends_on"]["db"]["condition"], "service_healthy",
        "{migrate}"
    );

    let backend = &services["backend"];
    assert_eq!(
        backend["depends_on"]["migrate"]["condition"], "service_completed_successfully",
        "{backend}"
    );
    assert!(
        backend["image"]
            .as_str()
            .unwrap()
            .contains("${TIDEMARK_IMAGE"),
        "the image tidemark deploy exports: {backend}"
    );
    let test = strings(&backend["healthcheck"]["test"]);
    assert_eq!(
        test[..2],
        ["CMD".to_string(), "tidemark".to_string()],
        "{test:?}"
    );
    assert!(test.iter().any(|a| a == "check"), "{test:?}");
    // It runs in the application's image (tidemark and the migrations copied in, `--dir`
    // given).
    crate::common::command_line_stops_at(&test[2..], &[], "/app/migrations", "the healthcheck");
}

#[test]
fn backups_live_on_a_named_volume() {
    let Some(c) = compose_json() else { return };
    let mounts = strings(&c["services"]["migrate"]["volumes"]);
    let backups = mounts
        .iter()
        .find(|m| m.ends_with(":/backups"))
        .unwrap_or_else(|| {
            panic!("no volume at /backups (the image's TIDEMARK_BACKUP_DIR): {mounts:?}")
        });
    let name = backups.split(':').next().unwrap();
    assert!(
        !name.starts_with('.') && !name.starts_with('/'),
        "a named volume, not a path: {backups}"
    );
    assert!(
        c["volumes"].get(name).is_some(),
        "volume {name} is declared: {c}"
    );
    let dockerfile =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Dockerfile"))
            .unwrap();
    assert!(
        dockerfile.contains("TIDEMARK_BACKUP_DIR=/backups"),
        "the image keeps its backups in /backups"
    );
}

#[test]
fn the_readme_shows_the_compose_file_as_it_is() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    assert!(
        readme.contains(&format!("```yaml\n{}```", compose_text())),
        "README and deploy/compose/docker-compose.prod.yml differ"
    );
}
