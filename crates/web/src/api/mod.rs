//! The JSON API of shared/API.md. Every route is registered through
//! [`OpenApiRouter`], so a route cannot exist without being in
//! `/api/openapi.json`.

mod enrollment;
mod hooks;
mod me;
mod ops;
pub mod passwords;
mod recovery;
mod sessions;
mod staff;

use crate::state::AppState;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "CareKey",
        description = "Account access and recovery for a patient portal (shared/API.md).",
        version = "1"
    ),
    tags(
        (name = "sessions", description = "Patient sign-in and sessions"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
        (name = "hooks", description = "Reports from message providers"),
        (name = "passwords", description = "Password feedback and changes"),
        (name = "recovery", description = "Forgotten passwords and usernames"),
        (name = "enrollment", description = "First access with a clinic-issued activation code"),
        (name = "staff", description = "The staff console: patient records, assisted recovery, audit"),
        (name = "admin", description = "Policy and staff accounts (portal administrators)")
    )
)]
struct ApiDoc;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(sessions::router())
        .merge(ops::router())
        .merge(hooks::router())
        .merge(passwords::router())
        .merge(recovery::router())
        .merge(enrollment::router())
        .merge(me::router())
        .merge(staff::router())
}
