//! Per-order partitions across processes (`amqp.partitions`): two `fulfilment run` processes
//! share a stage's partitions out between them, each order's events are handled in the order
//! they were sent, and when one process dies the other takes its partitions over.

#[path = "pipeline/helpers.rs"]
#[allow(dead_code)]
mod helpers;
#[path = "support/process.rs"]
#[allow(dead_code)]
mod process;

use std::collections::HashSet;

use fulfilment::domain::OrderId;
use fulfilment::domain::events::ConfirmationOutcome;
use helpers::{TestEnv, order};
use process::{Process, free_address};
use sqlx::PgPool;

/// Partitions of each stage in the test.
const PARTITIONS: u16 = 4;

/// How many orders the test places.
const ORDERS: usize = 40;

/// A pipeline process with partitions, serving its metrics on an address of its own.
fn worker(env: &TestEnv) -> (Process, String) {
    let metrics = free_address();
    let process = Process::run(
        &env.settings,
        &[
            ("FULFILMENT__AMQP__PARTITIONS", PARTITIONS.to_string()),
            ("FULFILMENT__METRICS__LISTEN", metrics.clone()),
            ("FULFILMENT__REVIEW__LISTEN", free_address()),
        ],
    );
    (process, metrics)
}

/// Deliveries of `stage` the process serving `metrics` handled, from its Prometheus page.
async fn handled(metrics: &str, stage: &str) -> f64 {
    let Ok(response) = reqwest::get(format!("http://{metrics}/metrics")).await else {
        return 0.0;
    };
    let page = response.text().await.unwrap_or_default();
    page.lines()
        .filter(|l| l.starts_with("fulfilment_deliveries_total{"))
        .filter(|l| l.contains(&format!("stage=\"{stage}\"")) && l.contains("outcome=\"handled\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The lines of a process's log about taking and letting go of partitions.
fn partition_lines(log: &str) -> String {
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("partition")).collect();
    lines.join("\n")
}

/// Orders handed over and not yet answered.
async fn handed_over(pool: &PgPool, answered: &HashSet<String>) -> Vec<String> {
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT order_id FROM orders WHERE state = 'handed_over' ORDER BY 1")
            .fetch_all(pool)
            .await
            .unwrap();
    ids.into_iter()
        .filter(|id| !answered.contains(id))
        .collect()
}

/// Whether every partition queue of every stage has one consumer and no more.
async fn each_partition_taken_once(env: &TestEnv) -> bool {
    let channel = env.client.connection().create_channel().await.unwrap();
    for stage in fulfilment::domain::StageName::ALL {
        for k in 0..PARTITIONS {
            let queue = env.topology.partition_queue(stage, k);
            if env
                .topology
                .counts(&channel, &queue)
                .await
                .unwrap()
                .consumers
                != 1
            {
                return false;
            }
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_partitions_keep_each_orders_order_and_take_over_from_each_other() {
    let env = TestEnv::with(|s| s.amqp.partitions = PARTITIONS).await;
    let (first, first_metrics) = worker(&env);
    let (second, second_metrics) = worker(&env);
    env.wait_for("both processes to take their partitions", || async {
        each_partition_taken_once(&env).await.then_some(())
    })
    .await;

    // Each order's customer says "delivered" and then "accepted", one right after the other, as
    // soon as the order is handed over: handled the other way round, the acceptance would come
    // before the receipt.
    let orders: Vec<_> = (0..ORDERS)
        .map(|n| order(&format!("PART-{n:03}"), n as i64))
        .collect();
    env.submit(&orders).await;
    let mut answered = HashSet::new();
    let mut first = Some(first);
    while answered.len() < ORDERS {
        let ready = env
            .wait_for("orders handed over", || async {
                let ready = handed_over(&env.pool, &answered).await;
                (!ready.is_empty()).then_some(ready)
            })
            .await;
        for id in ready {
            let order_id = OrderId::parse(&id).unwrap();
            for outcome in [
                ConfirmationOutcome::Delivered,
                ConfirmationOutcome::Accepted,
            ] {
                env.client
                    .confirm(order_id.clone(), outcome, None)
                    .await
                    .unwrap();
            }
            answered.insert(id);
        }
        if answered.len() >= ORDERS / 2 && first.is_some() {
            // Both processes handled some of the customers' answers before one dies.
            let both = env
                .wait_until(|| async {
                    let a = handled(&first_metrics, "confirm").await;
                    let b = handled(&second_metrics, "confirm").await;
                    (a > 0.0 && b > 0.0).then_some(())
                })
                .await;
            let killed = first.take().unwrap();
            assert!(
                both.is_some(),
                "both processes handle their partitions:\n{}\n{}",
                partition_lines(&killed.log()),
                partition_lines(&second.log())
            );
            // SAFETY: signalling a child this test owns.
            unsafe { libc::kill(killed.child.id() as libc::pid_t, libc::SIGKILL) };
        }
    }
    env.wait_completed(ORDERS as i64).await;
    // The survivor takes each stage's partitions at its next look at that stage.
    env.wait_for("the survivor to take every partition", || async {
        each_partition_taken_once(&env).await.then_some(())
    })
    .await;
    assert!(second.log().contains("took a partition"));

    // In each order's timeline, the receipt comes before the acceptance it preceded.
    let rows: Vec<(String, bool)> = sqlx::query_as(
        "SELECT order_id, detail ? 'receipt' FROM stage_records
         WHERE stage = 'confirm' AND (detail ? 'receipt' OR state_after = 'confirmed')
         ORDER BY id",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap();
    for order in &orders {
        let seen: Vec<bool> = rows
            .iter()
            .filter(|(id, _)| id == order.order_id.as_str())
            .map(|(_, receipt)| *receipt)
            .collect();
        assert_eq!(
            seen,
            [true, false],
            "{}: receipt, then acceptance",
            order.order_id
        );
    }
}
