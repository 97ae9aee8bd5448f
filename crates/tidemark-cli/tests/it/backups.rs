//! Verified backups (issue: backups before every change, and restore), on every database.

use std::path::{Path, PathBuf};

use tidemark::Dialect;
use tidemark_test::{Migrations, TestDb, db_test};

use crate::common::*;

fn backup_dir(m: &Migrations) -> PathBuf {
    m.path().join(".backups")
}

fn create(db: &TestDb, m: &Migrations) -> serde_json::Value {
    let r = tm(db, m, &["backup", "create", "--format", "json"]);
    r.ok();
    r.json()
}

/// The database's identity, as `backup list` reports it.
fn list_id(db: &TestDb, m: &Migrations) -> String {
    let l = tm(db, m, &["backup", "list", "--format", "json"]);
    l.ok();
    l.json()["database_id"]
        .as_str()
        .expect("an identity")
        .to_string()
}

async fn count(db: &TestDb, table: &str) -> String {
    db.scalar(&format!("SELECT COUNT(*) FROM {table}"))
        .await
        .unwrap()
}

db_test!(
    backup_change_restore_brings_data_and_schema_back,
    |db| async move {
        let m = numbered(2);
        tm(&db, &m, &["up"]).ok();
        db.exec("INSERT INTO t1 (id, name) VALUES (1, 'a'), (2, 'b'), (3, 'c');\nINSERT INTO t2 (id, name) VALUES (1, 'x');").await;
        let b = create(&db, &m);
        let id = b["id"].as_str().unwrap().to_string();
        assert_eq!(b["row_counts"]["t1"], 3);
        assert_eq!(b["history_head"], 2);
        assert_eq!(b["sha256"].as_str().unwrap().len(), 64);

        // Change data and schema, through tidemark and behind its back.
        add_table_migration(&m, 3);
        tm(&db, &m, &["up"]).ok();
        db.exec("DELETE FROM t1 WHERE id > 1;\nINSERT INTO t3 (id) VALUES (9);\nDROP TABLE t2;")
            .await;
        assert_eq!(count(&db, "t1").await, "1");

        let refused = tm(&db, &m, &["backup", "restore", &id]);
        refused.code(2);
        assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);

        let r = tm(
            &db,
            &m,
            &["backup", "restore", &id, "--yes", "--format", "json"],
        );
        r.ok();
        let j = r.json();
        assert_eq!(j["matches_manifest"], true);
        assert_eq!(j["drift"], "clean");
        assert!(
            j["safety_backup"].is_string(),
            "the state before the restore is kept: {j}"
        );
        assert_eq!(count(&db, "t1").await, "3");
        assert_eq!(count(&db, "t2").await, "1");
        assert!(
            !db.has_table("t3").await,
            "objects made after the backup are gone"
        );
        assert_eq!(versions(&history(&db).await), vec![1, 2]);
        tm(&db, &m, &["drift"]).ok();
        // The restore is journaled in the restored database.
        assert_eq!(
            db.scalar("SELECT COUNT(*) FROM tidemark_journal WHERE action = 'restore'")
                .await
                .as_deref(),
            Some("1")
        );
        // And migration 3 can be applied again.
        tm(&db, &m, &["up"]).ok();
    }
);

db_test!(
    corrupted_backup_is_refused_and_verify_tells,
    |db| async move {
        let m = numbered(1);
        tm(&db, &m, &["up"]).ok();
        db.exec("INSERT INTO t1 (id, name) VALUES (1, 'a');").await;
        let b = create(&db, &m);
        let id = b["id"].as_str().unwrap().to_string();
        let ok = tm(&db, &m, &["backup", "verify", &id, "--format", "json"]);
        ok.ok();
        assert_eq!(ok.json()["ok"], true);

        // Flip one byte of the dump.
        let path = PathBuf::from(b["path"].as_str().unwrap());
        let mut bytes = std::fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        let v = tm(&db, &m, &["backup", "verify", &id, "--format", "json"]);
        v.code(20);
        assert_eq!(v.json()["checksum_ok"], false);
        db.exec("INSERT INTO t1 (id, name) VALUES (2, 'b');").await;
        let r = tm(&db, &m, &["backup", "restore", &id, "--yes"]);
        r.code(20);
        assert!(r.stderr.contains("corrupted"), "{}", r.stderr);
        assert_eq!(count(&db, "t1").await, "2", "nothing was restored");
    }
);

db_test!(
    verify_fails_when_the_manifest_does_not_match,
    |db| async move {
        let m = numbered(1);
        tm(&db, &m, &["up"]).ok();
        db.exec("INSERT INTO t1 (id, name) VALUES (1, 'a');").await;
        let b = create(&db, &m);
        let id = b["id"].as_str().unwrap().to_string();
        // Filed under the database's identity: BASE/DATABASE-ID/BACKUP-ID/.
        let database_id = b["database_id"].as_str().unwrap();
        let manifest = backup_dir(&m)
            .join(database_id)
            .join(&id)
            .join("manifest.json");
        let original = std::fs::read_to_string(&manifest).unwrap();
        std::fs::write(&manifest, original.replace("\"t1\": 1", "\"t1\": 5")).unwrap();
        let v = tm(&db, &m, &["backup", "verify", &id, "--format", "json"]);
        v.code(20);
        let j = v.json();
        assert_eq!(
            (
                j["checksum_ok"].clone(),
                j["fingerprint_ok"].clone(),
                j["row_counts_ok"].clone()
            ),
            (true.into(), true.into(), false.into())
        );
        let fp = b["schema_fingerprint"].as_str().unwrap();
        std::fs::write(&manifest, original.replace(fp, &"0".repeat(64))).unwrap();
        let j = tm(&db, &m, &["backup", "verify", &id, "--format", "json"]).json();
        assert_eq!(j["fingerprint_ok"], false);
        std::fs::write(&manifest, original).unwrap();
        tm(&db, &m, &["backup", "verify", "latest"]).ok();
    }
);

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

db_test!(
    prune_keeps_what_it_should_and_files_are_private,
    |db| async move {
        let m = numbered(1);
        tm(&db, &m, &["up", "--no-backup"]).ok();
        let ids: Vec<String> = (0..4)
            .map(|_| create(&db, &m)["id"].as_str().unwrap().to_string())
            .collect();
        #[cfg(unix)]
        {
            let folder = backup_dir(&m).join(list_id(&db, &m));
            assert_eq!(mode(&folder), 0o700);
            assert_eq!(mode(&folder.join(&ids[0])), 0o700);
            for f in std::fs::read_dir(folder.join(&ids[0])).unwrap() {
                assert_eq!(
                    mode(&f.unwrap().path()),
                    0o600,
                    "backup files are readable by their owner only"
                );
            }
        }
        let list = tm(&db, &m, &["backup", "list", "--format", "json"]).json();
        let listed: Vec<String> = list["backups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(listed, ids);
        tm(&db, &m, &["backup", "prune"]).code(2);
        let p = tm(
            &db,
            &m,
            &["backup", "prune", "--keep", "2", "--format", "json"],
        )
        .json();
        assert_eq!(p["deleted"], serde_json::json!([ids[0], ids[1]]));
        tm(
            &db,
            &m,
            &["backup", "prune", "--keep", "0", "--keep-days", "0"],
        )
        .ok();
        let left = tm(&db, &m, &["backup", "list", "--format", "json"]).json();
        let left: Vec<&str> = left["backups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            left,
            vec![ids[3].as_str()],
            "the newest backup is never deleted"
        );
    }
);

db_test!(up_backs_up_first_and_journals_it, |db| async move {
    let m = numbered(2);
    let j = tm(&db, &m, &["up", "--format", "json"]);
    j.ok();
    let id = j.json()["backup"]
        .as_str()
        .expect("up took a backup")
        .to_string();
    let journal = db
        .rows("SELECT run_id, detail FROM tidemark_journal WHERE action = 'backup'")
        .await;
    assert_eq!(journal.len(), 1);
    assert!(journal[0][1].as_deref().unwrap().contains(&id));
    let run = journal[0][0].clone();
    let applies = db
        .scalar(&format!(
            "SELECT COUNT(*) FROM tidemark_journal WHERE action = 'apply' AND run_id = '{}'",
            run.unwrap()
        ))
        .await;
    assert_eq!(
        applies.as_deref(),
        Some("2"),
        "the backup is journaled with the migrations it preceded"
    );
    // Nothing to apply: no backup.
    let again = tm(&db, &m, &["up", "--format", "json"]).json();
    assert!(again["backup"].is_null());
    add_table_migration(&m, 3);
    let skipped = tm(&db, &m, &["up", "--no-backup", "--format", "json"]).json();
    assert!(skipped["backup"].is_null());
    assert_eq!(
        tm(&db, &m, &["backup", "list", "--format", "json"]).json()["backups"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
});

db_test!(backup_failure_changes_nothing, |db| async move {
    let m = numbered(1);
    // A backup directory that cannot be created (a file is in the way).
    let blocker = m.path().join(".not-a-dir");
    std::fs::write(&blocker, "").unwrap();
    let r: Run = tm_cmd(&db, &m, &["up"])
        .env("TIDEMARK_BACKUP_DIR", blocker.join("backups"))
        .output()
        .unwrap()
        .into();
    r.code(1);
    assert!(!db.has_table("t1").await);
    assert!(!db.has_table("tidemark_history").await);
    assert!(
        !db.has_table("tidemark_identity").await,
        "an identity assigned for a backup that failed is removed again"
    );
    if db.dialect() == Dialect::Sqlite {
        return;
    }
    // The dump tool missing from PATH.
    let empty = tempfile::tempdir().unwrap();
    let r: Run = tm_cmd(&db, &m, &["up"])
        .env("PATH", empty.path())
        .output()
        .unwrap()
        .into();
    r.code(1);
    assert!(
        r.stderr.contains("not found on PATH") && r.stderr.contains("nothing"),
        "{}",
        r.stderr
    );
    assert!(!db.has_table("t1").await);
    // A dump tool older than the server.
    let old = tempfile::tempdir().unwrap();
    for tool in [
        "pg_dump",
        "pg_restore",
        "mariadb-dump",
        "mysqldump",
        "mariadb",
        "mysql",
    ] {
        let p = old.path().join(tool);
        let version = if db.dialect() == Dialect::Postgres {
            "pg_dump (PostgreSQL) 9.6.24"
        } else {
            "mysqldump  Ver 10.13 Distrib 5.5.68-MariaDB, for Linux"
        };
        std::fs::write(&p, format!("#!/bin/sh\necho '{version}'\n")).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    let r: Run = tm_cmd(&db, &m, &["up"])
        .env("PATH", old.path())
        .output()
        .unwrap()
        .into();
    r.code(1);
    assert!(
        r.stderr.contains("older than") || r.stderr.contains("cannot dump"),
        "{}",
        r.stderr
    );
    assert!(!db.has_table("t1").await);
    assert!(!db.has_table("tidemark_history").await);
    assert!(!db.has_table("tidemark_identity").await);
});

db_test!(restore_stops_writers_first, |db| async move {
    let m = numbered(1);
    tm(&db, &m, &["up"]).ok();
    let b = create(&db, &m);
    let id = b["id"].as_str().unwrap();
    let marker = m.path().join("writers-stopped");
    let cfg = m.path().join("tidemark.toml");
    std::fs::write(
        &cfg,
        format!("[backup]\nstop_writers = \"touch {}\"\n", marker.display()),
    )
    .unwrap();
    let cfg_path = cfg.to_str().unwrap().to_string();
    let restore = || {
        tm(
            &db,
            &m,
            &["--config", &cfg_path, "backup", "restore", id, "--yes"],
        )
    };
    restore().ok();
    assert!(marker.exists());
    std::fs::write(&cfg, "[backup]\nstop_writers = \"exit 3\"\n").unwrap();
    db.exec("INSERT INTO t1 (id, name) VALUES (1, 'kept');")
        .await;
    let r = restore();
    r.code(1);
    assert!(r.stderr.contains("stop_writers"), "{}", r.stderr);
    assert_eq!(
        count(&db, "t1").await,
        "1",
        "a failed stop_writers command means no restore"
    );
    // Backups can be switched off in the configuration.
    std::fs::write(&cfg, "[backup]\nenabled = false\n").unwrap();
    add_table_migration(&m, 2);
    let j = tm(
        &db,
        &m,
        &["--config", cfg.to_str().unwrap(), "up", "--format", "json"],
    )
    .json();
    assert!(j["backup"].is_null());
});

/// With the application still writing, the manifest (fingerprint, row counts) and the dump must
/// describe the same data: on PostgreSQL both read one exported snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_under_concurrent_writes_verifies_postgres() {
    let Some(db) = TestDb::postgres("backup_under_concurrent_writes_verifies_postgres").await
    else {
        return;
    };
    let m = numbered(1);
    tm(&db, &m, &["up", "--no-backup"]).ok();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, mut d) = (stop.clone(), db.connect().await);
        tokio::spawn(async move {
            let mut i = 0i64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                d.run(&format!("INSERT INTO t1 (id, name) VALUES ({i}, 'w')"))
                    .await
                    .unwrap();
            }
            d.close().await;
            i
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let b = tokio::task::spawn_blocking({
        let (url, dir) = (db.url_string(), m.path().to_path_buf());
        move || -> Run {
            command(&dir)
                .env("TIDEMARK_BACKUP_DIR", dir.join(".backups"))
                .args(["-d", &url, "--dir"])
                .arg(&dir)
                .args(["backup", "create", "--format", "json"])
                .output()
                .unwrap()
                .into()
        }
    })
    .await
    .unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.await.unwrap();
    b.ok();
    let id = b.json()["id"].as_str().unwrap().to_string();
    assert!(written > 0);
    let v = tm(&db, &m, &["backup", "verify", &id, "--format", "json"]);
    v.ok();
    assert_eq!(v.json()["row_counts_ok"], true);
}
