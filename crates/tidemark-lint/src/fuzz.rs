//! Property test: lint gives findings or a bad-input error for any file, never a panic, in
//! every dialect (`PROPTEST_CASES` / `PROPTEST_RNG_SEED` set the count and seed).

use proptest::prelude::*;
use tidemark_core::{Dialect, MigrationSet};

use crate::{Levels, Linter};

proptest! {
    #[test]
    fn lint_never_panics(
        up in prop::collection::vec(prop_oneof![
            Just("DESC café;".to_string()),
            Just("ALTER TABLE t DROP COLUMN c;".to_string()),
            Just("CREATE INDEX CONCURRENTLY i ON t (a);".to_string()),
            Just("-- tidemark:lint-ignore drop-column why\n".to_string()),
            Just("-- tidemark:lint-ignore\n".to_string()),
            Just("UPDATE t SET a = 'é';".to_string()),
            Just("$$".to_string()),
            Just("'".to_string()),
            Just("\0".to_string()),
            "\\PC{0,20}",
        ], 0..12).prop_map(|v| v.join("\n")),
        down in "\\PC{0,40}",
    ) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("1_m.up.sql"), &up).unwrap();
        std::fs::write(dir.path().join("1_m.down.sql"), &down).unwrap();
        if let Ok(set) = MigrationSet::load(dir.path(), None) {
            for d in [Dialect::Postgres, Dialect::MySql, Dialect::Sqlite] {
                if let Ok(findings) = Linter::new(d, Levels::default()).lint(set.migrations.iter()) {
                    for f in findings {
                        let _ = f.position();
                    }
                }
                let _ = crate::classify(&set.migrations[0], d);
            }
        }
    }
}
