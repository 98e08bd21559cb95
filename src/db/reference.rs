//! Reference data: customers, products, stock, agents and delivery terms.

use std::collections::HashMap;

use sqlx::{PgConnection, Row};

use anyhow::Context;

use crate::domain::catalogue::{
    Agent, Catalogue, Customer, DeliveryTerms, IdentityStatus, OwnershipPasses, Product,
    ProductKind, StockLevel,
};

/// Inserts or updates the customers, products, agents and delivery terms in `catalogue` (stock
/// is [`set_stock`]'s, once the products it is for are known to exist). A customer whose personal
/// data was erased is left erased. Returns the ids of the customers so left.
pub async fn upsert_records(
    conn: &mut PgConnection,
    catalogue: &Catalogue,
) -> anyhow::Result<Vec<String>> {
    let left_erased = upsert_customers(conn, catalogue)
        .await
        .context("writing customers")?;
    for p in &catalogue.products {
        upsert_product(conn, p).await.context("writing products")?;
    }
    upsert_agents(conn, catalogue)
        .await
        .context("writing agents")?;
    upsert_delivery_terms(conn, catalogue)
        .await
        .context("writing delivery terms")?;
    Ok(left_erased)
}

/// Sets stock levels (not added to what is there).
pub async fn set_stock(conn: &mut PgConnection, stock: &[StockLevel]) -> anyhow::Result<()> {
    for s in stock {
        let available = i32::try_from(s.available)
            .with_context(|| format!("stock of {} does not fit the database", s.sku))?;
        sqlx::query(
            "INSERT INTO stock (sku, available) VALUES ($1, $2)
             ON CONFLICT (sku) DO UPDATE SET available = $2, updated_at = now()",
        )
        .bind(&s.sku)
        .bind(available)
        .execute(&mut *conn)
        .await
        .context("writing stock")?;
    }
    Ok(())
}

/// The kind of each product among `skus` that exists.
pub async fn product_kinds(
    conn: &mut PgConnection,
    skus: &[String],
) -> sqlx::Result<HashMap<String, ProductKind>> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT sku, kind FROM products WHERE sku = ANY($1)")
            .bind(skus)
            .fetch_all(conn)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(sku, kind)| (sku, kind_from_str(&kind)))
        .collect())
}

async fn upsert_customers(
    conn: &mut PgConnection,
    catalogue: &Catalogue,
) -> anyhow::Result<Vec<String>> {
    let mut left_erased = Vec::new();
    for c in &catalogue.customers {
        let written = sqlx::query(
            "INSERT INTO customers (customer_id, name, email, identity_status, billing_address,
               delivery_address, payment_terms_days) VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (customer_id) DO UPDATE SET name = $2, email = $3, identity_status = $4,
               billing_address = $5, delivery_address = $6, payment_terms_days = $7,
               updated_at = now() WHERE customers.erased_at IS NULL",
        )
        .bind(&c.customer_id)
        .bind(&c.name)
        .bind(&c.email)
        .bind(identity_str(c.identity_status))
        .bind(&c.billing_address)
        .bind(&c.delivery_address)
        .bind(c.payment_terms_days as i32)
        .execute(&mut *conn)
        .await?;
        if written.rows_affected() == 0 {
            left_erased.push(c.customer_id.clone());
        }
    }
    Ok(left_erased)
}

async fn upsert_agents(conn: &mut PgConnection, catalogue: &Catalogue) -> anyhow::Result<()> {
    for a in &catalogue.agents {
        sqlx::query(
            "INSERT INTO agents (agent_id, name, max_discount_bp, max_order_value_minor)
             VALUES ($1, $2, $3, $4) ON CONFLICT (agent_id) DO UPDATE
             SET name = $2, max_discount_bp = $3, max_order_value_minor = $4",
        )
        .bind(&a.agent_id)
        .bind(&a.name)
        .bind(a.max_discount_bp as i32)
        .bind(a.max_order_value_minor)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn upsert_delivery_terms(
    conn: &mut PgConnection,
    catalogue: &Catalogue,
) -> anyhow::Result<()> {
    for t in &catalogue.delivery_terms {
        sqlx::query(
            "INSERT INTO delivery_terms (code, description, ownership_passes, carrier, carrier_service)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (code) DO UPDATE
             SET description = $2, ownership_passes = $3, carrier = $4, carrier_service = $5",
        )
        .bind(&t.code)
        .bind(&t.description)
        .bind(ownership_str(t.ownership_passes))
        .bind(&t.carrier)
        .bind(&t.carrier_service)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn upsert_product(conn: &mut PgConnection, p: &Product) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO products (sku, name, kind, sellable, price_minor, currency, tax_rate_bp,
           preparation_checks, recognition, service_period_secs, service_instalments,
           lead_time_days, related, weight_grams)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (sku) DO UPDATE SET name = $2, kind = $3, sellable = $4, price_minor = $5,
           currency = $6, tax_rate_bp = $7, preparation_checks = $8, recognition = $9,
           service_period_secs = $10, service_instalments = $11, lead_time_days = $12,
           related = $13, weight_grams = $14, updated_at = now()",
    )
    .bind(&p.sku)
    .bind(&p.name)
    .bind(kind_str(p.kind))
    .bind(p.sellable)
    .bind(p.price_minor)
    .bind(p.currency.as_str())
    .bind(p.tax_rate_bp as i32)
    .bind(&p.preparation_checks)
    .bind(p.recognition.as_str())
    .bind(p.service_period_secs)
    .bind(p.service_instalments.map(|n| n as i32))
    .bind(p.lead_time_days as i32)
    .bind(serde_json::to_value(&p.related)?)
    .bind(p.weight_grams.map(|g| g as i32))
    .execute(conn)
    .await?;
    Ok(())
}

/// A customer record; `None` for an unknown customer and for one whose personal data was erased.
pub async fn customer(conn: &mut PgConnection, id: &str) -> anyhow::Result<Option<Customer>> {
    let row = sqlx::query(
        "SELECT customer_id, name, email, identity_status, billing_address, delivery_address,
           payment_terms_days FROM customers WHERE customer_id = $1 AND erased_at IS NULL",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        let status: String = r.try_get("identity_status")?;
        Ok(Customer {
            customer_id: r.try_get("customer_id")?,
            name: r.try_get("name")?,
            email: r.try_get("email")?,
            identity_status: if status == "verified" {
                IdentityStatus::Verified
            } else {
                IdentityStatus::Unverified
            },
            billing_address: r.try_get("billing_address")?,
            delivery_address: r.try_get("delivery_address")?,
            payment_terms_days: r.try_get::<i32, _>("payment_terms_days")?.max(0) as u32,
        })
    })
    .transpose()
}

/// The products with these SKUs, by SKU (missing SKUs are absent).
pub async fn products(
    conn: &mut PgConnection,
    skus: &[String],
) -> anyhow::Result<HashMap<String, Product>> {
    let rows = sqlx::query(
        "SELECT sku, name, kind, sellable, price_minor, currency, tax_rate_bp, preparation_checks,
           recognition, service_period_secs, service_instalments, lead_time_days, related,
           weight_grams
         FROM products WHERE sku = ANY($1)",
    )
    .bind(skus)
    .fetch_all(conn)
    .await?;
    let mut products = HashMap::new();
    for r in rows {
        let product = product_from_row(&r)?;
        products.insert(product.sku.clone(), product);
    }
    Ok(products)
}

fn product_from_row(r: &sqlx::postgres::PgRow) -> anyhow::Result<Product> {
    let kind: String = r.try_get("kind")?;
    let recognition: String = r.try_get("recognition")?;
    let currency: String = r.try_get("currency")?;
    let related: serde_json::Value = r.try_get("related")?;
    Ok(Product {
        sku: r.try_get("sku")?,
        name: r.try_get("name")?,
        kind: kind_from_str(&kind),
        sellable: r.try_get("sellable")?,
        price_minor: r.try_get("price_minor")?,
        currency: crate::domain::Currency::parse(&currency)?,
        tax_rate_bp: r.try_get::<i32, _>("tax_rate_bp")? as u32,
        preparation_checks: r.try_get("preparation_checks")?,
        recognition: serde_json::from_value(serde_json::Value::String(recognition))?,
        service_period_secs: r.try_get("service_period_secs")?,
        service_instalments: r
            .try_get::<Option<i32>, _>("service_instalments")?
            .map(|n| n as u32),
        lead_time_days: r.try_get::<i32, _>("lead_time_days")? as u32,
        related: serde_json::from_value(related)?,
        weight_grams: r
            .try_get::<Option<i32>, _>("weight_grams")?
            .map(|g| g as u32),
    })
}

/// Units available per SKU (SKUs without a stock row are absent).
pub async fn stock(conn: &mut PgConnection, skus: &[String]) -> sqlx::Result<HashMap<String, i64>> {
    let rows: Vec<(String, i32)> =
        sqlx::query_as("SELECT sku, available FROM stock WHERE sku = ANY($1)")
            .bind(skus)
            .fetch_all(conn)
            .await?;
    Ok(rows.into_iter().map(|(s, n)| (s, i64::from(n))).collect())
}

/// An agent.
pub async fn agent(conn: &mut PgConnection, id: &str) -> sqlx::Result<Option<Agent>> {
    let row: Option<(String, String, i32, i64)> = sqlx::query_as(
        "SELECT agent_id, name, max_discount_bp, max_order_value_minor FROM agents WHERE agent_id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(agent_id, name, bp, max)| Agent {
        agent_id,
        name,
        max_discount_bp: bp as u32,
        max_order_value_minor: max,
    }))
}

/// Delivery terms by code.
pub async fn delivery_terms(
    conn: &mut PgConnection,
    code: &str,
) -> sqlx::Result<Option<DeliveryTerms>> {
    let row: Option<(String, String, String, String, Option<String>)> = sqlx::query_as(
        "SELECT code, description, ownership_passes, carrier, carrier_service FROM delivery_terms
         WHERE code = $1",
    )
    .bind(code)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(
        |(code, description, passes, carrier, carrier_service)| DeliveryTerms {
            code,
            description,
            ownership_passes: if passes == "on_delivery" {
                OwnershipPasses::OnDelivery
            } else {
                OwnershipPasses::OnDispatch
            },
            carrier,
            carrier_service,
        },
    ))
}

/// Which of `skus` the customer has ever ordered (in any order, any version).
pub async fn skus_bought_by(
    conn: &mut PgConnection,
    customer_id: &str,
    skus: &[String],
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT sku FROM customer_skus WHERE customer_id = $1 AND sku = ANY($2)")
        .bind(customer_id)
        .bind(skus)
        .fetch_all(conn)
        .await
}

fn identity_str(s: IdentityStatus) -> &'static str {
    match s {
        IdentityStatus::Verified => "verified",
        IdentityStatus::Unverified => "unverified",
    }
}

fn ownership_str(o: OwnershipPasses) -> &'static str {
    match o {
        OwnershipPasses::OnDispatch => "on_dispatch",
        OwnershipPasses::OnDelivery => "on_delivery",
    }
}

fn kind_from_str(kind: &str) -> ProductKind {
    match kind {
        "service" => ProductKind::Service,
        _ => ProductKind::Goods,
    }
}

fn kind_str(k: ProductKind) -> &'static str {
    match k {
        ProductKind::Goods => "goods",
        ProductKind::Service => "service",
    }
}
