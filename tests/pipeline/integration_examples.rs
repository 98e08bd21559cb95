//! The Python integration examples in `examples/integration/` work against the real broker: a web
//! shop and a contact centre publish orders, a warehouse sees the dispatch, finance sees the
//! revenue.

use std::time::Duration;

use fulfilment::pipeline::PipelineOptions;

use crate::helpers::TestEnv;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_examples_publish_and_receive_through_the_pipeline() {
    let mut env = TestEnv::new().await;
    env.start_pipeline(PipelineOptions::default()).await;
    for own in ["warehouse", "finance"] {
        env.forget_queue_at_teardown(&format!("{}.{own}", env.settings.amqp.namespace));
    }
    let run = tokio::process::Command::new("python3")
        .arg("examples/integration/end_to_end.py")
        .arg("PY")
        .env("AMQP_URL", env.settings.amqp.url.expose())
        .env("FULFILMENT_NAMESPACE", &env.settings.amqp.namespace)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the examples finish")
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "examples failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    env.wait_state("PY-WEB", "completed").await;
    env.wait_state("PY-PHONE", "handed_over").await;
}
