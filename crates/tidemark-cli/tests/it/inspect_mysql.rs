//! MariaDB/MySQL inspection on a real server: every kind of object is seen, one change behind
//! tidemark's back is exactly one change in the diff, equivalent DDL has one fingerprint (also
//! across databases of different names), and tidemark's own tables never show.
//!
//! The server here is MariaDB; steps that only one flavour supports (sequences on MariaDB,
//! expression indexes on MySQL 8) are chosen by the server's flavour.

use tidemark::schema::ChangeKind;
use tidemark_test::{Migrations, TestDb};

use crate::common::*;
use crate::schema_steps::*;

use ChangeKind::{Missing, Modified, Unexpected};

async fn is_mariadb(db: &TestDb) -> bool {
    let d = db.connect().await;
    let mariadb = d.caps().flavor.eq_ignore_ascii_case("mariadb");
    d.close().await;
    mariadb
}

const BASE: &str = "
CREATE TABLE users (
    id INT AUTO_INCREMENT PRIMARY KEY,
    email VARCHAR(100) NOT NULL,
    name VARCHAR(100) NOT NULL,
    bio TEXT,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
) ENGINE=InnoDB;
CREATE TABLE posts (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    user_id INT NOT NULL,
    editor_id INT,
    title VARCHAR(200) NOT NULL,
    draft TINYINT(1) NOT NULL DEFAULT 1,
    body TEXT,
    INDEX posts_user (user_id)
);
CREATE TABLE tags (id INT NOT NULL, label VARCHAR(50));
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_change_behind_our_back_is_exactly_one_change() {
    let Some(db) = TestDb::mysql("each_change_behind_our_back_is_exactly_one_change").await else {
        return;
    };
    let mariadb = is_mariadb(&db).await;
    db.exec(BASE).await;
    let mut steps = vec![
        step(
            "data only",
            "INSERT INTO users (email, name) VALUES ('a@b', 'a'), ('c@d', 'c');
             INSERT INTO posts (user_id, title) VALUES (1, 'hello')",
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
            "ALTER TABLE users MODIFY name VARCHAR(200) NOT NULL",
            &[(
                "column users.name",
                Modified,
                "type varchar(100) → varchar(200)",
            )],
        ),
        step(
            "change a default",
            "ALTER TABLE posts ALTER COLUMN draft SET DEFAULT 0",
            &[("column posts.draft", Modified, "default 1 → 0")],
        ),
        step(
            "add a string default",
            "ALTER TABLE tags ALTER COLUMN label SET DEFAULT 'it''s'",
            &[("column tags.label", Modified, "default (none) → 'it''s'")],
        ),
        step(
            "drop NOT NULL",
            "ALTER TABLE posts MODIFY title VARCHAR(200) NULL",
            &[("column posts.title", Modified, "not_null yes → (none)")],
        ),
        step(
            "add ON UPDATE",
            "ALTER TABLE users MODIFY created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP",
            &[(
                "column users.created_at",
                Modified,
                "options (none) → on_update=current_timestamp()",
            )],
        ),
        step(
            "comment a column",
            "ALTER TABLE users MODIFY email VARCHAR(100) NOT NULL COMMENT 'login'",
            &[("column users.email", Modified, "comment (none) → login")],
        ),
        step(
            "change a column's collation",
            "ALTER TABLE users MODIFY email VARCHAR(100) COLLATE utf8mb4_bin NOT NULL COMMENT 'login'",
            &[(
                "column users.email",
                Modified,
                "collation (none) → utf8mb4_bin",
            )],
        ),
        step(
            "add a primary key",
            "ALTER TABLE tags ADD PRIMARY KEY (id)",
            &[("primary key on tags", Unexpected, "columns id")],
        ),
        step(
            "make a column auto_increment",
            "ALTER TABLE tags MODIFY id INT NOT NULL AUTO_INCREMENT",
            &[(
                "column tags.id",
                Modified,
                "identity (none) → auto_increment",
            )],
        ),
        step(
            "add a unique key",
            "ALTER TABLE users ADD UNIQUE (email)",
            &[(
                "constraint unique(email) on users",
                Unexpected,
                "unique email",
            )],
        ),
        step(
            "name a unique key",
            "ALTER TABLE users RENAME INDEX email TO users_email_uq",
            &[
                ("constraint unique(email) on users", Missing, ""),
                (
                    "constraint users_email_uq on users",
                    Unexpected,
                    "unique email",
                ),
            ],
        ),
        step(
            "add a named check",
            "ALTER TABLE users ADD CONSTRAINT name_not_blank CHECK (name <> '')",
            &[(
                "constraint name_not_blank on users",
                Unexpected,
                "check `name` <> ''",
            )],
        ),
        step(
            "add an unnamed check",
            "ALTER TABLE posts ADD CHECK (CHAR_LENGTH(title) < 500)",
            &[(
                "constraint check(char_length(`title`) < 500) on posts",
                Unexpected,
                "",
            )],
        ),
        step(
            "add a foreign key on an indexed column",
            "ALTER TABLE posts ADD FOREIGN KEY (user_id) REFERENCES users (id)",
            &[(
                "constraint foreign key(user_id) on posts",
                Unexpected,
                "references users(id)",
            )],
        ),
        step(
            "change a foreign key's action",
            "ALTER TABLE posts DROP FOREIGN KEY posts_ibfk_1;
             ALTER TABLE posts ADD FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE",
            &[(
                "constraint foreign key(user_id) on posts",
                Modified,
                "on_delete (none) → cascade",
            )],
        ),
        // Without an index to use, InnoDB makes one, named like the constraint: the index is
        // really there (it stays when the key is dropped), so it is a change of its own.
        step(
            "add a named foreign key on an unindexed column",
            "ALTER TABLE posts ADD CONSTRAINT posts_editor FOREIGN KEY (editor_id) REFERENCES users (id) ON DELETE SET NULL",
            &[
                (
                    "constraint posts_editor on posts",
                    Unexpected,
                    "on_delete set null",
                ),
                ("index posts_editor on posts", Unexpected, "parts editor_id"),
            ],
        ),
        step(
            "add an index",
            "CREATE INDEX posts_title ON posts (title)",
            &[("index posts_title on posts", Unexpected, "parts title")],
        ),
        step(
            "add a prefix index",
            "CREATE INDEX posts_body ON posts (body(20))",
            &[("index posts_body on posts", Unexpected, "parts body(20)")],
        ),
        step(
            "change an index's order",
            "DROP INDEX posts_title ON posts; CREATE INDEX posts_title ON posts (title DESC)",
            &[(
                "index posts_title on posts",
                Modified,
                "parts title → title desc",
            )],
        ),
        step(
            "add a unique prefix index",
            "CREATE UNIQUE INDEX users_name_prefix ON users (name(10))",
            &[(
                "index users_name_prefix on users",
                Unexpected,
                "unique yes; parts name(10)",
            )],
        ),
        step(
            "add a fulltext index",
            "CREATE FULLTEXT INDEX posts_search ON posts (title, body)",
            &[(
                "index posts_search on posts",
                Unexpected,
                "method fulltext",
            )],
        ),
        step(
            "add a generated column",
            "ALTER TABLE posts ADD COLUMN title_len INT AS (CHAR_LENGTH(title)) VIRTUAL",
            &[(
                "column posts.title_len",
                Unexpected,
                "generated virtual: char_length(`title`)",
            )],
        ),
        step(
            "add a view",
            "CREATE VIEW published AS SELECT id, title FROM posts WHERE draft = 0",
            &[("view published", Unexpected, "definition select `posts`.`id`")],
        ),
        step(
            "change a view",
            "CREATE OR REPLACE VIEW published AS SELECT id, title FROM posts WHERE draft = 0 AND title IS NOT NULL",
            &[("view published", Modified, "is not null")],
        ),
        step(
            "add a trigger",
            "CREATE TRIGGER posts_trim BEFORE INSERT ON posts FOR EACH ROW SET NEW.title = TRIM(NEW.title)",
            &[(
                "trigger posts_trim on posts",
                Unexpected,
                "before insert for each row SET NEW.title = TRIM(NEW.title)",
            )],
        ),
        step(
            "change a trigger",
            "DROP TRIGGER posts_trim;
             CREATE TRIGGER posts_trim BEFORE INSERT ON posts FOR EACH ROW SET NEW.title = UPPER(TRIM(NEW.title))",
            &[("trigger posts_trim on posts", Modified, "UPPER(TRIM")],
        ),
        step(
            "add a function",
            "CREATE FUNCTION add_tax(amount DECIMAL(10,2)) RETURNS DECIMAL(10,2) DETERMINISTIC RETURN amount * 1.2",
            &[(
                "function add_tax(amount decimal(10,2))",
                Unexpected,
                "returns decimal(10,2)",
            )],
        ),
        step(
            "change a function's body",
            "DROP FUNCTION add_tax;
             CREATE FUNCTION add_tax(amount DECIMAL(10,2)) RETURNS DECIMAL(10,2) DETERMINISTIC RETURN amount * 1.25",
            &[(
                "function add_tax(amount decimal(10,2))",
                Modified,
                "body RETURN amount * 1.2 → RETURN amount * 1.25",
            )],
        ),
        step(
            "reindent a function",
            "DROP FUNCTION add_tax;
             CREATE FUNCTION add_tax(amount DECIMAL(10,2)) RETURNS DECIMAL(10,2) DETERMINISTIC
                 RETURN   amount
                     * 1.25",
            &[],
        ),
        step(
            "add a procedure",
            "CREATE PROCEDURE count_posts(IN since INT, OUT n INT)
             BEGIN
                 SELECT COUNT(*) INTO n FROM posts WHERE id > since;
             END",
            &[(
                "procedure count_posts(since int, out n int)",
                Unexpected,
                "body BEGIN SELECT COUNT(*) INTO n",
            )],
        ),
        step(
            "comment a table",
            "ALTER TABLE tags COMMENT = 'labels'",
            &[("table tags", Modified, "comment (none) → labels")],
        ),
        step(
            "change a table option",
            "ALTER TABLE tags ROW_FORMAT = COMPACT",
            &[("table tags", Modified, "row_format=compact")],
        ),
        step(
            "change a table's collation",
            "ALTER TABLE tags COLLATE utf8mb4_bin",
            &[("table tags", Modified, "collation=utf8mb4_bin")],
        ),
    ];
    if mariadb {
        steps.push(step(
            "add a sequence",
            "CREATE SEQUENCE invoice_no START WITH 1000",
            &[("sequence invoice_no", Unexpected, "start 1000")],
        ));
        steps.push(step(
            "use a sequence",
            "SELECT NEXTVAL(invoice_no); SELECT NEXTVAL(invoice_no)",
            &[],
        ));
        steps.push(step(
            "change a sequence",
            "ALTER SEQUENCE invoice_no INCREMENT BY 10",
            &[("sequence invoice_no", Modified, "increment 1 → 10")],
        ));
    } else {
        steps.push(step(
            "add an expression index",
            "CREATE INDEX users_email_lower ON users ((lower(email)))",
            &[(
                "index users_email_lower on users",
                Unexpected,
                "parts (lower(`email`))",
            )],
        ));
    }
    steps.push(step(
        "drop a table",
        "DROP TABLE tags",
        &[("table tags", Missing, "")],
    ));
    run_steps(&db, &steps).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equivalent_ddl_has_one_fingerprint() {
    let Some(a) = TestDb::mysql("equivalent_ddl_has_one_fingerprint_a").await else {
        return;
    };
    let Some(b) = TestDb::mysql("equivalent_ddl_has_one_fingerprint_b").await else {
        return;
    };
    a.exec(
        "CREATE TABLE parent (id INT PRIMARY KEY, code VARCHAR(10) UNIQUE, n INT CHECK (n > 0), flag BOOLEAN DEFAULT TRUE);
         CREATE TABLE child (
             id INT NOT NULL PRIMARY KEY,
             parent_id INT,
             a INT, b INT,
             CHECK (a < b),
             FOREIGN KEY (parent_id) REFERENCES parent (id) ON DELETE CASCADE ON UPDATE RESTRICT,
             INDEX child_ab (a, b)
         );
         create view v as select  id, code from parent where n>1;
         CREATE TRIGGER child_check BEFORE INSERT ON child FOR EACH ROW SET NEW.a = COALESCE(NEW.a, 0);",
    )
    .await;
    b.exec(
        "create table parent (id int(11) not null, code varchar(10), n integer, flag tinyint(1) default 1);
         ALTER TABLE parent ADD PRIMARY KEY (id);
         -- The rename dance: the key that stays is called code_2.
         ALTER TABLE parent ADD UNIQUE (code);
         ALTER TABLE parent ADD UNIQUE (code);
         ALTER TABLE parent DROP INDEX code;
         ALTER TABLE parent ADD CONSTRAINT CHECK (N  >  0);
         CREATE TABLE child (id INTEGER, parent_id INTEGER, a INTEGER, b INTEGER);
         ALTER TABLE child MODIFY id INTEGER NOT NULL;
         ALTER TABLE child ADD PRIMARY KEY (id);
         ALTER TABLE child ADD CHECK (a < b);
         CREATE INDEX child_ab ON child (a, b);
         ALTER TABLE child ADD FOREIGN KEY (parent_id) REFERENCES parent (id) ON DELETE CASCADE ON UPDATE NO ACTION;
         CREATE VIEW v AS
             SELECT id, code
             FROM parent
             WHERE n > 1;
         CREATE TRIGGER child_check
             BEFORE INSERT ON child
             FOR EACH ROW
             SET NEW.a = COALESCE(NEW.a, 0);",
    )
    .await;
    // The test means something only if the names really differ.
    assert_eq!(
        b.scalar(
            "SELECT INDEX_NAME FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'parent' AND NON_UNIQUE = 0 AND INDEX_NAME <> 'PRIMARY'"
        )
        .await
        .as_deref(),
        Some("code_2")
    );
    let (sa, sb) = (inspect(&a).await, inspect(&b).await);
    assert_eq!(sa.canonical(), sb.canonical());
    assert_eq!(sa.fingerprint(), sb.fingerprint());
    let canonical = sa.canonical();
    for line in [
        "column parent.id: type=int; not_null=yes\n",
        "column parent.flag: type=tinyint(1); default=1\n",
        "constraint unique(code) on parent: unique=code\n",
        "constraint check(`n` > 0) on parent: check=`n` > 0\n",
        "constraint foreign key(parent_id) on child: foreign_key=parent_id; references=parent(id); on_delete=cascade\n",
        "index child_ab on child: parts=a, b\n",
    ] {
        assert!(canonical.contains(line), "{line:?} not in\n{canonical}");
    }
}

/// Migrations that use every kind of object that can name the database (views qualify their
/// tables, foreign keys carry the referenced schema), applied to two databases.
const APP: &[(&str, &str)] = &[
    (
        "001_tables.up.sql",
        "CREATE TABLE users (id INT AUTO_INCREMENT PRIMARY KEY, email VARCHAR(100) NOT NULL UNIQUE);
         CREATE TABLE posts (
             id INT AUTO_INCREMENT PRIMARY KEY,
             user_id INT NOT NULL,
             title VARCHAR(100),
             CONSTRAINT posts_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
         );
         CREATE TABLE comments (id INT PRIMARY KEY, post_id INT, FOREIGN KEY (post_id) REFERENCES posts (id));\n",
    ),
    (
        "002_views.up.sql",
        "CREATE VIEW user_posts AS
             SELECT u.email, p.title, (SELECT COUNT(*) FROM comments c WHERE c.post_id = p.id) AS n
             FROM users u JOIN posts p ON p.user_id = u.id;
         CREATE VIEW busy AS SELECT email FROM user_posts WHERE n > 10;
         CREATE VIEW titled AS SELECT id, title FROM posts WHERE title <> '' WITH CHECK OPTION;\n",
    ),
    (
        "003_code.up.sql",
        "CREATE TRIGGER posts_title BEFORE INSERT ON posts FOR EACH ROW SET NEW.title = TRIM(NEW.title);
         CREATE FUNCTION post_count(uid INT) RETURNS INT READS SQL DATA
             RETURN (SELECT COUNT(*) FROM posts WHERE user_id = uid);\n",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_migrations_in_databases_of_other_names_have_one_fingerprint() {
    let Some(a) = TestDb::mysql("same_migrations_other_names_a").await else {
        return;
    };
    let Some(b) = TestDb::mysql("same_migrations_other_names_b").await else {
        return;
    };
    let m = Migrations::new(APP);
    tm(&a, &m, &["up"]).ok();
    tm(&b, &m, &["up"]).ok();
    let name_a = a.scalar("SELECT DATABASE()").await.unwrap();
    let name_b = b.scalar("SELECT DATABASE()").await.unwrap();
    assert_ne!(name_a, name_b);
    // The server really does write the database's name into the view.
    let raw = a
        .scalar("SELECT VIEW_DEFINITION FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'user_posts'")
        .await
        .unwrap();
    assert!(raw.contains(&name_a), "{raw}");

    let (sa, sb) = (inspect(&a).await, inspect(&b).await);
    assert_eq!(sa.canonical(), sb.canonical());
    assert_eq!(sa.fingerprint(), sb.fingerprint());
    let canonical = sa.canonical();
    assert!(!canonical.contains(&name_a), "{canonical}");
    assert!(canonical.contains("view user_posts: definition=select `u`.`email` AS `email`"));
    assert!(canonical.contains(
        "constraint foreign key(post_id) on comments: foreign_key=post_id; references=posts(id)\n"
    ));
    assert!(canonical.contains(
        "constraint posts_user on posts: foreign_key=user_id; references=users(id); on_delete=cascade\n"
    ));
    assert!(
        canonical.contains("with cascaded check option\n"),
        "{canonical}"
    );
    // And tidemark agrees: the fingerprint it recorded after `up` is the same on both.
    let recorded =
        "SELECT schema_fingerprint FROM tidemark_history WHERE schema_fingerprint IS NOT NULL";
    assert_eq!(a.scalar(recorded).await, b.scalar(recorded).await);
    assert_eq!(
        a.scalar(recorded).await.as_deref(),
        Some(sa.fingerprint().as_str())
    );
}

/// A small schema with one of every kind of object, in MariaDB's printing (MySQL 8 prints
/// expressions and defaults its own way, so its snapshot has its own name).
const RICH: &str = "
CREATE TABLE accounts (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    email VARCHAR(190) COLLATE utf8mb4_bin NOT NULL COMMENT 'login; unique',
    nickname VARCHAR(50) DEFAULT 'new',
    active BOOLEAN NOT NULL DEFAULT TRUE,
    balance DECIMAL(12,2) NOT NULL DEFAULT 0.00,
    kind ENUM('Person','Company') NOT NULL DEFAULT 'Person',
    created_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    updated_at DATETIME NULL ON UPDATE NOW(),
    UNIQUE KEY accounts_email (email),
    CONSTRAINT balance_positive CHECK (balance >= 0)
) ENGINE=InnoDB COMMENT='people who pay';
CREATE TABLE orders (
    id INT NOT NULL AUTO_INCREMENT,
    account_id BIGINT UNSIGNED NOT NULL,
    price DECIMAL(10,2) NOT NULL,
    qty SMALLINT NOT NULL DEFAULT 1,
    total DECIMAL(12,2) AS (price * qty) STORED,
    note TEXT,
    PRIMARY KEY (id),
    UNIQUE (account_id, id),
    CHECK (qty > 0),
    FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE CASCADE ON UPDATE CASCADE,
    KEY orders_note (note(32), price DESC),
    FULLTEXT KEY orders_note_text (note)
) ENGINE=InnoDB ROW_FORMAT=DYNAMIC DEFAULT CHARSET=latin1;
CREATE VIEW big_orders AS SELECT id, total FROM orders WHERE total > 100;
CREATE TRIGGER orders_qty BEFORE INSERT ON orders FOR EACH ROW SET NEW.qty = GREATEST(NEW.qty, 1);
CREATE FUNCTION order_total(p DECIMAL(10,2), q INT) RETURNS DECIMAL(12,2) DETERMINISTIC NO SQL RETURN p * q;
CREATE PROCEDURE close_account(IN acct BIGINT UNSIGNED)
    MODIFIES SQL DATA
BEGIN
    DELETE FROM accounts WHERE id = acct;
END;
";

const RICH_MARIADB: &str = "
CREATE SEQUENCE ticket START WITH 100 INCREMENT BY 10 MAXVALUE 100000 CYCLE;
CREATE TABLE prices (sku VARCHAR(20) PRIMARY KEY, amount INT) WITH SYSTEM VERSIONING;
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canonical_form_of_a_rich_schema() {
    let Some(db) = TestDb::mysql("canonical_form_of_a_rich_schema").await else {
        return;
    };
    let mariadb = is_mariadb(&db).await;
    db.exec(RICH).await;
    if mariadb {
        db.exec(RICH_MARIADB).await;
    }
    let s = inspect(&db).await;
    let name = if mariadb {
        "canonical_form_of_a_rich_schema_mariadb"
    } else {
        "canonical_form_of_a_rich_schema_mysql"
    };
    insta::assert_snapshot!(name, s.canonical());
    // Inspecting changes nothing: a second look is the same.
    assert_eq!(inspect(&db).await, s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tidemark_tables_and_their_objects_never_appear() {
    let Some(db) = TestDb::mysql("tidemark_tables_and_their_objects_never_appear").await else {
        return;
    };
    let fresh = inspect(&db).await;
    assert!(fresh.is_empty(), "{}", fresh.canonical());
    assert!(fresh.tables.is_empty());
    let m = Migrations::new(&[(
        "001_notes.up.sql",
        "CREATE TABLE notes (id BIGINT AUTO_INCREMENT PRIMARY KEY, body TEXT NOT NULL);\n",
    )]);
    tm(&db, &m, &["up"]).ok();
    assert!(db.has_table("tidemark_history").await);
    assert!(db.has_table("tidemark_journal").await);
    // None of tidemark's tables, keys or indexes is in the model (not just left out of the
    // canonical form).
    let s = inspect(&db).await;
    assert_eq!(s.tables.keys().collect::<Vec<_>>(), vec!["notes"]);
    let names: Vec<&String> = s
        .tables
        .keys()
        .chain(s.views.keys())
        .chain(s.triggers.keys())
        .chain(s.tables.values().flat_map(|t| t.indexes.keys()))
        .collect();
    assert!(names.iter().all(|n| !n.contains("tidemark")), "{names:?}");
    assert!(!s.canonical().contains("tidemark"), "{}", s.canonical());
    let out = tm(&db, &m, &["inspect"]);
    out.ok();
    assert!(!out.stdout.contains("tidemark_"), "{}", out.stdout);
    // And the fingerprint recorded after `up` is what inspection says now: nothing drifted.
    let recorded = db
        .scalar(
            "SELECT schema_fingerprint FROM tidemark_history WHERE schema_fingerprint IS NOT NULL",
        )
        .await;
    assert_eq!(recorded.as_deref(), Some(s.fingerprint().as_str()));
}
