//! Drills (issue 13): restore, rollback and repair rehearsed on scratch copies, on every
//! database, passing and failing; the live database untouched; scratch databases never left.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tidemark::Dialect;
use tidemark_test::{Migrations, TestDb, db_test};

use crate::common::*;

/// What a drill must never change: the live schema's fingerprint, every history row, the
/// journal and the identity.
async fn live_state(db: &TestDb, m: &Migrations) -> (String, Vec<Vec<Option<String>>>, String) {
    let fp = tm(db, m, &["inspect", "--fingerprint"]);
    fp.ok();
    let hist = db
        .rows(
            "SELECT version, name, checksum, state, applied_at, schema_fingerprint FROM tidemark_history ORDER BY version",
        )
        .await;
    let journal = db
        .scalar("SELECT COUNT(*) FROM tidemark_journal")
        .await
        .unwrap_or_default();
    (fp.stdout, hist, journal)
}

fn drill(db: &TestDb, m: &Migrations, args: &[&str]) -> (Run, serde_json::Value) {
    let mut a = vec!["drill"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["--format", "json"]);
    let r = tm(db, m, &a);
    let j = r.json();
    (r, j)
}

fn database_id(db: &TestDb, m: &Migrations) -> String {
    let l = tm(db, m, &["backup", "list", "--format", "json"]);
    l.ok();
    l.json()["database_id"].as_str().unwrap().to_string()
}

/// The scratch databases of drills (names starting `tm_drill_`) that exist now.
async fn scratches(db: &TestDb, m: &Migrations) -> Vec<String> {
    match db.dialect() {
        Dialect::Postgres => db
            .rows("SELECT datname::text FROM pg_database WHERE datname LIKE 'tm_drill_%'")
            .await
            .into_iter()
            .filter_map(|r| r[0].clone())
            .collect(),
        Dialect::MySql => db
            .rows("SELECT CAST(SCHEMA_NAME AS CHAR) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'tm_drill_%'")
            .await
            .into_iter()
            .filter_map(|r| r[0].clone())
            .collect(),
        Dialect::Sqlite => {
            let dir = m
                .path()
                .join(".backups")
                .join(database_id(db, m))
                .join(".drill-scratch");
            std::fs::read_dir(dir)
                .map(|rd| {
                    rd.filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| n.starts_with("tm_drill_") && n.ends_with(".sqlite"))
                        .map(|n| n.trim_end_matches(".sqlite").to_string())
                        .collect()
                })
                .unwrap_or_default()
        }
    }
}

/// The scratch database a step says it used.
fn scratch_of(j: &serde_json::Value) -> String {
    let d = j["drills"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "restore")
        .expect("a restore step")["detail"]
        .as_str()
        .unwrap()
        .to_string();
    d.rsplit(' ').next().unwrap().to_string()
}

fn step_names(j: &serde_json::Value) -> Vec<String> {
    j["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

db_test!(
    drill_restore_measures_recovery_and_fails_on_a_corrupted_backup,
    |db| async move {
        let m = numbered(2);
        tm(&db, &m, &["up"]).ok();
        db.exec("INSERT INTO t1 (id, name) VALUES (1, 'a'), (2, 'b');")
            .await;
        let b = tm(&db, &m, &["backup", "create", "--format", "json"]);
        b.ok();
        let b = b.json();
        let before = live_state(&db, &m).await;

        let (r, j) = drill(&db, &m, &["restore"]);
        r.code(0);
        let d = &j["drills"][0];
        assert_eq!(d["drill"], "restore");
        assert_eq!(d["ok"], true, "{j}");
        assert_eq!(d["backup_id"], b["id"]);
        assert_eq!(step_names(d), ["find", "restore", "verify", "gate"]);
        let sum: u64 = d["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["duration_ms"].as_u64().unwrap())
            .sum();
        assert_eq!(
            d["total_ms"].as_u64().unwrap(),
            sum,
            "the recovery time is the sum of the steps"
        );
        let name = scratch_of(&j);
        assert!(name.starts_with("tm_drill_"), "{name}");
        assert!(
            !scratches(&db, &m).await.contains(&name),
            "the scratch database is dropped"
        );

        // One byte of the dump flipped: the drill fails (exit 1) and says why.
        let path = PathBuf::from(b["path"].as_str().unwrap());
        let mut bytes = std::fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        let (r, j) = drill(&db, &m, &["restore"]);
        r.code(1);
        assert_eq!(j["drills"][0]["ok"], false);
        assert!(
            j["drills"][0]["failures"][0]
                .as_str()
                .unwrap()
                .contains("corrupted"),
            "{j}"
        );
        let text = tm(&db, &m, &["drill", "restore"]);
        text.code(1);
        assert!(text.stdout.contains("FAILED"), "{}", text.stdout);

        // Both drills are in the trend, newest last.
        let h = tm(&db, &m, &["drill", "--history", "--format", "json"]);
        h.ok();
        let runs = h.json()["drills"]["restore"].as_array().unwrap().clone();
        let oks: Vec<bool> = runs.iter().map(|r| r["ok"].as_bool().unwrap()).collect();
        assert_eq!(oks, [true, false, false]);
        let page = m.path().join("drills.html");
        tm(
            &db,
            &m,
            &["drill", "--history", "--html", page.to_str().unwrap()],
        )
        .ok();
        let html = std::fs::read_to_string(&page).unwrap();
        assert_eq!(html.matches("<rect").count(), 3, "a bar per run");
        assert!(html.contains("#c62828"), "failed runs in red");
        assert_eq!(
            live_state(&db, &m).await,
            before,
            "the live database is untouched"
        );
    }
);

db_test!(
    drill_rollback_names_the_column_a_down_script_leaves_behind,
    |db| async move {
        let m = numbered(2);
        tm(&db, &m, &["up"]).ok();
        // No backup at the head (the one `up` took is of the empty database): a replay.
        let (r, j) = drill(&db, &m, &["rollback", "--steps", "2"]);
        r.code(0);
        let d = &j["drills"][0];
        assert_eq!(d["ok"], true, "{j}");
        assert_eq!(d["versions"], serde_json::json!([2, 1]));
        assert_eq!(
            step_names(d),
            ["copy", "replay", "down 2", "down 1", "up 1", "up 2"]
        );
        assert!(d["source"].as_str().unwrap().starts_with("replay"), "{j}");

        m.write(
            "003_note.up.sql",
            "CREATE TABLE t3 (id INTEGER PRIMARY KEY);\nALTER TABLE t1 ADD COLUMN note VARCHAR(20);\n",
        );
        m.write("003_note.down.sql", "DROP TABLE t3;\n");
        tm(&db, &m, &["up"]).ok();
        tm(&db, &m, &["backup", "create"]).ok();
        let before = live_state(&db, &m).await;
        let (r, j) = drill(&db, &m, &["rollback"]);
        r.code(1);
        let d = &j["drills"][0];
        assert!(d["source"].as_str().unwrap().starts_with("backup"), "{j}");
        let why = d["failures"][0].as_str().unwrap();
        assert!(why.contains("column t1.note: left behind"), "{why}");
        assert!(!why.contains("t3"), "the table it drops is fine: {why}");
        assert_eq!(
            live_state(&db, &m).await,
            before,
            "the live database is untouched"
        );
    }
);

db_test!(
    drill_repair_restores_the_rows_and_fails_on_a_hand_made_table,
    |db| async move {
        let m = numbered(4);
        tm(&db, &m, &["up"]).ok();
        tm(&db, &m, &["backup", "create"]).ok();
        let before = live_state(&db, &m).await;
        let (r, j) = drill(&db, &m, &["repair", "--rows", "2"]);
        r.code(0);
        let d = &j["drills"][0];
        assert_eq!(d["ok"], true, "{j}");
        assert_eq!(d["versions"], serde_json::json!([4, 3]));
        assert_eq!(live_state(&db, &m).await, before);

        // A table nobody's migration made, in the copy the drill works on.
        db.exec("CREATE TABLE handmade (id INTEGER PRIMARY KEY);")
            .await;
        tm(&db, &m, &["backup", "create"]).ok();
        let before = live_state(&db, &m).await;
        let (r, j) = drill(&db, &m, &["repair"]);
        r.code(1);
        let why = j["drills"][0]["failures"][0].as_str().unwrap();
        assert!(why.contains("handmade"), "{why}");
        assert_eq!(
            live_state(&db, &m).await,
            before,
            "the live database is untouched"
        );
    }
);

db_test!(
    drill_all_leaves_the_live_database_as_it_was_and_targets_exit_20,
    |db| async move {
        let m = numbered(3);
        tm(&db, &m, &["up"]).ok();
        db.exec("INSERT INTO t2 (id, name) VALUES (7, 'x');").await;
        tm(&db, &m, &["backup", "create"]).ok();
        let before = live_state(&db, &m).await;
        let (r, j) = drill(&db, &m, &["all"]);
        r.code(0);
        let kinds: Vec<&str> = j["drills"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["drill"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["restore", "rollback", "repair"]);
        assert_eq!(
            live_state(&db, &m).await,
            before,
            "the live database is untouched"
        );

        // A target the drill cannot meet (it pauses 300 ms on purpose): exit 20, by how much.
        let dir = m.path().parent().unwrap();
        let cfg = dir.join("drill-target.toml");
        std::fs::write(&cfg, "[drill]\nrestore_target = \"100ms\"\n").unwrap();
        let r: Run = tm_cmd(
            &db,
            &m,
            &["--config", cfg.to_str().unwrap(), "drill", "restore"],
        )
        .env("TIDEMARK_DRILL_PAUSE", "300ms")
        .output()
        .unwrap()
        .into();
        r.code(20);
        assert!(r.stdout.contains("missed by"), "{}", r.stdout);
        // An unknown key is an error naming it.
        std::fs::write(&cfg, "[drill]\nrestore_targt = \"2m\"\n").unwrap();
        let r = tm(
            &db,
            &m,
            &["--config", cfg.to_str().unwrap(), "drill", "restore"],
        );
        r.code(2);
        assert!(r.stderr.contains("restore_targt"), "{}", r.stderr);
        std::fs::write(&cfg, "[drill]\nrestore_target = \"soon\"\n").unwrap();
        let r = tm(
            &db,
            &m,
            &["--config", cfg.to_str().unwrap(), "drill", "restore"],
        );
        r.code(2);
        assert!(r.stderr.contains("restore_target"), "{}", r.stderr);
        tm(&db, &m, &["drill", "rewind"]).code(2);
        assert_eq!(live_state(&db, &m).await, before);
    }
);

/// Wait until the drill process `pid` has made its scratch database; its name.
async fn scratch_of_pid(db: &TestDb, m: &Migrations, pid: u32) -> String {
    let started = Instant::now();
    loop {
        if let Some(n) = scratches(db, m)
            .await
            .into_iter()
            .find(|n| n.contains(&format!("_{pid}_")))
        {
            return n;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the drill made no scratch database"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

db_test!(
    drill_killed_mid_way_leaves_nothing_after_the_next_run_and_ctrl_c_drops_at_once,
    |db| async move {
        let m = numbered(1);
        tm(&db, &m, &["up"]).ok();
        tm(&db, &m, &["backup", "create"]).ok();

        // SIGKILL while the scratch database exists: it stays until the next drill sweeps it.
        let mut child = tm_cmd(&db, &m, &["drill", "restore"])
            .env("TIDEMARK_DRILL_PAUSE", "60s")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let name = scratch_of_pid(&db, &m, child.id()).await;
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(
            scratches(&db, &m).await.contains(&name),
            "a kill cannot clean up"
        );
        let r = tm(&db, &m, &["drill", "restore"]);
        r.ok();
        assert!(r.stdout.contains(&format!("swept {name}")), "{}", r.stdout);
        assert!(
            !scratches(&db, &m).await.contains(&name),
            "swept by the next run"
        );

        // Ctrl-C: dropped before the process exits.
        let child = tm_cmd(&db, &m, &["drill", "restore"])
            .env("TIDEMARK_DRILL_PAUSE", "60s")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let name = scratch_of_pid(&db, &m, child.id()).await;
        std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        let out: Run = child.wait_with_output().unwrap().into();
        // As every command: 128 + SIGINT.
        out.code(130);
        assert!(
            out.stderr.contains("interrupted by SIGINT"),
            "{}",
            out.stderr
        );
        assert!(
            !scratches(&db, &m).await.contains(&name),
            "dropped on Ctrl-C"
        );
    }
);
