//! The pipeline under test, as operators run it: `fulfilment run` processes (this same binary),
//! each running all six stages, the relay and the scheduler, competing for the stage queues.
//! Running them as processes of their own lets the bench read their peak memory and keeps the
//! load generator's work out of their figures.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::domain::StageName;
use crate::messaging::{self, Topology};
use crate::settings::Settings;

/// The longest the bench waits for the workers to start consuming.
const START_LIMIT: Duration = Duration::from_secs(60);

/// The longest a worker gets to stop after SIGTERM before it is killed.
const STOP_LIMIT: Duration = Duration::from_secs(30);

/// Running worker processes.
pub struct Workers {
    children: Vec<Child>,
    /// Where each serves its metrics.
    metrics: Vec<String>,
}

impl Workers {
    /// Starts `count` processes of `binary run --no-api` against `settings`' broker namespace
    /// and database, logging to `worker-<i>.log` in `log_dir`, and waits until every stage
    /// queue has a consumer from each.
    pub async fn start(
        binary: &Path,
        settings: &Settings,
        count: usize,
        log_dir: &Path,
    ) -> anyhow::Result<Self> {
        let mut children = Vec::with_capacity(count);
        let mut metrics = Vec::with_capacity(count);
        for i in 0..count {
            let address = free_local_address()?;
            let log = log_dir.join(format!("worker-{i}.log"));
            let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
            let child = Command::new(binary)
                .args(["run", "--no-api"])
                .env("FULFILMENT__AMQP__NAMESPACE", &settings.amqp.namespace)
                .env("FULFILMENT__AMQP__URL", settings.amqp.url.expose())
                .env("FULFILMENT__DATABASE__URL", settings.database.url.expose())
                .env("FULFILMENT__METRICS__LISTEN", &address)
                .stdin(Stdio::null())
                .stdout(out.try_clone()?)
                .stderr(out)
                .spawn()
                .with_context(|| format!("starting {} run", binary.display()))?;
            children.push(child);
            metrics.push(address);
        }
        let mut workers = Self { children, metrics };
        workers.wait_until_consuming(settings, count).await?;
        Ok(workers)
    }

    /// Polls the stage queues until each has its consumers from `processes` workers, or a
    /// worker exits.
    async fn wait_until_consuming(
        &mut self,
        settings: &Settings,
        processes: usize,
    ) -> anyhow::Result<()> {
        let topology = Topology::of(&settings.amqp);
        let connection = messaging::connect(&settings.amqp, "bench/readiness").await?;
        topology.declare(&connection).await?;
        let mut channel = connection.create_channel().await?;
        let started = Instant::now();
        loop {
            if let Some(exit) = self.exited()? {
                bail!("a worker exited while starting ({exit}); see its log");
            }
            if all_consuming(settings, &topology, &channel, processes).await {
                break;
            }
            if !channel.status().connected() {
                // A failed lookup closes its channel.
                channel = connection.create_channel().await?;
            }
            if started.elapsed() > START_LIMIT {
                bail!("the workers did not start consuming within {START_LIMIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        connection.close(200, "ready".into()).await?;
        Ok(())
    }

    /// The exit status of a worker that has stopped, if any has.
    fn exited(&mut self) -> anyhow::Result<Option<std::process::ExitStatus>> {
        for child in &mut self.children {
            if let Some(status) = child.try_wait()? {
                return Ok(Some(status));
            }
        }
        Ok(None)
    }

    /// The workers' counters and CPU time, and the machine's, now.
    pub async fn sample(&self) -> anyhow::Result<super::work::Sample> {
        let mut sample = super::work::Sample {
            machine_cpu: super::work::machine_cpu()?,
            ..Default::default()
        };
        for (child, address) in self.children.iter().zip(&self.metrics) {
            let text = super::work::scrape(address).await?;
            sample.statements += super::work::value(&text, "fulfilment_sql_statements_total");
            sample.commits += super::work::value(&text, "fulfilment_db_commits_total");
            sample.worker_cpu += super::work::process_cpu(child.id())?;
        }
        Ok(sample)
    }

    /// Each worker's peak resident memory so far, in MiB (`VmHWM` in `/proc/<pid>/status`).
    pub fn peak_rss_mib(&self) -> anyhow::Result<Vec<f64>> {
        self.children
            .iter()
            .map(|child| peak_rss_mib(&PathBuf::from(format!("/proc/{}/status", child.id()))))
            .collect()
    }

    /// Asks every worker to stop (SIGTERM) and waits; kills any that do not stop in time.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        for child in &self.children {
            let pid = libc::pid_t::try_from(child.id()).context("a process id")?;
            // SAFETY: sending a signal to a child process this struct owns and has not reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let started = Instant::now();
        while self.any_running()? {
            if started.elapsed() > STOP_LIMIT {
                for child in &mut self.children {
                    let _ = child.kill();
                }
                bail!("workers did not stop within {STOP_LIMIT:?} of SIGTERM; killed");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Whether any worker is still running.
    fn any_running(&mut self) -> anyhow::Result<bool> {
        let mut running = false;
        for child in &mut self.children {
            running |= child.try_wait()?.is_none();
        }
        Ok(running)
    }
}

impl Drop for Workers {
    /// A bench that fails part-way leaves no worker running.
    fn drop(&mut self) {
        for child in &mut self.children {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// A local address no one listens on now, for a worker's metrics.
fn free_local_address() -> anyhow::Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.to_string())
}

/// Whether every stage queue has the consumers `processes` workers start: with partitions,
/// every process is a member of each stage and every partition has its worker.
async fn all_consuming(
    settings: &Settings,
    topology: &Topology,
    channel: &lapin::Channel,
    processes: usize,
) -> bool {
    for stage in StageName::ALL {
        let mut wanted = vec![(
            topology.stage_queue(stage),
            processes * settings.amqp.consumers.of(stage),
        )];
        if topology.partitions() > 1 {
            wanted = vec![(topology.members_queue(stage), processes)];
            wanted.extend(
                (0..topology.partitions()).map(|k| (topology.partition_queue(stage, k), 1)),
            );
        }
        for (queue, expected) in wanted {
            match topology.counts(channel, &queue).await {
                Ok(counts) if counts.consumers as usize >= expected => {}
                // Not declared yet, or not every consumer is there yet.
                _ => return false,
            }
        }
    }
    true
}

/// `VmHWM` from a `/proc/<pid>/status` file, in MiB.
fn peak_rss_mib(status: &Path) -> anyhow::Result<f64> {
    let text =
        std::fs::read_to_string(status).with_context(|| format!("reading {}", status.display()))?;
    parse_vm_hwm(&text).with_context(|| format!("no VmHWM in {}", status.display()))
}

fn parse_vm_hwm(status: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_memory_is_read_from_vm_hwm() {
        let status =
            "Name:\tfulfilment\nVmPeak:\t  900000 kB\nVmHWM:\t   51200 kB\nVmRSS:\t 40000 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(50.0));
        assert_eq!(parse_vm_hwm("Name:\tx\n"), None);
    }

    #[test]
    fn this_process_has_a_peak() {
        let mib = peak_rss_mib(Path::new("/proc/self/status")).unwrap();
        assert!(mib > 0.0);
    }
}
