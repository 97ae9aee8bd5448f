//! `tidemark sync`: show, turn on (`--to TOOL`) or off (`--off`) the writing of another tool's
//! history table beside tidemark's, for a move without a flag day.

use tidemark::engine;
use tidemark::import::{Tool, tool_arg};
use tidemark::{Error, Result};

use crate::cli::SyncArgs;
use crate::context::Context;
use crate::output::progress::Progress;
use crate::output::{DIM, GREEN, paint};

pub async fn run(ctx: &Context, args: &SyncArgs) -> Result<i32> {
    ctx.database_url()?;
    let settings = ctx.settings(args.lock_timeout.as_deref())?;
    let change = match (&args.to, args.off) {
        (Some(t), _) => Some(Some(t.parse::<Tool>().map_err(Error::Usage)?)),
        (None, true) => Some(None),
        (None, false) => None,
    };
    let set = if change.is_some_and(|t| t.is_some()) {
        Some(ctx.migrations()?)
    } else {
        None
    };
    let mut db = ctx.connect().await?;
    let r = async {
        let mut written = 0;
        if let Some(tool) = change {
            let guard =
                engine::acquire(db.as_mut(), &settings, &mut Progress::new(ctx.out)).await?;
            let empty;
            let set = match &set {
                Some(s) => s,
                None => {
                    empty = tidemark::MigrationSet::load(&ctx.dir(), ctx.layout()?)
                        .unwrap_or_else(|_| empty_set(ctx));
                    &empty
                }
            };
            written = tidemark::sync::set(db.as_mut(), set, tool, &settings).await?;
            guard.release().await?;
        }
        let st = tidemark::sync::state(db.as_mut(), settings.sync).await?;
        Ok::<_, Error>((st, written))
    }
    .await;
    db.close().await;
    let (st, written) = r?;
    if ctx.out.is_json() {
        ctx.out.json(&serde_json::json!({
            "tool": st.tool.map(tool_arg),
            "table": st.table,
            "source": st.source,
            "rows_written": written,
        }));
        return Ok(0);
    }
    ctx.out.line(describe(&st));
    if written > 0 {
        ctx.out.line(format!(
            "{} wrote {written} row(s) {} lacked for migrations tidemark had applied",
            paint(GREEN, "✓"),
            st.table.unwrap_or_default()
        ));
    }
    Ok(0)
}

/// For `--off` without a readable migrations directory: sync off needs no files.
fn empty_set(ctx: &Context) -> tidemark::MigrationSet {
    tidemark::MigrationSet {
        dir: ctx.dir(),
        layout: tidemark::Layout::Native,
        migrations: Vec::new(),
        warnings: Vec::new(),
        repeatables: Vec::new(),
    }
}

/// One line for people: what is kept in step, and how to stop it.
pub fn describe(st: &tidemark::sync::SyncState) -> String {
    match (st.tool, st.table) {
        (Some(t), Some(table)) => format!(
            "sync on: every apply and revert also writes {table} as {} does{} {}",
            tool_arg(t),
            if st.source == "config" {
                " ([sync] tool in tidemark.toml)"
            } else {
                ""
            },
            paint(DIM, "(`tidemark sync --off` stops it)")
        ),
        _ => "sync off: only tidemark_history is written".into(),
    }
}
