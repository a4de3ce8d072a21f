//! `/api/auth` and `/api/me`: sessions and the caller.

use serde::{Deserialize, Serialize};
use ts_rs::TS;
use utoipa::ToSchema;

/// Body of `POST /api/auth/login`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// The user's email address.
    pub email: String,
    /// The user's password.
    pub password: String,
}

/// Body of `POST /api/auth/refresh` and `POST /api/auth/logout`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct RefreshToken {
    /// The refresh token of the session.
    pub refresh_token: String,
}

/// A new session: the answer of login, refresh, first-admin setup and password change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct Session {
    /// A short-lived bearer token for `Authorization`.
    pub access_token: String,
    /// Exchanged at `POST /api/auth/refresh` for a new session; used once.
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    #[ts(type = "number")]
    pub expires_in: u64,
    /// Who is logged in.
    pub user: SessionUser,
}

/// The user a session belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct SessionUser {
    /// The user's id.
    pub id: String,
    /// The user's email address.
    pub email: String,
    /// The user's global role.
    pub role: String,
}

/// How the caller authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// A dashboard or CLI session (access token).
    Session,
    /// An admin API key.
    ApiKey,
}

/// `GET /api/me`: the caller and what they may do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct Me {
    /// The user's id (`api-key:ID` for an API key).
    pub id: String,
    /// The user's email (the key's name for an API key).
    pub email: String,
    /// The global role.
    pub role: String,
    /// How the caller authenticated.
    pub via: Via,
    /// What the global role grants everywhere (`model:read`, `project:write`, …).
    pub permissions: Vec<String>,
    /// Every project the caller is a member of, with what applies there.
    pub projects: Vec<MeProject>,
}

/// A project the caller is a member of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct MeProject {
    /// The project's id.
    pub id: String,
    /// The project's slug.
    pub slug: String,
    /// The project's name.
    pub name: String,
    /// The caller's role in the project: `viewer`, `editor` or `admin`.
    pub role: String,
    /// What applies inside this project: the global permissions and the project role's
    /// together.
    pub permissions: Vec<String>,
}

/// Body of `PUT`/`PATCH /api/me`: a new password; the answer is a new [`Session`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    /// The caller's password now.
    pub current_password: String,
    /// The new password (8 characters at least).
    pub new_password: String,
}
