//! `/api/models`: registered models. API keys are encrypted before they are stored and
//! never returned in clear.

use axum::extract::{Path, State};
use routerly_core::catalogue;
use routerly_core::config::{
    Capabilities, ModelConfig, PriceTier, Pricing, ProviderKind, TimeoutOverrides,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{AuthUser, Permission};
use super::{ApiError, ApiJson, ErrorCode};
use crate::state::App;
use crate::store::secrets::{MasterKey, mask};

/// A model as the API shows it: the key masked.
pub fn model_view(model: &ModelConfig, key: &MasterKey) -> Value {
    let mut view = serde_json::to_value(model).expect("a model serializes");
    view["api_key"] = match &model.api_key {
        None => Value::Null,
        Some(stored) if stored.starts_with("env:") => Value::String(stored.clone()),
        Some(stored) => match key.decrypt(stored) {
            Ok(plain) => Value::String(mask(&plain)),
            Err(_) => Value::String("(unreadable)".to_owned()),
        },
    };
    view
}

/// `GET /api/models`.
pub async fn list(State(app): State<App>, user: AuthUser) -> Result<axum::Json<Value>, ApiError> {
    user.require(Permission::ModelRead)?;
    let snapshot = app.store.snapshot();
    let key = &app.store.master_key();
    // Each model's circuit breaker as routing sees it now (a model never called: closed).
    let circuits: std::collections::HashMap<String, &str> =
        app.routing.stats.circuits().into_iter().collect();
    let models: Vec<Value> = snapshot
        .models
        .models
        .iter()
        .map(|model| {
            let mut view = model_view(model, key);
            view["circuit"] = json!(circuits.get(&model.id).copied().unwrap_or("closed"));
            view
        })
        .collect();
    Ok(axum::Json(json!({ "models": models })))
}

/// `GET /api/models/{id}`.
pub async fn show(
    State(app): State<App>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    user.require(Permission::ModelRead)?;
    let snapshot = app.store.snapshot();
    let model = snapshot
        .model(&id)
        .ok_or_else(|| ApiError::not_found(format!("no model `{id}`")))?;
    Ok(axum::Json(model_view(model, &app.store.master_key())))
}

/// Body of `POST /api/models`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateModel {
    id: String,
    provider: String,
    #[serde(default)]
    endpoint: Option<String>,
    #[serde(default)]
    api_key: Option<String>,
    #[serde(default)]
    upstream_model: Option<String>,
    /// Prices given here override the catalogue's, field by field.
    #[serde(default)]
    pricing: PricingOverride,
    #[serde(default)]
    context_window: Option<u64>,
    /// Capabilities given here override the catalogue's, flag by flag.
    #[serde(default)]
    capabilities: Capabilities,
    #[serde(default)]
    timeouts: TimeoutOverrides,
    #[serde(default)]
    api_version: Option<String>,
}

/// Prices of `POST /api/models`; each one given replaces the catalogue's.
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct PricingOverride {
    input: Option<f64>,
    output: Option<f64>,
    cached_input: Option<f64>,
    cache_write: Option<f64>,
    long_context: Option<PriceTier>,
}

impl PricingOverride {
    /// `base` (the catalogue's prices, or zero) with the given prices in place.
    fn apply(self, base: Pricing) -> Pricing {
        Pricing {
            input: self.input.unwrap_or(base.input),
            output: self.output.unwrap_or(base.output),
            cached_input: self.cached_input.or(base.cached_input),
            cache_write: self.cache_write.or(base.cache_write),
            long_context: self.long_context.or(base.long_context),
        }
    }
}

/// `base` with every flag that `given` sets in place.
fn merge_capabilities(given: Capabilities, base: Capabilities) -> Capabilities {
    Capabilities {
        vision: given.vision.or(base.vision),
        tools: given.tools.or(base.tools),
        json: given.json.or(base.json),
        thinking: given.thinking.or(base.thinking),
        embedding: given.embedding.or(base.embedding),
    }
}

/// `GET /api/catalogue`: the providers and models Routerly knows, with their prices.
pub async fn catalogue(user: AuthUser) -> Result<axum::Json<Value>, ApiError> {
    user.require(Permission::ModelRead)?;
    Ok(axum::Json(
        serde_json::to_value(catalogue::catalogue()).expect("the catalogue serializes"),
    ))
}

/// Stores a key as given: `env:NAME` references as they are, anything else encrypted.
fn stored_key(key: &MasterKey, api_key: Option<String>) -> Result<Option<String>, ApiError> {
    match api_key.map(|api_key| api_key.trim().to_owned()) {
        None => Ok(None),
        Some(api_key) if api_key.is_empty() => Ok(None),
        Some(reference) if reference.starts_with("env:") => {
            let name = &reference["env:".len()..];
            if name.is_empty() {
                return Err(ApiError::invalid(
                    "api_key",
                    "`env:` must be followed by a variable name",
                ));
            }
            Ok(Some(reference))
        }
        Some(plain) => Ok(Some(key.encrypt(&plain))),
    }
}

fn check_endpoint(endpoint: &str) -> Result<(), ApiError> {
    match crate::proxy::probe::endpoint_refusal(endpoint) {
        Some(refusal) => Err(ApiError::invalid("endpoint", refusal)),
        None => Ok(()),
    }
}

/// Checks a model id's form.
pub fn check_id(field: &str, id: &str) -> Result<(), ApiError> {
    let valid = !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/@".contains(c));
    if !valid || id == "auto" {
        return Err(ApiError::invalid(
            field,
            format!(
                "`{id}` is not a valid id: use letters, digits and - _ . : / @ (and not `auto`)"
            ),
        ));
    }
    Ok(())
}

/// `POST /api/models`.
pub async fn create(
    State(app): State<App>,
    user: AuthUser,
    ApiJson(body): ApiJson<CreateModel>,
) -> Result<(http::StatusCode, axum::Json<Value>), ApiError> {
    user.require(Permission::ModelWrite)?;
    check_id("id", &body.id)?;
    let provider = ProviderKind::parse(&body.provider)
        .map_err(|message| ApiError::invalid("provider", message))?;
    let endpoint = match body.endpoint.filter(|endpoint| !endpoint.trim().is_empty()) {
        Some(endpoint) => endpoint.trim().trim_end_matches('/').to_owned(),
        None => provider
            .default_endpoint()
            .ok_or_else(|| {
                ApiError::invalid(
                    "endpoint",
                    format!("provider `{}` needs an endpoint", provider.as_str()),
                )
            })?
            .to_owned(),
    };
    check_endpoint(&endpoint)?;
    let upstream_model = body
        .upstream_model
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| body.id.clone());
    // What the caller leaves out comes from the catalogue, when it knows the model.
    let known = catalogue::model(provider, &upstream_model);
    let pricing = body
        .pricing
        .apply(known.map(|known| known.pricing).unwrap_or_default());
    let api_key = stored_key(&app.store.master_key(), body.api_key)?;
    let model = ModelConfig {
        upstream_model,
        id: body.id,
        provider,
        endpoint,
        api_key,
        pricing,
        context_window: body
            .context_window
            .or(known.and_then(|known| known.context_window)),
        capabilities: merge_capabilities(
            body.capabilities,
            known.map(|known| known.capabilities).unwrap_or_default(),
        ),
        timeouts: body.timeouts,
        api_version: body
            .api_version
            .filter(|version| !version.trim().is_empty()),
        created_at: chrono::Utc::now(),
    };
    let stored = model.clone();
    super::grants::update(&app, &user, move |draft| {
        if draft
            .models
            .models
            .iter()
            .any(|existing| existing.id == stored.id)
        {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!("a model `{}` already exists", stored.id),
            ));
        }
        draft.models.models.push(stored);
        Ok(())
    })
    .await?;
    Ok((
        http::StatusCode::CREATED,
        axum::Json(model_view(&model, &app.store.master_key())),
    ))
}

/// Body of `PATCH /api/models/{id}`: any subset of the fields.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateModel {
    #[serde(default)]
    endpoint: Option<String>,
    #[serde(default)]
    api_key: Option<String>,
    #[serde(default)]
    upstream_model: Option<String>,
    #[serde(default)]
    pricing: Option<Pricing>,
    #[serde(default)]
    context_window: Option<u64>,
    #[serde(default)]
    capabilities: Option<Capabilities>,
    #[serde(default)]
    timeouts: Option<TimeoutOverrides>,
    #[serde(default)]
    api_version: Option<String>,
}

/// `PATCH /api/models/{id}`.
pub async fn update(
    State(app): State<App>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateModel>,
) -> Result<axum::Json<Value>, ApiError> {
    user.require(Permission::ModelWrite)?;
    if let Some(endpoint) = &body.endpoint {
        check_endpoint(endpoint)?;
    }
    let api_key = match body.api_key {
        Some(api_key) => Some(stored_key(&app.store.master_key(), Some(api_key))?),
        None => None,
    };
    let updated = super::grants::update(&app, &user, move |draft| {
        let model = draft
            .models
            .models
            .iter_mut()
            .find(|model| model.id == id)
            .ok_or_else(|| ApiError::not_found(format!("no model `{id}`")))?;
        if let Some(endpoint) = body.endpoint {
            model.endpoint = endpoint.trim_end_matches('/').to_owned();
        }
        if let Some(api_key) = api_key {
            model.api_key = api_key;
        }
        if let Some(upstream_model) = body.upstream_model {
            model.upstream_model = upstream_model;
        }
        if let Some(pricing) = body.pricing {
            model.pricing = pricing;
        }
        if body.context_window.is_some() {
            model.context_window = body.context_window;
        }
        if let Some(capabilities) = body.capabilities {
            model.capabilities = capabilities;
        }
        if let Some(timeouts) = body.timeouts {
            model.timeouts = timeouts;
        }
        if let Some(api_version) = body.api_version {
            model.api_version = Some(api_version).filter(|version| !version.trim().is_empty());
        }
        Ok(model.clone())
    })
    .await?;
    Ok(axum::Json(model_view(&updated, &app.store.master_key())))
}

/// `DELETE /api/models/{id}`: refused while a project uses the model.
pub async fn remove(
    State(app): State<App>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<http::StatusCode, ApiError> {
    user.require(Permission::ModelWrite)?;
    super::grants::update(&app, &user, move |draft| {
        let users: Vec<&str> = draft
            .projects
            .projects
            .iter()
            .filter(|project| project.models.iter().any(|model| model.model_id == id))
            .map(|project| project.slug.as_str())
            .collect();
        if !users.is_empty() {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!(
                    "model `{id}` is used by project(s) {}; remove it from them first",
                    users.join(", ")
                ),
            ));
        }
        let before = draft.models.models.len();
        draft.models.models.retain(|model| model.id != id);
        if draft.models.models.len() == before {
            return Err(ApiError::not_found(format!("no model `{id}`")));
        }
        Ok(())
    })
    .await?;
    Ok(http::StatusCode::NO_CONTENT)
}

/// `GET /api/models/{id}/key`: the model's API key in clear, the one answer that carries it;
/// only for callers who may write models (declared in `rbac::ROUTES`). An `env:` reference is
/// answered as the reference, never its value.
pub async fn reveal_key(
    State(app): State<App>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ApiError> {
    user.require(Permission::ModelWrite)?;
    let snapshot = app.store.snapshot();
    let model = snapshot
        .model(&id)
        .ok_or_else(|| ApiError::not_found(format!("no model `{id}`")))?;
    // A reference is shown as itself: its value belongs to the service's environment, which
    // no API caller may read.
    let api_key = match &model.api_key {
        Some(reference) if reference.starts_with("env:") => json!({
            "api_key": reference,
            "source": "env",
        }),
        Some(_) => json!({ "api_key": snapshot.model_api_key(&id), "source": "encrypted" }),
        None => json!({ "api_key": null, "source": null }),
    };
    Ok(axum::Json(api_key))
}
