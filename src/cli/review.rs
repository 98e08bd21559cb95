//! `fulfilment review`: the review desk from the command line, acting as a configured person.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use super::{prepare_database, to_json, write_out};
use crate::db::review::CaseFilter;
use crate::review::{People, Resolution, ReviewDesk};
use crate::settings::Settings;

/// Review subcommands. Resolutions are made as a configured person (`--as`), whose roles must
/// carry the authority the case needs.
#[derive(Debug, Subcommand)]
pub enum ReviewCommand {
    /// List cases, oldest first.
    List {
        /// Only cases with this status (open, retried, amended, cancelled, closed, superseded).
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

/// Runs a review subcommand: lists and shows as anyone, resolves as the person named by `--as`.
pub async fn run(settings: &Settings, command: ReviewCommand) -> anyhow::Result<()> {
    let pool = prepare_database(settings).await?;
    let people = People::from_settings(&settings.review.people);
    let person = |name: &str| {
        people
            .named(name)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!(no_such_person(name, &settings.review.people)))
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

/// Why `--as NAME` names nobody, and where people are configured.
fn no_such_person(name: &str, people: &[crate::settings::PersonSettings]) -> String {
    let known: Vec<&str> = people.iter().map(|p| p.name.as_str()).collect();
    let env = std::env::var("FULFILMENT_ENV")
        .ok()
        .filter(|e| !e.is_empty());
    let configured = match (known.is_empty(), env) {
        (false, _) => format!("the people configured are {}", known.join(", ")),
        (true, Some(env)) => format!("config/{env}.toml configures no review.people"),
        (true, None) => "no one is configured: people are set in config/<FULFILMENT_ENV>.toml \
                         (or FULFILMENT__ variables), and FULFILMENT_ENV is not set, so only the \
                         built-in defaults were read; try FULFILMENT_ENV=example with the sample \
                         config/example.toml"
            .to_owned(),
    };
    format!("no person {name:?} in review.people: {configured}")
}

/// The review desk (with its own broker connection) for the API or the command line.
fn open_desk(settings: &Settings, pool: sqlx::PgPool) -> ReviewDesk {
    ReviewDesk::new(&settings.amqp, pool).with_seller(settings.stages.seller.seller())
}
