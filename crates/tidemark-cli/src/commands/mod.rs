pub mod backup;
pub mod baseline;
pub mod drift;
pub mod gate;
pub mod import;
pub mod init;
pub mod inspect;
pub mod journal;
pub mod lint;
pub mod new;
pub mod repair;
pub mod run;
pub mod status;
pub mod sync;

use tidemark::Result;

use crate::cli::Command;
use crate::context::Context;

/// Run a command; `Ok` carries the exit code of a command that completed (0, or e.g. 10 for
/// `status --exit-code` with pending migrations).
pub async fn dispatch(command: Command, ctx: Context) -> Result<i32> {
    if ctx.out.format == crate::cli::Format::Github && !matches!(command, Command::Lint(_)) {
        return Err(tidemark::Error::Usage(
            "--format github is for `tidemark lint`; use text or json".into(),
        ));
    }
    match command {
        Command::Init => init::run(&ctx),
        Command::New(a) => new::run(&ctx, &a),
        Command::Status(a) => status::run(&ctx, &a).await,
        Command::Up(a) => run::up(&ctx, &a).await,
        Command::Down(a) => run::down(&ctx, &a).await,
        Command::Inspect(a) => inspect::run(&ctx, &a).await,
        Command::Drift(a) => drift::run(&ctx, &a).await,
        Command::Repair(a) => repair::run(&ctx, &a).await,
        Command::Baseline(a) => baseline::run(&ctx, &a).await,
        Command::Import(a) => import::run(&ctx, &a).await,
        Command::Check(a) => gate::check(&ctx, &a).await,
        Command::Exec(a) => gate::exec(&ctx, a).await,
        Command::Health(a) => gate::health(&ctx, &a).await,
        Command::Backup(c) => backup::run(&ctx, c).await,
        Command::Journal(a) => journal::run(&ctx, &a).await,
        Command::Lint(a) => lint::run(&ctx, &a).await,
        Command::Sync(a) => sync::run(&ctx, &a).await,
    }
}
