//! What a bench run found: one table for people, one JSON file for tools and for comparing runs.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;
use sqlx::PgPool;

use super::load::PhaseSummary;

/// Pipeline throughput at least this share of the ceiling measured in the same run.
pub const TARGET_RATIO: f64 = 0.3;
/// p99 placed-to-recognised latency at half load at most this many milliseconds.
pub const TARGET_HALF_LOAD_P99_MS: f64 = 100.0;
/// SQL statements per order at full load, at most.
pub const TARGET_STATEMENTS: f64 = 8.0;
/// Commits per order at full load, at most.
pub const TARGET_COMMITS: f64 = 1.0;
/// Worker peak resident memory at most this many MiB.
pub const TARGET_PEAK_RSS_MIB: f64 = 150.0;

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The run's id: its database is `<database>_bench_<run>`, its namespace `<namespace>-bench-<run>`.
    pub run: String,
    /// When the run finished (UTC, RFC 3339).
    pub finished_at: String,
    /// The machine and the services it ran against.
    pub machine: Machine,
    /// How the run was set up.
    pub setup: Setup,
    /// Six hops through quorum queues with confirms and no database.
    pub ceiling: PhaseSummary,
    /// The pipeline kept busy (a full window of orders in flight).
    pub full_load: PhaseSummary,
    /// The pipeline offered half of `full_load`'s throughput at a steady rate.
    pub half_load: PhaseSummary,
    /// `full_load` throughput over `ceiling` throughput.
    pub ratio: f64,
    /// Postgres transactions committed per order during both pipeline phases (all sessions of
    /// the run's database, from `pg_stat_database`).
    pub commits_per_order: f64,
    /// What an order cost at full load: statements and commits counted by the workers, CPU.
    pub per_order: super::work::PerOrder,
    /// Each worker process's peak resident memory in MiB.
    pub worker_peak_rss_mib: Vec<f64>,
    /// The targets and whether this run met them.
    pub targets: Vec<Target>,
}

/// How the run was set up.
#[derive(Debug, Clone, Serialize)]
pub struct Setup {
    /// Worker processes, each running all six stages.
    pub processes: usize,
    /// Orders kept in flight at full load (and messages in the ceiling chain).
    pub in_flight: usize,
    /// Deliveries a worker holds unacknowledged per stage.
    pub prefetch: u16,
    /// Most deliveries a worker handles in one batch.
    pub batch_size: usize,
    /// Size of an `order.placed` message, and of every ceiling message, in bytes.
    pub message_bytes: usize,
}

/// A target and this run's figure.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// What is measured.
    pub name: String,
    /// The target, as text.
    pub target: String,
    /// This run's figure.
    pub measured: f64,
    /// Whether the figure meets the target.
    pub met: bool,
}

/// The machine and the services' versions.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// CPU cores available to this process.
    pub cores: usize,
    /// Total memory in MiB.
    pub memory_mib: u64,
    /// The CPU model.
    pub cpu: String,
    /// RabbitMQ's version (`rabbitmqctl version`), or why it is unknown.
    pub rabbitmq: String,
    /// Postgres's `server_version`.
    pub postgres: String,
    /// Postgres's `synchronous_commit` during the run.
    pub synchronous_commit: String,
}

impl Machine {
    /// Reads the machine from `/proc` and the services' versions from the services.
    pub async fn read(pool: &PgPool) -> anyhow::Result<Self> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let postgres: String = sqlx::query_scalar("SHOW server_version")
            .fetch_one(pool)
            .await
            .context("reading Postgres's version")?;
        let synchronous_commit: String = sqlx::query_scalar("SHOW synchronous_commit")
            .fetch_one(pool)
            .await
            .context("reading synchronous_commit")?;
        Ok(Self {
            cores,
            memory_mib: field(&meminfo, "MemTotal:")
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .map_or(0, |kib| kib / 1024),
            cpu: field(&cpuinfo, "model name").unwrap_or_else(|| "unknown".into()),
            rabbitmq: rabbitmq_version(),
            postgres,
            synchronous_commit,
        })
    }
}

/// The value after `key` and an optional `:` on the first line starting with `key`.
fn field(text: &str, key: &str) -> Option<String> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    let value = line[key.len()..]
        .trim_start()
        .trim_start_matches(':')
        .trim();
    Some(value.to_owned())
}

fn rabbitmq_version() -> String {
    match std::process::Command::new("rabbitmqctl")
        .arg("version")
        .output()
    {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        Ok(_) => "unknown (rabbitmqctl version failed)".into(),
        Err(_) => "unknown (rabbitmqctl not found)".into(),
    }
}

impl Report {
    /// Fills in the ratio and the targets from the figures.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        run: String,
        machine: Machine,
        setup: Setup,
        ceiling: PhaseSummary,
        full_load: PhaseSummary,
        half_load: PhaseSummary,
        commits_per_order: f64,
        per_order: super::work::PerOrder,
        worker_peak_rss_mib: Vec<f64>,
    ) -> Self {
        let ratio = full_load.orders_per_sec / ceiling.orders_per_sec.max(f64::MIN_POSITIVE);
        let peak = worker_peak_rss_mib.iter().copied().fold(0.0, f64::max);
        let targets = vec![
            Target {
                name: "pipeline / ceiling".into(),
                target: format!(">= {TARGET_RATIO}"),
                measured: ratio,
                met: ratio >= TARGET_RATIO,
            },
            Target {
                name: "p99 at half load (ms)".into(),
                target: format!("<= {TARGET_HALF_LOAD_P99_MS}"),
                measured: half_load.latency_ms.p99,
                met: half_load.latency_ms.p99 <= TARGET_HALF_LOAD_P99_MS,
            },
            Target {
                name: "SQL statements per order at full load".into(),
                target: format!("<= {TARGET_STATEMENTS}"),
                measured: per_order.statements,
                met: per_order.statements <= TARGET_STATEMENTS,
            },
            Target {
                name: "commits per order at full load".into(),
                target: format!("<= {TARGET_COMMITS}"),
                measured: per_order.commits,
                met: per_order.commits <= TARGET_COMMITS,
            },
            Target {
                name: "worker peak RSS (MiB)".into(),
                target: format!("<= {TARGET_PEAK_RSS_MIB}"),
                measured: peak,
                met: peak <= TARGET_PEAK_RSS_MIB,
            },
        ];
        Self {
            run,
            finished_at: chrono::Utc::now().to_rfc3339(),
            machine,
            setup,
            ceiling,
            full_load,
            half_load,
            ratio,
            commits_per_order,
            per_order,
            worker_peak_rss_mib,
            targets,
        }
    }

    /// Writes the report as pretty JSON.
    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let json = serde_json::to_string_pretty(self)?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))
    }

    /// The report as a Markdown table, ready for a terminal or `docs/performance.md`.
    pub fn table(&self) -> String {
        let m = &self.machine;
        let s = &self.setup;
        let mut t = String::new();
        let _ = writeln!(t, "| Measure | Value |");
        let _ = writeln!(t, "|---|---|");
        let mut row = |name: &str, value: String| {
            let _ = writeln!(t, "| {name} | {value} |");
        };
        row("Ceiling (6 hops, no database)", rate(&self.ceiling));
        row("Pipeline, full load", rate(&self.full_load));
        row("Pipeline / ceiling", format!("{:.2}", self.ratio));
        row("Latency at full load", latency(&self.full_load));
        row(
            "Half load offered",
            format!("{:.0} orders/s", self.full_load.orders_per_sec / 2.0),
        );
        row("Latency at half load", latency(&self.half_load));
        let w = &self.per_order;
        row(
            "Per order at full load (workers' count)",
            format!(
                "{:.2} SQL statements, {:.2} commits",
                w.statements, w.commits
            ),
        );
        row(
            "CPU per order at full load",
            format!(
                "{:.2} ms in the workers, {:.2} ms on the whole machine",
                w.worker_cpu_ms, w.machine_cpu_ms
            ),
        );
        row(
            "Postgres commits per order (all sessions, both phases)",
            format!("{:.2}", self.commits_per_order),
        );
        let rss: Vec<String> = self
            .worker_peak_rss_mib
            .iter()
            .map(|m| format!("{m:.1}"))
            .collect();
        row("Worker peak RSS (MiB)", rss.join(", "));
        row(
            "Setup",
            format!(
                "{} worker process(es), {} in flight, prefetch {}, batch {}, {}-byte orders",
                s.processes, s.in_flight, s.prefetch, s.batch_size, s.message_bytes
            ),
        );
        row(
            "Machine",
            format!("{} cores, {} MiB, {}", m.cores, m.memory_mib, m.cpu),
        );
        row(
            "Services",
            format!(
                "RabbitMQ {}, Postgres {} (synchronous_commit {})",
                m.rabbitmq, m.postgres, m.synchronous_commit
            ),
        );
        for target in &self.targets {
            let verdict = if target.met { "met" } else { "MISSED" };
            row(
                &format!("Target: {}", target.name),
                format!(
                    "{} (measured {:.2}): {verdict}",
                    target.target, target.measured
                ),
            );
        }
        t
    }
}

fn rate(phase: &PhaseSummary) -> String {
    format!(
        "{:.0} orders/s ({} orders, {:.1} s)",
        phase.orders_per_sec, phase.orders, phase.seconds
    )
}

fn latency(phase: &PhaseSummary) -> String {
    let l = &phase.latency_ms;
    format!(
        "p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms (max {:.0} ms)",
        l.p50, l.p95, l.p99, l.max
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_after_their_key() {
        let meminfo = "MemTotal:       24576000 kB\nMemFree: 1 kB\n";
        assert_eq!(field(meminfo, "MemTotal:").as_deref(), Some("24576000 kB"));
        let cpuinfo = "processor\t: 0\nmodel name\t: Some CPU @ 2.0GHz\n";
        assert_eq!(
            field(cpuinfo, "model name").as_deref(),
            Some("Some CPU @ 2.0GHz")
        );
        assert_eq!(field(cpuinfo, "flags"), None);
    }
}
