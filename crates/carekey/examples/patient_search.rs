//! Patient search on a large clinic: seeds N synthetic patients in one import,
//! then times searches by name prefix, MRN and date of birth through the
//! service (docs/BENCHMARKS.md).
//!
//! `cargo run --release -p carekey --example patient_search -- [PATIENTS] [DATABASE_URL]`

use carekey::config::Config;
use carekey_domain::audit::{Actor, AuditAction, AuditEvent, Outcome};
use carekey_domain::clock::{Clock, SystemClock};
use carekey_domain::identifiers::DateOfBirth;
use carekey_domain::model::NewPatient;
use chrono::{Duration, NaiveDate};
use std::sync::Arc;
use std::time::Instant;

const FAMILY: [&str; 20] = [
    "Garcia",
    "Smith",
    "Nguyen",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
];
const GIVEN: [&str; 10] = [
    "Maria", "James", "Linh", "Robert", "Patricia", "Jose", "Dorothy", "Ahmed", "Mary", "Wei",
];

/// The n-th query text of one kind.
type QueryFor = Box<dyn Fn(usize) -> String>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let count: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(100_000);
    let dir = tempfile::tempdir()?;
    let database_url = args
        .next()
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("bench.db").display()));
    let config = Config {
        database_url: database_url.clone(),
        data_dir: dir.path().to_owned(),
        ..Config::default()
    };
    let settings = config
        .validate()
        .map_err(|p| anyhow::anyhow!(p.join("; ")))?;
    let services = carekey::services(&settings, Arc::new(SystemClock)).await?;
    let epoch = NaiveDate::from_ymd_opt(1930, 1, 1).unwrap_or_default();
    let patients: Vec<NewPatient> = (0..count)
        .map(|n| {
            let born = epoch + Duration::days((n * 7919 % 30_000) as i64);
            Ok(NewPatient {
                mrn: format!("MRN{n:07}"),
                given_name: GIVEN[n % GIVEN.len()].into(),
                family_name: format!("{}{}", FAMILY[n % FAMILY.len()], n / 400),
                date_of_birth: DateOfBirth::from_date(born)?,
                postal_code: None,
                preferred_language: None,
                email: None,
                phone: None,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let seeding = Instant::now();
    let event = AuditEvent::new(
        SystemClock.now(),
        Actor::System,
        AuditAction::PatientsImported,
        Outcome::Success,
    );
    services
        .store
        .import_patients(&patients, event, None)
        .await?;
    let backend = database_url.split(':').next().unwrap_or("?").to_owned();
    println!(
        "{backend}: seeded {count} patients in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );

    let queries: [(&str, QueryFor); 3] = [
        (
            "name prefix",
            Box::new(move |n| format!("{}{}", FAMILY[n % FAMILY.len()], (n * 37) % 250)),
        ),
        (
            "MRN",
            Box::new(move |n| format!("MRN{:07}", (n * 7919) % count)),
        ),
        (
            "date of birth",
            Box::new(move |n| {
                (epoch + Duration::days(((n * 104_729) % 30_000) as i64)).to_string()
            }),
        ),
    ];
    for (name, query) in &queries {
        let mut samples = Vec::new();
        let mut found = 0;
        for n in 0..300 {
            let started = Instant::now();
            found += services.search_patients(&query(n)).await?.len();
            samples.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        samples.sort_by(f64::total_cmp);
        println!(
            "  {name:>13}: 300 searches, p50 {:.2} ms, p99 {:.2} ms ({found} rows in all)",
            samples[150], samples[296]
        );
    }
    Ok(())
}
