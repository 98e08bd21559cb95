//! Loading the reference data a batch names, in one statement. The shared rows a stage moves
//! (stock it allocates, document number sequences) are locked here, in key order, so that two
//! batches taking the same rows always take them in the same order.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{PgConnection, Row};

use crate::domain::catalogue::{Agent, DeliveryTerms, IdentityStatus, Product};
use crate::domain::documents::DocumentKind;
use crate::stages::reference::{CustomerDetails, CustomerRecord, KnownPayment};
use crate::stages::{Needs, Reference, StockUse};

/// What a batch names: the keys of the reference data to load.
#[derive(Debug, Clone, Default)]
pub struct ReferenceKeys {
    /// Products (order lines).
    pub skus: HashSet<String>,
    /// Customers.
    pub customers: HashSet<String>,
    /// Agents.
    pub agents: HashSet<String>,
    /// Delivery terms codes.
    pub terms: HashSet<String>,
    /// Payment references.
    pub payments: HashSet<String>,
}

fn sorted(set: &HashSet<String>) -> Vec<String> {
    let mut keys: Vec<String> = set.iter().cloned().collect();
    keys.sort();
    keys
}

/// The reference data `keys` name, as far as `needs` asks for it.
pub async fn load_reference(
    conn: &mut PgConnection,
    needs: &Needs,
    keys: &ReferenceKeys,
) -> anyhow::Result<Reference> {
    let row = sqlx::query(
        "WITH related AS (SELECT coalesce(array_agg(DISTINCT r->>'sku'), '{}') AS skus
           FROM products p, jsonb_array_elements(p.related) AS r
           WHERE $2 AND p.sku = ANY($1::text[])),
         locked_stock AS (SELECT sku, available FROM stock
           WHERE $3 AND sku = ANY($1::text[]) ORDER BY sku FOR UPDATE),
         read_stock AS (SELECT sku, available FROM stock
           WHERE $4 AND sku = ANY($1::text[])),
         sequences AS (SELECT kind, next_value FROM document_sequences
           WHERE $5 ORDER BY kind FOR UPDATE)
         SELECT
           (SELECT coalesce(jsonb_agg(to_jsonb(p) - 'updated_at'), '[]') FROM products p
             WHERE $6 AND (p.sku = ANY($1::text[]) OR p.sku = ANY((SELECT skus FROM related)::text[])))
             AS products,
           (SELECT coalesce(jsonb_agg(jsonb_build_array(customer_id, identity_status, erased_at,
               payment_terms_days, CASE WHEN $12 THEN jsonb_build_array(name, billing_address,
               delivery_address) END)), '[]')
             FROM customers WHERE $7 AND customer_id = ANY($8::text[])) AS customers,
           (SELECT coalesce(jsonb_agg(to_jsonb(a)), '[]') FROM agents a
             WHERE $7 AND agent_id = ANY($9::text[])) AS agents,
           (SELECT coalesce(jsonb_agg(to_jsonb(t)), '[]') FROM delivery_terms t
             WHERE $7 AND code = ANY($10::text[])) AS terms,
           (SELECT coalesce(jsonb_agg(jsonb_build_array(sku, available)), '[]')
             FROM (SELECT * FROM locked_stock UNION ALL SELECT * FROM read_stock) AS s) AS stock,
           (SELECT coalesce(jsonb_agg(jsonb_build_array(kind, next_value)), '[]') FROM sequences)
             AS sequences,
           (SELECT coalesce(jsonb_agg(jsonb_build_array(customer_id, sku)), '[]') FROM customer_skus
             WHERE $2 AND customer_id = ANY($8::text[]) AND sku = ANY((SELECT skus FROM related)::text[]))
             AS bought,
           (SELECT coalesce(jsonb_agg(jsonb_build_array(payment_reference, order_id, amount_minor)), '[]')
             FROM payments WHERE payment_reference = ANY($11::text[])) AS payments",
    )
    .bind(sorted(&keys.skus))
    .bind(needs.related)
    .bind(needs.stock == StockUse::Lock)
    .bind(needs.stock == StockUse::Read)
    .bind(needs.sequences)
    .bind(needs.products || needs.related)
    .bind(needs.parties || needs.related)
    .bind(sorted(&keys.customers))
    .bind(sorted(&keys.agents))
    .bind(sorted(&keys.terms))
    .bind(if needs.payments {
        sorted(&keys.payments)
    } else {
        Vec::new()
    })
    .bind(needs.customer_details)
    .fetch_one(conn)
    .await?;
    crate::metrics::statements(1);
    reference_from(&row)
}

/// A customer as loaded: id, identity status, when erased, payment terms, and when asked for,
/// name and addresses.
type CustomerRow = (
    String,
    IdentityStatus,
    Option<DateTime<Utc>>,
    u32,
    Option<(Option<String>, Option<String>, Option<String>)>,
);

fn reference_from(row: &sqlx::postgres::PgRow) -> anyhow::Result<Reference> {
    let products: Json<Vec<Product>> = row.try_get("products")?;
    let customers: Json<Vec<CustomerRow>> = row.try_get("customers")?;
    let agents: Json<Vec<Agent>> = row.try_get("agents")?;
    let terms: Json<Vec<DeliveryTerms>> = row.try_get("terms")?;
    let stock: Json<Vec<(String, i64)>> = row.try_get("stock")?;
    let sequences: Json<Vec<(String, i64)>> = row.try_get("sequences")?;
    let bought: Json<Vec<(String, String)>> = row.try_get("bought")?;
    let payments: Json<Vec<(String, String, i64)>> = row.try_get("payments")?;
    let mut bought_by: HashMap<String, HashSet<String>> = HashMap::new();
    for (customer, sku) in bought.0 {
        bought_by.entry(customer).or_default().insert(sku);
    }
    Ok(Reference {
        products: products.0.into_iter().map(|p| (p.sku.clone(), p)).collect(),
        customers: customers
            .0
            .into_iter()
            .map(
                |(id, identity_status, erased_at, payment_terms_days, details)| {
                    let record = CustomerRecord {
                        identity_status,
                        erased_at,
                        payment_terms_days,
                        details: details.map(|(name, billing_address, delivery_address)| {
                            CustomerDetails {
                                name,
                                billing_address,
                                delivery_address,
                            }
                        }),
                    };
                    (id, record)
                },
            )
            .collect(),
        agents: agents
            .0
            .into_iter()
            .map(|a| (a.agent_id.clone(), a))
            .collect(),
        terms: terms.0.into_iter().map(|t| (t.code.clone(), t)).collect(),
        stock: stock.0.into_iter().collect(),
        next_numbers: sequences
            .0
            .into_iter()
            .filter_map(|(kind, next)| Some((DocumentKind::parse(&kind)?, next)))
            .collect(),
        bought: bought_by,
        payments: payments
            .0
            .into_iter()
            .map(|(reference, order_id, amount_minor)| {
                let known = KnownPayment {
                    order_id,
                    amount_minor,
                };
                (reference, known)
            })
            .collect(),
    })
}
