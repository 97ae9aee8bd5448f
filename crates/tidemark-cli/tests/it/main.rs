//! Integration tests: the real `tidemark` binary and the library against real PostgreSQL,
//! MariaDB/MySQL and SQLite, one scratch database per test.

mod as_written;
mod backups;
mod commands;
mod common;
mod compose_file;
mod deploy;
mod drills;
mod engine;
mod gate;
mod hardening;
mod identity;
mod imports;
mod inputs;
mod inspect_mysql;
mod inspect_postgres;
mod inspect_sqlite;
mod interrupts;
mod kubernetes;
mod lint;
mod lint_replay;
mod nginx;
mod recovery;
mod replay_cache;
mod replicas;
mod safety;
mod scenarios;
mod schema_steps;
mod side_by_side;
mod switching;
