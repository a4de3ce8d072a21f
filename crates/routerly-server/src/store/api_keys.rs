//! Admin API keys for scripts and CI (`data/api-keys.json`): long-lived, scoped to a global
//! role, revocable, stored only as SHA-256 hashes. The key itself is shown once, at creation.

use std::path::PathBuf;
use std::sync::RwLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Mutex;

use super::StoreError;
use super::files;

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

/// The admin API keys, in memory and saved atomically on every change.
#[derive(Debug)]
pub struct ApiKeyStore {
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
        hash: hex::encode(Sha256::digest(secret.as_bytes())),
        snippet: format!(
            "{}…{}",
            &secret[..API_KEY_PREFIX.len() + 4],
            &secret[secret.len() - 4..]
        ),
        created_by: created_by.to_owned(),
        created_at: Utc::now(),
        revoked_at: None,
    };
    (secret, record)
}

impl ApiKeyStore {
    /// Loads the keys saved at `path` (none when the file does not exist).
    pub fn open(path: PathBuf) -> Result<Self, StoreError> {
        let file: ApiKeysFile = if path.exists() {
            files::load_json(&path)?
        } else {
            ApiKeysFile::default()
        };
        Ok(ApiKeyStore {
            path: Some(path),
            keys: RwLock::new(file.keys),
            writer: Mutex::new(()),
        })
    }

    /// A store that is never saved, for tests.
    pub fn in_memory() -> Self {
        ApiKeyStore {
            path: None,
            keys: RwLock::new(Vec::new()),
            writer: Mutex::new(()),
        }
    }

    /// Every key, revoked ones included.
    pub fn list(&self) -> Vec<ApiKey> {
        self.keys
            .read()
            .expect("api key lock is never poisoned")
            .clone()
    }

    /// The live key whose clear text is `secret`.
    pub fn find(&self, secret: &str) -> Option<ApiKey> {
        let hash = hex::encode(Sha256::digest(secret.as_bytes()));
        let keys = self.keys.read().expect("api key lock is never poisoned");
        keys.iter()
            .find(|key| bool::from(key.hash.as_bytes().ct_eq(hash.as_bytes())))
            .filter(|key| key.revoked_at.is_none())
            .cloned()
    }

    /// Adds a key and saves.
    pub async fn create(&self, key: ApiKey) -> Result<(), StoreError> {
        self.change(|keys| {
            keys.push(key);
            true
        })
        .await
        .map(drop)
    }

    /// Revokes the key `id`; `Ok(false)` when no live key has that id.
    pub async fn revoke(&self, id: &str) -> Result<bool, StoreError> {
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
    }

    /// Applies `change` to a copy; saves it and swaps it in when `change` returns true.
    async fn change(
        &self,
        change: impl FnOnce(&mut Vec<ApiKey>) -> bool,
    ) -> Result<bool, StoreError> {
        let _writer = self.writer.lock().await;
        let mut keys = self.list();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_are_found_by_their_secret_until_revoked_and_survive_a_restart() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("api-keys.json");
        let store = ApiKeyStore::open(path.clone()).expect("open");
        let (secret, record) = new_api_key("ci", "operator", "u1");
        assert!(secret.starts_with(API_KEY_PREFIX));
        store.create(record.clone()).await.expect("create");
        assert_eq!(
            store.find(&secret).map(|key| key.id),
            Some(record.id.clone())
        );
        assert_eq!(store.find("rly-ak-wrong"), None);
        let text = std::fs::read_to_string(&path).expect("saved");
        assert!(
            !text.contains(&secret),
            "the key itself must never be stored"
        );

        let reopened = ApiKeyStore::open(path).expect("reopen");
        assert!(reopened.find(&secret).is_some());
        assert!(reopened.revoke(&record.id).await.expect("revoke"));
        assert!(!reopened.revoke(&record.id).await.expect("twice"));
        assert_eq!(reopened.find(&secret), None);
    }
}
