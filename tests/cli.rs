//! The command line as a newcomer meets it, run as the real binary: the README's quick start
//! works as written (including the sample amendment), `status` reads as words and money,
//! `schemas --out DIR` keeps everything in `DIR`, `hash-token` takes the secret on standard
//! input, and `review --as` with an unknown name says where people are configured.

#[path = "pipeline/helpers.rs"]
#[allow(dead_code)]
mod helpers;
#[path = "support/process.rs"]
#[allow(dead_code)]
mod process;

use std::path::PathBuf;
use std::process::Output;

use fulfilment::settings::Settings;
use helpers::TestEnv;
use process::{Process, free_address, fulfilment};
use sha2::{Digest, Sha256};

/// Standard output of a command that must succeed.
fn succeeds(output: Output) -> String {
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A fresh directory under the system's temporary directory.
fn scratch() -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("fulfilment-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn schemas_out_dir_holds_the_schemas_and_the_asyncapi_document() {
    let settings = Settings::load().unwrap();
    let dir = scratch();
    let out = dir.join("schemas");
    succeeds(fulfilment(
        &settings,
        &["schemas", "--out", out.to_str().unwrap()],
        &[],
        "",
    ));
    assert!(
        out.join("asyncapi.yaml").is_file(),
        "the AsyncAPI document is in DIR"
    );
    assert!(
        !dir.join("asyncapi.yaml").exists(),
        "nothing is written beside DIR"
    );
    let schemas = std::fs::read_dir(&out)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "json")
        })
        .count();
    assert!(schemas > 10, "{schemas} schemas");

    let elsewhere = dir.join("interface.yaml");
    let args = [
        "schemas",
        "--out",
        out.to_str().unwrap(),
        "--asyncapi",
        elsewhere.to_str().unwrap(),
    ];
    succeeds(fulfilment(&settings, &args, &[], ""));
    assert!(elsewhere.is_file(), "--asyncapi says where");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn hash_token_takes_the_secret_on_standard_input() {
    let settings = Settings::load().unwrap();
    let expected = format!("{:x}", Sha256::digest(b"s3cret-token"));
    let printed = succeeds(fulfilment(
        &settings,
        &["hash-token"],
        &[],
        "s3cret-token\n",
    ));
    assert_eq!(printed.trim(), expected);

    // As an argument it still works, with a warning about the shell's history.
    let output = fulfilment(&settings, &["hash-token", "s3cret-token"], &[], "");
    assert_eq!(succeeds(output.clone()).trim(), expected);
    assert!(String::from_utf8_lossy(&output.stderr).contains("history"));

    let empty = fulfilment(&settings, &["hash-token"], &[], "\n");
    assert!(!empty.status.success(), "an empty token is refused");
}

#[test]
fn the_sample_tokens_the_docs_give_sign_in_as_the_sample_people() {
    let settings = Settings::load_from(
        Some("example"),
        PathBuf::from("config"),
        fulfilment::settings::EnvVars::Given(Default::default()),
    )
    .unwrap();
    let people = fulfilment::review::People::from_settings(&settings.review.people);
    for (token, name, role) in [
        ("jo-example-token", "Jo Okafor", "supervisor"),
        ("mia-example-token", "Mia Chen", "customer_service"),
        ("sam-example-token", "Sam Ops", "operations"),
        ("fin-example-token", "Fin Lee", "finance"),
        ("shop-example-token", "Web Shop", "intake"),
    ] {
        let person = people.authenticate(token).expect(token);
        assert_eq!(person.name, name);
        assert!(
            person.may_resolve(role) || role == "intake",
            "{name} is {role}"
        );
    }
    assert!(
        settings.stages.seller.seller().is_some(),
        "documents name a seller"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_as_an_unknown_person_says_where_people_are_configured() {
    let env = TestEnv::new().await;
    let close = ["review", "close", "1", "--as", "Jo Okafor", "--note", "n/a"];
    let output = fulfilment(&env.settings, &close, &[], "");
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(error.contains("FULFILMENT_ENV"), "{error}");
    assert!(error.contains("config/example.toml"), "{error}");

    let example = [("FULFILMENT_ENV", "example".to_owned())];
    let close = ["review", "close", "1", "--as", "Nobody", "--note", "n/a"];
    let output = fulfilment(&env.settings, &close, &example, "");
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        error.contains("the people configured are Jo Okafor"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quick_start_works_as_written() {
    let env = TestEnv::new().await;
    let run = |args: &[&str]| succeeds(fulfilment(&env.settings, args, &[], ""));
    let _pipeline = Process::run(
        &env.settings,
        &[("FULFILMENT__REVIEW__LISTEN", free_address())],
    );
    run(&["seed", "examples/catalogue.json"]);
    run(&["submit", "examples/order.json"]);
    run(&["submit", "examples/orders.json"]);
    run(&["submit", "examples/held-order.json"]);
    env.wait_state("WEB-1001", "handed_over").await;
    env.wait_cases(1).await;
    let held = run(&["status", "WEB-1002"]);
    assert!(
        held.contains("open case   #1 product_not_sellable"),
        "{held}"
    );

    // The sample amendment replaces the discontinued teapot, and the order goes on.
    run(&["amend", "examples/amended-order.json"]);
    env.wait_state("WEB-1002", "handed_over").await;
    let amended = run(&["status", "WEB-1002"]);
    assert!(amended.contains("(version 2)"), "{amended}");
    assert!(
        !amended.contains("open case"),
        "the amendment settled the case:\n{amended}"
    );

    run(&["confirm", "WEB-1001", "--outcome", "delivered"]);
    run(&["confirm", "WEB-1001"]);
    env.wait_state("WEB-1001", "completed").await;
    let status = run(&["status", "WEB-1001"]);
    for part in ["state       completed", "31.99 GBP", "handover"] {
        assert!(status.contains(part), "{part:?} in\n{status}");
    }
    assert!(!status.contains('{'), "no raw JSON:\n{status}");
    let json: serde_json::Value =
        serde_json::from_str(&run(&["status", "WEB-1001", "--json"])).unwrap();
    assert_eq!(json["state"], "completed");

    let dir = scratch();
    run(&["documents", "WEB-1001", "--out", dir.to_str().unwrap()]);
    let pdfs = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(pdfs, 3, "delivery note, packing list, invoice");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_places_orders_that_complete_or_wait_in_review() {
    let env = TestEnv::new().await;
    let vars = [
        ("FULFILMENT__REVIEW__LISTEN", free_address()),
        ("FULFILMENT__METRICS__LISTEN", free_address()),
    ];
    let args = [
        "demo",
        "--orders",
        "16",
        "--rate",
        "40",
        "--acceptance-window-secs",
        "1",
    ];
    let summary = succeeds(fulfilment(&env.settings, &args, &vars, ""));
    // One order in eight has a problem: the 8th and the 16th go to review.
    for part in [
        "placed 16 orders",
        "completed            14",
        "2 open: price_mismatch 1, product_not_sellable 1",
        "/metrics",
    ] {
        assert!(summary.contains(part), "{part:?} in\n{summary}");
    }
    let contact_centre: i64 =
        sqlx::query_scalar("SELECT count(*) FROM orders WHERE body->>'channel' = 'phone'")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert!(contact_centre > 0, "contact-centre orders too");
}
