//! `fulfilment bench`: how fast the pipeline is, against the broker's own ceiling, in one run.
//!
//! 1. **Ceiling** ([`crate::messaging::ceiling`]): messages the size of an order through six
//!    hops of durable quorum queues with confirms and acks, no database.
//! 2. **Full load**: real orders through real `fulfilment run` worker processes
//!    ([`workers`]), a simulated customer accepting each handed-over order and a finance tap
//!    timing each `revenue.recognised` ([`traffic`]), with a fixed number of orders in flight
//!    ([`load::closed_loop`]).
//! 3. **Half load**: orders offered at a steady half of the full-load throughput
//!    ([`load::open_loop`]), for latency when the pipeline is not saturated.
//!
//! Every run uses a broker namespace and a database of its own, removed afterwards, and ends
//! with a [`report::Report`]: a table and a JSON file.

pub mod load;
pub mod report;
pub mod traffic;
pub mod work;
pub mod workers;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::PgPool;

use crate::domain::catalogue::Catalogue;
use crate::domain::events::OrderPlaced;
use crate::envelope::WireEvent;
use crate::messaging::ceiling::{Ceiling, ChainShape};
use crate::messaging::{self, Topology};
use crate::settings::{SecretUrl, Settings};
use crate::{client::Client, db, seed};
use load::{Amount, PhaseSummary, Target, Tracker};
use report::{Machine, Report, Setup};
use workers::Workers;

/// The reference data the bench's orders are checked against.
const CATALOGUE: &str = include_str!("../../examples/catalogue.json");

/// Stock of every product in the bench's catalogue: more than any run can sell.
const BENCH_STOCK: u32 = 100_000_000;

/// How long the bench waits for the database to see the workers' connections close.
const DISCONNECT_LIMIT: Duration = Duration::from_secs(30);

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// How long to keep the pipeline fully loaded.
    pub full_load: Duration,
    /// Place exactly this many orders at full load instead.
    pub orders: Option<u64>,
    /// How long to measure the ceiling.
    pub ceiling: Duration,
    /// How long to offer half load.
    pub half_load: Duration,
    /// Orders (and ceiling messages) kept in flight at full load.
    pub in_flight: usize,
    /// Worker processes to start.
    pub processes: usize,
    /// The `fulfilment` binary the workers run.
    pub worker_binary: PathBuf,
    /// Where the JSON report goes; worker logs go beside it.
    pub out: PathBuf,
    /// Leave the run's database and queues in place, for inspection.
    pub keep: bool,
}

/// Runs the three phases and returns the report (also written to `options.out`).
pub async fn run(settings: &Settings, options: &BenchOptions) -> anyhow::Result<Report> {
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let settings = isolated(settings, &run_id)?;
    let log_dir = options
        .out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), PathBuf::from);
    std::fs::create_dir_all(&log_dir).with_context(|| format!("creating {}", log_dir.display()))?;
    let pool = prepare_database(&settings).await?;
    let machine = Machine::read(&pool).await;
    // The bench's own sessions would count in the run's statistics.
    pool.close().await;
    let admin = admin_pool(&settings).await?;
    let outcome = match machine {
        Ok(machine) => phases(&settings, options, &run_id, machine, &admin, &log_dir).await,
        Err(error) => Err(error),
    };
    let cleaned = if options.keep {
        eprintln!(
            "bench: kept database {} and namespace {}",
            settings.database.url, settings.amqp.namespace
        );
        Ok(())
    } else {
        clean_up(&settings).await
    };
    let report = outcome?;
    cleaned?;
    report.write_json(&options.out)?;
    Ok(report)
}

async fn phases(
    settings: &Settings,
    options: &BenchOptions,
    run_id: &str,
    machine: Machine,
    admin: &PgPool,
    log_dir: &std::path::Path,
) -> anyhow::Result<Report> {
    if machine.synchronous_commit != "on" {
        tracing::warn!(value = %machine.synchronous_commit, "synchronous_commit is not on: figures are not durable ones");
    }
    let sample = WireEvent::new("bench", &OrderPlaced::new(traffic::order(run_id, 0)), None);
    let shape = ChainShape {
        hops: 6,
        prefetch: settings.amqp.prefetch,
        batch_size: settings.amqp.batch_size,
    };
    eprintln!("bench: measuring the ceiling for {:?}", options.ceiling);
    let ceiling = measure_ceiling(settings, options, shape, &sample.body).await?;
    eprintln!(
        "bench: ceiling {:.0} orders/s; starting {} worker process(es)",
        ceiling.orders_per_sec, options.processes
    );
    let workers =
        Workers::start(&options.worker_binary, settings, options.processes, log_dir).await?;
    let database = database_name(settings)?;
    let commits_before = commits(admin, &database).await?;
    let pipeline = measure_pipeline(settings, options, run_id, &workers).await;
    let rss = workers.peak_rss_mib();
    workers.stop().await?;
    let (full_load, half_load, per_order) = pipeline?;
    wait_disconnected(admin, &database).await?;
    let committed = commits(admin, &database).await? - commits_before;
    let orders = full_load.orders + half_load.orders;
    let setup = Setup {
        processes: options.processes,
        in_flight: options.in_flight,
        prefetch: settings.amqp.prefetch,
        batch_size: settings.amqp.batch_size,
        message_bytes: sample.body.len(),
    };
    Ok(Report::new(
        run_id.to_owned(),
        machine,
        setup,
        ceiling,
        full_load,
        half_load,
        committed as f64 / orders.max(1) as f64,
        per_order,
        rss?,
    ))
}

/// Places the ceiling's messages into the first queue of the chain.
struct ChainTarget<'a> {
    ceiling: &'a Ceiling,
    body: &'a [u8],
}

impl Target for ChainTarget<'_> {
    async fn place(&self, numbers: std::ops::Range<u64>) -> anyhow::Result<()> {
        let count = numbers.end - numbers.start;
        self.ceiling.send(numbers.start, count, self.body).await
    }
}

async fn measure_ceiling(
    settings: &Settings,
    options: &BenchOptions,
    shape: ChainShape,
    body: &[u8],
) -> anyhow::Result<PhaseSummary> {
    let tracker = Arc::new(Tracker::new(options.in_flight));
    let arrivals = tracker.clone();
    let ceiling = Ceiling::start(
        &settings.amqp,
        shape,
        Arc::new(move |n| arrivals.completed(n)),
    )
    .await?;
    let target = ChainTarget {
        ceiling: &ceiling,
        body,
    };
    let measured = load::closed_loop(&target, &tracker, 0, Amount::For(options.ceiling)).await;
    ceiling.stop().await?;
    Ok(measured?.1)
}

async fn measure_pipeline(
    settings: &Settings,
    options: &BenchOptions,
    run_id: &str,
    workers: &Workers,
) -> anyhow::Result<(PhaseSummary, PhaseSummary, work::PerOrder)> {
    let tracker = Arc::new(Tracker::new(options.in_flight));
    let world = traffic::start_outside_world(&settings.amqp, run_id, tracker.clone()).await?;
    let shop = traffic::Shop {
        client: Client::connect(&settings.amqp, "bench/shop").await?,
        run: run_id.to_owned(),
    };
    let amount = options
        .orders
        .map_or(Amount::For(options.full_load), Amount::Orders);
    eprintln!("bench: full load, {} orders in flight", options.in_flight);
    let started = Instant::now();
    let before = workers.sample().await?;
    let (placed, full) = load::closed_loop(&shop, &tracker, 0, amount).await?;
    let after = workers.sample().await?;
    let per_order = work::PerOrder::between(&before, &after, full.orders);
    eprintln!(
        "bench: full load {:.0} orders/s over {:.1?}; half load for {:?}",
        full.orders_per_sec,
        started.elapsed(),
        options.half_load
    );
    let rate = full.orders_per_sec / 2.0;
    let (_, half) = load::open_loop(&shop, &tracker, placed.end, rate, options.half_load).await?;
    for task in world {
        task.abort();
    }
    shop.client.close().await?;
    Ok((full, half, per_order))
}

/// The settings with a namespace and a database of this run's own.
fn isolated(settings: &Settings, run_id: &str) -> anyhow::Result<Settings> {
    let mut settings = settings.clone();
    settings.amqp.namespace = format!("{}-bench-{run_id}", settings.amqp.namespace);
    let mut url = url::Url::parse(settings.database.url.expose()).context("database.url")?;
    let database = url.path().trim_start_matches('/').to_owned();
    url.set_path(&format!("{database}_bench_{run_id}"));
    settings.database.url = SecretUrl::new(url.to_string());
    Ok(settings)
}

fn database_name(settings: &Settings) -> anyhow::Result<String> {
    let url = url::Url::parse(settings.database.url.expose()).context("database.url")?;
    Ok(url.path().trim_start_matches('/').to_owned())
}

/// Creates and migrates the run's database and loads the catalogue, with ample stock.
async fn prepare_database(settings: &Settings) -> anyhow::Result<PgPool> {
    db::create_if_missing(&settings.database).await?;
    let pool = db::connect(&settings.database).await?;
    db::migrate(&pool).await?;
    let mut catalogue: Catalogue =
        serde_json::from_str(CATALOGUE).context("the built-in bench catalogue")?;
    for level in &mut catalogue.stock {
        level.available = BENCH_STOCK;
    }
    seed::apply(&pool, &catalogue).await?;
    Ok(pool)
}

/// A connection to the server's `postgres` database, so that reading statistics does not add
/// transactions to the run's own database.
async fn admin_pool(settings: &Settings) -> anyhow::Result<PgPool> {
    let mut admin = settings.database.clone();
    let mut url = url::Url::parse(admin.url.expose()).context("database.url")?;
    url.set_path("/postgres");
    admin.url = SecretUrl::new(url.to_string());
    admin.max_connections = 1;
    db::connect(&admin).await
}

/// Transactions committed in `database` so far.
async fn commits(admin: &PgPool, database: &str) -> anyhow::Result<i64> {
    sqlx::query_scalar("SELECT xact_commit FROM pg_stat_database WHERE datname = $1")
        .bind(database)
        .fetch_one(admin)
        .await
        .context("reading pg_stat_database")
}

/// Waits until no session is connected to `database` (a session's statistics are only
/// complete once it has ended).
async fn wait_disconnected(admin: &PgPool, database: &str) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let sessions: i64 =
            sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = $1")
                .bind(database)
                .fetch_one(admin)
                .await
                .context("reading pg_stat_activity")?;
        if sessions == 0 {
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < DISCONNECT_LIMIT,
            "{sessions} sessions still connected to {database}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Deletes the run's queues and exchange and drops its database.
async fn clean_up(settings: &Settings) -> anyhow::Result<()> {
    let topology = Topology::of(&settings.amqp);
    let connection = messaging::connect(&settings.amqp, "bench/clean-up").await?;
    let channel = connection.create_channel().await?;
    for name in ["bench-customer", "bench-finance"] {
        let queue = format!("{}.{name}", settings.amqp.namespace);
        topology.delete_queue(&channel, &queue).await?;
    }
    topology.delete(&channel).await?;
    connection.close(200, "done".into()).await?;
    db::drop_database(&settings.database).await
}
