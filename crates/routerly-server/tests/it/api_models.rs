//! Behaviour of `/api/models` and `/api/catalogue` through the typed contract: every
//! handler's success, validation and not-found paths, answers read into `routerly-api` types.

use crate::management;

use http::{Method, StatusCode};
use management::{Answer, Harness, PROVIDER_KEY};
use routerly_api::models::{
    Catalogue, CircuitState, CreateModel, KeySource, Model, ModelKey, ModelList, Pricing,
    PricingOverride, UpdateModel,
};
use routerly_api::{ErrorBody, ErrorCode};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// The answer's body read into the type the route documents; the status must be `status`.
fn read<T: DeserializeOwned>(answer: Answer, status: StatusCode) -> T {
    assert_eq!(answer.status, status, "unexpected answer: {}", answer.text);
    serde_json::from_value(answer.body).expect("the answer is the documented type")
}

/// The error of an answer, which must have `status` and name `field`.
fn error(answer: Answer, status: StatusCode, field: Option<&str>) -> ErrorBody {
    let body: ErrorBody = read(answer, status);
    assert_eq!(body.error.field.as_deref(), field, "{}", body.error.message);
    body
}

async fn admin(harness: &Harness) -> String {
    harness.token("admin").await
}

fn body(value: &impl serde::Serialize) -> Option<Value> {
    Some(serde_json::to_value(value).expect("a request body serializes"))
}

#[tokio::test]
async fn the_list_masks_keys_and_shows_each_circuit() {
    let harness = Harness::start().await;
    let token = harness.token("viewer").await;
    let answer = harness
        .call(Method::GET, "/api/models", Some(&token), None)
        .await;
    assert!(!answer.text.contains(PROVIDER_KEY), "{}", answer.text);
    let list: ModelList = read(answer, StatusCode::OK);
    let ids: Vec<&str> = list.models.iter().map(|model| model.id.as_str()).collect();
    assert_eq!(ids, ["m1", "m2", "m3"]);
    let m1 = &list.models[0];
    let masked = m1.api_key.as_deref().expect("m1 has a key");
    assert!(
        masked.contains('…') && masked.len() < PROVIDER_KEY.len(),
        "{masked}"
    );
    assert_eq!(list.models[1].api_key, None);
    assert!(
        list.models
            .iter()
            .all(|model| model.circuit == Some(CircuitState::Closed))
    );
}

#[tokio::test]
async fn show_answers_one_model_or_not_found() {
    let harness = Harness::start().await;
    let token = admin(&harness).await;
    let model: Model = read(
        harness
            .call(Method::GET, "/api/models/m2", Some(&token), None)
            .await,
        StatusCode::OK,
    );
    assert_eq!(
        (model.id.as_str(), model.provider.as_str()),
        ("m2", "openai")
    );
    assert_eq!(model.circuit, None, "the state is in the list only");
    let answer = harness
        .call(Method::GET, "/api/models/ghost", Some(&token), None)
        .await;
    let body = error(answer, StatusCode::NOT_FOUND, None);
    assert_eq!(body.error.code, ErrorCode::NotFound);
    assert!(
        body.error.message.contains("ghost"),
        "{}",
        body.error.message
    );
}

#[tokio::test]
async fn create_fills_what_is_left_out_from_the_catalogue_and_encrypts_the_key() {
    let harness = Harness::start().await;
    let token = admin(&harness).await;
    let create = CreateModel {
        id: "gpt-5".into(),
        provider: "openai".into(),
        api_key: Some("sk-brand-new-secret-key-123456".into()),
        pricing: PricingOverride {
            output: Some(12.0),
            ..PricingOverride::default()
        },
        ..CreateModel::default()
    };
    let answer = harness
        .call(Method::POST, "/api/models", Some(&token), body(&create))
        .await;
    assert!(
        !answer.text.contains("sk-brand-new-secret"),
        "{}",
        answer.text
    );
    let model: Model = read(answer, StatusCode::CREATED);
    assert_eq!(model.endpoint, "https://api.openai.com/v1");
    assert_eq!(model.upstream_model, "gpt-5");
    // The catalogue's input price, the given output price.
    assert_eq!((model.pricing.input, model.pricing.output), (1.25, 12.0));
    assert_eq!(model.context_window, Some(400_000));
    assert_eq!(model.capabilities.vision, Some(true));
    // Stored encrypted: the config file never holds the key in clear.
    let models_file =
        std::fs::read_to_string(harness.dir.path().join("config/models.json")).expect("models");
    assert!(!models_file.contains("sk-brand-new-secret"));
    let key: ModelKey = read(
        harness
            .call(Method::GET, "/api/models/gpt-5/key", Some(&token), None)
            .await,
        StatusCode::OK,
    );
    assert_eq!(
        key.api_key.as_deref(),
        Some("sk-brand-new-secret-key-123456")
    );
    assert_eq!(key.source, Some(KeySource::Encrypted));

    // The same id again conflicts.
    let answer = harness
        .call(Method::POST, "/api/models", Some(&token), body(&create))
        .await;
    assert_eq!(
        error(answer, StatusCode::CONFLICT, None).error.code,
        ErrorCode::Conflict
    );
}

#[tokio::test]
async fn create_refuses_bad_values_naming_the_field() {
    let harness = Harness::start().await;
    let token = admin(&harness).await;
    let valid = CreateModel {
        id: "fresh".into(),
        provider: "custom".into(),
        endpoint: Some("http://127.0.0.1:9/v1".into()),
        ..CreateModel::default()
    };
    let cases: Vec<(&str, Value)> = vec![
        ("id", json!({ "id": "auto" })),
        ("id", json!({ "id": "has space" })),
        ("provider", json!({ "provider": "nope" })),
        ("endpoint", json!({ "endpoint": "ftp://example.com" })),
        (
            "endpoint",
            json!({ "endpoint": null, "provider": "custom" }),
        ),
        ("api_key", json!({ "api_key": "env:" })),
        ("pricing.input", json!({ "pricing": { "input": -1.0 } })),
        (
            "pricing.long_context.output",
            json!({ "pricing": { "long_context": {
                "above_input_tokens": 200000, "input": 1.0, "output": -2.0 } } }),
        ),
        ("colour", json!({ "colour": "blue" })),
    ];
    for (field, change) in cases {
        let mut request = serde_json::to_value(&valid).expect("body");
        for (key, value) in change.as_object().expect("object") {
            request[key] = value.clone();
        }
        let answer = harness
            .call(Method::POST, "/api/models", Some(&token), Some(request))
            .await;
        let body = error(answer, StatusCode::BAD_REQUEST, Some(field));
        assert_eq!(body.error.code, ErrorCode::Invalid);
    }
    // Nothing was stored by the refused calls; the valid body is accepted.
    let list: ModelList = read(
        harness
            .call(Method::GET, "/api/models", Some(&token), None)
            .await,
        StatusCode::OK,
    );
    assert_eq!(list.models.len(), 3);
    let model: Model = read(
        harness
            .call(Method::POST, "/api/models", Some(&token), body(&valid))
            .await,
        StatusCode::CREATED,
    );
    assert_eq!(
        model.pricing,
        Pricing::default(),
        "unknown model: no prices"
    );
}

#[tokio::test]
async fn update_changes_only_the_given_fields() {
    let harness = Harness::start().await;
    let token = admin(&harness).await;
    let before: Model = read(
        harness
            .call(Method::GET, "/api/models/m1", Some(&token), None)
            .await,
        StatusCode::OK,
    );
    let change = UpdateModel {
        endpoint: Some(" http://127.0.0.1:8/v2/ ".into()),
        pricing: Some(Pricing {
            input: 3.0,
            output: 6.0,
            ..Pricing::default()
        }),
        context_window: Some(32_000),
        ..UpdateModel::default()
    };
    let after: Model = read(
        harness
            .call(Method::PATCH, "/api/models/m1", Some(&token), body(&change))
            .await,
        StatusCode::OK,
    );
    assert_eq!(after.endpoint, "http://127.0.0.1:8/v2");
    assert_eq!((after.pricing.input, after.pricing.output), (3.0, 6.0));
    assert_eq!(after.context_window, Some(32_000));
    assert_eq!(after.api_key, before.api_key, "the key is kept");
    assert_eq!(after.upstream_model, before.upstream_model);

    // A blank key removes it.
    let removed: Model = read(
        harness
            .call(
                Method::PATCH,
                "/api/models/m1",
                Some(&token),
                Some(json!({ "api_key": "" })),
            )
            .await,
        StatusCode::OK,
    );
    assert_eq!(removed.api_key, None);
}

#[tokio::test]
async fn update_refuses_bad_values_and_unknown_models() {
    let harness = Harness::start().await;
    let token = admin(&harness).await;
    for (field, request) in [
        ("endpoint", json!({ "endpoint": "example.com" })),
        ("upstream_model", json!({ "upstream_model": "  " })),
        ("pricing.output", json!({ "pricing": { "output": -0.5 } })),
        ("api_key", json!({ "api_key": "env:" })),
        ("provider", json!({ "provider": "anthropic" })),
    ] {
        let answer = harness
            .call(Method::PATCH, "/api/models/m2", Some(&token), Some(request))
            .await;
        error(answer, StatusCode::BAD_REQUEST, Some(field));
    }
    let unchanged: Model = read(
        harness
            .call(Method::GET, "/api/models/m2", Some(&token), None)
            .await,
        StatusCode::OK,
    );
    assert_eq!(unchanged.endpoint, "http://127.0.0.1:9/v1");
    assert_eq!(unchanged.upstream_model, "m2");

    // An array is not a change, though serde would read one into the struct's fields.
    let answer = harness
        .call(
            Method::PATCH,
            "/api/models/m2",
            Some(&token),
            Some(json!([null, null])),
        )
        .await;
    error(answer, StatusCode::BAD_REQUEST, None);

    let answer = harness
        .call(
            Method::PATCH,
            "/api/models/ghost",
            Some(&token),
            Some(json!({ "context_window": 1000 })),
        )
        .await;
    error(answer, StatusCode::NOT_FOUND, None);
}

#[tokio::test]
async fn remove_refuses_a_model_in_use_and_unknown_ones() {
    let harness = Harness::start().await;
    let token = admin(&harness).await;
    let answer = harness
        .call(Method::DELETE, "/api/models/m1", Some(&token), None)
        .await;
    let body = error(answer, StatusCode::CONFLICT, None);
    assert!(
        body.error.message.contains("alpha"),
        "{}",
        body.error.message
    );

    let answer = harness
        .call(Method::DELETE, "/api/models/m3", Some(&token), None)
        .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    let answer = harness
        .call(Method::GET, "/api/models/m3", Some(&token), None)
        .await;
    error(answer, StatusCode::NOT_FOUND, None);
    let answer = harness
        .call(Method::DELETE, "/api/models/m3", Some(&token), None)
        .await;
    error(answer, StatusCode::NOT_FOUND, None);
}

#[tokio::test]
async fn the_key_is_revealed_to_model_writers_only_and_references_stay_references() {
    let harness = Harness::start().await;
    let token = admin(&harness).await;
    let key: ModelKey = read(
        harness
            .call(Method::GET, "/api/models/m1/key", Some(&token), None)
            .await,
        StatusCode::OK,
    );
    assert_eq!(key.api_key.as_deref(), Some(PROVIDER_KEY));
    let none: ModelKey = read(
        harness
            .call(Method::GET, "/api/models/m2/key", Some(&token), None)
            .await,
        StatusCode::OK,
    );
    assert_eq!((none.api_key, none.source), (None, None));

    // An `env:` reference is answered as itself, never the variable's value. (Setting one
    // through the API needs the variable on the allow list: the settings' concern.)
    harness
        .app
        .store
        .update(|draft| {
            let m2 = draft
                .models
                .models
                .iter_mut()
                .find(|model| model.id == "m2")
                .expect("m2");
            m2.api_key = Some("env:HOME".to_owned());
            draft.settings.env_allow_list = vec!["HOME".to_owned()];
            Ok::<_, std::convert::Infallible>(())
        })
        .await
        .expect("set a reference");
    let answer = harness
        .call(Method::GET, "/api/models/m2/key", Some(&token), None)
        .await;
    let home = std::env::var("HOME").expect("HOME is set");
    assert!(
        !answer.text.contains(&format!("\"{home}\"")),
        "{}",
        answer.text
    );
    let reference: ModelKey = read(answer, StatusCode::OK);
    assert_eq!(reference.api_key.as_deref(), Some("env:HOME"));
    assert_eq!(reference.source, Some(KeySource::Env));

    let answer = harness
        .call(Method::GET, "/api/models/ghost/key", Some(&token), None)
        .await;
    error(answer, StatusCode::NOT_FOUND, None);
    let viewer = harness.token("viewer").await;
    let answer = harness
        .call(Method::GET, "/api/models/m1/key", Some(&viewer), None)
        .await;
    assert!(!answer.text.contains(PROVIDER_KEY));
    error(answer, StatusCode::FORBIDDEN, None);
}

#[tokio::test]
async fn the_catalogue_lists_providers_with_formats_and_prices() {
    let harness = Harness::start().await;
    let token = harness.token("project-viewer").await;
    let catalogue: Catalogue = read(
        harness
            .call(Method::GET, "/api/catalogue", Some(&token), None)
            .await,
        StatusCode::OK,
    );
    let openai = &catalogue.providers[0];
    assert_eq!(
        (openai.id.as_str(), openai.format.as_str()),
        ("openai", "openai_chat")
    );
    let gpt5 = openai
        .models
        .iter()
        .find(|model| model.id == "gpt-5")
        .expect("gpt-5 is known");
    assert_eq!(gpt5.pricing.cached_input, Some(0.125));
    let azure = catalogue
        .providers
        .iter()
        .find(|provider| provider.id == "azure")
        .expect("azure is known");
    assert_eq!(azure.default_endpoint, None);
    assert_eq!(azure.prices_like.as_deref(), Some("openai"));
    assert_eq!(
        harness
            .call(Method::GET, "/api/catalogue", None, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}
