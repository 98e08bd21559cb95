//! The command line: `run`, `migrate`, `seed`, `submit`, `amend`, `confirm`, `pay`, `status`,
//! `documents`.

mod demo;
mod input;
mod probe;
mod progress;
mod review;
mod running;

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use crate::client::Client;
use crate::db;
use crate::domain::StageName;
use crate::domain::events::{ConfirmationOutcome, PaymentCaptured};
use crate::domain::{Currency, Order, OrderId};
use crate::health::Health;
use crate::pipeline::PipelineOptions;
use crate::review::People;
use crate::review::api::ApiState;
use crate::review::people::hash_token;
use crate::settings::Settings;
use crate::{export, seed, status, telemetry};
pub use review::{Resolve, ReviewCommand};
use running::{Running, start_api, start_metrics};
use std::time::Duration;

/// An order-fulfilment pipeline on RabbitMQ and Postgres.
#[derive(Debug, Parser)]
#[command(name = "fulfilment", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// What `documents` can do besides writing an order's documents out.
#[derive(Debug, Subcommand)]
pub enum DocumentsCommand {
    /// Issue again, as new numbers in the same series, the order's live documents that name no
    /// seller (issued before `stages.seller` was configured); the old ones are voided.
    Reissue {
        /// The order.
        order_id: String,
    },
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run stage workers and the outbox relay until SIGINT or SIGTERM. Creates and migrates the
    /// database first.
    Run {
        /// Run only this stage (repeatable). Default: all six.
        #[arg(long = "stage", value_name = "STAGE")]
        stages: Vec<StageName>,
        /// Do not run the outbox relay and timer scheduler in this process.
        #[arg(long)]
        no_relay: bool,
        /// Do not serve the review API in this process.
        #[arg(long)]
        no_api: bool,
    },
    /// Serve the review API only (on `review.listen`).
    Serve,
    /// Work the human-review queue from the command line.
    Review {
        /// What to do.
        #[command(subcommand)]
        action: ReviewCommand,
    },
    /// Write the JSON Schema of every event payload into a directory, and the AsyncAPI document
    /// of the whole interface (into the same directory unless `--asyncapi` says where).
    Schemas {
        /// Directory to write the schemas into (created if missing).
        #[arg(long, default_value = "docs/schemas")]
        out: PathBuf,
        /// Where to write the AsyncAPI document. Default: `asyncapi.yaml` in `--out`.
        #[arg(long, value_name = "FILE")]
        asyncapi: Option<PathBuf>,
    },
    /// Print the SHA-256 of a bearer token, for `review.people.token_sha256`. Reads the token
    /// from standard input (without echoing it at a terminal), so it stays out of the shell's
    /// history.
    HashToken {
        /// The token. Prefer standard input: an argument is kept in the shell's history.
        token: Option<String>,
    },
    /// Ask the process on this host whether it is ready (`GET /health/ready` on
    /// `metrics.listen` when set, else on `review.listen`): exits 0 when it is, 1 otherwise.
    /// For container health checks.
    Health {
        /// The address to ask instead, such as 127.0.0.1:9090.
        #[arg(long)]
        address: Option<String>,
    },
    /// Create the database if missing and apply migrations.
    Migrate,
    /// Publish the order (a JSON object) or orders (a JSON array) in FILE as `order.placed`.
    Submit {
        /// A JSON file holding one order or an array of orders.
        file: PathBuf,
    },
    /// Publish the changed order (JSON object) or orders (JSON array) in FILE as
    /// `order.amended`; each must carry a higher `version` than the order has.
    Amend {
        /// A JSON file holding one order or an array of orders.
        file: PathBuf,
    },
    /// Load reference data (customers, products, stock, agents, delivery terms) from a JSON or
    /// TOML file into the database; existing records are updated.
    Seed {
        /// A `.json` or `.toml` reference-data file.
        file: PathBuf,
    },
    /// Write an order's documents (delivery note, packing list, invoice, service record, credit
    /// note) as PDF; voided ones with a VOID mark.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Documents {
        /// `reissue ORDER_ID`: issue again, naming the seller, the documents issued before it
        /// was configured.
        #[command(subcommand)]
        action: Option<DocumentsCommand>,
        /// The order.
        #[arg(required = true)]
        order_id: Option<String>,
        /// Directory to write into (created if missing).
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
    /// Publish a captured payment for an order as `payment.captured`.
    Pay {
        /// The order.
        order_id: String,
        /// Amount in minor units (pence, cents).
        #[arg(long)]
        amount_minor: i64,
        /// ISO 4217 currency code.
        #[arg(long)]
        currency: String,
        /// The payment provider's reference, unique per payment.
        #[arg(long)]
        reference: String,
    },
    /// Publish a customer's answer about an order as `customer.confirmation`.
    Confirm {
        /// The order.
        order_id: String,
        /// What the customer said.
        #[arg(long, value_enum, default_value_t = Outcome::Accepted)]
        outcome: Outcome,
        /// Why, for a complaint or a query.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Print an order's state and the timeline of its stage records.
    Status {
        /// The order.
        order_id: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print what an operator watches: orders by state (and how long the oldest has waited),
    /// open review cases, events not yet published, timers not yet fired, every queue's depth.
    Overview {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Measure the pipeline against the broker's own ceiling: prints a table and writes a JSON
    /// report. Uses a namespace and a database of its own, removed afterwards.
    Bench(BenchArgs),
    /// Run the whole pipeline here and feed it a steady stream of sample orders (web and
    /// contact centre, some with problems that go to review), showing each stage's progress.
    Demo(demo::DemoArgs),
}

/// Options of `fulfilment bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Seconds to keep the pipeline fully loaded.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Place exactly this many orders at full load instead of running for `--seconds`.
    #[arg(long)]
    orders: Option<u64>,
    /// Seconds to measure the broker's ceiling.
    #[arg(long, default_value_t = 10)]
    ceiling_seconds: u64,
    /// Seconds to offer half of the full-load throughput, for latency at half load.
    #[arg(long, default_value_t = 10)]
    half_load_seconds: u64,
    /// Orders (and ceiling messages) kept in flight at full load.
    #[arg(long, default_value_t = 256)]
    in_flight: usize,
    /// Worker processes, each running all six stages.
    #[arg(long, default_value_t = 1)]
    processes: usize,
    /// The JSON report; worker logs are written beside it.
    #[arg(long, default_value = "target/bench/report.json")]
    out: PathBuf,
    /// Keep the run's database and queues afterwards, for inspection.
    #[arg(long)]
    keep: bool,
}

/// A customer's answer, as given on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Outcome {
    /// The customer accepts the order.
    Accepted,
    /// The customer confirms receipt.
    Delivered,
    /// The customer complains.
    Complaint,
    /// The customer has a question.
    Query,
}

impl From<Outcome> for ConfirmationOutcome {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Accepted => ConfirmationOutcome::Accepted,
            Outcome::Delivered => ConfirmationOutcome::Delivered,
            Outcome::Complaint => ConfirmationOutcome::Complaint,
            Outcome::Query => ConfirmationOutcome::Query,
        }
    }
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let mut log = settings.log.clone();
    if matches!(cli.command, Command::Demo(_)) {
        // Log lines would break up the demo's live view: errors only (RUST_LOG overrides).
        log.filter = "error".to_owned();
    }
    let telemetry = telemetry::init(&log, &settings.telemetry);
    let outcome = dispatch(cli.command, settings).await;
    telemetry.shutdown().await;
    outcome
}

async fn dispatch(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Run {
            stages,
            no_relay,
            no_api,
        } => run_pipeline(&settings, stages, !no_relay, !no_api).await,
        Command::Serve => serve(&settings).await,
        Command::Bench(args) => bench(&settings, args).await,
        Command::Demo(args) => demo::run(&settings, args).await,
        Command::Review { action } => review::run(&settings, action).await,
        Command::Schemas { out, asyncapi } => {
            let written = crate::contract::write_all(&out)?;
            let asyncapi = asyncapi.unwrap_or_else(|| out.join("asyncapi.yaml"));
            std::fs::write(&asyncapi, crate::contract::asyncapi_yaml("fulfilment"))
                .with_context(|| format!("writing {}", asyncapi.display()))?;
            write_out(&format!(
                "wrote {} schemas to {} and {}\n",
                written.len(),
                out.display(),
                asyncapi.display()
            ))
        }
        Command::HashToken { token } => {
            let token = match token {
                Some(token) => {
                    eprintln!(
                        "note: the token is now in your shell's history; next time, give it on standard input"
                    );
                    token
                }
                None => input::secret("token: ")?,
            };
            anyhow::ensure!(!token.is_empty(), "no token given");
            write_out(&format!("{}\n", hash_token(&token)))
        }
        Command::Health { address } => {
            let address = address.unwrap_or_else(|| health_address(&settings));
            let (status, body) = probe::ready(&address).await?;
            write_out(&format!("{body}\n"))?;
            anyhow::ensure!(status == 200, "not ready (HTTP {status})");
            Ok(())
        }
        Command::Migrate => {
            prepare_database(&settings).await?;
            println!("migrations applied to {}", settings.database.url);
            Ok(())
        }
        Command::Submit { file } => submit(&settings, &file).await,
        Command::Confirm {
            order_id,
            outcome,
            reason,
        } => {
            let order_id = OrderId::parse(order_id)?;
            let client = Client::connect(&settings.amqp, "fulfilment/cli").await?;
            let id = client
                .confirm(order_id.clone(), outcome.into(), reason)
                .await?;
            client.close().await?;
            println!("published customer.confirmation {id} for order {order_id}");
            Ok(())
        }
        Command::Status { order_id, json } => print_status(&settings, &order_id, json).await,
        Command::Overview { json } => {
            let pool = prepare_database(&settings).await?;
            let queues = crate::overview::queue_counts_connecting(&settings.amqp).await;
            let overview = crate::overview::take(&pool, queues).await?;
            match json {
                true => write_out(&to_json(&overview)?),
                false => write_out(&overview.to_string()),
            }
        }
        Command::Amend { file } => {
            let orders = read_orders(&file)?;
            let client = Client::connect(&settings.amqp, "fulfilment/cli").await?;
            client.amend(&orders).await?;
            client.close().await?;
            println!("submitted {} amendment(s) as order.amended", orders.len());
            Ok(())
        }
        Command::Seed { file } => {
            let catalogue = seed::read(&file)?;
            let pool = prepare_database(&settings).await?;
            let left_erased = seed::apply(&pool, &catalogue)
                .await
                .with_context(|| format!("loading {}", file.display()))?;
            if !left_erased.is_empty() {
                println!(
                    "left {} erased customer(s) as they were: {}",
                    left_erased.len(),
                    left_erased.join(", ")
                );
            }
            println!(
                "loaded {} customers, {} products, {} stock levels, {} agents, {} delivery terms",
                catalogue.customers.len() - left_erased.len(),
                catalogue.products.len(),
                catalogue.stock.len(),
                catalogue.agents.len(),
                catalogue.delivery_terms.len()
            );
            Ok(())
        }
        Command::Documents {
            action,
            order_id,
            out,
        } => {
            let pool = prepare_database(&settings).await?;
            if let Some(DocumentsCommand::Reissue { order_id }) = action {
                let seller = settings.stages.seller.seller();
                let requested = crate::reissue::Requested::default();
                let reissued = crate::reissue::reissue(
                    &pool,
                    &order_id,
                    seller,
                    chrono::Utc::now(),
                    &requested,
                )
                .await?;
                let list: String = reissued
                    .iter()
                    .map(|r| format!("{} replaces {}\n", r.number, r.replaces))
                    .collect();
                return write_out(&list);
            }
            let order_id = order_id.context("documents needs an ORDER_ID")?;
            let written = export::documents(&pool, &order_id, &out).await?;
            let list: String = written
                .iter()
                .map(|p| format!("{}\n", p.display()))
                .collect();
            write_out(&list)
        }
        Command::Pay {
            order_id,
            amount_minor,
            currency,
            reference,
        } => {
            let payment = PaymentCaptured {
                order_id: OrderId::parse(order_id)?,
                payment_reference: reference,
                amount_minor,
                currency: Currency::parse(&currency)?,
                captured_at: chrono::Utc::now(),
            };
            let client = Client::connect(&settings.amqp, "fulfilment/cli").await?;
            let id = client.pay(payment).await?;
            client.close().await?;
            println!("published payment.captured {id}");
            Ok(())
        }
    }
}

async fn bench(settings: &Settings, args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.processes >= 1, "--processes must be at least 1");
    anyhow::ensure!(args.in_flight >= 1, "--in-flight must be at least 1");
    let options = crate::bench::BenchOptions {
        full_load: Duration::from_secs(args.seconds),
        orders: args.orders,
        ceiling: Duration::from_secs(args.ceiling_seconds),
        half_load: Duration::from_secs(args.half_load_seconds),
        in_flight: args.in_flight,
        processes: args.processes,
        worker_binary: std::env::current_exe().context("finding the fulfilment binary")?,
        out: args.out,
        keep: args.keep,
    };
    let report = crate::bench::run(settings, &options).await?;
    write_out(&format!(
        "{}\nreport written to {}\n",
        report.table(),
        options.out.display()
    ))
}

async fn prepare_database(settings: &Settings) -> anyhow::Result<sqlx::PgPool> {
    db::create_if_missing(&settings.database).await?;
    let pool = db::connect(&settings.database).await?;
    db::migrate(&pool).await?;
    Ok(pool)
}

async fn run_pipeline(
    settings: &Settings,
    stages: Vec<StageName>,
    relay: bool,
    api: bool,
) -> anyhow::Result<()> {
    let signals = StopSignals::listen();
    let pool = prepare_database(settings).await?;
    let mut stages = if stages.is_empty() {
        StageName::ALL.to_vec()
    } else {
        stages
    };
    stages.sort();
    stages.dedup();
    if stages.contains(&StageName::Documents) && settings.stages.seller.seller().is_none() {
        tracing::warn!(
            "stages.seller is not configured: documents name no seller, and an invoice without \
             the seller's name, address and tax number is not a valid invoice"
        );
    }
    let options = PipelineOptions {
        stages,
        relay,
        ..PipelineOptions::default()
    };
    let mut running = Running::start(settings, pool, options, api).await?;
    tracing::info!(namespace = %settings.amqp.namespace, "pipeline running");
    let outcome = tokio::select! {
        _ = signals.received() => {
            tracing::info!("shutting down: finishing in-flight deliveries");
            Ok(())
        }
        result = running.pipeline.wait() => result,
    };
    outcome.and(running.stop().await)
}

/// Where this host's process answers health checks: `metrics.listen` when set, else the API.
fn health_address(settings: &Settings) -> String {
    match settings.metrics.listen.trim() {
        "" => settings.review.listen.clone(),
        metrics => metrics.to_owned(),
    }
}

/// The API's state: its desk, intake and people, over `pool`.
fn api_state(settings: &Settings, pool: sqlx::PgPool) -> ApiState {
    let people = People::from_settings(&settings.review.people);
    ApiState::new(&settings.amqp, pool, people).with_seller(settings.stages.seller.seller())
}

async fn serve(settings: &Settings) -> anyhow::Result<()> {
    let signals = StopSignals::listen();
    let pool = prepare_database(settings).await?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let health = Health::new(pool.clone(), None);
    let metrics = start_metrics(settings, health, shutdown.clone()).await?;
    let api = start_api(settings, api_state(settings, pool), shutdown.clone()).await?;
    signals.received().await;
    shutdown.cancel();
    for server in std::iter::once(api).chain(metrics) {
        server.await??;
    }
    Ok(())
}

/// A value as pretty JSON and a newline.
fn to_json<T: serde::Serialize>(value: &T) -> anyhow::Result<String> {
    Ok(format!("{}\n", serde_json::to_string_pretty(value)?))
}

/// SIGINT and SIGTERM, listened for from the moment this is made: a signal that arrives while
/// the process is still starting is not lost (nor does it kill the process mid-start).
struct StopSignals {
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn listen() -> Self {
        Self {
            #[cfg(unix)]
            terminate: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .ok(),
        }
    }

    /// Resolves on SIGINT or SIGTERM.
    async fn received(mut self) {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        if let Some(term) = &mut self.terminate {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = ctrl_c.await;
    }
}

/// Reads one order or an array of orders from a JSON file.
pub fn read_orders(path: &Path) -> anyhow::Result<Vec<Order>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    crate::intake::orders_from_json(value)
        .map_err(|problem| anyhow::anyhow!("{}: {problem}", path.display()))
}

async fn submit(settings: &Settings, file: &Path) -> anyhow::Result<()> {
    let orders = read_orders(file)?;
    let client = Client::connect(&settings.amqp, "fulfilment/cli").await?;
    client.submit(&orders).await?;
    client.close().await?;
    println!("submitted {} order(s) as order.placed", orders.len());
    Ok(())
}

async fn print_status(settings: &Settings, order_id: &str, json: bool) -> anyhow::Result<()> {
    let pool = prepare_database(settings).await?;
    let status = status::load(&pool, order_id)
        .await?
        .with_context(|| format!("no order {order_id}"))?;
    if json {
        write_out(&format!("{}\n", serde_json::to_string_pretty(&status)?))
    } else {
        write_out(&status.to_string())
    }
}

/// Writes to standard output; a reader that stopped reading (`| head`) is not an error.
fn write_out(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
