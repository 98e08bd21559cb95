//! The web console in a real headless Chromium: sign-in, a failed order's case retried until
//! the order completes, a bulk retry of a group of twenty with its progress, an amendment
//! refused in the page then taken, an order found by customer and its invoice downloaded, a
//! viewer who is offered no actions and refused when forcing one, and forms without their CSRF
//! token refused. The JSON endpoints behind the console are checked alongside.

use fulfilment::pipeline::PipelineOptions;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::browser::Browser;
use crate::helpers::{TestEnv, order_with};

const SERVICE: &str = "tok-console-service";
const SUPERVISOR: &str = "tok-console-supervisor";
const VIEWER: &str = "tok-console-viewer";

async fn console(env: &mut TestEnv) -> String {
    env.start_api(&[
        ("Mia Chen", &["customer_service"], SERVICE),
        ("Jo Okafor", &["supervisor"], SUPERVISOR),
        ("Sam Lee", &["viewer"], VIEWER),
    ])
    .await
}

fn kettle() -> Vec<Value> {
    vec![json!({"sku": "KETTLE-STEEL", "quantity": 1, "unit_price_minor": 3999})]
}

async fn case_id(env: &TestEnv, order_id: &str) -> i64 {
    sqlx::query_scalar("SELECT id FROM review_cases WHERE order_id = $1 ORDER BY id LIMIT 1")
        .bind(order_id)
        .fetch_one(&env.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_is_retried_in_the_browser_and_the_order_completes_and_its_invoice_downloads() {
    let mut env = TestEnv::new().await;
    env.start_pipeline(PipelineOptions::default()).await;
    env.start_customer().await;
    let url = console(&mut env).await;
    env.set_stock("KETTLE-STEEL", 0).await;
    env.submit(&[order_with("WEB-RETRY-1", kettle())]).await;
    env.wait_cases(1).await;
    let id = case_id(&env, "WEB-RETRY-1").await;

    let browser = Browser::start(&url).await;
    // Without a session every page sends the browser to sign in; a wrong token is refused.
    browser.open("/console/cases").await;
    browser.find("#token").await;
    browser.fill("#token", "not-a-token").await;
    browser.click("#sign-in").await;
    browser
        .wait_text("#refusal", |t| t.contains("not valid"))
        .await;
    browser.sign_in(SERVICE).await;
    browser.screenshot("overview").await;

    // The case, grouped by its cause, then its page with the raw message.
    browser.open("/console/cases").await;
    let group = browser.find("section.group").await;
    assert_eq!(
        group.attr("data-group").await.unwrap().as_deref(),
        Some("out_of_stock verify customer_service")
    );
    browser
        .click(&format!("a.case-link[href='/console/cases/{id}']"))
        .await;
    let body = browser.wait_text("#message-body", |t| !t.is_empty()).await;
    assert!(body.contains("WEB-RETRY-1"), "the raw message: {body}");
    assert_eq!(browser.text("#case-status").await.as_deref(), Some("open"));

    // A form without the session's CSRF token is refused, and nothing happens.
    let refused = browser
        .post_form(&format!("/console/cases/{id}/retry"), "note=forged")
        .await;
    assert_eq!(refused, 403);
    assert_eq!(browser.text("#case-status").await.as_deref(), Some("open"));

    // Stock arrives; the case is retried from the page and the order completes.
    env.set_stock("KETTLE-STEEL", 10).await;
    browser
        .fill("form[action$='/retry'] input[name=note]", "restocked")
        .await;
    browser.screenshot("case").await;
    browser.click("#retry-button").await;
    browser.wait_text("#case-status", |t| t == "retried").await;
    assert!(browser.text("#audit").await.unwrap().contains("Mia Chen"));
    // A second click on the case (a colleague's page still showing it open) is told it lost.
    let csrf = browser.csrf().await;
    let late = browser
        .post_form(
            &format!("/console/cases/{id}/retry"),
            &format!("csrf={csrf}&note=late"),
        )
        .await;
    assert_eq!(late, 409, "the case was already retried");
    env.wait_state("WEB-RETRY-1", "completed").await;
    browser.click("a[href='/console/orders/WEB-RETRY-1']").await;
    browser
        .wait_text("#order-state", |t| t == "completed")
        .await;

    // Found by customer; the invoice downloads as the PDF the pipeline issued.
    browser.open("/console/orders").await;
    browser.fill("#customer", "CUST-042").await;
    browser.click("#search").await;
    browser
        .wait_text("#order-count", |t| t.starts_with("1 orders"))
        .await;
    browser
        .click("a.order-link[href='/console/orders/WEB-RETRY-1']")
        .await;
    let total = browser.wait_text("#order-total", |t| !t.is_empty()).await;
    assert_eq!(total, "39.99 GBP net", "money with its currency");
    browser.screenshot("order").await;
    let invoice = browser.find("a.download[data-kind=invoice]").await;
    let href = invoice.attr("href").await.unwrap().unwrap();
    let number = href.rsplit('/').next().unwrap().to_owned();
    invoice.click().await.unwrap();
    let pdf = browser.downloaded(&format!("{number}.pdf")).await;
    let stored: Vec<u8> = sqlx::query_scalar("SELECT pdf FROM documents WHERE number = $1")
        .bind(&number)
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert!(pdf.starts_with(b"%PDF"));
    assert_eq!(
        pdf, stored,
        "the download is the stored invoice, byte for byte"
    );

    // Sign-out ends the session: the pages ask for sign-in again.
    browser.click("form.signout button").await;
    browser.find("#token").await;
    browser.open("/console/cases").await;
    browser.find("#token").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_is_offered_no_action_and_a_forced_one_is_refused() {
    let mut env = TestEnv::new().await;
    env.start_pipeline(PipelineOptions::default()).await;
    let url = console(&mut env).await;
    env.set_stock("KETTLE-STEEL", 0).await;
    env.submit(&[order_with("WEB-VIEW-1", kettle())]).await;
    env.wait_cases(1).await;
    let id = case_id(&env, "WEB-VIEW-1").await;

    let browser = Browser::start(&url).await;
    browser.sign_in(VIEWER).await;
    browser.open("/console/cases").await;
    browser.find("section.group").await;
    assert!(
        !browser.has("input[name=case]").await,
        "no bulk selection for a viewer"
    );
    assert!(
        !browser.has("button[name=do]").await,
        "no bulk buttons for a viewer"
    );
    browser.open(&format!("/console/cases/{id}")).await;
    browser
        .wait_text("#message-body", |t| t.contains("WEB-VIEW-1"))
        .await;
    for button in [
        "#retry-button",
        "#amend-button",
        "#cancel-button",
        "#close-button",
    ] {
        assert!(!browser.has(button).await, "{button} offered to a viewer");
    }

    // Forced, with a valid CSRF token: refused, and the case stays open.
    let csrf = browser.csrf().await;
    let forced = browser
        .post_form(
            &format!("/console/cases/{id}/retry"),
            &format!("csrf={csrf}&note=forced"),
        )
        .await;
    assert_eq!(forced, 403);
    let bulk = browser
        .post_form(
            "/console/cases/bulk",
            &format!("csrf={csrf}&note=forced&do=close+selected&case={id}"),
        )
        .await;
    assert_eq!(bulk, 403);
    let status: String = sqlx::query_scalar("SELECT status FROM review_cases WHERE id = $1")
        .bind(id)
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(status, "open");
    // The sign-out form too needs its token.
    assert_eq!(browser.post_form("/console/sign-out", "").await, 403);
    browser.close().await;

    // The JSON endpoint answers the same to the same person.
    let http = reqwest::Client::new();
    let page = http
        .get(format!("{url}/console/sign-in"))
        .send()
        .await
        .unwrap();
    let policy = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    assert_eq!(page.headers()["cache-control"], "no-store");
    let response = http
        .post(format!("{url}/api/cases/bulk"))
        .bearer_auth(VIEWER)
        .json(&json!({"action": "retry", "note": "forced", "case_ids": [id]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_of_twenty_is_retried_in_bulk_with_its_progress_reaching_twenty() {
    let mut env = TestEnv::new().await;
    env.start_pipeline(PipelineOptions::default()).await;
    env.start_customer().await;
    let url = console(&mut env).await;
    env.set_stock("KETTLE-STEEL", 0).await;
    let orders: Vec<_> = (0..20)
        .map(|i| order_with(&format!("BULK-{i:02}"), kettle()))
        .collect();
    env.submit(&orders).await;
    env.wait_cases(20).await;

    // The JSON endpoints see the same group and orders.
    let http = reqwest::Client::new();
    let listed: Value = http
        .get(format!("{url}/api/cases?reason=out_of_stock"))
        .bearer_auth(VIEWER)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["groups"][0]["cases"], 20);
    assert_eq!(listed["groups"][0]["required_role"], "customer_service");
    let found: Value = http
        .get(format!(
            "{url}/api/orders?customer_id=CUST-042&per_page=5&page=2"
        ))
        .bearer_auth(VIEWER)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found["total"], 20);
    assert_eq!(found["orders"].as_array().unwrap().len(), 5);
    let unauthenticated = http.get(format!("{url}/api/orders")).send().await.unwrap();
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);

    env.set_stock("KETTLE-STEEL", 100).await;
    let browser = Browser::start(&url).await;
    browser.sign_in(SERVICE).await;
    browser.open("/console/cases").await;
    browser
        .wait_text("section.group h2 .count", |t| t.contains("20 cases"))
        .await;
    browser
        .fill("section.group input[name=note]", "restocked")
        .await;
    browser.screenshot("cases").await;
    browser
        .click("section.group button[value='retry group']")
        .await;
    browser.find("#bulk").await;
    browser.wait_text("#bulk-done", |t| t == "20").await;
    let bar = browser
        .client
        .execute("return document.getElementById('bulk-bar').value;", vec![])
        .await
        .unwrap();
    assert_eq!(bar, json!(20), "the progress bar is full");
    browser.screenshot("bulk").await;
    let outcomes = browser
        .client
        .find_all(fantoccini::Locator::Css("#bulk-results td.outcome"))
        .await
        .unwrap();
    assert_eq!(outcomes.len(), 20);
    for outcome in outcomes {
        assert_eq!(outcome.text().await.unwrap(), "done");
    }
    let job = browser.client.current_url().await.unwrap();
    let job = job.path().rsplit('/').next().unwrap().to_owned();
    browser.close().await;

    env.wait_completed(20).await;
    let progress: Value = http
        .get(format!("{url}/api/cases/bulk/{job}"))
        .bearer_auth(VIEWER)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(progress["done"], 20);
    assert_eq!(progress["actor"], "Mia Chen");
    // A second bulk over the same cases: each is reported as already resolved, none twice.
    let again = http
        .post(format!("{url}/api/cases/bulk"))
        .bearer_auth(SERVICE)
        .json(&json!({"action": "retry", "note": "again", "case_ids": [1, 2]}))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::ACCEPTED);
    let again: Value = again.json().await.unwrap();
    let progress = env
        .wait_for("the second bulk to finish", || {
            let (http, at) = (
                http.clone(),
                format!("{url}{}", again["progress"].as_str().unwrap()),
            );
            async move {
                let p: Value = http
                    .get(at)
                    .bearer_auth(VIEWER)
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                (p["done"] == 2).then_some(p)
            }
        })
        .await;
    for result in progress["results"].as_array().unwrap() {
        assert_eq!(result["outcome"], "conflict", "{result}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_amendment_is_refused_in_the_page_and_a_valid_one_taken() {
    let mut env = TestEnv::new().await;
    env.start_pipeline(PipelineOptions::default()).await;
    let url = console(&mut env).await;
    // A price below list on a web order: the supervisor amends it to the list price.
    env.submit(&[order_with(
        "WEB-AMEND-1",
        vec![json!({"sku": "MUG-BLUE", "quantity": 1, "unit_price_minor": 999})],
    )])
    .await;
    env.wait_cases(1).await;
    let id = case_id(&env, "WEB-AMEND-1").await;
    let order = |quantity: u32| {
        json!({"customer_id": "CUST-042", "channel": "web", "currency": "GBP",
            "placed_at": "2026-11-20T09:00:00Z",
            "lines": [{"sku": "MUG-BLUE", "quantity": quantity, "unit_price_minor": 1250}]})
        .to_string()
    };

    let browser = Browser::start(&url).await;
    browser.sign_in(SUPERVISOR).await;
    browser.open(&format!("/console/cases/{id}")).await;
    let prefilled = browser
        .wait_text("#order-json", |t| t.contains("WEB-AMEND-1"))
        .await;
    assert!(
        prefilled.contains("999"),
        "the order as it stands: {prefilled}"
    );
    browser.fill("#amend input[name=note]", "list price").await;

    // Not JSON: the page refuses to send it.
    browser.fill("#order-json", "{\"lines\": [").await;
    browser.click("#amend-button").await;
    browser
        .wait_text("#amend-error", |t| t.starts_with("Not sent"))
        .await;
    // JSON, but a quantity of 0 breaks the event's schema: refused, the edit kept.
    browser.fill("#order-json", &order(0)).await;
    browser.click("#amend-button").await;
    let refusal = browser.wait_text("#refusal", |t| !t.is_empty()).await;
    assert!(refusal.contains("quantity"), "names the field: {refusal}");
    assert_eq!(browser.text("#case-status").await.as_deref(), Some("open"));
    let kept = browser
        .find("#order-json")
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap();
    assert!(kept.contains("\"quantity\":0"), "the edit is kept: {kept}");
    // Valid: taken, and the order goes on at the list price.
    browser.fill("#amend input[name=note]", "list price").await;
    browser.fill("#order-json", &order(1)).await;
    browser.click("#amend-button").await;
    browser.wait_text("#case-status", |t| t == "amended").await;
    browser.close().await;
    env.wait_state("WEB-AMEND-1", "handed_over").await;
    let total: i64 =
        sqlx::query_scalar("SELECT total_minor FROM orders WHERE order_id = 'WEB-AMEND-1'")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(total, 1250);
}
