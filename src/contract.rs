//! The public event contract: a JSON Schema (draft 2020-12) for the payload (`data`) of every
//! event type, generated from the Rust types the pipeline itself sends and reads, so the
//! contract cannot drift from the code. `fulfilment schemas --out docs/schemas` writes them; a
//! test fails when the checked-in copies differ.
//!
//! Versioning: every type carries its version (`fulfilment.order.placed.v1`). Adding an optional
//! field keeps the version; removing or changing a field adds a new type (`.v2`) published
//! alongside the old one for as long as consumers need it. Consumers ignore fields they do not
//! know, which is why no schema forbids additional properties.

use std::path::{Path, PathBuf};

use anyhow::Context;
use schemars::JsonSchema;
use serde_json::Value;

use crate::domain::EventType;
use crate::domain::events::*;

fn schema<T: JsonSchema>() -> Value {
    serde_json::to_value(schemars::schema_for!(T)).expect("schemas serialise")
}

/// The JSON Schema of an event type's payload.
pub fn payload_schema(event: EventType) -> Value {
    let mut schema = match event {
        EventType::OrderPlaced => schema::<OrderPlaced>(),
        EventType::OrderAmended => schema::<OrderAmended>(),
        EventType::OrderVerified => schema::<OrderVerified>(),
        EventType::GoodsPrepared => schema::<GoodsPrepared>(),
        EventType::DocumentsGenerated => schema::<DocumentsGenerated>(),
        EventType::OrderHandedOver => schema::<OrderHandedOver>(),
        EventType::CustomerConfirmation => schema::<CustomerConfirmation>(),
        EventType::OrderCustomerConfirmed => schema::<OrderCustomerConfirmed>(),
        EventType::OrderDelivered => schema::<OrderDelivered>(),
        EventType::AcceptanceDue => schema::<AcceptanceDue>(),
        EventType::SalesOpportunity => schema::<SalesOpportunity>(),
        EventType::PaymentCaptured => schema::<PaymentCaptured>(),
        EventType::InstalmentDue => schema::<InstalmentDue>(),
        EventType::RevenueRecognised => schema::<RevenueRecognised>(),
        EventType::OrderCancelled => schema::<OrderCancelled>(),
        EventType::ReviewCaseOpened => schema::<ReviewCaseOpened>(),
    };
    schema["$id"] = Value::String(format!(
        "urn:fulfilment:schema:{}",
        event.cloudevents_type()
    ));
    schema["title"] = Value::String(event.cloudevents_type().to_owned());
    schema
}

/// The file a payload schema is kept in: `<type>.json`.
pub fn file_name(event: EventType) -> String {
    format!("{}.json", event.cloudevents_type())
}

/// A schema as it is written to disk: pretty JSON and a final newline.
pub fn render(schema: &Value) -> String {
    format!(
        "{}\n",
        serde_json::to_string_pretty(schema).expect("schemas serialise")
    )
}

/// Writes every payload schema into `dir`. Returns the files written.
pub fn write_all(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    EventType::ALL
        .into_iter()
        .map(|event| {
            let path = dir.join(file_name(event));
            std::fs::write(&path, render(&payload_schema(event)))
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(path)
        })
        .collect()
}
