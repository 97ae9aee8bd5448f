//! `tidemark lint` through the real binary. Lint never connects, so these tests need no
//! database server.

use std::path::Path;

use crate::common::{Run, command};

/// A project directory with `migrations/` holding `files`, and optionally a tidemark.toml.
fn project(files: &[(&str, &str)], config: Option<&str>) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (name, body) in files {
        let p = d.path().join("migrations").join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
    if let Some(c) = config {
        std::fs::write(d.path().join("tidemark.toml"), c).unwrap();
    }
    d
}

fn lint(cwd: &Path, args: &[&str]) -> Run {
    command(cwd)
        .arg("lint")
        .args(args)
        .output()
        .expect("run tidemark")
        .into()
}

/// A small PostgreSQL project that trips rules of every kind.
const PG: &[(&str, &str)] = &[
    (
        "001_create_users.up.sql",
        "CREATE TABLE users (\n  id bigserial PRIMARY KEY,\n  email text NOT NULL\n);\nCREATE INDEX users_email ON users (email);\n",
    ),
    ("001_create_users.down.sql", "DROP TABLE users;\n"),
    (
        "002_reshape_users.up.sql",
        "-- tidemark:lint-ignore drop-column the app stopped reading it in 2.3\nALTER TABLE users DROP COLUMN legacy_flag;\nALTER TABLE users ADD COLUMN tenant_id bigint NOT NULL;\nALTER TABLE users RENAME COLUMN email TO login;\nCREATE INDEX users_tenant ON users (tenant_id);\n",
    ),
    (
        "002_reshape_users.down.sql",
        "ALTER TABLE users RENAME COLUMN login TO email;\nALTER TABLE users DROP COLUMN tenant_id;\n",
    ),
    (
        "003_orders_fk.up.sql",
        "-- tidemark:lint-ignore constraint-without-not-valid\nALTER TABLE orders ADD CONSTRAINT orders_user_fk FOREIGN KEY (user_id) REFERENCES users (id);\nDELETE FROM sessions;\nDO $$ BEGIN PERFORM 1; END $$;\n",
    ),
    (
        "004_index_concurrently.up.sql",
        "CREATE INDEX CONCURRENTLY orders_created ON orders (created_at);\n",
    ),
    (
        "004_index_concurrently.down.sql",
        "-- tidemark:no-transaction\nDROP INDEX CONCURRENTLY orders_created;\n",
    ),
];

#[test]
fn text_output_is_like_a_compiler() {
    let p = project(PG, None);
    let r = lint(p.path(), &["--dialect", "postgres"]);
    r.code(1);
    insta::assert_snapshot!("lint_text", r.stdout);
}

#[test]
fn json_output_has_one_based_lines() {
    let p = project(PG, None);
    let r = lint(p.path(), &["--dialect", "postgres", "--format", "json"]);
    r.code(1);
    let doc = r.json();
    let first = &doc["findings"][0];
    assert!(first["line"].as_u64().unwrap() >= 1, "{first}");
    assert!(doc["errors"].as_u64().unwrap() > 0);
    insta::assert_snapshot!("lint_json", r.stdout);
}

#[test]
fn github_output_is_workflow_annotations() {
    let p = project(PG, None);
    let r = lint(p.path(), &["--dialect", "postgres", "--format", "github"]);
    r.code(1);
    assert!(
        r.stdout
            .lines()
            .filter(|l| l.starts_with("::"))
            .all(|l| l.starts_with("::error file=") || l.starts_with("::warning file=")),
        "{}",
        r.stdout
    );
    insta::assert_snapshot!("lint_github", r.stdout);
}

#[test]
fn list_rules_is_stable() {
    // A snapshot, so renaming a rule id (a breaking change) cannot go unnoticed.
    let d = tempfile::tempdir().unwrap();
    let r = lint(d.path(), &["--list-rules"]);
    r.ok();
    insta::assert_snapshot!("lint_list_rules", r.stdout);
    let r = lint(d.path(), &["--list-rules", "--format", "json"]);
    let doc = r.ok().json();
    let ids: Vec<&str> = doc["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"drop-column") && ids.contains(&"missing-down"),
        "{ids:?}"
    );
    assert_eq!(doc["aliases"]["ban-drop-column"], "drop-column");
}

#[test]
fn exit_codes_follow_the_worst_finding() {
    let clean = project(
        &[
            ("001_a.up.sql", "CREATE TABLE a (id int PRIMARY KEY);\n"),
            ("001_a.down.sql", "DROP TABLE a;\n"),
        ],
        None,
    );
    let r = lint(clean.path(), &["--dialect", "sqlite"]);
    r.ok();
    assert!(
        r.stdout
            .contains("ok: 1 migration checked (sqlite): no findings"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.lines().count() == 1, "{}", r.stdout);

    let warnings = project(
        &[("001_a.sql", "CREATE TABLE a (id int PRIMARY KEY);\n")],
        None,
    );
    let r = lint(warnings.path(), &["--dialect", "sqlite"]);
    r.ok();
    assert!(r.stdout.contains("warning[missing-down]"), "{}", r.stdout);

    let errors = project(&[("001_a.sql", "DROP TABLE a;\n")], None);
    lint(errors.path(), &["--dialect", "sqlite"]).code(1);
}

#[test]
fn config_sets_levels_and_dialect_and_rejects_unknown_rules() {
    let files = &[("001_a.sql", "DROP TABLE a;\nCREATE TABLE b (id INTEGER);\n")];
    let p = project(
        files,
        Some(
            "[lint]\ndialect = \"sqlite\"\n[lint.rules]\ndrop-table = \"warning\"\nmissing-down = \"off\"\ncreate-without-if-not-exists = \"error\"\n",
        ),
    );
    let r = lint(p.path(), &[]);
    r.code(1);
    assert!(r.stdout.contains("warning[drop-table]"), "{}", r.stdout);
    assert!(
        r.stdout.contains("error[create-without-if-not-exists]"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("missing-down"), "{}", r.stdout);
    assert!(r.stdout.contains("(sqlite)"), "{}", r.stdout);

    let p = project(
        files,
        Some("[lint]\ndialect = \"sqlite\"\n[lint.rules]\ndrop-tabel = \"off\"\n"),
    );
    let r = lint(p.path(), &[]);
    r.code(2);
    assert!(r.stderr.contains("`drop-tabel`"), "{}", r.stderr);

    let p = project(
        files,
        Some("[lint]\ndialect = \"sqlite\"\n[lint.rules]\ndrop-table = \"loud\"\n"),
    );
    let r = lint(p.path(), &[]);
    r.code(2);
    assert!(
        r.stderr.contains("rules.drop-table") && r.stderr.contains("`loud`"),
        "{}",
        r.stderr
    );
}

#[test]
fn dialect_comes_from_the_url_scheme_without_connecting() {
    // MySQL commits each DDL statement: two in one migration is a half-apply risk there only.
    let p = project(
        &[
            (
                "001_a.up.sql",
                "CREATE TABLE a (id INT);\nCREATE TABLE b (id INT);\n",
            ),
            ("001_a.down.sql", "DROP TABLE b;\nDROP TABLE a;\n"),
        ],
        None,
    );
    // 192.0.2.1 is TEST-NET-1: connecting there would hang, so a quick answer proves no
    // connection was tried.
    let r = lint(p.path(), &["-d", "mysql://app:secret@192.0.2.1:3306/app"]);
    r.code(1);
    assert!(
        r.stdout.contains("error[multiple-ddl-statements]") && r.stdout.contains("(mysql)"),
        "{}",
        r.stdout
    );
    assert!(!r.all().contains("secret"));
    let r = lint(p.path(), &["-d", "postgres://app@192.0.2.1/app"]);
    r.ok();
    let r = lint(p.path(), &[]);
    r.code(2);
    assert!(r.stderr.contains("--dialect"), "{}", r.stderr);
}

#[test]
fn paths_can_name_files_of_any_layout() {
    let p = project(
        &[
            (
                "2024-01-01-000000_users/up.sql",
                "CREATE TABLE users (id int);\n",
            ),
            ("2024-01-01-000000_users/down.sql", "DROP TABLE users;\n"),
            ("2024-02-01-000000_drop/up.sql", "DROP TABLE users;\n"),
            (
                "2024-02-01-000000_drop/down.sql",
                "CREATE TABLE users (id int);\n",
            ),
        ],
        None,
    );
    let r = lint(
        p.path(),
        &[
            "--dialect",
            "postgres",
            "migrations/2024-01-01-000000_users/up.sql",
        ],
    );
    r.ok();
    assert!(r.stdout.contains("1 migration checked"), "{}", r.stdout);
    let r = lint(
        p.path(),
        &[
            "--dialect",
            "postgres",
            "migrations/2024-02-01-000000_drop/down.sql",
        ],
    );
    r.code(1);
    assert!(
        r.stdout
            .contains("migrations/2024-02-01-000000_drop/up.sql:1:12: error[drop-table]"),
        "{}",
        r.stdout
    );

    let dbmate = project(
        &[(
            "20240101000000_users.sql",
            "-- migrate:up\nCREATE TABLE users (id int);\nDROP TABLE old_users;\n\n-- migrate:down\n-- tidemark:lint-ignore-file drop-table old_users was archived by 2023_archive\nDROP TABLE users;\n",
        )],
        None,
    );
    let r = lint(
        dbmate.path(),
        &[
            "--dialect",
            "postgres",
            "migrations/20240101000000_users.sql",
        ],
    );
    r.ok();
}

#[test]
fn bad_input_is_exit_2_naming_it() {
    let p = project(&[("001_a.sql", "SELECT 1;\n")], None);
    let r = lint(p.path(), &["--dialect", "postgres", "no/such/dir"]);
    r.code(2);
    assert!(r.stderr.contains("no/such/dir"), "{}", r.stderr);

    let p = project(
        &[(
            "001_a.sql",
            "SELECT 1;\nINSERT INTO t VALUES ('unterminated);\n",
        )],
        None,
    );
    let r = lint(p.path(), &["--dialect", "postgres"]);
    r.code(2);
    assert!(
        r.stderr.contains("001_a.sql:2") && r.stderr.contains("unterminated"),
        "{}",
        r.stderr
    );

    let p = project(&[("001_a.sql", "SELECT 1;\n"), ("README.md", "docs")], None);
    let r = lint(p.path(), &["--dialect", "postgres", "migrations/README.md"]);
    r.code(2);
    assert!(
        r.stderr.contains("README.md") && r.stderr.contains("not a migration file"),
        "{}",
        r.stderr
    );

    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("migrations")).unwrap();
    std::fs::write(d.path().join("migrations/001_a.sql"), b"SELECT '\xff';\n").unwrap();
    let r = lint(d.path(), &["--dialect", "postgres"]);
    r.code(2);
    assert!(
        r.stderr.contains("001_a.sql:1") && r.stderr.contains("UTF-8"),
        "{}",
        r.stderr
    );

    let r = lint(d.path(), &["--dialect", "oracle"]);
    r.code(2);
}

#[test]
fn github_format_is_only_for_lint() {
    let d = tempfile::tempdir().unwrap();
    let r: Run = command(d.path())
        .args(["status", "--format", "github"])
        .output()
        .unwrap()
        .into();
    r.code(2);
    assert!(r.stderr.contains("--format github"), "{}", r.stderr);
}

/// Versions of the files that have findings.
fn linted_versions(r: &Run) -> Vec<i64> {
    let j = r.json();
    let mut v: Vec<i64> = j["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["version"].as_i64().unwrap())
        .collect();
    v.sort();
    v
}

/// Three migrations, each dropping a column (an error finding).
const THREE: &[(&str, &str)] = &[
    ("1_a.sql", "ALTER TABLE t DROP COLUMN a;\n"),
    ("2_b.sql", "ALTER TABLE t DROP COLUMN b;\n"),
    ("3_c.sql", "ALTER TABLE t DROP COLUMN c;\n"),
];

#[test]
fn lint_judges_only_what_ships_since_a_baseline() {
    let d = project(THREE, Some("[lint]\ndialect = \"postgres\"\nsince = 2\n"));
    let r = lint(d.path(), &["--format", "json"]);
    assert_eq!(linted_versions(&r), [3]);
    assert_eq!(r.json()["classes"][0]["class"], "destructive");
}

#[test]
fn lint_changed_since_a_git_ref() {
    let d = project(THREE, Some("[lint]\ndialect = \"postgres\"\n"));
    let git = |args: &[&str]| {
        let ok = std::process::Command::new("git")
            .args(args)
            .current_dir(d.path())
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@t")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@t")
            .status()
            .unwrap()
            .success();
        assert!(ok, "git {args:?}");
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "base"]);
    // A pull request: 2 edited, 4 new (not even staged).
    std::fs::write(
        d.path().join("migrations/2_b.sql"),
        "ALTER TABLE t DROP COLUMN bb;\n",
    )
    .unwrap();
    std::fs::write(
        d.path().join("migrations/4_d.sql"),
        "CREATE TABLE d (id int);\n",
    )
    .unwrap();
    let r = lint(d.path(), &["--format", "json", "--changed-since", "main"]);
    assert_eq!(linted_versions(&r), [2, 4]);
    let r = lint(d.path(), &["--changed-since", "no-such-ref"]);
    r.code(2);
    assert!(r.stderr.contains("no-such-ref"), "{}", r.stderr);
}

/// `lock-wait-without-timeout` judges the migrations as `up` will run them: quiet while
/// `[migrate] statement_lock_timeout` bounds each statement's wait, a finding when it is off.
#[test]
fn a_lock_wait_without_timeout_follows_the_migrate_config() {
    let files = &[
        (
            "001_a.up.sql",
            "ALTER TABLE accounts ADD COLUMN note text;\n",
        ),
        ("001_a.down.sql", "ALTER TABLE accounts DROP COLUMN note;\n"),
    ];
    let on = project(files, Some("[lint]\ndialect = \"postgres\"\n"));
    let r = lint(on.path(), &[]);
    assert!(
        !r.stdout.contains("lock-wait-without-timeout"),
        "{}",
        r.stdout
    );
    let off = project(
        files,
        Some("[lint]\ndialect = \"postgres\"\n[migrate]\nstatement_lock_timeout = \"0s\"\n"),
    );
    let r = lint(off.path(), &[]);
    assert!(
        r.stdout.contains("warning[lock-wait-without-timeout]")
            && r.stdout.contains("statement_lock_timeout` is off"),
        "{}",
        r.stdout
    );
}
