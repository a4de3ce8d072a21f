//! [`SessionStore`]: refresh-token families with rotation and reuse detection, and
//! [`FileSessionStore`], which keeps them in memory and saves them to `data/sessions.json`.
//! A shared backend (PostgreSQL) implements the same trait for several replicas.

use std::collections::HashMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::StoreError;
use super::StoreFuture;
use super::files;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rotation_works_and_reuse_revokes_the_family() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("sessions.json");
        let store = FileSessionStore::open(path.clone()).expect("open");
        contract::rotation_and_reuse(&store, async move || {
            Box::new(FileSessionStore::open(path).expect("reopen")) as Box<dyn SessionStore>
        })
        .await;
    }

    #[tokio::test]
    async fn unknown_expired_and_revoked_tokens_are_refused() {
        contract::refusals(&FileSessionStore::in_memory()).await;
    }
}

/// What every [`SessionStore`] must do, run against each implementation.
#[cfg(test)]
pub(crate) mod contract {
    use super::*;
    use chrono::Duration;

    fn hash(byte: u8) -> TokenHash {
        [byte; 32]
    }

    /// Rotation, reuse detection, and everything still there through `reopened` (the same
    /// store after a restart, or another replica's).
    pub(crate) async fn rotation_and_reuse(
        store: &dyn SessionStore,
        reopened: impl AsyncFnOnce() -> Box<dyn SessionStore>,
    ) {
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
        assert!(store.family_live("f2".into(), "u1".into()).await);
        assert!(
            !store.family_live("f2".into(), "u2".into()).await,
            "a family is live only for its own user"
        );

        let reopened = reopened().await;
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
        assert!(!reopened.family_live("f2".into(), "u1".into()).await);
    }

    /// Unknown, expired, duplicate and revoked.
    pub(crate) async fn refusals(store: &dyn SessionStore) {
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
}
