//! Shared by the inspection tests of every database: make one change behind tidemark's back,
//! inspect, and check that the diff is exactly that change.

use tidemark::driver::InspectOptions;
use tidemark::schema::{ChangeKind, Schema, diff};
use tidemark_test::TestDb;

pub async fn inspect_with(db: &TestDb, opts: &InspectOptions) -> Schema {
    let mut d = db.connect().await;
    let s = d
        .inspect(opts)
        .await
        .unwrap_or_else(|e| panic!("inspect failed: {e}"));
    d.close().await;
    s
}

pub async fn inspect(db: &TestDb) -> Schema {
    inspect_with(db, &InspectOptions::default()).await
}

/// The changes between two inspections as `(object, kind, detail)`.
pub fn changes(before: &Schema, after: &Schema) -> Vec<(String, ChangeKind, String)> {
    diff(before, after)
        .changes
        .into_iter()
        .map(|c| (c.object, c.kind, c.detail.unwrap_or_default()))
        .collect()
}

/// One change made behind tidemark's back, and what the diff must say about it: each expected
/// change as `(object, kind, text the detail must contain)`.
pub struct Step {
    pub what: &'static str,
    pub sql: String,
    pub expect: Vec<(String, ChangeKind, String)>,
}

pub fn step(what: &'static str, sql: &str, expect: &[(&str, ChangeKind, &str)]) -> Step {
    Step {
        what,
        sql: sql.to_string(),
        expect: expect
            .iter()
            .map(|(o, k, d)| (o.to_string(), *k, d.to_string()))
            .collect(),
    }
}

/// Run the steps in order, each against the inspection after the one before.
pub async fn run_steps(db: &TestDb, steps: &[Step]) {
    let mut before = inspect(db).await;
    for s in steps {
        db.exec(&s.sql).await;
        let after = inspect(db).await;
        let got = changes(&before, &after);
        let summary: Vec<(&str, ChangeKind)> =
            got.iter().map(|(o, k, _)| (o.as_str(), *k)).collect();
        let wanted: Vec<(&str, ChangeKind)> =
            s.expect.iter().map(|(o, k, _)| (o.as_str(), *k)).collect();
        assert_eq!(
            summary, wanted,
            "step `{}` ({}): wrong changes\n{:#?}",
            s.what, s.sql, got
        );
        for ((_, _, detail), (_, _, needle)) in got.iter().zip(&s.expect) {
            assert!(
                detail.contains(needle),
                "step `{}`: detail {detail:?} lacks {needle:?}",
                s.what
            );
        }
        before = after;
    }
}
