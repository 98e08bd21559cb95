//! What the pipeline spends per order at full load: SQL statements and commits (counted by the
//! worker processes themselves, read from their metrics) and CPU time (of the worker processes,
//! and of the whole machine: broker, Postgres, workers and the bench's own load generator).

use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Counters at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// SQL statements the workers sent (`fulfilment_sql_statements_total`).
    pub statements: f64,
    /// Transactions they committed (`fulfilment_db_commits_total`).
    pub commits: f64,
    /// CPU time of the worker processes.
    pub worker_cpu: Duration,
    /// CPU time of the whole machine (all cores, not idle).
    pub machine_cpu: Duration,
}

/// What one order cost at full load, from two samples.
#[derive(Debug, Clone, Serialize)]
pub struct PerOrder {
    /// SQL statements per order, counted by the workers (`BEGIN` and `COMMIT` included).
    pub statements: f64,
    /// Transactions committed per order, counted by the workers.
    pub commits: f64,
    /// CPU milliseconds per order of the worker processes.
    pub worker_cpu_ms: f64,
    /// CPU milliseconds per order of the whole machine.
    pub machine_cpu_ms: f64,
}

impl PerOrder {
    /// The cost of `orders` between `before` and `after`.
    pub fn between(before: &Sample, after: &Sample, orders: u64) -> Self {
        let n = orders.max(1) as f64;
        let ms = |a: Duration, b: Duration| (a.saturating_sub(b)).as_secs_f64() * 1000.0 / n;
        Self {
            statements: (after.statements - before.statements) / n,
            commits: (after.commits - before.commits) / n,
            worker_cpu_ms: ms(after.worker_cpu, before.worker_cpu),
            machine_cpu_ms: ms(after.machine_cpu, before.machine_cpu),
        }
    }
}

/// Reads a Prometheus text exposition from `http://<address>/metrics`.
pub async fn scrape(address: &str) -> anyhow::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .with_context(|| format!("connecting to the metrics of {address}"))?;
    let request = format!("GET /metrics HTTP/1.0\r\nHost: {address}\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok(body.to_owned())
}

/// The value of an unlabelled metric in a Prometheus text exposition (0 if absent).
pub fn value(exposition: &str, name: &str) -> f64 {
    exposition
        .lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .sum()
}

/// CPU time a process has used (user and system), from `/proc/<pid>/stat`.
pub fn process_cpu(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the file, 12 and 13 after the name.
    Ok(ticks_to_duration(ticks(11) + ticks(12)))
}

/// CPU time the whole machine has spent not idle, from `/proc/stat`.
pub fn machine_cpu() -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    Ok(ticks_to_duration(busy_ticks(&stat)))
}

/// Ticks of the `cpu` line of `/proc/stat` that were not idle or waiting for I/O.
fn busy_ticks(stat: &str) -> u64 {
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    let total: u64 = ticks.iter().take(8).sum();
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    total.saturating_sub(idle)
}

fn ticks_to_duration(ticks: u64) -> Duration {
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_micros(ticks * 1_000_000 / per_second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_read_from_the_exposition() {
        let text = "# TYPE fulfilment_sql_statements_total counter\nfulfilment_sql_statements_total 1234\nfulfilment_sql_statements_total_other 9\n";
        assert_eq!(value(text, "fulfilment_sql_statements_total"), 1234.0);
        assert_eq!(value(text, "fulfilment_db_commits_total"), 0.0);
    }

    #[test]
    fn busy_time_leaves_out_idle_and_io_wait() {
        let stat = "cpu  100 0 50 1000 30 5 5 0 0 0\ncpu0 1 2 3\n";
        assert_eq!(busy_ticks(stat), 160);
    }

    #[test]
    fn this_process_uses_some_cpu() {
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        assert!(x > 0);
        assert!(process_cpu(std::process::id()).unwrap() > Duration::ZERO);
        assert!(machine_cpu().unwrap() > Duration::ZERO);
    }

    #[test]
    fn costs_are_per_order() {
        let before = Sample::default();
        let after = Sample {
            statements: 800.0,
            commits: 100.0,
            worker_cpu: Duration::from_millis(250),
            machine_cpu: Duration::from_millis(900),
        };
        let cost = PerOrder::between(&before, &after, 100);
        assert_eq!((cost.statements, cost.commits), (8.0, 1.0));
        assert!(
            (cost.worker_cpu_ms - 2.5).abs() < 1e-9 && (cost.machine_cpu_ms - 9.0).abs() < 1e-9
        );
    }
}
