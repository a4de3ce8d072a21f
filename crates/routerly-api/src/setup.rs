//! `/api/setup`: creating the first admin.

use serde::{Deserialize, Serialize};
use ts_rs::TS;
use utoipa::ToSchema;

/// `GET /api/setup/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct SetupStatus {
    /// No user exists yet: the first admin is still to be created.
    pub needs_setup: bool,
    /// Creating the first admin from where the caller is needs the one-time setup token.
    pub setup_token_required: bool,
}

/// Body of `POST /api/setup/first-admin`; the answer is a [`crate::auth::Session`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct FirstAdmin {
    /// The admin's email address.
    pub email: String,
    /// The admin's password (8 characters at least).
    pub password: String,
    /// The setup token `routerly serve` printed at first start; needed from another machine.
    #[serde(default)]
    #[ts(optional = nullable)]
    pub setup_token: Option<String>,
}
