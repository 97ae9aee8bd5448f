//! Command-line definitions. Names, flags and exit codes are the contract in SPEC.md.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "tidemark",
    version,
    about = "Safe database schema changes: migrations under a lock, a history that knows the real schema, drift, repair, lint and backups",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Database URL (postgres://, mysql://, mariadb://, sqlite://); else TIDEMARK_DATABASE_URL, DATABASE_URL, tidemark.toml
    #[arg(
        short = 'd',
        long,
        global = true,
        env = "TIDEMARK_DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Migrations directory [default: migrations, or `dir` in tidemark.toml]
    #[arg(long, global = true)]
    pub dir: Option<PathBuf>,
    /// Migration layout, detected when not given
    #[arg(long, global = true, value_parser = ["native", "diesel", "flyway", "dbmate"])]
    pub layout: Option<String>,
    /// Configuration file [default: ./tidemark.toml if present]
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Output format
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Answer yes to every prompt
    #[arg(long, global = true)]
    pub yes: bool,
    /// Print only errors
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Print more (the SQL of each statement as it runs)
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// No colours
    #[arg(long, global = true)]
    pub no_color: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write tidemark.toml and migrations/ (never overwrites)
    Init,
    /// Create the next migration file(s)
    New(NewArgs),
    /// Each migration's state and the schema's drift
    Status(StatusArgs),
    /// Apply pending migrations, each in its own transaction, under the lock
    Up(UpArgs),
    /// Revert applied migrations with their down scripts, newest first
    Down(DownArgs),
    /// Print the live schema in canonical form (one line per object) and its fingerprint
    Inspect(InspectArgs),
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Print only the fingerprint
    #[arg(long)]
    pub fingerprint: bool,
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// What the migration does, e.g. add_user_roles
    pub name: String,
    /// Create only the up script
    #[arg(long)]
    pub no_down: bool,
    /// Use a UTC timestamp as the version even where the existing ones are sequential
    #[arg(long)]
    pub timestamp: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Exit 10 when migrations are pending, 20 when something is inconsistent
    #[arg(long)]
    pub exit_code: bool,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Apply up to and including this version
    #[arg(long, value_name = "VERSION")]
    pub to: Option<i64>,
    /// Print the plan and its exact SQL; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Do not take a backup first
    #[arg(long)]
    pub no_backup: bool,
    /// How long to wait for the migration lock [default: 60s, or lock_timeout in tidemark.toml]
    #[arg(long, value_name = "DURATION")]
    pub lock_timeout: Option<String>,
    /// Apply all pending migrations in one transaction (PostgreSQL, SQLite)
    #[arg(long)]
    pub single_transaction: bool,
    /// Go ahead although the live schema differs from the history
    #[arg(long)]
    pub allow_drift: bool,
    /// Go ahead although an applied migration's file was changed
    #[arg(long)]
    pub allow_modified: bool,
    /// Go ahead although an applied migration's file is gone
    #[arg(long)]
    pub allow_missing: bool,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct DownTargetArgs {
    /// Revert the newest N applied migrations
    #[arg(long, value_name = "N")]
    pub steps: Option<usize>,
    /// Revert every migration applied after VERSION (0: all)
    #[arg(long, value_name = "VERSION")]
    pub to: Option<i64>,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    #[command(flatten)]
    pub target: DownTargetArgs,
    /// Print the plan and its exact SQL; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// How long to wait for the migration lock
    #[arg(long, value_name = "DURATION")]
    pub lock_timeout: Option<String>,
}
