//! CareKey's HTTP face: the JSON API of shared/API.md, the patient pages, and
//! the operational endpoints, assembled into one axum router.
//!
//! Handlers are thin: they extract, call one service function, and map the
//! result — to problem+json for the API ([`error`]) or to a page ([`pages`]).

pub mod api;
pub mod client;
pub mod csrf;
pub mod error;
pub mod i18n;
pub mod metrics;
pub mod pages;
pub mod security;
pub mod session_cookie;
pub mod state;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use axum::Router;
use std::time::Duration;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use state::{AppState, WebSettings};

/// Largest request body accepted anywhere (a FHIR import has its own limit).
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

/// The whole application: API, pages, operations, with every cross-cutting layer.
pub fn app(state: AppState) -> Router {
    let (api_router, mut openapi) = api::router().split_for_parts();
    api::complete_document(&mut openapi);
    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .merge(api_router)
        .merge(pages::router())
        .fallback(pages::not_found)
        .method_not_allowed_fallback(pages::method_not_allowed)
        .layer(axum::Extension(std::sync::Arc::new(openapi)))
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(axum::middleware::from_fn_with_state(state.clone(), security::headers))
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ))
        .layer(
            // Spans carry the method and path only: a query string can hold a reset token.
            TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                tracing::info_span!("http", method = %request.method(), path = %request.uri().path())
            }),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}
