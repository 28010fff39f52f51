//! Outbox throughput into a real SMTP server on loopback (docs/BENCHMARKS.md).
//!
//! `cargo run --release -p carekey --example outbox_throughput -- [MESSAGES] [sqlite|postgres://…]`
//!
//! Starts Python's aiosmtpd (Debian's python3-aiosmtpd) on a free port, queues
//! MESSAGES reset emails in a fresh database, and times one worker sending them all.

use carekey::config::Config;
use carekey_delivery::smtp::SmtpSender;
use carekey_delivery::Senders;
use carekey_domain::clock::SystemClock;
use carekey_domain::ids::MessageId;
use carekey_domain::message::{Channel, MessageData, MessageKind, MessageStatus, NewMessage};
use carekey_domain::model::Language;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let count: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(2000);
    let database = args.next().unwrap_or_else(|| "sqlite".into());
    let dir = tempfile::tempdir()?;
    let database_url = if database == "sqlite" {
        format!("sqlite://{}", dir.path().join("bench.db").display())
    } else {
        database
    };

    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut sink = Command::new("/usr/bin/python3")
        .args([
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            &format!("127.0.0.1:{port}"),
            "-c",
            "aiosmtpd.handlers.Sink",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let config = Config {
        database_url,
        data_dir: dir.path().to_owned(),
        ..Config::default()
    };
    let settings = config
        .validate()
        .map_err(|p| anyhow::anyhow!(p.join("; ")))?;
    let services = carekey::services(&settings, Arc::new(SystemClock)).await?;
    let messages: Vec<NewMessage> = (0..count)
        .map(|n| NewMessage {
            id: MessageId::generate(),
            kind: MessageKind::PasswordReset,
            channel: Channel::Email,
            recipient: format!("patient{n}@example.com"),
            language: if n % 3 == 0 { Language::Es } else { Language::En },
            patient_id: None,
            data: MessageData {
                given_name: Some("Alex".into()),
                link: Some("https://portal.example/reset?token=abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG".into()),
                code: Some("482913".into()),
                valid_minutes: Some(60),
                ..MessageData::default()
            },
        })
        .collect();
    for chunk in messages.chunks(500) {
        services
            .store
            .enqueue_messages(chunk, chrono::Utc::now())
            .await?;
    }
    let email = Arc::new(
        SmtpSender::new(
            &format!("smtp://127.0.0.1:{port}"),
            "Bench Clinic <noreply@bench.example>",
        )
        .map_err(anyhow::Error::msg)?,
    );
    let senders = Senders {
        email: email.clone(),
        sms: email.clone(),
        voice: email,
    };
    let worker = carekey::delivery::worker(&settings, &services, senders);

    let started = Instant::now();
    while worker.run_once().await? > 0 {}
    let elapsed = started.elapsed();
    let sent = services
        .recent_messages(Some(MessageStatus::Sent), u32::try_from(count)?)
        .await?;
    sink.kill()?;
    println!(
        "outbox: {} of {count} messages sent over SMTP in {:.2} s = {:.0} messages/s (batch {}, concurrency {})",
        sent.len(),
        elapsed.as_secs_f64(),
        sent.len() as f64 / elapsed.as_secs_f64(),
        settings.delivery.batch,
        settings.delivery.concurrency
    );
    Ok(())
}
