//! The Routerly service.
//!
//! - [`store`]: the files under `$ROUTERLY_HOME`: config snapshot, secrets, usage log,
//!   shared-state traits.
//! - [`proxy`]: the `/v1` surfaces that OpenAI and Anthropic clients call.
//! - [`api`]: the `/api` management API that the dashboard and CLI call.
//! - [`budgets`]: limits enforced before any provider is called; counters and checkpoints.
//! - [`dashboard`]: the embedded React app at `/dashboard`.
//! - [`notify`]: budget alerts by email and webhook, off the request path.
//! - [`routing`]: the routing engine: policies, statistics, traces, retries.
//! - [`Service`]: opens the store, starts the background tasks, serves a listener until
//!   its shutdown future completes, then drains in-flight requests and flushes usage.

pub mod admission;
pub mod api;
pub mod budgets;
pub mod dashboard;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod notify;
pub mod panics;
pub mod proxy;
pub mod routing;
pub mod state;
pub mod store;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{any, get, post};
use serde_json::json;
use tokio::net::TcpListener;

use crate::metrics::{Exposition, Kind, Value};
use crate::state::{App, AppState};
use crate::store::config::ConfigStore;
use crate::store::home::Home;
use crate::store::sessions::FileSessionStore;
use crate::store::usage_log::{UsageWriterHandle, spawn_shipping_usage_writer};

/// Capacity of the channel between requests and the usage writer.
const USAGE_CHANNEL_CAPACITY: usize = 65_536;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store refused to open (bad file, bad key, IO).
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// `ROUTERLY_DATABASE_URL` is set but the database cannot be used.
    #[error("{0}")]
    Database(#[from] store::pg::DbError),
    /// The headless first admin could not be created.
    #[error("could not create the admin from ROUTERLY_ADMIN_EMAIL: {0}")]
    Admin(String),
}

/// A service ready to serve.
pub struct Service {
    app: App,
    usage_writer: UsageWriterHandle,
    stop_watcher: tokio::sync::watch::Sender<bool>,
    watcher: tokio::task::JoinHandle<()>,
    budget_tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The PostgreSQL shipper's stop signal and task, stopped after the usage writer.
    shipper: Option<(
        tokio::sync::watch::Sender<bool>,
        tokio::task::JoinHandle<()>,
    )>,
    /// The setup token, when this start created one (to print it).
    pub new_setup_token: Option<String>,
}

impl Service {
    /// Opens `$ROUTERLY_HOME` (creating it on first start) and starts the background tasks.
    pub async fn open(home: Home) -> Result<Service, StartError> {
        let opening = Instant::now();
        let report = home.init()?;
        let master_key = report.master_key.clone();
        // Shared mode: the configuration is read from PostgreSQL, every batch the usage
        // writer makes durable locally is shipped there, and reports read it (every
        // replica's records).
        let database_url = std::env::var(store::pg::DATABASE_URL_ENV)
            .ok()
            .map(|url| url.trim().to_owned())
            .filter(|url| !url.is_empty());
        let database = match &database_url {
            Some(url) => Some(store::pg::Database::open(url).await?),
            None => None,
        };
        // Access tokens signed by one replica are accepted by the others.
        let session_keys = api::auth::SessionKeys::new(match &database {
            Some(database) => store::pg::shared::session_signing_key(database, &master_key).await?,
            None => home.session_signing_key()?,
        });
        let store = Arc::new(match &database_url {
            Some(url) => ConfigStore::open_database(&home, master_key, url).await?,
            None => ConfigStore::open(&home, master_key)?,
        });
        // One read of the usage log at start-up rebuilds budget counters, the usage
        // history (rollups, the active segment's index) and routing statistics.
        let usage_log = home.usage_log_path();
        let usage_checkpoint = home.usage_checkpoint_path();
        // With PostgreSQL, reports come from the database's rollups: the local history keeps
        // only the segment indexes.
        let rollups = match &database {
            Some(_) => store::history::RollupMode::Skipped,
            None => store::history::RollupMode::Kept,
        };
        let (files, usage_history, history_start) = tokio::task::spawn_blocking(move || {
            store::segments::clean_interrupted(&usage_log)?;
            let files = store::usage_log::usage_log_files(&usage_log)?;
            let (history, start) = store::history::FileUsageHistory::open(
                &usage_log,
                &usage_checkpoint,
                &files,
                rollups,
            )?;
            Ok::<_, std::io::Error>((files, history, start))
        })
        .await
        .expect("opening the usage history does not panic")
        .map_err(|error| store::StoreError::io(home.usage_log_path(), error))?;
        let history_opened = opening.elapsed();
        let routing = routing::Routing::open(&home, &store.snapshot(), database.clone());
        let replay = store::history::Replays(vec![
            Box::new(usage_history.replay(history_start)),
            routing.replay(&files, &|file, since| {
                usage_history.offset_since(&files[..], file, since)
            }),
        ]);
        let shared =
            store::redis_shared::SharedRedis::from_env().map_err(store::StoreError::Settings)?;
        // A replica's first alert ledger is the one `migrate --from-files` copied (if any).
        if let Some(database) = &database
            && !home.alerts_path().exists()
        {
            let alerts = store::pg::shared::alert_ledger(database).await?;
            if !alerts.is_empty() {
                notify::AlertLedger::seed(&home.alerts_path(), alerts)
                    .map_err(|error| store::StoreError::io(home.alerts_path(), error))?;
            }
        }
        let (budgets, notifier) = budgets::start(
            &home,
            &store,
            files,
            Box::new(replay),
            shared.clone(),
            database.clone(),
        )
        .await?;
        // After the replay: the records it feeds the statistics are this replica's own past,
        // not news for the others.
        if let Some(shared) = &shared {
            routing.share(Arc::clone(shared), home.replica_id()?);
        }
        let replayed = opening.elapsed();
        // Before serving: reports then read days, not hours, past the horizon.
        usage_history.compact(
            chrono::Utc::now(),
            store.snapshot().settings.usage_hourly_rollup_days,
        );
        let compacted = opening.elapsed();
        let usage_shipper = match &database {
            Some(database) => Some(
                store::pg::usage::UsageShipper::open(
                    Arc::clone(database),
                    home.data_dir().join("pg-usage-spool.jsonl"),
                    store::pg::usage::BufferLimits::from_env(),
                )
                .map_err(|error| store::StoreError::io(home.data_dir(), error))?,
            ),
            None => None,
        };
        if let Some(shipper) = &usage_shipper {
            // A replica killed before shipping what it had logged sends it now.
            if let Err(error) = shipper.resend_unshipped(&home.usage_log_path()).await {
                tracing::warn!(%error, "cannot check which logged usage records PostgreSQL lacks; they are sent when it answers at the next start");
            }
        }
        let usage_reads: Arc<dyn store::history::UsageHistory> = match &database {
            Some(database) => Arc::new(store::pg::usage::PgUsageHistory::new(
                Arc::clone(database),
                tokio::runtime::Handle::current(),
            )),
            None => Arc::clone(&usage_history) as Arc<dyn store::history::UsageHistory>,
        };
        let ship = usage_shipper.clone().map(|shipper| {
            Arc::new(move |bytes: &[u8], records| shipper.hand_records(bytes, records))
                as store::usage_log::BatchHook
        });
        let (usage, usage_writer) = spawn_shipping_usage_writer(
            home.usage_log_path(),
            USAGE_CHANNEL_CAPACITY,
            store.snapshot().settings.usage_log_rotate_bytes,
            Some(Arc::clone(&usage_history)),
            ship,
        );
        let metrics = Arc::new(metrics::Metrics::new());
        let observed = Arc::clone(&metrics);
        // Every record passes here once: metrics and the request's log line both come from it.
        let usage = usage.observed_by(Arc::new(move |record| {
            observed.observe(record);
            logging::log_request(record);
        }));
        let observed = Arc::clone(&budgets);
        let usage = usage.observed_by(Arc::new(move |record| observed.observe(record)));
        let observed = Arc::clone(&routing);
        let usage = usage.observed_by(Arc::new(move |record| observed.observe(record)));
        // Sessions, conversation state and the audit log: in PostgreSQL when replicas
        // share it, so any replica continues what another began.
        let (sessions, responses, audit): (
            Arc<dyn store::sessions::SessionStore>,
            Arc<dyn store::responses::ResponseStore>,
            _,
        ) = match &database {
            Some(database) => (
                Arc::new(store::pg::shared::PgSessionStore::new(Arc::clone(database))),
                Arc::new(store::pg::shared::PgResponseStore::new(
                    Arc::clone(database),
                    store::responses::ResponseLimits::default(),
                )),
                store::audit::AuditLog::in_database(Arc::clone(database)),
            ),
            None => (
                Arc::new(FileSessionStore::open(home.sessions_path())?),
                Arc::new(store::responses::FileResponseStore::open(
                    home.responses_dir(),
                    store::responses::ResponseLimits::default(),
                )?),
                store::audit::AuditLog::new(home.audit_log_path()),
            ),
        };
        let api_keys: Arc<dyn store::api_keys::ApiKeyStore> = match &database {
            Some(database) => Arc::new(store::pg::shared::PgApiKeyStore::new(Arc::clone(database))),
            None => Arc::new(store::api_keys::FileApiKeyStore::open(
                home.api_keys_path(),
            )?),
        };
        let limits = store.snapshot().settings.connections;
        let (stop_watcher, watcher_stopped) = tokio::sync::watch::channel(false);
        let watcher = store.spawn_watcher(watcher_stopped);
        let app = Arc::new(AppState {
            home,
            routing,
            store,
            usage,
            usage_history,
            usage_reads,
            usage_shipper: usage_shipper.clone(),
            upstream: routerly_providers::Upstream::new(),
            session_keys,
            sessions,
            api_keys,
            login_limiter: api::auth::LoginLimiter::new(shared),
            password_hashing: admission::PasswordHashing::new(
                limits.password_hashing_concurrency,
                limits.password_hashing_queue,
                api::auth::release_hashing_memory,
            ),
            body_budget: admission::BodyBudget::new(limits.body_memory_bytes),
            audit,
            started_at: Instant::now(),
            listening_on: std::sync::OnceLock::new(),
            metrics,
            budgets,
            responses,
        });
        api::auth::prepare_dummy_hash(&app.password_hashing).await;
        if let (Ok(email), Ok(password)) = (
            std::env::var("ROUTERLY_ADMIN_EMAIL"),
            std::env::var("ROUTERLY_ADMIN_PASSWORD"),
        ) && app.store.snapshot().users.users.is_empty()
        {
            api::setup_headless_admin(&app, &email, &password)
                .await
                .map_err(StartError::Admin)?;
            tracing::info!(%email, "created the first admin from ROUTERLY_ADMIN_EMAIL");
        }
        let new_setup_token =
            if report.setup_token_created && app.store.snapshot().users.users.is_empty() {
                app.home.read_setup_token().ok().flatten()
            } else {
                None
            };
        tracing::info!(
            history_ms = history_opened.as_millis() as u64,
            replay_ms = (replayed - history_opened).as_millis() as u64,
            compact_ms = (compacted - replayed).as_millis() as u64,
            rest_ms = (opening.elapsed() - compacted).as_millis() as u64,
            "start-up: usage history opened, log tail replayed, rollups compacted, the rest"
        );
        let budget_tasks =
            budgets::spawn_periodic(&app.budgets, &app.home, stop_watcher.subscribe());
        let history_task = spawn_history_upkeep(&app, stop_watcher.subscribe());
        let shipper = usage_shipper.map(|shipper| {
            let (stop, stopped) = tokio::sync::watch::channel(false);
            (stop, tokio::spawn(shipper.run(stopped)))
        });
        Ok(Service {
            shipper,
            app,
            usage_writer,
            stop_watcher,
            watcher,
            budget_tasks: vec![budget_tasks, notifier, history_task],
            new_setup_token,
        })
    }

    /// The shared state, for in-process tests.
    pub fn app(&self) -> App {
        self.app.clone()
    }

    /// Serves `listener` until `shutdown` completes, then stops accepting, lets in-flight
    /// requests and streams finish within the grace period, and flushes every usage record.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let settings = self.app.store.snapshot().settings.clone();
        if let Ok(address) = listener.local_addr() {
            let _ = self.app.listening_on.set(address);
        }
        let grace = Duration::from_secs(settings.shutdown_grace_seconds);
        net::serve_connections(
            listener,
            router(self.app.clone()),
            Some(self.app.clone()),
            settings.connections,
            shutdown,
            grace,
        )
        .await;
        let _ = self.stop_watcher.send(true);
        let _ = self.watcher.await;
        let Service {
            app,
            usage_writer,
            budget_tasks,
            shipper,
            ..
        } = self;
        let (budgets, home) = (Arc::clone(&app.budgets), app.home.clone());
        let history = Arc::clone(&app.usage_history);
        drop(app);
        let stats = usage_writer.shutdown().await;
        // After the writer: its last batches are handed over before the shipper stops.
        if let Some((stop, task)) = shipper {
            let _ = stop.send(true);
            let _ = task.await;
        }
        for task in budget_tasks {
            task.abort();
        }
        budgets::final_checkpoint(&budgets, &home).await;
        history_checkpoint(&history).await;
        tracing::info!(?stats, "usage log flushed; bye");
        Ok(())
    }
}

/// How often the usage history is checkpointed, and how often its upkeep runs.
const HISTORY_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(30);
const HISTORY_UPKEEP_INTERVAL: Duration = Duration::from_secs(600);

/// Checkpoints the usage history every [`HISTORY_CHECKPOINT_INTERVAL`]; at start and every
/// [`HISTORY_UPKEEP_INTERVAL`], merges old hour rollups into days and compresses and expires
/// old segments as the settings say. Stops when `stop` turns `true`.
fn spawn_history_upkeep(
    app: &App,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let history = Arc::clone(&app.usage_history);
    let store = Arc::clone(&app.store);
    panics::supervise("usage history upkeep", move || {
        let (history, store, mut stop) = (Arc::clone(&history), Arc::clone(&store), stop.clone());
        async move {
            let mut checkpoints = tokio::time::interval(HISTORY_CHECKPOINT_INTERVAL);
            let mut upkeep = tokio::time::interval(HISTORY_UPKEEP_INTERVAL);
            checkpoints.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            upkeep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            checkpoints.tick().await;
            while !*stop.borrow() {
                tokio::select! {
                    _ = checkpoints.tick() => history_checkpoint(&history).await,
                    _ = upkeep.tick() => {
                        let settings = store.snapshot().settings.clone();
                        let retention = store::history::Retention {
                            keep_days: settings.usage_retention_days,
                            compress_after_days: settings.usage_compress_after_days,
                            hourly_days: settings.usage_hourly_rollup_days,
                        };
                        let history = Arc::clone(&history);
                        match tokio::task::spawn_blocking(move || history.maintain(chrono::Utc::now(), retention)).await {
                            Ok(Ok(done)) if done != store::history::Maintained::default() => {
                                tracing::info!(compressed = done.compressed, deleted = done.deleted, "usage segments maintained");
                            }
                            Ok(Ok(_)) => {}
                            Ok(Err(error)) => tracing::error!(%error, "usage segment upkeep failed"),
                            Err(error) => tracing::error!(%error, "the usage segment upkeep task failed"),
                        }
                    }
                    changed = stop.changed() => {
                        if changed.is_err() {
                            break;
                        }
                    }
                }
            }
        }
    })
}

/// Writes the usage history's checkpoint (when records came since the last one).
async fn history_checkpoint(history: &Arc<store::history::FileUsageHistory>) {
    let history = Arc::clone(history);
    match tokio::task::spawn_blocking(move || history.checkpoint()).await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => tracing::error!(%error, "cannot write the usage checkpoint"),
        Err(error) => tracing::error!(%error, "the usage checkpoint task failed"),
    }
}

/// The whole HTTP surface. Each surface's routes answer a panic with a 500 in their own
/// error shape ([`panics`]).
pub fn router(app: App) -> Router {
    use panics::{PanicShape, catch_layer};
    use routerly_core::wire::WireFormat;
    let openai = Router::new()
        .route("/v1/chat/completions", post(proxy::chat_completions))
        .route("/v1/embeddings", post(proxy::embeddings))
        .route("/v1/models", get(proxy::list_models))
        .route("/v1/models/{*id}", get(proxy::get_model))
        .route("/v1/{*rest}", any(proxy::unknown_route))
        .method_not_allowed_fallback(proxy::method_not_allowed(WireFormat::OpenAiChat))
        .layer(catch_layer(PanicShape::Proxy(WireFormat::OpenAiChat)));
    let anthropic = Router::new()
        .route("/v1/messages", post(proxy::messages))
        .route("/v1/messages/count_tokens", post(proxy::count_tokens))
        .method_not_allowed_fallback(proxy::method_not_allowed(WireFormat::AnthropicMessages))
        .layer(catch_layer(PanicShape::Proxy(
            WireFormat::AnthropicMessages,
        )));
    let responses = Router::new()
        .route("/v1/responses", post(proxy::responses))
        .route(
            "/v1/responses/{id}",
            get(proxy::responses::retrieve).delete(proxy::responses::delete),
        )
        .route(
            "/v1/responses/{id}/input_items",
            get(proxy::responses::input_items_of),
        )
        .method_not_allowed_fallback(proxy::method_not_allowed(WireFormat::OpenAiResponses))
        .layer(catch_layer(PanicShape::Proxy(WireFormat::OpenAiResponses)));
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics_text))
        .route("/", get(|| async { Redirect::temporary("/dashboard") }))
        .route("/dashboard", get(dashboard::index))
        .route("/dashboard/", get(dashboard::index))
        .route("/dashboard/{*path}", get(dashboard::asset))
        .method_not_allowed_fallback(method_not_allowed)
        .merge(openai)
        .merge(anthropic)
        .merge(responses)
        .merge(api::router(app.clone()).layer(catch_layer(PanicShape::Api)))
        .with_state(app)
}

/// A method that `/health`, `/ready`, `/metrics` or the dashboard does not take: 405 in the
/// management API's error shape (axum adds `Allow`).
async fn method_not_allowed(method: http::Method, uri: http::Uri) -> Response {
    api::ApiError::new(
        api::ErrorCode::MethodNotAllowed,
        format!(
            "{} does not take {method}; the Allow header lists the methods it takes",
            uri.path()
        ),
    )
    .into_response()
}

async fn health(State(app): State<App>) -> Response {
    axum::Json(routerly_api::system::Health {
        status: "ok".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime: app.started_at.elapsed().as_secs(),
    })
    .into_response()
}

async fn ready(State(app): State<App>) -> Response {
    let shipper = app.usage_shipper.as_ref().map(|shipper| shipper.state());
    let usage_ok = app.usage.is_healthy() && shipper != Some(store::pg::usage::ShipperState::Full);
    // Fail-closed without Redis refuses limited calls: not ready. Fail-open serves, degraded.
    let (counters, counters_ok) = match app.budgets.counters().health() {
        store::counters::CounterHealth::Local => ("local", true),
        store::counters::CounterHealth::Shared => ("redis", true),
        store::counters::CounterHealth::Degraded { fail_open: true } => {
            ("redis_unreachable_fail_open", true)
        }
        store::counters::CounterHealth::Degraded { fail_open: false } => {
            ("redis_unreachable_fail_closed", false)
        }
    };
    let ready = usage_ok && counters_ok;
    let mut body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "config_loaded": true,
        "usage_writer": if app.usage.is_healthy() { "ok" } else { "failing" },
        "budget_counters": counters,
    });
    if let (Some(state), Some(shipper)) = (shipper, &app.usage_shipper) {
        let (in_memory, on_disk) = shipper.waiting();
        body["postgres"] = json!({
            "usage": state.name(),
            "waiting_in_memory": in_memory,
            "waiting_on_disk": on_disk,
        });
    }
    let status = if ready {
        http::StatusCode::OK
    } else {
        http::StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

/// The flood counters for `/metrics`.
fn add_admission_metrics(app: &AppState, exposition: &mut Exposition) {
    exposition.single(
        "routerly_password_hashes_total",
        "Password hashes computed (login checks included).",
        Kind::Counter,
        Value::Integer(app.password_hashing.computed()),
    );
    exposition.single(
        "routerly_password_hashing_refused_total",
        "Logins and password changes refused because hashing was at its cap.",
        Kind::Counter,
        Value::Integer(app.password_hashing.refused()),
    );
    exposition.single(
        "routerly_body_memory_bytes",
        "Bytes of request bodies held in memory now.",
        Kind::Gauge,
        Value::Integer(app.body_budget.in_use() as u64),
    );
    exposition.single(
        "routerly_body_memory_refused_total",
        "Requests refused because request bodies used up their memory budget.",
        Kind::Counter,
        Value::Integer(app.body_budget.refusals()),
    );
    exposition.single(
        "routerly_task_panics_total",
        "Background task panics (each task is started again).",
        Kind::Counter,
        Value::Integer(panics::task_panics()),
    );
}

/// `GET /metrics`: the Prometheus text exposition, behind the configured bearer token.
async fn metrics_text(State(app): State<App>, headers: http::HeaderMap) -> Response {
    if let Some(expected) = app.store.snapshot().metrics_token() {
        let presented = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or("");
        let matches: bool =
            subtle::ConstantTimeEq::ct_eq(presented.as_bytes(), expected.as_bytes()).into();
        if !matches {
            return (
                http::StatusCode::UNAUTHORIZED,
                [(http::header::WWW_AUTHENTICATE, "Bearer")],
                "metrics need `Authorization: Bearer <metrics_token>`\n",
            )
                .into_response();
        }
    }
    (
        [(
            http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        {
            let mut exposition = Exposition::default();
            app.metrics.add_to(&mut exposition, app.usage.queue_depth());
            app.budgets
                .add_metrics(&app.store.snapshot(), &mut exposition);
            app.routing.add_metrics(&mut exposition);
            add_admission_metrics(&app, &mut exposition);
            exposition.encode()
        },
    )
        .into_response()
}
