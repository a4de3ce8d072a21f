//! `/api/projects/{project}/members`: who holds which role in a project. A member is named
//! by their user id or email.

use serde::{Deserialize, Serialize};
use ts_rs::TS;
use utoipa::ToSchema;

/// One member of a project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct MemberView {
    /// The user's id.
    pub user_id: String,
    /// The user's email; `null` when the user no longer exists.
    #[ts(type = "string | null")]
    pub email: Option<String>,
    /// Their role in the project: `viewer`, `editor` or `admin`.
    pub role: String,
}

/// The members of a project (also the answer to adding or changing one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct MemberList {
    /// In the order they were added.
    pub members: Vec<MemberView>,
}

/// Body of `POST /api/projects/{project}/members`: adds a member, or changes their role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    /// The user's email or id (also accepted as `user_id`).
    #[serde(alias = "user_id")]
    pub email: String,
    /// Their role: `viewer`, `editor` or `admin`, granting nothing the caller does not hold.
    pub role: String,
}

/// Body of `PATCH /api/projects/{project}/members/{user}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct UpdateMember {
    /// Their new role: `viewer`, `editor` or `admin`.
    pub role: String,
}
