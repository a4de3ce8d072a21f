//! Budget alerts, delivered off the request path.
//!
//! [`AlertLedger`] remembers which alert fired for which limit and window (`data/alerts.json`),
//! so each fires at most once, also across restarts; its [`AlertLedger::send_once`] only
//! pushes the event on an unbounded channel. One task ([`spawn_notifier`]) receives the
//! events, records a pending delivery per channel, saves the ledger, and delivers each event
//! to every configured channel, each delivery in its own task with retries ([`DELIVERY_ATTEMPTS`], exponential backoff from one second).
//! Each delivery's outcome (delivered, or failed after every attempt) is kept in the ledger
//! for `GET /api/alerts`, its reason only in the log (it may name a secret URL). A delivery
//! that still fails is logged; nothing here can fail or slow a request.
//!
//! Replicas on PostgreSQL share one alert history: the replica that delivers an alert (the
//! first to claim it in Redis, see [`claimed`]) writes its entry to the `alert_ledger` table
//! once its deliveries are recorded as pending and again as each settles, and
//! `GET /api/alerts` reads that table ([`AlertLedger::history`]), so every replica shows
//! every alert once with how its deliveries went. Each replica's `data/alerts.json` stays
//! its own record of what it has seen fire (so it does not fire it again).
//!
//! - [`smtp`]: email through `lettre` (TLS `none`, `starttls` or `tls`, optional CA file).
//! - [`webhook`]: signed JSON POSTs, with the SSRF guard that refuses loopback, private and
//!   link-local targets unless `allow_private_webhooks` is set.

pub mod smtp;
pub mod webhook;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex as StdMutex, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use routerly_core::alerts::{AlertEvent, Channel, EventKind};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::store::config::ConfigStore;
use crate::store::files;
use crate::store::pg::Database;
use crate::store::redis_shared::SharedRedis;
use crate::store::secrets::EnvAllowList;

/// Attempts per delivery, the first included.
pub const DELIVERY_ATTEMPTS: u32 = 5;
/// Wait before the first retry; doubled for each later one.
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
/// Ledger entries older than this are forgotten (longer than a yearly window).
const LEDGER_KEEP_DAYS: i64 = 400;

/// Identity of one alert: a limit, a window and an event (with its threshold).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LedgerKey {
    /// The limit's id.
    pub limit_id: String,
    /// Start of the window (Unix seconds).
    pub window_start: i64,
    /// The event.
    pub event: EventKind,
    /// The threshold crossed (`budget.threshold` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<u32>,
}

/// One alert of `data/alerts.json`: what fired, when, and how its deliveries went.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Which limit, window and event.
    #[serde(flatten)]
    pub key: LedgerKey,
    /// When it fired.
    pub fired_at: DateTime<Utc>,
    /// The event's id (as webhooks receive it); absent in entries written before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The limit's scope when it fired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The alert's sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// One per channel configured when it fired.
    #[serde(default)]
    pub deliveries: Vec<Delivery>,
}

/// How one delivery of an alert to one channel went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Still being tried.
    Pending,
    /// The channel accepted it.
    Delivered,
    /// Every attempt failed (the reason is logged, not kept: it may name a secret URL).
    Failed,
}

/// One delivery of an alert to one channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delivery {
    /// The channel's id.
    pub channel: String,
    /// How it went.
    pub outcome: Outcome,
    /// Attempts made.
    pub attempts: u32,
    /// When it was delivered or given up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
}

/// `data/alerts.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct LedgerFile {
    alerts: Vec<LedgerEntry>,
}

/// Which alerts fired; see the module documentation.
pub struct AlertLedger {
    path: Option<PathBuf>,
    /// Held for a whole save, snapshot and write: two saves at once (deliveries settle
    /// concurrently) must not let the older snapshot be written last.
    saving: StdMutex<()>,
    fired: StdMutex<Vec<LedgerEntry>>,
    index: StdMutex<HashSet<LedgerKey>>,
    sender: mpsc::UnboundedSender<AlertEvent>,
    receiver: StdMutex<Option<mpsc::UnboundedReceiver<AlertEvent>>>,
    /// The replicas' shared alert history, in PostgreSQL mode.
    shared: Option<Arc<Database>>,
}

impl std::fmt::Debug for AlertLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertLedger")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl AlertLedger {
    /// The ledger saved at `path` (empty when the file does not exist or is unreadable,
    /// with a warning for the latter); `None` keeps it in memory only.
    pub fn open(path: Option<PathBuf>) -> Self {
        let file: LedgerFile = match &path {
            Some(path) if path.exists() => files::load_json(path).unwrap_or_else(|error| {
                tracing::warn!(%error, "cannot read the alert ledger; alerts may repeat");
                LedgerFile::default()
            }),
            _ => LedgerFile::default(),
        };
        let index = file.alerts.iter().map(|entry| entry.key.clone()).collect();
        let (sender, receiver) = mpsc::unbounded_channel();
        AlertLedger {
            saving: StdMutex::new(()),
            path,
            fired: StdMutex::new(file.alerts),
            index: StdMutex::new(index),
            sender,
            receiver: StdMutex::new(Some(receiver)),
            shared: None,
        }
    }

    /// The same ledger, sharing the alerts this replica delivers through `database`'s
    /// `alert_ledger` table (see the module documentation).
    pub fn shared_through(mut self, database: Option<Arc<Database>>) -> Self {
        self.shared = database;
        self
    }

    /// Every alert fired, oldest first, for the API: the replicas' shared history in
    /// PostgreSQL mode (this replica's own when the database cannot be read, with a
    /// warning), else this replica's.
    pub async fn history(&self) -> Vec<LedgerEntry> {
        if let Some(database) = &self.shared {
            match crate::store::pg::shared::alert_ledger(database).await {
                Ok(entries) => return entries,
                Err(error) => {
                    tracing::warn!(%error, "cannot read the shared alert history; showing this replica's")
                }
            }
        }
        self.fired()
    }

    /// The newest ledger entry of event `event_id`, if this replica fired it.
    fn entry_of(&self, event_id: &str) -> Option<LedgerEntry> {
        self.fired
            .lock()
            .expect("ledger lock is never poisoned")
            .iter()
            .rev()
            .find(|entry| entry.event_id.as_deref() == Some(event_id))
            .cloned()
    }

    /// Writes the entry of event `event_id` (with its deliveries as they stand) to the shared
    /// alert history, in PostgreSQL mode; a failure is logged (the entry stays in this
    /// replica's ledger).
    async fn publish(&self, event_id: &str) {
        let Some(database) = &self.shared else {
            return;
        };
        let Some(entry) = self.entry_of(event_id) else {
            return;
        };
        if let Err(error) = crate::store::pg::shared::upsert_alert(database, &entry).await {
            tracing::warn!(%error, limit = %entry.key.limit_id, "cannot write an alert to the shared alert history");
        }
    }

    /// Whether this replica delivers `event`, decided in PostgreSQL mode without Redis: the
    /// first replica whose insert of the entry into `alert_ledger` lands (its key is the
    /// limit, window, event and threshold, the table's primary key) delivers it, the others'
    /// inserts do nothing. True without a database, for an event about no limit, and when
    /// the database cannot be reached (a duplicate rather than a lost alert).
    pub async fn claim_in_database(&self, event: &AlertEvent) -> bool {
        let Some(database) = &self.shared else {
            return true;
        };
        if event.limit.is_none() {
            return true;
        }
        let Some(entry) = self.entry_of(&event.id) else {
            return true;
        };
        match crate::store::pg::shared::insert_alerts(database, std::slice::from_ref(&entry)).await
        {
            Ok(added) => added > 0,
            Err(error) => {
                tracing::warn!(%error, "PostgreSQL cannot be reached: this alert may also be sent by other replicas");
                true
            }
        }
    }

    /// Whether `key` has fired already (so that the caller need not build its event).
    pub fn fired_already(&self, key: &LedgerKey) -> bool {
        self.index
            .lock()
            .expect("ledger lock is never poisoned")
            .contains(key)
    }

    /// Records `event` under `key` and queues it for delivery (never blocks), the first time
    /// `key` fires only; `false` when it had fired already.
    pub fn send_once(&self, key: LedgerKey, event: AlertEvent) -> bool {
        if !self
            .index
            .lock()
            .expect("ledger lock is never poisoned")
            .insert(key.clone())
        {
            return false;
        }
        self.fired
            .lock()
            .expect("ledger lock is never poisoned")
            .push(LedgerEntry {
                key,
                fired_at: event.timestamp,
                event_id: Some(event.id.clone()),
                scope: event.limit.as_ref().map(|limit| limit.scope.clone()),
                message: Some(event.message.clone()),
                deliveries: Vec::new(),
            });
        if self.sender.send(event).is_err() {
            tracing::warn!("the notifier has stopped; alert not delivered");
        }
        true
    }

    /// Applies `change` to the delivery of event `event_id` to `channel` (added, pending,
    /// when there is none yet).
    fn delivery(&self, event_id: &str, channel: &str, change: impl FnOnce(&mut Delivery)) {
        let mut fired = self.fired.lock().expect("ledger lock is never poisoned");
        let Some(entry) = fired
            .iter_mut()
            .rev()
            .find(|entry| entry.event_id.as_deref() == Some(event_id))
        else {
            return;
        };
        let index = match entry
            .deliveries
            .iter()
            .position(|delivery| delivery.channel == channel)
        {
            Some(index) => index,
            None => {
                entry.deliveries.push(Delivery {
                    channel: channel.to_owned(),
                    outcome: Outcome::Pending,
                    attempts: 0,
                    finished_at: None,
                });
                entry.deliveries.len() - 1
            }
        };
        change(&mut entry.deliveries[index]);
    }

    /// Start of the latest window in which `limit_id` was exhausted.
    pub fn last_exhausted(&self, limit_id: &str) -> Option<i64> {
        let index = self.index.lock().expect("ledger lock is never poisoned");
        index
            .iter()
            .filter(|key| key.limit_id == limit_id && key.event == EventKind::Exhausted)
            .map(|key| key.window_start)
            .max()
            .filter(|exhausted| {
                // A reset already sent for a later window settles it.
                !index.iter().any(|key| {
                    key.limit_id == limit_id
                        && key.event == EventKind::Reset
                        && key.window_start > *exhausted
                })
            })
    }

    /// Every alert fired, oldest first, for the API.
    pub fn fired(&self) -> Vec<LedgerEntry> {
        self.fired
            .lock()
            .expect("ledger lock is never poisoned")
            .clone()
    }

    /// Writes `alerts` as the ledger file at `path` (a replica's first ledger, from the
    /// one `migrate --from-files` copied into PostgreSQL).
    pub fn seed(path: &std::path::Path, alerts: Vec<LedgerEntry>) -> std::io::Result<()> {
        files::write_json_atomic(path, &LedgerFile { alerts }).map(drop)
    }

    /// Writes `data/alerts.json` (dropping entries older than a yearly window).
    pub fn save(&self) {
        let Some(path) = &self.path else {
            return;
        };
        let _saving = self.saving.lock().expect("ledger lock is never poisoned");
        let cutoff = Utc::now() - chrono::Duration::days(LEDGER_KEEP_DAYS);
        let file = {
            let mut fired = self.fired.lock().expect("ledger lock is never poisoned");
            fired.retain(|entry| entry.fired_at >= cutoff);
            LedgerFile {
                alerts: fired.clone(),
            }
        };
        if let Err(error) = files::write_json_atomic(path, &file) {
            tracing::error!(%error, path = %path.display(), "cannot save the alert ledger");
        }
    }
}

/// Starts the task that saves the ledger and delivers alerts; it ends when the ledger is
/// dropped. Must be called once, inside a Tokio runtime. With `shared`, an alert is
/// delivered by the first replica that claims it there (see [`claimed`]).
pub fn spawn_notifier(
    ledger: Arc<AlertLedger>,
    store: Arc<ConfigStore>,
    shared: Option<Arc<SharedRedis>>,
) -> tokio::task::JoinHandle<()> {
    let receiver = ledger
        .receiver
        .lock()
        .expect("ledger lock is never poisoned")
        .take()
        .expect("the notifier is started once");
    // Behind a lock so that a run started again after a panic takes it up.
    let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
    let weak = Arc::downgrade(&ledger);
    drop(ledger);
    crate::panics::supervise("alert notifier", move || {
        let (receiver, weak, store) = (Arc::clone(&receiver), weak.clone(), Arc::clone(&store));
        let shared = shared.clone();
        async move {
            let mut receiver = receiver.lock().await;
            while let Some(event) = receiver.recv().await {
                let mut events = vec![event];
                while let Ok(more) = receiver.try_recv() {
                    events.push(more);
                }
                // Claimed first (with Redis or PostgreSQL, one replica delivers each alert), so that only
                // the deliveries this replica makes are recorded as pending.
                let mut mine = Vec::with_capacity(events.len());
                for event in events {
                    // Redis when configured; else PostgreSQL's `alert_ledger` when shared.
                    let first = match (shared.as_deref(), weak.upgrade()) {
                        (None, Some(ledger)) => ledger.claim_in_database(&event).await,
                        (shared, _) => claimed(shared, &event).await,
                    };
                    if first {
                        mine.push(event);
                    } else {
                        tracing::info!(event = event.event.as_str(), message = %event.message, "budget alert already sent by another replica");
                    }
                }
                let snapshot = store.snapshot();
                if let Some(ledger) = weak.upgrade() {
                    for event in &mine {
                        for channel in &snapshot.settings.notification_channels {
                            ledger.delivery(&event.id, channel.id(), |_| {});
                        }
                    }
                    let saving = Arc::clone(&ledger);
                    let _ = tokio::task::spawn_blocking(move || saving.save()).await;
                    for event in &mine {
                        ledger.publish(&event.id).await;
                    }
                }
                for event in mine {
                    tracing::info!(event = event.event.as_str(), message = %event.message, "budget alert");
                    for channel in &snapshot.settings.notification_channels {
                        let channel = channel.clone();
                        let event = event.clone();
                        let store = Arc::clone(&store);
                        let ledger = weak.clone();
                        tokio::spawn(async move {
                            deliver_with_retries(&store, &ledger, &channel, &event).await
                        });
                    }
                }
            }
        }
    })
}

/// Whether this replica delivers `event`: always without Redis or for an event about no
/// limit; else only when it is the first to claim the limit's event in that window. When
/// Redis cannot be reached it delivers (a duplicate rather than a lost alert).
async fn claimed(shared: Option<&SharedRedis>, event: &AlertEvent) -> bool {
    let (Some(shared), Some(limit)) = (shared, &event.limit) else {
        return true;
    };
    let name = format!(
        "{}:{}:{}:{}",
        limit.id,
        limit.window_start.timestamp(),
        event.event.as_str(),
        event.threshold_percent.unwrap_or(0)
    );
    // Kept until the window is over (and an hour beyond, for clocks apart).
    let ttl = (limit.resets_at - Utc::now())
        .to_std()
        .unwrap_or_default()
        .saturating_add(Duration::from_secs(3600));
    match shared.claim_alert(&name, ttl).await {
        Ok(first) => first,
        Err(error) => {
            tracing::warn!(%error, "Redis cannot be reached: this alert may also be sent by other replicas");
            true
        }
    }
}

/// Delivers `event` to `channel`, retrying with exponential backoff; logs the outcome and
/// records it in the ledger (saved once the delivery is settled).
async fn deliver_with_retries(
    store: &ConfigStore,
    ledger: &Weak<AlertLedger>,
    channel: &Channel,
    event: &AlertEvent,
) {
    let record = |attempts: u32, outcome: Outcome| {
        if let Some(ledger) = ledger.upgrade() {
            ledger.delivery(&event.id, channel.id(), |delivery| {
                delivery.attempts = attempts;
                delivery.outcome = outcome;
                if outcome != Outcome::Pending {
                    delivery.finished_at = Some(Utc::now());
                }
            });
            if outcome != Outcome::Pending {
                let saving = Arc::clone(&ledger);
                tokio::task::spawn_blocking(move || saving.save());
                let event_id = event.id.clone();
                tokio::spawn(async move { ledger.publish(&event_id).await });
            }
        }
    };
    let mut wait = FIRST_RETRY;
    for attempt in 1..=DELIVERY_ATTEMPTS {
        match deliver(store, channel, event).await {
            Ok(()) => {
                tracing::info!(
                    channel = channel.id(),
                    event = event.event.as_str(),
                    "alert delivered"
                );
                record(attempt, Outcome::Delivered);
                return;
            }
            Err(error) if attempt < DELIVERY_ATTEMPTS => {
                tracing::warn!(channel = channel.id(), attempt, %error, "alert delivery failed; retrying");
                record(attempt, Outcome::Pending);
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            Err(error) => {
                tracing::error!(channel = channel.id(), attempts = attempt, %error, "alert delivery failed; giving up");
                record(attempt, Outcome::Failed);
            }
        }
    }
}

/// Why a delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The channel's secret cannot be read.
    #[error("the channel's secret cannot be read: {0}")]
    Secret(String),
    /// The target address is not allowed.
    #[error("{0}")]
    Refused(String),
    /// SMTP failed.
    #[error("SMTP: {0}")]
    Smtp(String),
    /// The webhook failed.
    #[error("webhook: {0}")]
    Webhook(String),
}

/// One delivery attempt of `event` to `channel`, with the settings in force.
pub async fn deliver(
    store: &ConfigStore,
    channel: &Channel,
    event: &AlertEvent,
) -> Result<(), DeliveryError> {
    let snapshot = store.snapshot();
    match channel {
        Channel::Smtp(smtp_channel) => {
            let password = smtp_channel
                .password
                .as_deref()
                .map(|stored| {
                    let allowed = EnvAllowList::new(&snapshot.settings.env_allow_list);
                    store.master_key().resolve(stored, &allowed)
                })
                .transpose()
                .map_err(|error| DeliveryError::Secret(error.to_string()))?;
            smtp::send(
                smtp_channel,
                password.as_deref(),
                event,
                snapshot.settings.public_url.as_deref(),
            )
            .await
        }
        Channel::Webhook(webhook_channel) => {
            let secret = webhook_channel
                .secret
                .as_deref()
                .map(|stored| {
                    let allowed = EnvAllowList::new(&snapshot.settings.env_allow_list);
                    store.master_key().resolve(stored, &allowed)
                })
                .transpose()
                .map_err(|error| DeliveryError::Secret(error.to_string()))?;
            webhook::post(
                &webhook_channel.url,
                secret.as_deref(),
                event,
                snapshot.settings.allow_private_webhooks,
            )
            .await
        }
    }
}

/// The `test` event sent by `routerly channel test`.
pub fn test_event() -> AlertEvent {
    AlertEvent {
        id: uuid::Uuid::now_v7().to_string(),
        event: EventKind::Test,
        timestamp: Utc::now(),
        limit: None,
        threshold_percent: None,
        message: "This is a test alert from Routerly.".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::pg::testdb::TestDb;

    fn threshold_event(id: &str) -> AlertEvent {
        AlertEvent {
            id: id.to_owned(),
            event: EventKind::Threshold,
            timestamp: Utc::now(),
            limit: Some(routerly_core::alerts::AlertLimit {
                id: "project-cost".to_owned(),
                scope: "project:p1".to_owned(),
                level: "project".to_owned(),
                metric: "cost".to_owned(),
                window: "daily".to_owned(),
                value: 1.0,
                used: 0.8,
                window_start: DateTime::from_timestamp(1_764_892_800, 0).expect("a time"),
                resets_at: DateTime::from_timestamp(1_764_979_200, 0).expect("a time"),
            }),
            threshold_percent: Some(80),
            message: "80 % of project-cost used".to_owned(),
        }
    }

    #[tokio::test]
    async fn without_redis_one_replica_claims_an_alert_through_postgresql() {
        let db = TestDb::create().await;
        let database = Database::open(&db.url).await.expect("database opens");
        // Three replicas' ledgers fire the same threshold of the same limit and window.
        let ledgers: Vec<AlertLedger> = (0..3)
            .map(|_| AlertLedger::open(None).shared_through(Some(Arc::clone(&database))))
            .collect();
        let key = LedgerKey {
            limit_id: "project-cost".to_owned(),
            window_start: 1_764_892_800,
            event: EventKind::Threshold,
            threshold: Some(80),
        };
        let mut events = Vec::new();
        for (replica, ledger) in ledgers.iter().enumerate() {
            let event = threshold_event(&format!("event-{replica}"));
            assert!(
                ledger.send_once(key.clone(), event.clone()),
                "new to replica {replica}"
            );
            events.push(event);
        }
        let claims = futures_util::future::join_all(
            ledgers
                .iter()
                .zip(&events)
                .map(|(ledger, event)| ledger.claim_in_database(event)),
        )
        .await;
        assert_eq!(
            claims.iter().filter(|&&first| first).count(),
            1,
            "exactly one replica delivers: {claims:?}"
        );
        // The next threshold is a new alert: claimed again by one replica.
        let next_key = LedgerKey {
            threshold: Some(90),
            ..key
        };
        let mut next = threshold_event("event-next");
        next.threshold_percent = Some(90);
        assert!(ledgers[1].send_once(next_key, next.clone()));
        assert!(ledgers[1].claim_in_database(&next).await);
        assert_eq!(
            crate::store::pg::shared::alert_ledger(&database)
                .await
                .expect("reads")
                .len(),
            2,
            "one row per limit, window, event and threshold"
        );
        drop((ledgers, database));
        db.drop_now().await;
    }
}
