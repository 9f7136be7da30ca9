//! Loopback load generator for the relay's intake: N keep-alive connections POST one-alert
//! Alertmanager bodies (each a new alert, so each is journaled) for a fixed time, then print
//! throughput and latency percentiles. A measuring tool, not a test.
//!
//!     cargo run --release --example loadgen -- URL TOKEN_FILE [CONNECTIONS] [SECONDS]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(
        args.len() >= 3,
        "usage: loadgen URL TOKEN_FILE [CONNECTIONS] [SECONDS]"
    );
    let url = args[1].clone();
    let token = std::fs::read_to_string(&args[2])?.trim().to_owned();
    let connections: usize = args.get(3).map_or(Ok(16), |s| s.parse())?;
    let seconds: u64 = args.get(4).map_or(Ok(10), |s| s.parse())?;
    let counter = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (url, token, counter) = (url.clone(), token.clone(), counter.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder().pool_max_idle_per_host(1).build()?;
            let mut latencies = Vec::new();
            let mut errors = 0_u64;
            while Instant::now() < deadline {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let body = format!(
                    r#"{{"version":"4","status":"firing","alerts":[{{"status":"firing","labels":{{"alertname":"BenchAlert","server":"s{}","backend":"be"}},"startsAt":"2026-01-01T00:00:00Z","fingerprint":"{n:016x}"}}]}}"#,
                    n % 100
                );
                let started = Instant::now();
                let response = client
                    .post(&url)
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                match response {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        latencies.push(started.elapsed());
                    }
                    _ => errors += 1,
                }
            }
            anyhow::Ok((latencies, errors))
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await??;
        all.extend(l);
        errors += e;
    }
    all.sort();
    let pct = |p: f64| {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let i = ((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1));
        all.get(i).copied().unwrap_or_default()
    };
    #[allow(clippy::cast_precision_loss)]
    let rate = all.len() as f64 / seconds as f64;
    println!(
        "{} ok, {errors} errors in {seconds}s over {connections} connections: {rate:.0} req/s, p50 {:?}, p99 {:?}, max {:?}",
        all.len(),
        pct(0.50),
        pct(0.99),
        all.last().copied().unwrap_or_default()
    );
    Ok(())
}
