//! SQLite inspection: every kind of object is seen, one change behind tidemark's back is
//! exactly one change in the diff, equivalent DDL has one fingerprint, and tidemark's own tables
//! never show.
//!
//! SQLite's ALTER TABLE can add, drop and rename columns only; every other change is made the
//! way SQLite documents it, by building the changed table under another name, copying the rows
//! over, dropping the old table and renaming the new one. Done right, that is one change too.

use tidemark::driver::InspectOptions;
use tidemark::schema::ChangeKind;
use tidemark_test::{Migrations, TestDb};

use crate::common::*;
use crate::schema_steps::*;

use ChangeKind::{Missing, Modified, Unexpected};

/// SQLite's way to change a table: `columns` is the new table's definition after its name.
fn rebuild(table: &str, columns: &str) -> String {
    format!(
        "CREATE TABLE {table}__new {columns};
         INSERT INTO {table}__new SELECT * FROM {table};
         DROP TABLE {table};
         ALTER TABLE {table}__new RENAME TO {table};"
    )
}

const BASE: &str = "
CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    email TEXT NOT NULL,
    name VARCHAR(100) NOT NULL,
    bio TEXT,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE posts (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id),
    title TEXT NOT NULL,
    draft INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE tags (id INTEGER NOT NULL, label TEXT);
CREATE TABLE notes (id INTEGER NOT NULL PRIMARY KEY, body TEXT);
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_change_behind_our_back_is_exactly_one_change() {
    let Some(db) = TestDb::sqlite("each_change_behind_our_back_is_exactly_one_change").await else {
        return;
    };
    db.exec(BASE).await;
    // Each rebuild of `posts` keeps the changes of the ones before it.
    let posts_v2 = "(id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users (id), title TEXT NOT NULL, draft INTEGER NOT NULL DEFAULT 0)";
    let posts_v3 = "(id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users (id), title TEXT, draft INTEGER NOT NULL DEFAULT 0)";
    let posts_v4 = "(id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users (id), title TEXT, draft INTEGER NOT NULL DEFAULT 0, CHECK (length(title) < 500))";
    let posts_v5 = "(id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users (id), title TEXT CONSTRAINT title_not_blank CHECK (title <> ''), draft INTEGER NOT NULL DEFAULT 0, CHECK (length(title) < 500))";
    let posts_v6 = "(id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE, title TEXT CONSTRAINT title_not_blank CHECK (title <> ''), draft INTEGER NOT NULL DEFAULT 0, CHECK (length(title) < 500))";
    let posts_v7 = "(id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED, title TEXT CONSTRAINT title_not_blank CHECK (title <> ''), draft INTEGER NOT NULL DEFAULT 0, CHECK (length(title) < 500))";
    let posts_v8 = "(id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED, title TEXT COLLATE NOCASE CONSTRAINT title_not_blank CHECK (title <> ''), draft INTEGER NOT NULL DEFAULT 0, CHECK (length(title) < 500))";
    let posts_v9 = "(id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED, title TEXT COLLATE NOCASE CONSTRAINT title_not_blank CHECK (title <> ''), draft INTEGER NOT NULL DEFAULT 0, CHECK (length(title) < 500), UNIQUE (user_id, title))";
    let steps = vec![
        step(
            "data only",
            "INSERT INTO users (email, name) VALUES ('a@b', 'a'), ('c@d', 'c');
             INSERT INTO posts (user_id, title) VALUES (1, 'hello');
             INSERT INTO notes (body) VALUES ('x')",
            &[],
        ),
        step(
            "add column",
            "ALTER TABLE users ADD COLUMN nickname VARCHAR(50)",
            &[("column users.nickname", Unexpected, "type varchar(50)")],
        ),
        step(
            "drop column",
            "ALTER TABLE users DROP COLUMN bio",
            &[("column users.bio", Missing, "type text")],
        ),
        step(
            "change a column's type",
            &rebuild("tags", "(id INTEGER NOT NULL, label VARCHAR(80))"),
            &[("column tags.label", Modified, "type text → varchar(80)")],
        ),
        step(
            "add a primary key",
            &rebuild("tags", "(id INTEGER NOT NULL PRIMARY KEY, label VARCHAR(80))"),
            &[("primary key on tags", Unexpected, "columns id")],
        ),
        step(
            "change a default",
            &rebuild("posts", posts_v2),
            &[("column posts.draft", Modified, "default 1 → 0")],
        ),
        step(
            "drop NOT NULL",
            &rebuild("posts", posts_v3),
            &[("column posts.title", Modified, "not_null yes → (none)")],
        ),
        step(
            "add an unnamed check",
            &rebuild("posts", posts_v4),
            &[(
                "constraint check(length(title) < 500) on posts",
                Unexpected,
                "check length(title) < 500",
            )],
        ),
        step(
            "add a named column check",
            &rebuild("posts", posts_v5),
            &[(
                "constraint title_not_blank on posts",
                Unexpected,
                "check title <> ''",
            )],
        ),
        step(
            "change a foreign key's action",
            &rebuild("posts", posts_v6),
            &[(
                "constraint foreign key(user_id) on posts",
                Modified,
                "on_delete (none) → cascade",
            )],
        ),
        step(
            "make a foreign key deferred",
            &rebuild("posts", posts_v7),
            &[(
                "constraint foreign key(user_id) on posts",
                Modified,
                "deferrable (none) → initially deferred",
            )],
        ),
        step(
            "change a column's collation",
            &rebuild("posts", posts_v8),
            &[("column posts.title", Modified, "collation (none) → nocase")],
        ),
        step(
            "add a unique constraint",
            &rebuild("posts", posts_v9),
            &[(
                "constraint unique(user_id, title) on posts",
                Unexpected,
                "unique user_id, title",
            )],
        ),
        step(
            "add a column for a foreign key",
            "ALTER TABLE tags ADD COLUMN owner_id INTEGER",
            &[("column tags.owner_id", Unexpected, "type integer")],
        ),
        step(
            "add a foreign key",
            &rebuild(
                "tags",
                "(id INTEGER NOT NULL PRIMARY KEY, label VARCHAR(80), owner_id INTEGER, FOREIGN KEY (owner_id) REFERENCES users)",
            ),
            &[(
                "constraint foreign key(owner_id) on tags",
                Unexpected,
                "references users(id)",
            )],
        ),
        step(
            "add a generated column",
            "ALTER TABLE tags ADD COLUMN label_len INT GENERATED ALWAYS AS (length(label)) VIRTUAL",
            &[(
                "column tags.label_len",
                Unexpected,
                "generated virtual: length(label)",
            )],
        ),
        step(
            "make a table strict",
            &rebuild("notes", "(id INTEGER NOT NULL PRIMARY KEY, body TEXT) STRICT"),
            &[("table notes", Modified, "options (none) → strict=yes")],
        ),
        step(
            "make a table WITHOUT ROWID",
            &rebuild(
                "notes",
                "(id INTEGER NOT NULL PRIMARY KEY, body TEXT) STRICT, WITHOUT ROWID",
            ),
            &[(
                "table notes",
                Modified,
                "options strict=yes → strict=yes, without_rowid=yes",
            )],
        ),
        step(
            "add an index",
            "CREATE INDEX posts_title ON posts (title)",
            &[("index posts_title on posts", Unexpected, "parts title")],
        ),
        step(
            "change an index's order",
            "DROP INDEX posts_title; CREATE INDEX posts_title ON posts (title DESC)",
            &[(
                "index posts_title on posts",
                Modified,
                "parts title → title desc",
            )],
        ),
        step(
            "add an expression index",
            "CREATE INDEX users_email_lower ON users (lower(email))",
            &[(
                "index users_email_lower on users",
                Unexpected,
                "parts lower(email)",
            )],
        ),
        step(
            "add a partial index",
            "CREATE INDEX posts_drafts ON posts (id) WHERE draft = 1",
            &[("index posts_drafts on posts", Unexpected, "where draft = 1")],
        ),
        step(
            "add a unique index",
            "CREATE UNIQUE INDEX users_email ON users (email COLLATE NOCASE)",
            &[(
                "index users_email on users",
                Unexpected,
                "unique yes; parts email collate nocase",
            )],
        ),
        step(
            "add a view",
            "CREATE VIEW published AS SELECT id, title FROM posts WHERE draft = 0",
            &[(
                "view published",
                Unexpected,
                "definition as select id, title from posts where draft = 0",
            )],
        ),
        step(
            "change a view",
            "DROP VIEW published; CREATE VIEW published AS SELECT id, title FROM posts WHERE draft = 0 AND title IS NOT NULL",
            &[("view published", Modified, "is not null")],
        ),
        step(
            "add a trigger",
            "CREATE TRIGGER posts_trim AFTER INSERT ON posts BEGIN UPDATE posts SET title = trim(title) WHERE id = NEW.id; END",
            &[(
                "trigger posts_trim on posts",
                Unexpected,
                "after insert on posts begin update posts set title = trim(title) where id = new.id; end",
            )],
        ),
        step(
            "reformat a trigger",
            "DROP TRIGGER posts_trim;
             CREATE TRIGGER posts_trim
                 AFTER INSERT ON posts
             BEGIN
                 update posts set title = TRIM(title) where id = new.id;
             END",
            &[],
        ),
        step(
            "change a trigger",
            "DROP TRIGGER posts_trim;
             CREATE TRIGGER posts_trim AFTER INSERT ON posts BEGIN UPDATE posts SET title = upper(trim(title)) WHERE id = NEW.id; END",
            &[("trigger posts_trim on posts", Modified, "upper(trim(title))")],
        ),
        step(
            "drop a table",
            "DROP TABLE notes",
            &[("table notes", Missing, "")],
        ),
    ];
    run_steps(&db, &steps).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equivalent_ddl_has_one_fingerprint() {
    let Some(a) = TestDb::sqlite("equivalent_ddl_has_one_fingerprint_a").await else {
        return;
    };
    let Some(b) = TestDb::sqlite("equivalent_ddl_has_one_fingerprint_b").await else {
        return;
    };
    a.exec(
        "CREATE TABLE parent (id INTEGER PRIMARY KEY, code VARCHAR(10) UNIQUE, n INT CHECK (n > 0), at TEXT DEFAULT CURRENT_TIMESTAMP, tag TEXT DEFAULT 'none');
         CREATE TABLE child (
             id INTEGER NOT NULL PRIMARY KEY,
             parent_id INTEGER REFERENCES parent (id) ON DELETE CASCADE,
             a INT, b INT,
             total INT GENERATED ALWAYS AS (a + b) STORED,
             CHECK (a < b)
         );
         CREATE VIEW v AS SELECT id, code FROM parent WHERE n > 1;
         CREATE INDEX child_ab ON child (lower(a), b) WHERE a IS NOT NULL;
         CREATE TRIGGER bump AFTER INSERT ON child BEGIN UPDATE parent SET n = n + 1 WHERE id = NEW.parent_id; END;",
    )
    .await;
    b.exec(
        "create table \"parent\" (
             [id] integer,
             code varchar( 10 ),
             n int,
             at text default current_timestamp,
             tag text default \"none\",
             primary key (id),
             unique (code),
             check (N>0)
         );
         CREATE TABLE IF NOT EXISTS child (
             id INTEGER NOT NULL,
             parent_id INTEGER,
             a INT,
             b INT,
             total INT AS (A+B) STORED,
             PRIMARY KEY (id),
             CONSTRAINT child_parent FOREIGN KEY (parent_id) REFERENCES parent ON DELETE CASCADE,
             CHECK(a<b)
         );
         CREATE VIEW IF NOT EXISTS v AS
             SELECT ID, CODE
             FROM Parent
             WHERE n>1;
         create index child_ab on \"child\" ( LOWER( a ) , b ) where a is not null;
         CREATE TRIGGER bump
             AFTER INSERT ON child
         BEGIN
             -- keep the count
             update parent set n = n+1 where id = new.parent_id;
         END;",
    )
    .await;
    let (sa, sb) = (inspect(&a).await, inspect(&b).await);
    assert_eq!(sa.canonical(), sb.canonical());
    assert_eq!(sa.fingerprint(), sb.fingerprint());
    let canonical = sa.canonical();
    for line in [
        "column parent.code: type=varchar(10)\n",
        "column parent.at: type=text; default=current_timestamp\n",
        "column parent.tag: type=text; default='none'\n",
        "column child.total: type=int; generated=stored: a + b\n",
        "constraint unique(code) on parent: unique=code\n",
        "constraint check(n > 0) on parent: check=n > 0\n",
        "constraint foreign key(parent_id) on child: foreign_key=parent_id; references=parent(id); on_delete=cascade\n",
        "index child_ab on child: parts=lower(a), b; where=a is not null\n",
        "view v: definition=as select id, code from parent where n > 1\n",
    ] {
        assert!(canonical.contains(line), "{line:?} not in\n{canonical}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_migrations_in_two_files_have_one_fingerprint() {
    let Some(a) = TestDb::sqlite("same_migrations_in_two_files_a").await else {
        return;
    };
    let Some(b) = TestDb::sqlite("same_migrations_in_two_files_b").await else {
        return;
    };
    let m = Migrations::new(&[
        (
            "001_tables.up.sql",
            "CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT, email TEXT NOT NULL UNIQUE);
             CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE, title TEXT);\n",
        ),
        (
            "002_views.up.sql",
            "CREATE VIEW user_posts AS SELECT u.email, p.title FROM users u JOIN posts p ON p.user_id = u.id;
             CREATE TRIGGER posts_title AFTER INSERT ON posts BEGIN UPDATE posts SET title = trim(title) WHERE id = NEW.id; END;\n",
        ),
    ]);
    tm(&a, &m, &["up"]).ok();
    tm(&b, &m, &["up"]).ok();
    let (sa, sb) = (inspect(&a).await, inspect(&b).await);
    assert_eq!(sa.fingerprint(), sb.fingerprint());
    let recorded =
        "SELECT schema_fingerprint FROM tidemark_history WHERE schema_fingerprint IS NOT NULL";
    assert_eq!(
        a.scalar(recorded).await.as_deref(),
        Some(sa.fingerprint().as_str())
    );
    assert_eq!(a.scalar(recorded).await, b.scalar(recorded).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_temporary_table_does_not_stand_in_for_the_real_one() {
    let Some(db) = TestDb::sqlite("a_temporary_table_does_not_stand_in").await else {
        return;
    };
    db.exec("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL); CREATE INDEX items_name ON items (name);")
        .await;
    let reference = inspect(&db).await;
    let mut d = db.connect().await;
    d.run("CREATE TEMP TABLE items (other BLOB, extra INT REFERENCES x)")
        .await
        .unwrap();
    d.run("CREATE TEMP VIEW v AS SELECT 1").await.unwrap();
    let s = d.inspect(&InspectOptions::default()).await.unwrap();
    d.close().await;
    assert_eq!(s.canonical(), reference.canonical());
}

/// A small schema with one of every kind of object SQLite has.
const RICH: &str = "
CREATE TABLE accounts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    email TEXT NOT NULL COLLATE NOCASE UNIQUE,
    nickname VARCHAR(50) DEFAULT 'new; friend',
    active BOOLEAN NOT NULL DEFAULT TRUE,
    balance NUMERIC(12, 2) NOT NULL DEFAULT 0.00 CONSTRAINT balance_positive CHECK (balance >= 0),
    created_at TEXT NOT NULL DEFAULT (datetime('now'))
);
CREATE TABLE orders (
    id INTEGER NOT NULL,
    account_id INTEGER NOT NULL,
    price REAL NOT NULL,
    qty INTEGER NOT NULL DEFAULT 1,
    total REAL GENERATED ALWAYS AS (price * qty) STORED,
    half REAL AS (price / 2) VIRTUAL,
    PRIMARY KEY (account_id, id),
    CHECK (qty > 0),
    FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE CASCADE ON UPDATE SET NULL DEFERRABLE INITIALLY DEFERRED
) WITHOUT ROWID;
CREATE TABLE events (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, payload ANY) STRICT;
CREATE UNIQUE INDEX orders_big ON orders (account_id, price * qty DESC) WHERE qty > 1;
CREATE INDEX events_kind ON events (kind COLLATE NOCASE, id DESC);
CREATE VIEW big_orders AS SELECT id, total FROM orders WHERE total > 100;
CREATE TRIGGER accounts_touch AFTER UPDATE OF email ON accounts FOR EACH ROW
BEGIN
    INSERT INTO events (kind, payload) VALUES ('email', NEW.email);
END;
CREATE VIRTUAL TABLE notes USING fts5(title, body);
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canonical_form_of_a_rich_schema() {
    let Some(db) = TestDb::sqlite("canonical_form_of_a_rich_schema").await else {
        return;
    };
    db.exec(RICH).await;
    let s = inspect(&db).await;
    insta::assert_snapshot!(s.canonical());
    assert_eq!(inspect(&db).await, s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tidemark_tables_and_their_objects_never_appear() {
    let Some(db) = TestDb::sqlite("tidemark_tables_and_their_objects_never_appear").await else {
        return;
    };
    let fresh = inspect(&db).await;
    assert!(fresh.is_empty(), "{}", fresh.canonical());
    let m = Migrations::new(&[(
        "001_notes.up.sql",
        "CREATE TABLE notes (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL);
         INSERT INTO notes (body) VALUES ('first');\n",
    )]);
    tm(&db, &m, &["up"]).ok();
    assert!(db.has_table("tidemark_history").await);
    assert!(db.has_table("tidemark_journal").await);
    // AUTOINCREMENT made sqlite_sequence, which is SQLite's, not the application's.
    assert!(db.has_table("sqlite_sequence").await);
    let s = inspect(&db).await;
    assert_eq!(s.tables.keys().collect::<Vec<_>>(), vec!["notes"]);
    let names: Vec<&String> = s
        .tables
        .keys()
        .chain(s.views.keys())
        .chain(s.triggers.keys())
        .chain(s.tables.values().flat_map(|t| t.indexes.keys()))
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.contains("tidemark") && !n.starts_with("sqlite_")),
        "{names:?}"
    );
    assert!(!s.canonical().contains("tidemark"), "{}", s.canonical());
    let out = tm(&db, &m, &["inspect"]);
    out.ok();
    assert!(!out.stdout.contains("tidemark_"), "{}", out.stdout);
    let recorded = db
        .scalar(
            "SELECT schema_fingerprint FROM tidemark_history WHERE schema_fingerprint IS NOT NULL",
        )
        .await;
    assert_eq!(recorded.as_deref(), Some(s.fingerprint().as_str()));
}

/// Every table's pragmas are read in one joined query each; a virtual table whose module this
/// connection lacks makes that query fail, and then the pragmas are read table by table: the
/// other tables come out exactly as before, the virtual one says it could not be read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_whose_module_is_missing_leaves_the_others_readable() {
    let Some(db) =
        TestDb::sqlite("a_table_whose_module_is_missing_leaves_the_others_readable").await
    else {
        return;
    };
    db.exec(RICH).await;
    let before = inspect(&db).await;
    // Written straight into the schema: no connection has a module of that name.
    db.exec(
        "PRAGMA writable_schema = ON;
         INSERT INTO sqlite_schema (type, name, tbl_name, rootpage, sql)
             VALUES ('table', 'ghost', 'ghost', 0, 'CREATE VIRTUAL TABLE ghost USING no_such_module(a, b)');
         PRAGMA writable_schema = OFF;",
    )
    .await;
    let after = inspect(&db).await;
    let ghost = after
        .tables
        .get("ghost")
        .expect("the virtual table is listed");
    assert!(
        ghost
            .options
            .get("columns")
            .is_some_and(|c| c.starts_with("unreadable")),
        "{ghost:?}"
    );
    let mut rest = after.clone();
    rest.tables.remove("ghost");
    assert_eq!(rest, before, "the other tables read as before");
}
