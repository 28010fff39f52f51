//! Wiring of message delivery from configuration: which sender serves each
//! channel, and the outbox worker's settings.

use crate::config::{Config, ProviderConfig, Settings};
use carekey_delivery::file::FileSender;
use carekey_delivery::smtp::SmtpSender;
use carekey_delivery::twilio::{TwilioAccount, TwilioResource, TwilioSender};
use carekey_delivery::webhook::WebhookSender;
use carekey_delivery::{RenderContext, Sender, Senders, Worker, WorkerSettings};
use carekey_domain::message::RetryPolicy;
use carekey_service::Services;
use std::path::Path;
use std::sync::Arc;

/// The folder the development (`file`) senders write to.
pub fn mailbox_dir(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("outbox")
}

/// The path providers post delivery reports to.
pub const TWILIO_STATUS_PATH: &str = "/hooks/twilio/status";

fn provider(
    name: &str,
    config: &ProviderConfig,
    resource: TwilioResource,
    public_url: &str,
    mailbox: &Path,
    from: &str,
) -> Result<Arc<dyn Sender>, String> {
    let required = |value: &Option<String>, key: &str| {
        value
            .clone()
            .filter(|v| !v.trim().is_empty())
            .ok_or(format!(
                "{name}.{key} is required for provider {:?}",
                config.provider
            ))
    };
    Ok(match config.provider.as_str() {
        "file" => Arc::new(FileSender::new(mailbox.to_owned(), from)?),
        "twilio" => Arc::new(TwilioSender::new(
            TwilioAccount {
                base_url: config.base_url.clone(),
                account_sid: required(&config.account_sid, "account_sid")?,
                auth_token: required(&config.auth_token, "auth_token")?,
                from: required(&config.from, "from")?,
                status_callback: Some(format!(
                    "{}{TWILIO_STATUS_PATH}",
                    public_url.trim_end_matches('/')
                )),
            },
            resource,
        )?),
        "webhook" => Arc::new(WebhookSender::new(
            required(&config.webhook_url, "webhook_url")?,
            required(&config.webhook_secret, "webhook_secret")?,
        )?),
        other => {
            return Err(format!(
                "{name}.provider: {other:?} is not one of file, twilio, webhook"
            ))
        }
    })
}

fn build(config: &Config, public_url: &str) -> Result<Senders, Vec<String>> {
    let mailbox = mailbox_dir(&config.data_dir);
    let email_transport = config.email.transport.clone().unwrap_or_else(|| {
        if config.email.url.is_some() {
            "smtp".into()
        } else {
            "file".into()
        }
    });
    let email: Result<Arc<dyn Sender>, String> = match (email_transport.as_str(), &config.email.url)
    {
        ("smtp", Some(url)) => SmtpSender::new(
            url,
            &config.email.from,
            u32::try_from(config.delivery.concurrency).unwrap_or(u32::MAX),
        )
        .map(|s| Arc::new(s) as Arc<dyn Sender>),
        ("smtp", None) => Err("email.url is required for the smtp transport".into()),
        ("file", _) => FileSender::new(mailbox.clone(), &config.email.from)
            .map(|s| Arc::new(s) as Arc<dyn Sender>),
        (other, _) => Err(format!("email.transport: {other:?} is not smtp or file")),
    };
    let sms = provider(
        "sms",
        &config.sms,
        TwilioResource::Messages,
        public_url,
        &mailbox,
        &config.email.from,
    );
    let voice = provider(
        "voice",
        &config.voice,
        TwilioResource::Calls,
        public_url,
        &mailbox,
        &config.email.from,
    );
    match (email, sms, voice) {
        (Ok(email), Ok(sms), Ok(voice)) => Ok(Senders { email, sms, voice }),
        (email, sms, voice) => Err([email.err(), sms.err(), voice.err()]
            .into_iter()
            .flatten()
            .collect()),
    }
}

/// Problems with the delivery configuration, for `Config::validate`.
pub fn check(config: &Config) -> Vec<String> {
    build(config, &config.public_url).err().unwrap_or_default()
}

/// The senders the configuration names.
pub fn senders(settings: &Settings) -> Result<Senders, String> {
    let config = Config {
        data_dir: settings.data_dir.clone(),
        email: settings.email.clone(),
        sms: settings.sms.clone(),
        voice: settings.voice.clone(),
        ..Config::default()
    };
    build(&config, settings.public_url.as_str()).map_err(|problems| problems.join("; "))
}

/// An outbox worker over the given senders.
pub fn worker(settings: &Settings, services: &Services, senders: Senders) -> Worker {
    let delivery = &settings.delivery;
    Worker::new(
        Arc::clone(&services.store),
        Arc::clone(&services.clock),
        senders,
        RenderContext {
            clinic_name: settings.clinic.name.clone(),
            help_phone: settings.clinic.help_phone.clone(),
        },
        WorkerSettings {
            retry: RetryPolicy {
                max_attempts: delivery.max_attempts,
                base_delay: chrono::Duration::seconds(i64::from(delivery.base_delay_seconds)),
                ..RetryPolicy::default()
            },
            batch: delivery.batch,
            concurrency: delivery.concurrency,
            lease: chrono::Duration::seconds(i64::from(delivery.lease_seconds)),
            ..WorkerSettings::default()
        },
    )
}

/// The auth tokens that may sign provider callbacks.
pub fn twilio_auth_tokens(settings: &Settings) -> Vec<String> {
    [&settings.sms, &settings.voice]
        .into_iter()
        .filter(|p| p.provider == "twilio")
        .filter_map(|p| p.auth_token.clone())
        .collect()
}
