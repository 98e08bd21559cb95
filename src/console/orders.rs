//! Orders: search by id, customer, state, channel and date, a page at a time; an order's page
//! with its lines, state, every stage record, documents (as PDF downloads), ledger lines,
//! events sent and open cases. Money is shown with its currency.

use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use crate::db;
use crate::review::api::ApiState;

use super::ConsolePath;
use super::filters;
use super::page::{ConsoleError, layout, money, when};
use super::session::Operator;

/// `GET /console/orders`: the search form and one page of matching orders.
pub async fn list(
    State(state): State<ApiState>,
    operator: Operator,
    RawQuery(raw): RawQuery,
) -> Result<Markup, ConsoleError> {
    let fields = filters::query(raw.as_deref());
    let (filter, page, per_page) = filters::orders(&fields)?;
    let mut conn = state.pool.acquire().await?;
    let (orders, total) =
        db::search::orders(&mut conn, &filter, (page - 1) * per_page, per_page).await?;
    let value = |name: &str| fields.get(name).unwrap_or_default().to_owned();
    let link = |to: i64| {
        let mut kept: Vec<(String, String)> = fields
            .0
            .iter()
            .filter(|(k, _)| k != "page")
            .cloned()
            .collect();
        kept.push(("page".into(), to.to_string()));
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(kept)
            .finish();
        format!("/console/orders?{query}")
    };
    let pages = (total + per_page - 1) / per_page;
    Ok(layout(
        "Orders",
        operator.who(),
        html! {
            form.filters #order-search method="get" action="/console/orders" {
                label { "order " input name="order_id" value=(value("order_id")) size="14"; }
                label { "customer " input #customer name="customer_id" value=(value("customer_id")) size="14"; }
                label { "state " input name="state" value=(value("state")) size="12"; }
                label { "channel " input name="channel" value=(value("channel")) size="12"; }
                label { "placed from " input type="date" name="placed_from" value=(value("placed_from")); }
                label { "to " input type="date" name="placed_to" value=(value("placed_to")); }
                button #search type="submit" { "Search" }
            }
            p #order-count { (total) " orders" @if pages > 1 { ", page " (page) " of " (pages) } }
            table #orders {
                thead { tr { th { "order" } th { "customer" } th { "state" } th { "channel" }
                             th { "total" } th { "placed" } th { "last moved" } } }
                tbody { @for o in &orders { tr {
                    td { a.order-link href=(format!("/console/orders/{}", o.order_id)) { (o.order_id) } }
                    td { (o.customer_id) } td { (o.state) } td { (o.channel) }
                    td.money { (money(o.total_minor, &o.currency)) }
                    td { (o.placed_at.map(when).unwrap_or_default()) }
                    td { (when(o.updated_at)) }
                } } }
            }
            nav.pages {
                @if page > 1 { a rel="prev" href=(link(page - 1)) { "← newer" } }
                @if page < pages { a rel="next" href=(link(page + 1)) { "older →" } }
            }
        },
    ))
}

/// `GET /console/orders/{id}`.
pub async fn show(
    State(state): State<ApiState>,
    operator: Operator,
    ConsolePath(order_id): ConsolePath<String>,
) -> Result<Markup, ConsoleError> {
    crate::domain::text::identifier("order_id", &order_id)?;
    let status = crate::status::load(&state.pool, &order_id)
        .await?
        .ok_or_else(|| ConsoleError::NotFound(format!("no order {order_id}")))?;
    let mut conn = state.pool.acquire().await?;
    let stored = db::orders::find(&mut conn, &order_id)
        .await?
        .ok_or_else(|| ConsoleError::NotFound(format!("no order {order_id}")))?;
    let documents = db::search::documents(&mut conn, &order_id).await?;
    let ledger = db::search::ledger(&mut conn, &order_id).await?;
    let events = db::search::events(&mut conn, &order_id).await?;
    let order = &stored.order;
    let currency = order.currency.to_string();
    let m = |minor: i64| money(minor, &currency);
    let channel = serde_json::to_value(order.channel).ok();
    Ok(layout(
        &format!("Order {order_id}"),
        operator.who(),
        html! {
            dl.facts {
                dt { "state" } dd #order-state { (status.state) }
                dt { "version" } dd { (status.version) }
                dt { "customer" } dd { a href=(format!("/console/orders?customer_id={}", order.customer_id)) { (order.customer_id) } }
                dt { "channel" } dd { (channel.as_ref().and_then(|c| c.as_str()).unwrap_or("")) }
                dt { "placed" } dd { (when(order.placed_at)) }
                dt { "total" } dd #order-total { (m(status.total_minor)) " net" }
                dt { "recognised" } dd { (m(status.recognised_minor)) " net" }
                dt { "paid" } dd { (m(status.paid_minor)) }
            }
            h2 { "Lines" }
            table #lines {
                thead { tr { th { "sku" } th { "quantity" } th { "unit price" } th { "line total" } } }
                tbody { @for line in &order.lines { tr {
                    td { (line.sku) } td { (line.quantity) } td.money { (m(line.unit_price_minor)) }
                    td.money { (line.total_minor().map(m).unwrap_or_default()) }
                } } }
            }
            h2 { "Open review cases" }
            @if status.open_cases.is_empty() { p { "None." } }
            ul #open-cases { @for case in &status.open_cases { li {
                a href=(format!("/console/cases/{}", case.id)) { "#" (case.id) }
                " " (case.reason) " (for " (case.required_role) ")"
            } } }
            h2 { "Documents" }
            table #documents {
                thead { tr { th { "kind" } th { "number" } th { "version" } th { "issued" } th { "" } } }
                tbody { @for d in &documents { tr {
                    td { (d.kind) } td { (d.number) } td { (d.version) } td { (when(d.issued_at)) }
                    td {
                        a.download data-kind=(d.kind) download
                          href=(format!("/console/orders/{order_id}/documents/{}", d.number)) { "PDF" }
                        @if d.voided_at.is_some() { " (voided)" }
                    }
                } } }
            }
            h2 { "Stage records" }
            table.timeline {
                thead { tr { th { "when" } th { "stage" } th { "state after" } th { "what" } } }
                tbody { @for e in &status.timeline { tr {
                    td { (when(e.recorded_at)) } td { (e.stage) } td { (e.state_after) }
                    td { (crate::status::summary(&e.detail, &m)) }
                } } }
            }
            h2 { "Ledger" }
            table #ledger {
                thead { tr { th { "posted" } th { "account" } th { "debit" } th { "credit" } th { "memo" } } }
                tbody { @for l in &ledger { tr {
                    td { (when(l.posted_at)) } td { (l.account) }
                    td.money { @if l.debit_minor != 0 { (money(l.debit_minor, &l.currency)) } }
                    td.money { @if l.credit_minor != 0 { (money(l.credit_minor, &l.currency)) } }
                    td { (l.memo) }
                } } }
            }
            h2 { "Events sent" }
            table #events {
                thead { tr { th { "type" } th { "id" } th { "committed" } th { "published" } } }
                tbody { @for e in &events { tr {
                    td { (e.event_type) } td { code { (e.event_id) } } td { (when(e.created_at)) }
                    td { @if e.published { "yes" } @else { "not yet" } }
                } } }
            }
        },
    ))
}

/// `GET /console/orders/{id}/documents/{number}`: the PDF, as a download.
pub async fn document(
    State(state): State<ApiState>,
    _operator: Operator,
    ConsolePath((order_id, number)): ConsolePath<(String, String)>,
) -> Result<Response, ConsoleError> {
    crate::domain::text::identifier("order_id", &order_id)?;
    crate::domain::text::identifier("number", &number)?;
    let mut conn = state.pool.acquire().await?;
    let pdf = db::search::document_pdf(&mut conn, &order_id, &number)
        .await?
        .ok_or_else(|| ConsoleError::NotFound(format!("no document {number} of {order_id}")))?;
    // The number is an identifier (no quotes, no separators), so it may stand in the header.
    let disposition = format!("attachment; filename=\"{number}.pdf\"");
    Ok((
        [
            (header::CONTENT_TYPE, "application/pdf".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        pdf,
    )
        .into_response())
}
