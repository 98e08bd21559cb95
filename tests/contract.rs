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
            "{path} differs from the types; run `cargo run -- schemas --out docs/schemas`"
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
        "docs/asyncapi.yaml differs from the types; run `cargo run -- schemas --out docs/schemas`"
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
