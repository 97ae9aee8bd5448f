//! `drill [restore|rollback|repair|all]` and `drill --history`: parses, resolves settings and
//! renders; the drills themselves are [`tidemark::drill`].

use std::collections::BTreeMap;
use std::time::Duration;

use tidemark::config::parse_duration;
use tidemark::drill::{self, DrillReport, Journal, Kind, Scratches};
use tidemark::{Error, Result, identity};

use crate::cli::DrillArgs;
use crate::commands::backup::open_vault;
use crate::context::Context;
use crate::output::{BOLD, DIM, GREEN, RED, YELLOW, paint};

/// Test hook: pause this long once a drill's scratch database exists.
const PAUSE_ENV: &str = "TIDEMARK_DRILL_PAUSE";

fn kinds(which: Option<&str>) -> Result<Vec<Kind>> {
    match which.unwrap_or("all") {
        "all" => Ok(Kind::SCRATCH.to_vec()),
        w => w
            .parse::<Kind>()
            .map(|k| vec![k])
            .map_err(|e| Error::Usage(format!("drill {e}; or all"))),
    }
}

fn ms(n: u64) -> String {
    if n >= 60_000 {
        format!("{}m{:02}s", n / 60_000, (n % 60_000) / 1000)
    } else if n >= 1000 {
        format!("{:.1}s", n as f64 / 1000.0)
    } else {
        format!("{n}ms")
    }
}

fn verdict(r: &DrillReport) -> String {
    match r.exit_code() {
        0 => paint(GREEN, "passed"),
        20 => paint(YELLOW, "passed, missed its target"),
        _ => paint(RED, "FAILED"),
    }
}

pub async fn run(ctx: &Context, args: &DrillArgs) -> Result<i32> {
    let kinds = kinds(args.which.as_deref())?;
    let cfg = ctx.config.drill.clone().unwrap_or_default();
    let mut targets = BTreeMap::new();
    for (k, v, key) in [
        (Kind::Restore, &cfg.restore_target, "[drill] restore_target"),
        (
            Kind::Rollback,
            &cfg.rollback_target,
            "[drill] rollback_target",
        ),
        (Kind::Repair, &cfg.repair_target, "[drill] repair_target"),
        (Kind::Deploy, &cfg.deploy_target, "[drill] deploy_target"),
    ] {
        if let Some(v) = v {
            targets.insert(k, parse_duration(v, key)?);
        }
    }
    let sweep_after = match &cfg.sweep_after {
        Some(s) => parse_duration(s, "[drill] sweep_after")?,
        None => Duration::from_secs(3600),
    };
    if args.steps == Some(0) || cfg.rollback_steps == Some(0) {
        return Err(Error::Usage(
            "--steps / [drill] rollback_steps must be at least 1".into(),
        ));
    }
    if args.rows == Some(0) || cfg.repair_rows == Some(0) {
        return Err(Error::Usage(
            "--rows / [drill] repair_rows must be at least 1".into(),
        ));
    }
    if args.last == 0 {
        return Err(Error::Usage("--last must be at least 1".into()));
    }
    if args.html.is_some() && !args.history {
        return Err(Error::Usage("--html goes with --history".into()));
    }
    let pause = std::env::var(PAUSE_ENV)
        .ok()
        .filter(|v| !v.is_empty())
        .map(|v| parse_duration(&v, PAUSE_ENV))
        .transpose()?;
    let opts = drill::Options {
        targets,
        backup_id: args.backup.clone(),
        steps: args.steps.or(cfg.rollback_steps),
        rows: args.rows.or(cfg.repair_rows),
        pause,
    };

    let url = ctx.database_url()?;
    let s = ctx.backup_settings(&url)?;
    let vault = open_vault(&s, ctx)?;
    let mut live = ctx.connect().await?;
    let id = identity::read(live.as_mut()).await;
    let id = match id {
        Ok(Some(id)) => id,
        Ok(None) => {
            live.close().await;
            return Err(Error::Usage(format!(
                "{} has no identity yet, so there is nothing to drill and nowhere to file the results: tidemark assigns one with its first backup or migration (`tidemark backup create`)",
                url.redacted()
            )));
        }
        Err(e) => {
            live.close().await;
            return Err(e);
        }
    };
    // Created (mode 0700, like the backups beside it) only when a drill will write to it.
    let store = if args.history {
        vault.peek(&id)?
    } else {
        vault.open(&id)?
    };
    let journal = Journal::of(&store);
    if args.history {
        live.close().await;
        return history(ctx, &journal, args);
    }

    if kinds == [Kind::Deploy] {
        live.close().await;
        // Only with a deploy configuration (exit 2 naming the file otherwise).
        let cfg = crate::commands::deploy::load(ctx, &args.file)?;
        let inputs = crate::commands::deploy::inputs(ctx)?;
        let r = tidemark_deploy::drill::rehearse(&cfg, &inputs, &id, &opts).await?;
        journal.append(&r)?;
        let reports = vec![r];
        return Ok(finish(ctx, &url, &id, &journal, &reports, &[]));
    }
    let set = match ctx.migrations() {
        Ok(s) => s,
        Err(e) => {
            live.close().await;
            return Err(e);
        }
    };
    let settings = ctx.settings(None)?;
    let dumper = tidemark::dumper(&url)?;
    let scratch = match Scratches::open(live.as_ref(), &store.dir().join(drill::SCRATCH_DIR)).await
    {
        Ok(s) => s,
        Err(e) => {
            live.close().await;
            return Err(e);
        }
    };
    let swept = scratch.sweep(sweep_after).await;
    let swept = match swept {
        Ok(s) => s,
        Err(e) => {
            ctx.out.warn(&format!(
                "could not look for scratch databases left by killed drills: {e}"
            ));
            Vec::new()
        }
    };
    for n in &swept {
        ctx.out.line(paint(
            DIM,
            format!("swept {n}, a scratch database left by a killed drill"),
        ));
    }
    let mut subject = drill::Subject {
        live: live.as_mut(),
        database_id: &id,
        store: &store,
        dumper: dumper.as_ref(),
        set: &set,
        settings: &settings,
    };
    // The signal's name and the exit code a shell gives it, as for every other command.
    let interrupted = async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => ("SIGINT", 130),
                        _ = term.recv() => ("SIGTERM", 143),
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    ("SIGINT", 130)
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            ("SIGINT", 130)
        }
    };
    let outcome = tokio::select! {
        r = drill::run(&mut subject, &kinds, &opts, &scratch, &journal) => Ok(r),
        s = interrupted => Err(s),
    };
    let result = match outcome {
        Ok(r) => r,
        Err((signal, code)) => {
            let left = scratch.drop_all().await;
            scratch.close().await;
            live.close().await;
            for (n, e) in &left {
                ctx.out
                    .warn(&format!("could not drop the scratch database {n}: {e}"));
            }
            anstream::eprintln!(
                "error: drill interrupted by {signal}; {}",
                if left.is_empty() {
                    "its scratch databases were dropped"
                } else {
                    "some scratch databases could not be dropped (the next drill sweeps them)"
                }
            );
            return Ok(code);
        }
    };
    // Whatever happened, nothing made for the drill stays behind.
    let left = scratch.drop_all().await;
    scratch.close().await;
    live.close().await;
    for (n, e) in &left {
        ctx.out
            .warn(&format!("could not drop the scratch database {n}: {e}"));
    }
    let reports = result?;
    Ok(finish(ctx, &url, &id, &journal, &reports, &swept))
}

fn finish(
    ctx: &Context,
    url: &tidemark::DatabaseUrl,
    id: &str,
    journal: &Journal,
    reports: &[DrillReport],
    swept: &[String],
) -> i32 {
    let code = drill::exit_code(reports);
    if ctx.out.is_json() {
        ctx.out.json(&serde_json::json!({
            "database": url.redacted(),
            "database_id": id,
            "drills": reports,
            "swept": swept,
            "journal": journal.path().display().to_string(),
            "exit_code": code,
        }));
        return code;
    }
    for r in reports {
        render(ctx, r);
    }
    ctx.out.line(paint(
        DIM,
        format!("journaled in {}", journal.path().display()),
    ));
    code
}

fn render(ctx: &Context, r: &DrillReport) {
    let source = r
        .source
        .as_deref()
        .map(|s| format!(" · {s}"))
        .unwrap_or_default();
    ctx.out.line(format!(
        "{} {}{}",
        paint(BOLD, format!("drill {}", r.drill.name())),
        verdict(r),
        paint(DIM, source)
    ));
    for s in &r.steps {
        let mark = if s.ok {
            paint(GREEN, "✓")
        } else {
            paint(RED, "✗")
        };
        ctx.out.line(format!(
            "  {mark} {:<10} {:>8}  {}",
            s.name,
            ms(s.duration_ms),
            paint(DIM, s.detail.as_deref().unwrap_or(""))
        ));
    }
    let what = if r.drill == Kind::Restore {
        "recovery time (measured)"
    } else {
        "total"
    };
    let target = match (r.target_ms, r.missed_target_by_ms) {
        (Some(t), Some(by)) => format!(
            " · target {} {}",
            ms(t),
            paint(YELLOW, format!("missed by {}", ms(by)))
        ),
        (Some(t), None) => format!(" · target {}", ms(t)),
        _ => String::new(),
    };
    ctx.out
        .line(format!("  {what} {}{target}", paint(BOLD, ms(r.total_ms))));
    for f in &r.failures {
        for (i, l) in f.lines().enumerate() {
            if i == 0 {
                ctx.out.line(format!("  {} {l}", paint(RED, "why:")));
            } else {
                ctx.out.line(format!("  {l}"));
            }
        }
    }
}

fn history(ctx: &Context, journal: &Journal, args: &DrillArgs) -> Result<i32> {
    let kinds = match args.which.as_deref() {
        None | Some("all") => Kind::ALL.to_vec(),
        w => kinds(w)?,
    };
    let trend: BTreeMap<Kind, Vec<DrillReport>> = journal
        .trend(args.last)?
        .into_iter()
        .filter(|(k, _)| kinds.contains(k))
        .collect();
    if let Some(path) = &args.html {
        std::fs::write(path, html(&trend)).map_err(|e| Error::io(path, e))?;
    }
    if ctx.out.is_json() {
        let drills: BTreeMap<&str, Vec<serde_json::Value>> = trend
            .iter()
            .map(|(k, v)| {
                (
                    k.name(),
                    v.iter()
                        .map(|r| {
                            serde_json::json!({
                                "run_id": r.run_id,
                                "started_at": r.started_at,
                                "ok": r.ok,
                                "total_ms": r.total_ms,
                                "target_ms": r.target_ms,
                                "missed_target_by_ms": r.missed_target_by_ms,
                                "exit_code": r.exit_code(),
                                "failures": r.failures,
                            })
                        })
                        .collect(),
                )
            })
            .collect();
        ctx.out.json(&serde_json::json!({
            "journal": journal.path().display().to_string(),
            "drills": drills,
        }));
        return Ok(0);
    }
    if trend.is_empty() {
        ctx.out.line(format!(
            "no drill has run for this database yet ({})",
            journal.path().display()
        ));
    }
    for (k, v) in &trend {
        ctx.out.line(paint(BOLD, format!("drill {}", k.name())));
        let max = v.iter().map(|r| r.total_ms).max().unwrap_or(1).max(1);
        for r in v {
            let bar = "█".repeat(((r.total_ms * 30) / max).max(1) as usize);
            ctx.out.line(format!(
                "  {}  {:<28} {:>8}  {}",
                r.started_at.replace('T', " ").trim_end_matches('Z'),
                verdict(r),
                ms(r.total_ms),
                paint(DIM, bar)
            ));
        }
    }
    Ok(0)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A page with one bar chart per drill (time per run, red when it failed, amber when it missed
/// its target, the target as a line).
fn html(trend: &BTreeMap<Kind, Vec<DrillReport>>) -> String {
    let mut body = String::new();
    for (k, v) in trend {
        let max = v
            .iter()
            .map(|r| r.total_ms.max(r.target_ms.unwrap_or(0)))
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        let (w, h, bw) = (40 * v.len().max(1) + 20, 160.0, 28);
        let mut svg = format!(r#"<svg width="{w}" height="180" role="img">"#);
        for (i, r) in v.iter().enumerate() {
            let bh = (r.total_ms as f64 / max * h).max(1.0);
            let color = match r.exit_code() {
                0 => "#2e7d32",
                20 => "#f9a825",
                _ => "#c62828",
            };
            svg.push_str(&format!(
                r#"<rect x="{}" y="{:.1}" width="{bw}" height="{bh:.1}" fill="{color}"><title>{} · {} · {}</title></rect>"#,
                10 + i * 40,
                10.0 + h - bh,
                escape(&r.started_at),
                ms(r.total_ms),
                if r.ok { "passed" } else { "failed" }
            ));
        }
        if let Some(t) = v.last().and_then(|r| r.target_ms) {
            let y = 10.0 + h - t as f64 / max * h;
            svg.push_str(&format!(
                r##"<line x1="0" x2="{w}" y1="{y:.1}" y2="{y:.1}" stroke="#555" stroke-dasharray="4"><title>target {}</title></line>"##,
                ms(t)
            ));
        }
        svg.push_str("</svg>");
        body.push_str(&format!("<h2>drill {}</h2>{svg}", k.name()));
    }
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>tidemark drills</title>\
         <style>body{{font-family:sans-serif;margin:2em}}</style></head><body><h1>tidemark drills</h1>{body}</body></html>\n"
    )
}
