//! CareKey's benchmark suite (issue 8): real HTTP load from `wrk` against the
//! release `carekey serve` on loopback, on SQLite and PostgreSQL. Prints each
//! figure and writes the run, with the machine's description, into
//! docs/BENCHMARKS.md.
//!
//! `cargo run -p carekey-bench --release -- all`

mod machine;
mod report;
mod runs;
mod seed;
mod server;
mod stats;
mod wrk;

use anyhow::bail;
use clap::{Parser, ValueEnum};
use machine::Steal;
use std::path::PathBuf;

#[derive(Parser)]
#[command(about = "Measure CareKey against the goals of docs/BENCHMARKS.md")]
struct Args {
    /// What to measure.
    #[arg(value_enum, default_value = "all")]
    what: Vec<What>,
    /// PostgreSQL server for the PostgreSQL figures (a throwaway database is
    /// created per run); `none` to measure SQLite only.
    #[arg(
        long,
        env = "CAREKEY_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    postgres: String,
    /// Seconds of load per run.
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// Accounts in the large scale step.
    #[arg(long, default_value_t = 1_000_000)]
    large: usize,
    /// Requests of each kind in the enumeration check (300 as the goal states;
    /// more to tell a small difference from what its classifier reaches by
    /// chance).
    #[arg(long, default_value_t = runs::TIMING_SAMPLES, value_parser = at_least_ten)]
    timing_samples: usize,
    /// Print only; leave docs/BENCHMARKS.md as it is.
    #[arg(long)]
    no_write: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum What {
    All,
    Hashing,
    Recovery,
    Enumeration,
    Flood,
    Scale,
    Outbox,
    Startup,
    Instances,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !wrk::available() {
        bail!("wrk is not installed: apt-get install wrk");
    }
    let postgres = (args.postgres != "none").then(|| args.postgres.clone());
    if let Some(url) = &postgres {
        seed::remove_leftovers(url).await?;
    }
    println!("building the release carekey binary…");
    let binary = server::build_carekey()?;
    let machine = machine::describe();
    println!("machine: {machine}");
    let mut suite = runs::Suite::new(binary, postgres, args.seconds, args.large)?;
    suite.timing_samples = args.timing_samples;
    let all = args.what.contains(&What::All);
    let wants = |what: What| all || args.what.contains(&what);
    let mut steal = Steal::default();
    if wants(What::Startup) {
        steal.measure("start-up", suite.startup()).await?;
    }
    if wants(What::Hashing) {
        steal.measure("hashing", suite.hashing()).await?;
    }
    if wants(What::Recovery) {
        steal.measure("recovery", suite.recovery()).await?;
    }
    if wants(What::Enumeration) {
        steal.measure("enumeration", suite.enumeration()).await?;
    }
    if wants(What::Flood) {
        steal.measure("flood", suite.flood()).await?;
    }
    if wants(What::Outbox) {
        steal.measure("outbox", suite.outbox()).await?;
    }
    if wants(What::Instances) && suite.postgres.is_some() {
        steal.measure("instances", suite.instances()).await?;
    }
    if wants(What::Scale) {
        steal.measure("scale", suite.scale()).await?;
    }
    let machine = match steal.summary() {
        Some(steal) => {
            println!("\n{steal}");
            format!("{machine}; {steal}")
        }
        None => machine,
    };
    if !args.no_write {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/BENCHMARKS.md");
        let command = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
        suite.report.write_into(
            &path,
            &machine,
            &format!("cargo run -p carekey-bench --release -- {command}"),
        )?;
        println!("\nwritten into {}", path.display());
    }
    Ok(())
}

/// A count of requests large enough for medians, percentiles and a
/// bootstrap to mean something.
fn at_least_ten(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(count) if count >= 10 => Ok(count),
        _ => Err(format!("{text:?} is not a whole number of at least 10")),
    }
}
