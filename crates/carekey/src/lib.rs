//! The `carekey` binary's library half: configuration, start-up wiring and the
//! demo seed, kept here so the end-to-end tests start exactly what ships.

pub mod config;
pub mod delivery;
pub mod demo;

use anyhow::Context;
use carekey_domain::clock::Clock;
use carekey_service::answer_floor::AnswerFloors;
use carekey_service::hashing::PasswordHasher;
use carekey_service::{ServiceSettings, Services};
use carekey_store::StoreOptions;
use carekey_web::{AppState, WebSettings};
use config::Settings;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Opens (and migrates) the database and builds the use cases.
pub async fn services(settings: &Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Services> {
    let store = carekey_store::connect(
        &settings.database_url,
        &StoreOptions {
            max_connections: settings.database_max_connections,
            migrate: true,
        },
    )
    .await
    .context("cannot open the database")?;
    let hasher = PasswordHasher::new(settings.argon2, settings.hash_workers)?;
    Ok(Services {
        store,
        clock,
        hasher,
        settings: Arc::new(ServiceSettings {
            fhir_mrn_system: settings.fhir.mrn_system.clone(),
            answer_floor: settings.answer_floor,
            ..ServiceSettings::new(settings.public_url.as_str(), &settings.default_region)
        }),
        floors: Arc::new(AnswerFloors::new(settings.answer_floor)),
    })
}

/// The web application over the given use cases.
pub fn app(settings: &Settings, services: Services) -> axum::Router {
    let web = WebSettings {
        public_url: settings.public_url.clone(),
        clinic_name: settings.clinic.name.clone(),
        help_phone: settings.clinic.help_phone.clone(),
        dev: settings.dev,
        trusted_proxy_header: settings.trusted_proxy_header.clone(),
        twilio_auth_tokens: delivery::twilio_auth_tokens(settings),
        mailbox_dir: delivery::mailbox_dir(&settings.data_dir),
    };
    carekey_web::app(AppState::new(services, web))
}

/// How long a client may take to send a request's headers. Without it a
/// client that sends a byte now and then (slowloris) holds a connection for
/// ever; bodies are bounded by the app's own request timeout.
pub const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How long open connections get to finish after `shutdown` resolves.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// Serves `app` on `listener` until `shutdown` resolves, then lets requests
/// in progress finish. HTTP/1.1 and HTTP/2 (prior knowledge), with the client
/// address available to handlers and a limit on the time to send headers.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;

    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder.http2().timer(TokioTimer::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait, then go on.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let app = app.clone();
        let service = hyper::service::service_fn(
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(remote));
                tower::ServiceExt::oneshot(app.clone(), request)
            },
        );
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain timeout");
    }
    Ok(())
}

/// The organisation's policy warnings (NIST 800-63B-4), read without changing
/// the database; `None` when it cannot be read (not reachable, not migrated yet).
pub async fn policy_warnings(settings: &Settings) -> Option<Vec<String>> {
    let options = StoreOptions {
        max_connections: 1,
        migrate: false,
    };
    let store = carekey_store::connect(&settings.database_url, &options)
        .await
        .ok()?;
    Some(store.load_policy().await.ok()?.nist_warnings())
}
