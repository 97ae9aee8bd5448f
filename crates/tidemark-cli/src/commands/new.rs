use std::path::{Path, PathBuf};

use tidemark::{Error, Layout, MigrationSet, Result};

use crate::cli::NewArgs;
use crate::context::Context;
use crate::output::{GREEN, paint};

/// `add users.role` → `add_users_role`.
fn slug(name: &str) -> Result<String> {
    let mut s = String::new();
    for c in name.trim().chars() {
        if c.is_alphanumeric() {
            s.extend(c.to_lowercase());
        } else if !s.ends_with('_') {
            s.push('_');
        }
    }
    let s = s.trim_matches('_').to_string();
    if s.is_empty() {
        return Err(Error::Usage(format!(
            "`{name}` is not a usable migration name; use letters and digits, e.g. add_user_roles"
        )));
    }
    Ok(s)
}

fn utc_stamp(format: &[time::format_description::FormatItem<'_>]) -> String {
    time::OffsetDateTime::now_utc()
        .format(format)
        .unwrap_or_default()
}

/// The digits of the version as the existing files write it (leading zeros kept).
fn version_text(layout: Layout, path: &Path, dir: &Path) -> String {
    let rel = path.strip_prefix(dir).unwrap_or(path);
    let first = rel
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .unwrap_or_default();
    let first = if layout == Layout::Flyway {
        first.trim_start_matches(['V', 'U']).to_string()
    } else {
        first
    };
    first.chars().take_while(|c| c.is_ascii_digit()).collect()
}

pub fn run(ctx: &Context, args: &NewArgs) -> Result<i32> {
    let dir = ctx.dir();
    if !dir.is_dir() {
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    }
    let set = MigrationSet::load(&dir, ctx.layout()?)?;
    let name = slug(&args.name)?;
    let timestamps = args.timestamp
        || set
            .migrations
            .last()
            .is_some_and(|m| m.version >= 10_000_000_000_000);
    let version = if timestamps || set.layout == Layout::Diesel {
        let v = utc_stamp(time::macros::format_description!(
            "[year][month][day][hour][minute][second]"
        ));
        // Two `new` in the same second must not collide.
        match set.migrations.last() {
            Some(m)
                if set.layout != Layout::Diesel && m.version >= v.parse::<i64>().unwrap_or(0) =>
            {
                next_version(m.version)?.to_string()
            }
            _ => v,
        }
    } else {
        let next = next_version(set.migrations.iter().map(|m| m.version).max().unwrap_or(0))?;
        let width = set
            .migrations
            .last()
            .map(|m| version_text(set.layout, &m.up.path, &dir).len())
            .unwrap_or(4)
            .max(1);
        format!("{next:0width$}")
    };
    let up_body = format!("-- {name}: write the up migration here\n");
    let down_body =
        format!("-- {name}: write the down migration here (it must undo the up script)\n");
    let files: Vec<(PathBuf, String)> = match set.layout {
        Layout::Native => {
            let mut f = vec![(dir.join(format!("{version}_{name}.up.sql")), up_body)];
            if !args.no_down {
                f.push((dir.join(format!("{version}_{name}.down.sql")), down_body));
            }
            f
        }
        Layout::Diesel => {
            let stamp = utc_stamp(time::macros::format_description!(
                "[year]-[month]-[day]-[hour][minute][second]"
            ));
            let d = dir.join(format!("{stamp}_{name}"));
            let mut f = vec![(d.join("up.sql"), up_body)];
            if !args.no_down {
                f.push((d.join("down.sql"), down_body));
            }
            f
        }
        Layout::Flyway => {
            let mut f = vec![(dir.join(format!("V{version}__{name}.sql")), up_body)];
            if !args.no_down {
                f.push((dir.join(format!("U{version}__{name}.sql")), down_body));
            }
            f
        }
        Layout::Dbmate => {
            let down = if args.no_down {
                String::new()
            } else {
                format!("\n-- migrate:down\n{down_body}")
            };
            vec![(
                dir.join(format!("{version}_{name}.sql")),
                format!("-- migrate:up\n{up_body}{down}"),
            )]
        }
    };
    for (path, _) in &files {
        if path.exists() {
            return Err(Error::Usage(format!(
                "{} exists; nothing was written",
                path.display()
            )));
        }
    }
    for (path, body) in &files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        std::fs::write(path, body).map_err(|e| Error::io(path, e))?;
    }
    if ctx.out.is_json() {
        let created: Vec<String> = files.iter().map(|(p, _)| p.display().to_string()).collect();
        ctx.out.json(&serde_json::json!({ "version": version.parse::<i64>().ok(), "name": name, "layout": set.layout, "created": created }));
    }
    for (p, _) in &files {
        ctx.out
            .line(format!("{} created {}", paint(GREEN, "✓"), p.display()));
    }
    Ok(0)
}

/// The version after `v`, or bad input when there is none (the largest version is
/// 9223372036854775807; wrapping around would write a negative one).
fn next_version(v: i64) -> Result<i64> {
    v.checked_add(1).ok_or_else(|| {
        Error::Usage(format!(
            "the newest migration has version {v}, the largest there is: no version comes after it (renumber the migrations, or name the next file by hand with a version between existing ones)"
        ))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn slugs() {
        assert_eq!(
            super::slug("Add users.role ID").unwrap(),
            "add_users_role_id"
        );
        assert!(super::slug("---").is_err());
    }
}
