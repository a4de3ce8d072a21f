//! First-admin setup: only while no user exists, and from anywhere but loopback only
//! with the one-time setup token printed at first start.

use axum::extract::State;
use routerly_api::auth::Session;
use routerly_api::setup::{FirstAdmin, SetupStatus};
use subtle::ConstantTimeEq;

use super::auth::{check_new_password, hash_new_password, start_session};
use super::{ApiError, ApiJson, ErrorCode};
use crate::net::ClientAddr;
use crate::state::App;

/// `GET /api/setup/status`.
#[utoipa::path(get, path = "/api/setup/status", operation_id = "setup_status", tag = "setup", security(()),
    responses((status = 200, body = SetupStatus)))]
pub async fn status(
    State(app): State<App>,
    ClientAddr(client): ClientAddr,
    headers: http::HeaderMap,
) -> axum::Json<SetupStatus> {
    let needs_setup = app.store.snapshot().users.users.is_empty();
    axum::Json(SetupStatus {
        needs_setup,
        setup_token_required: needs_setup && !is_local(client, &headers),
    })
}

/// Whether the caller is on this machine: its address (see [`ClientAddr`]) is loopback,
/// and the request was not forwarded (a proxy on this host that is not listed in
/// `trusted_proxies` forwards for callers anywhere).
fn is_local(client: std::net::IpAddr, headers: &http::HeaderMap) -> bool {
    client.is_loopback()
        && !headers.contains_key(http::header::FORWARDED)
        && !headers.contains_key("x-forwarded-for")
}

/// `POST /api/setup/first-admin`: creates the first admin and logs them in.
#[utoipa::path(post, path = "/api/setup/first-admin", operation_id = "create_first_admin", tag = "setup", security(()),
    request_body = FirstAdmin, responses((status = 201, body = Session)))]
pub async fn first_admin(
    State(app): State<App>,
    ClientAddr(client): ClientAddr,
    headers: http::HeaderMap,
    ApiJson(body): ApiJson<FirstAdmin>,
) -> Result<(http::StatusCode, axum::Json<Session>), ApiError> {
    if !app.store.snapshot().users.users.is_empty() {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "setup is already done: an admin exists; log in instead",
        ));
    }
    if !is_local(client, &headers) {
        let expected = app.home.read_setup_token().map_err(ApiError::internal)?;
        let presented = body.setup_token.as_deref().unwrap_or_default();
        let matches = expected.as_deref().is_some_and(|expected| {
            bool::from(
                expected
                    .trim()
                    .as_bytes()
                    .ct_eq(presented.trim().as_bytes()),
            )
        });
        if !matches {
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                "creating the first admin from another machine needs the setup token that `routerly serve` printed at first start (also in config/setup-token)",
            ));
        }
    }
    let user_id = create_first_admin(&app, &body.email, &body.password).await?;
    let session = start_session(&app, &app.store.snapshot(), &user_id).await?;
    Ok((http::StatusCode::CREATED, axum::Json(session)))
}

/// Creates the first admin (also used for `ROUTERLY_ADMIN_EMAIL` at start); refuses if
/// any user exists.
pub async fn create_first_admin(
    app: &App,
    email: &str,
    password: &str,
) -> Result<String, ApiError> {
    let email = email.trim().to_owned();
    if !email.contains('@') {
        return Err(ApiError::invalid("email", "the email address is not valid"));
    }
    check_new_password(password)?;
    let password_hash = hash_new_password(app, password.to_owned()).await?;
    let user_id = uuid::Uuid::new_v4().to_string();
    let new_id = user_id.clone();
    app.store
        .update(move |draft| {
            if !draft.users.users.is_empty() {
                return Err(ApiError::new(
                    ErrorCode::Conflict,
                    "setup is already done: an admin exists",
                ));
            }
            draft.users.users.push(routerly_core::config::User {
                id: new_id,
                email,
                password_hash,
                role: "admin".to_owned(),
                created_at: chrono::Utc::now(),
            });
            Ok(())
        })
        .await?;
    if let Err(error) = app.home.remove_setup_token() {
        tracing::warn!("could not remove the used setup token: {error}");
    }
    Ok(user_id)
}
