//! A panic never takes a connection, a task or the service down with it.
//!
//! - In a handler: [`catch_layer`] turns it into a 500 in the surface's own error shape
//!   (OpenAI, Anthropic or the management API's), with a generic message; the detail goes to
//!   the log. The configuration is changed only by [`crate::store::ConfigStore::update`],
//!   which writes nothing until the whole change is built and validated, so a panic leaves no
//!   half-applied change behind.
//! - Anywhere (handlers and background tasks alike): [`install_hook`] writes one error line
//!   through `tracing` with the panic's message and location; tokio keeps the runtime and the
//!   other tasks running.
//! - In a background task: [`supervise`] runs the service's long-lived loops (budget
//!   checkpoints and resets, alert delivery, usage-history upkeep, the config watcher) so that
//!   a panic logs which task it was and starts the task again after a pause, instead of
//!   leaving the service running without it. `routerly_task_panics_total` counts them.

use std::any::Any;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::FutureExt as _;

use axum::response::{IntoResponse, Response};
use routerly_core::canonical::ErrorKind;
use routerly_core::wire::WireFormat;
use tower_http::catch_panic::{CatchPanicLayer, ResponseForPanic};

use crate::api::{ApiError, ErrorCode};
use crate::proxy::ProxyError;

/// Which error shape a caught panic is answered in.
#[derive(Debug, Clone, Copy)]
pub enum PanicShape {
    /// A proxy surface, in its client's wire format.
    Proxy(WireFormat),
    /// The management API.
    Api,
}

/// Renders a caught panic for one surface.
#[derive(Debug, Clone, Copy)]
pub struct PanicResponse(pub PanicShape);

impl ResponseForPanic for PanicResponse {
    type ResponseBody = axum::body::Body;

    fn response_for_panic(&mut self, panic: Box<dyn Any + Send + 'static>) -> Response {
        let id = uuid::Uuid::now_v7();
        tracing::error!(error_id = %id, panic = %panic_message(&*panic), "a request handler panicked; answered 500");
        let message = format!("internal error (id {id}); see the service log");
        match self.0 {
            PanicShape::Proxy(format) => {
                ProxyError::new(format, ErrorKind::Internal, message).into_response()
            }
            PanicShape::Api => ApiError::new(ErrorCode::Internal, message).into_response(),
        }
    }
}

/// The layer that catches panics of the routes it wraps.
pub fn catch_layer(shape: PanicShape) -> CatchPanicLayer<PanicResponse> {
    CatchPanicLayer::custom(PanicResponse(shape))
}

/// The text of a panic payload.
pub fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(a panic without a message)")
}

/// Logs every panic of the process (in a handler or a background task) as one error line
/// through `tracing`, with where it happened.
pub fn install_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|location| format!("{}:{}", location.file(), location.line()))
            .unwrap_or_default();
        let thread = std::thread::current();
        tracing::error!(
            panic = %panic_message(info.payload()),
            %location,
            thread = thread.name().unwrap_or("unnamed"),
            "panic"
        );
    }));
}

/// Background task panics since start (each restarted by [`supervise`]).
static TASK_PANICS: AtomicU64 = AtomicU64::new(0);

/// The first pause before a panicked task starts again, and the longest.
const RESTART_DELAY: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(60));

/// Background task panics since start, for `/metrics`.
pub fn task_panics() -> u64 {
    TASK_PANICS.load(Ordering::Relaxed)
}

/// Spawns the long-lived task `name`, built by `make`; when it panics, logs an error naming
/// it and builds and runs it again after a pause (one second, doubling up to a minute, so a
/// task that panics at every start does not spin). The returned handle ends when a run of
/// the task ends without a panic (or is aborted). Everything a task keeps between runs lives
/// in what `make` captures (shared state, channels behind a lock), so a restart resumes it.
pub fn supervise<F>(
    name: &'static str,
    mut make: impl FnMut() -> F + Send + 'static,
) -> tokio::task::JoinHandle<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut delay = RESTART_DELAY.0;
        loop {
            match std::panic::AssertUnwindSafe(make()).catch_unwind().await {
                Ok(()) => return,
                Err(panic) => {
                    TASK_PANICS.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(
                        task = name,
                        panic = %panic_message(&*panic),
                        "background task panicked; restarting it in {} s",
                        delay.as_secs()
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(RESTART_DELAY.1);
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn boom() -> &'static str {
        panic!("secret detail of the panic")
    }

    async fn answer(shape: PanicShape) -> (http::StatusCode, serde_json::Value) {
        let router = axum::Router::new()
            .route("/boom", get(boom))
            .layer(catch_layer(shape));
        let request = http::Request::get("/boom")
            .body(axum::body::Body::empty())
            .expect("request");
        let response = router
            .oneshot(request)
            .await
            .expect("an answer, not a dropped connection");
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, serde_json::from_slice(&bytes).expect("a JSON body"))
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_in_its_surfaces_shape_without_the_detail() {
        let (status, body) = answer(PanicShape::Api).await;
        assert_eq!(status, http::StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"]["code"], "internal_error", "{body}");
        let (status, body) = answer(PanicShape::Proxy(WireFormat::AnthropicMessages)).await;
        assert_eq!(status, http::StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["type"], "error", "{body}");
        assert_eq!(body["error"]["type"], "api_error", "{body}");
        let (status, body) = answer(PanicShape::Proxy(WireFormat::OpenAiChat)).await;
        assert_eq!(status, http::StatusCode::INTERNAL_SERVER_ERROR);
        assert!(body["error"]["message"].is_string(), "{body}");
        assert!(!body.to_string().contains("secret detail"), "{body}");
    }

    #[tokio::test]
    async fn a_supervised_task_that_panics_is_logged_and_started_again() {
        use std::sync::Arc;
        use std::sync::atomic::AtomicU32;
        let runs = Arc::new(AtomicU32::new(0));
        let before = task_panics();
        let counted = Arc::clone(&runs);
        let task = supervise("test task", move || {
            let counted = Arc::clone(&counted);
            async move {
                // Panics on its first run, then ends normally.
                if counted.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("a bug in a background task");
                }
            }
        });
        let started = std::time::Instant::now();
        task.await.expect("the supervisor itself never panics");
        assert_eq!(
            runs.load(Ordering::SeqCst),
            2,
            "started again after the panic"
        );
        assert!(task_panics() > before);
        assert!(
            started.elapsed() >= RESTART_DELAY.0,
            "a pause before the restart"
        );
    }
}
