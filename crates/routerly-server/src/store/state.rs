//! State that several replicas of one installation would one day share, behind small traits
//! so that a shared backend (PostgreSQL, Redis) can replace these single-machine versions.
//!
//! - [`SessionStore`]: refresh-token families, persisted to `data/sessions.json`.
//! - [`CounterStore`]: budget counters per scope and window with atomic reservations, in
//!   memory (rebuilt from the usage log and its checkpoints at start).
//! - [`ResponseStore`]: Responses-API conversation state per response id, kept in
//!   `data/responses/` by [`super::responses::FileResponseStore`], bounded in size and age.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Mutex as StdMutex;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use routerly_core::limits::{self, Amounts, Metric, Scope, Window, WindowTotals};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::StoreError;
use super::files;

/// A boxed future, so the traits stay usable as `dyn` objects.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The SHA-256 of a refresh token; the token itself is never stored.
pub type TokenHash = [u8; 32];

/// The session a valid refresh token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The family: every token issued by rotation from one login.
    pub family_id: String,
    /// The user it was issued to.
    pub user_id: String,
    /// When the current token stops working.
    pub expires_at: DateTime<Utc>,
}

/// Why a session operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// No family knows this token.
    #[error("unknown refresh token")]
    Unknown,
    /// The token's family has expired.
    #[error("refresh token expired")]
    Expired,
    /// The family was revoked (logout, reuse, or an administrator).
    #[error("session revoked")]
    Revoked,
    /// A token that was already rotated came back: it was probably stolen, so the whole
    /// family is now revoked.
    #[error("refresh token reused; every session of its family is revoked")]
    ReuseDetected {
        /// The revoked family.
        family_id: String,
        /// Its user, for the audit log.
        user_id: String,
    },
    /// The family id or token hash is already in use.
    #[error("session already exists")]
    Duplicate,
    /// The change could not be saved; nothing changed (revocations stay in force in memory).
    #[error("cannot save sessions: {0}")]
    Persist(String),
}

/// Refresh-token families with rotation and reuse detection; tokens are known only by
/// their SHA-256.
pub trait SessionStore: Send + Sync {
    /// Starts a family (a login) whose first token hashes to `token_hash`.
    fn issue(
        &self,
        family_id: String,
        token_hash: TokenHash,
        user_id: String,
        expires_at: DateTime<Utc>,
    ) -> StoreFuture<'_, Result<(), SessionError>>;

    /// Replaces the family's current token `old_hash` by `new_hash`, valid until
    /// `expires_at`. Presenting a token that was already rotated revokes the whole family
    /// and answers [`SessionError::ReuseDetected`].
    fn rotate(
        &self,
        old_hash: TokenHash,
        new_hash: TokenHash,
        expires_at: DateTime<Utc>,
    ) -> StoreFuture<'_, Result<SessionInfo, SessionError>>;

    /// The live session whose current token hashes to `token_hash`, without rotating it.
    fn find(&self, token_hash: TokenHash) -> StoreFuture<'_, Option<SessionInfo>>;

    /// Whether the family exists, belongs to `user_id`, is not revoked and has not expired;
    /// checked on every management request, so that logout and revocation end access tokens
    /// at once and a token cannot borrow another user's session.
    fn family_live(&self, family_id: String, user_id: String) -> StoreFuture<'_, bool>;

    /// Revokes one family (logout); returns whether it existed and was live.
    fn revoke_family(&self, family_id: String) -> StoreFuture<'_, Result<bool, SessionError>>;

    /// Revokes every family of a user (password change, removal); returns how many.
    fn revoke_user(&self, user_id: String) -> StoreFuture<'_, Result<usize, SessionError>>;
}

/// One family as stored in `data/sessions.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Family {
    id: String,
    user_id: String,
    /// Hex SHA-256 of the token that may be rotated next.
    current_hash: String,
    /// Hex SHA-256 of tokens already rotated; seeing one again means reuse.
    #[serde(default)]
    previous_hashes: Vec<String>,
    expires_at: DateTime<Utc>,
    #[serde(default)]
    revoked_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

impl Family {
    fn info(&self) -> SessionInfo {
        SessionInfo {
            family_id: self.id.clone(),
            user_id: self.user_id.clone(),
            expires_at: self.expires_at,
        }
    }
}

/// `data/sessions.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionsFile {
    families: Vec<Family>,
}

#[derive(Debug, Clone, Default)]
struct Sessions {
    families: HashMap<String, Family>,
    /// Every hash (current and previous) to its family id.
    by_hash: HashMap<TokenHash, String>,
}

impl Sessions {
    fn from_file(file: SessionsFile) -> Self {
        let mut sessions = Sessions::default();
        for family in file.families {
            for hash in std::iter::once(&family.current_hash).chain(&family.previous_hashes) {
                let mut bytes = [0u8; 32];
                if hex::decode_to_slice(hash, &mut bytes).is_ok() {
                    sessions.by_hash.insert(bytes, family.id.clone());
                }
            }
            sessions.families.insert(family.id.clone(), family);
        }
        sessions
    }

    /// The file contents, sorted for stable diffs.
    fn to_file(&self) -> SessionsFile {
        let mut families: Vec<Family> = self.families.values().cloned().collect();
        families.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        SessionsFile { families }
    }

    /// Forgets families past their expiry: their tokens are dead, rotated ones included.
    fn prune(&mut self, now: DateTime<Utc>) {
        self.families.retain(|_, family| family.expires_at > now);
        let families = &self.families;
        self.by_hash.retain(|_, id| families.contains_key(id));
    }

    fn family_of(&self, token_hash: &TokenHash) -> Option<&Family> {
        self.families.get(self.by_hash.get(token_hash)?)
    }
}

/// [`SessionStore`] in memory, saved atomically to a JSON file (`data/sessions.json`) on
/// every change, under its lock so that saves land in order.
#[derive(Debug)]
pub struct FileSessionStore {
    path: Option<PathBuf>,
    sessions: Mutex<Sessions>,
}

impl FileSessionStore {
    /// Loads the sessions saved at `path` (none when the file does not exist).
    pub fn open(path: PathBuf) -> Result<Self, StoreError> {
        let sessions = if path.exists() {
            Sessions::from_file(files::load_json(&path)?)
        } else {
            Sessions::default()
        };
        Ok(FileSessionStore {
            path: Some(path),
            sessions: Mutex::new(sessions),
        })
    }

    /// A store that is never saved, for tests.
    pub fn in_memory() -> Self {
        FileSessionStore {
            path: None,
            sessions: Mutex::new(Sessions::default()),
        }
    }

    /// Saves `sessions` off the async workers; the caller holds the lock.
    async fn save(&self, sessions: &Sessions) -> Result<(), SessionError> {
        let Some(path) = self.path.clone() else {
            return Ok(());
        };
        let file = sessions.to_file();
        tokio::task::spawn_blocking(move || {
            files::write_json_atomic(&path, &file).map_err(|error| {
                tracing::error!(%error, path = %path.display(), "cannot save sessions");
                SessionError::Persist(error.to_string())
            })
        })
        .await
        .expect("the session save task does not panic")
        .map(drop)
    }

    /// Applies `change` and saves; when saving fails the change is undone.
    async fn change<T>(
        &self,
        change: impl FnOnce(&mut Sessions) -> Result<T, SessionError>,
    ) -> Result<T, SessionError> {
        let mut sessions = self.sessions.lock().await;
        let before = sessions.clone();
        let value = change(&mut sessions)?;
        if let Err(error) = self.save(&sessions).await {
            *sessions = before;
            return Err(error);
        }
        Ok(value)
    }

    /// Revokes the families `pick` names and saves; a revocation stays in force in memory
    /// even when saving fails (safety over durability).
    async fn revoke_where(
        &self,
        pick: impl FnOnce(&Sessions) -> Vec<String>,
    ) -> Result<usize, SessionError> {
        let mut sessions = self.sessions.lock().await;
        let now = Utc::now();
        let mut count = 0;
        for family_id in pick(&sessions) {
            if let Some(family) = sessions.families.get_mut(&family_id)
                && family.revoked_at.is_none()
            {
                family.revoked_at = Some(now);
                count += 1;
            }
        }
        if count > 0 {
            self.save(&sessions).await?;
        }
        Ok(count)
    }
}

impl SessionStore for FileSessionStore {
    fn issue(
        &self,
        family_id: String,
        token_hash: TokenHash,
        user_id: String,
        expires_at: DateTime<Utc>,
    ) -> StoreFuture<'_, Result<(), SessionError>> {
        Box::pin(self.change(move |sessions| {
            let now = Utc::now();
            sessions.prune(now);
            if sessions.families.contains_key(&family_id)
                || sessions.by_hash.contains_key(&token_hash)
            {
                return Err(SessionError::Duplicate);
            }
            sessions.by_hash.insert(token_hash, family_id.clone());
            sessions.families.insert(
                family_id.clone(),
                Family {
                    id: family_id,
                    user_id,
                    current_hash: hex::encode(token_hash),
                    previous_hashes: Vec::new(),
                    expires_at,
                    revoked_at: None,
                    created_at: now,
                },
            );
            Ok(())
        }))
    }

    fn rotate(
        &self,
        old_hash: TokenHash,
        new_hash: TokenHash,
        expires_at: DateTime<Utc>,
    ) -> StoreFuture<'_, Result<SessionInfo, SessionError>> {
        Box::pin(async move {
            let mut reused = None;
            let result = self
                .change(|sessions| {
                    let family = sessions.family_of(&old_hash).ok_or(SessionError::Unknown)?;
                    if family.revoked_at.is_some() {
                        return Err(SessionError::Revoked);
                    }
                    if family.expires_at <= Utc::now() {
                        return Err(SessionError::Expired);
                    }
                    if family.current_hash != hex::encode(old_hash) {
                        reused = Some(family.info());
                        return Err(SessionError::Revoked);
                    }
                    if sessions.by_hash.contains_key(&new_hash) {
                        return Err(SessionError::Duplicate);
                    }
                    let family_id = family.id.clone();
                    let family = sessions
                        .families
                        .get_mut(&family_id)
                        .expect("the family was found above");
                    let old_current =
                        std::mem::replace(&mut family.current_hash, hex::encode(new_hash));
                    family.previous_hashes.push(old_current);
                    family.expires_at = expires_at;
                    let info = family.info();
                    sessions.by_hash.insert(new_hash, family_id);
                    Ok(info)
                })
                .await;
            let Some(info) = reused else {
                return result;
            };
            tracing::warn!(
                family_id = %info.family_id,
                user_id = %info.user_id,
                "refresh token reused; revoking its family"
            );
            let family_id = info.family_id.clone();
            // A failed save is logged by `save`; the family is revoked in memory regardless.
            let _ = self.revoke_where(|_| vec![family_id]).await;
            Err(SessionError::ReuseDetected {
                family_id: info.family_id,
                user_id: info.user_id,
            })
        })
    }

    fn find(&self, token_hash: TokenHash) -> StoreFuture<'_, Option<SessionInfo>> {
        Box::pin(async move {
            let sessions = self.sessions.lock().await;
            let family = sessions.family_of(&token_hash)?;
            let live = family.revoked_at.is_none()
                && family.expires_at > Utc::now()
                && family.current_hash == hex::encode(token_hash);
            live.then(|| family.info())
        })
    }

    fn family_live(&self, family_id: String, user_id: String) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            let sessions = self.sessions.lock().await;
            sessions.families.get(&family_id).is_some_and(|family| {
                family.user_id == user_id
                    && family.revoked_at.is_none()
                    && family.expires_at > Utc::now()
            })
        })
    }

    fn revoke_family(&self, family_id: String) -> StoreFuture<'_, Result<bool, SessionError>> {
        Box::pin(async move {
            let count = self.revoke_where(|_| vec![family_id]).await?;
            Ok(count > 0)
        })
    }

    fn revoke_user(&self, user_id: String) -> StoreFuture<'_, Result<usize, SessionError>> {
        Box::pin(self.revoke_where(move |sessions| {
            sessions
                .families
                .values()
                .filter(|family| family.user_id == user_id)
                .map(|family| family.id.clone())
                .collect()
        }))
    }
}

/// One counter: a scope's usage in one window shape. Every limit with the same scope,
/// window and time zone shares it, whatever its metric (a counter keeps all metrics).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CounterKey {
    /// Whose usage.
    pub scope: Scope,
    /// Over which span.
    pub window: Window,
    /// The time zone of a calendar window (UTC for rolling ones).
    pub zone: Tz,
}

impl std::fmt::Display for CounterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}|{}|{}", self.scope, self.window, self.zone.name())
    }
}

impl std::str::FromStr for CounterKey {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let mut parts = text.rsplitn(3, '|');
        let (Some(zone), Some(window), Some(scope)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("`{text}` is not a counter key"));
        };
        Ok(CounterKey {
            scope: Scope::parse(scope)?,
            window: Window::parse(window)?,
            zone: limits::parse_time_zone(zone)?,
        })
    }
}

/// One condition of a reservation: `needed` more of `metric` must fit under `value` in
/// the counter `key`.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// The counter.
    pub key: CounterKey,
    /// The metric compared.
    pub metric: Metric,
    /// The limit's value.
    pub value: f64,
    /// What the call may use of `metric`.
    pub needed: f64,
}

/// Why [`CounterStore::try_reserve`] refused: the first check that did not fit.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckFailed {
    /// Index of the check in the slice given.
    pub check: usize,
    /// Used in the window.
    pub used: f64,
    /// Held by calls in flight.
    pub reserved: f64,
    /// When the check would pass again (with nothing else in flight).
    pub resets_at: DateTime<Utc>,
}

/// A reservation held by a call in flight.
pub type ReservationId = u64;

/// A counter's state now.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CounterReading {
    /// Used in the window that contains now.
    pub used: Amounts,
    /// Held by calls in flight.
    pub reserved: Amounts,
}

/// Budget counters: usage per [`CounterKey`] in its current window, plus the amounts that
/// calls in flight have reserved. Reserving is atomic across every check of a call, so
/// concurrent calls cannot both take the last room. A shared backend (Redis with a script,
/// PostgreSQL in a transaction) implements the same operations for several replicas.
pub trait CounterStore: Send + Sync {
    /// If every check fits (used + reserved + needed ≤ value), holds `holds` and returns
    /// the reservation; otherwise holds nothing and says which check failed.
    fn try_reserve(
        &self,
        now: DateTime<Utc>,
        checks: &[Check],
        holds: &[(CounterKey, Amounts)],
    ) -> Result<ReservationId, CheckFailed>;

    /// Gives back what a reservation held (the call finished, failed or was cancelled).
    fn release(&self, reservation: ReservationId);

    /// Adds a finished call's usage, which happened `at`, to each counter of `keys`.
    fn add(&self, at: DateTime<Utc>, keys: &[CounterKey], amounts: &Amounts);

    /// The counter's use and reservations now.
    fn read(&self, now: DateTime<Utc>, key: &CounterKey) -> CounterReading;

    /// When `needed` more of `metric` fits under `value` again in `key`'s window.
    fn resets_at(
        &self,
        now: DateTime<Utc>,
        key: &CounterKey,
        metric: Metric,
        needed: f64,
        value: f64,
    ) -> DateTime<Utc>;

    /// Adds `totals` (from a scan of the usage log) to the counter `key`.
    fn merge(&self, key: &CounterKey, totals: &WindowTotals);

    /// Every counter's totals, for checkpoints.
    fn export(&self) -> Vec<(CounterKey, WindowTotals)>;

    /// Whether the store has a counter for `key`.
    fn contains(&self, key: &CounterKey) -> bool;

    /// Creates an empty counter for `key` if it has none.
    fn register(&self, key: &CounterKey);

    /// Forgets counters for which `keep` is false.
    fn retain(&self, keep: &(dyn Fn(&CounterKey) -> bool + Sync));
}

#[derive(Debug)]
struct CounterEntry {
    totals: WindowTotals,
    reserved: Amounts,
}

#[derive(Debug, Default)]
struct Counters {
    entries: HashMap<CounterKey, CounterEntry>,
    reservations: HashMap<ReservationId, Vec<(CounterKey, Amounts)>>,
    next_reservation: ReservationId,
}

impl Counters {
    fn entry(&mut self, key: &CounterKey) -> &mut CounterEntry {
        if !self.entries.contains_key(key) {
            self.entries.insert(
                key.clone(),
                CounterEntry {
                    totals: WindowTotals::new(key.window),
                    reserved: Amounts::default(),
                },
            );
        }
        self.entries.get_mut(key).expect("inserted just above")
    }
}

/// [`CounterStore`] in memory, behind one mutex that is never held across an `.await`.
#[derive(Debug, Default)]
pub struct MemoryCounterStore {
    counters: StdMutex<Counters>,
}

impl MemoryCounterStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryCounterStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters
            .lock()
            .expect("counter lock is never poisoned")
    }
}

impl CounterStore for MemoryCounterStore {
    fn try_reserve(
        &self,
        now: DateTime<Utc>,
        checks: &[Check],
        holds: &[(CounterKey, Amounts)],
    ) -> Result<ReservationId, CheckFailed> {
        let mut counters = self.lock();
        for (index, check) in checks.iter().enumerate() {
            let entry = counters.entry(&check.key);
            let used = entry
                .totals
                .used(check.key.window, check.key.zone, now)
                .get(check.metric);
            let reserved = entry.reserved.get(check.metric);
            if !limits::fits(used, reserved, check.needed, check.value) {
                let resets_at = entry.totals.resets_at(
                    check.key.window,
                    check.key.zone,
                    now,
                    check.metric,
                    0.0,
                    check.needed,
                    check.value,
                );
                return Err(CheckFailed {
                    check: index,
                    used,
                    reserved,
                    resets_at,
                });
            }
        }
        for (key, amounts) in holds {
            counters.entry(key).reserved.add(amounts);
        }
        let id = counters.next_reservation;
        counters.next_reservation += 1;
        counters.reservations.insert(id, holds.to_vec());
        Ok(id)
    }

    fn release(&self, reservation: ReservationId) {
        let mut counters = self.lock();
        let Some(holds) = counters.reservations.remove(&reservation) else {
            return;
        };
        for (key, amounts) in holds {
            if let Some(entry) = counters.entries.get_mut(&key) {
                entry.reserved.subtract(&amounts);
            }
        }
    }

    fn add(&self, at: DateTime<Utc>, keys: &[CounterKey], amounts: &Amounts) {
        let mut counters = self.lock();
        for key in keys {
            counters
                .entry(key)
                .totals
                .add(key.window, key.zone, at, amounts);
        }
    }

    fn read(&self, now: DateTime<Utc>, key: &CounterKey) -> CounterReading {
        let mut counters = self.lock();
        match counters.entries.get_mut(key) {
            Some(entry) => CounterReading {
                used: entry.totals.used(key.window, key.zone, now),
                reserved: entry.reserved,
            },
            None => CounterReading::default(),
        }
    }

    fn resets_at(
        &self,
        now: DateTime<Utc>,
        key: &CounterKey,
        metric: Metric,
        needed: f64,
        value: f64,
    ) -> DateTime<Utc> {
        let mut counters = self.lock();
        let entry = counters.entry(key);
        entry.totals.used(key.window, key.zone, now);
        entry
            .totals
            .resets_at(key.window, key.zone, now, metric, 0.0, needed, value)
    }

    fn merge(&self, key: &CounterKey, totals: &WindowTotals) {
        let mut counters = self.lock();
        counters.entry(key).totals.merge(totals);
    }

    fn export(&self) -> Vec<(CounterKey, WindowTotals)> {
        let counters = self.lock();
        counters
            .entries
            .iter()
            .map(|(key, entry)| (key.clone(), entry.totals.clone()))
            .collect()
    }

    fn contains(&self, key: &CounterKey) -> bool {
        self.lock().entries.contains_key(key)
    }

    fn register(&self, key: &CounterKey) {
        self.lock().entry(key);
    }

    fn retain(&self, keep: &(dyn Fn(&CounterKey) -> bool + Sync)) {
        self.lock().entries.retain(|key, _| keep(key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn hash(byte: u8) -> TokenHash {
        [byte; 32]
    }

    #[tokio::test]
    async fn rotation_works_and_reuse_revokes_the_family() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("sessions.json");
        let store = FileSessionStore::open(path.clone()).expect("open");
        let later = Utc::now() + Duration::days(30);
        store
            .issue("f1".into(), hash(1), "u1".into(), later)
            .await
            .expect("issue");
        store
            .issue("f2".into(), hash(9), "u1".into(), later)
            .await
            .expect("issue another family");

        let info = store.rotate(hash(1), hash(2), later).await.expect("rotate");
        assert_eq!(
            (info.family_id.as_str(), info.user_id.as_str()),
            ("f1", "u1")
        );
        assert_eq!(
            store.find(hash(2)).await.map(|i| i.family_id),
            Some("f1".into())
        );
        assert_eq!(
            store.find(hash(1)).await,
            None,
            "a rotated token is not live"
        );

        let error = store
            .rotate(hash(1), hash(3), later)
            .await
            .expect_err("hash(1) was already rotated");
        assert_eq!(
            error,
            SessionError::ReuseDetected {
                family_id: "f1".into(),
                user_id: "u1".into()
            }
        );
        assert_eq!(
            store.rotate(hash(2), hash(4), later).await,
            Err(SessionError::Revoked),
            "the legitimate current token dies with its family"
        );
        assert_eq!(
            store.find(hash(9)).await.map(|i| i.family_id),
            Some("f2".into())
        );

        // Everything survives a restart.
        let reopened = FileSessionStore::open(path).expect("reopen");
        assert_eq!(
            reopened.rotate(hash(2), hash(5), later).await,
            Err(SessionError::Revoked)
        );
        let info = reopened
            .rotate(hash(9), hash(10), later)
            .await
            .expect("f2 still live");
        assert_eq!(info.family_id, "f2");
        assert_eq!(reopened.revoke_user("u1".into()).await, Ok(1));
        assert_eq!(reopened.find(hash(10)).await, None);
    }

    #[tokio::test]
    async fn unknown_expired_and_revoked_tokens_are_refused() {
        let store = FileSessionStore::in_memory();
        let later = Utc::now() + Duration::hours(1);
        assert_eq!(
            store.rotate(hash(1), hash(2), later).await,
            Err(SessionError::Unknown)
        );
        store
            .issue(
                "old".into(),
                hash(3),
                "u".into(),
                Utc::now() - Duration::seconds(1),
            )
            .await
            .expect("issue");
        assert_eq!(
            store.rotate(hash(3), hash(4), later).await,
            Err(SessionError::Expired)
        );
        store
            .issue("f".into(), hash(5), "u".into(), later)
            .await
            .expect("issue");
        assert_eq!(
            store.issue("f".into(), hash(6), "u".into(), later).await,
            Err(SessionError::Duplicate)
        );
        assert_eq!(store.revoke_family("f".into()).await, Ok(true));
        assert_eq!(store.revoke_family("f".into()).await, Ok(false));
        assert_eq!(
            store.rotate(hash(5), hash(6), later).await,
            Err(SessionError::Revoked)
        );
    }

    #[test]
    fn reservations_are_all_or_nothing_and_come_back() {
        let store = MemoryCounterStore::new();
        let now = Utc::now();
        let key = |scope: &str| CounterKey {
            scope: Scope::parse(scope).expect("scope"),
            window: Window::parse("daily").expect("window"),
            zone: chrono_tz::Tz::UTC,
        };
        let cost = |usd: f64| Amounts {
            cost_usd: usd,
            calls: 1.0,
            ..Amounts::default()
        };
        let checks = |usd: f64| {
            vec![
                Check {
                    key: key("global"),
                    metric: Metric::Cost,
                    value: 10.0,
                    needed: usd,
                },
                Check {
                    key: key("project:p1"),
                    metric: Metric::Cost,
                    value: 3.0,
                    needed: usd,
                },
            ]
        };
        let holds = |usd: f64| vec![(key("global"), cost(usd)), (key("project:p1"), cost(usd))];
        let first = store
            .try_reserve(now, &checks(2.0), &holds(2.0))
            .expect("fits");
        let refused = store
            .try_reserve(now, &checks(2.0), &holds(2.0))
            .expect_err("the project has 1 USD of room left");
        assert_eq!(
            (refused.check, refused.used, refused.reserved),
            (1, 0.0, 2.0)
        );
        assert_eq!(
            store.read(now, &key("global")).reserved.cost_usd,
            2.0,
            "a refused reservation holds nothing"
        );
        store.add(now, &[key("global"), key("project:p1")], &cost(1.5));
        store.release(first);
        let reading = store.read(now, &key("project:p1"));
        assert_eq!(
            (reading.used.cost_usd, reading.reserved.cost_usd),
            (1.5, 0.0)
        );
        store.release(first);
        assert_eq!(
            store.read(now, &key("project:p1")).reserved.cost_usd,
            0.0,
            "release is idempotent"
        );
        store
            .try_reserve(now, &checks(1.5), &holds(1.5))
            .expect("1.5 + 1.5 fits under 3");
        let text = key("project:p1").to_string();
        assert_eq!(text, "project:p1|daily|UTC");
        assert_eq!(text.parse::<CounterKey>(), Ok(key("project:p1")));
    }
}

/// The conversation behind one stored Responses-API answer: everything a later request
/// naming it in `previous_response_id` continues from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredResponse {
    /// The response id the client was given.
    pub id: String,
    /// The project whose token created it; no other project can continue it.
    pub project_id: String,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
    /// The whole conversation, oldest first, the answer's own assistant turn last
    /// (instructions are not carried over, as in OpenAI's API).
    pub messages: Vec<routerly_core::canonical::Message>,
}

/// Responses-API conversation state by response id.
pub trait ResponseStore: Send + Sync {
    /// Stores (or replaces) a response's conversation.
    fn put(&self, response: StoredResponse) -> StoreFuture<'_, Result<(), String>>;

    /// The conversation stored under `id` for `project_id`; `None` when unknown, expired,
    /// evicted or another project's.
    fn get(&self, id: String, project_id: String) -> StoreFuture<'_, Option<StoredResponse>>;
}
