//! `/api/roles`: the built-in global roles and custom ones, each a set of permissions.

use serde::{Deserialize, Serialize};
use ts_rs::TS;
use utoipa::ToSchema;

/// A global role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct RoleView {
    /// Its id (`admin`, `operator`, `viewer`, or a custom role's lowercase id).
    pub id: String,
    /// Its display name.
    pub name: String,
    /// Its permissions (such as `model:read`), in a fixed order.
    pub permissions: Vec<String>,
    /// Whether it is built in (built-in roles cannot be changed or removed).
    pub builtin: bool,
}

/// `GET /api/roles`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct RoleList {
    /// Built-in roles first, then custom ones.
    pub roles: Vec<RoleView>,
    /// Every permission a role may hold.
    pub permissions: Vec<String>,
}

/// Body of `POST /api/roles`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct CreateRole {
    /// Its id: 1 to 64 lowercase letters, digits, `-` and `_`; not a built-in role's.
    #[schema(pattern = r"^[a-z0-9_-]{1,64}$")]
    pub id: String,
    /// Its display name (not blank, one line, at most 128 characters).
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
        max_length = 128
    )]
    pub name: String,
    /// At least one permission; the caller must hold each of them.
    pub permissions: Vec<String>,
}

/// Body of `PATCH /api/roles/{id}`: what is absent is kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct UpdateRole {
    /// New display name (not blank, one line, at most 128 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
        max_length = 128
    )]
    pub name: Option<String>,
    /// New permissions, replacing the old ones (at least one; held by the caller before and
    /// after the change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub permissions: Option<Vec<String>>,
}
