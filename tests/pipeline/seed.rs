//! `fulfilment seed` against a real database: a file with a bad record anywhere, a record listed
//! twice, or stock for a product that exists nowhere leaves the database exactly as it was, and
//! the error names the record and the field.

use std::path::PathBuf;

use fulfilment::domain::catalogue::Catalogue;
use fulfilment::seed::{self, SeedError};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::TestEnv;

/// Every reference table as one text, to compare before and after.
async fn snapshot(pool: &PgPool) -> String {
    sqlx::query_scalar(
        "SELECT concat_ws(' | ',
           (SELECT string_agg(c::TEXT, ',' ORDER BY customer_id) FROM customers c),
           (SELECT string_agg(p::TEXT, ',' ORDER BY sku) FROM products p),
           (SELECT string_agg(s::TEXT, ',' ORDER BY sku) FROM stock s),
           (SELECT string_agg(a::TEXT, ',' ORDER BY agent_id) FROM agents a),
           (SELECT string_agg(t::TEXT, ',' ORDER BY code) FROM delivery_terms t))",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

fn product(sku: &str, price_minor: i64) -> Value {
    json!({"sku": sku, "name": "Jug", "kind": "goods", "price_minor": price_minor,
           "currency": "GBP", "tax_rate_bp": 2000, "recognition": "on_dispatch"})
}

/// A file that changes records already there and adds new ones, around `middle`.
fn file_around(middle: Value) -> Value {
    json!({
        "customers": [{"customer_id": "CUST-042", "name": "Someone Else", "identity_status": "unverified"},
                      {"customer_id": "CUST-900", "name": "New Customer", "identity_status": "verified"}],
        "products": [product("MUG-BLUE", 1), middle, product("JUG-1", 900)],
        "stock": [{"sku": "MUG-BLUE", "available": 1}, {"sku": "JUG-1", "available": 5}],
        "agents": [{"agent_id": "AG-7", "name": "Sam", "max_discount_bp": 0, "max_order_value_minor": 1}],
        "delivery_terms": [{"code": "NEW-TERMS", "description": "d", "ownership_passes": "on_delivery", "carrier": "c"}],
    })
}

fn write(dir: &std::path::Path, name: &str, content: &Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec_pretty(content).unwrap()).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_record_in_the_middle_writes_nothing() {
    let env = TestEnv::new().await;
    let before = snapshot(&env.pool).await;
    let dir = std::env::temp_dir().join(format!("seed-{}", env.settings.amqp.namespace));
    std::fs::create_dir_all(&dir).unwrap();

    // Refused while reading: the record and the field are named, nothing is written.
    let bad = write(&dir, "bad.json", &file_around(product("MUG-RED", -5)));
    let error = seed::read(&bad).unwrap_err().to_string();
    assert!(
        error.contains(
            "products[1] (sku \"MUG-RED\"): price_minor: must be between 0 and 1000000000000000"
        ),
        "{error}"
    );
    let twice = write(&dir, "twice.json", &file_around(product("JUG-1", 5)));
    let error = seed::read(&twice).unwrap_err().to_string();
    assert!(
        error.contains("products[1] and products[2] both have sku \"JUG-1\""),
        "{error}"
    );
    let mut nul = file_around(product("MUG-RED", 5));
    nul["agents"][0]["agent_id"] = json!("AG\u{0}7");
    let error = seed::read(&write(&dir, "nul.json", &nul))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(
            "agents[0] (agent_id \"AG\\u{0}7\"): agent_id: must not contain control characters"
        ),
        "{error}"
    );
    let mut shape = file_around(product("MUG-RED", 5));
    shape["products"][1]["tax_rate_bp"] = json!("twenty");
    let error = seed::read(&write(&dir, "shape.json", &shape))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("products[1].tax_rate_bp: invalid type"),
        "{error}"
    );

    // Refused while loading, after the customers and products before it were written: the
    // transaction rolls them back.
    let mut unknown = file_around(product("MUG-RED", 5));
    unknown["stock"] =
        json!([{"sku": "MUG-BLUE", "available": 1}, {"sku": "NOWHERE-1", "available": 3}]);
    let catalogue: Catalogue = serde_json::from_value(unknown).unwrap();
    let error = seed::apply(&env.pool, &catalogue).await.unwrap_err();
    assert!(matches!(error, SeedError::Invalid(_)), "{error}");
    assert!(
        error.to_string().contains(
            "stock[1] (sku \"NOWHERE-1\"): sku: no product with this sku in the file or in the database"
        ),
        "{error}"
    );
    let mut service = file_around(product("MUG-RED", 5));
    service["stock"] = json!([{"sku": "INSTALL-SERVICE", "available": 3}]);
    let catalogue: Catalogue = serde_json::from_value(service).unwrap();
    let error = seed::apply(&env.pool, &catalogue)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("stock[0] (sku \"INSTALL-SERVICE\"): sku: only goods have stock"),
        "{error}"
    );
    // Checked again when applied directly, without reading a file.
    let catalogue: Catalogue = serde_json::from_value(file_around(product("MUG-RED", -5))).unwrap();
    assert!(seed::apply(&env.pool, &catalogue).await.is_err());

    assert_eq!(snapshot(&env.pool).await, before, "nothing was written");

    // The same file without the bad record loads whole, stock for a product already in the
    // database included.
    let mut good = file_around(product("MUG-RED", 5));
    good["stock"] =
        json!([{"sku": "KETTLE-STEEL", "available": 7}, {"sku": "JUG-1", "available": 5}]);
    let catalogue = seed::read(&write(&dir, "good.json", &good)).unwrap();
    seed::apply(&env.pool, &catalogue).await.unwrap();
    let stock: Vec<(String, i32)> = sqlx::query_as(
        "SELECT sku, available FROM stock WHERE sku IN ('KETTLE-STEEL', 'JUG-1') ORDER BY sku",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap();
    assert_eq!(
        stock,
        [("JUG-1".to_owned(), 5), ("KETTLE-STEEL".to_owned(), 7)]
    );
    assert_ne!(snapshot(&env.pool).await, before);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_toml_file_is_checked_the_same_way() {
    let env = TestEnv::new().await;
    let dir = std::env::temp_dir().join(format!("seed-{}", env.settings.amqp.namespace));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        "[[agents]]\nagent_id = \"AG-9\"\nname = \"\"\nmax_discount_bp = 0\nmax_order_value_minor = 1\n\n\
         [[agents]]\nagent_id = \"AG-9\"\nname = \"Jo\"\nmax_discount_bp = 0\nmax_order_value_minor = 1\n",
    )
    .unwrap();
    let error = seed::read(&path).unwrap_err().to_string();
    assert!(
        error.contains("agents[0] (agent_id \"AG-9\"): name: must not be empty"),
        "{error}"
    );
    assert!(
        error.contains("agents[0] and agents[1] both have agent_id \"AG-9\""),
        "{error}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
