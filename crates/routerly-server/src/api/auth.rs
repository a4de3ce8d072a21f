//! Management sessions: passwords, signed access tokens (JWT, HS256) and rotating
//! refresh tokens, and the extractor that authenticates every `/api` call.

use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::{FromRequestParts, State};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use hmac::{Hmac, Mac};
use http::request::Parts;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{ApiError, ApiJson, ErrorCode};
use crate::state::App;
use crate::store::config::Snapshot;

/// How long an access token is valid.
pub const ACCESS_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);
/// How long a refresh token is valid.
pub const REFRESH_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// The key that signs access tokens, derived from the master key.
pub struct SessionKeys {
    signing_key: [u8; 32],
}

impl SessionKeys {
    /// Keys from 32 bytes of secret material.
    pub fn new(signing_key: [u8; 32]) -> Self {
        SessionKeys { signing_key }
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.signing_key).expect("HMAC takes any key length")
    }

    /// A signed access token for `user`.
    pub fn issue_access_token(&self, claims: &AccessClaims) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize"));
        let signing_input = format!("{header}.{payload}");
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signing_input}.{signature}")
    }

    /// The claims of a valid, unexpired access token.
    pub fn verify_access_token(&self, token: &str) -> Option<AccessClaims> {
        let (signing_input, signature) = token.rsplit_once('.')?;
        let (header, payload) = signing_input.split_once('.')?;
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
        if header.get("alg")? != "HS256" {
            return None;
        }
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        mac.verify_slice(&signature).ok()?;
        let claims: AccessClaims =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        (claims.exp > Utc::now().timestamp()).then_some(claims)
    }
}

/// What an access token says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user's id.
    pub sub: String,
    /// The user's email.
    pub email: String,
    /// The user's global role.
    pub role: String,
    /// Issued at (unix seconds).
    pub iat: i64,
    /// Expires at (unix seconds).
    pub exp: i64,
}

/// Hashes a password with argon2id.
pub fn hash_password(password: &str) -> Result<String, ApiError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(ApiError::internal)
}

/// Whether `password` matches the stored hash.
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|hash| {
            Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Checks a new password's strength.
pub fn check_new_password(password: &str) -> Result<(), ApiError> {
    if password.chars().count() < 8 {
        return Err(ApiError::invalid(
            "password",
            "the password must have at least 8 characters",
        ));
    }
    Ok(())
}

/// Permissions that `/api` routes require.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Read models (keys masked).
    ModelRead,
    /// Create, change and remove models.
    ModelWrite,
    /// Read projects, their usage.
    ProjectRead,
    /// Change projects, their models and tokens.
    ProjectWrite,
    /// Read usage reports.
    ReportRead,
}

/// Whether the global `role` grants `permission` (built-in roles; custom roles come later).
fn role_allows(role: &str, permission: Permission) -> bool {
    match role {
        "admin" | "operator" => true,
        "viewer" => matches!(
            permission,
            Permission::ModelRead | Permission::ProjectRead | Permission::ReportRead
        ),
        _ => false,
    }
}

/// The authenticated caller of an `/api` route.
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// Their claims.
    pub claims: AccessClaims,
}

impl AuthUser {
    /// Fails with 403 unless the caller holds `permission`.
    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        if role_allows(&self.claims.role, permission) {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::Forbidden,
                format!("your role `{}` does not allow this", self.claims.role),
            ))
        }
    }
}

impl FromRequestParts<App> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::Unauthenticated,
                    "log in first: no access token was sent",
                )
            })?;
        let claims = app
            .session_keys
            .verify_access_token(token.trim())
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::Unauthenticated,
                    "the access token is invalid or expired",
                )
            })?;
        if app
            .store
            .snapshot()
            .users
            .users
            .iter()
            .all(|user| user.id != claims.sub)
        {
            return Err(ApiError::new(
                ErrorCode::Unauthenticated,
                "this user no longer exists",
            ));
        }
        Ok(AuthUser { claims })
    }
}

fn hash_refresh_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn new_refresh_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("rt_{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Issues an access token and a refresh token in a new session family for `user_id`.
pub async fn start_session(
    app: &App,
    snapshot: &Snapshot,
    user_id: &str,
) -> Result<Value, ApiError> {
    let family_id = uuid::Uuid::new_v4().to_string();
    let refresh_token = new_refresh_token();
    let expires = Utc::now() + REFRESH_TOKEN_TTL;
    app.sessions
        .issue(
            family_id,
            hash_refresh_token(&refresh_token),
            user_id.to_owned(),
            expires,
        )
        .await
        .map_err(ApiError::internal)?;
    session_body(app, snapshot, user_id, &refresh_token)
}

fn session_body(
    app: &App,
    snapshot: &Snapshot,
    user_id: &str,
    refresh_token: &str,
) -> Result<Value, ApiError> {
    let user = snapshot
        .users
        .users
        .iter()
        .find(|user| user.id == user_id)
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthenticated, "this user no longer exists"))?;
    let now = Utc::now().timestamp();
    let claims = AccessClaims {
        sub: user.id.clone(),
        email: user.email.clone(),
        role: user.role.clone(),
        iat: now,
        exp: now + ACCESS_TOKEN_TTL.as_secs() as i64,
    };
    Ok(json!({
        "access_token": app.session_keys.issue_access_token(&claims),
        "refresh_token": refresh_token,
        "token_type": "Bearer",
        "expires_in": ACCESS_TOKEN_TTL.as_secs(),
        "user": { "id": user.id, "email": user.email, "role": user.role },
    }))
}

/// Body of `POST /api/auth/login`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    email: String,
    password: String,
}

/// `POST /api/auth/login`.
pub async fn login(
    State(app): State<App>,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<axum::Json<Value>, ApiError> {
    let snapshot = app.store.snapshot();
    let user = snapshot.user_by_email(body.email.trim());
    // Verify against a dummy hash when the user is unknown, so timing does not tell.
    let stored = user.map_or(DUMMY_HASH.as_str(), |user| user.password_hash.as_str());
    let password = body.password;
    let stored_owned = stored.to_owned();
    let valid = tokio::task::spawn_blocking(move || verify_password(&password, &stored_owned))
        .await
        .map_err(ApiError::internal)?;
    match user {
        Some(user) if valid => Ok(axum::Json(start_session(&app, &snapshot, &user.id).await?)),
        _ => Err(ApiError::new(
            ErrorCode::Unauthenticated,
            "wrong email or password",
        )),
    }
}

/// A real hash of a random password, verified when the email is unknown so that the
/// answer takes as long as for a known one.
static DUMMY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    hash_password(&uuid::Uuid::new_v4().to_string()).expect("hashing a password works")
});

/// Body of `POST /api/auth/refresh` and `/logout`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    refresh_token: String,
}

/// `POST /api/auth/refresh`: rotates the refresh token; reusing an old one revokes the
/// whole session family.
pub async fn refresh(
    State(app): State<App>,
    ApiJson(body): ApiJson<RefreshBody>,
) -> Result<axum::Json<Value>, ApiError> {
    let new_token = new_refresh_token();
    let session = app
        .sessions
        .rotate(
            hash_refresh_token(&body.refresh_token),
            hash_refresh_token(&new_token),
            Utc::now() + REFRESH_TOKEN_TTL,
        )
        .await
        .map_err(|error| {
            ApiError::new(ErrorCode::Unauthenticated, format!("{error}; log in again"))
        })?;
    let snapshot = app.store.snapshot();
    Ok(axum::Json(session_body(
        &app,
        &snapshot,
        &session.user_id,
        &new_token,
    )?))
}

/// `POST /api/auth/logout`: ends the session family of the refresh token.
pub async fn logout(
    State(app): State<App>,
    ApiJson(body): ApiJson<RefreshBody>,
) -> Result<http::StatusCode, ApiError> {
    if let Some(session) = app
        .sessions
        .find(hash_refresh_token(&body.refresh_token))
        .await
    {
        app.sessions
            .revoke_family(session.family_id)
            .await
            .map_err(ApiError::internal)?;
    }
    Ok(http::StatusCode::NO_CONTENT)
}

/// `GET /api/me`.
pub async fn me(user: AuthUser) -> axum::Json<Value> {
    axum::Json(
        json!({ "id": user.claims.sub, "email": user.claims.email, "role": user.claims.role }),
    )
}
