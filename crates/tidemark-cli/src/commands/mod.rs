pub mod backup;
pub mod baseline;
pub mod deploy;
pub mod drift;
pub mod drill;
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
        Command::Deploy(a) => deploy::deploy(&ctx, &a).await,
        Command::Rollback(a) => deploy::rollback(&ctx, &a).await,
        Command::Releases(a) => deploy::releases(&ctx, &a).await,
        Command::Report(a) => deploy::report(&ctx, &a),
        Command::Drill(a) => drill::run(&ctx, &a).await,
        Command::Completions(a) => {
            use clap::CommandFactory;
            let mut out = Vec::new();
            clap_complete::generate(
                a.shell,
                &mut crate::cli::Cli::command(),
                "tidemark",
                &mut out,
            );
            crate::output::print_line(String::from_utf8_lossy(&out).trim_end());
            Ok(0)
        }
        Command::Man(a) => man(&a),
        Command::Sync(a) => sync::run(&ctx, &a).await,
    }
}

/// The man page(s), generated from the same definitions as `--help`.
fn man(args: &crate::cli::ManArgs) -> tidemark::Result<i32> {
    use clap::CommandFactory;
    let cmd = crate::cli::Cli::command();
    match &args.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| tidemark::Error::io(dir, e))?;
            clap_mangen::generate_to(cmd, dir).map_err(|e| tidemark::Error::io(dir, e))?;
        }
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut out).map_err(|e| {
                tidemark::Error::Usage(format!("could not render the man page: {e}"))
            })?;
            crate::output::print_line(String::from_utf8_lossy(&out).trim_end());
        }
    }
    Ok(0)
}
