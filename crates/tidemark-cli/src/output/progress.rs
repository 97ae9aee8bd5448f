//! Progress of `up`/`down`: a bar on a terminal, one line per migration everywhere (so CI logs
//! say what happened), nothing in JSON mode.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tidemark::engine::{Event, Observer};
use tidemark::plan::Direction;

use super::{DIM, GREEN, Out, YELLOW, paint};

/// A spinner for work of unknown length (replays, inspections), on a terminal only. It
/// disappears when dropped.
pub fn spinner(out: &Out, message: String) -> Option<ProgressBarGuard> {
    if !out.interactive() {
        return None;
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(message);
    bar.enable_steady_tick(Duration::from_millis(120));
    Some(ProgressBarGuard(bar))
}

pub struct ProgressBarGuard(ProgressBar);

impl Drop for ProgressBarGuard {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

pub struct Progress {
    out: Out,
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn new(out: Out) -> Progress {
        Progress { out, bar: None }
    }

    fn say(&self, line: String) {
        if self.out.quiet || self.out.is_json() {
            return;
        }
        match &self.bar {
            Some(b) => b.suspend(|| crate::output::print_line(&line)),
            None => crate::output::print_line(&line),
        }
    }

    pub fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Observer for Progress {
    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::LockWaiting { holder } => {
                if !self.out.is_json() && !self.out.quiet {
                    anstream::eprintln!(
                        "{} waiting for the migration lock, held by {holder}",
                        paint(YELLOW, "…")
                    );
                }
            }
            Event::LockAcquired { .. } => {}
            Event::Planned { plan } => {
                // Even one migration gets a spinner: a slow one is not silence.
                if !plan.steps.is_empty() && self.out.interactive() {
                    let bar = ProgressBar::with_draw_target(
                        Some(plan.steps.len() as u64),
                        ProgressDrawTarget::stderr(),
                    );
                    let template = if plan.steps.len() > 1 {
                        "{spinner} [{bar:30}] {pos}/{len} {msg} ({elapsed})"
                    } else {
                        "{spinner} {msg} ({elapsed})"
                    };
                    bar.set_style(
                        ProgressStyle::with_template(template)
                            .unwrap_or_else(|_| ProgressStyle::default_bar())
                            .progress_chars("=> "),
                    );
                    bar.enable_steady_tick(Duration::from_millis(120));
                    self.bar = Some(bar);
                }
            }
            Event::StepStarted { step, .. } => {
                if let Some(b) = &self.bar {
                    b.set_message(step.label());
                }
            }
            Event::StatementFinished { step, stmt } => {
                // Statement by statement, the number of the one running now.
                if let Some(b) = &self.bar
                    && !step.transactional
                    && stmt.index < step.statements.len()
                {
                    b.set_message(format!(
                        "{} {} · statement {}/{}",
                        step.version,
                        step.name,
                        stmt.index + 1,
                        step.statements.len()
                    ));
                }
                if self.out.verbose {
                    self.say(paint(
                        DIM,
                        format!(
                            "    {}:{} {}",
                            step.path.display(),
                            stmt.line,
                            tidemark::split::summarize(&stmt.text, 100)
                        ),
                    ));
                }
            }
            Event::StepFinished { step, ms } => {
                if let Some(b) = &self.bar {
                    b.inc(1);
                }
                let verb = match step.direction {
                    Direction::Up => "applied",
                    Direction::Down => "reverted",
                };
                let note = if step.transactional {
                    ""
                } else {
                    " · statement by statement"
                };
                self.say(format!(
                    "  {} {verb} {} {}",
                    paint(GREEN, "✓"),
                    step.label(),
                    paint(DIM, format!("({ms} ms{note})"))
                ));
            }
            Event::Warning(w) => {
                let bar = self.bar.clone();
                match bar {
                    Some(b) => b.suspend(|| self.out.warn(&w)),
                    None => self.out.warn(&w),
                }
            }
        }
    }
}
