//! The review cases: grouped by reason, stage and role with counts and age, filtered; one case
//! with its raw message, the order's timeline and the audit trail; and the actions, taken
//! through the same desk as the API.

use std::collections::BTreeMap;

use axum::extract::{RawForm, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use maud::{Markup, html};

use crate::db;
use crate::db::review::CaseRow;
use crate::domain::EventType;
use crate::domain::events::Payload;
use crate::review::api::ApiState;
use crate::review::desk::CaseDetail;
use crate::review::{Resolution, ReviewError};

use super::ConsolePath;
use super::filters;
use super::page::{ConsoleError, age, layout, when};
use super::session::{Fields, Operator};

/// The most cases the list shows.
const LIST_LIMIT: i64 = 1000;

/// Cases of one reason, stage and role.
struct Group<'a> {
    reason: &'a str,
    stage: &'a str,
    role: &'a str,
    cases: Vec<&'a CaseRow>,
}

/// `GET /console/cases`: the cases grouped, with the filter form and bulk actions.
pub async fn list(
    State(state): State<ApiState>,
    operator: Operator,
    RawQuery(raw): RawQuery,
) -> Result<Markup, ConsoleError> {
    let fields = filters::query(raw.as_deref());
    let search = filters::cases(&fields, Some("open"))?;
    let mut conn = state.pool.acquire().await?;
    let cases = db::search::cases(&mut conn, &search, LIST_LIMIT).await?;
    let mut groups: BTreeMap<(&str, &str, &str), Group> = BTreeMap::new();
    for case in &cases {
        let key = (
            case.reason.as_str(),
            case.stage.as_str(),
            case.required_role.as_str(),
        );
        groups
            .entry(key)
            .or_insert_with(|| Group {
                reason: key.0,
                stage: key.1,
                role: key.2,
                cases: Vec::new(),
            })
            .cases
            .push(case);
    }
    let value = |name: &str| fields.get(name).unwrap_or_default().to_owned();
    let open = search.status.as_deref() == Some("open");
    Ok(layout(
        "Review cases",
        operator.who(),
        html! {
            form.filters method="get" action="/console/cases" {
                @for (name, label) in [("reason", "reason"), ("stage", "stage"), ("role", "role"),
                                       ("order_id", "order"), ("customer_id", "customer"),
                                       ("older_than_mins", "older than (min)"), ("status", "status")] {
                    label { (label) " " input name=(name) value=(value(name)) size="14"; }
                }
                button type="submit" { "Filter" }
            }
            @if groups.is_empty() { p #no-cases { "No cases match." } }
            @for group in groups.values() {
                (group_section(group, &operator, open))
            }
        },
    ))
}

fn group_section(group: &Group, operator: &Operator, open: bool) -> Markup {
    let key = format!("{} {} {}", group.reason, group.stage, group.role);
    let may_act = open && operator.person.may_resolve(group.role);
    let oldest = group.cases.iter().map(|c| c.created_at).min();
    html! {
        section.group data-group=(key) {
            h2 {
                (group.reason) " · " (group.stage) " · for " (group.role)
                span.count { " — " (group.cases.len()) " cases" }
                @if let Some(oldest) = oldest { span.age { ", oldest " (age(oldest)) } }
            }
            form method="post" action="/console/cases/bulk" {
                input type="hidden" name="csrf" value=(operator.csrf);
                input type="hidden" name="group" value=(key);
                table.cases {
                    thead { tr {
                        @if may_act { th { input type="checkbox" .select-all title="select all"; } }
                        th { "case" } th { "order" } th { "detail" } th { "status" } th { "age" }
                    } }
                    tbody {
                        @for case in &group.cases {
                            tr {
                                @if may_act { td { input type="checkbox" name="case" value=(case.id); } }
                                td { a.case-link href=(format!("/console/cases/{}", case.id)) { "#" (case.id) } }
                                td { @if let Some(order) = &case.order_id {
                                    a href=(format!("/console/orders/{order}")) { (order) } } }
                                td.detail { (crate::domain::text::excerpt(&case.detail, 120)) }
                                td { (case.status) }
                                td { (age(case.created_at)) }
                            }
                        }
                    }
                }
                @if may_act {
                    div.bulk {
                        input name="note" placeholder="note (why)" required;
                        button name="do" value="retry selected" { "Retry selected" }
                        button name="do" value="close selected" { "Close selected" }
                        button.whole name="do" value="retry group" { "Retry all " (group.cases.len()) }
                        button.whole name="do" value="close group" { "Close all " (group.cases.len()) }
                    }
                }
            }
        }
    }
}

/// `GET /console/cases/{id}`.
pub async fn show(
    State(state): State<ApiState>,
    operator: Operator,
    ConsolePath(id): ConsolePath<i64>,
) -> Result<Markup, ConsoleError> {
    case_page(&state, &operator, id, None, None).await
}

/// The case page, with `notice` (what the last action was refused for) and `edit` (the
/// amendment as typed, kept when refused).
async fn case_page(
    state: &ApiState,
    operator: &Operator,
    id: i64,
    notice: Option<&str>,
    edit: Option<&str>,
) -> Result<Markup, ConsoleError> {
    let detail = state.desk.show(id).await?;
    let case = &detail.case;
    let may_act = case.status == "open" && operator.person.may_resolve(&case.required_role);
    let current_order = match (&case.order_id, edit) {
        (_, Some(edit)) => edit.to_owned(),
        (Some(order), None) => {
            let mut conn = state.pool.acquire().await?;
            match db::orders::find(&mut conn, order).await? {
                Some(stored) => serde_json::to_string_pretty(&stored.order).unwrap_or_default(),
                None => String::new(),
            }
        }
        (None, None) => String::new(),
    };
    let schema = crate::contract::payload_schema(EventType::OrderAmended);
    Ok(layout(
        &format!("Case #{id}"),
        operator.who(),
        html! {
            @if let Some(notice) = notice { p.error #refusal { (notice) } }
            dl.facts {
                dt { "status" } dd #case-status { (case.status) }
                dt { "reason" } dd { (case.reason) }
                dt { "stage" } dd { (case.stage) }
                dt { "for role" } dd { (case.required_role) }
                dt { "order" } dd { @if let Some(order) = &case.order_id {
                    a href=(format!("/console/orders/{order}")) { (order) }
                    @if let Some(state) = &detail.order_state { " (" (state) ")" } } }
                dt { "opened" } dd { (when(case.created_at)) " (" (age(case.created_at)) " ago)" }
                dt { "detail" } dd { (case.detail) }
            }
            @if may_act { (actions(operator, id, case.order_id.is_some(), &current_order, &schema)) }
            h2 { "Message" }
            (message(&detail))
            h2 { "Order timeline" }
            table.timeline {
                thead { tr { th { "when" } th { "stage" } th { "state after" } th { "detail" } } }
                tbody { @for e in &detail.timeline { tr {
                    td { (when(e.recorded_at)) } td { (e.stage) } td { (e.state_after) }
                    td { code { (e.detail) } }
                } } }
            }
            h2 { "Audit trail" }
            table #audit {
                thead { tr { th { "when" } th { "action" } th { "by" } th { "note" } } }
                tbody { @for a in &detail.actions { tr {
                    td { (when(a.acted_at)) } td { (a.action) } td { (a.actor) } td { (a.note) }
                } } }
            }
        },
    ))
}

fn actions(
    operator: &Operator,
    id: i64,
    about_an_order: bool,
    order: &str,
    schema: &serde_json::Value,
) -> Markup {
    let action = |name: &str, label: &str| {
        html! {
            form.action method="post" action=(format!("/console/cases/{id}/{name}")) {
                input type="hidden" name="csrf" value=(operator.csrf);
                input name="note" placeholder="note (why)" required;
                button #(format!("{name}-button")) type="submit" { (label) }
            }
        }
    };
    html! {
        section.actions {
            h2 { "Actions" }
            (action("retry", "Retry"))
            @if about_an_order { (action("cancel", "Cancel order")) }
            (action("close", "Close"))
            @if about_an_order {
                form.action #amend method="post" action=(format!("/console/cases/{id}/amend")) {
                    input type="hidden" name="csrf" value=(operator.csrf);
                    label for="order-json" { "Amended order (JSON, checked against "
                        code { "fulfilment.order.amended.v1" } ")" }
                    textarea #order-json name="order" rows="18" cols="80" spellcheck="false" { (order) }
                    p.error #amend-error hidden {}
                    input name="note" placeholder="note (why)" required;
                    button #amend-button type="submit" { "Amend and retry" }
                }
                details { summary { "The event's schema" }
                    pre { (serde_json::to_string_pretty(schema).unwrap_or_default()) } }
            }
        }
    }
}

/// The raw message: body pretty-printed (JSON), as text, or as hex; properties and headers.
fn message(detail: &CaseDetail) -> Markup {
    let body = match &detail.original_body_text {
        Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(json) => serde_json::to_string_pretty(&json).unwrap_or_else(|_| text.clone()),
            Err(_) => text.clone(),
        },
        None => hex_view(
            &base64::engine::general_purpose::STANDARD
                .decode(&detail.original_body_base64)
                .unwrap_or_default(),
        ),
    };
    let headers = detail.original_properties.get("headers");
    let mut properties = detail.original_properties.clone();
    if let Some(map) = properties.as_object_mut() {
        map.remove("headers");
    }
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
    html! {
        h3 { "Body" @if detail.original_body_text.is_none() { " (not UTF-8: hex)" } }
        pre #message-body { (body) }
        h3 { "Properties" }
        pre #message-properties { (pretty(&properties)) }
        h3 { "Headers" }
        pre #message-headers { (headers.map(pretty).unwrap_or_default()) }
    }
}

/// Octets as a hex dump: offset, sixteen octets, and their printable characters.
pub fn hex_view(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .enumerate()
        .map(|(i, chunk)| {
            let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
            let text: String = chunk
                .iter()
                .map(|&b| {
                    if b.is_ascii_graphic() || b == b' ' {
                        b as char
                    } else {
                        '.'
                    }
                })
                .collect();
            format!("{:08x}  {:<47}  {text}", i * 16, hex.join(" "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The amended order as typed, checked as the pipeline checks an `order.amended` event's data
/// (with the case's order id); what is wrong names the field.
pub fn check_amendment(order_id: &str, typed: &str) -> Result<serde_json::Value, String> {
    let mut order: serde_json::Value =
        serde_json::from_str(typed).map_err(|e| format!("the amended order is not JSON: {e}"))?;
    let Some(fields) = order.as_object_mut() else {
        return Err("the amended order must be a JSON object".into());
    };
    fields.insert("order_id".into(), order_id.into());
    let data = serde_json::json!({ "order_id": order_id, "order": order });
    Payload::decode(EventType::OrderAmended, &data)
        .map_err(|e| format!("the amended order does not fit the event's schema: {e}"))?;
    Ok(order)
}

/// `POST /console/cases/{id}/{action}`: retry, amend (`order`), cancel or close, with `note`.
pub async fn act(
    State(state): State<ApiState>,
    operator: Operator,
    ConsolePath((id, action)): ConsolePath<(i64, String)>,
    form: RawForm,
) -> Result<Response, ConsoleError> {
    let fields = Fields::parse(&form);
    operator.check_csrf(&fields)?;
    let note = fields.get("note").unwrap_or_default();
    let typed = fields.get("order");
    let resolution = match action.as_str() {
        "retry" => Resolution::Retry,
        "cancel" => Resolution::Cancel,
        "close" => Resolution::Close,
        "amend" => {
            let case = state.desk.show(id).await?.case;
            let order_id = case.order_id.unwrap_or_default();
            match check_amendment(&order_id, typed.unwrap_or_default()) {
                Ok(order) => Resolution::Amend(order),
                Err(problem) => {
                    // Authority first: who may not act is refused, not helped with the edit.
                    if !operator.person.may_resolve(&case.required_role) {
                        return Err(ReviewError::Forbidden {
                            case: id,
                            required: case.required_role,
                        }
                        .into());
                    }
                    let page = case_page(&state, &operator, id, Some(&problem), typed).await?;
                    return Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response());
                }
            }
        }
        _ => {
            return Err(ConsoleError::NotFound(format!(
                "no action {}",
                crate::domain::text::excerpt(&action, 40)
            )));
        }
    };
    match state
        .desk
        .resolve(id, &operator.person, resolution, note)
        .await
    {
        Ok(_) => Ok(Redirect::to(&format!("/console/cases/{id}")).into_response()),
        Err(e @ (ReviewError::NotOpen(..) | ReviewError::Invalid(_))) => {
            let status = ConsoleError::from(ReviewError::Invalid(String::new())).status();
            let status = if matches!(e, ReviewError::NotOpen(..)) {
                StatusCode::CONFLICT
            } else {
                status
            };
            let told = match &e {
                ReviewError::NotOpen(..) => format!("{e}: someone else acted on it first"),
                _ => e.to_string(),
            };
            let page = case_page(&state, &operator, id, Some(&told), typed).await?;
            Ok((status, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octets_that_are_not_utf8_read_as_a_hex_dump() {
        let dump = hex_view(b"{\"a\":\xff\x00}\n0123456789abcdef");
        let lines: Vec<&str> = dump.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("00000000  7b 22 61 22 3a ff 00 7d 0a 30"));
        assert!(lines[0].ends_with("{\"a\":..}.0123456"), "{dump}");
        assert!(lines[1].starts_with("00000010  37 38 39"), "{dump}");
    }

    #[test]
    fn an_amendment_is_checked_against_the_event_and_names_the_field() {
        let order = |quantity: u32| {
            serde_json::json!({"customer_id": "CUST-042", "channel": "web", "currency": "GBP",
                "placed_at": "2026-11-20T09:00:00Z",
                "lines": [{"sku": "MUG-BLUE", "quantity": quantity, "unit_price_minor": 1250}]})
            .to_string()
        };
        let taken = check_amendment("WEB-1", &order(2)).unwrap();
        assert_eq!(
            taken["order_id"], "WEB-1",
            "the case's order, whatever was typed"
        );
        let zero = check_amendment("WEB-1", &order(0)).unwrap_err();
        assert!(zero.contains("quantity"), "{zero}");
        let not_json = check_amendment("WEB-1", "{\"lines\": [").unwrap_err();
        assert!(
            not_json.starts_with("the amended order is not JSON"),
            "{not_json}"
        );
        let array = check_amendment("WEB-1", "[]").unwrap_err();
        assert_eq!(array, "the amended order must be a JSON object");
    }
}
