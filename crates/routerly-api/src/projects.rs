//! `/api/projects`: projects, the models they use (with aliases and routing prompts), their
//! tokens and their routing policies. `{project}` in a path is the project's id, slug or
//! name. A token's secret is in its creation answer only; the service keeps its hash.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use ts_rs::TS;
use utoipa::ToSchema;

use crate::models::TimeoutOverrides;
use crate::settings::nullable;

/// A model as a project uses it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct ProjectModelView {
    /// The registered model's id.
    pub model_id: String,
    /// Other names clients may use for it in this project.
    pub aliases: Vec<String>,
    /// What this model is good at, for the `llm` routing policy.
    #[ts(type = "string | null")]
    pub routing_prompt: Option<String>,
}

/// `GET /api/projects/{project}/models` (and the answer to adding one): in the project's
/// fallback order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct ProjectModelList {
    /// The project's models, first tried first.
    pub models: Vec<ProjectModelView>,
}

/// A project token as listed: never its secret or its hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct TokenView {
    /// Stable id (`tok_…`), as usage records name it.
    pub id: String,
    /// A short visible part of the token, such as `sk-lr-AbCd…wXyZ`.
    pub snippet: String,
    /// Labels, for people.
    pub labels: Vec<String>,
    /// The project models it may use; empty: all of them.
    pub models: Vec<String>,
    /// When it stops working; `null`: never.
    #[ts(type = "string | null")]
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked; `null` while it is live.
    #[ts(type = "string | null")]
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it was created.
    #[ts(type = "string")]
    pub created_at: DateTime<Utc>,
}

/// `GET /api/projects/{project}/tokens`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct TokenList {
    /// Every token, revoked ones included, oldest first.
    pub tokens: Vec<TokenView>,
}

/// `POST /api/projects/{project}/tokens`: the only answer that carries the token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct CreatedToken {
    /// The token as it will be listed.
    #[serde(flatten)]
    pub view: TokenView,
    /// The token (`sk-lr-…`), for `Authorization: Bearer`; shown this once.
    pub token: String,
    /// The project it belongs to.
    pub project_id: String,
}

/// One routing policy: its type, whether it takes part, and its type's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct PolicyView {
    /// The policy type (one of `RoutingView::types`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Whether it takes part in routing (default `true`).
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// The type's configuration (camelCase members, as PRODUCT.md documents each type's).
    #[serde(default)]
    #[ts(type = "Record<string, unknown>")]
    #[schema(value_type = Object)]
    pub config: Value,
}

fn enabled_by_default() -> bool {
    true
}

/// A project's routing: its ordered policies and how often a failing model is retried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct RoutingView {
    /// The policies, most important first.
    pub policies: Vec<PolicyView>,
    /// Retries on the same model after a retryable failure, before the next candidate.
    pub retries: u32,
    /// Every policy type there is (in `GET`/`PUT /api/projects/{project}/policies` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[ts(as = "Option<Vec<String>>", optional)]
    pub types: Vec<String>,
}

/// Body of `PUT /api/projects/{project}/policies`: the whole routing, replaced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct ReplaceRouting {
    /// The policies, most important first; each type at most once.
    pub policies: Vec<PolicyView>,
    /// Retries per model, 0 to 10; absent: unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(maximum = 10)]
    pub retries: Option<u32>,
}

/// A project as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct ProjectView {
    /// Stable id.
    pub id: String,
    /// Its name, unique.
    pub name: String,
    /// Its URL-friendly name, unique.
    pub slug: String,
    /// Its models in fallback order.
    pub models: Vec<ProjectModelView>,
    /// Its tokens.
    pub tokens: Vec<TokenView>,
    /// Who holds which role in it.
    pub members: Vec<ProjectMemberRef>,
    /// Timeouts that replace the models' and the service's for its calls.
    pub timeouts: TimeoutOverrides,
    /// Its routing.
    pub routing: RoutingView,
    /// Whether a translation that would leave something out answers 400 instead.
    pub strict_translation: bool,
    /// When it was created.
    #[ts(type = "string")]
    pub created_at: DateTime<Utc>,
}

/// A member as a project lists it (`GET /api/projects/{project}/members` adds the email).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct ProjectMemberRef {
    /// The user's id.
    pub user_id: String,
    /// `viewer`, `editor` or `admin`.
    pub role: String,
}

/// `GET /api/projects`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
pub struct ProjectList {
    /// The projects the caller may read.
    pub projects: Vec<ProjectView>,
}

/// Body of `POST /api/projects`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct CreateProject {
    /// Its name (not blank, one line, at most 128 characters), unique.
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
        max_length = 128
    )]
    pub name: String,
    /// Its slug: lowercase letters, digits and dashes; absent: made from the name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$")]
    pub slug: Option<String>,
    /// Timeouts for its calls.
    #[serde(default)]
    #[ts(as = "Option<TimeoutOverrides>", optional)]
    pub timeouts: TimeoutOverrides,
    /// Refuse translations that would leave something out (default `false`).
    #[serde(default)]
    #[ts(as = "Option<bool>", optional)]
    pub strict_translation: bool,
}

/// Body of `PATCH /api/projects/{project}`: what is absent is kept.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct UpdateProject {
    /// A new name (not blank, one line, at most 128 characters), unique.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$",
        max_length = 128
    )]
    pub name: Option<String>,
    /// New timeouts, replacing the old ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub timeouts: Option<TimeoutOverrides>,
    /// Refuse translations that would leave something out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub strict_translation: Option<bool>,
    /// The project's model ids in their new (fallback) order: each of them exactly once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub model_order: Option<Vec<String>>,
}

/// Body of `POST /api/projects/{project}/models`: adds a model, or replaces the aliases and
/// prompt of one the project has.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct AddProjectModel {
    /// A registered model's id.
    pub model_id: String,
    /// Other names for it in this project (each naming no other of its models).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[ts(as = "Option<Vec<String>>", optional)]
    pub aliases: Vec<String>,
    /// What it is good at, for the `llm` routing policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub routing_prompt: Option<String>,
}

/// Body of `PATCH /api/projects/{project}/models/{model_id}`: what is absent is kept.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct UpdateProjectModel {
    /// New aliases, replacing the old ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub aliases: Option<Vec<String>>,
    /// A new routing prompt; `null` or `""` clears it.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[ts(optional, type = "string | null")]
    #[schema(value_type = Option<String>)]
    pub routing_prompt: Option<Option<String>>,
}

/// Body of `POST /api/projects/{project}/tokens`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// Labels, for people: at most 32; each is trimmed and blank ones are left out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[ts(as = "Option<Vec<String>>", optional)]
    #[schema(max_items = 32)]
    pub labels: Vec<String>,
    /// The project models it may use; absent or empty: all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[ts(as = "Option<Vec<String>>", optional)]
    pub models: Vec<String>,
    /// When it stops working (in the future); absent: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "string")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// Body of `PATCH /api/projects/{project}/tokens/{token_id}`: what is absent is kept.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
pub struct UpdateToken {
    /// New labels: at most 32; each is trimmed and blank ones are left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(max_items = 32)]
    pub labels: Option<Vec<String>>,
    /// New models (empty: all of the project's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub models: Option<Vec<String>>,
    /// A new expiry in the future; `null` removes it.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[ts(optional, type = "string | null")]
    #[schema(value_type = Option<String>)]
    pub expires_at: Option<Option<DateTime<Utc>>>,
}
