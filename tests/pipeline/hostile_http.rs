//! The HTTP API under hostile input: no request gets a 5xx, every refusal is JSON
//! `{"error": ...}`, and what the pipeline would refuse later is refused at intake.
//!
//! A property test throws random JSON (nested objects and arrays, strings with NUL and control
//! characters, numbers beyond 64 bits, floats), random query values and random path segments at
//! every route of a real server on a real database and broker; explicit tests pin each case
//! found before (a NUL in a note, a filter or an erase request; numbers out of range in the
//! query; an order too large for a message; a NUL customer id).

use std::collections::BTreeMap;
use std::sync::Mutex;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestEnv, line, order_with};

/// A caller with every role, so that every check behind authority is reached.
const EVERYONE: &str = "tok-everyone";
const ALL_ROLES: &[&str] = &[
    "intake",
    "agent",
    "supervisor",
    "customer_service",
    "finance",
    "operations",
];
/// The placeholder a random JSON text replaces in a valid body.
const HOLE: &str = "@@HOLE@@";
/// The order id of the open case the probes act on.
const CASE_ORDER: &str = "HOSTILE-1";

/// One request.
#[derive(Debug, Clone)]
enum Probe {
    /// A POST with this body text, as JSON or as plain text.
    Post {
        path: String,
        body: String,
        json: bool,
    },
    /// A GET with these query parameters.
    Get {
        path: String,
        query: Vec<(String, String)>,
    },
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_hostile_request_gets_a_server_error() {
    let mut env = TestEnv::new().await;
    let url = env.start_api(&[("Prober", ALL_ROLES, EVERYONE)]).await;
    let case = open_case(&env).await;
    let http = reqwest::Client::new();
    let runtime = tokio::runtime::Handle::current();
    let statuses = Mutex::new(BTreeMap::<u16, usize>::new());
    let config = Config {
        cases: 200,
        failure_persistence: None,
        ..Config::default()
    };
    let outcome = tokio::task::block_in_place(|| {
        TestRunner::new(config).run(&probe(case), |probe| {
            runtime.block_on(async {
                let status = send(&http, &url, &probe).await?;
                *statuses.lock().unwrap().entry(status.as_u16()).or_default() += 1;
                reopen_cases(&env).await;
                Ok(())
            })
        })
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
    // The probes got past the parsers to the checks behind them, and some were valid.
    let statuses = statuses.into_inner().unwrap();
    eprintln!("statuses of the probes: {statuses:?}");
    assert!(statuses.values().sum::<usize>() >= 200, "{statuses:?}");
    assert!(statuses.contains_key(&422), "{statuses:?}");
    assert!(
        statuses.keys().any(|s| (200..300).contains(s)),
        "{statuses:?}"
    );
}

/// Sends a probe and checks the answer: a response (not a dropped connection), below 500, and
/// JSON `{"error": "..."}` when it is a refusal. Returns its status.
async fn send(
    http: &reqwest::Client,
    url: &str,
    probe: &Probe,
) -> Result<StatusCode, TestCaseError> {
    let request = match probe {
        Probe::Post { path, body, json } => http
            .post(format!("{url}{path}"))
            .header(
                "content-type",
                if *json {
                    "application/json"
                } else {
                    "text/plain"
                },
            )
            .body(body.clone()),
        Probe::Get { path, query } => {
            let mut address = url::Url::parse(&format!("{url}{path}")).expect("a URL");
            address.query_pairs_mut().extend_pairs(query);
            http.get(address)
        }
    };
    let response = request
        .bearer_auth(EVERYONE)
        .send()
        .await
        .map_err(|e| TestCaseError::fail(format!("no answer: {e}")))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    prop_assert!(!status.is_server_error(), "{status}: {text}");
    if status.is_client_error() {
        let body: Value = serde_json::from_str(&text)
            .map_err(|_| TestCaseError::fail(format!("{status} is not JSON: {text}")))?;
        prop_assert!(body["error"].is_string(), "{status}: {text}");
    }
    Ok(status)
}

/// An open review case about [`CASE_ORDER`], for the probes to act on; returns its id.
async fn open_case(env: &TestEnv) -> i64 {
    let body = serde_json::to_vec(&json!({"order_id": CASE_ORDER})).unwrap();
    sqlx::query_scalar(
        "INSERT INTO review_cases (order_id, stage, reason, detail, required_role, original_body,
           original_properties, message_key)
         VALUES ($1, 'verify', 'out_of_stock', 'MUG-BLUE: 0 left', 'customer_service', $2, '{}',
           'hostile-1') RETURNING id",
    )
    .bind(CASE_ORDER)
    .bind(body)
    .fetch_one(&env.pool)
    .await
    .unwrap()
}

/// Opens every case again, so that a probe that resolved one leaves the next a case to act on.
async fn reopen_cases(env: &TestEnv) {
    sqlx::query("UPDATE review_cases SET status = 'open', resolved_at = NULL")
        .execute(&env.pool)
        .await
        .unwrap();
}

fn probe(case: i64) -> impl Strategy<Value = Probe> {
    let post = |path: String, templates: Vec<Value>| {
        body(templates).prop_map(move |(body, json)| Probe::Post {
            path: path.clone(),
            body,
            json,
        })
    };
    let confirmation = json!({"order_id": "HTTP-1", "outcome": "complaint", "reason": "It broke."});
    let payment = json!({"order_id": "HTTP-1", "payment_reference": "PSP-77", "amount_minor": 1500,
                         "currency": "GBP", "captured_at": "2026-11-20T09:31:00Z"});
    let note = json!({"note": "stock arrived"});
    let mut amended = order_body();
    amended["version"] = json!(2);
    let note_and_order = json!({"note": "agreed price", "order": order_body()});
    prop_oneof![
        1 => post("/orders".into(), vec![order_body(), json!([order_body(), order_body()])]),
        1 => post("/amendments".into(), vec![amended]),
        1 => post("/confirmations".into(), vec![confirmation]),
        1 => post("/payments".into(), vec![payment]),
        3 => (case_segment(case), action(), body(vec![note.clone(), note_and_order]))
            .prop_map(|(id, action, (body, json))| Probe::Post {
                path: format!("/cases/{id}/{action}"),
                body,
                json,
            }),
        2 => (customer_segment(), body(vec![note.clone()])).prop_map(|(id, (body, json))| Probe::Post {
            path: format!("/customers/{id}/erase"),
            body,
            json,
        }),
        1 => (order_segment(), body(vec![note])).prop_map(|(id, (body, json))| Probe::Post {
            path: format!("/orders/{id}/documents/reissue"),
            body,
            json,
        }),
        2 => vec((query_key(), hostile_text()), 0..4).prop_map(|query| Probe::Get {
            path: "/cases".into(),
            query,
        }),
        1 => case_segment(case).prop_map(|id| Probe::Get {
            path: format!("/cases/{id}"),
            query: Vec::new(),
        }),
    ]
}

/// A body for a route whose valid bodies look like `templates`, and whether it is sent as JSON:
/// mostly a template with one field replaced by something hostile, else random JSON, text that
/// is not JSON, or a valid body sent as plain text.
fn body(templates: Vec<Value>) -> impl Strategy<Value = (String, bool)> {
    let plain = templates.clone();
    prop_oneof![
        6 => (holed(templates), hole()).prop_map(|(t, hole)| (t.replace(&format!("\"{HOLE}\""), &hole), true)),
        1 => json_text().prop_map(|j| (j, true)),
        1 => hostile_text().prop_map(|t| (t, true)),
        1 => prop::sample::select(plain).prop_map(|t| (t.to_string(), false)),
    ]
}

/// One of `templates`, serialised, with [`HOLE`] in place of one of its values.
fn holed(templates: Vec<Value>) -> impl Strategy<Value = String> {
    (0..templates.len(), any::<prop::sample::Index>()).prop_map(move |(t, at)| {
        let mut body = templates[t].clone();
        let holes = pointers(&body);
        let hole = &holes[at.index(holes.len())];
        *body.pointer_mut(hole).expect("a field of the template") = Value::String(HOLE.into());
        serde_json::to_string(&body).unwrap()
    })
}

/// What goes in a hole: mostly a hostile string, else any JSON.
fn hole() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => hostile_text().prop_map(|s| serde_json::to_string(&s).unwrap()),
        1 => json_text(),
    ]
}

/// A valid order with every optional field.
fn order_body() -> Value {
    let mut order =
        serde_json::to_value(order_with("HTTP-1", vec![line("MUG-BLUE", 2, 1250)])).unwrap();
    order["version"] = json!(1);
    order["agent_id"] = json!("AG-7");
    order["identity_check"] = json!({"method": "security_questions", "result": "passed"});
    order["delivery_terms"] = json!("FOB_SHIPPING_POINT");
    order["total_minor"] = json!(2500);
    order
}

/// The JSON pointer of every value inside `value` (not of `value` itself: replacing a whole body
/// is what random JSON does).
fn pointers(value: &Value) -> Vec<String> {
    let children: Vec<(String, &Value)> = match value {
        Value::Object(fields) => fields.iter().map(|(k, v)| (k.clone(), v)).collect(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v))
            .collect(),
        _ => Vec::new(),
    };
    let mut found = Vec::new();
    for (key, child) in children {
        found.push(format!("/{key}"));
        found.extend(pointers(child).into_iter().map(|p| format!("/{key}{p}")));
    }
    found
}

/// Random JSON text: nested arrays and objects of hostile strings, numbers beyond 64 bits and
/// beyond `f64`, floats, booleans and nulls.
fn json_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        any::<bool>().prop_map(|b| b.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_filter_map("finite", |f| f.is_finite().then(|| format!("{f:e}"))),
        "-?[1-9][0-9]{19,60}",
        "-?[0-9]\\.[0-9]{1,4}[eE][+-]?[0-9]{3,5}",
        hostile_text().prop_map(|s| serde_json::to_string(&s).unwrap()),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(|items| format!("[{}]", items.join(","))),
            vec((key(), inner), 0..6).prop_map(|fields| {
                let fields: Vec<String> = fields
                    .into_iter()
                    .map(|(k, v)| format!("{}:{v}", serde_json::to_string(&k).unwrap()))
                    .collect();
                format!("{{{}}}", fields.join(","))
            }),
        ]
    })
}

/// Text as hostile callers send it: plausible values with a control character (often NUL)
/// slipped in, any characters, plausible values as they are, long runs.
fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (plausible(), any::<prop::sample::Index>(), control()).prop_map(|(text, at, c)| {
            let mut chars: Vec<char> = text.chars().collect();
            chars.insert(at.index(chars.len() + 1), c);
            chars.into_iter().collect()
        }),
        1 => any::<String>(),
        1 => "[\\x00-\\x1f\\x7f a-zA-Z0-9_.-]{0,24}",
        1 => plausible(),
        1 => (1_usize..3000).prop_map(|n| "x".repeat(n)),
    ]
}

/// Values of the kinds the routes expect, and numbers at and beyond their ranges.
fn plausible() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "CUST-042",
        "MUG-BLUE",
        "GBP",
        "web",
        "accepted",
        "complaint",
        "open",
        "verify",
        "out_of_stock",
        "customer_service",
        "2026-11-20T09:00:00Z",
        "9223372036854775807",
        "-1",
        "0",
        "1e3",
        "99999999999999999999",
        "",
        " ",
        "stock arrived",
    ])
    .prop_map(str::to_owned)
}

/// A control character; NUL (which Postgres refuses in text) most often.
fn control() -> impl Strategy<Value = char> {
    prop::sample::select(vec![
        '\0', '\0', '\0', '\0', '\u{1}', '\u{1b}', '\r', '\n', '\u{7f}', '\u{85}',
    ])
}

/// A key of an object: one the routes know, or anything.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "order_id",
            "customer_id",
            "lines",
            "sku",
            "quantity",
            "unit_price_minor",
            "note",
            "order",
            "reason",
            "outcome",
            "amount_minor",
            "payment_reference",
            "version",
        ])
        .prop_map(str::to_owned),
        hostile_text(),
    ]
}

fn query_key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "status",
            "reason",
            "stage",
            "role",
            "older_than_secs",
            "limit",
        ])
        .prop_map(str::to_owned),
        hostile_text(),
    ]
}

fn action() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["retry", "amend", "cancel", "close"]).prop_map(str::to_owned),
        1 => hostile_text().prop_map(|t| segment(&t)),
    ]
}

/// The open case's id, another number, or anything, as a path segment.
fn case_segment(case: i64) -> impl Strategy<Value = String> {
    prop_oneof![
        6 => Just(case.to_string()),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => hostile_text().prop_map(|t| segment(&t)),
    ]
}

/// An order that exists, or anything, as a path segment.
fn order_segment() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just("HTTP-1".to_owned()),
        1 => hostile_text().prop_map(|t| segment(&t)),
    ]
}

/// A customer who exists, or anything, as a path segment.
fn customer_segment() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just("CUST-042".to_owned()),
        1 => hostile_text().prop_map(|t| segment(&t)),
    ]
}

/// `text` as one path segment: every byte but the unreserved ones percent-encoded.
fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Explicit cases: what was found to give 500 before, and the refusals of the intake.
mod regressions {
    use super::*;
    use crate::helpers::post;

    const SHOP: &str = "tok-shop";

    async fn get(http: &reqwest::Client, url: String) -> (StatusCode, Value) {
        let response = http.get(url).bearer_auth(EVERYONE).send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or_default())
    }

    /// The error of an answer, which must be a JSON refusal with this status.
    fn refused(answer: (StatusCode, Value), status: StatusCode) -> String {
        assert_eq!(answer.0, status, "{}", answer.1);
        answer.1["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error in {}", answer.1))
            .to_owned()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_review_desk_refuses_nul_and_numbers_out_of_range() {
        let mut env = TestEnv::new().await;
        let url = env.start_api(&[("Prober", ALL_ROLES, EVERYONE)]).await;
        let case = open_case(&env).await;
        let http = reqwest::Client::new();
        let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;

        let close = format!("{url}/cases/{case}/close");
        let error = refused(
            post(&http, close.clone(), EVERYONE, json!({"note": "a\u{0}b"})).await,
            unprocessable,
        );
        assert!(
            error.starts_with("note: must not contain control characters"),
            "{error}"
        );
        let error = refused(
            post(&http, close.clone(), EVERYONE, json!({"note": " \n "})).await,
            unprocessable,
        );
        assert!(error.starts_with("note: "), "{error}");
        let long = "x".repeat(2001);
        let error = refused(
            post(&http, close.clone(), EVERYONE, json!({"note": long})).await,
            unprocessable,
        );
        assert!(
            error.starts_with("note: must be at most 2000 characters"),
            "{error}"
        );
        let amend = format!("{url}/cases/{case}/amend");
        let error = refused(
            post(&http, amend, EVERYONE, json!({"note": "fix", "order": 5})).await,
            unprocessable,
        );
        assert!(error.contains("must be a JSON object"), "{error}");

        let error = refused(
            get(&http, format!("{url}/cases?reason=out%00of_stock")).await,
            unprocessable,
        );
        assert!(
            error.starts_with("reason: must not contain control characters"),
            "{error}"
        );
        for (query, field) in [
            (
                "older_than_secs=9223372036854775807",
                "older_than_secs: must be between 0 and 315360000",
            ),
            (
                "older_than_secs=-1",
                "older_than_secs: must be between 0 and 315360000",
            ),
            (
                "older_than_secs=99999999999999999999",
                "older_than_secs: must be between 0 and 315360000",
            ),
            (
                "older_than_secs=ten",
                "older_than_secs: must be between 0 and 315360000",
            ),
            ("limit=0", "limit: must be between 1 and 1000"),
            ("limit=-5", "limit: must be between 1 and 1000"),
            ("limit=1001", "limit: must be between 1 and 1000"),
            (
                "limit=99999999999999999999",
                "limit: must be between 1 and 1000",
            ),
        ] {
            let error = refused(
                get(&http, format!("{url}/cases?{query}")).await,
                unprocessable,
            );
            assert_eq!(error, field, "{query}");
        }
        let (status, listed) = get(
            &http,
            format!("{url}/cases?older_than_secs=0&limit=1000&status="),
        )
        .await;
        assert_eq!(
            (status, listed.as_array().map(Vec::len)),
            (StatusCode::OK, Some(1))
        );

        let erase = |id: &str| format!("{url}/customers/{id}/erase");
        let error = refused(
            post(
                &http,
                erase("CUST%00042"),
                EVERYONE,
                json!({"note": "asked"}),
            )
            .await,
            unprocessable,
        );
        assert!(
            error.starts_with("customer_id: must not contain control characters"),
            "{error}"
        );
        let error = refused(
            post(
                &http,
                erase("CUST-042"),
                EVERYONE,
                json!({"note": "asked\u{0}"}),
            )
            .await,
            unprocessable,
        );
        assert!(
            error.starts_with("note: must not contain control characters"),
            "{error}"
        );
        let erased: i64 =
            sqlx::query_scalar("SELECT count(*) FROM customers WHERE erased_at IS NOT NULL")
                .fetch_one(&env.pool)
                .await
                .unwrap();
        assert_eq!(erased, 0, "nothing was erased");

        let error = refused(
            get(&http, format!("{url}/cases/not-a-number")).await,
            StatusCode::BAD_REQUEST,
        );
        assert!(!error.is_empty());
        let status: String = sqlx::query_scalar("SELECT status FROM review_cases")
            .fetch_one(&env.pool)
            .await
            .unwrap();
        assert_eq!(status, "open", "no refused request resolved the case");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn axum_refusals_are_json_too() {
        let mut env = TestEnv::new().await;
        let url = env.start_api(&[("web-shop", &["intake"], SHOP)]).await;
        let http = reqwest::Client::new();
        let send = |body: &'static str, content_type: &'static str| {
            http.post(format!("{url}/orders"))
                .bearer_auth(SHOP)
                .header("content-type", content_type)
                .body(body)
                .send()
        };
        for (body, content_type, status) in [
            ("{not json", "application/json", StatusCode::BAD_REQUEST),
            ("{}", "text/plain", StatusCode::UNSUPPORTED_MEDIA_TYPE),
            ("[1e999]", "application/json", StatusCode::BAD_REQUEST),
        ] {
            let response = send(body, content_type).await.unwrap();
            assert_eq!(response.status(), status, "{body}");
            let answer: Value = response.json().await.unwrap();
            assert!(answer["error"].is_string(), "{answer}");
        }
        let response = http
            .get(format!("{url}/no-such-route"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert!(response.json::<Value>().await.unwrap()["error"].is_string());
        let response = http.get(format!("{url}/orders")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert!(response.json::<Value>().await.unwrap()["error"].is_string());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_intake_refuses_what_the_pipeline_would_refuse() {
        let mut env = TestEnv::new().await;
        let tap = env.start_tap().await;
        let url = env.start_api(&[("web-shop", &["intake"], SHOP)]).await;
        let http = reqwest::Client::new();
        let at = |path: &str| format!("{url}{path}");
        let order =
            || serde_json::to_value(order_with("BIG-1", vec![line("MUG-BLUE", 1, 1250)])).unwrap();

        let mut nul_customer = order();
        nul_customer["customer_id"] = json!("CUST\u{0}042");
        let error = refused(
            post(&http, at("/orders"), SHOP, nul_customer).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        );
        assert!(
            error.starts_with(
                "order #1 is invalid: customer_id: must not contain control characters"
            ),
            "{error}"
        );

        // 25,000 lines: over the body limit (413) or over the line limit (422), never accepted.
        let mut huge = order();
        huge["lines"] = Value::Array(vec![line("MUG-BLUE", 1, 1250); 25_000]);
        let (status, answer) = post(&http, at("/orders"), SHOP, huge).await;
        assert!(
            [
                StatusCode::PAYLOAD_TOO_LARGE,
                StatusCode::UNPROCESSABLE_ENTITY
            ]
            .contains(&status),
            "{status}: {answer}"
        );
        assert!(answer["error"].is_string(), "{answer}");
        let mut many = order();
        many["lines"] = Value::Array(vec![line("MUG-BLUE", 1, 1250); 1001]);
        let error = refused(
            post(&http, at("/amendments"), SHOP, many).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        );
        assert!(
            error.contains("lines: an order has at most 1000 lines"),
            "{error}"
        );

        let answer = json!({"order_id": "BIG-1", "outcome": "complaint", "reason": "broken\u{0}"});
        let error = refused(
            post(&http, at("/confirmations"), SHOP, answer).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        );
        assert!(
            error.starts_with(
                "customer confirmation is invalid: reason: must not contain control characters"
            ),
            "{error}"
        );
        let answer = json!({"order_id": "BIG-1", "outcome": "query", "reason": "?".repeat(2001)});
        refused(
            post(&http, at("/confirmations"), SHOP, answer).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        );
        let payment = |reference: &str, amount: i64| {
            json!({"order_id": "BIG-1", "payment_reference": reference, "amount_minor": amount,
                   "currency": "GBP", "captured_at": "2026-11-20T09:31:00Z"})
        };
        let error = refused(
            post(&http, at("/payments"), SHOP, payment("PSP\u{0}1", 100)).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        );
        assert!(
            error.starts_with(
                "payment is invalid: payment_reference: must not contain control characters"
            ),
            "{error}"
        );
        refused(
            post(&http, at("/payments"), SHOP, payment(&"P".repeat(65), 100)).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        );
        for amount in [0, -1, 1_000_000_000_000_001, i64::MAX] {
            let error = refused(
                post(&http, at("/payments"), SHOP, payment("PSP-1", amount)).await,
                StatusCode::UNPROCESSABLE_ENTITY,
            );
            assert_eq!(
                error,
                "payment is invalid: amount_minor: must be between 1 and 1000000000000000"
            );
        }
        let error = refused(
            post(&http, at("/payments"), SHOP, json!({"order_id": "BIG-1"})).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        );
        assert!(error.starts_with("payment is invalid: "), "{error}");

        // Nothing refused was published; what is valid still is.
        let (status, answer) = post(&http, at("/payments"), SHOP, payment("PSP-1", 100)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        env.wait_for("the valid payment on the exchange", || {
            let seen = tap.events.lock().unwrap().len();
            async move { (seen > 0).then_some(()) }
        })
        .await;
        let types: Vec<String> = tap
            .events
            .lock()
            .unwrap()
            .iter()
            .map(|(_, e)| e.event_type.clone())
            .collect();
        assert_eq!(types, ["fulfilment.payment.captured.v1"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_event_over_the_message_limit_is_refused_before_publishing() {
        const LIMIT: usize = 8192;
        let mut env = TestEnv::with(|s| s.amqp.max_message_bytes = LIMIT).await;
        let tap = env.start_tap().await;
        let url = env.start_api(&[("web-shop", &["intake"], SHOP)]).await;
        let http = reqwest::Client::new();
        let order = |lines: usize| {
            let lines = (0..lines)
                .map(|i| line(&format!("SKU-{i}"), 1, 100))
                .collect();
            serde_json::to_value(order_with("SIZE-1", lines)).unwrap()
        };
        // The largest order whose body fits the limit: its envelope, with the order id twice and
        // the event's own fields, does not.
        let fits = (1..1000)
            .take_while(|&n| serde_json::to_vec(&order(n)).unwrap().len() <= LIMIT)
            .last()
            .unwrap();
        let (status, answer) = post(&http, format!("{url}/orders"), SHOP, order(fits)).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(
            error.starts_with("event #1 (order SIZE-1) would be a message of "),
            "{error}"
        );
        assert!(
            error.ends_with(&format!(
                "over the limit of {LIMIT} bytes (amqp.max_message_bytes)"
            )),
            "{error}"
        );

        let (status, answer) = post(&http, format!("{url}/orders"), SHOP, order(fits + 10)).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
        assert!(
            answer["error"]
                .as_str()
                .unwrap()
                .starts_with("the request body is over the limit of 8192 bytes"),
            "{answer}"
        );

        let (status, answer) = post(&http, format!("{url}/orders"), SHOP, order(3)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        env.wait_for("the small order on the exchange", || {
            let seen = tap.events.lock().unwrap().len();
            async move { (seen > 0).then_some(()) }
        })
        .await;
        assert_eq!(
            tap.events.lock().unwrap().len(),
            1,
            "only the order that fits was published"
        );
    }
}
