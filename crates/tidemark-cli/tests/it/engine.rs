//! The apply algorithm through the library, on every database.

use std::time::Duration;

use tidemark::engine::{self, Allow, Quiet, Settings};
use tidemark::gate::Require;
use tidemark::plan::UpTarget;
use tidemark::{Dialect, Error, MigrationSet};
use tidemark_test::{Migrations, TestDb, db_test};

use crate::common::*;

/// `up` with the defaults: everything pending, no backup hook.
async fn up(
    d: &mut dyn tidemark::Driver,
    set: &MigrationSet,
) -> tidemark::Result<tidemark::engine::RunReport> {
    let all = UpTarget {
        to: None,
        single_transaction: false,
    };
    engine::up(
        d,
        set,
        &all,
        Allow::default(),
        &Settings::default(),
        &mut Quiet,
        None,
    )
    .await
}

db_test!(history_rows_record_what_happened, |db| async move {
    let m = numbered(2);
    let set = MigrationSet::load(m.path(), None).unwrap();
    let mut d = db.connect().await;
    let report = up(d.as_mut(), &set).await.unwrap();
    assert_eq!(report.done.len(), 2);
    let fp = report
        .fingerprint
        .clone()
        .expect("fingerprint recorded after the run");
    let rows = db.rows("SELECT version, name, checksum, state, execution_ms, applied_by, schema_fingerprint, error FROM tidemark_history ORDER BY version").await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0][1].as_deref(), Some("create_t1"));
    assert_eq!(
        rows[0][2].as_deref(),
        Some(set.migrations[0].checksum.as_str())
    );
    assert_eq!(rows[0][3].as_deref(), Some("applied"));
    assert!(rows[0][5].as_deref().unwrap().contains('@'));
    assert_eq!(
        rows[0][6], None,
        "only the head of the run carries the fingerprint"
    );
    assert_eq!(rows[1][6].as_deref(), Some(fp.as_str()));
    assert_eq!(rows[1][7], None);
    let st = engine::status(d.as_mut(), &set, &Settings::default(), true)
        .await
        .unwrap();
    assert_eq!(st.drift.status, tidemark::status::DriftState::Clean);
    let journal = db
        .rows("SELECT action, version, run_id FROM tidemark_journal ORDER BY id")
        .await;
    assert_eq!(journal.len(), 2);
    assert_eq!(journal[0][0].as_deref(), Some("apply"));
    assert_eq!(journal[0][2].as_deref(), Some(report.run_id.as_str()));
    d.close().await;
});

db_test!(
    failed_migration_leaves_no_trace_where_ddl_is_transactional,
    |db| async move {
        let m = numbered(1);
        m.write("002_half.up.sql", "CREATE TABLE half (id INTEGER);\nINSERT INTO half VALUES (1);\nINSERT INTO nowhere VALUES (1);\n");
        let set = MigrationSet::load(m.path(), None).unwrap();
        let mut d = db.connect().await;
        let err = up(d.as_mut(), &set).await.unwrap_err();
        let Error::MigrationFailed {
            failure,
            applied,
            recorded_failed,
        } = err
        else {
            panic!("{err}")
        };
        assert_eq!(applied, vec![1]);
        assert_eq!((failure.version, failure.index, failure.line), (2, 3, 3));
        let h = history(&db).await;
        match db.dialect() {
            Dialect::MySql => {
                // CREATE TABLE committed on its own; the row says so.
                assert!(recorded_failed);
                assert_eq!(h, vec![(1, "applied".into()), (2, "failed".into())]);
                assert!(db.has_table("half").await);
                let n = db
                    .scalar("SELECT statements_applied FROM tidemark_history WHERE version = 2")
                    .await;
                assert_eq!(n.as_deref(), Some("2"));
            }
            _ => {
                assert!(!recorded_failed);
                assert_eq!(h, vec![(1, "applied".into())]);
                assert!(!db.has_table("half").await);
            }
        }
        let failures = db.scalar("SELECT COUNT(*) FROM tidemark_journal WHERE action = 'apply_failed' AND version = 2").await;
        assert_eq!(failures.as_deref(), Some("1"));
        d.close().await;
    }
);

db_test!(
    first_statement_failing_outside_a_transaction_changes_nothing,
    |db| async move {
        let m = Migrations::new(&[(
            "1_a.sql",
            "-- tidemark:no-transaction\nINSERT INTO nowhere VALUES (1);\nCREATE TABLE a (id INTEGER);\n",
        )]);
        let set = MigrationSet::load(m.path(), None).unwrap();
        let mut d = db.connect().await;
        let err = up(d.as_mut(), &set).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::MigrationFailed {
                    recorded_failed: false,
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            history(&db).await.is_empty(),
            "nothing took effect, so nothing is recorded"
        );
        d.close().await;
    }
);

db_test!(failed_state_blocks_up_and_down, |db| async move {
    let m = numbered(1);
    m.write("002_half.up.sql", "-- tidemark:no-transaction\nCREATE TABLE half (id INTEGER);\nINSERT INTO nowhere VALUES (1);\n");
    m.write("002_half.down.sql", "DROP TABLE half;\n");
    let set = MigrationSet::load(m.path(), None).unwrap();
    let mut d = db.connect().await;
    up(d.as_mut(), &set).await.unwrap_err();
    assert_eq!(
        history(&db).await,
        vec![(1, "applied".into()), (2, "failed".into())]
    );
    let again = up(d.as_mut(), &set).await.unwrap_err();
    assert_eq!(again.class(), tidemark::ExitClass::Inconsistent);
    assert!(again.to_string().contains("repair"), "{again}");
    let down = engine::down(
        d.as_mut(),
        &set,
        tidemark::plan::DownTarget::Steps(1),
        false,
        &Settings::default(),
        &mut Quiet,
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(down.class(), tidemark::ExitClass::Inconsistent);
    d.close().await;
});

db_test!(lock_is_exclusive_and_released, |db| async move {
    let mut a = db.connect().await;
    let mut b = db.connect().await;
    let ga = a.lock(Duration::from_secs(1), &mut ()).await.unwrap();
    struct Seen(Option<String>);
    impl tidemark::LockWait for Seen {
        fn waiting(&mut self, holder: &str) {
            self.0 = Some(holder.to_string());
        }
    }
    let mut seen = Seen(None);
    let err = match b.lock(Duration::from_millis(200), &mut seen).await {
        Err(e) => e,
        Ok(_) => panic!("two holders of one lock"),
    };
    assert!(matches!(err, Error::LockTimeout { .. }), "{err}");
    assert!(seen.0.is_some(), "the waiter is told who holds the lock");
    ga.release().await.unwrap();
    let gb = b.lock(Duration::from_secs(1), &mut ()).await.unwrap();
    gb.release().await.unwrap();
    a.close().await;
    b.close().await;
});

db_test!(
    out_of_order_migrations_are_applied_and_marked,
    |db| async move {
        let m = Migrations::new(&[
            ("1_a.sql", "CREATE TABLE a (id INTEGER);"),
            ("3_c.sql", "CREATE TABLE c (id INTEGER);"),
        ]);
        tm(&db, &m, &["up"]).ok();
        m.write("2_b.sql", "CREATE TABLE b (id INTEGER);");
        let j = tm(&db, &m, &["status", "--format", "json"]).json();
        assert_eq!(j["migrations"][1]["state"], "pending");
        assert_eq!(j["migrations"][1]["out_of_order"], true);
        let plan = tm(&db, &m, &["up", "--dry-run"]);
        assert!(plan.stdout.contains("out of order"), "{}", plan.stdout);
        tm(&db, &m, &["up"]).ok();
        assert_eq!(versions(&history(&db).await), vec![1, 2, 3]);
    }
);

#[tokio::test]
async fn passwords_never_appear_in_output() {
    let Some(db) = TestDb::postgres("passwords_never_appear_in_output").await else {
        return;
    };
    // Trust authentication accepts any password, so the URL can carry one.
    let raw = db
        .url_string()
        .replacen("://", "://postgres:hunter2secret@", 1);
    let raw = if raw.matches('@').count() > 1 {
        // The admin URL already had a user: keep only ours.
        let (scheme, rest) = raw.split_once("://").unwrap();
        let host = rest.rsplit_once('@').unwrap().1;
        format!("{scheme}://postgres:hunter2secret@{host}")
    } else {
        raw
    };
    let m = numbered(1);
    m.write("002_bad.up.sql", "SELECT * FROM nowhere;");
    for args in [
        &["status"][..],
        &["up"][..],
        &["status", "--format", "json"][..],
        &["up", "--format", "json"][..],
        &["up", "--dry-run"][..],
    ] {
        let r: Run = command(m.path())
            .arg("-d")
            .arg(&raw)
            .arg("--dir")
            .arg(m.path())
            .args(args)
            .output()
            .unwrap()
            .into();
        assert!(
            !r.all().contains("hunter2secret"),
            "{args:?} printed the password:\n{}",
            r.all()
        );
        if args[0] == "status" {
            assert!(r.all().contains("postgres:***@"), "{args:?}: {}", r.all());
        }
    }
    // A URL to a server that is not there: the connection error must not carry it either.
    let r: Run = command(m.path())
        .args([
            "-d",
            "postgres://app:hunter2secret@127.0.0.1:1/db",
            "status",
            "--dir",
        ])
        .arg(m.path())
        .output()
        .unwrap()
        .into();
    r.code(1);
    assert!(
        !r.all().contains("hunter2secret") && r.all().contains("app:***@"),
        "{}",
        r.all()
    );
}

db_test!(
    library_repair_baseline_and_import_take_the_lock,
    |db| async move {
        // A Rust program calling the library is as safe as the command: while another session
        // holds the migration lock, repair and baseline wait for it (and time out), never write.
        let m = numbered(2);
        let set = MigrationSet::load(m.path(), None).unwrap();
        let mut holder = db.connect().await;
        let guard = engine::acquire(holder.as_mut(), &Settings::default(), &mut Quiet)
            .await
            .unwrap();
        let settings = Settings {
            lock_timeout: Duration::from_millis(300),
            ..Settings::default()
        };
        let mut d = db.connect().await;
        let e = tidemark::repair::repair(
            d.as_mut(),
            &set,
            &settings,
            &tidemark::repair::Decisions::default(),
            true,
            &mut Quiet,
        )
        .await
        .unwrap_err();
        assert!(matches!(e, Error::LockTimeout { .. }), "{e}");
        let e =
            tidemark::baseline::baseline(d.as_mut(), &set, 2, true, &settings, None, &mut Quiet)
                .await
                .unwrap_err();
        assert!(matches!(e, Error::LockTimeout { .. }), "{e}");
        let e = tidemark::import::import(
            d.as_mut(),
            &set,
            &settings,
            tidemark::import::Tool::GolangMigrate,
            None,
            false,
            true,
            &mut Quiet,
        )
        .await
        .unwrap_err();
        assert!(matches!(e, Error::LockTimeout { .. }), "{e}");
        assert!(
            !db.has_table("tidemark_history").await,
            "something was written"
        );
        // A plan only needs no lock.
        tidemark::repair::repair(
            d.as_mut(),
            &set,
            &settings,
            &tidemark::repair::Decisions::default(),
            false,
            &mut Quiet,
        )
        .await
        .unwrap();
        guard.release().await.unwrap();
        let b =
            tidemark::baseline::baseline(d.as_mut(), &set, 0, false, &settings, None, &mut Quiet)
                .await;
        assert!(b.is_err(), "there is no migration 0");
    }
);

db_test!(the_migrator_does_what_the_commands_do, |db| async move {
    let m = numbered(3);
    let backups = tempfile::tempdir().unwrap();
    let migrator = tidemark::Migrator::new(&db.url_string(), m.path())
        .unwrap()
        .with_backups(Some(backups.path().to_path_buf()));
    let st = migrator.status().await.unwrap();
    assert_eq!(st.count(tidemark::status::MigrationState::Pending), 3);
    assert!(!migrator.check(Require::Latest).await.unwrap().ok);
    let run = migrator.up().await.unwrap();
    assert_eq!(run.done.len(), 3);
    assert_eq!(run.current_version, Some(3));
    // The backup before the change, filed under the database's identity (not SQLite in
    // memory: every test database here is a file or a server).
    assert!(run.backup.is_some(), "no backup before the change");
    assert!(migrator.check(Require::Latest).await.unwrap().ok);
    // Classes are recorded, as by the command.
    let class = db
        .scalar("SELECT lint_class FROM tidemark_history WHERE version = 3")
        .await;
    assert_eq!(class.as_deref(), Some("expand-only"));
    let plan = migrator.repair_plan().await.unwrap();
    assert_eq!(plan.matches_state_after, Some(3));
    assert_eq!(plan.changes().count(), 0);
    let b = migrator.backup().await.unwrap();
    assert_eq!(b.history_head, Some(3));
    // Drift refuses `up` with the inconsistent class, as the command's exit 20.
    db.exec("CREATE TABLE sneaky (id INTEGER)").await;
    m.write("004_more.up.sql", "CREATE TABLE more_t (id INTEGER);\n");
    let migrator = tidemark::Migrator::new(&db.url_string(), m.path())
        .unwrap()
        .with_backups(None);
    let e = migrator.up().await.unwrap_err();
    assert_eq!(e.class(), tidemark::ExitClass::Inconsistent, "{e}");
    assert!(!db.has_table("more_t").await);
});

db_test!(
    two_migrators_at_once_apply_each_migration_once,
    |db| async move {
        // Each migration inserts a row: run twice, it would insert two.
        let m = Migrations::new(&[]);
        m.write(
            "001_runs.up.sql",
            "CREATE TABLE runs (migration INTEGER NOT NULL);\nINSERT INTO runs VALUES (1);\n",
        );
        for v in 2..=6 {
            m.write(
                &format!("{v:03}_step.up.sql"),
                &format!("INSERT INTO runs VALUES ({v});\n"),
            );
        }
        let url = db.url_string();
        let one = |dir: std::path::PathBuf| {
            let url = url.clone();
            tokio::spawn(async move {
                tidemark::Migrator::new(&url, &dir)
                    .unwrap()
                    .with_backups(None)
                    .up()
                    .await
            })
        };
        let (a, b) = (one(m.path().to_path_buf()), one(m.path().to_path_buf()));
        let (a, b) = (a.await.unwrap(), b.await.unwrap());
        let a = a.unwrap_or_else(|e| panic!("first migrator: {e}"));
        let b = b.unwrap_or_else(|e| panic!("second migrator: {e}"));
        // One applied everything; the other waited for the lock and found nothing to do.
        let mut applied = [a.done.len(), b.done.len()];
        applied.sort();
        assert_eq!(applied, [0, 6], "{a:?} / {b:?}");
        assert_eq!(
            db.scalar("SELECT COUNT(*) FROM runs").await.as_deref(),
            Some("6"),
            "every migration ran exactly once"
        );
        assert_eq!(versions(&history(&db).await), (1..=6).collect::<Vec<_>>());
    }
);
