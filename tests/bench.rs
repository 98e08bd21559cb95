//! `fulfilment bench` runs end to end against the real broker and database: a short run of
//! every phase completes every order it placed, writes a complete report and cleans up after
//! itself. It checks that the figures exist and are consistent, not how large they are (the
//! figures themselves live in docs/performance.md).

use std::process::Command;

use fulfilment::settings::Settings;

#[tokio::test]
async fn a_short_bench_run_completes_every_phase_and_writes_its_report() {
    let dir = std::env::temp_dir().join(format!("fulfilment-bench-{}", std::process::id()));
    let out = dir.join("report.json");
    let run = Command::new(env!("CARGO_BIN_EXE_fulfilment"))
        .args(["bench", "--seconds", "2", "--ceiling-seconds", "1"])
        .args(["--half-load-seconds", "1", "--in-flight", "16", "--out"])
        .arg(&out)
        .output()
        .expect("run fulfilment bench");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "bench failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("| Pipeline / ceiling |"), "{stdout}");

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("the JSON report")).unwrap();
    for phase in ["ceiling", "full_load", "half_load"] {
        let orders = report[phase]["orders"].as_u64().unwrap();
        let rate = report[phase]["orders_per_sec"].as_f64().unwrap();
        let latency = &report[phase]["latency_ms"];
        assert!(orders > 0 && rate > 0.0, "{phase}: {}", report[phase]);
        assert!(
            latency["p50"].as_f64() <= latency["p99"].as_f64(),
            "{phase}"
        );
        assert!(
            latency["p99"].as_f64() <= latency["max"].as_f64(),
            "{phase}"
        );
    }
    let ratio = report["ratio"].as_f64().unwrap();
    let expected = report["full_load"]["orders_per_sec"].as_f64().unwrap()
        / report["ceiling"]["orders_per_sec"].as_f64().unwrap();
    assert!((ratio - expected).abs() < 1e-9);
    // Orders are committed, in batches or not.
    assert!(report["commits_per_order"].as_f64().unwrap() > 0.0);
    let rss = report["worker_peak_rss_mib"].as_array().unwrap();
    assert_eq!(rss.len(), 1);
    assert!(rss[0].as_f64().unwrap() > 1.0);
    assert_eq!(report["machine"]["synchronous_commit"], "on");
    assert!(report["machine"]["cores"].as_u64().unwrap() >= 1);
    assert_eq!(report["targets"].as_array().unwrap().len(), 5);
    // The workers counted their statements and commits, and the machine its CPU.
    let per_order = &report["per_order"];
    for figure in ["statements", "commits", "worker_cpu_ms", "machine_cpu_ms"] {
        assert!(per_order[figure].as_f64().unwrap() > 0.0, "{per_order}");
    }
    assert!(
        per_order["statements"].as_f64() >= per_order["commits"].as_f64(),
        "{per_order}"
    );
    assert!(
        per_order["machine_cpu_ms"].as_f64() >= per_order["worker_cpu_ms"].as_f64(),
        "{per_order}"
    );
    let log = std::fs::read_to_string(dir.join("worker-0.log")).expect("the worker's log");
    assert!(log.contains("pipeline running"), "{log}");
    // Plain text (no colour codes in a file), and a clean start and stop: nothing at ERROR.
    assert!(!log.contains('\u{1b}'), "{log}");
    assert!(!log.contains(" ERROR "), "{log}");

    // The run removed its database.
    let settings = Settings::load().unwrap();
    let run_id = report["run"].as_str().unwrap();
    // The configured database need not exist; the server's `postgres` database answers.
    let mut url = url::Url::parse(settings.database.url.expose()).unwrap();
    url.set_path("/postgres");
    let pool = sqlx::PgPool::connect(url.as_str()).await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname LIKE $1")
        .bind(format!("%_bench_{run_id}"))
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "the bench left its database behind");
    let _ = std::fs::remove_dir_all(&dir);
}
