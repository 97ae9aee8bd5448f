//! Property tests: no input makes the statement splitter, the URL parser or the migration
//! loader panic, and no password reaches any rendering of a URL. The case count and seed come
//! from `PROPTEST_CASES` / `PROPTEST_RNG_SEED` (`.ci/run` fixes both).

use proptest::prelude::*;

use crate::driver::Dialect;
use crate::split::{split, summarize};
use crate::url::{DatabaseUrl, redact};

/// SQL-shaped text: the pieces that change a lexer's state, mixed with anything at all.
fn sqlish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("'".to_string()),
        Just("\"".to_string()),
        Just("`".to_string()),
        Just("$$".to_string()),
        Just("$tag$".to_string()),
        Just("/*".to_string()),
        Just("*/".to_string()),
        Just("--".to_string()),
        Just("#".to_string()),
        Just(";".to_string()),
        Just("\n".to_string()),
        Just("\\".to_string()),
        Just("\0".to_string()),
        Just("DELIMITER //\n".to_string()),
        Just("DELIMITER".to_string()),
        Just("BEGIN".to_string()),
        Just("END".to_string()),
        Just("CREATE TRIGGER t BEFORE INSERT ON x BEGIN ".to_string()),
        Just("BEGIN ATOMIC".to_string()),
        Just("CASE".to_string()),
        Just("café".to_string()),
        Just("日本語".to_string()),
        Just("🙂".to_string()),
        Just("DESC ".to_string()),
        "\\PC{0,12}",
        any::<char>().prop_map(|c| c.to_string()),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn the_splitter_never_panics(sql in sqlish()) {
        for d in [Dialect::Postgres, Dialect::MySql, Dialect::Sqlite] {
            if let Ok(stmts) = split(&sql, d) {
                for s in stmts {
                    // Every statement is a slice of the script at char boundaries.
                    prop_assert!(sql.get(s.start..s.end).is_some());
                    let _ = summarize(&s.text, 40);
                }
            }
        }
    }

    #[test]
    fn the_url_parser_never_panics(raw in "\\PC{0,80}", scheme in prop_oneof![
        Just(""), Just("postgres://"), Just("mysql://"), Just("mariadb://"), Just("sqlite://"),
    ]) {
        let raw = format!("{scheme}{raw}");
        let _ = redact(&raw);
        if let Ok(u) = DatabaseUrl::parse(&raw) {
            let _ = (u.to_string(), format!("{u:?}"), u.database(), u.with_database("x"));
        }
    }

    /// Generated secrets hold `#`, `?`, `@`, `/` and anything printable, unencoded: the URL
    /// still means that password, and no rendering shows it.
    #[test]
    fn passwords_never_show_and_still_connect(pw in "[ -~]{1,24}") {
        prop_assume!(!pw.contains(char::is_whitespace));
        let raw = format!("postgres://app:{pw}@db.example:5432/shop?sslmode=disable");
        let u = DatabaseUrl::parse(&raw).unwrap();
        let shown = "postgres://app:***@db.example:5432/shop?sslmode=disable";
        prop_assert_eq!(u.to_string(), shown);
        prop_assert_eq!(u.redacted(), shown);
        prop_assert_eq!(format!("{u:?}"), format!("DatabaseUrl({shown})"));
        prop_assert_eq!(redact(&raw), shown);
        prop_assert_eq!(u.with_database("tm_x").to_string(), shown.replace("/shop", "/tm_x"));
        let scrubbed = u.scrub(&format!("failed: {raw} (password {pw})"));
        prop_assert!(!scrubbed.contains(&format!("{pw} ")) || pw.len() < 3, "{}", scrubbed);
        // What the drivers parse is the same user, password, host and database. (A `%` is
        // an escape, as in every URL: a literal one is written `%25`.)
        let parsed = url::Url::parse(u.expose_secret()).unwrap();
        let password = percent_encoding::percent_decode_str(parsed.password().unwrap())
            .decode_utf8_lossy()
            .into_owned();
        if !pw.contains('%') {
            prop_assert_eq!(password, pw);
        }
        prop_assert_eq!(parsed.username(), "app");
        prop_assert_eq!(parsed.host_str(), Some("db.example"));
        prop_assert_eq!(u.database(), Some("shop".to_string()));
    }

    #[test]
    fn the_loader_never_panics(body in prop::collection::vec(any::<u8>(), 0..300), text in sqlish()) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("1_bytes.up.sql"), &body).unwrap();
        std::fs::write(dir.path().join("2_text.up.sql"), &text).unwrap();
        std::fs::write(dir.path().join("2_text.down.sql"), &text).unwrap();
        if let Ok(set) = crate::migration::MigrationSet::load(dir.path(), None) {
            for d in [Dialect::Postgres, Dialect::MySql, Dialect::Sqlite] {
                let _ = set.validate(d);
            }
        }
    }
}
