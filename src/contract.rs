//! The public event contract: a JSON Schema (draft-07, the base of AsyncAPI's schema format)
//! for the payload (`data`) of every
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
    let generator = schemars::generate::SchemaSettings::draft07().into_generator();
    serde_json::to_value(generator.into_root_schema_for::<T>()).expect("schemas serialise")
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
        EventType::RevenueReversed => schema::<RevenueReversed>(),
        EventType::PaymentRecorded => schema::<PaymentRecorded>(),
        EventType::GoodsReleased => schema::<GoodsReleased>(),
    };
    schema["$id"] = Value::String(format!(
        "urn:fulfilment:schema:{}",
        event.cloudevents_type()
    ));
    schema["title"] = Value::String(event.cloudevents_type().to_owned());
    schema
}

/// What each kind of outside client binds its own queue (`<namespace>.<queue>`) to: one list per
/// kind, the same in `docs/integration.md`, the Python examples and the broker permissions of
/// `docs/operations.md` (`tests/contract.rs` holds them to it).
pub const BINDINGS: [(&str, &str, &[&str]); 4] = [
    (
        "web shop",
        "shop",
        &[
            "order.verified",
            "order.handed_over",
            "order.cancelled",
            "review.case_opened",
        ],
    ),
    (
        "contact-centre tool",
        "contact_centre",
        &[
            "order.verified",
            "order.handed_over",
            "order.cancelled",
            "review.case_opened",
            "sales.opportunity",
        ],
    ),
    (
        "warehouse",
        "warehouse",
        &[
            "goods.prepared",
            "goods.released",
            "order.handed_over",
            "order.cancelled",
        ],
    ),
    ("finance", "finance", &["revenue.#"]),
];

/// An example payload of every event type, as the pipeline sends or expects it: an order of two
/// blue mugs (`examples/catalogue.json`) through every stage. The AsyncAPI document carries them.
pub fn example(event: EventType) -> Value {
    examples::payload(event)
}

mod examples {
    use chrono::{DateTime, TimeZone, Utc};
    use serde_json::{Value, json};

    use crate::domain::EventType;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 20, 9, minute, 0)
            .single()
            .expect("a valid time")
    }

    fn order(version: u32, quantity: u32) -> Value {
        json!({
            "order_id": "WEB-1001", "version": version, "customer_id": "CUST-042", "channel": "web",
            "currency": "GBP", "placed_at": at(30),
            "lines": [{"sku": "MUG-BLUE", "quantity": quantity, "unit_price_minor": 1250}]
        })
    }

    fn lines(net: i64, tax: i64) -> Value {
        json!([{"line_no": 0, "sku": "MUG-BLUE", "instalment": 0, "amount_minor": net,
                "tax_minor": tax, "recognition": "on_dispatch"}])
    }

    /// The example of `event`'s payload.
    pub fn payload(event: EventType) -> Value {
        let id = "WEB-1001";
        let pick = json!([{"sku": "MUG-BLUE", "quantity": 2}]);
        match event {
            EventType::OrderPlaced => json!({"order_id": id, "order": order(1, 2)}),
            EventType::OrderAmended => json!({"order_id": id, "order": order(2, 3)}),
            EventType::OrderVerified => {
                json!({"order_id": id, "version": 1, "total_minor": 2500, "currency": "GBP"})
            }
            EventType::GoodsPrepared => json!({"order_id": id, "version": 1, "pick_list": pick,
                "service_slots": [], "checks": [{"sku": "MUG-BLUE", "check": "inspected"}]}),
            EventType::GoodsReleased => json!({"order_id": id, "version": 1,
                "reason": "amended", "released": pick, "released_at": at(40)}),
            EventType::DocumentsGenerated => json!({"order_id": id, "version": 1, "documents": [
                {"kind": "delivery_note", "number": "DN-000001", "sha256": "0".repeat(64)},
                {"kind": "packing_list", "number": "PL-000001", "sha256": "1".repeat(64)},
                {"kind": "invoice", "number": "INV-000001", "sha256": "2".repeat(64)}]}),
            EventType::OrderHandedOver => json!({"order_id": id, "version": 1,
                "carrier": "Royal Mail", "tracking_reference": "RM1A2B3C4D5E",
                "handed_over_at": at(35), "delivery_terms": "FOB_SHIPPING_POINT",
                "ownership_passes": "on_dispatch", "ownership_passed_at": at(35),
                "services_delivered": []}),
            EventType::CustomerConfirmation => json!({"order_id": id, "outcome": "accepted"}),
            EventType::OrderCustomerConfirmed => {
                json!({"order_id": id, "basis": "explicit", "confirmed_at": at(50)})
            }
            EventType::OrderDelivered => json!({"order_id": id, "delivered_at": at(45)}),
            EventType::AcceptanceDue => json!({"order_id": id, "due_at": at(59)}),
            EventType::SalesOpportunity => json!({"order_id": id, "customer_id": "CUST-042",
                "suggestions": [{"sku": "TEAPOT-CLASSIC", "relation": "cross_sell",
                                 "because_of": "MUG-BLUE"}]}),
            EventType::PaymentCaptured => json!({"order_id": id, "payment_reference": "PSP-1001",
                "amount_minor": 3000, "currency": "GBP", "captured_at": at(31)}),
            EventType::PaymentRecorded => json!({"order_id": id, "version": 1,
                "payment_reference": "PSP-1001", "amount_minor": 3000,
                "against_receivable_minor": 0, "deferred_minor": 3000, "currency": "GBP",
                "captured_at": at(31)}),
            EventType::InstalmentDue => {
                json!({"order_id": id, "line_no": 0, "instalment": 1, "due_at": at(59)})
            }
            EventType::RevenueRecognised => json!({"order_id": id, "version": 1,
                "lines": lines(2500, 500), "amount_minor": 2500, "tax_minor": 500,
                "currency": "GBP", "basis": "on_dispatch", "control_passed_at": at(35),
                "evidence_event_ids": ["0193f1d2-8c4e-7a51-b2f0-5d1c9e7a3b10"]}),
            EventType::RevenueReversed => json!({"order_id": id, "version": 1,
                "reason": "amended", "lines": lines(2500, 500), "amount_minor": 2500,
                "tax_minor": 500, "currency": "GBP", "reversed_at": at(40)}),
            EventType::OrderCancelled => json!({"order_id": id, "case_id": 7,
                "reason": "the customer asked to cancel", "stock_released": 2,
                "documents_voided": 3, "revenue_reversed_minor": 2500, "cancelled_at": at(40)}),
            EventType::ReviewCaseOpened => json!({"case_id": 7, "order_id": id,
                "stage": "prepare", "reason": "out_of_stock",
                "detail": "MUG-BLUE: 2 units could not be allocated",
                "required_role": "customer_service"}),
        }
    }
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

/// The AsyncAPI 3 document of the whole message interface, as YAML: the exchange and its AMQP
/// bindings, every routing key the pipeline consumes or emits, the review queue, and each
/// message's CloudEvents envelope, headers and payload (referring to the schemas in
/// `schemas/`, beside the document).
pub fn asyncapi_yaml(namespace: &str) -> String {
    let mut out = String::from("# Generated by `fulfilment schemas`; do not edit by hand.\n");
    yaml::emit(&asyncapi::document(namespace), 0, &mut out);
    out
}

mod asyncapi {
    use serde_json::{Map, Value, json};

    use crate::domain::EventType;
    use crate::domain::StageName;

    /// `order.handed_over` becomes `orderHandedOver`.
    fn camel(routing_key: &str) -> String {
        let mut out = String::new();
        let mut upper = false;
        for c in routing_key.chars() {
            if c == '.' || c == '_' {
                upper = true;
            } else if upper {
                out.extend(c.to_uppercase());
                upper = false;
            } else {
                out.push(c);
            }
        }
        out
    }

    /// The namespace, as a channel parameter.
    fn namespace_parameter(default: &str) -> Value {
        json!({
            "default": default,
            "description": "The deployment's `amqp.namespace`: the prefix of every exchange and queue name."
        })
    }

    fn consumed(event: EventType) -> bool {
        StageName::ALL
            .iter()
            .any(|s| s.input_events().contains(&event))
    }

    fn emitted(event: EventType) -> bool {
        !matches!(
            event,
            EventType::OrderPlaced | EventType::CustomerConfirmation | EventType::PaymentCaptured
        )
    }

    fn message(event: EventType) -> Value {
        let ce_type = event.cloudevents_type();
        json!({
            "name": ce_type,
            "title": event.routing_key(),
            "contentType": "application/cloudevents+json",
            "headers": { "$ref": "#/components/schemas/amqpHeaders" },
            "correlationId": { "location": "$message.payload#/subject" },
            "payload": {
                "type": "object",
                "required": ["specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data"],
                "properties": {
                    "specversion": { "const": "1.0" },
                    "id": { "type": "string", "description": "Unique per event; deduplicate on it." },
                    "source": { "type": "string" },
                    "type": { "const": ce_type },
                    "subject": { "type": "string", "description": "The order id." },
                    "time": { "type": "string", "format": "date-time" },
                    "datacontenttype": { "const": "application/json" },
                    "data": { "$ref": format!("./schemas/{ce_type}.json") }
                }
            },
            "bindings": { "amqp": { "messageType": ce_type, "bindingVersion": "0.3.0" } },
            "examples": [{
                "name": format!("{}Example", camel(event.routing_key())),
                "summary": "Order WEB-1001: two blue mugs.",
                "headers": { "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" },
                "payload": {
                    "specversion": "1.0",
                    "id": "0193f1d2-8c4e-7a51-b2f0-5d1c9e7a3b10",
                    "source": "fulfilment/example",
                    "type": ce_type,
                    "subject": "WEB-1001",
                    "time": "2026-11-20T09:30:01.204Z",
                    "datacontenttype": "application/json",
                    "data": super::example(event)
                }
            }]
        })
    }

    /// The document. Every name that carries the namespace is written with `{namespace}` (a
    /// parameter of the review queue's address; the exchange's name in the bindings), whose
    /// default is `namespace`.
    pub fn document(namespace: &str) -> Value {
        let exchange = json!({
            "name": "{namespace}.events", "type": "topic", "durable": true,
            "autoDelete": false, "vhost": "/"
        });
        let (mut channels, mut operations, mut messages) = (Map::new(), Map::new(), Map::new());
        for event in EventType::ALL {
            let name = camel(event.routing_key());
            messages.insert(name.clone(), message(event));
            let reference = json!({ "$ref": format!("#/components/messages/{name}") });
            channels.insert(name.clone(), json!({
                "address": event.routing_key(),
                "messages": { name.clone(): reference },
                "bindings": { "amqp": { "is": "routingKey", "exchange": exchange.clone(), "bindingVersion": "0.3.0" } }
            }));
            let channel = json!({ "$ref": format!("#/channels/{name}") });
            if emitted(event) {
                operations.insert(format!("{name}Sent"), json!({
                    "action": "send", "channel": channel.clone(),
                    "bindings": { "amqp": { "deliveryMode": 2, "timestamp": true, "bindingVersion": "0.3.0" } }
                }));
            }
            if consumed(event) {
                operations.insert(
                    format!("{name}Received"),
                    json!({
                        "action": "receive", "channel": channel,
                        "bindings": { "amqp": { "ack": true, "bindingVersion": "0.3.0" } }
                    }),
                );
            }
        }
        channels.insert("reviewQueue".into(), json!({
            "address": "{namespace}.review",
            "description": "Every review case opened, for tools that watch the human-review queue.",
            "parameters": { "namespace": namespace_parameter(namespace) },
            "messages": { "reviewCaseOpened": { "$ref": "#/components/messages/reviewCaseOpened" } },
            "bindings": { "amqp": { "is": "queue", "queue": {
                "name": "{namespace}.review", "durable": true, "exclusive": false,
                "autoDelete": false, "vhost": "/" }, "bindingVersion": "0.3.0" } }
        }));
        operations.insert(
            "reviewCaseConsumed".into(),
            json!({
                "action": "receive", "channel": { "$ref": "#/channels/reviewQueue" },
                "summary": "Outside tools consume review cases from the review queue."
            }),
        );
        json!({
            "asyncapi": "3.0.0",
            "info": {
                "title": "fulfilment events",
                "version": env!("CARGO_PKG_VERSION"),
                "description": format!("The message interface of the fulfilment pipeline. Every message is a CloudEvents 1.0 envelope in structured JSON, published to a durable topic exchange, `{{namespace}}.events`, with the routing keys below (the channels' addresses). `{{namespace}}` is the deployment's `amqp.namespace`, `{namespace}` by default: every exchange and queue name starts with it. Publish with confirms and persistent delivery; consume from your own queue bound to the keys you need, acknowledge after handling, deduplicate on the envelope id, and ignore fields you do not know. Operations are described from the pipeline's side.")
            },
            "defaultContentType": "application/cloudevents+json",
            "servers": { "local": {
                "host": "127.0.0.1:5672", "protocol": "amqp", "protocolVersion": "0.9.1",
                "description": "A local broker, as in the quick start."
            } },
            "channels": channels,
            "operations": operations,
            "components": {
                "messages": messages,
                "schemas": { "amqpHeaders": {
                    "type": "object",
                    "properties": { "traceparent": {
                        "type": "string", "description": "W3C trace context; the trace follows the order.",
                        "pattern": "^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"
                    } }
                } }
            }
        })
    }
}

/// A small YAML writer for JSON values: block style, every string and key double-quoted (JSON
/// quoting is valid YAML), so the output is unambiguous.
mod yaml {
    use serde_json::Value;

    fn scalar(value: &Value) -> String {
        serde_json::to_string(value).expect("scalars serialise")
    }

    fn is_block(value: &Value) -> bool {
        matches!(value, Value::Object(m) if !m.is_empty())
            || matches!(value, Value::Array(a) if !a.is_empty())
    }

    fn inline(value: &Value) -> String {
        match value {
            Value::Object(_) => "{}".into(),
            Value::Array(_) => "[]".into(),
            other => scalar(other),
        }
    }

    pub fn emit(value: &Value, indent: usize, out: &mut String) {
        let pad = " ".repeat(indent);
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    let key = scalar(&Value::String(key.clone()));
                    if is_block(v) {
                        out.push_str(&format!("{pad}{key}:\n"));
                        emit(v, indent + 2, out);
                    } else {
                        out.push_str(&format!("{pad}{key}: {}\n", inline(v)));
                    }
                }
            }
            Value::Array(items) => {
                for item in items {
                    if is_block(item) {
                        out.push_str(&format!("{pad}-\n"));
                        emit(item, indent + 2, out);
                    } else {
                        out.push_str(&format!("{pad}- {}\n", inline(item)));
                    }
                }
            }
            other => out.push_str(&format!("{pad}{}\n", scalar(other))),
        }
    }
}
