//! The replay cache (issue 14): a second look at the same migrations takes its evidence from
//! the cache and reaches the same conclusions as a replay; a changed file never finds a stale
//! entry; a damaged or lying cache is never believed.

use tidemark_test::{Migrations, db_test};

use crate::common::*;

/// Every entry file of the cache directory the tests give each run (`tm_cmd`).
fn entries(m: &Migrations, kind: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(dirs) = std::fs::read_dir(m.path().join(".cache")) else {
        return out;
    };
    for d in dirs.flatten() {
        for f in std::fs::read_dir(d.path()).into_iter().flatten().flatten() {
            let p = f.path();
            if p.to_string_lossy().ends_with(&format!(".{kind}.json")) {
                out.push(p);
            }
        }
    }
    out
}

fn replay(j: &serde_json::Value) -> (i64, i64) {
    (
        j["replay"]["cached"].as_i64().unwrap_or(-1),
        j["replay"]["replayed"].as_i64().unwrap_or(-1),
    )
}

fn repair_plan(db: &tidemark_test::TestDb, m: &Migrations) -> serde_json::Value {
    let r = tm(db, m, &["repair", "--dry-run", "--format", "json"]);
    r.ok();
    r.json()
}

db_test!(
    drift_comes_from_the_cache_the_second_time_and_a_changed_file_misses,
    |db| async move {
        let m = numbered(3);
        tm(&db, &m, &["up"]).ok();
        let first = tm(&db, &m, &["drift", "--format", "json"]);
        first.ok();
        let first = first.json();
        assert_eq!(first["status"], "clean", "{first}");
        assert_eq!(replay(&first), (0, 3), "a cold cache replays: {first}");
        assert!(!entries(&m, "schema").is_empty(), "the replay was kept");

        let second = tm(&db, &m, &["drift", "--format", "json"]);
        second.ok();
        let second = second.json();
        assert_eq!(
            replay(&second),
            (3, 0),
            "a warm cache replays nothing: {second}"
        );
        assert_eq!(second["status"], "clean");
        assert_eq!(
            second["expected_fingerprint"],
            first["expected_fingerprint"]
        );

        // Migration 2 changed after it ran (a column added to the file): the schema the
        // history describes is now another one, and the entry for the old file is never used.
        m.write(
            "002_create_t2.up.sql",
            "CREATE TABLE t2 (id INTEGER PRIMARY KEY, name VARCHAR(50), extra INTEGER);\n",
        );
        let third = tm(&db, &m, &["drift", "--format", "json"]);
        third.code(20);
        let third = third.json();
        assert_eq!(replay(&third), (0, 3), "{third}");
        assert_eq!(third["status"], "drifted");
        let changes = third["changes"].to_string();
        assert!(changes.contains("t2.extra"), "{changes}");

        // Turned off, it neither reads nor writes.
        let before = entries(&m, "schema").len();
        let off = tm_cmd(&db, &m, &["drift", "--format", "json"])
            .env("TIDEMARK_CACHE_DIR", "off")
            .output()
            .expect("run");
        let off: Run = off.into();
        off.code(20);
        assert_eq!(replay(&off.json()), (0, 3));
        assert_eq!(entries(&m, "schema").len(), before);
    }
);

db_test!(
    evidence_from_the_cache_equals_the_replay_and_a_lying_cache_is_caught,
    |db| async move {
        let m = numbered(4);
        tm(&db, &m, &["up", "--to", "2"]).ok();
        // Migration 3 applied by hand: the history is one behind.
        db.exec("CREATE TABLE t3 (id INTEGER PRIMARY KEY, name VARCHAR(50));")
            .await;
        let expected = vec![(3, "adopt".to_string()), (4, "replay".to_string())];

        let st = tm(&db, &m, &["status", "--format", "json"]);
        st.ok();
        let st = st.json();
        assert_eq!(st["drift"]["matches_state_after"], 3, "{st}");
        assert_eq!(replay(&st["drift"]), (0, 4), "{st}");

        // repair finds every state in the cache that status filled: no shadow, same plan.
        let warm = repair_plan(&db, &m);
        assert_eq!(replay(&warm), (4, 0), "{warm}");
        assert_eq!(warm["matches_state_after"], 3);
        assert_eq!(plan_steps(&warm), expected);
        let cold = tm_cmd(&db, &m, &["repair", "--dry-run", "--format", "json"])
            .env("TIDEMARK_CACHE_DIR", "off")
            .output()
            .expect("run");
        let mut cold = Run::from(cold).json();
        let mut warm_doc = warm.clone();
        cold["replay"] = serde_json::Value::Null;
        warm_doc["replay"] = serde_json::Value::Null;
        assert_eq!(warm_doc, cold, "the cache's evidence is the replay's");

        // A new migration: the cached prefix is applied without inspecting, only the new
        // state is learnt.
        add_table_migration(&m, 5);
        let partial = repair_plan(&db, &m);
        assert_eq!(replay(&partial), (4, 5), "{partial}");
        assert_eq!(partial["matches_state_after"], 3);
        let mut with_5 = expected.clone();
        with_5.push((5, "replay".into()));
        assert_eq!(plan_steps(&partial), with_5);

        // Damaged entries are misses (and removed), never errors.
        for p in entries(&m, "state") {
            std::fs::write(&p, b"{\"version\": ").unwrap();
        }
        let damaged = repair_plan(&db, &m);
        assert_eq!(replay(&damaged), (0, 5), "{damaged}");
        assert_eq!(plan_steps(&damaged), with_5);

        // A cache that lies about a state's fingerprint is caught where the shadow is brought
        // to the cached state, and the replay starts again from nothing.
        add_table_migration(&m, 6);
        lie_about_fingerprints(&m);
        let lied = repair_plan(&db, &m);
        assert_eq!(lied["matches_state_after"], 3, "{lied}");
        let mut with_6 = with_5.clone();
        with_6.push((6, "replay".into()));
        assert_eq!(plan_steps(&lied), with_6);
        let (cached, replayed) = replay(&lied);
        assert_eq!(cached, 0, "{lied}");
        assert_eq!(replayed, 5 + 6, "{lied}");
        // …and what it learnt replaced the lie.
        let again = repair_plan(&db, &m);
        assert_eq!(replay(&again), (6, 0), "{again}");
        assert_eq!(plan_steps(&again), with_6);
    }
);

fn lie_about_fingerprints(m: &Migrations) {
    for p in entries(m, "state") {
        let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        v["fingerprint"] = "0".repeat(64).into();
        std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
    }
    assert!(!entries(m, "state").is_empty());
}
