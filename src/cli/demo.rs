//! `fulfilment demo`: the whole pipeline on this machine's broker and database, fed a steady
//! stream of sample orders, with its progress drawn live in the terminal.
//!
//! It seeds the sample reference data (with plenty of stock), starts every stage, the relay,
//! the API and the metrics listener in this process, and places web and contact-centre orders
//! at `--rate` per second; one in eight has a problem that sends it to review. Customers are
//! deemed to accept `--acceptance-window-secs` after handover, so orders complete on their
//! own. With `--orders N` it stops placing after N and ends once each of them is completed or
//! waiting in review; otherwise it runs until Ctrl-C.

use std::time::Duration;

use anyhow::Context;
use chrono::Utc;

use super::progress::Progress;
use super::running::Running;
use super::{StopSignals, prepare_database, write_out};
use crate::client::Client;
use crate::db::demo::DemoProgress;
use crate::demo::{CATALOGUE, DEMO_STOCK, sample_order};
use crate::pipeline::PipelineOptions;
use crate::settings::Settings;

/// Where the demo serves metrics and health when `metrics.listen` is not set.
const DEMO_METRICS: &str = "127.0.0.1:9464";

/// How often orders are placed and the view redrawn.
const TICK: Duration = Duration::from_millis(100);

/// How long a bounded demo waits for its orders once all are placed, beyond the acceptance
/// window.
const SETTLE_GRACE: Duration = Duration::from_secs(120);

/// Options of `fulfilment demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Orders placed per second.
    #[arg(long, default_value_t = 5.0)]
    rate: f64,
    /// Place this many orders, then end once each is completed or waiting in review.
    #[arg(long)]
    orders: Option<u64>,
    /// Seconds after handover until a customer who said nothing is deemed to accept.
    #[arg(long, default_value_t = 10)]
    acceptance_window_secs: u64,
}

/// Runs the demo until Ctrl-C, or until a bounded run's orders are settled.
pub async fn run(settings: &Settings, args: DemoArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.rate > 0.0 && args.rate <= 1000.0,
        "--rate must be more than 0 and at most 1000 orders a second"
    );
    let settings = demo_settings(settings, &args);
    let signals = StopSignals::listen();
    let pool = prepare_database(&settings).await?;
    seed_sample(&pool).await?;
    let running = Running::start(&settings, pool.clone(), PipelineOptions::default(), true).await?;
    let client = Client::connect(&settings.amqp, "demo").await?;
    write_out(&where_to_look(&settings))?;
    let run_id = format!("D{}", Utc::now().format("%d%H%M%S"));
    let outcome = drive(&client, &pool, &run_id, &args, signals).await;
    let stopped = running.stop().await;
    client.close().await?;
    let (placed, progress) = outcome?;
    stopped?;
    write_out(&summary(&run_id, placed, &progress))
}

/// The configured settings with the demo's acceptance window, and metrics served somewhere.
fn demo_settings(settings: &Settings, args: &DemoArgs) -> Settings {
    let mut settings = settings.clone();
    settings.stages.acceptance_window_secs = args.acceptance_window_secs;
    if settings.metrics.listen.trim().is_empty() {
        settings.metrics.listen = DEMO_METRICS.to_owned();
    }
    settings
}

/// Loads the sample reference data with stock for a long run.
async fn seed_sample(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    let mut catalogue = crate::seed::parse(CATALOGUE, "the sample reference data", false)?;
    for level in &mut catalogue.stock {
        level.available = DEMO_STOCK;
    }
    crate::seed::apply(pool, &catalogue).await?;
    Ok(())
}

/// Places orders and redraws the view until stopped or, when bounded, until every order is
/// settled. Returns how many were placed and where they stand.
async fn drive(
    client: &Client,
    pool: &sqlx::PgPool,
    run_id: &str,
    args: &DemoArgs,
    signals: StopSignals,
) -> anyhow::Result<(u64, DemoProgress)> {
    let view = Progress::new();
    let stop = signals.received();
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(TICK);
    let (mut placed, mut owed) = (0u64, 0.0f64);
    let mut all_placed_at = None;
    let settle_limit = SETTLE_GRACE + Duration::from_secs(args.acceptance_window_secs);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick() => {}
        }
        owed += args.rate * TICK.as_secs_f64();
        let wanted = args.orders.map_or(u64::MAX, |n| n - placed);
        let now = (owed.floor() as u64).min(wanted);
        if now > 0 {
            let orders: Vec<_> = (placed..placed + now)
                .map(|n| sample_order(run_id, n, Utc::now()))
                .collect();
            client
                .submit(&orders)
                .await
                .context("placing sample orders")?;
            placed += now;
            owed -= now as f64;
        }
        let progress = progress(pool, run_id).await?;
        view.show(placed, &progress);
        if args.orders == Some(placed) {
            let since = *all_placed_at.get_or_insert_with(tokio::time::Instant::now);
            if progress.settled as u64 >= placed {
                break;
            }
            anyhow::ensure!(
                since.elapsed() < settle_limit,
                "the demo's orders did not settle within {settle_limit:?}: {progress:?}"
            );
        }
    }
    view.finish();
    Ok((placed, progress(pool, run_id).await?))
}

async fn progress(pool: &sqlx::PgPool, run_id: &str) -> anyhow::Result<DemoProgress> {
    let mut conn = pool.acquire().await?;
    Ok(crate::db::demo::progress(&mut conn, run_id).await?)
}

/// Where the API, metrics and health are, and how to look at an order.
fn where_to_look(settings: &Settings) -> String {
    let api = &settings.review.listen;
    let metrics = &settings.metrics.listen;
    let people = match settings.review.people.is_empty() {
        true => "no people configured; FULFILMENT_ENV=example has sample ones".to_owned(),
        false => format!("{} review people configured", settings.review.people.len()),
    };
    format!(
        "fulfilment demo: placing sample orders (Ctrl-C to stop)\n\
         \x20 web console  http://{api}/console\n\
         \x20 review API   http://{api}/cases  ({people})\n\
         \x20 overview     http://{api}/overview\n\
         \x20 metrics      http://{metrics}/metrics\n\
         \x20 health       http://{metrics}/health/ready\n\
         \x20 an order     fulfilment status ORDER_ID\n"
    )
}

/// The run in words, once it ends.
fn summary(run_id: &str, placed: u64, progress: &DemoProgress) -> String {
    let mut text = format!("demo run {run_id}: placed {placed} orders\n");
    for (state, n) in &progress.states {
        text.push_str(&format!("  {state:<20} {n}\n"));
    }
    text.push_str(&super::progress::review_line(progress));
    text.push('\n');
    text
}
