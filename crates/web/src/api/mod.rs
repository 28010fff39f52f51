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

/// The answers every route of a kind can give besides its own, added to the
/// document in one place so it is complete (schemathesis checks every
/// answer against it): a body route can refuse the body (413, 415, 422); a
/// route behind a session can find none (401), and a staff route a role or
/// second factor that does not reach it (403). Every error is a problem
/// document, `application/problem+json`.
pub fn complete_document(document: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    let problem = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    PROBLEM_JSON,
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build(),
        )
    };
    for (path, item) in document.paths.paths.iter_mut() {
        let staff = (path.starts_with("/api/v1/staff/") && path != "/api/v1/staff/sessions")
            || path.starts_with("/api/v1/admin/");
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            let behind_session = staff
                || operation
                    .security
                    .as_ref()
                    .is_some_and(|requirements| !requirements.is_empty());
            let mut extra = Vec::new();
            if operation.request_body.is_some() {
                extra.push((
                    "413",
                    "`payload_too_large`: the body is over the size limit",
                ));
                extra.push(("415", "`unsupported_media_type`: the body is not JSON"));
                extra.push(("422", "`invalid_request`: the body cannot be read"));
            }
            if behind_session {
                extra.push(("401", "`unauthenticated`: no live session"));
            }
            if staff {
                extra.push(("403", "`forbidden` (role) or `totp_enrollment_required`"));
            }
            let responses = &mut operation.responses.responses;
            for (status, description) in extra {
                responses
                    .entry(status.to_owned())
                    .or_insert_with(|| problem(description));
            }
            for (status, response) in responses.iter_mut() {
                let RefOr::T(response) = response else {
                    continue;
                };
                if status.starts_with('4') || status.starts_with('5') {
                    if let Some(content) = response.content.shift_remove("application/json") {
                        response.content.insert(PROBLEM_JSON.to_owned(), content);
                    }
                }
            }
        }
    }
}

const PROBLEM_JSON: &str = "application/problem+json";

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
