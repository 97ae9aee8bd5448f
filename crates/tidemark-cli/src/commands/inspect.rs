use tidemark::Result;

use crate::cli::InspectArgs;
use crate::context::Context;

pub async fn run(ctx: &Context, args: &InspectArgs) -> Result<i32> {
    let settings = ctx.settings(None)?;
    let mut db = ctx.connect().await?;
    let schema = db.inspect(&settings.inspect).await;
    db.close().await;
    let schema = schema?;
    let fingerprint = schema.fingerprint();
    if ctx.out.is_json() {
        let objects: Vec<String> = schema.objects().map(|o| o.to_string()).collect();
        ctx.out
            .json(&serde_json::json!({ "fingerprint": fingerprint.as_str(), "objects": objects }));
    } else if args.fingerprint {
        ctx.out.line(fingerprint.as_str());
    } else {
        for o in schema.objects() {
            ctx.out.line(o.to_string());
        }
        ctx.out.line(format!("-- fingerprint {fingerprint}"));
    }
    Ok(0)
}
