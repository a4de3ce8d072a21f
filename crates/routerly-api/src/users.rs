//! `/api/users`: the people who log in, their global role and their project memberships.
//! A password hash never leaves the service; a password is only ever sent, never shown.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ts_rs::TS;
use utoipa::ToSchema;

/// One project a user is a member of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct UserProject {
    /// The project's id.
    pub id: String,
    /// The project's slug.
    pub slug: String,
    /// The user's role in it: `viewer`, `editor` or `admin`.
    pub role: String,
}

/// A user as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct UserView {
    /// Stable id.
    pub id: String,
    /// The email they log in with.
    pub email: String,
    /// Their global role: `admin`, `operator`, `viewer`, `none` or a custom role's id.
    pub role: String,
    /// The projects they are a member of.
    pub projects: Vec<UserProject>,
    /// When the user was created.
    #[ts(type = "string")]
    pub created_at: DateTime<Utc>,
}

/// `GET /api/users`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct UserList {
    /// Every user, oldest first.
    pub users: Vec<UserView>,
}

/// Body of `POST /api/users`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// Their email (with an `@`, at most 254 characters), unique among users whatever its
    /// case.
    #[schema(pattern = "@", max_length = 254)]
    pub email: String,
    /// Their password (at least 8 characters).
    #[schema(min_length = 8)]
    pub password: String,
    /// The global role: a built-in or custom role, granting no permission the caller does
    /// not hold. Absent: `viewer`, or `none` when `projects` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub role: Option<String>,
    /// Project memberships: `PROJECT` (as viewer) or `PROJECT:ROLE`, the project by id, slug
    /// or name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[ts(as = "Option<Vec<String>>", optional)]
    pub projects: Vec<String>,
}

/// Body of `PATCH /api/users/{user}`: what is absent is kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    /// A new email (with an `@`), unique among users whatever its case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(pattern = "@", max_length = 254)]
    pub email: Option<String>,
    /// A new password (at least 8 characters); every session of the user ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(min_length = 8)]
    pub password: Option<String>,
    /// A new global role (the last admin keeps `admin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub role: Option<String>,
    /// Memberships to add or change: `PROJECT` or `PROJECT:ROLE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub projects: Option<Vec<String>>,
}
