//! Recovery requests (`POST /api/v1/recovery`) over loopback HTTP: throughput
//! and latency at 16 connections for known and unknown accounts, then the
//! enumeration timing check — interleaved sequential requests for known and
//! unknown accounts, the difference of their medians with a bootstrap 95 %
//! interval, and the accuracy of the best single-request threshold classifier
//! (docs/BENCHMARKS.md).
//!
//! `cargo run --release -p carekey --example recovery_requests -- [SECONDS] [SAMPLES] [DATABASE_URL]`
//!
//! The organisation's rate limits are raised for the run (they would answer
//! 429 after 30 requests from one address); everything else is as shipped.

use carekey::config::{Argon2Config, Config};
use carekey_domain::audit::{Actor, AuditAction, AuditEvent, Outcome};
use carekey_domain::clock::{Clock, SystemClock};
use carekey_domain::identifiers::{DateOfBirth, Email, Username};
use carekey_domain::model::NewPatient;
use carekey_domain::secret::Password;
use rand::seq::SliceRandom;
use rand::Rng;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ACCOUNTS: usize = 200;
const CONNECTIONS: usize = 16;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(10);
    let samples: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(300);
    let dir = tempfile::tempdir()?;
    let database_url = args
        .next()
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("bench.db").display()));
    let config = Config {
        database_url: database_url.clone(),
        data_dir: dir.path().to_owned(),
        // Seeding hashes one password per account; recovery requests hash none.
        argon2: Argon2Config {
            memory_kib: 4096,
            iterations: 1,
            parallelism: 1,
            workers: None,
        },
        ..Config::default()
    };
    let settings = config
        .validate()
        .map_err(|p| anyhow::anyhow!(p.join("; ")))?;
    let services = carekey::services(&settings, Arc::new(SystemClock)).await?;
    let mut policy = services.store.load_policy().await?;
    policy.recovery.per_ip_per_15_minutes = u32::MAX / 2;
    policy.recovery.per_account_per_hour = u32::MAX / 2;
    let event = AuditEvent::new(
        SystemClock.now(),
        Actor::System,
        AuditAction::PolicyChanged,
        Outcome::Success,
    );
    services.store.save_policy(&policy, event).await?;
    for n in 0..ACCOUNTS {
        let patient = NewPatient {
            mrn: format!("BENCH-{n}"),
            given_name: "Bench".into(),
            family_name: format!("Patient{n}"),
            date_of_birth: DateOfBirth::parse("1960-06-15")?,
            postal_code: None,
            preferred_language: None,
            email: Some(Email::parse(&format!("bench{n}@example.com"))?),
            phone: None,
        };
        let patient_id = services.create_patient(&patient, Actor::System).await?;
        services
            .create_account(
                patient_id,
                Username::parse(&format!("bench{n}"))?,
                &Password::new("granite kettle rowing home"),
                Actor::System,
            )
            .await?;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/api/v1/recovery", listener.local_addr()?);
    let app = carekey::app(&settings, services);
    tokio::spawn(carekey::serve(listener, app, std::future::pending()));
    let backend = database_url.split(':').next().unwrap_or("?").to_owned();

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONNECTIONS)
        .build()?;
    for n in 0..100 {
        request(&client, &url, n % 2 == 0, n).await?;
    }

    // Throughput: 16 connections, each alternating known and unknown accounts.
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|worker| {
            let client = client.clone();
            let url = url.clone();
            tokio::spawn(async move {
                let mut known = Vec::new();
                let mut unknown = Vec::new();
                let mut n = worker;
                while Instant::now() < deadline {
                    let is_known = n % 2 == 0;
                    let took = request(&client, &url, is_known, n).await?;
                    if is_known {
                        known.push(took);
                    } else {
                        unknown.push(took);
                    }
                    n += CONNECTIONS;
                }
                anyhow::Ok((known, unknown))
            })
        })
        .collect();
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for worker in workers {
        let (k, u) = worker.await??;
        known.extend(k);
        unknown.extend(u);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let total = known.len() + unknown.len();
    println!(
        "{backend}: {total} requests in {elapsed:.1} s at {CONNECTIONS} connections = {:.0} per second",
        total as f64 / elapsed
    );
    for (name, times) in [("known", &mut known), ("unknown", &mut unknown)] {
        if times.is_empty() {
            continue;
        }
        times.sort_by(f64::total_cmp);
        println!(
            "  {name:>7}: {} requests, p50 {:.2} ms, p99 {:.2} ms",
            times.len(),
            quantile(times, 0.5),
            quantile(times, 0.99)
        );
    }

    // Enumeration timing: interleaved sequential requests, one connection.
    let mut order: Vec<bool> = (0..samples * 2).map(|i| i % 2 == 0).collect();
    order.shuffle(&mut rand::thread_rng());
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for (n, is_known) in order.into_iter().enumerate() {
        let took = request(&client, &url, is_known, 1_000_000 + n).await?;
        if is_known {
            known.push(took);
        } else {
            unknown.push(took);
        }
    }
    known.sort_by(f64::total_cmp);
    unknown.sort_by(f64::total_cmp);
    let difference = quantile(&known, 0.5) - quantile(&unknown, 0.5);
    let (low, high) = bootstrap_interval(&known, &unknown);
    println!(
        "  timing: {samples} known and {samples} unknown, interleaved: median known {:.3} ms, unknown {:.3} ms, difference {difference:+.3} ms (95% bootstrap interval {low:+.3} to {high:+.3} ms)",
        quantile(&known, 0.5),
        quantile(&unknown, 0.5),
    );
    println!(
        "  best single-request threshold classifier: {:.1}% accurate (50% is a coin toss)",
        best_threshold_accuracy(&known, &unknown) * 100.0
    );
    Ok(())
}

/// One recovery request; its time in milliseconds. Known accounts are
/// `bench{n}` for the seeded range, unknown ones never exist.
async fn request(
    client: &reqwest::Client,
    url: &str,
    known: bool,
    n: usize,
) -> anyhow::Result<f64> {
    let username = if known {
        format!("bench{}", n % ACCOUNTS)
    } else {
        format!("ghost{n}")
    };
    let body =
        serde_json::json!({ "purpose": "password", "channel": "email", "username": username });
    let started = Instant::now();
    let response = client.post(url).json(&body).send().await?;
    let status = response.status();
    let _ = response.bytes().await?;
    let took = started.elapsed().as_secs_f64() * 1000.0;
    anyhow::ensure!(status == 202, "unexpected status {status}");
    Ok(took)
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

/// A 95 % interval for the difference of medians, from 2,000 resamples.
fn bootstrap_interval(known: &[f64], unknown: &[f64]) -> (f64, f64) {
    let mut rng = rand::thread_rng();
    let mut resample = |from: &[f64]| {
        let mut drawn: Vec<f64> = (0..from.len())
            .map(|_| from[rng.gen_range(0..from.len())])
            .collect();
        drawn.sort_by(f64::total_cmp);
        quantile(&drawn, 0.5)
    };
    let mut differences: Vec<f64> = (0..2000)
        .map(|_| resample(known) - resample(unknown))
        .collect();
    differences.sort_by(f64::total_cmp);
    (quantile(&differences, 0.025), quantile(&differences, 0.975))
}

/// The accuracy of the best rule "slower than t means known" (or its
/// opposite), over every threshold t the samples suggest.
fn best_threshold_accuracy(known: &[f64], unknown: &[f64]) -> f64 {
    let total = (known.len() + unknown.len()) as f64;
    let mut best: f64 = 0.5;
    for &threshold in known.iter().chain(unknown) {
        let known_above = known.iter().filter(|&&t| t > threshold).count();
        let unknown_below = unknown.iter().filter(|&&t| t <= threshold).count();
        let accuracy = (known_above + unknown_below) as f64 / total;
        best = best.max(accuracy).max(1.0 - accuracy);
    }
    best
}
