//! Latency of `POST /api/v1/password/check` without a reset token, for a
//! 20-character password, over loopback HTTP (docs/BENCHMARKS.md).
//!
//! `cargo run --release -p carekey --example password_check_latency -- [REQUESTS]`

use carekey::config::Config;
use carekey_domain::clock::SystemClock;
use std::sync::Arc;
use std::time::Instant;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let requests: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(2000);
    let dir = tempfile::tempdir()?;
    let config = Config {
        database_url: format!("sqlite://{}", dir.path().join("bench.db").display()),
        data_dir: dir.path().to_owned(),
        ..Config::default()
    };
    let settings = config
        .validate()
        .map_err(|p| anyhow::anyhow!(p.join("; ")))?;
    let services = carekey::services(&settings, Arc::new(SystemClock)).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/api/v1/password/check", listener.local_addr()?);
    let app = carekey::app(&settings, services);
    tokio::spawn(carekey::serve(listener, app, std::future::pending()));

    let client = reqwest::Client::new();
    let passwords = [
        "harbor lamp quiet 42",
        "Summer2025!Summer202",
        "violet cactus drums!",
    ];
    for password in passwords {
        assert_eq!(password.chars().count(), 20);
    }
    // Warm up: the blocklist is sorted on first use.
    for _ in 0..50 {
        client
            .post(&url)
            .json(&serde_json::json!({"password": passwords[0]}))
            .send()
            .await?;
    }
    let mut samples = Vec::with_capacity(requests);
    for n in 0..requests {
        let started = Instant::now();
        let response = client
            .post(&url)
            .json(&serde_json::json!({"password": passwords[n % passwords.len()]}))
            .send()
            .await?;
        let _: serde_json::Value = response.json().await?;
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q) as usize];
    println!(
        "password check: {requests} sequential requests, p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        at(0.5),
        at(0.9),
        at(0.99),
        samples[samples.len() - 1]
    );
    Ok(())
}
