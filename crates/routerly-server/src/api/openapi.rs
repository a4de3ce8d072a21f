//! `GET /api/openapi.json`: the OpenAPI 3.1 document of the management API, derived from
//! the types of `routerly-api` and the handlers' `#[utoipa::path]` declarations.
//!
//! It is public (like `/api/setup/status`): it describes the API's shapes, which PRODUCT.md
//! documents as well, and holds no configured data, name or secret.

use std::sync::OnceLock;

use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use super::{
    api_keys, audit, auth, channels, limits, members, model_checks, models, projects, roles,
    routing, settings, setup, system, usage, users,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Routerly management API",
        description = "The `/api` routes the dashboard and the CLI use. Authenticate with `Authorization: Bearer` and an access token from `POST /api/auth/login`, or an admin API key. Every error answers `{\"error\": {\"code\", \"message\", \"field\"}}`.",
    ),
    paths(
        document,
        setup::status,
        setup::first_admin,
        auth::login,
        auth::refresh,
        auth::logout,
        auth::me,
        auth::update_me,
        auth::patch_me,
        system::info,
        system::rotate_key,
        api_keys::list,
        api_keys::create,
        api_keys::revoke,
        audit::list,
        channels::list,
        channels::show,
        channels::create,
        channels::remove,
        channels::test,
        limits::list,
        limits::usage,
        limits::show,
        limits::create,
        limits::update,
        limits::remove,
        limits::alerts,
        members::list,
        members::add,
        members::update,
        members::remove,
        model_checks::health,
        model_checks::test_connection,
        models::list,
        models::create,
        models::show,
        models::update,
        models::remove,
        models::reveal_key,
        models::catalogue,
        projects::list,
        projects::show,
        projects::create,
        projects::update,
        projects::remove,
        projects::list_models,
        projects::add_model,
        projects::update_model,
        projects::remove_model,
        projects::list_tokens,
        projects::create_token,
        projects::update_token,
        projects::revoke_token,
        routing::show,
        routing::replace,
        roles::list,
        roles::create,
        roles::update,
        roles::remove,
        routing::show_trace,
        routing::list_traces,
        routing::project_trace,
        settings::show,
        settings::update,
        usage::list,
        usage::summary,
        usage::by_model,
        usage::by_project,
        usage::by_token,
        usage::last_use,
        usage::by_user,
        usage::timeline,
        usage::export,
        users::list,
        users::show,
        users::create,
        users::update,
        users::remove,
    ),
    components(schemas(
        routerly_api::ErrorBody,
        routerly_api::usage::Bucket,
        routerly_api::usage::ExportFormat,
        routerly_api::usage::Outcome,
    )),
    modifiers(&Contract),
    security(("bearer" = [])),
)]
struct Document;

/// Adds what the derive cannot express: the bearer scheme, the version, and the error
/// answer every operation may give.
struct Contract;

impl utoipa::Modify for Contract {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi.info.version = env!("CARGO_PKG_VERSION").to_owned();
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An access token or an admin API key (`rly-ak-…`)."))
                    .build(),
            ),
        );
        let error = utoipa::openapi::ResponseBuilder::new()
            .description("An error: the status follows from `error.code`.")
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build();
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                operation
                    .responses
                    .responses
                    .entry("default".to_owned())
                    .or_insert_with(|| error.clone().into());
            }
        }
    }
}

/// The document, pretty-printed as it is committed in `docs/openapi.json`.
pub fn document_json() -> String {
    let mut document =
        serde_json::to_value(Document::openapi()).expect("the OpenAPI document serializes");
    admit_tags(&mut document["components"]["schemas"]);
    let mut text = serde_json::to_string_pretty(&document).expect("a JSON value serializes");
    text.push('\n');
    text
}

/// An internally tagged enum of structs (`#[serde(tag = "type")]`, such as `CreateChannel`)
/// is documented as `oneOf` branches `allOf: [{$ref: Variant}, {tag}]`; a variant that
/// refuses unknown members (`additionalProperties: false`) would then refuse the tag itself,
/// and nothing could satisfy the branch. The tag is added to such a variant's properties.
fn admit_tags(schemas: &mut serde_json::Value) {
    let mut tags = Vec::new();
    for schema in schemas.as_object().into_iter().flat_map(|map| map.values()) {
        for branch in schema["oneOf"].as_array().into_iter().flatten() {
            let [variant, tag] = branch["allOf"].as_array().map_or(&[][..], Vec::as_slice) else {
                continue;
            };
            let Some(name) = variant["$ref"]
                .as_str()
                .and_then(|path| path.strip_prefix("#/components/schemas/"))
            else {
                continue;
            };
            for (member, rule) in tag["properties"].as_object().into_iter().flatten() {
                tags.push((name.to_owned(), member.clone(), rule.clone()));
            }
        }
    }
    for (name, member, rule) in tags {
        let variant = &mut schemas[name.as_str()];
        if variant["additionalProperties"] == serde_json::Value::Bool(false) {
            variant["properties"][member.as_str()] = rule;
        }
    }
}

/// `GET /api/openapi.json`.
#[utoipa::path(get, path = "/api/openapi.json", operation_id = "openapi_document", tag = "system", security(()),
    responses((status = 200, description = "This document.", content_type = "application/json", body = Object)))]
pub async fn document() -> Response {
    static TEXT: OnceLock<String> = OnceLock::new();
    let text = TEXT.get_or_init(document_json).as_str();
    ([(http::header::CONTENT_TYPE, "application/json")], text).into_response()
}
