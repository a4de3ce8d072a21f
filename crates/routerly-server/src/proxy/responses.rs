//! The Responses API's conversation state: `previous_response_id` resolved from Routerly's
//! [`crate::store::state::ResponseStore`] before the attempts, and each answer stored after
//! (unless the request says `store: false`).
//!
//! Routerly is the source of truth for every response it served, whichever provider served
//! it: a continued conversation reaches any model, and falls back across providers. For
//! OpenAI models the client's body is still passed through, its `previous_response_id`
//! replaced by the stored turns as input items.

use std::future::Future;
use std::pin::Pin;

use routerly_core::canonical::{
    ChatRequest, ChatResponse, ContentPart, ErrorBody, ErrorKind, Message, Role,
};
use routerly_core::wire::WireFormat;
use routerly_core::wire::responses::{history_items, new_response_id};
use serde_json::{Value, json};

use super::Caller;
use super::error::ProxyError;
use super::relay::OnComplete;
use crate::state::AppState;
use crate::store::state::StoredResponse;

/// One Responses call's conversation.
pub struct Conversation {
    /// The id the client sees when the answer is re-encoded (OpenAI's own otherwise).
    pub response_id: String,
    store: bool,
    /// Everything the model is sent: the stored turns, then the new input.
    messages: Vec<Message>,
}

/// Resolves `previous_response_id` (into `request` and, for pass-through, into `raw`) and
/// notes whether the answer is to be stored.
pub(super) async fn prepare(
    app: &AppState,
    caller: &Caller<'_>,
    raw: &mut Value,
    request: &mut ChatRequest,
    format: WireFormat,
) -> Result<Conversation, ProxyError> {
    let store = raw.get("store").and_then(Value::as_bool).unwrap_or(true);
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
        response_id: new_response_id(),
        store,
        messages: request.messages.clone(),
    })
}

type StoreFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

impl Conversation {
    /// Storing `answer` (under its own id) after this conversation, when the client
    /// allows it.
    pub(super) fn store_future(
        &self,
        app: &AppState,
        caller: &Caller<'_>,
        answer: ChatResponse,
    ) -> Option<StoreFuture> {
        self.on_complete(app, caller).map(|store| store(answer))
    }

    /// The relay's hook that stores the streamed answer, when the client allows it.
    pub(super) fn on_complete(&self, app: &AppState, caller: &Caller<'_>) -> Option<OnComplete> {
        if !self.store {
            return None;
        }
        let responses = app.responses.clone();
        let project_id = caller.project.id.clone();
        let mut messages = self.messages.clone();
        Some(Box::new(move |answer: ChatResponse| {
            Box::pin(async move {
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
                };
                if let Err(error) = responses.put(stored).await {
                    tracing::warn!(%error, id = %answer.id, "cannot store a response");
                }
            }) as StoreFuture
        }))
    }
}
