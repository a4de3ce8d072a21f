//! [`ResponseStore`]: Responses-API conversation state by response id, and
//! [`FileResponseStore`], the store on disk: one JSON file per stored response under `data/responses/`,
//! bounded by count, total bytes and age. The oldest files go first when a bound is hit;
//! files older than the age bound are never read back and are removed as they are seen.
//!
//! An index of ids, sizes and creation times sits in memory (rebuilt from the directory at
//! start), so eviction never scans the disk; a response's body is read only when a request
//! continues it.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

use super::StoreError;
use super::files;
use serde::{Deserialize, Serialize};

use super::StoreFuture;

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
    /// The response object, for `GET /v1/responses/{id}`.
    #[serde(default)]
    pub response: serde_json::Value,
    /// The request's own input items (not the earlier turns), each with an `id`, for
    /// `GET /v1/responses/{id}/input_items`.
    #[serde(default)]
    pub input_items: Vec<serde_json::Value>,
}

/// Responses-API conversation state by response id.
pub trait ResponseStore: Send + Sync {
    /// Stores (or replaces) a response's conversation.
    fn put(&self, response: StoredResponse) -> StoreFuture<'_, Result<(), String>>;

    /// The conversation stored under `id` for `project_id`; `None` when unknown, expired,
    /// evicted or another project's.
    fn get(&self, id: String, project_id: String) -> StoreFuture<'_, Option<StoredResponse>>;

    /// Forgets the response `id` of `project_id`; whether there was one.
    fn delete(&self, id: String, project_id: String) -> StoreFuture<'_, bool>;
}

/// How much conversation state is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseLimits {
    /// At most this many responses.
    pub max_count: usize,
    /// At most this many bytes of files.
    pub max_bytes: u64,
    /// Nothing older than this.
    pub max_age: Duration,
}

impl Default for ResponseLimits {
    /// 10 000 responses, 256 MiB, 30 days (OpenAI keeps stored responses 30 days).
    fn default() -> Self {
        ResponseLimits {
            max_count: 10_000,
            max_bytes: 256 * 1024 * 1024,
            max_age: Duration::days(30),
        }
    }
}

#[derive(Debug, Default)]
struct Index {
    /// id → (created, bytes).
    by_id: HashMap<String, (DateTime<Utc>, u64)>,
    /// (created, id), oldest first.
    by_age: BTreeSet<(DateTime<Utc>, String)>,
    total_bytes: u64,
}

impl Index {
    fn insert(&mut self, id: String, created: DateTime<Utc>, bytes: u64) {
        self.remove(&id);
        self.total_bytes += bytes;
        self.by_age.insert((created, id.clone()));
        self.by_id.insert(id, (created, bytes));
    }

    fn remove(&mut self, id: &str) -> bool {
        let Some((created, bytes)) = self.by_id.remove(id) else {
            return false;
        };
        self.total_bytes -= bytes;
        self.by_age.remove(&(created, id.to_owned()));
        true
    }

    /// Ids to delete so the index fits `limits` at `now`, removed from the index.
    fn evict(&mut self, limits: &ResponseLimits, now: DateTime<Utc>) -> Vec<String> {
        let mut evicted = Vec::new();
        while let Some((created, id)) = self.by_age.first().cloned() {
            let over = self.by_id.len() > limits.max_count
                || self.total_bytes > limits.max_bytes
                || now - created > limits.max_age;
            if !over {
                break;
            }
            self.remove(&id);
            evicted.push(id);
        }
        evicted
    }
}

/// [`ResponseStore`] in `data/responses/`.
#[derive(Debug)]
pub struct FileResponseStore {
    dir: PathBuf,
    limits: ResponseLimits,
    index: Mutex<Index>,
}

/// Whether `id` is safe as a file name (what OpenAI and Routerly ids are made of).
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 200
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl FileResponseStore {
    /// Opens (creating) `dir` and indexes the responses in it.
    pub fn open(dir: PathBuf, limits: ResponseLimits) -> Result<Self, StoreError> {
        super::files::create_private_dir_all(&dir).map_err(|error| StoreError::io(&dir, error))?;
        let mut index = Index::default();
        let entries = std::fs::read_dir(&dir).map_err(|error| StoreError::io(&dir, error))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(".json").filter(|id| valid_id(id)) else {
                continue;
            };
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            let created = metadata
                .modified()
                .map(DateTime::<Utc>::from)
                .unwrap_or_else(|_| Utc::now());
            index.insert(id.to_owned(), created, metadata.len());
        }
        let store = FileResponseStore {
            dir,
            limits,
            index: Mutex::new(index),
        };
        let evicted = store.lock().evict(&limits, Utc::now());
        store.delete_files(&evicted);
        Ok(store)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index
            .lock()
            .expect("the response index lock is never poisoned")
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn delete_files(&self, ids: &[String]) {
        for id in ids {
            if let Err(error) = std::fs::remove_file(self.path(id))
                && error.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(%error, id, "cannot remove a stored response");
            }
        }
    }

    /// How many responses are stored, and their bytes.
    pub fn size(&self) -> (usize, u64) {
        let index = self.lock();
        (index.by_id.len(), index.total_bytes)
    }
}

impl ResponseStore for FileResponseStore {
    fn put(&self, response: StoredResponse) -> StoreFuture<'_, Result<(), String>> {
        Box::pin(async move {
            if !valid_id(&response.id) {
                return Err(format!("invalid response id `{}`", response.id));
            }
            let bytes = serde_json::to_vec(&response).map_err(|error| error.to_string())?;
            let size = bytes.len() as u64;
            if size > self.limits.max_bytes {
                return Err("the conversation is larger than the response store".to_owned());
            }
            let path = self.path(&response.id);
            tokio::task::spawn_blocking(move || files::write_atomic(&path, &bytes))
                .await
                .map_err(|error| error.to_string())?
                .map_err(|error| error.to_string())?;
            let evicted = {
                let mut index = self.lock();
                index.insert(response.id.clone(), response.created_at, size);
                index.evict(&self.limits, Utc::now())
            };
            if !evicted.is_empty() {
                self.delete_files(&evicted);
            }
            Ok(())
        })
    }

    fn get(&self, id: String, project_id: String) -> StoreFuture<'_, Option<StoredResponse>> {
        Box::pin(async move {
            if !valid_id(&id) {
                return None;
            }
            let created = self.lock().by_id.get(&id).map(|(created, _)| *created)?;
            if Utc::now() - created > self.limits.max_age {
                let evicted = self.lock().evict(&self.limits, Utc::now());
                self.delete_files(&evicted);
                return None;
            }
            let path = self.path(&id);
            let bytes = tokio::task::spawn_blocking(move || std::fs::read(path))
                .await
                .ok()?
                .ok()?;
            let stored: StoredResponse = serde_json::from_slice(&bytes).ok()?;
            (stored.project_id == project_id && stored.id == id).then_some(stored)
        })
    }

    fn delete(&self, id: String, project_id: String) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            // Another project's response is not there for this one.
            if self.get(id.clone(), project_id).await.is_none() {
                return false;
            }
            let removed = self.lock().remove(&id);
            if removed {
                self.delete_files(std::slice::from_ref(&id));
            }
            removed
        })
    }
}

#[cfg(test)]
mod tests {
    use routerly_core::canonical::{ContentPart, Message, Role};

    use super::*;

    fn stored(id: &str, text: &str, created_at: DateTime<Utc>) -> StoredResponse {
        StoredResponse {
            id: id.to_owned(),
            project_id: "p1".to_owned(),
            created_at,
            messages: vec![Message {
                role: Role::User,
                content: vec![ContentPart::text(text)],
            }],
            response: serde_json::Value::Null,
            input_items: Vec::new(),
        }
    }

    #[tokio::test]
    async fn stores_reads_back_and_keeps_projects_apart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            FileResponseStore::open(dir.path().join("responses"), ResponseLimits::default())
                .expect("open");
        store
            .put(stored("resp_1", "hi", Utc::now()))
            .await
            .expect("put");
        let back = store
            .get("resp_1".into(), "p1".into())
            .await
            .expect("stored");
        assert_eq!(back.messages.len(), 1);
        assert!(store.get("resp_1".into(), "p2".into()).await.is_none());
        assert!(
            store
                .get("../etc/passwd".into(), "p1".into())
                .await
                .is_none()
        );
        // Reopening indexes what is on disk.
        let reopened =
            FileResponseStore::open(dir.path().join("responses"), ResponseLimits::default())
                .expect("reopen");
        assert_eq!(reopened.size().0, 1);
        assert!(reopened.get("resp_1".into(), "p1".into()).await.is_some());
    }

    #[tokio::test]
    async fn the_oldest_go_first_when_count_bytes_or_age_are_exceeded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let limits = ResponseLimits {
            max_count: 2,
            max_bytes: 1_000_000,
            max_age: Duration::hours(1),
        };
        let store = FileResponseStore::open(dir.path().to_path_buf(), limits).expect("open");
        let now = Utc::now();
        for (index, id) in ["resp_a", "resp_b", "resp_c"].iter().enumerate() {
            store
                .put(stored(id, "x", now + Duration::seconds(index as i64)))
                .await
                .expect("put");
        }
        assert!(store.get("resp_a".into(), "p1".into()).await.is_none());
        assert!(!dir.path().join("resp_a.json").exists());
        assert!(store.get("resp_c".into(), "p1".into()).await.is_some());
        // Too old: evicted at once.
        store
            .put(stored("resp_old", "x", now - Duration::hours(2)))
            .await
            .expect("put");
        assert!(store.get("resp_old".into(), "p1".into()).await.is_none());
        // Bytes bound.
        let small = ResponseLimits {
            max_count: 100,
            max_bytes: 400,
            max_age: Duration::hours(1),
        };
        let dir2 = tempfile::tempdir().expect("tempdir");
        let store = FileResponseStore::open(dir2.path().to_path_buf(), small).expect("open");
        for index in 0..5 {
            store
                .put(stored(
                    &format!("resp_{index}"),
                    "some text",
                    now + Duration::seconds(index),
                ))
                .await
                .expect("put");
        }
        let (count, bytes) = store.size();
        assert!(bytes <= 400 && count < 5, "{count} {bytes}");
        assert!(store.get("resp_4".into(), "p1".into()).await.is_some());
    }
}
