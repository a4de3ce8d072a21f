//! The audit trail of changes made through the API: [`record`] (called by the
//! `rbac::authorize` middleware after every successful change) compares the configuration
//! before and after and appends who, what, when, before and after, with secrets redacted, to
//! `data/audit.jsonl`. `GET /api/audit` reads it, newest first.

use axum::extract::State;

use super::ApiQuery as Query;
use axum::response::Response;
use chrono::Utc;
use http::Method;
use routerly_api::audit::{AuditActor, AuditChange, AuditEntry, AuditPage, AuditQuery};
use serde::Serialize;
use serde_json::Value;

use super::ApiError;
use super::auth::{AuthUser, Permission};
use crate::state::App;
use crate::store::Snapshot;
use crate::store::audit::redact;

/// What a handler adds to its audit entry for a change outside the config files (an API
/// key, a key rotation), set as a response extension. Never a secret.
#[derive(Debug, Clone)]
pub struct AuditDetail(pub Value);

/// Whether a successful call of this route is a change to audit (sessions are not).
pub fn is_audited(method: &Method, route_path: &str) -> bool {
    let mutating = [Method::POST, Method::PUT, Method::PATCH, Method::DELETE].contains(method);
    mutating && !route_path.starts_with("/api/auth/") && !route_path.ends_with("/test")
}

fn change(file: &str, id: Option<&str>, before: Value, after: Value) -> AuditChange {
    AuditChange {
        file: file.to_owned(),
        id: id.map(str::to_owned),
        before,
        after,
    }
}

/// Entities of one config file that differ between two snapshots, keyed by id.
fn diff_by_id<T: Serialize>(
    file: &str,
    id_of: impl Fn(&T) -> &str,
    before: &[T],
    after: &[T],
    changes: &mut Vec<AuditChange>,
) {
    let view = |item: &T| redact(&serde_json::to_value(item).unwrap_or(Value::Null));
    for old in before {
        let id = id_of(old);
        match after.iter().find(|new| id_of(new) == id) {
            Some(new) => {
                let (old, new) = (view(old), view(new));
                if old != new {
                    changes.push(change(file, Some(id), old, new));
                }
            }
            None => changes.push(change(file, Some(id), view(old), Value::Null)),
        }
    }
    for new in after {
        let id = id_of(new);
        if !before.iter().any(|old| id_of(old) == id) {
            changes.push(change(file, Some(id), Value::Null, view(new)));
        }
    }
}

/// The config changes between two snapshots, secrets redacted.
pub fn config_changes(before: &Snapshot, after: &Snapshot) -> Vec<AuditChange> {
    let mut changes = Vec::new();
    let settings_before = redact(&serde_json::to_value(&before.settings).unwrap_or(Value::Null));
    let settings_after = redact(&serde_json::to_value(&after.settings).unwrap_or(Value::Null));
    if settings_before != settings_after {
        changes.push(change(
            "settings.json",
            None,
            settings_before,
            settings_after,
        ));
    }
    diff_by_id(
        "models.json",
        |m: &routerly_core::config::ModelConfig| &m.id,
        &before.models.models,
        &after.models.models,
        &mut changes,
    );
    diff_by_id(
        "projects.json",
        |p: &routerly_core::config::Project| &p.id,
        &before.projects.projects,
        &after.projects.projects,
        &mut changes,
    );
    diff_by_id(
        "users.json",
        |u: &routerly_core::config::User| &u.id,
        &before.users.users,
        &after.users.users,
        &mut changes,
    );
    diff_by_id(
        "roles.json",
        |r: &routerly_core::config::CustomRole| &r.id,
        &before.roles.roles,
        &after.roles.roles,
        &mut changes,
    );
    diff_by_id(
        "limits.json",
        |l: &routerly_core::limits::Limit| &l.id,
        &before.limits.limits,
        &after.limits.limits,
        &mut changes,
    );
    changes
}

/// The audit entry of a successful change, built without holding on to the response (its
/// body is not `Sync`), and a future that appends it; a failure to write is logged, since
/// the change itself has happened.
pub fn record(
    app: &App,
    caller: Option<&AuthUser>,
    address: std::net::IpAddr,
    action: String,
    path: &str,
    before: &Snapshot,
    response: &Response,
) -> impl Future<Output = ()> + Send + 'static {
    let after = app.store.snapshot();
    let detail = response
        .extensions()
        .get::<AuditDetail>()
        .map_or(Value::Null, |detail| redact(&detail.0));
    let actor = match caller {
        Some(caller) => caller.actor(),
        None => AuditActor::Setup,
    };
    let entry = AuditEntry {
        id: uuid::Uuid::now_v7().to_string(),
        at: Utc::now(),
        actor,
        address: Some(address.to_string()),
        action,
        path: path.to_owned(),
        status: response.status().as_u16(),
        changes: config_changes(before, &after),
        detail,
    };
    let entry = serde_json::to_value(entry).unwrap_or(Value::Null);
    let app = app.clone();
    async move {
        if let Err(error) = app.audit.append(&entry).await {
            tracing::error!(%error, "cannot append to the audit log");
        }
    }
}

/// `GET /api/audit`: entries newest first, paged. An entry the log holds in another shape
/// (a hand edit) is left out of the page with a warning.
#[utoipa::path(get, path = "/api/audit", tag = "audit", operation_id = "list_audit",
    params(AuditQuery), responses((status = 200, body = AuditPage)))]
pub async fn list(
    State(app): State<App>,
    user: AuthUser,
    Query(query): Query<AuditQuery>,
) -> Result<axum::Json<AuditPage>, ApiError> {
    user.require(Permission::SettingsWrite)?;
    let limit = query.limit.unwrap_or(50).clamp(1, 1000);
    let offset = query.offset.unwrap_or(0);
    let (page, total) = app
        .audit
        .page(limit, offset)
        .await
        .map_err(ApiError::internal)?;
    let entries = page
        .into_iter()
        .filter_map(|entry| match serde_json::from_value(entry) {
            Ok(entry) => Some(entry),
            Err(error) => {
                tracing::warn!(%error, "an audit log entry has an unknown shape; left out");
                None
            }
        })
        .collect();
    Ok(axum::Json(AuditPage {
        entries,
        total,
        limit,
        offset,
    }))
}
