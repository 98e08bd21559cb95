//! The event contract holds: the checked-in schemas are exactly what the types generate, and the
//! versioning rules are kept.

use fulfilment::contract::{file_name, payload_schema, render};
use fulfilment::domain::EventType;
use fulfilment::domain::events::OrderPlaced;
use fulfilment::envelope::Envelope;

#[test]
fn checked_in_schemas_match_the_types() {
    for event in EventType::ALL {
        let path = format!("docs/schemas/{}", file_name(event));
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == render(&payload_schema(event)),
            "{path} differs from the types; run `cargo run -- schemas --out docs/schemas --asyncapi docs/asyncapi.yaml`"
        );
    }
    let files = std::fs::read_dir("docs/schemas").unwrap().count();
    assert_eq!(
        files,
        EventType::ALL.len(),
        "no schema for an event type that no longer exists"
    );
}

#[test]
fn the_checked_in_asyncapi_document_matches_the_types() {
    let checked_in = std::fs::read_to_string("docs/asyncapi.yaml").unwrap_or_default();
    assert!(
        checked_in == fulfilment::contract::asyncapi_yaml("fulfilment"),
        "docs/asyncapi.yaml differs from the types; run `cargo run -- schemas --out docs/schemas --asyncapi docs/asyncapi.yaml`"
    );
}

#[test]
fn every_type_carries_its_version_and_consumers_ignore_unknown_fields() {
    for event in EventType::ALL {
        let ce_type = event.cloudevents_type();
        let version = ce_type.rsplit('.').next().unwrap();
        assert!(
            version.starts_with('v') && version[1..].parse::<u32>().is_ok(),
            "{ce_type}"
        );
        let schema = payload_schema(event);
        assert_ne!(
            schema.get("additionalProperties"),
            Some(&serde_json::json!(false)),
            "{ce_type}"
        );
    }
    // A producer that adds a field (an additive change, same version) does not break us.
    let order = serde_json::json!({
        "order_id": "V-1", "customer_id": "C", "channel": "web", "currency": "GBP",
        "placed_at": "2026-11-20T09:00:00Z", "gift_wrap": true,
        "lines": [{"sku": "MUG-BLUE", "quantity": 1, "unit_price_minor": 1250, "colour": "blue"}]
    });
    let mut envelope = Envelope::wrap(
        "tests",
        &OrderPlaced::new(serde_json::from_value(order.clone()).unwrap()),
    );
    envelope.data =
        serde_json::json!({"order_id": "V-1", "order": order, "channel_reference": "x"});
    let (decoded, _) = Envelope::decode(&envelope.to_bytes()).unwrap();
    assert!(decoded.payload::<OrderPlaced>().is_ok());
    let validator = jsonschema::validator_for(&payload_schema(EventType::OrderPlaced)).unwrap();
    assert!(validator.is_valid(&envelope.data));
}

/// The routing keys in the first Markdown table row of `text` that names `queue`.
fn keys_in_row(text: &str, queue: &str) -> Vec<String> {
    let row = text
        .lines()
        .find(|l| l.starts_with('|') && l.contains(&format!("`<namespace>.{queue}`")))
        .unwrap_or_else(|| panic!("no row for {queue}"));
    let cells: Vec<&str> = row.split('|').collect();
    cells[3]
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The `ROUTING_KEYS` list of a Python example.
fn python_keys(file: &str) -> Vec<String> {
    let text = std::fs::read_to_string(format!("examples/integration/{file}.py")).unwrap();
    let start = text
        .find("ROUTING_KEYS = [")
        .unwrap_or_else(|| panic!("{file}.py"));
    let list = &text[start..text[start..].find(']').unwrap() + start];
    list.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The topic read expression `docs/operations.md` gives the broker user `user`.
fn topic_read_expression(user: &str) -> String {
    let text = std::fs::read_to_string("docs/operations.md").unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("rabbitmqctl set_topic_permissions -p / {user} ")))
        .unwrap_or_else(|| panic!("no topic permissions for {user}"));
    line.rsplit('\'').nth(1).unwrap().to_owned()
}

#[test]
fn each_kind_of_client_has_one_binding_list_everywhere() {
    let guide = std::fs::read_to_string("docs/integration.md").unwrap();
    for (client, queue, keys) in fulfilment::contract::BINDINGS {
        assert_eq!(
            keys_in_row(&guide, queue),
            keys,
            "{client} in docs/integration.md"
        );
        let example = match queue {
            "shop" => "web_shop",
            other => other,
        };
        assert_eq!(python_keys(example), keys, "{client} in {example}.py");
        let user = match queue {
            "shop" => Some("fulfilment-shop"),
            "warehouse" => Some("fulfilment-warehouse"),
            "finance" => Some("fulfilment-finance"),
            _ => None,
        };
        if let Some(user) = user {
            let escaped: Vec<String> = keys.iter().map(|k| k.replace('.', "\\.")).collect();
            let expected = match escaped.len() {
                1 => format!("^{}$", escaped[0]),
                _ => format!("^({})$", escaped.join("|")),
            };
            assert_eq!(
                topic_read_expression(user),
                expected,
                "{client}'s broker user"
            );
        }
    }
}

#[test]
fn every_example_is_valid_and_read_as_the_pipeline_reads_it() {
    for event in EventType::ALL {
        let example = fulfilment::contract::example(event);
        let validator = jsonschema::validator_for(&payload_schema(event)).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&example)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{event}: {errors:?}");
        let decoded = fulfilment::domain::events::Payload::decode(event, &example);
        assert!(decoded.is_ok(), "{event}: {decoded:?}");
    }
    let document = fulfilment::contract::asyncapi_yaml("fulfilment");
    assert!(
        document.contains("\"examples\":"),
        "the document carries them"
    );
    assert!(
        !document.contains("\"fulfilment.events\""),
        "the namespace is a variable"
    );
}

mod limits {
    //! The schemas state the limits the pipeline enforces: a generated order is valid under
    //! `order.placed`'s schema exactly when the pipeline reads it.

    use fulfilment::contract::payload_schema;
    use fulfilment::domain::EventType;
    use fulfilment::domain::events::Payload;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn near_limits() -> impl Strategy<Value = Value> {
        let quantity = prop_oneof![
            Just(0i64),
            Just(1),
            Just(1_000_000),
            Just(1_000_001),
            Just(-1)
        ];
        let price = prop_oneof![
            Just(-1i64),
            Just(0),
            Just(1250),
            Just(1_000_000_000_000_000),
            Just(1_000_000_000_000_001)
        ];
        let sku = prop_oneof![
            Just(String::new()),
            Just("MUG-BLUE".to_owned()),
            Just("x".repeat(64)),
            Just("x".repeat(65)),
        ];
        let line = (sku, quantity, price)
            .prop_map(|(s, q, p)| json!({"sku": s, "quantity": q, "unit_price_minor": p}));
        let lines = prop_oneof![Just(0usize), Just(1), Just(3), Just(1000), Just(1001)]
            .prop_flat_map(move |n| line.clone().prop_map(move |l| Value::Array(vec![l; n])));
        let customer = prop_oneof![
            Just(String::new()),
            Just("CUST-042".to_owned()),
            Just("c".repeat(64)),
            Just("c".repeat(65))
        ];
        (lines, customer, prop::bool::ANY).prop_map(|(lines, customer, versioned)| {
            let mut order = json!({
                "order_id": "LIM-1", "customer_id": customer, "channel": "web",
                "currency": "GBP", "placed_at": "2026-11-20T09:00:00Z", "lines": lines
            });
            if versioned {
                order["version"] = json!(0);
            }
            json!({"order_id": "LIM-1", "order": order})
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn the_schema_accepts_exactly_what_the_pipeline_reads(data in near_limits()) {
            let schema = payload_schema(EventType::OrderPlaced);
            let valid = jsonschema::validator_for(&schema).unwrap().is_valid(&data);
            let total_fits = data["order"]["lines"].as_array().is_some_and(|lines| {
                lines.iter().try_fold(0i128, |sum, l| {
                    let line = i128::from(l["quantity"].as_i64()?) * i128::from(l["unit_price_minor"].as_i64()?);
                    Some(sum + line)
                }).is_some_and(|t| t <= 1_000_000_000_000_000)
            });
            let read = Payload::decode(EventType::OrderPlaced, &data).is_ok();
            // A schema cannot add up the lines: an order whose lines are each valid but add up to
            // more than any amount the pipeline books is the one thing only the pipeline refuses.
            prop_assert_eq!(valid && total_fits, read, "{}", data);
        }
    }
}
