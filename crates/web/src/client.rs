//! Who is calling: the client's address (from the socket, or from a trusted
//! proxy's header when configured) and user agent, for audit and sessions.

use crate::state::AppState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use carekey_service::ClientInfo;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

/// Extracts [`ClientInfo`] from a request.
pub struct Client(pub ClientInfo);

impl FromRequestParts<AppState> for Client {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let socket_ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(address)| address.ip());
        let proxied_ip = state
            .settings
            .trusted_proxy_header
            .as_ref()
            .and_then(|name| {
                // The right-most entry is the one our own proxy appended.
                let value = parts.headers.get(name)?.to_str().ok()?;
                value.rsplit(',').next()?.trim().parse::<IpAddr>().ok()
            });
        let user_agent = parts
            .headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(256).collect());
        Ok(Client(ClientInfo {
            ip: proxied_ip.or(socket_ip).map(|ip| ip.to_string()),
            user_agent,
        }))
    }
}
