//! Command-line definitions. Names, flags and exit codes are the contract in SPEC.md.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "tidemark",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("TIDEMARK_COMMIT"), ")"),
    about = "Safe database schema changes: migrations under a lock, a history that knows the real schema, drift, repair, lint and backups"
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
    /// GitHub Actions workflow annotations (`lint` only)
    Github,
}

/// Options every command takes, shown apart from each command's own in `--help`.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
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
    /// Migrations directory [default: migrations, or `dir` in tidemark.toml] (backups: TIDEMARK_BACKUP_DIR or [backup] dir)
    #[arg(long, global = true, env = "TIDEMARK_DIR")]
    pub dir: Option<PathBuf>,
    /// Migration layout, detected when not given
    #[arg(long, global = true, value_parser = ["native", "diesel", "flyway", "dbmate"])]
    pub layout: Option<String>,
    /// Configuration file [default: ./tidemark.toml if present]
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Output format (`github`: `lint` only)
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Answer yes to every prompt (`repair`, `import`, `backup restore`: carry out the plan)
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
    /// Replay the recorded migrations on a shadow database and list how the live schema differs
    Drift(DriftArgs),
    /// Work out from the live schema which migrations are really applied, and fix the history
    Repair(RepairArgs),
    /// Record 1..V as applied without running them, if the live schema is the state after V
    Baseline(BaselineArgs),
    /// Take over another tool's history table, verified against the live schema
    Import(ImportArgs),
    /// Exit 0 only if the database is ready for an application built for these migrations
    Check(CheckArgs),
    /// Wait for `check` to pass, then replace this process with CMD; never start CMD otherwise
    Exec(ExecArgs),
    /// Serve GET /health/schema: 200 with a JSON status when `check` passes, 503 otherwise
    Health(HealthArgs),
    /// Check migrations for data loss, long locks, half-apply risks and missing down scripts
    Lint(LintArgs),
    /// Verified backups: create, list, verify, restore, prune
    #[command(subcommand)]
    Backup(BackupCommand),
    /// The journal: every apply, revert, failure, backup, restore, repair, import and baseline
    Journal(JournalArgs),
    /// Deploy a release: preflight, backup, migrate, release, verify, then promote or roll back
    Deploy(DeployArgs),
    /// Return to the previous release (or --to one), moving the database back per policy
    Rollback(RollbackArgs),
    /// The releases of the app: id, time, migration head, fingerprint, env hash, outcome, backup
    Releases(DeployFileArgs),
    /// The report of a deploy or rollback (default: the newest): Markdown, JSON or HTML
    Report(ReportArgs),
    /// Rehearse restore, rollback and repair on scratch copies and measure the recovery time
    Drill(DrillArgs),
    /// Keep another tool's history table in step while both run (show, --to TOOL, --off)
    Sync(SyncArgs),
    /// Print a shell completion script (e.g. `tidemark completions bash > /etc/bash_completion.d/tidemark`)
    Completions(CompletionsArgs),
    /// Print the man page (or write one per command with --out-dir)
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write tidemark.1 and one page per command (tidemark-up.1, …) into this directory
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Also write this tool's history table whenever tidemark applies or reverts a migration
    #[arg(long, value_name = "TOOL", value_parser = ["golang-migrate", "sqlx", "diesel", "flyway", "dbmate"], conflicts_with = "off")]
    pub to: Option<String>,
    /// Stop writing the other tool's table
    #[arg(long)]
    pub off: bool,
    /// How long to wait for the migration lock
    #[arg(long, value_name = "DURATION")]
    pub lock_timeout: Option<String>,
}

#[derive(Debug, Args)]
pub struct DrillArgs {
    /// Which drill: restore, rollback, repair, deploy, or all (restore, rollback and repair;
    /// deploy touches the running application and runs only when named) [default: all]
    #[arg(value_name = "DRILL")]
    pub which: Option<String>,
    #[command(flatten)]
    pub file: DeployFileArgs,
    /// Restore drill: this backup instead of the newest
    #[arg(long, value_name = "ID")]
    pub backup: Option<String>,
    /// Rollback drill: revert and re-apply the newest N migrations [default: [drill] rollback_steps, else 1]
    #[arg(long, value_name = "N")]
    pub steps: Option<usize>,
    /// Repair drill: remove the newest N history rows [default: [drill] repair_rows, else 3]
    #[arg(long, value_name = "N")]
    pub rows: Option<usize>,
    /// Show the trend of past drills instead of running one
    #[arg(long)]
    pub history: bool,
    /// With --history: how many of the newest results per drill
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub last: usize,
    /// With --history: write an HTML page with a chart to this file
    #[arg(long, value_name = "FILE")]
    pub html: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct DeployFileArgs {
    /// The deploy configuration [default: deploy.toml beside tidemark.toml]
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    #[command(flatten)]
    pub file: DeployFileArgs,
    /// Run preflight and print the plan; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// The release id [default: the git commit of the release directory, else a timestamp]
    #[arg(long, value_name = "ID")]
    pub release: Option<String>,
    /// Print each event as a JSON line on stdout as it happens (instead of the progress lines)
    #[arg(long)]
    pub events: bool,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub file: DeployFileArgs,
    /// The release to return to [default: the one that served before the current one]
    #[arg(long, value_name = "RELEASE")]
    pub to: Option<String>,
    /// Print each event as a JSON line on stdout as it happens (instead of the progress lines)
    #[arg(long)]
    pub events: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub file: DeployFileArgs,
    /// A run id or release id [default: the newest run]
    pub deploy: Option<String>,
    /// Print the self-contained HTML page instead of Markdown
    #[arg(long)]
    pub html: bool,
}

#[derive(Debug, Args)]
pub struct JournalArgs {
    /// How many of the newest entries to show
    #[arg(long, default_value_t = 50)]
    pub limit: i64,
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Take a backup now
    Create {
        /// Why, recorded in the manifest
        #[arg(long, default_value = "manual")]
        reason: String,
    },
    /// List the backups of this database, oldest first, and those from before identities
    List {
        /// Every database's backups in the backup directory, not only this one's
        #[arg(long)]
        all: bool,
    },
    /// Restore into a scratch database and compare fingerprint and row counts with the manifest
    Verify {
        /// A backup id, or `latest`
        id: String,
        /// Verify a backup of another database (its id, as `backup list --all` shows)
        #[arg(long, value_name = "DATABASE_ID")]
        from_database: Option<String>,
    },
    /// Replace the database with a backup (needs --yes); a backup of the current state is taken first
    Restore {
        /// A backup id, or `latest`
        id: String,
        /// Do not back up the current state first
        #[arg(long)]
        no_backup: bool,
        /// Restore a backup of another database into this one (its id, as `backup list --all`
        /// shows); without it only this database's own backups are restored
        #[arg(long, value_name = "DATABASE_ID")]
        from_database: Option<String>,
        /// How long to wait for the migration lock (a running migration is waited for, never
        /// stopped) [default: 60s, or lock_timeout in tidemark.toml]
        #[arg(long, value_name = "DURATION")]
        lock_timeout: Option<String>,
    },
    /// Delete old backups: keep the newest N and/or those younger than N days; never the newest
    Prune {
        /// Keep the newest N [default: [backup] keep]
        #[arg(long, value_name = "N")]
        keep: Option<usize>,
        /// Keep those younger than N days [default: [backup] keep_days]
        #[arg(long, value_name = "DAYS")]
        keep_days: Option<u64>,
    },
}

#[derive(Debug, Args)]
pub struct LintArgs {
    /// Migration directories or files [default: the migrations directory]
    pub paths: Vec<PathBuf>,
    /// List the rules with their levels and exit
    #[arg(long)]
    pub list_rules: bool,
    /// SQL dialect [default: from the database URL's scheme, else `dialect` under [lint] in tidemark.toml]
    #[arg(long, value_parser = ["postgres", "mysql", "sqlite"])]
    pub dialect: Option<String>,
    /// Replay each migration up, down and up again on a shadow database, so that a down script
    /// that does not undo its up script is found by the schema itself (SQLite: in memory;
    /// otherwise --shadow-url or [shadow] url)
    #[arg(long)]
    pub replay: bool,
    #[command(flatten)]
    pub shadow: ShadowArgs,
    /// Only the migrations not yet applied to the database at -d (what the next deploy ships)
    #[arg(long)]
    pub pending: bool,
    /// Only the migration files changed since this git ref (for a pull request: origin/main)
    #[arg(long, value_name = "REF")]
    pub changed_since: Option<String>,
}

#[derive(Debug, Args)]
pub struct RepairArgs {
    /// Show the plan; change nothing (the default without --yes)
    #[arg(long)]
    pub dry_run: bool,
    /// Record a half-applied migration as applied (you complete or accept what is there)
    #[arg(long, value_name = "VERSION")]
    pub adopt: Vec<i64>,
    /// Treat a half-applied migration as not applied (you remove what exists; `up` runs it)
    #[arg(long, value_name = "VERSION")]
    pub pending: Vec<i64>,
    /// Remove the history row of a migration whose file is gone
    #[arg(long, value_name = "VERSION")]
    pub forget: Vec<i64>,
    /// Finish a migration that failed part way outside a transaction, after you fixed its
    /// file: runs the statements from the one that failed on, then records it as applied
    #[arg(long, value_name = "VERSION", conflicts_with_all = ["adopt", "pending", "forget"])]
    pub resume: Option<i64>,
    #[command(flatten)]
    pub shadow: ShadowArgs,
    /// How long to wait for the migration lock
    #[arg(long, value_name = "DURATION")]
    pub lock_timeout: Option<String>,
}

#[derive(Debug, Args)]
pub struct BaselineArgs {
    /// The migration whose state the database is in
    #[arg(long, value_name = "VERSION")]
    pub version: i64,
    /// Record it even though the live schema differs from the state after VERSION
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub shadow: ShadowArgs,
    /// How long to wait for the migration lock
    #[arg(long, value_name = "DURATION")]
    pub lock_timeout: Option<String>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The tool whose history table to read
    #[arg(long, value_name = "TOOL", value_parser = ["golang-migrate", "sqlx", "diesel", "flyway", "seaorm", "alembic", "dbmate"])]
    pub from: String,
    /// Alembic only: the directory of revision files [default: alembic/versions]
    #[arg(long, value_name = "DIR")]
    pub alembic_dir: Option<PathBuf>,
    /// The schema at the baseline the other tool's history begins at (e.g. Flyway's BASELINE),
    /// as SQL: replayed on the shadow database before the migrations. Keep it as `[shadow]
    /// baseline` in tidemark.toml so that later drift checks use it too
    #[arg(long, value_name = "FILE")]
    pub baseline_schema: Option<PathBuf>,
    /// From now on also write the tool's table whenever tidemark applies or reverts a
    /// migration, in the tool's own format, so the tool sees nothing to do (`tidemark sync
    /// --off` stops it)
    #[arg(long)]
    pub keep_in_sync: bool,
    /// Show the plan; change nothing (the default without --yes)
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub shadow: ShadowArgs,
    /// How long to wait for the migration lock
    #[arg(long, value_name = "DURATION")]
    pub lock_timeout: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct RequireArgs {
    /// `latest` (every migration file) or a version
    #[arg(long, value_name = "latest|VERSION", default_value = "latest")]
    pub require: String,
    /// Pass even if the live schema has drifted
    #[arg(long)]
    pub allow_drift: bool,
    /// The database must be exactly at the required version: refuse even expand-only
    /// migrations applied after it (by default an older release may run on a newer schema
    /// when every migration after its own is expand-only)
    #[arg(long)]
    pub strict: bool,
    #[command(flatten)]
    pub shadow: ShadowArgs,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub require: RequireArgs,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub require: RequireArgs,
    /// Keep checking this long before giving up (e.g. while a deploy migrates)
    #[arg(long, value_name = "DURATION", default_value = "0s")]
    pub wait: String,
    /// The command to start once the check passes
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<std::ffi::OsString>,
}

#[derive(Debug, Args)]
pub struct HealthArgs {
    #[command(flatten)]
    pub require: RequireArgs,
    /// Address to listen on
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9477")]
    pub listen: String,
    /// How often the schema is checked in the background (probes answer from the last result)
    #[arg(long, value_name = "DURATION", default_value = "2s")]
    pub refresh: String,
}

#[derive(Debug, Args)]
pub struct DriftArgs {
    #[command(flatten)]
    pub shadow: ShadowArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ShadowArgs {
    /// Where to replay migrations: a server on which tidemark may create a scratch database
    /// [default: the live server; SQLite: in memory; or [shadow] url in tidemark.toml]
    #[arg(long, value_name = "URL")]
    pub shadow_url: Option<String>,
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
    /// When the schema has drifted, do not replay the migrations on a shadow database to find
    /// which state the live schema is in
    #[arg(long)]
    pub no_shadow: bool,
    #[command(flatten)]
    pub shadow: ShadowArgs,
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
    #[command(flatten)]
    pub shadow: ShadowArgs,
    #[command(flatten)]
    pub lock_wait: LockWaitArgs,
}

/// How migration statements wait for table locks beside a live application.
#[derive(Debug, Clone, Args)]
pub struct LockWaitArgs {
    /// How long a statement may wait for a table lock before it gives up and the migration is
    /// retried, so that the application's queries never queue behind it for longer [default:
    /// 5s, or [migrate] statement_lock_timeout; 0s waits forever]
    #[arg(long, value_name = "DURATION")]
    pub statement_lock_timeout: Option<String>,
    /// How often to retry a migration that gave up waiting for a lock [default: 3, or
    /// [migrate] lock_retries]
    #[arg(long, value_name = "N")]
    pub lock_retries: Option<u32>,
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
    /// Do not take a backup first
    #[arg(long)]
    pub no_backup: bool,
    /// Print the plan and its exact SQL; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// How long to wait for the migration lock
    #[arg(long, value_name = "DURATION")]
    pub lock_timeout: Option<String>,
    /// Revert although the live schema differs from the history (a down script written for
    /// the recorded schema may then drop what it never created)
    #[arg(long)]
    pub allow_drift: bool,
    #[command(flatten)]
    pub shadow: ShadowArgs,
    #[command(flatten)]
    pub lock_wait: LockWaitArgs,
}
