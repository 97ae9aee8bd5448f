//! Side by side during a move: with sync on, tidemark also writes the other tool's history
//! table when it applies or reverts a migration, in that tool's format, so the old tool (still
//! run by the application at start-up) finds nothing to do. sqlx is proven with sqlx's own
//! migrator, dbmate with the real `dbmate` where it is installed; the other tables are
//! checked row by row against the format their tools write.

use std::path::{Path, PathBuf};

use tidemark::Dialect;
use tidemark_test::{Migrations, TestDb, db_test};

use crate::common::*;

/// What `sqlx::migrate!()` does at an application's start-up: sqlx's own migrator, on the
/// same files.
async fn sqlx_migrate(db: &TestDb, dir: &Path) -> Result<(), String> {
    let migrator = sqlx::migrate::Migrator::new(dir)
        .await
        .map_err(|e| e.to_string())?;
    let r = match db.dialect() {
        Dialect::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url_string()).await.unwrap();
            let r = migrator.run(&pool).await;
            pool.close().await;
            r
        }
        Dialect::MySql => {
            let pool = sqlx::MySqlPool::connect(&db.url_string()).await.unwrap();
            let r = migrator.run(&pool).await;
            pool.close().await;
            r
        }
        Dialect::Sqlite => {
            let opts = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(db.sqlite_path().unwrap())
                .create_if_missing(true);
            let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
            let r = migrator.run(&pool).await;
            pool.close().await;
            r
        }
    };
    r.map_err(|e| e.to_string())
}

async fn total(db: &TestDb) -> String {
    db.scalar("SELECT total FROM orders WHERE id = 1")
        .await
        .unwrap()
}

async fn column(db: &TestDb, sql: &str) -> Vec<String> {
    db.rows(sql)
        .await
        .into_iter()
        .map(|r| r[0].clone().unwrap_or_default())
        .collect()
}

db_test!(sqlx_keeps_running_beside_tidemark, |db| async move {
    // The project used sqlx: its own migrator applied 1 and 2.
    let m = Migrations::new(&[
        (
            "1_orders.up.sql",
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER NOT NULL);\nINSERT INTO orders (id, total) VALUES (1, 1050);\n",
        ),
        ("1_orders.down.sql", "DROP TABLE orders;\n"),
        (
            "2_cents.up.sql",
            "UPDATE orders SET total = total * 100 WHERE id = 1;\n",
        ),
        (
            "2_cents.down.sql",
            "UPDATE orders SET total = total / 100 WHERE id = 1;\n",
        ),
    ]);
    sqlx_migrate(&db, m.path()).await.unwrap();
    assert_eq!(total(&db).await, "105000");

    tm(
        &db,
        &m,
        &["import", "--from", "sqlx", "--keep-in-sync", "--yes"],
    )
    .ok();
    let st = tm(&db, &m, &["status", "--format", "json"]).json();
    assert_eq!(st["sync"]["tool"], "sqlx", "{st}");
    assert_eq!(st["sync"]["table"], "_sqlx_migrations", "{st}");
    let text = tm(&db, &m, &["status"]);
    assert!(text.stdout.contains("sync on"), "{}", text.stdout);

    // tidemark applies the next migrations; sqlx at the next start-up sees nothing to do.
    m.write(
        "3_note.up.sql",
        "ALTER TABLE orders ADD COLUMN note VARCHAR(20);\n",
    );
    m.write("3_note.down.sql", "ALTER TABLE orders DROP COLUMN note;\n");
    m.write(
        "4_bump.up.sql",
        "UPDATE orders SET total = total + 1 WHERE id = 1;\n",
    );
    m.write(
        "4_bump.down.sql",
        "UPDATE orders SET total = total - 1 WHERE id = 1;\n",
    );
    tm(&db, &m, &["up"]).ok();
    assert_eq!(total(&db).await, "105001");
    sqlx_migrate(&db, m.path()).await.unwrap();
    assert_eq!(total(&db).await, "105001", "sqlx ran a migration again");
    assert_eq!(
        column(
            &db,
            "SELECT description FROM _sqlx_migrations ORDER BY version"
        )
        .await,
        ["orders", "cents", "note", "bump"]
    );

    // A revert removes sqlx's row too; applying again writes it again.
    tm(&db, &m, &["down", "--steps", "1"]).ok();
    assert_eq!(total(&db).await, "105000");
    assert_eq!(
        column(&db, "SELECT version FROM _sqlx_migrations ORDER BY version").await,
        ["1", "2", "3"]
    );
    tm(&db, &m, &["up"]).ok();
    sqlx_migrate(&db, m.path()).await.unwrap();
    assert_eq!(total(&db).await, "105001", "sqlx ran a migration again");
    tm(&db, &m, &["check"]).ok();

    // Off is one command.
    let off = tm(&db, &m, &["sync", "--off"]);
    off.ok();
    assert!(off.stdout.contains("sync off"), "{}", off.stdout);
    let st = tm(&db, &m, &["status", "--format", "json"]).json();
    assert!(st["sync"]["tool"].is_null(), "{st}");
    m.write(
        "5_more.up.sql",
        "UPDATE orders SET total = total + 10 WHERE id = 1;\n",
    );
    tm(&db, &m, &["up"]).ok();
    assert_eq!(total(&db).await, "105011");
    assert_eq!(
        column(&db, "SELECT version FROM _sqlx_migrations ORDER BY version").await,
        ["1", "2", "3", "4"]
    );
});

/// The real `dbmate`, where installed: `TIDEMARK_TEST_DBMATE`, else `dbmate` on PATH.
fn dbmate() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TIDEMARK_TEST_DBMATE").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("dbmate"))
            .find(|p| p.is_file())
    })
}

fn dbmate_url(db: &TestDb) -> String {
    match db.dialect() {
        Dialect::Postgres => format!("{}?sslmode=disable", db.url_string()),
        Dialect::MySql => db.url_string(),
        Dialect::Sqlite => format!("sqlite:{}", db.sqlite_path().unwrap().display()),
    }
}

fn run_dbmate(bin: &Path, db: &TestDb, m: &Migrations, args: &[&str]) -> Run {
    std::process::Command::new(bin)
        .arg("--url")
        .arg(dbmate_url(db))
        .arg("--migrations-dir")
        .arg(m.path())
        .arg("--no-dump-schema")
        .args(args)
        .output()
        .expect("run dbmate")
        .into()
}

db_test!(dbmate_sees_nothing_to_do, |db| async move {
    let m = Migrations::new(&[
        (
            "20240101000001_orders.sql",
            "-- migrate:up\nCREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER NOT NULL);\nINSERT INTO orders (id, total) VALUES (1, 1050);\n-- migrate:down\nDROP TABLE orders;\n",
        ),
        (
            "20240101000002_cents.sql",
            "-- migrate:up\nUPDATE orders SET total = total * 100 WHERE id = 1;\n-- migrate:down\nUPDATE orders SET total = total / 100 WHERE id = 1;\n",
        ),
    ]);
    tm(&db, &m, &["sync", "--to", "dbmate"]).ok();
    tm(&db, &m, &["up"]).ok();
    assert_eq!(
        column(
            &db,
            "SELECT version FROM schema_migrations ORDER BY version"
        )
        .await,
        ["20240101000001", "20240101000002"]
    );
    tm(&db, &m, &["down", "--steps", "1"]).ok();
    assert_eq!(
        column(
            &db,
            "SELECT version FROM schema_migrations ORDER BY version"
        )
        .await,
        ["20240101000001"]
    );
    tm(&db, &m, &["up"]).ok();
    assert_eq!(total(&db).await, "105000");
    tm(&db, &m, &["check"]).ok();
    #[allow(clippy::print_stderr)] // a note when dbmate is not installed (not a skip)
    match dbmate() {
        Some(bin) => {
            run_dbmate(&bin, &db, &m, &["status", "--exit-code"]).ok();
            run_dbmate(&bin, &db, &m, &["migrate"]).ok();
            assert_eq!(total(&db).await, "105000", "dbmate ran a migration again");
        }
        None => eprintln!(
            "NOTE: dbmate is not installed (npm install dbmate, or set TIDEMARK_TEST_DBMATE): its table was checked against dbmate's format only"
        ),
    }
});

db_test!(golang_migrate_table_follows, |db| async move {
    let m = Migrations::new(&[
        ("1_a.up.sql", "CREATE TABLE a (id INTEGER PRIMARY KEY);\n"),
        ("1_a.down.sql", "DROP TABLE a;\n"),
        ("2_b.up.sql", "CREATE TABLE b (id INTEGER PRIMARY KEY);\n"),
        ("2_b.down.sql", "DROP TABLE b;\n"),
    ]);
    tm(&db, &m, &["sync", "--to", "golang-migrate"]).ok();
    tm(&db, &m, &["up"]).ok();
    // golang-migrate keeps one row: the version, not dirty.
    let rows = db
        .rows("SELECT version, CASE WHEN dirty THEN 1 ELSE 0 END FROM schema_migrations")
        .await;
    assert_eq!(rows, [[Some("2".to_string()), Some("0".to_string())]]);
    tm(&db, &m, &["down", "--steps", "1"]).ok();
    assert_eq!(
        column(&db, "SELECT version FROM schema_migrations").await,
        ["1"]
    );
    tm(&db, &m, &["down", "--steps", "1"]).ok();
    assert!(
        column(&db, "SELECT version FROM schema_migrations")
            .await
            .is_empty()
    );
    tm(&db, &m, &["up"]).ok();
    assert_eq!(
        column(&db, "SELECT version FROM schema_migrations").await,
        ["2"]
    );
    tm(&db, &m, &["check"]).ok();
    // The table golang-migrate reads is recognised as its own.
    let refused = tm(&db, &m, &["import", "--from", "golang-migrate"]);
    assert!(
        refused.stderr.contains("already has 2 row(s)"),
        "{}",
        refused.stderr
    );
});

db_test!(diesel_table_follows, |db| async move {
    let m = Migrations::new(&[
        (
            "2024-01-01-000001_create_a/up.sql",
            "CREATE TABLE a (id INTEGER PRIMARY KEY);\n",
        ),
        ("2024-01-01-000001_create_a/down.sql", "DROP TABLE a;\n"),
        (
            "2024-01-01-000002_create_b/up.sql",
            "CREATE TABLE b (id INTEGER PRIMARY KEY);\n",
        ),
        ("2024-01-01-000002_create_b/down.sql", "DROP TABLE b;\n"),
    ]);
    tm(&db, &m, &["sync", "--to", "diesel"]).ok();
    tm(&db, &m, &["up"]).ok();
    // diesel's version: the directory's digits, dashes removed.
    assert_eq!(
        column(
            &db,
            "SELECT version FROM __diesel_schema_migrations ORDER BY version"
        )
        .await,
        ["20240101000001", "20240101000002"]
    );
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM __diesel_schema_migrations WHERE run_on IS NOT NULL")
            .await
            .as_deref(),
        Some("2")
    );
    tm(&db, &m, &["down", "--steps", "1"]).ok();
    assert_eq!(
        column(&db, "SELECT version FROM __diesel_schema_migrations").await,
        ["20240101000001"]
    );
    tm(&db, &m, &["up"]).ok();
    tm(&db, &m, &["check"]).ok();
    // The real diesel CLI, where installed (`TIDEMARK_TEST_DIESEL`; not installed by CI: it
    // takes minutes to build), on SQLite: it sees both applied and runs nothing.
    if db.dialect() == Dialect::Sqlite
        && let Some(bin) = std::env::var_os("TIDEMARK_TEST_DIESEL").filter(|p| !p.is_empty())
    {
        let url = db.sqlite_path().unwrap();
        let diesel = |args: &[&str]| -> Run {
            std::process::Command::new(&bin)
                .args(args)
                .arg("--database-url")
                .arg(&url)
                .arg("--migration-dir")
                .arg(m.path())
                .output()
                .expect("run diesel")
                .into()
        };
        let list = diesel(&["migration", "list"]);
        list.ok();
        assert!(
            list.stdout.contains("[X] 2024-01-01-000002_create_b") && !list.stdout.contains("[ ]"),
            "{}",
            list.stdout
        );
        let run = diesel(&["migration", "run"]);
        run.ok();
        assert!(!run.stdout.contains("Running migration"), "{}", run.stdout);
    }
});

db_test!(flyway_table_follows, |db| async move {
    let m = Migrations::new(&[
        (
            "V1__create_a.sql",
            "CREATE TABLE a (id INTEGER PRIMARY KEY);\n",
        ),
        ("U1__create_a.sql", "DROP TABLE a;\n"),
        (
            "V2__create_b.sql",
            "CREATE TABLE b (id INTEGER PRIMARY KEY);\n",
        ),
        ("U2__create_b.sql", "DROP TABLE b;\n"),
    ]);
    // Wrong layout for the tool: refused, naming why.
    let wrong = tm(&db, &m, &["sync", "--to", "sqlx"]);
    wrong.code(2);
    assert!(wrong.stderr.contains("native layout"), "{}", wrong.stderr);
    tm(&db, &m, &["sync", "--to", "flyway"]).ok();
    tm(&db, &m, &["up"]).ok();
    let rows = db
        .rows(
            "SELECT installed_rank, version, description, type, script, checksum, CASE WHEN success THEN 1 ELSE 0 END \
             FROM flyway_schema_history ORDER BY installed_rank",
        )
        .await;
    let s = |x: &str| Some(x.to_string());
    // Checksums: Flyway's CRC-32 of each file's lines, computed independently.
    assert_eq!(
        rows,
        [
            [
                s("1"),
                s("1"),
                s("create a"),
                s("SQL"),
                s("V1__create_a.sql"),
                s("-787013892"),
                s("1")
            ],
            [
                s("2"),
                s("2"),
                s("create b"),
                s("SQL"),
                s("V2__create_b.sql"),
                s("1652765503"),
                s("1")
            ],
        ]
    );
    tm(&db, &m, &["down", "--steps", "1"]).ok();
    assert_eq!(
        column(&db, "SELECT version FROM flyway_schema_history").await,
        ["1"]
    );
    tm(&db, &m, &["up"]).ok();
    assert_eq!(
        column(
            &db,
            "SELECT installed_rank FROM flyway_schema_history ORDER BY installed_rank"
        )
        .await,
        ["1", "2"]
    );
    tm(&db, &m, &["check"]).ok();
});

db_test!(
    what_repair_adopts_is_written_for_the_other_tool_too,
    |db| async move {
        let m = Migrations::new(&[
            (
                "1_orders.up.sql",
                "CREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER NOT NULL);\nINSERT INTO orders (id, total) VALUES (1, 1050);\n",
            ),
            (
                "2_cents.up.sql",
                "UPDATE orders SET total = total * 100 WHERE id = 1;\n",
            ),
        ]);
        tm(&db, &m, &["sync", "--to", "sqlx"]).ok();
        tm(&db, &m, &["up", "--to", "1"]).ok();
        // 2 was run by hand; a person records that it ran.
        db.exec("UPDATE orders SET total = total * 100 WHERE id = 1")
            .await;
        tm(&db, &m, &["repair", "--adopt", "2", "--yes"]).ok();
        assert_eq!(
            column(&db, "SELECT version FROM _sqlx_migrations ORDER BY version").await,
            ["1", "2"]
        );
        sqlx_migrate(&db, m.path()).await.unwrap();
        assert_eq!(total(&db).await, "105000", "sqlx ran migration 2 again");
    }
);
