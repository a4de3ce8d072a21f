//! Start-up and background tasks: counters rebuilt from the usage log, the counter store
//! chosen, checkpoints written and `budget.reset` alerts sent periodically.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use routerly_core::limits;

use super::{Budgets, LimitIndex, rebuild};
use crate::notify::AlertLedger;
use crate::store::config::{ConfigStore, Snapshot};
use crate::store::counters::{CounterKey, CounterStore};
use crate::store::redis_shared::SharedRedis;

/// Every counter's totals and the ids of records observed lately, for a checkpoint.
pub type CheckpointState = (Vec<(CounterKey, limits::WindowTotals)>, Vec<String>);

impl Budgets {
    /// The counters and the ids of records observed lately, taken together so that a
    /// checkpoint is consistent; `None` while a back-fill is running.
    pub fn checkpoint_state(&self) -> Option<CheckpointState> {
        let live = self.live();
        if !live.pending.is_empty() {
            return None;
        }
        let counters = self.counters.export();
        // Copied under the lock (fixed entries), written out as text after it.
        let recent = live.recent.clone();
        drop(live);
        Some((counters, recent.ids()))
    }
}

/// Rebuilds the counters from the usage log and checkpoint, opens the alert ledger and
/// starts the notifier (de-duplicating alerts through `shared` and sharing their history
/// through `database` when given): what [`crate::Service::open`] needs before serving.
pub async fn start(
    home: &crate::store::Home,
    store: &Arc<ConfigStore>,
    files: Vec<std::path::PathBuf>,
    mut replay: Box<dyn crate::store::history::Replay + Send>,
    shared: Option<Arc<SharedRedis>>,
    database: Option<Arc<crate::store::pg::Database>>,
) -> Result<(Arc<Budgets>, tokio::task::JoinHandle<()>), crate::store::StoreError> {
    let snapshot = store.snapshot();
    let index = LimitIndex::build(&snapshot, None);
    let mut keys: Vec<CounterKey> = Vec::new();
    for key in &index.keys {
        if !keys.contains(key) {
            keys.push(key.clone());
        }
    }
    let usage_log = home.usage_log_path();
    let checkpoint_path = home.checkpoint_path();
    let (rebuilt, stats) = {
        tokio::task::spawn_blocking(move || {
            rebuild::rebuild(&files, &checkpoint_path, &keys, Utc::now(), &mut *replay)
        })
        .await
        .expect("the rebuild task does not panic")
        .map_err(|error| crate::store::StoreError::io(home.usage_log_path(), error))?
    };
    tracing::info!(
        counters = rebuilt.len(),
        records = stats.records,
        files = stats.files,
        from_checkpoint = stats.from_checkpoint,
        millis = stats.millis,
        "usage log read at start-up: budget counters, usage rollups and routing statistics rebuilt"
    );
    let counters = open_counters(&snapshot)?;
    for (key, totals) in &rebuilt {
        counters.merge(key, totals);
    }
    let ledger = Arc::new(AlertLedger::open(Some(home.alerts_path())).shared_through(database));
    let notifier =
        crate::notify::spawn_notifier(Arc::clone(&ledger), Arc::clone(store), shared.clone());
    let budgets = Arc::new(Budgets::new(Arc::clone(store), counters, ledger, usage_log));
    Ok((budgets, notifier))
}

/// The counter store: Redis when `ROUTERLY_REDIS_URL` is set (see
/// [`crate::store::redis_counters`]), else in memory.
fn open_counters(snapshot: &Snapshot) -> Result<Arc<dyn CounterStore>, crate::store::StoreError> {
    use crate::store::redis_counters::{RedisCounterStore, RedisSettings};
    let timeouts = &snapshot.settings.timeouts;
    // A reservation outlives any call that has not yet been answered twice over.
    let default_ttl = Duration::from_millis(2 * (timeouts.connect_ms + timeouts.first_token_ms))
        .max(Duration::from_secs(10));
    let settings =
        RedisSettings::from_env(default_ttl).map_err(crate::store::StoreError::Settings)?;
    let Some(settings) = settings else {
        return Ok(Arc::new(crate::store::counters::MemoryCounterStore::new()));
    };
    tracing::info!(
        prefix = %settings.prefix,
        failure_mode = ?settings.failure_mode,
        reservation_ttl_seconds = settings.reservation_ttl.as_secs(),
        "budget counters are shared through Redis"
    );
    let store = RedisCounterStore::open(settings).map_err(crate::store::StoreError::Settings)?;
    Ok(store)
}

/// Every [`rebuild::CHECKPOINT_INTERVAL`], writes a checkpoint; every few seconds, sends
/// `budget.reset` alerts that are due. Stops when `stop` turns `true`.
pub fn spawn_periodic(
    budgets: &Arc<Budgets>,
    home: &crate::store::Home,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let budgets = Arc::clone(budgets);
    let home = home.clone();
    crate::panics::supervise("budget checkpoints and resets", move || {
        let (budgets, home, mut stop) = (Arc::clone(&budgets), home.clone(), stop.clone());
        async move {
            let mut resets = tokio::time::interval(Duration::from_secs(5));
            let mut checkpoints = tokio::time::interval(rebuild::CHECKPOINT_INTERVAL);
            resets.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            checkpoints.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            checkpoints.tick().await;
            while !*stop.borrow() {
                tokio::select! {
                    _ = resets.tick() => budgets.check_resets(),
                    _ = checkpoints.tick() => final_checkpoint(&budgets, &home).await,
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

/// Writes a checkpoint now (skipped while a back-fill runs) and saves the alert ledger.
pub async fn final_checkpoint(budgets: &Arc<Budgets>, home: &crate::store::Home) {
    let budgets = Arc::clone(budgets);
    let home = home.clone();
    let written = tokio::task::spawn_blocking(move || {
        budgets.ledger.save();
        // The position first, then the counters: see `rebuild`.
        let position = rebuild::current_position(&home.usage_log_path())?;
        let Some((counters, recent)) = budgets.checkpoint_state() else {
            return Ok(false);
        };
        rebuild::write_checkpoint(&home.checkpoint_path(), position, counters, recent)?;
        Ok::<_, std::io::Error>(true)
    })
    .await;
    match written {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => tracing::error!(%error, "cannot write the budget checkpoint"),
        Err(error) => tracing::error!(%error, "the budget checkpoint task failed"),
    }
}
