//! Offering load and timing it: a closed loop that keeps a fixed number of orders in flight
//! (full load), an open loop at a fixed rate (half load), and the tracker that turns
//! "placed at" and "came out at" into throughput and latency percentiles.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde::Serialize;
use tokio::sync::{Notify, Semaphore};

/// The longest the bench waits without any order completing before it gives up.
const STALL_LIMIT: Duration = Duration::from_secs(60);

/// Most orders placed in one publish.
const MAX_CHUNK: usize = 100;

/// Something the load is offered to: the ceiling chain or the pipeline.
pub trait Target {
    /// Places the orders numbered `numbers` (publishes them and waits for the broker's confirms).
    fn place(&self, numbers: Range<u64>) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// When each order was placed and when it came out.
pub struct Tracker {
    placed: Mutex<HashMap<u64, Instant>>,
    done: Mutex<HashMap<u64, (Instant, Duration)>>,
    /// Free places in the closed loop's window; each completion frees one.
    window: Semaphore,
    progress: Notify,
}

impl Tracker {
    /// A tracker whose closed loop keeps at most `window` orders in flight.
    pub fn new(window: usize) -> Self {
        Self {
            placed: Mutex::new(HashMap::new()),
            done: Mutex::new(HashMap::new()),
            window: Semaphore::new(window),
            progress: Notify::new(),
        }
    }

    fn placing(&self, numbers: Range<u64>) {
        let now = Instant::now();
        let mut placed = self.placed.lock().expect("tracker lock");
        placed.extend(numbers.map(|n| (n, now)));
    }

    /// Records that order `n` came out; a second report of the same order is ignored.
    pub fn completed(&self, n: u64) {
        let now = Instant::now();
        let Some(at) = self.placed.lock().expect("tracker lock").remove(&n) else {
            return;
        };
        self.done
            .lock()
            .expect("tracker lock")
            .insert(n, (now, now - at));
        self.window.add_permits(1);
        self.progress.notify_waiters();
    }

    fn in_flight(&self) -> usize {
        self.placed.lock().expect("tracker lock").len()
    }

    /// Waits until every placed order has come out; fails if none comes out for a minute.
    async fn drain(&self) -> anyhow::Result<()> {
        loop {
            let notified = self.progress.notified();
            let left = self.in_flight();
            if left == 0 {
                return Ok(());
            }
            if tokio::time::timeout(STALL_LIMIT, notified).await.is_err() {
                bail!(
                    "{left} orders made no progress for {STALL_LIMIT:?}; see the worker logs and the review queue"
                );
            }
        }
    }

    /// Throughput and latency of the orders numbered `numbers`, counting as throughput those
    /// that came out between `start` and `end`.
    fn summary(&self, numbers: Range<u64>, start: Instant, end: Instant) -> PhaseSummary {
        let done = self.done.lock().expect("tracker lock");
        let mut latencies: Vec<Duration> = Vec::new();
        let mut in_window = 0u64;
        for n in numbers.clone() {
            if let Some((at, latency)) = done.get(&n) {
                latencies.push(*latency);
                if *at <= end {
                    in_window += 1;
                }
            }
        }
        latencies.sort_unstable();
        let seconds = (end - start).as_secs_f64();
        PhaseSummary {
            orders: numbers.end - numbers.start,
            seconds,
            orders_per_sec: in_window as f64 / seconds,
            latency_ms: Percentiles::of(&latencies),
        }
    }
}

/// How long a closed loop places orders.
#[derive(Debug, Clone, Copy)]
pub enum Amount {
    /// Keep placing for this long.
    For(Duration),
    /// Place exactly this many.
    Orders(u64),
}

/// What one phase measured.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseSummary {
    /// Orders placed (and completed) in the phase.
    pub orders: u64,
    /// Length of the measuring window in seconds.
    pub seconds: f64,
    /// Orders completed per second within the window.
    pub orders_per_sec: f64,
    /// Latency from placing to coming out, in milliseconds.
    pub latency_ms: Percentiles,
}

/// Latency percentiles in milliseconds (nearest rank).
#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// The slowest.
    pub max: f64,
}

impl Percentiles {
    fn of(sorted: &[Duration]) -> Self {
        let rank = |p: f64| -> f64 {
            if sorted.is_empty() {
                return 0.0;
            }
            let index = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
            sorted[index].as_secs_f64() * 1000.0
        };
        Self {
            p50: rank(0.50),
            p95: rank(0.95),
            p99: rank(0.99),
            max: rank(1.0),
        }
    }
}

/// Full load: keeps `tracker`'s window full, placing orders numbered from `first`, until
/// `amount` is placed; then waits for all to come out. Throughput counts what came out while
/// orders were still being placed (or, for a fixed number, until the last came out).
pub async fn closed_loop<T: Target>(
    target: &T,
    tracker: &Tracker,
    first: u64,
    amount: Amount,
) -> anyhow::Result<(Range<u64>, PhaseSummary)> {
    let start = Instant::now();
    let mut next = first;
    loop {
        let wanted = match amount {
            Amount::For(duration) if start.elapsed() >= duration => break,
            Amount::Orders(n) if next - first >= n => break,
            Amount::For(_) => MAX_CHUNK as u64,
            Amount::Orders(n) => (n - (next - first)).min(MAX_CHUNK as u64),
        };
        let count = take_places(tracker, wanted as usize).await;
        let numbers = next..next + count as u64;
        tracker.placing(numbers.clone());
        target.place(numbers).await?;
        next += count as u64;
    }
    let placing_ended = Instant::now();
    tracker.drain().await?;
    let end = match amount {
        Amount::For(_) => placing_ended,
        Amount::Orders(_) => Instant::now(),
    };
    Ok((first..next, tracker.summary(first..next, start, end)))
}

/// Waits for one free place in the window, then takes as many more as are free, up to `most`.
async fn take_places(tracker: &Tracker, most: usize) -> usize {
    tracker
        .window
        .acquire()
        .await
        .expect("the window is never closed")
        .forget();
    let extra = tracker
        .window
        .available_permits()
        .min(most.saturating_sub(1));
    if extra > 0
        && let Ok(permits) = tracker.window.try_acquire_many(extra as u32)
    {
        permits.forget();
        return 1 + extra;
    }
    1
}

/// Open load: places one order every `1 / rate` seconds for `duration`, whatever is in flight,
/// then waits for all to come out.
pub async fn open_loop<T: Target>(
    target: &T,
    tracker: &Tracker,
    first: u64,
    rate: f64,
    duration: Duration,
) -> anyhow::Result<(Range<u64>, PhaseSummary)> {
    let period = Duration::from_secs_f64(1.0 / rate.max(0.1));
    let mut ticks = tokio::time::interval(period);
    let start = Instant::now();
    let mut next = first;
    while start.elapsed() < duration {
        ticks.tick().await;
        tracker.placing(next..next + 1);
        target.place(next..next + 1).await?;
        next += 1;
    }
    tracker.drain().await?;
    let end = Instant::now();
    Ok((first..next, tracker.summary(first..next, start, end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let p = Percentiles::of(&sorted);
        assert_eq!((p.p50, p.p95, p.p99, p.max), (50.0, 95.0, 99.0, 100.0));
        let one = Percentiles::of(&[Duration::from_millis(7)]);
        assert_eq!((one.p50, one.p99), (7.0, 7.0));
    }

    #[test]
    fn a_completion_is_counted_once_and_frees_one_place() {
        let tracker = Tracker::new(0);
        tracker.placing(0..2);
        tracker.completed(1);
        tracker.completed(1);
        tracker.completed(9);
        assert_eq!(tracker.in_flight(), 1);
        assert_eq!(tracker.window.available_permits(), 1);
    }
}
