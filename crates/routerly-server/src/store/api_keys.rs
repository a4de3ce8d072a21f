//! Admin API keys for scripts and CI: long-lived, scoped to a global role, revocable,
//! stored only as SHA-256 hashes. The key itself is shown once, at creation. Behind
//! [`ApiKeyStore`]: [`FileApiKeyStore`] (`data/api-keys.json`) by default,
//! `pg::shared::PgApiKeyStore` when replicas share PostgreSQL, so a key created or revoked
//! through one replica holds on every one at once.

use std::path::PathBuf;
use std::sync::RwLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, SubsecRound, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Mutex;

use super::files;
use super::{StoreError, StoreFuture};

/// The prefix of every admin API key, so the API tells them from access tokens.
pub const API_KEY_PREFIX: &str = "rly-ak-";

/// One admin API key as stored (never the key itself).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    /// Stable id.
    pub id: String,
    /// What it is for.
    pub name: String,
    /// The global role whose permissions it carries.
    pub role: String,
    /// Hex SHA-256 of the key.
    pub hash: String,
    /// A short visible part, such as `rly-ak-AbCd…wXyZ`.
    pub snippet: String,
    /// Who created it (user id).
    pub created_by: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was revoked; a revoked key is refused at once.
    #[serde(default)]
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiKeysFile {
    keys: Vec<ApiKey>,
}

/// Where the admin API keys live. Every call reads the store itself: a revocation made
/// anywhere is refused on the next request.
pub trait ApiKeyStore: std::fmt::Debug + Send + Sync {
    /// Every key, revoked ones included, oldest first.
    fn list(&self) -> StoreFuture<'_, Result<Vec<ApiKey>, StoreError>>;
    /// The live key whose clear text is `secret`.
    fn find(&self, secret: String) -> StoreFuture<'_, Result<Option<ApiKey>, StoreError>>;
    /// Adds a key.
    fn create(&self, key: ApiKey) -> StoreFuture<'_, Result<(), StoreError>>;
    /// Revokes the key `id`; `Ok(false)` when no live key has that id.
    fn revoke(&self, id: String) -> StoreFuture<'_, Result<bool, StoreError>>;
}

/// Hex SHA-256 of a key in clear: what is stored and looked up.
pub fn key_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// The admin API keys in `data/api-keys.json`, in memory and saved atomically on every
/// change.
#[derive(Debug)]
pub struct FileApiKeyStore {
    path: Option<PathBuf>,
    keys: RwLock<Vec<ApiKey>>,
    writer: Mutex<()>,
}

/// A new key in clear and its stored record.
pub fn new_api_key(name: &str, role: &str, created_by: &str) -> (String, ApiKey) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = format!("{API_KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let record = ApiKey {
        id: format!("ak_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]),
        name: name.to_owned(),
        role: role.to_owned(),
        hash: key_hash(&secret),
        snippet: format!(
            "{}…{}",
            &secret[..API_KEY_PREFIX.len() + 4],
            &secret[secret.len() - 4..]
        ),
        created_by: created_by.to_owned(),
        // Microseconds, as PostgreSQL keeps them, so a key reads back as it was made.
        created_at: Utc::now().trunc_subsecs(6),
        revoked_at: None,
    };
    (secret, record)
}

impl FileApiKeyStore {
    /// Loads the keys saved at `path` (none when the file does not exist).
    pub fn open(path: PathBuf) -> Result<Self, StoreError> {
        let file: ApiKeysFile = if path.exists() {
            files::load_json(&path)?
        } else {
            ApiKeysFile::default()
        };
        Ok(FileApiKeyStore {
            path: Some(path),
            keys: RwLock::new(file.keys),
            writer: Mutex::new(()),
        })
    }

    /// A store that is never saved, for tests.
    pub fn in_memory() -> Self {
        FileApiKeyStore {
            path: None,
            keys: RwLock::new(Vec::new()),
            writer: Mutex::new(()),
        }
    }

    fn keys(&self) -> Vec<ApiKey> {
        self.keys
            .read()
            .expect("api key lock is never poisoned")
            .clone()
    }

    /// Applies `change` to a copy; saves it and swaps it in when `change` returns true.
    async fn change(
        &self,
        change: impl FnOnce(&mut Vec<ApiKey>) -> bool,
    ) -> Result<bool, StoreError> {
        let _writer = self.writer.lock().await;
        let mut keys = self.keys();
        if !change(&mut keys) {
            return Ok(false);
        }
        if let Some(path) = self.path.clone() {
            let file = ApiKeysFile { keys: keys.clone() };
            tokio::task::spawn_blocking(move || {
                files::write_json_atomic(&path, &file).map_err(|error| StoreError::io(&path, error))
            })
            .await
            .expect("the api key save task does not panic")?;
        }
        *self.keys.write().expect("api key lock is never poisoned") = keys;
        Ok(true)
    }
}

impl ApiKeyStore for FileApiKeyStore {
    fn list(&self) -> StoreFuture<'_, Result<Vec<ApiKey>, StoreError>> {
        Box::pin(async move { Ok(self.keys()) })
    }

    fn find(&self, secret: String) -> StoreFuture<'_, Result<Option<ApiKey>, StoreError>> {
        Box::pin(async move {
            let hash = key_hash(&secret);
            let keys = self.keys.read().expect("api key lock is never poisoned");
            Ok(keys
                .iter()
                .find(|key| bool::from(key.hash.as_bytes().ct_eq(hash.as_bytes())))
                .filter(|key| key.revoked_at.is_none())
                .cloned())
        })
    }

    fn create(&self, key: ApiKey) -> StoreFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            self.change(|keys| {
                keys.push(key);
                true
            })
            .await
            .map(drop)
        })
    }

    fn revoke(&self, id: String) -> StoreFuture<'_, Result<bool, StoreError>> {
        Box::pin(async move {
            self.change(|keys| {
                match keys
                    .iter_mut()
                    .find(|key| key.id == id && key.revoked_at.is_none())
                {
                    Some(key) => {
                        key.revoked_at = Some(Utc::now());
                        true
                    }
                    None => false,
                }
            })
            .await
        })
    }
}

/// The tests every [`ApiKeyStore`] passes; `other` is a second handle on the same keys
/// (another replica's, for a shared store).
#[cfg(test)]
pub(crate) mod contract {
    use super::*;

    pub async fn shared_at_once(one: &dyn ApiKeyStore, other: &dyn ApiKeyStore) {
        let (secret, record) = new_api_key("ci", "operator", "u1");
        assert!(secret.starts_with(API_KEY_PREFIX));
        assert_eq!(record.hash, key_hash(&secret));
        one.create(record.clone()).await.expect("create");
        let found = other.find(secret.clone()).await.expect("find");
        assert_eq!(found.as_ref().map(|key| &key.id), Some(&record.id));
        assert_eq!(found, Some(record.clone()));
        assert_eq!(other.find("rly-ak-wrong".into()).await.expect("find"), None);
        // A key's hash presented as the key is not the key.
        assert_eq!(other.find(record.hash.clone()).await.expect("find"), None);
        let (_, second) = new_api_key("deploy", "admin", "u2");
        other.create(second.clone()).await.expect("create");
        let listed = one.list().await.expect("list");
        assert_eq!(
            listed.iter().map(|key| key.id.as_str()).collect::<Vec<_>>(),
            [record.id.as_str(), second.id.as_str()]
        );
        assert!(listed.iter().all(|key| key.revoked_at.is_none()));

        assert!(one.revoke(record.id.clone()).await.expect("revoke"));
        assert!(!other.revoke(record.id.clone()).await.expect("twice"));
        assert!(!other.revoke("ak_nobody".into()).await.expect("unknown"));
        assert_eq!(other.find(secret).await.expect("find"), None);
        let listed = other.list().await.expect("list");
        assert!(listed[0].revoked_at.is_some() && listed[1].revoked_at.is_none());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_are_found_by_their_secret_until_revoked_and_survive_a_restart() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("api-keys.json");
        let store = FileApiKeyStore::open(path.clone()).expect("open");
        let (secret, record) = new_api_key("ci", "operator", "u1");
        store.create(record.clone()).await.expect("create");
        let text = std::fs::read_to_string(&path).expect("saved");
        assert!(
            !text.contains(&secret),
            "the key itself must never be stored"
        );

        let reopened = FileApiKeyStore::open(path).expect("reopen");
        assert!(reopened.find(secret.clone()).await.expect("find").is_some());
        assert!(reopened.revoke(record.id.clone()).await.expect("revoke"));
        assert_eq!(reopened.find(secret).await.expect("find"), None);
    }

    #[tokio::test]
    async fn the_file_store_keeps_the_contract() {
        let store = FileApiKeyStore::in_memory();
        contract::shared_at_once(&store, &store).await;
    }
}
