//! Integration tests: the real `tidemark` binary and the library against real PostgreSQL,
//! MariaDB/MySQL and SQLite, one scratch database per test.

mod commands;
mod common;
mod engine;
mod inputs;
mod lint;
mod scenarios;
