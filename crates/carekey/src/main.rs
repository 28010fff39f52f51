//! `carekey`: the command line — serve, migrate, staff and account upkeep,
//! configuration check.

use anyhow::{bail, Context};
use carekey::config::{Config, Settings};
use carekey::demo;
use carekey_domain::audit::Actor;
use carekey_domain::clock::SystemClock;
use carekey_domain::identifiers::Username;
use carekey_domain::ids::MessageId;
use carekey_domain::message::MessageStatus;
use carekey_domain::model::StaffRole;
use carekey_domain::secret::Password;
use clap::{Parser, Subcommand};
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "carekey",
    version,
    about = "Patient portal sign-in, recovery and staff-assisted access"
)]
struct Cli {
    /// TOML configuration file (default: ./carekey.toml when present).
    #[arg(long, global = true, env = "CAREKEY_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (applies migrations first).
    Serve {
        /// Seed a demo clinic and print how to sign in.
        #[arg(long)]
        demo: bool,
    },
    /// Bring the database schema up to date and exit.
    Migrate,
    /// Run only the outbox worker (for deployments that send apart from serving).
    Worker,
    /// Messages in the outbox.
    Outbox {
        #[command(subcommand)]
        command: OutboxCommand,
    },
    /// Staff users.
    Staff {
        #[command(subcommand)]
        command: StaffCommand,
    },
    /// Patient records.
    Patient {
        #[command(subcommand)]
        command: PatientCommand,
    },
    /// A one-time reset code for a patient's account (as the staff console makes).
    ResetCode {
        #[arg(long)]
        mrn: String,
    },
    /// The audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Lift a patient account's lock and clear its failure count.
    Unlock {
        #[arg(long)]
        username: String,
    },
    /// Sessions: `sessions end --username U` signs one patient out everywhere;
    /// `sessions end --all` signs everyone out (patients and staff).
    Sessions {
        #[command(subcommand)]
        command: SessionsCommand,
    },
    /// Configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum PatientCommand {
    /// Import FHIR R4 patients (a Patient or a Bundle, JSON) from a file.
    Import { file: std::path::PathBuf },
    /// Send an enrollment invitation to every patient without a portal account
    /// (by verified email, else by verified text).
    Invite {
        #[arg(long, required = true)]
        all_without_account: bool,
    },
}

#[derive(Subcommand)]
enum SessionsCommand {
    /// End sessions: one patient's (`--username`) or everyone's (`--all`).
    End {
        #[arg(long, conflicts_with = "all")]
        username: Option<String>,
        #[arg(long)]
        all: bool,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the hash chain; fail and name the first event edited, deleted or out of place.
    Verify,
}

#[derive(Subcommand)]
enum StaffCommand {
    /// Add a staff user; the password is read from standard input.
    Add {
        #[arg(long)]
        username: String,
        /// front_desk, portal_admin or auditor.
        #[arg(long)]
        role: String,
    },
}

#[derive(Subcommand)]
enum OutboxCommand {
    /// The newest messages with their status, attempts and last error.
    List {
        /// Only messages with this status (queued, sending, sent, delivered, failed, bounced).
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Queue a failed message again.
    Retry { id: String },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration (secrets masked) and check every value.
    Check,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(path: Option<PathBuf>) -> anyhow::Result<Config> {
    let default_file = PathBuf::from("carekey.toml");
    let path = path.or_else(|| default_file.exists().then_some(default_file));
    Config::load(path.as_deref()).map_err(anyhow::Error::msg)
}

fn checked(config: &Config) -> anyhow::Result<Settings> {
    config.validate().map_err(|problems| {
        anyhow::anyhow!(
            "the configuration has problems:\n  - {}",
            problems.join("\n  - ")
        )
    })
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Logs go to standard error, so command output (`outbox list`, `staff add`) stays clean.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = load_config(cli.config)?;
    if let Command::Config {
        command: ConfigCommand::Check,
    } = cli.command
    {
        print!("{}", config.masked_toml());
        let settings = checked(&config)?;
        for warning in &settings.warnings {
            eprintln!("warning: {warning}");
        }
        match carekey::policy_warnings(&settings).await {
            Some(warnings) => {
                for warning in warnings {
                    eprintln!("warning: policy: {warning}");
                }
            }
            None => eprintln!("note: the organisation's policy was not checked (database not reachable or not set up yet)"),
        }
        eprintln!("configuration is valid");
        return Ok(());
    }
    let mut settings = checked(&config)?;
    if let Command::Serve { demo: true } = cli.command {
        // The demo shows what patients would receive at /dev/mailbox.
        settings.dev = true;
    }
    init_logging(&settings.log);
    let services = carekey::services(&settings, Arc::new(SystemClock)).await?;
    match cli.command {
        Command::Serve { demo } => serve(&settings, services, demo).await,
        Command::Migrate => {
            println!("database is up to date");
            Ok(())
        }
        Command::Worker => {
            let senders = carekey::delivery::senders(&settings).map_err(anyhow::Error::msg)?;
            tracing::info!("outbox worker running");
            carekey::delivery::worker(&settings, &services, senders)
                .run(shutdown_signal())
                .await;
            Ok(())
        }
        Command::Outbox {
            command: OutboxCommand::List { status, limit },
        } => {
            let status = status
                .map(|s| s.parse::<MessageStatus>())
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let messages = services
                .recent_messages(status, limit)
                .await
                .map_err(|e| anyhow::anyhow!(describe(e)))?;
            println!(
                "{:<36}  {:<20}  {:<5}  {:<20}  {:<9}  {:>3}  to / last error",
                "id", "created", "chan", "kind", "status", "try"
            );
            for m in messages {
                println!(
                    "{:<36}  {:<20}  {:<5}  {:<20}  {:<9}  {:>3}  {}{}",
                    m.id,
                    m.created_at.format("%Y-%m-%d %H:%M:%S"),
                    m.channel.as_str(),
                    m.kind.as_str(),
                    m.status.as_str(),
                    m.attempts,
                    m.recipient,
                    m.last_error.map(|e| format!(" — {e}")).unwrap_or_default()
                );
            }
            Ok(())
        }
        Command::Outbox {
            command: OutboxCommand::Retry { id },
        } => {
            let id = MessageId(
                id.parse()
                    .map_err(|_| anyhow::anyhow!("{id:?} is not a message id"))?,
            );
            services
                .retry_message(id)
                .await
                .map_err(|e| anyhow::anyhow!("cannot retry {id}: {}", describe(e)))?;
            println!("queued {id} again");
            Ok(())
        }
        Command::Staff {
            command: StaffCommand::Add { username, role },
        } => {
            let role: StaffRole = role.parse().map_err(anyhow::Error::msg)?;
            let username =
                Username::parse(&username).map_err(|e| anyhow::anyhow!("username {e}"))?;
            let password = read_password()?;
            services
                .create_staff(username.clone(), role, &password, Actor::System)
                .await
                .map_err(|e| anyhow::anyhow!("cannot add {username}: {}", describe(e)))?;
            println!("added staff user {username} ({role})");
            Ok(())
        }
        Command::Patient {
            command: PatientCommand::Import { file },
        } => {
            let text = std::fs::read(&file)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            let document: serde_json::Value = serde_json::from_slice(&text)
                .map_err(|e| anyhow::anyhow!("{} is not JSON: {e}", file.display()))?;
            let bar = indicatif::ProgressBar::new(0).with_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} patients ({eta} left)",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let progress = |done: u64, total: u64| {
                bar.set_length(total);
                bar.set_position(done);
            };
            let report = services
                .import_patients(&document, Actor::System, Some(&progress))
                .await
                .map_err(|e| anyhow::anyhow!("import failed: {}", describe(e)))?;
            bar.finish_and_clear();
            println!(
                "imported {}: {} created, {} updated, {} skipped",
                file.display(),
                report.created,
                report.updated,
                report.skipped.len()
            );
            for skipped in &report.skipped {
                println!("  entry {}: {}", skipped.index, skipped.reason);
            }
            Ok(())
        }
        Command::Patient {
            command: PatientCommand::Invite { .. },
        } => {
            let (by_email, by_text, left_out) = services
                .invite_all_without_account()
                .await
                .map_err(|e| anyhow::anyhow!("invitations failed: {}", describe(e)))?;
            println!(
                "invited {} by email and {} by text; {} without a verified contact were left out (invite them from the staff console, printed)",
                by_email, by_text, left_out
            );
            Ok(())
        }
        Command::ResetCode { mrn } => {
            let patient = services
                .store
                .find_patient_by_mrn(&mrn)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no patient with MRN {mrn}"))?;
            let record = services
                .patient_record(patient)
                .await
                .map_err(|e| anyhow::anyhow!("cannot read the record: {}", describe(e)))?;
            let account = record
                .portal
                .account_id
                .ok_or_else(|| anyhow::anyhow!("MRN {mrn} has no portal account yet"))?;
            let (code, expires_at) = services
                .issue_staff_code(
                    account,
                    Actor::System,
                    serde_json::json!({ "via": "command_line" }),
                )
                .await
                .map_err(|e| anyhow::anyhow!("cannot make a code: {}", describe(e)))?;
            println!("{code}");
            eprintln!(
                "one-time code for {} (MRN {mrn}); works once until {}; the patient enters it at /have-a-code",
                record.portal.username.unwrap_or_default(),
                expires_at.format("%Y-%m-%d %H:%M UTC")
            );
            Ok(())
        }
        Command::Audit {
            command: AuditCommand::Verify,
        } => {
            let check = services
                .verify_audit_chain()
                .await
                .map_err(|e| anyhow::anyhow!("cannot read the audit trail: {e}"))?;
            match check.first_bad_event {
                None if check.ok => {
                    println!("audit chain intact: {} events", check.events);
                    Ok(())
                }
                bad => anyhow::bail!(
                    "audit chain broken at event {} ({} events before it check out)",
                    bad.map_or_else(|| "?".to_owned(), |seq| seq.to_string()),
                    check.events
                ),
            }
        }
        Command::Unlock { username } => {
            let username =
                Username::parse(&username).map_err(|e| anyhow::anyhow!("username {e}"))?;
            services
                .unlock_account(
                    &username,
                    Actor::System,
                    serde_json::json!({ "via": "command_line" }),
                )
                .await
                .map_err(|e| anyhow::anyhow!("cannot unlock {username}: {}", describe(e)))?;
            println!("unlocked {username}");
            Ok(())
        }
        Command::Sessions {
            command: SessionsCommand::End { username, all },
        } => {
            let username = match (username, all) {
                (Some(username), false) => {
                    Some(Username::parse(&username).map_err(|e| anyhow::anyhow!("username {e}"))?)
                }
                (None, true) => None,
                _ => anyhow::bail!("give either --username U or --all"),
            };
            let ended = services
                .end_sessions(username.as_ref())
                .await
                .map_err(|e| anyhow::anyhow!("cannot end sessions: {}", describe(e)))?;
            println!("ended {ended} sessions");
            Ok(())
        }
        Command::Config { .. } => Ok(()),
    }
}

fn describe(error: carekey_service::ServiceError) -> String {
    match error {
        carekey_service::ServiceError::NotFound => "no such account".into(),
        carekey_service::ServiceError::InvalidRequest(fields) => fields
            .iter()
            .map(|(field, why)| format!("{field} {why}"))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

/// The password from standard input: its first line, without the line ending.
fn read_password() -> anyhow::Result<Password> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("cannot read the password from standard input")?;
    let line = input.lines().next().unwrap_or_default();
    if line.is_empty() {
        bail!("no password on standard input (pipe it in: echo \"…\" | carekey staff add …)");
    }
    Ok(Password::new(line))
}

async fn serve(
    settings: &Settings,
    services: carekey_service::Services,
    demo: bool,
) -> anyhow::Result<()> {
    if demo && demo::seed(&services).await? {
        tracing::info!("seeded the demo clinic");
    }
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let public_url = settings
        .public_url
        .as_str()
        .trim_end_matches('/')
        .to_owned();
    if demo {
        println!("{}", demo::instructions(&public_url));
    }
    // One signal stops both the server (gracefully) and the in-process outbox worker.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = if settings.delivery.in_process {
        let senders = carekey::delivery::senders(settings).map_err(anyhow::Error::msg)?;
        let worker = carekey::delivery::worker(settings, &services, senders);
        let mut stopped = stopped.clone();
        Some(tokio::spawn(worker.run(async move {
            let _ = stopped.changed().await;
        })))
    } else {
        None
    };
    let upkeep = {
        let services = services.clone();
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
            loop {
                tokio::select! {
                    _ = every.tick() => match services.housekeeping().await {
                        Ok(purged) if purged > 0 => tracing::info!(purged, "old rate-limit counters deleted"),
                        Ok(_) => {}
                        Err(error) => tracing::warn!(%error, "housekeeping failed"),
                    },
                    _ = stopped.changed() => break,
                }
            }
        })
    };
    tracing::info!(listen = %settings.listen, public_url = %public_url, "CareKey is serving");
    let app = carekey::app(settings, services);
    let shutdown = async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    };
    carekey::serve(listener, app, shutdown)
        .await
        .context("server failed")?;
    if let Some(worker) = worker {
        // Let a send in progress finish and record its outcome.
        let _ = worker.await;
    }
    let _ = upkeep.await;
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => return interrupt.await.unwrap_or_default(),
            };
        tokio::select! {
            _ = interrupt => {},
            _ = terminate.recv() => {},
        }
    }
    #[cfg(not(unix))]
    interrupt.await.unwrap_or_default();
}
