use std::path::Path;

use tidemark::config::FILE_NAME;
use tidemark::{Error, Result};

use crate::context::Context;
use crate::output::{GREEN, paint};

const TEMPLATE: &str = r#"# tidemark configuration. Every key is optional; a flag beats an environment variable
# (TIDEMARK_DATABASE_URL, DATABASE_URL) beats this file. Unknown keys are an error.

# Keep passwords out of this file: prefer TIDEMARK_DATABASE_URL in the environment.
{database_url}
dir = "migrations"
# layout = "native"            # native | diesel | flyway | dbmate (detected when unset)
# lock_timeout = "60s"         # how long `up` waits for another migrator
# schemas = ["public"]         # PostgreSQL schemas to inspect (default: all but system schemas)

[backup]
# dir = "backups"              # persistent, never /tmp (env TIDEMARK_BACKUP_DIR)
# keep = 10
# keep_days = 30
# enabled = true
# stop_writers = "systemctl stop app"

[lint]
# rules.drop-column = "warning"   # error | warning | off

[shadow]
# url = "postgres://localhost/app_shadow"   # where `drift` and `repair` replay migrations
"#;

pub fn run(ctx: &Context) -> Result<i32> {
    let config = Path::new(FILE_NAME);
    let dir = ctx
        .global
        .dir
        .clone()
        .unwrap_or_else(|| "migrations".into());
    let mut created = Vec::new();
    if config.exists() {
        ctx.out.line(format!("{FILE_NAME} exists; left as it is"));
    } else {
        let url_line = match ctx.database_url().ok() {
            Some(u) if u.redacted() == u.expose_secret() => format!("database_url = \"{}\"", u.expose_secret()),
            Some(_) => "# database_url = \"…\"   (the URL you gave has a password: set TIDEMARK_DATABASE_URL instead)".into(),
            None => "# database_url = \"sqlite://app.db\"".into(),
        };
        let text = TEMPLATE.replace("{database_url}", &url_line).replace(
            "dir = \"migrations\"",
            &format!("dir = \"{}\"", dir.display()),
        );
        std::fs::write(config, text).map_err(|e| Error::io(config, e))?;
        created.push(FILE_NAME.to_string());
    }
    if dir.exists() {
        ctx.out
            .line(format!("{} exists; left as it is", dir.display()));
    } else {
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        created.push(format!("{}/", dir.display()));
    }
    if ctx.out.is_json() {
        ctx.out.json(&serde_json::json!({ "created": created }));
    }
    for c in &created {
        ctx.out.line(format!("{} created {c}", paint(GREEN, "✓")));
    }
    if !created.is_empty() {
        ctx.out
            .line("next: `tidemark new create_users`, then `tidemark up`");
    }
    Ok(0)
}
