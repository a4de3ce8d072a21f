//! The Responses API's conversation state: `previous_response_id` resolved from Routerly's
//! [`crate::store::responses::ResponseStore`] before the attempts, and each answer stored after
//! (unless the request says `store: false`).
//!
//! Routerly is the source of truth for every response it served, whichever provider served
//! it: a continued conversation reaches any model, and falls back across providers. For
//! OpenAI models the client's body is still passed through, its `previous_response_id`
//! replaced by the stored turns as input items.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use routerly_core::canonical::{
    ChatRequest, ChatResponse, ContentPart, ErrorBody, ErrorKind, Message, Role, Usage,
};
use routerly_core::config::{ModelConfig, ProviderKind};
use routerly_core::wire::WireFormat;
use routerly_core::wire::responses::{
    Echo, encode_response_echoing, history_items, new_response_id, openai_only_feature,
};
use routerly_providers::UpstreamError;
use serde_json::{Value, json};

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::HeaderMap;

use super::error::ProxyError;
use super::relay::OnComplete;
use super::surface::{StreamHooks, SurfaceCall, answer_json};
use super::{Call, Caller};
use crate::state::App;
use crate::state::AppState;
use crate::store::responses::StoredResponse;

/// One Responses call's conversation.
pub struct Conversation {
    /// The id the client sees when the answer is re-encoded (OpenAI's own otherwise).
    response_id: String,
    store: bool,
    /// Everything the model is sent: the stored turns, then the new input.
    messages: Vec<Message>,
    /// The request's own input items, each with an id.
    input_items: Vec<Value>,
    /// What an answer repeats of the request (`instructions`, `tools`,
    /// `previous_response_id`, …, and the namespaces of namespaced tools), as OpenAI's do.
    echo: Echo,
}

impl SurfaceCall for Conversation {
    async fn decode(
        app: &AppState,
        caller: &Caller<'_>,
        format: WireFormat,
        raw: &mut Value,
    ) -> Result<(ChatRequest, Self), ProxyError> {
        let mut request = super::decode_request(format, raw)?;
        let conversation = prepare(app, caller, raw, &mut request, format).await?;
        Ok((request, conversation))
    }

    fn provider_format(&self, model: &ModelConfig) -> WireFormat {
        // OpenAI takes the Responses format itself; others their chat format.
        if model.provider == ProviderKind::OpenAi {
            WireFormat::OpenAiResponses
        } else {
            model.provider.wire_format()
        }
    }

    fn refusal(
        &self,
        call: &Call<'_>,
        model: &ModelConfig,
        provider_format: WireFormat,
    ) -> Option<ProxyError> {
        if provider_format == call.format {
            return None;
        }
        let feature = openai_only_feature(call.parsed())?;
        Some(ProxyError::from_body(
            call.format,
            ErrorBody::new(
                ErrorKind::InvalidRequest,
                format!(
                    "The model `{}` ({}) cannot serve {feature}; only OpenAI models can.",
                    model.id,
                    model.provider.as_str()
                ),
            )
            .with_code("unsupported_feature"),
        ))
    }

    fn upstream_body(
        &self,
        call: &mut Call<'_>,
        model: &ModelConfig,
        provider_format: WireFormat,
    ) -> Result<Vec<u8>, ProxyError> {
        super::surface::upstream_body(call, model, provider_format)
    }

    /// Decoded and re-encoded (or passed through with the model replaced), then stored
    /// before the client is answered, unless the client said `store: false`.
    async fn answer(
        &self,
        call: &Call<'_>,
        model: &ModelConfig,
        provider_format: WireFormat,
        body: &[u8],
    ) -> Result<(Response, Usage), UpstreamError> {
        let (response, canonical) = answer_json(
            call.format,
            provider_format,
            model,
            body,
            Some((&self.response_id, &self.echo)),
        )?;
        let usage = canonical.usage;
        if let Some(storing) = self.store_future(call.app, &call.caller, canonical) {
            storing.await;
        }
        Ok((response, usage))
    }

    fn stream_hooks(&self, call: &Call<'_>) -> StreamHooks {
        StreamHooks {
            response_id: Some(self.response_id.clone()),
            echo: Some(self.echo.clone()),
            on_complete: self.on_complete(call.app, &call.caller),
        }
    }
}

/// Resolves `previous_response_id` (into `request` and, for pass-through, into `raw`) and
/// notes whether the answer is to be stored.
async fn prepare(
    app: &AppState,
    caller: &Caller<'_>,
    raw: &mut Value,
    request: &mut ChatRequest,
    format: WireFormat,
) -> Result<Conversation, ProxyError> {
    let store = raw.get("store").and_then(Value::as_bool).unwrap_or(true);
    let echo = Echo::of_request(raw);
    let response_id = new_response_id();
    let input_items = input_items(raw.get("input"), &response_id);
    // Translated models get the items Routerly can resolve; OpenAI the client's own body.
    if let Some(resolved) = resolve_item_references(app, caller, raw).await {
        *request = routerly_core::wire::decode_request(format, &resolved)
            .map_err(|error| ProxyError::from_body(format, error.to_error_body()))?;
    }
    let previous = match raw.get("previous_response_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(id.clone()),
        Some(_) => {
            return Err(ProxyError::from_body(
                format,
                ErrorBody::new(
                    ErrorKind::InvalidRequest,
                    "Invalid type for 'previous_response_id': expected a string.",
                )
                .with_param("previous_response_id"),
            ));
        }
    };
    if let Some(previous) = previous {
        let Some(stored) = app
            .responses
            .get(previous.clone(), caller.project.id.clone())
            .await
        else {
            return Err(ProxyError::from_body(
                format,
                ErrorBody::new(
                    ErrorKind::InvalidRequest,
                    format!("Previous response with id '{previous}' not found."),
                )
                .with_param("previous_response_id")
                .with_code("previous_response_not_found"),
            ));
        };
        // The pass-through body: stored turns as input items, then the new input.
        let mut items = history_items(&stored.messages);
        match raw.get("input") {
            Some(Value::String(text)) => items.push(json!({"role": "user", "content": text})),
            Some(Value::Array(new_items)) => items.extend(new_items.iter().cloned()),
            _ => {}
        }
        raw["input"] = Value::Array(items);
        if let Some(object) = raw.as_object_mut() {
            object.remove("previous_response_id");
        }
        // The canonical request: the same, merged where roles meet.
        let mut messages = stored.messages;
        for message in std::mem::take(&mut request.messages) {
            match messages.last_mut() {
                Some(last) if last.role == message.role => last.content.extend(message.content),
                _ => messages.push(message),
            }
        }
        request.messages = messages;
    }
    if request.messages.is_empty() {
        return Err(ProxyError::from_body(
            format,
            ErrorBody::new(
                ErrorKind::InvalidRequest,
                "Missing required parameter: 'input'.",
            )
            .with_param("input"),
        ));
    }
    Ok(Conversation {
        response_id,
        store,
        messages: request.messages.clone(),
        input_items,
        echo,
    })
}

/// At most this many stored responses are read to resolve one request's `item_reference`s.
const MAX_REFERENCED_RESPONSES: usize = 32;

/// The request body with each `item_reference` naming an item Routerly returned or was sent
/// (in a response of the caller's project) replaced by that item; `None` when nothing was
/// resolved. Item ids carry their response's id (`msg_<suffix>NN` in `resp_<suffix>`), so
/// each reference costs one look-up of its response, at most
/// [`MAX_REFERENCED_RESPONSES`] per request.
async fn resolve_item_references(
    app: &AppState,
    caller: &Caller<'_>,
    raw: &Value,
) -> Option<Value> {
    let items = raw.get("input")?.as_array()?;
    let reference_id = |item: &Value| {
        (item.get("type").and_then(Value::as_str) == Some("item_reference"))
            .then(|| item.get("id").and_then(Value::as_str))
            .flatten()
            .map(str::to_owned)
    };
    if !items.iter().any(|item| reference_id(item).is_some()) {
        return None;
    }
    let mut responses: HashMap<String, Option<StoredResponse>> = HashMap::new();
    let mut resolved_any = false;
    let mut resolved = Vec::with_capacity(items.len());
    for item in items {
        let found = match reference_id(item) {
            Some(id) => match response_of_item(&id) {
                Some(response_id) => {
                    if !responses.contains_key(&response_id)
                        && responses.len() < MAX_REFERENCED_RESPONSES
                    {
                        let stored = app
                            .responses
                            .get(response_id.clone(), caller.project.id.clone())
                            .await;
                        responses.insert(response_id.clone(), stored);
                    }
                    responses
                        .get(&response_id)
                        .and_then(Option::as_ref)
                        .and_then(|stored| stored_item(stored, &id))
                }
                None => None,
            },
            None => None,
        };
        resolved_any |= found.is_some();
        resolved.push(found.unwrap_or_else(|| item.clone()));
    }
    resolved_any.then(|| {
        let mut body = raw.clone();
        body["input"] = Value::Array(resolved);
        body
    })
}

/// The response id an item id of Routerly's names: `resp_<suffix>` for `<prefix>_<suffix>NN`.
fn response_of_item(item_id: &str) -> Option<String> {
    let (_, rest) = item_id.split_once('_')?;
    let suffix = rest.get(..rest.len().checked_sub(2)?)?;
    (!suffix.is_empty()).then(|| format!("resp_{suffix}"))
}

/// The item `id` among a stored response's output and input items.
fn stored_item(stored: &StoredResponse, id: &str) -> Option<Value> {
    let output = stored
        .response
        .get("output")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    output
        .chain(stored.input_items.iter())
        .find(|item| item.get("id").and_then(Value::as_str) == Some(id))
        .cloned()
}

/// The request's `input` as a list of items, each with an `id` (the client's, or one
/// derived from the response's).
fn input_items(input: Option<&Value>, response_id: &str) -> Vec<Value> {
    let items = match input {
        Some(Value::String(text)) => vec![json!({
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        })],
        Some(Value::Array(items)) => items.clone(),
        _ => Vec::new(),
    };
    let suffix = response_id.strip_prefix("resp_").unwrap_or(response_id);
    items
        .into_iter()
        .enumerate()
        .map(|(index, mut item)| {
            if let Some(object) = item.as_object_mut() {
                object
                    .entry("id")
                    .or_insert_with(|| Value::from(format!("in_{suffix}{index:02}")));
                object.entry("type").or_insert_with(|| json!("message"));
            }
            item
        })
        .collect()
}

type StoreFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

impl Conversation {
    /// Storing `answer` (under its own id) after this conversation, when the client
    /// allows it.
    fn store_future(
        &self,
        app: &AppState,
        caller: &Caller<'_>,
        answer: ChatResponse,
    ) -> Option<StoreFuture> {
        self.on_complete(app, caller).map(|store| store(answer))
    }

    /// The relay's hook that stores the streamed answer, when the client allows it.
    fn on_complete(&self, app: &AppState, caller: &Caller<'_>) -> Option<OnComplete> {
        if !self.store {
            return None;
        }
        let responses = app.responses.clone();
        let project_id = caller.project.id.clone();
        let mut messages = self.messages.clone();
        let input_items = self.input_items.clone();
        let echo = self.echo.clone();
        Some(Box::new(move |answer: ChatResponse| {
            Box::pin(async move {
                let response = encode_response_echoing(&answer, &echo);
                // Thinking stays with the provider that produced it.
                let content: Vec<ContentPart> = answer
                    .content
                    .into_iter()
                    .filter(|part| !matches!(part, ContentPart::Thinking { .. }))
                    .collect();
                if !content.is_empty() {
                    messages.push(Message {
                        role: Role::Assistant,
                        content,
                    });
                }
                let stored = StoredResponse {
                    id: answer.id.clone(),
                    project_id,
                    created_at: chrono::Utc::now(),
                    messages,
                    response,
                    input_items,
                };
                if let Err(error) = responses.put(stored).await {
                    tracing::warn!(%error, id = %answer.id, "cannot store a response");
                }
            }) as StoreFuture
        }))
    }
}

/// `GET /v1/responses/{id}`: a stored response of the caller's project, as it was answered.
pub async fn retrieve(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    match stored_of_caller(&app, &headers, &id).await {
        Ok(stored) => axum::Json(stored.response).into_response(),
        Err(error) => error.into_response(),
    }
}

/// `GET /v1/responses/{id}/input_items`: the input items of a stored response, in order.
pub async fn input_items_of(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    match stored_of_caller(&app, &headers, &id).await {
        Ok(stored) => {
            let first_id = stored
                .input_items
                .first()
                .and_then(|item| item.get("id"))
                .cloned();
            let last_id = stored
                .input_items
                .last()
                .and_then(|item| item.get("id"))
                .cloned();
            axum::Json(json!({
                "object": "list",
                "data": stored.input_items,
                "first_id": first_id,
                "last_id": last_id,
                "has_more": false,
            }))
            .into_response()
        }
        Err(error) => error.into_response(),
    }
}

/// `DELETE /v1/responses/{id}`: forgets a stored response of the caller's project.
pub async fn delete(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let format = WireFormat::OpenAiResponses;
    let snapshot = app.store.snapshot();
    let caller = match super::authenticate(&snapshot, &headers, format) {
        Ok(caller) => caller,
        Err(error) => return error.into_response(),
    };
    if app
        .responses
        .delete(id.clone(), caller.project.id.clone())
        .await
    {
        axum::Json(json!({"id": id, "object": "response", "deleted": true})).into_response()
    } else {
        not_found(&id).into_response()
    }
}

/// The stored response `id` if the caller's project created it; a 404 otherwise, the same
/// for another project's response as for none.
async fn stored_of_caller(
    app: &App,
    headers: &HeaderMap,
    id: &str,
) -> Result<StoredResponse, ProxyError> {
    let format = WireFormat::OpenAiResponses;
    let snapshot = app.store.snapshot();
    let caller = super::authenticate(&snapshot, headers, format)?;
    app.responses
        .get(id.to_owned(), caller.project.id.clone())
        .await
        .filter(|stored| !stored.response.is_null())
        .ok_or_else(|| not_found(id))
}

fn not_found(id: &str) -> ProxyError {
    let shown: String = id.chars().take(200).collect();
    ProxyError::from_body(
        WireFormat::OpenAiResponses,
        ErrorBody::new(
            ErrorKind::NotFound,
            format!("Response with id '{shown}' not found."),
        ),
    )
}
