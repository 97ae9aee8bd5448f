pub mod init;
pub mod inspect;
pub mod new;
pub mod run;
pub mod status;

use tidemark::Result;

use crate::cli::Command;
use crate::context::Context;

/// Run a command; `Ok` carries the exit code of a command that completed (0, or e.g. 10 for
/// `status --exit-code` with pending migrations).
pub async fn dispatch(command: Command, ctx: Context) -> Result<i32> {
    match command {
        Command::Init => init::run(&ctx),
        Command::New(a) => new::run(&ctx, &a),
        Command::Status(a) => status::run(&ctx, &a).await,
        Command::Up(a) => run::up(&ctx, &a).await,
        Command::Down(a) => run::down(&ctx, &a).await,
        Command::Inspect(a) => inspect::run(&ctx, &a).await,
    }
}
