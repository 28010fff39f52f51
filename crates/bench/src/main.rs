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
        let mark = Steal::mark();
        suite.startup().await?;
        steal.record("start-up", mark);
    }
    if wants(What::Hashing) {
        let mark = Steal::mark();
        suite.hashing().await?;
        steal.record("hashing", mark);
    }
    if wants(What::Recovery) {
        let mark = Steal::mark();
        suite.recovery().await?;
        steal.record("recovery", mark);
    }
    if wants(What::Enumeration) {
        let mark = Steal::mark();
        suite.enumeration().await?;
        steal.record("enumeration", mark);
    }
    if wants(What::Flood) {
        let mark = Steal::mark();
        suite.flood().await?;
        steal.record("flood", mark);
    }
    if wants(What::Outbox) {
        let mark = Steal::mark();
        suite.outbox().await?;
        steal.record("outbox", mark);
    }
    if wants(What::Instances) && suite.postgres.is_some() {
        let mark = Steal::mark();
        suite.instances().await?;
        steal.record("instances", mark);
    }
    if wants(What::Scale) {
        let mark = Steal::mark();
        suite.scale().await?;
        steal.record("scale", mark);
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
