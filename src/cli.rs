//! The command line: `run`, `migrate`, `seed`, `submit`, `amend`, `confirm`, `pay`, `status`,
//! `documents`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use crate::client::Client;
use crate::db;
use crate::db::review::CaseFilter;
use crate::domain::StageName;
use crate::domain::events::{ConfirmationOutcome, PaymentCaptured};
use crate::domain::{Currency, Order, OrderId};
use crate::pipeline::{Pipeline, PipelineOptions};
use crate::review::api::{self, ApiState};
use crate::review::people::hash_token;
use crate::review::{People, Resolution, ReviewDesk};
use crate::settings::Settings;
use crate::{export, seed, status, telemetry};
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
    /// of the whole interface beside it (`<dir>/../asyncapi.yaml`).
    Schemas {
        /// Directory to write into (created if missing).
        #[arg(long, default_value = "docs/schemas")]
        out: PathBuf,
    },
    /// Print the SHA-256 of a bearer token, for `review.people.token_sha256`.
    HashToken {
        /// The token.
        token: String,
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

/// Review subcommands. Resolutions are made as a configured person (`--as`), whose roles must
/// carry the authority the case needs.
#[derive(Debug, Subcommand)]
pub enum ReviewCommand {
    /// List cases, oldest first.
    List {
        /// Only cases with this status (open, retried, amended, cancelled, closed).
        #[arg(long)]
        status: Option<String>,
        /// Only cases with this reason.
        #[arg(long)]
        reason: Option<String>,
        /// Only cases from this stage.
        #[arg(long)]
        stage: Option<String>,
        /// Only cases needing this role.
        #[arg(long)]
        role: Option<String>,
        /// Only cases opened at least this many seconds ago.
        #[arg(long)]
        older_than_secs: Option<i64>,
    },
    /// Show a case with its original message and the order's timeline (JSON).
    Show {
        /// The case.
        id: i64,
    },
    /// Send the original message to the stage it failed at again.
    Retry(Resolve),
    /// Apply a changed order from a JSON file and verify it again.
    Amend {
        #[command(flatten)]
        resolve: Resolve,
        /// The changed order (its version is raised above the current one if needed).
        #[arg(long)]
        file: PathBuf,
    },
    /// Cancel the order and compensate what was done.
    Cancel(Resolve),
    /// Mark the case resolved outside the pipeline.
    Close(Resolve),
    /// Issue again, naming the seller, the order's documents issued before `stages.seller` was
    /// configured. Needs the `finance` role.
    ReissueDocuments {
        /// The order.
        order_id: String,
        /// The configured person acting.
        #[arg(long = "as")]
        person: String,
        /// Why.
        #[arg(long)]
        note: String,
    },
    /// Erase a customer's personal data (name, email, the words of their complaints and
    /// queries, their purchase history) while orders, documents and financial records stay.
    /// Needs the `customer_service` role.
    EraseCustomer {
        /// The customer.
        customer_id: String,
        /// The configured person acting.
        #[arg(long = "as")]
        person: String,
        /// Why (the customer's request and its reference).
        #[arg(long)]
        note: String,
    },
}

/// Who resolves a case and why.
#[derive(Debug, clap::Args)]
pub struct Resolve {
    /// The case.
    pub id: i64,
    /// The configured person acting.
    #[arg(long = "as")]
    pub person: String,
    /// Why.
    #[arg(long)]
    pub note: String,
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
    telemetry::init(&settings.log);
    match cli.command {
        Command::Run {
            stages,
            no_relay,
            no_api,
        } => run_pipeline(&settings, stages, !no_relay, !no_api).await,
        Command::Serve => serve(&settings).await,
        Command::Bench(args) => bench(&settings, args).await,
        Command::Review { action } => review(&settings, action).await,
        Command::Schemas { out } => {
            let written = crate::contract::write_all(&out)?;
            let asyncapi = out.parent().unwrap_or(&out).join("asyncapi.yaml");
            std::fs::write(&asyncapi, crate::contract::asyncapi_yaml("fulfilment"))
                .with_context(|| format!("writing {}", asyncapi.display()))?;
            write_out(&format!(
                "wrote {} schemas to {} and {}\n",
                written.len(),
                out.display(),
                asyncapi.display()
            ))
        }
        Command::HashToken { token } => write_out(&format!("{}\n", hash_token(&token))),
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
    let mut pipeline = Pipeline::start(settings, pool.clone(), options).await?;
    crate::metrics::install();
    let api = match api {
        true => Some(start_api(settings, pool, pipeline.shutdown_token()).await?),
        false => start_metrics(settings, pipeline.shutdown_token()).await?,
    };
    tracing::info!(namespace = %settings.amqp.namespace, "pipeline running");
    let outcome = tokio::select! {
        _ = signals.received() => {
            tracing::info!("shutting down: finishing in-flight deliveries");
            Ok(())
        }
        result = pipeline.wait() => result,
    };
    let closed = pipeline.shutdown().await;
    if let Some(api) = api {
        api.await??;
    }
    outcome.and(closed)
}

/// Serves the process's metrics on `metrics.listen`, when it is set.
async fn start_metrics(
    settings: &Settings,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<Option<tokio::task::JoinHandle<anyhow::Result<()>>>> {
    let address = settings.metrics.listen.trim();
    if address.is_empty() {
        return Ok(None);
    }
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("listening on metrics.listen {address}"))?;
    Ok(Some(tokio::spawn(crate::metrics::serve(
        listener, shutdown,
    ))))
}

/// The review desk (with its own broker connection) for the API or the command line.
fn open_desk(settings: &Settings, pool: sqlx::PgPool) -> ReviewDesk {
    ReviewDesk::new(&settings.amqp, pool).with_seller(settings.stages.seller.seller())
}

async fn start_api(
    settings: &Settings,
    pool: sqlx::PgPool,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<()>>> {
    let listener = tokio::net::TcpListener::bind(&settings.review.listen)
        .await
        .with_context(|| format!("listening on review.listen {}", settings.review.listen))?;
    let people = People::from_settings(&settings.review.people);
    let state =
        ApiState::new(&settings.amqp, pool, people).with_seller(settings.stages.seller.seller());
    Ok(tokio::spawn(api::serve(listener, state, shutdown)))
}

async fn serve(settings: &Settings) -> anyhow::Result<()> {
    let signals = StopSignals::listen();
    let pool = prepare_database(settings).await?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let api = start_api(settings, pool, shutdown.clone()).await?;
    signals.received().await;
    shutdown.cancel();
    api.await?
}

async fn review(settings: &Settings, command: ReviewCommand) -> anyhow::Result<()> {
    let pool = prepare_database(settings).await?;
    let people = People::from_settings(&settings.review.people);
    let person = |name: &str| {
        people
            .named(name)
            .cloned()
            .with_context(|| format!("no person {name:?} in review.people"))
    };
    let desk = open_desk(settings, pool);
    let (resolve, resolution) = match command {
        ReviewCommand::List {
            status,
            reason,
            stage,
            role,
            older_than_secs,
        } => {
            let filter = CaseFilter {
                status,
                reason,
                stage,
                role,
                older_than_secs,
                limit: Some(1000),
            };
            let cases = desk.list(&filter).await?;
            return write_out(&to_json(&cases)?);
        }
        ReviewCommand::Show { id } => return write_out(&to_json(&desk.show(id).await?)?),
        ReviewCommand::ReissueDocuments {
            order_id,
            person: name,
            note,
        } => {
            let reissued = desk
                .reissue_documents(&order_id, &person(&name)?, &note)
                .await?;
            return write_out(&to_json(&reissued)?);
        }
        ReviewCommand::EraseCustomer {
            customer_id,
            person: name,
            note,
        } => {
            let summary = desk
                .erase_customer(&customer_id, &person(&name)?, &note)
                .await?;
            return write_out(&to_json(&summary)?);
        }
        ReviewCommand::Retry(r) => (r, Resolution::Retry),
        ReviewCommand::Cancel(r) => (r, Resolution::Cancel),
        ReviewCommand::Close(r) => (r, Resolution::Close),
        ReviewCommand::Amend { resolve, file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let order = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", file.display()))?;
            (resolve, Resolution::Amend(order))
        }
    };
    let case = desk
        .resolve(
            resolve.id,
            &person(&resolve.person)?,
            resolution,
            &resolve.note,
        )
        .await?;
    write_out(&to_json(&case)?)
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
