//! The `carekey` binary's library half: configuration, start-up wiring and the
//! demo seed, kept here so the end-to-end tests start exactly what ships.

pub mod config;
pub mod delivery;
pub mod demo;

use anyhow::Context;
use carekey_domain::clock::Clock;
use carekey_service::hashing::PasswordHasher;
use carekey_service::{ServiceSettings, Services};
use carekey_store::StoreOptions;
use carekey_web::{AppState, WebSettings};
use config::Settings;
use std::net::SocketAddr;
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
            ..ServiceSettings::new(settings.public_url.as_str(), &settings.default_region)
        }),
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

/// Serves `app` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
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
