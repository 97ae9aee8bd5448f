//! An application's start-up with tidemark, as a replica among many: it migrates, or waits
//! for the schema another replica (or a Job) migrates, chosen by configuration, and refuses to
//! start on a schema it was not built for.
//!
//! ```sh
//! DATABASE_URL=sqlite://app.db TIDEMARK_STARTUP=migrate \
//!   cargo run -p tidemark --example startup -- crates/tidemark-testapp/migrations
//! ```
//!
//! With a `tidemark.toml` in the working directory its settings are used (migrations
//! directory, layout, schemas, lock timeouts, backups), exactly as `tidemark up` reads them.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::time::Duration;

use tidemark::gate::Require;
use tidemark::{Migrator, Startup};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let mode = match std::env::var("TIDEMARK_STARTUP").as_deref() {
        Ok("wait") => Startup::Wait,
        Ok("migrate") | Err(_) => Startup::Migrate,
        Ok(other) => {
            eprintln!("TIDEMARK_STARTUP={other}: expected migrate or wait");
            return std::process::ExitCode::from(2);
        }
    };
    let migrator = if std::path::Path::new("tidemark.toml").exists() {
        Migrator::from_config("tidemark.toml".as_ref(), None)
    } else {
        let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite://app.db".into());
        let dir = std::env::args()
            .nth(1)
            .unwrap_or_else(|| "migrations".into());
        Migrator::new(&url, dir.as_ref())
    };
    let migrator = match migrator {
        Ok(m) => m,
        Err(e) => {
            eprintln!("cannot start: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match migrator
        .start(mode, Require::Latest, Duration::from_secs(120))
        .await
    {
        Ok(r) if r.ok => {
            println!(
                "schema ready at {:?}; the application starts here",
                r.current_version
            );
            std::process::ExitCode::SUCCESS
        }
        Ok(r) => {
            eprintln!("not starting: {}", r.reasons.join("; "));
            std::process::ExitCode::from(20)
        }
        Err(e) => {
            eprintln!("not starting: {e}");
            std::process::ExitCode::from(1)
        }
    }
}
