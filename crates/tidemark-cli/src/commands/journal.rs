use tidemark::{Error, Result, history};

use crate::cli::JournalArgs;
use crate::context::Context;
use crate::output::{DIM, paint};

pub async fn run(ctx: &Context, args: &JournalArgs) -> Result<i32> {
    if args.limit < 1 {
        return Err(Error::Usage("--limit must be at least 1".into()));
    }
    let mut db = ctx.connect().await?;
    let entries = async {
        if history::exists(db.as_mut()).await? {
            history::read_journal(db.as_mut(), args.limit).await
        } else {
            Ok(Vec::new())
        }
    }
    .await;
    db.close().await;
    let entries = entries?;
    if ctx.out.is_json() {
        // `detail` is stored as JSON text; in JSON output it is the object itself, not a
        // string to parse again.
        let entries: Vec<serde_json::Value> = entries
            .iter()
            .map(|e| {
                let mut v = serde_json::to_value(e).unwrap_or_default();
                v["detail"] = e
                    .detail
                    .as_deref()
                    .map(|d| {
                        serde_json::from_str(d)
                            .unwrap_or_else(|_| serde_json::Value::String(d.into()))
                    })
                    .unwrap_or(serde_json::Value::Null);
                v
            })
            .collect();
        ctx.out.json(&serde_json::json!({ "entries": entries }));
        return Ok(0);
    }
    if entries.is_empty() {
        ctx.out
            .line("the journal is empty: tidemark has not changed this database yet");
    }
    for e in &entries {
        let version = e.version.map(|v| format!(" {v}")).unwrap_or_default();
        let detail = e
            .detail
            .as_deref()
            .map(|d| format!(" {d}"))
            .unwrap_or_default();
        ctx.out.line(format!(
            "{} {}{version} {}{}",
            e.at.replace('T', " ").trim_end_matches('Z'),
            e.action,
            paint(DIM, format!("by {} (run {})", e.actor, e.run_id)),
            paint(DIM, detail)
        ));
    }
    Ok(0)
}
