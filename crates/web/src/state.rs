//! What every handler can reach: the use cases and the web settings.

use crate::metrics::Metrics;
use axum::http::HeaderName;
use carekey_service::Services;
use std::sync::Arc;
use url::Url;

/// Settings the web layer needs from configuration.
#[derive(Debug, Clone)]
pub struct WebSettings {
    /// The only base for links the service builds (never the Host header).
    pub public_url: Url,
    /// The clinic's name, shown on every page.
    pub clinic_name: String,
    /// The clinic's help line, offered wherever a patient may be stuck.
    pub help_phone: String,
    /// Development conveniences (the dev mailbox).
    pub dev: bool,
    /// A header set by a trusted reverse proxy holding the client's address.
    pub trusted_proxy_header: Option<HeaderName>,
    /// Auth tokens that may sign Twilio status callbacks.
    pub twilio_auth_tokens: Vec<String>,
    /// The development senders' folder, shown at `/dev/mailbox` when `dev` is on.
    pub mailbox_dir: std::path::PathBuf,
}

impl WebSettings {
    /// Cookies are `Secure` and `__Host-` prefixed when the portal is served over https.
    pub fn secure_cookies(&self) -> bool {
        self.public_url.scheme() == "https"
    }
}

#[derive(Clone)]
pub struct AppState {
    pub services: Services,
    pub settings: Arc<WebSettings>,
    pub metrics: Arc<Metrics>,
}

impl AppState {
    pub fn new(services: Services, settings: WebSettings) -> Self {
        Self {
            services,
            settings: Arc::new(settings),
            metrics: Arc::new(Metrics::new()),
        }
    }
}
