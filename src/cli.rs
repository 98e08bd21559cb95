//! The command line: `run`, `migrate`, `seed`, `submit`, `amend`, `confirm`, `pay`, `status`,
//! `documents`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use crate::client::Client;
use crate::db;
use crate::domain::events::{ConfirmationOutcome, PaymentCaptured};
use crate::domain::{Currency, Order, OrderId};
use crate::pipeline::{Pipeline, PipelineOptions};
use crate::settings::Settings;
use crate::stages::StageName;
use crate::{export, seed, status, telemetry};

/// An order-fulfilment pipeline on RabbitMQ and Postgres.
#[derive(Debug, Parser)]
#[command(name = "fulfilment", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
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
        /// Do not run the outbox relay in this process.
        #[arg(long)]
        no_relay: bool,
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
    /// Write an order's documents (delivery note, packing list, invoice, service record) as PDF.
    Documents {
        /// The order.
        order_id: String,
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
        Command::Run { stages, no_relay } => run_pipeline(&settings, stages, !no_relay).await,
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
            seed::apply(&pool, &catalogue).await?;
            println!(
                "loaded {} customers, {} products, {} stock levels, {} agents, {} delivery terms",
                catalogue.customers.len(),
                catalogue.products.len(),
                catalogue.stock.len(),
                catalogue.agents.len(),
                catalogue.delivery_terms.len()
            );
            Ok(())
        }
        Command::Documents { order_id, out } => {
            let pool = db::connect(&settings.database).await?;
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
) -> anyhow::Result<()> {
    let pool = prepare_database(settings).await?;
    let mut stages = if stages.is_empty() {
        StageName::ALL.to_vec()
    } else {
        stages
    };
    stages.sort();
    stages.dedup();
    let options = PipelineOptions {
        stages,
        relay,
        ..PipelineOptions::default()
    };
    let mut pipeline = Pipeline::start(settings, pool, options).await?;
    tracing::info!(namespace = %settings.amqp.namespace, "pipeline running");
    let outcome = tokio::select! {
        _ = shutdown_signal() => {
            tracing::info!("shutting down: finishing in-flight deliveries");
            Ok(())
        }
        result = pipeline.wait() => result,
    };
    let closed = pipeline.shutdown().await;
    outcome.and(closed)
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Reads one order or an array of orders from a JSON file.
pub fn read_orders(path: &Path) -> anyhow::Result<Vec<Order>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let items = match value {
        serde_json::Value::Array(items) => items,
        single => vec![single],
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            serde_json::from_value(item)
                .with_context(|| format!("{}: order #{} is invalid", path.display(), i + 1))
        })
        .collect()
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
    let pool = db::connect(&settings.database).await?;
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
