//! The overview page: orders by state with the oldest wait, open cases by reason, queue depths,
//! unpublished events, pending timers and completions over the last minutes. The page's script
//! refreshes it by itself.

use axum::extract::State;
use maud::{Markup, html};

use crate::db;
use crate::review::api::ApiState;

use super::page::{ConsoleError, age, layout};
use super::session::Operator;

/// Minutes of completions shown.
const MINUTES: i32 = 10;

/// `GET /console`.
pub async fn page(
    State(state): State<ApiState>,
    operator: Operator,
) -> Result<Markup, ConsoleError> {
    let queues = state.desk.link().queue_counts().await;
    let overview = crate::overview::take(&state.pool, queues).await?;
    let mut conn = state.pool.acquire().await?;
    let completed = db::search::completed_per_minute(&mut conn, MINUTES).await?;
    let peak = completed.iter().copied().max().unwrap_or(0).max(1);
    Ok(layout(
        "Overview",
        operator.who(),
        html! {
            div #live data-refresh="5000" {
                p.hint { "Taken " (overview.at.format("%H:%M:%SZ")) "; refreshes every 5 s." }
                div.panels {
                    section {
                        h2 { "Orders by state" }
                        table #states {
                            thead { tr { th { "state" } th { "orders" } th { "oldest waiting" } } }
                            tbody { @for s in &overview.orders { tr {
                                td { a href=(format!("/console/orders?state={}", s.state)) { (s.state) } }
                                td { (s.orders) } td { (age(s.oldest_since)) }
                            } } }
                        }
                    }
                    section {
                        h2 { "Open review cases" }
                        table #open-by-reason {
                            thead { tr { th { "reason" } th { "for" } th { "cases" } th { "oldest" } } }
                            tbody { @for c in &overview.open_cases { tr {
                                td { a href=(format!("/console/cases?reason={}", c.reason)) { (c.reason) } }
                                td { (c.required_role) } td { (c.cases) } td { (age(c.oldest_opened_at)) }
                            } } }
                        }
                    }
                    section {
                        h2 { "Completed per minute" }
                        div.bars #throughput {
                            @for n in &completed {
                                span.bar style=(format!("height: {}%", 100 * n / peak)) title=(n) {}
                            }
                        }
                        p.hint { "Last " (MINUTES) " minutes, oldest first: " (completed.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(" · ")) }
                        h2 { "Backlogs" }
                        p { (overview.outbox.unsent) " events not yet published"
                            @if let Some(at) = overview.outbox.oldest_unsent_at { ", oldest " (age(at)) } }
                        p { (overview.timers.pending) " timers pending" }
                    }
                }
                h2 { "Queues" }
                @if let Some(error) = &overview.broker_error { p.error { "The broker could not be asked: " (error) } }
                table #queues {
                    thead { tr { th { "queue" } th { "ready" } th { "consumers" } } }
                    tbody { @for q in &overview.queues { tr {
                        td { (q.queue) } td { (q.ready) } td { (q.consumers) }
                    } } }
                }
            }
        },
    ))
}
