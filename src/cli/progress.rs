//! The demo's live view in the terminal: a heading with the rate, a bar per stage (how many of
//! the run's orders have got past it) and a line for the review desk. Redrawn in place with
//! `indicatif` on standard error, which draws nothing when standard error is not a terminal.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::db::demo::DemoProgress;
use crate::domain::OrderState;

/// Each stage and the state an order is in once the stage has done its part.
const STAGES: [(&str, OrderState); 6] = [
    ("verify", OrderState::Verified),
    ("prepare", OrderState::Prepared),
    ("documents", OrderState::DocumentsGenerated),
    ("handover", OrderState::HandedOver),
    ("confirm", OrderState::Confirmed),
    ("revenue", OrderState::Completed),
];

/// Characters in a full bar.
const BAR_WIDTH: u64 = 40;

/// The view, drawn as one multi-line message.
pub struct Progress {
    view: ProgressBar,
    started: Instant,
}

impl Progress {
    /// Draws the view (to standard error, if it is a terminal).
    pub fn new() -> Self {
        let view = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4))
            .with_style(ProgressStyle::with_template("{msg}").expect("a valid template"));
        view.set_message(render(0, 1.0, &DemoProgress::default()));
        Self {
            view,
            started: Instant::now(),
        }
    }

    /// Shows `progress` after `placed` orders.
    pub fn show(&self, placed: u64, progress: &DemoProgress) {
        let seconds = self
            .started
            .elapsed()
            .max(Duration::from_millis(1))
            .as_secs_f64();
        self.view.set_message(render(placed, seconds, progress));
    }

    /// Leaves the view on the screen as it last was.
    pub fn finish(&self) {
        self.view.abandon();
    }
}

/// The view's text after `placed` orders in `seconds`.
pub fn render(placed: u64, seconds: f64, progress: &DemoProgress) -> String {
    let completed = past(progress, OrderState::Completed);
    let mut lines = vec![format!(
        "placed {placed} orders ({:.1}/s), {completed} completed",
        placed as f64 / seconds
    )];
    for (name, reached) in STAGES {
        let done = past(progress, reached);
        lines.push(format!(
            "  {name:<10} {} {done:>6}/{placed}",
            bar(done, placed)
        ));
    }
    lines.push(review_line(progress));
    lines.join("\n")
}

/// A bar `done` parts of `all` full.
fn bar(done: u64, all: u64) -> String {
    let full = (done.min(all) * BAR_WIDTH).checked_div(all).unwrap_or(0);
    let filled = "█".repeat(full as usize);
    let empty = "░".repeat((BAR_WIDTH - full) as usize);
    format!("{filled}{empty}")
}

/// Orders at or beyond `reached` on the way to completion (not cancelled or closed ones).
pub fn past(progress: &DemoProgress, reached: OrderState) -> u64 {
    progress
        .states
        .iter()
        .filter(|(state, _)| {
            state
                .parse::<OrderState>()
                .is_ok_and(|s| s >= reached && s <= OrderState::Completed)
        })
        .map(|(_, n)| u64::try_from(*n).unwrap_or(0))
        .sum()
}

/// The review desk in a line: open cases and their reasons.
pub fn review_line(progress: &DemoProgress) -> String {
    let open: i64 = progress.cases.iter().map(|(_, n)| n).sum();
    let reasons: Vec<String> = progress
        .cases
        .iter()
        .map(|(reason, n)| format!("{reason} {n}"))
        .collect();
    match open {
        0 => "  review     no open cases".to_owned(),
        _ => format!("  review     {open} open: {}", reasons.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_counts_the_orders_that_got_past_it() {
        let progress = DemoProgress {
            states: vec![
                ("placed".into(), 2),
                ("prepared".into(), 3),
                ("completed".into(), 5),
                ("closed".into(), 1),
            ],
            cases: vec![("price_mismatch".into(), 2)],
            settled: 7,
        };
        assert_eq!(past(&progress, OrderState::Verified), 8);
        assert_eq!(past(&progress, OrderState::DocumentsGenerated), 5);
        assert_eq!(past(&progress, OrderState::Completed), 5);
        let view = render(11, 2.0, &progress);
        assert!(
            view.starts_with("placed 11 orders (5.5/s), 5 completed\n"),
            "{view}"
        );
        assert!(
            view.contains(&format!(
                "  verify     {}{}      8/11",
                "█".repeat(29),
                "░".repeat(11)
            )),
            "{view}"
        );
        assert!(
            view.ends_with("  review     2 open: price_mismatch 2"),
            "{view}"
        );
        assert_eq!(bar(0, 0), "░".repeat(40));
    }
}
