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
    let steps: Vec<(i64, String)> = plan_steps(&j);
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

/// 1 creates `orders`, 2 seeds a row, 3 multiplies its total by 100 (data only).
fn orders() -> Migrations {
    Migrations::new(&[
        (
            "1_create_orders.up.sql",
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER NOT NULL);\n",
        ),
        (
            "2_seed.up.sql",
            "INSERT INTO orders (id, total) VALUES (1, 1050);\n",
        ),
        (
            "3_cents.up.sql",
            "UPDATE orders SET total = total * 100 WHERE id = 1;\n",
        ),
    ])
}

// SHA-384 and Flyway's CRC-32 of the files above, computed independently (Python's hashlib
// and zlib.crc32 over the text without line breaks), and of an older text of 2.
const SHA384: [&str; 3] = [
    "8f025baed26c7569228aeef0520a52cdc8c51cc982014c02d3e692f2685c176b667d50e5be8a237fc94def56368fa87e",
    "c3c72b9d6c612c57b3dcd9a2563cc6729f5d5713b58e5ac4df328471ff53c3cc1e82750841c8d7f8a49103dd59dc4878",
    "a220bdb55587db9f5964b4e2869cdb1beb3b26678e40aff23284aef7623e91b9f22d97820256891904ff2cc34db00954",
];
const SHA384_OLD_2: &str = "31cbc929d3ce1867a226dcace0e9f9db840717a22d437ad1f0a00896c47609f76a97f0679c5a945217ae541818be528c";
const CRC32: [i32; 3] = [1319826239, 1124004639, 817643972];
const CRC32_OLD_2: i32 = -1515304158;

async fn orders_applied(db: &TestDb) {
    db.exec("CREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER NOT NULL);")
        .await;
    db.exec("INSERT INTO orders (id, total) VALUES (1, 105000);")
        .await;
}

async fn total(db: &TestDb) -> String {
    db.scalar("SELECT total FROM orders WHERE id = 1")
        .await
        .unwrap()
}

db_test!(import_keeps_what_sqlx_recorded, |db| async move {
    let m = orders();
    orders_applied(&db).await;
    // `_sqlx_migrations` as sqlx creates it on each database.
    let (ts, blob, hex) = match db.dialect() {
        Dialect::Postgres => (
            "TIMESTAMPTZ NOT NULL DEFAULT now()",
            "BYTEA",
            "decode('{}', 'hex')",
        ),
        _ => (
            "TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP",
            "BLOB",
            "X'{}'",
        ),
    };
    db.exec(&format!(
        "CREATE TABLE IF NOT EXISTS _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
         installed_on {ts}, success BOOLEAN NOT NULL, checksum {blob} NOT NULL, execution_time BIGINT NOT NULL);"
    ))
    .await;
    // 2 was applied from an older text of its file.
    for (v, desc, sum, at) in [
        (1, "create orders", SHA384[0], "2024-05-01 10:00:00"),
        (2, "seed", SHA384_OLD_2, "2024-05-01 10:00:01"),
        (3, "cents", SHA384[2], "2024-05-02 08:30:00"),
    ] {
        db.exec(&format!(
            "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time) VALUES ({v}, '{desc}', '{at}', {}, {}, {});",
            boolean(db.dialect(), true),
            hex.replace("{}", sum),
            v * 12_000_000
        ))
        .await;
    }
    let plan = tm(&db, &m, &["import", "--from", "sqlx", "--format", "json"]);
    plan.ok();
    assert!(
        plan.stderr
            .contains("2 seed: the file changed since sqlx applied it"),
        "{}",
        plan.stderr
    );
    let j = plan.json();
    let read = j["read"]["read"].as_array().unwrap();
    assert_eq!(read.len(), 3, "{j}");
    assert_eq!(read[0]["applied_at"], "2024-05-01T10:00:00.000Z", "{j}");
    assert_eq!(read[0]["execution_ms"], 12, "{j}");
    assert_eq!(read[0]["checksum"], SHA384[0], "{j}");
    assert_eq!(read[0]["file_checksum"], SHA384[0], "{j}");
    assert_eq!(read[1]["checksum"], SHA384_OLD_2, "{j}");
    assert_eq!(read[1]["file_checksum"], SHA384[1], "{j}");
    assert_eq!(read[2]["description"], "cents", "{j}");
    assert!(j["steps"].as_array().unwrap().is_empty(), "{j}");

    tm(&db, &m, &["import", "--from", "sqlx", "--yes"]).ok();
    let st = tm(&db, &m, &["status", "--format", "json"]).json();
    let rows = st["migrations"].as_array().unwrap();
    assert_eq!(rows[0]["applied_at"], "2024-05-01T10:00:00.000Z", "{st}");
    assert_eq!(rows[2]["applied_at"], "2024-05-02T08:30:00.000Z", "{st}");
    assert_eq!(rows[2]["execution_ms"], 36, "{st}");
    assert_eq!(rows[1]["imported"]["tool"], "sqlx", "{st}");
    assert_eq!(rows[1]["imported"]["source_checksum"], SHA384_OLD_2, "{st}");
    assert!(
        rows[1]["imported"]["at"]
            .as_str()
            .unwrap()
            .starts_with("20"),
        "{st}"
    );
    assert_eq!(st["drift"]["status"], "clean", "{st}");
    tm(&db, &m, &["up"]).ok();
    assert_eq!(total(&db).await, "105000", "a data migration ran again");
});

db_test!(import_keeps_what_flyway_recorded, |db| async move {
    let m = Migrations::new(&[
        (
            "V1__create_orders.sql",
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER NOT NULL);\n",
        ),
        (
            "V2__seed.sql",
            "INSERT INTO orders (id, total) VALUES (1, 1050);\n",
        ),
        (
            "V3__cents.sql",
            "UPDATE orders SET total = total * 100 WHERE id = 1;\n",
        ),
    ]);
    orders_applied(&db).await;
    db.exec(
        "CREATE TABLE flyway_schema_history (installed_rank INT NOT NULL PRIMARY KEY, version VARCHAR(50), description VARCHAR(200) NOT NULL, \
         type VARCHAR(20) NOT NULL, script VARCHAR(1000) NOT NULL, checksum INT, installed_by VARCHAR(100) NOT NULL, \
         installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, execution_time INT NOT NULL, success BOOLEAN NOT NULL);",
    )
    .await;
    let t = boolean(db.dialect(), true);
    db.exec(&format!(
        "INSERT INTO flyway_schema_history (installed_rank, version, description, type, script, checksum, installed_by, installed_on, execution_time, success) VALUES \
         (1, '1', 'create orders', 'SQL', 'V1__create_orders.sql', {}, 'deploy', '2024-05-01 10:00:00', 7, {t}), \
         (2, '2', 'seed', 'SQL', 'V2__seed.sql', {}, 'deploy', '2024-05-01 10:00:01', 3, {t}), \
         (3, '3', 'cents', 'SQL', 'V3__cents.sql', {}, 'alice', '2024-05-02 08:30:00', 4, {t});",
        CRC32[0], CRC32_OLD_2, CRC32[2]
    ))
    .await;
    let plan = tm(&db, &m, &["import", "--from", "flyway", "--format", "json"]);
    plan.ok();
    assert!(
        plan.stderr
            .contains("2 V2__seed.sql: the file changed since flyway applied it"),
        "{}",
        plan.stderr
    );
    assert!(!plan.stderr.contains("1 V1__"), "{}", plan.stderr);
    let j = plan.json();
    let read = j["read"]["read"].as_array().unwrap();
    assert_eq!(read[0]["file_checksum"], CRC32[0].to_string(), "{j}");
    assert_eq!(read[2]["applied_by"], "alice", "{j}");
    tm(&db, &m, &["import", "--from", "flyway", "--yes"]).ok();
    let st = tm(&db, &m, &["status", "--format", "json"]).json();
    let rows = st["migrations"].as_array().unwrap();
    assert_eq!(rows[2]["applied_at"], "2024-05-02T08:30:00.000Z", "{st}");
    assert_eq!(rows[2]["execution_ms"], 4, "{st}");
    assert_eq!(rows[0]["imported"]["tool"], "flyway", "{st}");
    assert_eq!(
        db.scalar("SELECT applied_by FROM tidemark_history WHERE version = 3")
            .await
            .as_deref(),
        Some("alice")
    );
    tm(&db, &m, &["up"]).ok();
    assert_eq!(total(&db).await, "105000", "a data migration ran again");
});

db_test!(import_carries_flyway_repeatables_over, |db| async move {
    let m = Migrations::new(&[
        (
            "V1__create_orders.sql",
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER NOT NULL);\n",
        ),
        (
            "R__orders_view.sql",
            "DROP VIEW IF EXISTS v_orders;\nCREATE VIEW v_orders AS SELECT id FROM orders;\n",
        ),
        // Flyway ran an older text of this one.
        (
            "R__runs.sql",
            "CREATE TABLE IF NOT EXISTS runs (n INTEGER NOT NULL);\nINSERT INTO runs (n) VALUES (1);\n",
        ),
    ]);
    db.exec("CREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER NOT NULL);")
        .await;
    db.exec("CREATE VIEW v_orders AS SELECT id FROM orders;")
        .await;
    db.exec("CREATE TABLE runs (n INTEGER NOT NULL);").await;
    db.exec("INSERT INTO runs (n) VALUES (1);").await;
    db.exec(
        "CREATE TABLE flyway_schema_history (installed_rank INT NOT NULL PRIMARY KEY, version VARCHAR(50), description VARCHAR(200) NOT NULL, \
         type VARCHAR(20) NOT NULL, script VARCHAR(1000) NOT NULL, checksum INT, installed_by VARCHAR(100) NOT NULL, \
         installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, execution_time INT NOT NULL, success BOOLEAN NOT NULL);",
    )
    .await;
    let t = boolean(db.dialect(), true);
    // CRC-32s computed independently: the view file as it is; an older text of R__runs.sql.
    db.exec(&format!(
        "INSERT INTO flyway_schema_history (installed_rank, version, description, type, script, checksum, installed_by, execution_time, success) VALUES \
         (1, '1', 'create orders', 'SQL', 'V1__create_orders.sql', 1, 'app', 5, {t}), \
         (2, NULL, 'orders view', 'SQL', 'R__orders_view.sql', 1618668402, 'app', 5, {t}), \
         (3, NULL, 'runs', 'SQL', 'R__runs.sql', -1609475358, 'app', 5, {t});"
    ))
    .await;
    let j = tm(&db, &m, &["import", "--from", "flyway", "--format", "json"]).json();
    assert_eq!(j["read"]["read"][1]["state"], "repeatable", "{j}");
    assert!(j["steps"].as_array().unwrap().is_empty(), "{j}");
    tm(&db, &m, &["import", "--from", "flyway", "--yes"]).ok();
    let st = tm(&db, &m, &["status", "--format", "json"]).json();
    let states: Vec<(String, String)> = st["repeatables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["description"].as_str().unwrap().to_string(),
                r["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("orders view".to_string(), "applied".to_string()),
            ("runs".to_string(), "outdated".to_string())
        ],
        "{st}"
    );
    // As Flyway would: the changed one runs again, the unchanged one does not.
    tm(&db, &m, &["up"]).ok();
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM runs").await.as_deref(),
        Some("2")
    );
    tm(&db, &m, &["up"]).ok();
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM runs").await.as_deref(),
        Some("2")
    );
});
