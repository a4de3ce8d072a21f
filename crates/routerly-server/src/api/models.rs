//! `/api/models`: registered models. API keys are encrypted before they are stored and
//! never returned in clear.

use axum::extract::{Path, State};
use routerly_api::models::{
    Capabilities, Catalogue, CircuitState, CreateModel, KeySource, Model, ModelKey, ModelList,
    PricingOverride, UpdateModel,
};
use routerly_core::catalogue;
use routerly_core::config::{self as core, ModelConfig, ProviderKind};

use super::auth::{AuthUser, Permission};
use super::{ApiError, ApiJson, ErrorCode};
use crate::state::App;
use crate::store::secrets::{MasterKey, mask};

/// A model as the API shows it: the key masked, no circuit state.
pub fn model_view(model: &ModelConfig, key: &MasterKey) -> Model {
    let api_key = match &model.api_key {
        None => None,
        Some(stored) if stored.starts_with("env:") => Some(stored.clone()),
        Some(stored) => Some(match key.decrypt(stored) {
            Ok(plain) => mask(&plain),
            Err(_) => "(unreadable)".to_owned(),
        }),
    };
    Model {
        id: model.id.clone(),
        provider: model.provider.as_str().to_owned(),
        endpoint: model.endpoint.clone(),
        upstream_model: model.upstream_model.clone(),
        api_key,
        pricing: model.pricing.into(),
        context_window: model.context_window,
        capabilities: model.capabilities.into(),
        timeouts: model.timeouts.into(),
        api_version: model.api_version.clone(),
        created_at: model.created_at,
        circuit: None,
    }
}

/// A circuit breaker's state from its name in the routing statistics.
fn circuit_state(name: &str) -> CircuitState {
    match name {
        "open" => CircuitState::Open,
        "half_open" => CircuitState::HalfOpen,
        _ => CircuitState::Closed,
    }
}

/// `GET /api/models`: every model, each with its circuit breaker's state.
#[utoipa::path(get, path = "/api/models", operation_id = "list_models", tag = "models",
    responses((status = 200, body = ModelList)))]
pub async fn list(
    State(app): State<App>,
    user: AuthUser,
) -> Result<axum::Json<ModelList>, ApiError> {
    user.require(Permission::ModelRead)?;
    let snapshot = app.store.snapshot();
    let key = &app.store.master_key();
    // Each model's circuit breaker as routing sees it now (a model never called: closed).
    let circuits: std::collections::HashMap<String, &str> =
        app.routing.stats.circuits().into_iter().collect();
    let models = snapshot
        .models
        .models
        .iter()
        .map(|model| Model {
            circuit: Some(
                circuits
                    .get(&model.id)
                    .map_or(CircuitState::Closed, |name| circuit_state(name)),
            ),
            ..model_view(model, key)
        })
        .collect();
    Ok(axum::Json(ModelList { models }))
}

/// `GET /api/models/{id}`.
#[utoipa::path(get, path = "/api/models/{id}", operation_id = "show_model", tag = "models",
    params(("id" = String, Path, description = "The model's id.")),
    responses((status = 200, body = Model)))]
pub async fn show(
    State(app): State<App>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<axum::Json<Model>, ApiError> {
    user.require(Permission::ModelRead)?;
    let snapshot = app.store.snapshot();
    let model = snapshot
        .model(&id)
        .ok_or_else(|| ApiError::not_found(format!("no model `{id}`")))?;
    Ok(axum::Json(model_view(model, &app.store.master_key())))
}

/// `base` (the catalogue's prices, or zero) with the given prices in place.
fn apply_prices(given: PricingOverride, base: core::Pricing) -> core::Pricing {
    core::Pricing {
        input: given.input.unwrap_or(base.input),
        output: given.output.unwrap_or(base.output),
        cached_input: given.cached_input.or(base.cached_input),
        cache_write: given.cache_write.or(base.cache_write),
        long_context: given.long_context.map(Into::into).or(base.long_context),
    }
}

/// `base` with every flag that `given` sets in place.
fn merge_capabilities(given: Capabilities, base: core::Capabilities) -> core::Capabilities {
    core::Capabilities {
        vision: given.vision.or(base.vision),
        tools: given.tools.or(base.tools),
        json: given.json.or(base.json),
        thinking: given.thinking.or(base.thinking),
        embedding: given.embedding.or(base.embedding),
    }
}

/// Refuses a negative price: it would pay the caller for every call and let it run past
/// any budget.
fn check_prices(pricing: &core::Pricing) -> Result<(), ApiError> {
    let tier = pricing.long_context.as_ref();
    let prices = [
        ("pricing.input", Some(pricing.input)),
        ("pricing.output", Some(pricing.output)),
        ("pricing.cached_input", pricing.cached_input),
        ("pricing.cache_write", pricing.cache_write),
        ("pricing.long_context.input", tier.map(|tier| tier.input)),
        ("pricing.long_context.output", tier.map(|tier| tier.output)),
        (
            "pricing.long_context.cached_input",
            tier.and_then(|tier| tier.cached_input),
        ),
        (
            "pricing.long_context.cache_write",
            tier.and_then(|tier| tier.cache_write),
        ),
    ];
    for (field, price) in prices {
        if let Some(price) = price
            && !(price >= 0.0 && price.is_finite())
        {
            return Err(ApiError::invalid(
                field,
                format!("{price} is not a price: give USD per million tokens, 0 or more"),
            ));
        }
    }
    Ok(())
}

/// `GET /api/catalogue`: the providers and models Routerly knows, with their prices.
#[utoipa::path(get, path = "/api/catalogue", operation_id = "catalogue", tag = "models",
    responses((status = 200, body = Catalogue)))]
pub async fn catalogue(user: AuthUser) -> Result<axum::Json<Catalogue>, ApiError> {
    user.require(Permission::ModelRead)?;
    Ok(axum::Json(Catalogue::from(catalogue::catalogue())))
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

/// `POST /api/models`: registers a model, filling what the body leaves out from the
/// catalogue (needs `model:write`).
#[utoipa::path(post, path = "/api/models", operation_id = "create_model", tag = "models",
    request_body = CreateModel, responses((status = 201, body = Model)))]
pub async fn create(
    State(app): State<App>,
    user: AuthUser,
    ApiJson(body): ApiJson<CreateModel>,
) -> Result<(http::StatusCode, axum::Json<Model>), ApiError> {
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
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| body.id.clone());
    // What the caller leaves out comes from the catalogue, when it knows the model.
    let known = catalogue::model(provider, &upstream_model);
    let pricing = apply_prices(
        body.pricing,
        known.map(|known| known.pricing).unwrap_or_default(),
    );
    check_prices(&pricing)?;
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
        timeouts: body.timeouts.into(),
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

/// `PATCH /api/models/{id}`: changes the fields given (needs `model:write`).
#[utoipa::path(patch, path = "/api/models/{id}", operation_id = "update_model", tag = "models",
    params(("id" = String, Path, description = "The model's id.")),
    request_body = UpdateModel, responses((status = 200, body = Model)))]
pub async fn update(
    State(app): State<App>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateModel>,
) -> Result<axum::Json<Model>, ApiError> {
    user.require(Permission::ModelWrite)?;
    let endpoint = body
        .endpoint
        .map(|endpoint| endpoint.trim().trim_end_matches('/').to_owned());
    if let Some(endpoint) = &endpoint {
        check_endpoint(endpoint)?;
    }
    let upstream_model = body.upstream_model.map(|name| name.trim().to_owned());
    if upstream_model.as_deref() == Some("") {
        return Err(ApiError::invalid(
            "upstream_model",
            "the provider's model name cannot be blank",
        ));
    }
    let pricing = body.pricing.map(core::Pricing::from);
    if let Some(pricing) = &pricing {
        check_prices(pricing)?;
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
        if let Some(endpoint) = endpoint {
            model.endpoint = endpoint;
        }
        if let Some(api_key) = api_key {
            model.api_key = api_key;
        }
        if let Some(upstream_model) = upstream_model {
            model.upstream_model = upstream_model;
        }
        if let Some(pricing) = pricing {
            model.pricing = pricing;
        }
        if body.context_window.is_some() {
            model.context_window = body.context_window;
        }
        if let Some(capabilities) = body.capabilities {
            model.capabilities = capabilities.into();
        }
        if let Some(timeouts) = body.timeouts {
            model.timeouts = timeouts.into();
        }
        if let Some(api_version) = body.api_version {
            model.api_version = Some(api_version).filter(|version| !version.trim().is_empty());
        }
        Ok(model.clone())
    })
    .await?;
    Ok(axum::Json(model_view(&updated, &app.store.master_key())))
}

/// `DELETE /api/models/{id}`: refused while a project uses the model (needs `model:write`).
#[utoipa::path(delete, path = "/api/models/{id}", operation_id = "remove_model", tag = "models",
    params(("id" = String, Path, description = "The model's id.")),
    responses((status = 204, description = "The model is removed.")))]
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
#[utoipa::path(get, path = "/api/models/{id}/key", operation_id = "reveal_model_key", tag = "models",
    params(("id" = String, Path, description = "The model's id.")),
    responses((status = 200, body = ModelKey)))]
pub async fn reveal_key(
    State(app): State<App>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<axum::Json<ModelKey>, ApiError> {
    user.require(Permission::ModelWrite)?;
    let snapshot = app.store.snapshot();
    let model = snapshot
        .model(&id)
        .ok_or_else(|| ApiError::not_found(format!("no model `{id}`")))?;
    // A reference is shown as itself: its value belongs to the service's environment, which
    // no API caller may read.
    let key = match &model.api_key {
        Some(reference) if reference.starts_with("env:") => ModelKey {
            api_key: Some(reference.clone()),
            source: Some(KeySource::Env),
        },
        Some(_) => ModelKey {
            api_key: snapshot.model_api_key(&id).map(str::to_owned),
            source: Some(KeySource::Encrypted),
        },
        None => ModelKey {
            api_key: None,
            source: None,
        },
    };
    Ok(axum::Json(key))
}
