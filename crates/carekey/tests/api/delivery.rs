//! Message delivery against real peers: an SMTP server on loopback, a local
//! stand-in for the SMS/voice provider, the provider's signed status callbacks,
//! retries across an outage, and several workers sharing one outbox.

use crate::helpers::{spawn_app, spawn_app_with, Backend, Options, TestApp};
use crate::sinks::{free_port, smtp, twilio, ProviderStandIn, SmtpSink, ACCOUNT_SID, AUTH_TOKEN};
use async_trait::async_trait;
use carekey::config::{Config, ProviderConfig};
use carekey_delivery::twilio::{signature, TwilioResource};
use carekey_delivery::{Rendered, SendError, Sender, Senders};
use carekey_domain::ids::MessageId;
use carekey_domain::message::{
    Channel, MessageData, MessageKind, MessageRecord, MessageStatus, NewMessage,
};
use carekey_domain::model::Language;
use chrono::Duration;
use mailparse::MailHeaderMap;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

fn reset_message(channel: Channel, recipient: &str, language: Language) -> NewMessage {
    NewMessage {
        id: MessageId::generate(),
        kind: MessageKind::PasswordReset,
        channel,
        recipient: recipient.into(),
        language,
        patient_id: None,
        data: MessageData {
            given_name: Some("María".into()),
            link: Some("http://127.0.0.1/reset?token=tok".into()),
            code: Some("482913".into()),
            valid_minutes: Some(60),
            ..MessageData::default()
        },
    }
}

async fn enqueue(app: &TestApp, message: &NewMessage) {
    app.services
        .store
        .enqueue_messages(std::slice::from_ref(message), app.clock.now_utc())
        .await
        .unwrap();
}

/// Queues `count` password-reset emails, each to its own patient.
async fn enqueue_many(app: &TestApp, count: usize) -> Vec<NewMessage> {
    let messages: Vec<NewMessage> = (0..count)
        .map(|n| {
            reset_message(
                Channel::Email,
                &format!("patient{n}@example.com"),
                Language::En,
            )
        })
        .collect();
    app.services
        .store
        .enqueue_messages(&messages, app.clock.now_utc())
        .await
        .unwrap();
    messages
}

trait ClockNow {
    fn now_utc(&self) -> chrono::DateTime<chrono::Utc>;
}

impl ClockNow for carekey_domain::clock::ManualClock {
    fn now_utc(&self) -> chrono::DateTime<chrono::Utc> {
        carekey_domain::clock::Clock::now(self)
    }
}

fn senders_with_email(app: &TestApp, email: Arc<dyn Sender>) -> Senders {
    let defaults = carekey::delivery::senders(&app.settings).unwrap();
    Senders { email, ..defaults }
}

async fn status(app: &TestApp, id: MessageId) -> MessageRecord {
    app.services.message_status(id).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spanish_patient_gets_a_multipart_email_through_a_real_smtp_server() {
    let Some(sink) = SmtpSink::start().await else {
        return;
    };
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let message = reset_message(Channel::Email, "maria.garcia@example.com", Language::Es);
    enqueue(&app, &message).await;
    let worker = carekey::delivery::worker(
        &app.settings,
        &app.services,
        senders_with_email(&app, smtp(&sink.url())),
    );
    assert_eq!(worker.run_once().await.unwrap(), 1);

    let received = sink.messages();
    assert_eq!(received.len(), 1);
    let mail = mailparse::parse_mail(&received[0]).unwrap();
    assert_eq!(
        mail.headers.get_first_value("To").as_deref(),
        Some("maria.garcia@example.com")
    );
    assert_eq!(
        mail.headers.get_first_value("Subject").as_deref(),
        Some("Cambie la contraseña de su portal de CareKey Clinic")
    );
    assert_eq!(mail.ctype.mimetype, "multipart/alternative");
    let parts: Vec<_> = mail
        .subparts
        .iter()
        .map(|p| p.ctype.mimetype.clone())
        .collect();
    assert_eq!(parts, ["text/plain", "text/html"]);
    let text = mail.subparts[0].get_body().unwrap();
    assert!(
        text.contains("Hola, María:")
            && text.contains("482913")
            && text.contains("reset?token=tok"),
        "{text}"
    );
    let html = mail.subparts[1].get_body().unwrap();
    assert!(html.contains(r#"<html lang="es">"#));

    let record = status(&app, message.id).await;
    assert_eq!(record.status, MessageStatus::Sent);
    assert_eq!(
        record.provider_id,
        mail.headers.get_first_value("Message-ID"),
        "we keep the Message-ID"
    );
    assert_eq!(
        (record.data.code, record.data.link),
        (None, None),
        "the code and link are not kept after sending"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_smtp_outage_is_retried_and_the_message_arrives_once() {
    let port = free_port();
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let message = reset_message(Channel::Email, "alex@example.com", Language::En);
    enqueue(&app, &message).await;
    let url = format!("smtp://127.0.0.1:{port}");
    let worker = carekey::delivery::worker(
        &app.settings,
        &app.services,
        senders_with_email(&app, smtp(&url)),
    );

    worker.run_once().await.unwrap();
    let down = status(&app, message.id).await;
    assert_eq!((down.status, down.attempts), (MessageStatus::Queued, 1));
    assert!(
        down.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("SMTP"),
        "{down:?}"
    );
    assert_eq!(
        worker.run_once().await.unwrap(),
        0,
        "not retried before its backoff"
    );

    let Some(sink) = SmtpSink::start_on(port).await else {
        return;
    };
    app.advance(Duration::seconds(40));
    assert_eq!(worker.run_once().await.unwrap(), 1);
    app.advance(Duration::hours(2));
    assert_eq!(
        worker.run_once().await.unwrap(),
        0,
        "a sent message is never sent again"
    );
    assert_eq!(sink.messages().len(), 1);
    let up = status(&app, message.id).await;
    assert_eq!((up.status, up.attempts), (MessageStatus::Sent, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_last_attempt_a_message_is_failed_with_its_error_and_can_be_retried() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let message = reset_message(Channel::Email, "alex@example.com", Language::En);
    enqueue(&app, &message).await;
    let url = format!("smtp://127.0.0.1:{}", free_port());
    let worker = carekey::delivery::worker(
        &app.settings,
        &app.services,
        senders_with_email(&app, smtp(&url)),
    );
    for _ in 0..app.settings.delivery.max_attempts {
        worker.run_once().await.unwrap();
        app.advance(Duration::hours(2));
    }
    let failed = status(&app, message.id).await;
    assert_eq!(failed.status, MessageStatus::Failed);
    assert_eq!(failed.attempts, app.settings.delivery.max_attempts);
    assert!(failed.last_error.is_some());
    assert_eq!(
        worker.run_once().await.unwrap(),
        0,
        "failed messages stay failed"
    );

    app.services.retry_message(message.id).await.unwrap();
    assert_eq!(status(&app, message.id).await.status, MessageStatus::Queued);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn texts_and_calls_reach_the_provider_as_twilio_expects_them() {
    use base64::Engine;
    let provider = ProviderStandIn::start().await;
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let text = reset_message(Channel::Sms, "+12105550177", Language::En);
    let call = reset_message(Channel::Voice, "+12105550188", Language::Es);
    enqueue(&app, &text).await;
    enqueue(&app, &call).await;
    let defaults = carekey::delivery::senders(&app.settings).unwrap();
    let senders = Senders {
        sms: twilio(&provider, TwilioResource::Messages),
        voice: twilio(&provider, TwilioResource::Calls),
        ..defaults
    };
    let worker = carekey::delivery::worker(&app.settings, &app.services, senders);
    assert_eq!(worker.run_once().await.unwrap(), 2);

    let requests = provider.requests();
    assert_eq!(requests.len(), 2);
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT_SID}:{AUTH_TOKEN}"))
    );
    let sms = requests
        .iter()
        .find(|r| r.path.ends_with("/Messages.json"))
        .unwrap();
    assert_eq!(
        sms.path,
        format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json")
    );
    assert_eq!(sms.authorization.as_deref(), Some(basic.as_str()));
    assert_eq!(
        sms.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(sms.field("To"), Some("+12105550177"));
    assert_eq!(sms.field("From"), Some("+12105550000"));
    assert!(sms.field("Body").unwrap().contains("482913"));
    assert_eq!(
        sms.field("StatusCallback"),
        Some("https://portal.example/hooks/twilio/status")
    );

    let voice = requests
        .iter()
        .find(|r| r.path.ends_with("/Calls.json"))
        .unwrap();
    assert_eq!(voice.field("To"), Some("+12105550188"));
    let twiml = voice.field("Twiml").unwrap();
    assert_eq!(twiml.matches("4, 8, 2, 9, 1, 3.").count(), 2, "{twiml}");
    assert!(twiml.contains(r#"language="es-US""#));

    let sent_text = status(&app, text.id).await;
    assert_eq!(sent_text.status, MessageStatus::Sent);
    assert!(sent_text.provider_id.unwrap().starts_with("SM"));
    assert!(status(&app, call.id)
        .await
        .provider_id
        .unwrap()
        .starts_with("CA"));
}

fn with_twilio_sms(config: &mut Config) {
    config.public_url = "https://portal.example-clinic.org".into();
    config.sms = ProviderConfig {
        provider: "twilio".into(),
        account_sid: Some(ACCOUNT_SID.into()),
        auth_token: Some(AUTH_TOKEN.into()),
        from: Some("+12105550000".into()),
        ..ProviderConfig::default()
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_status_callbacks_count_only_with_a_valid_signature() {
    let provider = ProviderStandIn::start().await;
    let options = Options {
        configure: Some(with_twilio_sms),
        ..Options::default()
    };
    let app = spawn_app_with(Backend::Sqlite, options).await.unwrap();
    let text = reset_message(Channel::Sms, "+12105550177", Language::En);
    enqueue(&app, &text).await;
    let defaults = carekey::delivery::senders(&app.settings).unwrap();
    let senders = Senders {
        sms: twilio(&provider, TwilioResource::Messages),
        ..defaults
    };
    carekey::delivery::worker(&app.settings, &app.services, senders)
        .run_once()
        .await
        .unwrap();
    let sid = status(&app, text.id).await.provider_id.unwrap();

    let params: Vec<(String, String)> = vec![
        ("MessageSid".into(), sid.clone()),
        ("MessageStatus".into(), "delivered".into()),
        ("AccountSid".into(), ACCOUNT_SID.into()),
    ];
    // Signed over the configured public URL, not the address the request reached.
    let url = "https://portal.example-clinic.org/hooks/twilio/status";
    let post = |signature: String| {
        reqwest::Client::new()
            .post(app.url("/hooks/twilio/status"))
            .header("x-twilio-signature", signature)
            .form(&params)
            .send()
    };
    let forged = post(signature("wrong-token", url, &params)).await.unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(
        forged.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_signature"
    );
    assert_eq!(status(&app, text.id).await.status, MessageStatus::Sent);

    let genuine = post(signature(AUTH_TOKEN, url, &params)).await.unwrap();
    assert_eq!(genuine.status(), 204);
    assert_eq!(status(&app, text.id).await.status, MessageStatus::Delivered);
}

/// A sender that records what it was asked to send.
#[derive(Default)]
struct Recording {
    sent: Mutex<Vec<MessageId>>,
}

#[async_trait]
impl Sender for Recording {
    async fn send(
        &self,
        message: &MessageRecord,
        _: &Rendered,
    ) -> Result<Option<String>, SendError> {
        tokio::task::yield_now().await;
        self.sent.lock().unwrap().push(message.id);
        Ok(None)
    }
}

/// Runs a worker until it finds nothing due; returns how many messages it took.
async fn drain_worker(worker: &carekey_delivery::Worker) -> usize {
    let mut taken = 0;
    loop {
        match worker.run_once().await.unwrap() {
            0 => return taken,
            n => taken += n,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_workers_on_one_postgres_database_send_a_thousand_messages_once_each() {
    let Some(app) = spawn_app(Backend::Postgres).await else {
        return;
    };
    let messages = enqueue_many(&app, 1000).await;
    let recording = Arc::new(Recording::default());
    let senders = Senders {
        email: recording.clone(),
        sms: recording.clone(),
        voice: recording.clone(),
    };
    // Two workers with their own database pools, as two processes would have.
    let second_services = carekey::services(&app.settings, app.clock.clone())
        .await
        .unwrap();
    let workers = [
        carekey::delivery::worker(&app.settings, &app.services, senders.clone()),
        carekey::delivery::worker(&app.settings, &second_services, senders),
    ];
    let (a, b) = tokio::join!(drain_worker(&workers[0]), drain_worker(&workers[1]));
    assert!(a > 0 && b > 0, "both workers took part ({a} and {b})");
    let sent = recording.sent.lock().unwrap().clone();
    let unique: HashSet<_> = sent.iter().collect();
    assert_eq!(sent.len(), 1000, "{} sends for 1000 messages", sent.len());
    assert_eq!(unique.len(), 1000, "a message was sent twice");
    let expected: HashSet<_> = messages.iter().map(|m| m.id).collect();
    assert_eq!(
        unique.into_iter().copied().collect::<HashSet<_>>(),
        expected,
        "none missing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clinic_gateway_receives_signed_json_for_texts() {
    use axum::body::Bytes;
    use axum::http::HeaderMap;
    use axum::routing::post;
    let received: Arc<Mutex<Vec<(HeaderMap, Bytes)>>> = Arc::default();
    let record = received.clone();
    let gateway = axum::Router::new().route(
        "/gateway",
        post(move |headers: HeaderMap, body: Bytes| {
            let record = record.clone();
            async move {
                record.lock().unwrap().push((headers, body));
                axum::http::StatusCode::ACCEPTED
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/gateway", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, gateway).await });

    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let text = reset_message(Channel::Sms, "+12105550177", Language::Es);
    enqueue(&app, &text).await;
    let defaults = carekey::delivery::senders(&app.settings).unwrap();
    let webhook =
        carekey_delivery::webhook::WebhookSender::new(url, "gateway-secret".into()).unwrap();
    let senders = Senders {
        sms: Arc::new(webhook),
        ..defaults
    };
    carekey::delivery::worker(&app.settings, &app.services, senders)
        .run_once()
        .await
        .unwrap();

    let received = received.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    let (headers, body) = &received[0];
    let presented = headers["x-carekey-signature"].to_str().unwrap();
    assert_eq!(
        presented,
        carekey_delivery::webhook::signature("gateway-secret", body)
    );
    assert_ne!(
        presented,
        carekey_delivery::webhook::signature("other-secret", body)
    );
    let document: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(document["to"], "+12105550177");
    assert_eq!(document["language"], "es");
    assert!(document["body"].as_str().unwrap().contains("482913"));
    assert_eq!(status(&app, text.id).await.status, MessageStatus::Sent);
}

/// The worker's own loop claims batch after batch while earlier messages are
/// still being sent. On SQLite's one writer connection a claim must never wait
/// for a delivery that is not being polled (a deadlock the crash test caught).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_loop_drains_an_outbox_many_batches_deep() {
    let Some(sink) = SmtpSink::start().await else {
        return;
    };
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let messages = enqueue_many(&app, 120).await;
    let mut settings = app.settings.clone();
    settings.delivery.batch = 8;
    settings.delivery.concurrency = 4;
    let worker = carekey::delivery::worker(
        &settings,
        &app.services,
        senders_with_email(&app, smtp(&sink.url())),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run(async move {
        let _ = stopped.await;
    }));
    // A bound for liveness only: a stuck worker never gets there.
    for _ in 0..600 {
        if sink.messages().len() >= messages.len() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(sink.messages().len(), messages.len(), "every message sent");
    for message in &messages {
        assert_eq!(status(&app, message.id).await.status, MessageStatus::Sent);
    }
    let _ = stop.send(());
    running.await.unwrap();
}
