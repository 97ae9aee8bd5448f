//! `import --from TOOL`: each tool's history table written the way that tool writes it.

use tidemark::Dialect;
use tidemark_test::{Migrations, TestDb, db_test};

use crate::common::*;

const V: [i64; 3] = [20250101000001, 20250101000002, 20250101000003];

fn migrations() -> Migrations {
    Migrations::new(&[
        (
            "20250101000001_create_a.up.sql",
            "CREATE TABLE a (id INTEGER PRIMARY KEY);\n",
        ),
        (
            "20250101000002_create_b.up.sql",
            "CREATE TABLE b (id INTEGER PRIMARY KEY, a_id INTEGER);\n",
        ),
        (
            "20250101000003_create_c.up.sql",
            "CREATE TABLE c (id INTEGER PRIMARY KEY);\n",
        ),
    ])
}

/// Apply 1 and 2 by hand, as the other tool did.
async fn applied_by_other_tool(db: &TestDb) {
    db.exec("CREATE TABLE a (id INTEGER PRIMARY KEY);\nCREATE TABLE b (id INTEGER PRIMARY KEY, a_id INTEGER);").await;
}

fn boolean(d: Dialect, v: bool) -> &'static str {
    match (d, v) {
        (Dialect::Postgres, true) => "TRUE",
        (Dialect::Postgres, false) => "FALSE",
        (_, true) => "1",
        (_, false) => "0",
    }
}

/// Import, check the plan and the resulting history: 1–2 applied, 3 pending, drift clean.
async fn import_and_verify(db: &TestDb, m: &Migrations, tool: &str, extra: &[&str]) {
    let mut args = vec!["import", "--from", tool, "--format", "json"];
    args.extend_from_slice(extra);
    let plan = tm(db, m, &args);
    plan.ok();
    let j = plan.json();
    let steps: Vec<(i64, String)> = j["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["version"].as_i64().unwrap(),
                s["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(steps, vec![(V[2], "replay".to_string())], "{tool}: {j}");
    let mut yes = vec!["import", "--from", tool, "--yes"];
    yes.extend_from_slice(extra);
    tm(db, m, &yes).ok();
    assert_eq!(
        history(db).await,
        vec![(V[0], "applied".to_string()), (V[1], "applied".to_string())],
        "{tool}"
    );
    let st = tm(db, m, &["status", "--format", "json"]).json();
    assert_eq!(
        st["drift"]["status"], "clean",
        "{tool}: the other tool's table is not drift: {st}"
    );
    tm(db, m, &["up"]).ok();
    tm(db, m, &["check"]).ok();
}

db_test!(import_from_golang_migrate, |db| async move {
    let m = migrations();
    applied_by_other_tool(&db).await;
    db.exec("CREATE TABLE schema_migrations (version BIGINT NOT NULL PRIMARY KEY, dirty BOOLEAN NOT NULL);").await;
    db.exec(&format!(
        "INSERT INTO schema_migrations (version, dirty) VALUES ({}, {});",
        V[1],
        boolean(db.dialect(), false)
    ))
    .await;
    import_and_verify(&db, &m, "golang-migrate", &[]).await;
});

db_test!(
    import_from_golang_migrate_dirty_is_checked_by_evidence,
    |db| async move {
        let m = migrations();
        // golang-migrate says 2 is dirty; the schema shows 2 complete.
        applied_by_other_tool(&db).await;
        db.exec("CREATE TABLE schema_migrations (version BIGINT NOT NULL PRIMARY KEY, dirty BOOLEAN NOT NULL);").await;
        db.exec(&format!(
            "INSERT INTO schema_migrations (version, dirty) VALUES ({}, {});",
            V[1],
            boolean(db.dialect(), true)
        ))
        .await;
        let j = tm(
            &db,
            &m,
            &["import", "--from", "golang-migrate", "--format", "json"],
        )
        .json();
        assert_eq!(j["steps"][0]["version"], V[1]);
        assert_eq!(j["steps"][0]["action"], "adopt", "{j}");
    }
);

db_test!(import_from_sqlx, |db| async move {
    let m = migrations();
    applied_by_other_tool(&db).await;
    let (blob, checksum) = match db.dialect() {
        Dialect::Postgres => ("BYTEA", "decode('00', 'hex')"),
        _ => ("BLOB", "X'00'"),
    };
    db.exec(&format!(
        "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
         installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL, checksum {blob} NOT NULL, execution_time BIGINT NOT NULL);"
    ))
    .await;
    for (v, d) in [(V[0], "create a"), (V[1], "create b")] {
        db.exec(&format!(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES ({v}, '{d}', {}, {checksum}, 1);",
            boolean(db.dialect(), true)
        ))
        .await;
    }
    import_and_verify(&db, &m, "sqlx", &[]).await;
});

db_test!(import_from_diesel, |db| async move {
    let m = migrations();
    applied_by_other_tool(&db).await;
    db.exec("CREATE TABLE __diesel_schema_migrations (version VARCHAR(50) PRIMARY KEY NOT NULL, run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP);").await;
    db.exec(&format!(
        "INSERT INTO __diesel_schema_migrations (version) VALUES ('{}'), ('{}');",
        V[0], V[1]
    ))
    .await;
    import_and_verify(&db, &m, "diesel", &[]).await;
});

db_test!(import_from_flyway, |db| async move {
    let m = migrations();
    applied_by_other_tool(&db).await;
    db.exec(
        "CREATE TABLE flyway_schema_history (installed_rank INT NOT NULL PRIMARY KEY, version VARCHAR(50), description VARCHAR(200) NOT NULL, \
         type VARCHAR(20) NOT NULL, script VARCHAR(1000) NOT NULL, checksum INT, installed_by VARCHAR(100) NOT NULL, \
         installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, execution_time INT NOT NULL, success BOOLEAN NOT NULL);",
    )
    .await;
    let t = boolean(db.dialect(), true);
    db.exec(&format!(
        "INSERT INTO flyway_schema_history (installed_rank, version, description, type, script, checksum, installed_by, execution_time, success) VALUES \
         (1, '{}', 'create a', 'SQL', 'V{}__create_a.sql', 123, 'app', 5, {t}), \
         (2, '{}', 'create b', 'SQL', 'V{}__create_b.sql', 456, 'app', 5, {t});",
        V[0], V[0], V[1], V[1]
    ))
    .await;
    import_and_verify(&db, &m, "flyway", &[]).await;
});

db_test!(import_from_dbmate, |db| async move {
    let m = migrations();
    applied_by_other_tool(&db).await;
    db.exec("CREATE TABLE schema_migrations (version VARCHAR(128) NOT NULL PRIMARY KEY);")
        .await;
    db.exec(&format!(
        "INSERT INTO schema_migrations (version) VALUES ('{}'), ('{}');",
        V[0], V[1]
    ))
    .await;
    import_and_verify(&db, &m, "dbmate", &[]).await;
});

db_test!(import_from_alembic, |db| async move {
    let m = migrations();
    applied_by_other_tool(&db).await;
    let alembic = tempfile::tempdir().unwrap();
    std::fs::write(
        alembic.path().join("1a2b_create_a.py"),
        "revision = '1a2b'\ndown_revision = None\n",
    )
    .unwrap();
    std::fs::write(
        alembic.path().join("3c4d_create_b.py"),
        "revision = '3c4d'\ndown_revision = '1a2b'\n",
    )
    .unwrap();
    std::fs::write(
        alembic.path().join("5e6f_create_c.py"),
        "revision: str = '5e6f'\ndown_revision: Union[str, None] = '3c4d'\n",
    )
    .unwrap();
    db.exec("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num));").await;
    db.exec("INSERT INTO alembic_version (version_num) VALUES ('3c4d');")
        .await;
    let dir = alembic.path().to_str().unwrap();
    import_and_verify(&db, &m, "alembic", &["--alembic-dir", dir]).await;
});

db_test!(import_catches_a_lying_history, |db| async move {
    let m = migrations();
    // dbmate claims all three, but 3 never ran.
    applied_by_other_tool(&db).await;
    db.exec("CREATE TABLE schema_migrations (version VARCHAR(128) NOT NULL PRIMARY KEY);")
        .await;
    db.exec(&format!(
        "INSERT INTO schema_migrations (version) VALUES ('{}'), ('{}'), ('{}');",
        V[0], V[1], V[2]
    ))
    .await;
    let j = tm(&db, &m, &["import", "--from", "dbmate", "--format", "json"]).json();
    assert_eq!(j["steps"][0]["version"], V[2]);
    assert_eq!(j["steps"][0]["action"], "forget", "{j}");
    let missing_table = tm(&db, &m, &["import", "--from", "flyway"]);
    missing_table.code(2);
    assert!(
        missing_table.stderr.contains("flyway_schema_history"),
        "{}",
        missing_table.stderr
    );
    tm(&db, &m, &["import", "--from", "dbmate", "--yes"]).ok();
    assert_eq!(versions(&history(&db).await), V[..2].to_vec());
});
