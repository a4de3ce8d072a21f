//! Sessions, admin API keys, Responses-API conversation state and the access-token signing
//! key in PostgreSQL, so that any replica continues what another began: a login made on one
//! refreshes on another, a `previous_response_id` from one is continued on another.
//!
//! Each operation is one statement on the shared connection (no transaction spans two),
//! so the compare-and-set a rotation needs is the `UPDATE … WHERE current_hash = old`
//! itself: of two replicas rotating one token at once, exactly one succeeds.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rand::RngCore;

use super::{Database, DbError};
use crate::store::api_keys::{ApiKey, ApiKeyStore, key_hash};
use crate::store::responses::{ResponseLimits, ResponseStore, StoredResponse};
use crate::store::secrets::MasterKey;
use crate::store::sessions::{SessionError, SessionInfo, SessionStore, TokenHash};
use crate::store::{StoreError, StoreFuture};

/// The access-token signing key every replica uses: random, created by the first replica
/// that needs it and stored sealed under the master key.
pub async fn session_signing_key(
    database: &Database,
    master_key: &MasterKey,
) -> Result<[u8; 32], DbError> {
    let client = database.client().await?;
    let mut fresh = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut fresh);
    client
        .execute(
            "INSERT INTO service_keys (name, sealed) VALUES ('session-key', $1) \
             ON CONFLICT (name) DO NOTHING",
            &[&master_key.encrypt(&hex::encode(fresh))],
        )
        .await?;
    let sealed: String = client
        .query_one(
            "SELECT sealed FROM service_keys WHERE name = 'session-key'",
            &[],
        )
        .await?
        .get(0);
    let unreadable = |why: String| DbError::Document {
        version: 0,
        message: format!(
            "the shared session key cannot be read with this replica's master key \
             (every replica needs the same ROUTERLY_SECRET_KEY): {why}"
        ),
    };
    // `decrypt`, not `resolve`: a stored `env:` reference is never followed here.
    let text = master_key
        .decrypt(&sealed)
        .map_err(|error| unreadable(error.to_string()))?;
    let mut key = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut key).map_err(|error| unreadable(error.to_string()))?;
    Ok(key)
}

/// [`SessionStore`] in `session_families` and `session_tokens`.
#[derive(Debug)]
pub struct PgSessionStore {
    database: Arc<Database>,
}

impl PgSessionStore {
    /// Sessions in `database`.
    pub fn new(database: Arc<Database>) -> Self {
        PgSessionStore { database }
    }
}

/// What a session operation answers when the database cannot be reached: nothing is
/// granted (a refresh or a check fails closed).
fn session_unavailable(error: impl Into<DbError>) -> SessionError {
    let error = error.into();
    tracing::error!(%error, "sessions: PostgreSQL unavailable");
    SessionError::Persist(error.to_string())
}

fn is_unique_violation(error: &tokio_postgres::Error) -> bool {
    error.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
}

impl SessionStore for PgSessionStore {
    fn issue(
        &self,
        family_id: String,
        token_hash: TokenHash,
        user_id: String,
        expires_at: DateTime<Utc>,
    ) -> StoreFuture<'_, Result<(), SessionError>> {
        Box::pin(async move {
            let client = self.database.client().await.map_err(session_unavailable)?;
            // Families past their expiry are dead, rotated tokens included.
            client
                .execute(
                    "DELETE FROM session_families WHERE expires_at <= now()",
                    &[],
                )
                .await
                .map_err(session_unavailable)?;
            let hash = token_hash.as_slice();
            let issued = client
                .execute(
                    "WITH family AS (
                         INSERT INTO session_families (id, user_id, current_hash, expires_at)
                         VALUES ($1, $2, $3, $4) RETURNING id)
                     INSERT INTO session_tokens (hash, family_id) SELECT $3, id FROM family",
                    &[&family_id, &user_id, &hash, &expires_at],
                )
                .await;
            match issued {
                Ok(_) => Ok(()),
                Err(error) if is_unique_violation(&error) => Err(SessionError::Duplicate),
                Err(error) => Err(session_unavailable(error)),
            }
        })
    }

    fn rotate(
        &self,
        old_hash: TokenHash,
        new_hash: TokenHash,
        expires_at: DateTime<Utc>,
    ) -> StoreFuture<'_, Result<SessionInfo, SessionError>> {
        Box::pin(async move {
            let client = self.database.client().await.map_err(session_unavailable)?;
            let (old, new) = (old_hash.as_slice(), new_hash.as_slice());
            let rotated = client
                .query_opt(
                    "WITH rotated AS (
                         UPDATE session_families SET current_hash = $2, expires_at = $3
                         WHERE current_hash = $1 AND revoked_at IS NULL AND expires_at > now()
                         RETURNING id, user_id, expires_at),
                     added AS (
                         INSERT INTO session_tokens (hash, family_id) SELECT $2, id FROM rotated)
                     SELECT id, user_id, expires_at FROM rotated",
                    &[&old, &new, &expires_at],
                )
                .await;
            match rotated {
                Ok(Some(row)) => {
                    return Ok(SessionInfo {
                        family_id: row.get(0),
                        user_id: row.get(1),
                        expires_at: row.get(2),
                    });
                }
                Ok(None) => {}
                Err(error) if is_unique_violation(&error) => return Err(SessionError::Duplicate),
                Err(error) => return Err(session_unavailable(error)),
            }
            // Not rotated: say why, and revoke the family when an earlier token came back.
            let row = client
                .query_opt(
                    "SELECT f.id, f.user_id, f.current_hash = $1, f.expires_at, f.revoked_at IS NOT NULL
                     FROM session_tokens t JOIN session_families f ON f.id = t.family_id
                     WHERE t.hash = $1",
                    &[&old],
                )
                .await
                .map_err(session_unavailable)?
                .ok_or(SessionError::Unknown)?;
            let (family_id, user_id): (String, String) = (row.get(0), row.get(1));
            let (current, expiry, revoked): (bool, DateTime<Utc>, bool) =
                (row.get(2), row.get(3), row.get(4));
            if revoked {
                return Err(SessionError::Revoked);
            }
            if expiry <= Utc::now() {
                return Err(SessionError::Expired);
            }
            if current {
                // Rotated by nobody yet lost the race to nothing: a transient state (the
                // family changed between the two statements); ask the client to retry.
                return Err(SessionError::Revoked);
            }
            tracing::warn!(%family_id, %user_id, "refresh token reused; revoking its family");
            client
                .execute(
                    "UPDATE session_families SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
                    &[&family_id],
                )
                .await
                .map_err(session_unavailable)?;
            Err(SessionError::ReuseDetected { family_id, user_id })
        })
    }

    fn find(&self, token_hash: TokenHash) -> StoreFuture<'_, Option<SessionInfo>> {
        Box::pin(async move {
            let client = self
                .database
                .client()
                .await
                .map_err(session_unavailable)
                .ok()?;
            let row = client
                .query_opt(
                    "SELECT id, user_id, expires_at FROM session_families
                     WHERE current_hash = $1 AND revoked_at IS NULL AND expires_at > now()",
                    &[&token_hash.as_slice()],
                )
                .await
                .map_err(session_unavailable)
                .ok()??;
            Some(SessionInfo {
                family_id: row.get(0),
                user_id: row.get(1),
                expires_at: row.get(2),
            })
        })
    }

    fn family_live(&self, family_id: String, user_id: String) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            let Ok(client) = self.database.client().await.map_err(session_unavailable) else {
                return false;
            };
            client
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM session_families
                     WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL AND expires_at > now())",
                    &[&family_id, &user_id],
                )
                .await
                .map_err(session_unavailable)
                .is_ok_and(|row| row.get(0))
        })
    }

    fn revoke_family(&self, family_id: String) -> StoreFuture<'_, Result<bool, SessionError>> {
        Box::pin(async move {
            let client = self.database.client().await.map_err(session_unavailable)?;
            let revoked = client
                .execute(
                    "UPDATE session_families SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
                    &[&family_id],
                )
                .await
                .map_err(session_unavailable)?;
            Ok(revoked > 0)
        })
    }

    fn revoke_user(&self, user_id: String) -> StoreFuture<'_, Result<usize, SessionError>> {
        Box::pin(async move {
            let client = self.database.client().await.map_err(session_unavailable)?;
            let revoked = client
                .execute(
                    "UPDATE session_families SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
                    &[&user_id],
                )
                .await
                .map_err(session_unavailable)?;
            Ok(revoked as usize)
        })
    }
}

/// [`ApiKeyStore`] in `api_keys`: every look-up reads the table, so a key created or
/// revoked through any replica holds on the next request to every replica.
#[derive(Debug)]
pub struct PgApiKeyStore {
    database: Arc<Database>,
}

impl PgApiKeyStore {
    /// Admin API keys in `database`.
    pub fn new(database: Arc<Database>) -> Self {
        PgApiKeyStore { database }
    }
}

const API_KEY_COLUMNS: &str = "id, name, role, hash, snippet, created_by, created_at, revoked_at";

/// Inserts `key` into `api_keys` (also for `migrate --from-files`, which skips the keys
/// the database holds already); how many rows it added.
pub(super) async fn insert_api_key(
    client: &tokio_postgres::Client,
    key: &ApiKey,
    skip_existing: bool,
) -> Result<u64, DbError> {
    let conflict = if skip_existing {
        " ON CONFLICT DO NOTHING"
    } else {
        ""
    };
    Ok(client
        .execute(
            &format!(
                "INSERT INTO api_keys ({API_KEY_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8){conflict}"
            ),
            &[
                &key.id,
                &key.name,
                &key.role,
                &key.hash,
                &key.snippet,
                &key.created_by,
                &key.created_at,
                &key.revoked_at,
            ],
        )
        .await?)
}

fn api_key_from(row: &tokio_postgres::Row) -> ApiKey {
    ApiKey {
        id: row.get(0),
        name: row.get(1),
        role: row.get(2),
        hash: row.get(3),
        snippet: row.get(4),
        created_by: row.get(5),
        created_at: row.get(6),
        revoked_at: row.get(7),
    }
}

impl ApiKeyStore for PgApiKeyStore {
    fn list(&self) -> StoreFuture<'_, Result<Vec<ApiKey>, StoreError>> {
        Box::pin(async move {
            let client = self.database.client().await?;
            let rows = client
                .query(
                    &format!("SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY created_at, id"),
                    &[],
                )
                .await
                .map_err(DbError::from)?;
            Ok(rows.iter().map(api_key_from).collect())
        })
    }

    fn find(&self, secret: String) -> StoreFuture<'_, Result<Option<ApiKey>, StoreError>> {
        Box::pin(async move {
            let client = self.database.client().await?;
            let row = client
                .query_opt(
                    &format!(
                        "SELECT {API_KEY_COLUMNS} FROM api_keys \
                         WHERE hash = $1 AND revoked_at IS NULL"
                    ),
                    &[&key_hash(&secret)],
                )
                .await
                .map_err(DbError::from)?;
            Ok(row.as_ref().map(api_key_from))
        })
    }

    fn create(&self, key: ApiKey) -> StoreFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let client = self.database.client().await?;
            insert_api_key(&client, &key, false).await?;
            Ok(())
        })
    }

    fn revoke(&self, id: String) -> StoreFuture<'_, Result<bool, StoreError>> {
        Box::pin(async move {
            let client = self.database.client().await?;
            let revoked = client
                .execute(
                    "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
                    &[&id],
                )
                .await
                .map_err(DbError::from)?;
            Ok(revoked > 0)
        })
    }
}

/// [`ResponseStore`] in `stored_responses`, bounded like the file store: by age on every
/// read and write, by count and bytes (oldest first) after every write.
#[derive(Debug)]
pub struct PgResponseStore {
    database: Arc<Database>,
    limits: ResponseLimits,
}

impl PgResponseStore {
    /// Conversation state in `database`, within `limits`.
    pub fn new(database: Arc<Database>, limits: ResponseLimits) -> Self {
        PgResponseStore { database, limits }
    }

    fn oldest_kept(&self) -> DateTime<Utc> {
        Utc::now() - self.limits.max_age
    }
}

impl ResponseStore for PgResponseStore {
    fn put(&self, response: StoredResponse) -> StoreFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let text = serde_json::to_string(&response).map_err(|error| error.to_string())?;
            if text.len() as u64 > self.limits.max_bytes || text.len() > i32::MAX as usize {
                return Err("the conversation is larger than the response store".to_owned());
            }
            let client = self
                .database
                .client()
                .await
                .map_err(|error| error.to_string())?;
            let bytes = text.len() as i32;
            client
                .execute(
                    "INSERT INTO stored_responses (id, project_id, created_at, bytes, body)
                     VALUES ($1, $2, $3, $4, $5::text::jsonb)
                     ON CONFLICT (id) DO UPDATE SET project_id = EXCLUDED.project_id,
                         created_at = EXCLUDED.created_at, bytes = EXCLUDED.bytes, body = EXCLUDED.body
                     WHERE stored_responses.project_id = EXCLUDED.project_id",
                    &[&response.id, &response.project_id, &response.created_at, &bytes, &text],
                )
                .await
                .map_err(|error| DbError::from(error).to_string())?;
            // Oldest first beyond the count, the bytes or the age.
            let max_count = self.limits.max_count as i64;
            let max_bytes = self.limits.max_bytes as i64;
            client
                .execute(
                    "DELETE FROM stored_responses WHERE id IN (
                         SELECT id FROM (
                             SELECT id, created_at,
                                 row_number() OVER newest AS rank,
                                 sum(bytes) OVER newest AS bytes_to_here
                             FROM stored_responses
                             WINDOW newest AS (ORDER BY created_at DESC, id DESC)) ranked
                         WHERE rank > $1 OR bytes_to_here > $2 OR created_at < $3)",
                    &[&max_count, &max_bytes, &self.oldest_kept()],
                )
                .await
                .map_err(|error| DbError::from(error).to_string())?;
            Ok(())
        })
    }

    fn get(&self, id: String, project_id: String) -> StoreFuture<'_, Option<StoredResponse>> {
        Box::pin(async move {
            let client = self.database.client().await.ok()?;
            let row = client
                .query_opt(
                    "SELECT body::text FROM stored_responses
                     WHERE id = $1 AND project_id = $2 AND created_at >= $3",
                    &[&id, &project_id, &self.oldest_kept()],
                )
                .await
                .map_err(|error| tracing::error!(error = %DbError::from(error), "responses: PostgreSQL unavailable"))
                .ok()??;
            let text: &str = row.get(0);
            serde_json::from_str(text).ok()
        })
    }

    fn delete(&self, id: String, project_id: String) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            let Ok(client) = self.database.client().await else {
                return false;
            };
            client
                .execute(
                    "DELETE FROM stored_responses WHERE id = $1 AND project_id = $2 AND created_at >= $3",
                    &[&id, &project_id, &self.oldest_kept()],
                )
                .await
                .is_ok_and(|deleted| deleted > 0)
        })
    }
}

/// Adds the alert-ledger entries `alerts` to the `alert_ledger` table, skipping those it
/// holds already (by limit, window, event and threshold); how many were added.
pub async fn insert_alerts(
    database: &Database,
    alerts: &[crate::notify::LedgerEntry],
) -> Result<u64, DbError> {
    let client = database.client().await?;
    let mut added = 0;
    for alert in alerts {
        let key = serde_json::to_string(&alert.key).expect("a ledger key serialises");
        let entry = serde_json::to_string(alert).expect("a ledger entry serialises");
        added += client
            .execute(
                "INSERT INTO alert_ledger (key, fired_at, entry) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
                &[&key, &alert.fired_at, &entry],
            )
            .await?;
    }
    Ok(added)
}

/// Writes `alert` to the `alert_ledger` table: added, or replacing the entry of the same
/// limit, window, event and threshold (its deliveries have moved on), keeping its place.
pub async fn upsert_alert(
    database: &Database,
    alert: &crate::notify::LedgerEntry,
) -> Result<(), DbError> {
    let key = serde_json::to_string(&alert.key).expect("a ledger key serialises");
    let entry = serde_json::to_string(alert).expect("a ledger entry serialises");
    database
        .client()
        .await?
        .execute(
            "INSERT INTO alert_ledger (key, fired_at, entry) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET entry = EXCLUDED.entry",
            &[&key, &alert.fired_at, &entry],
        )
        .await?;
    Ok(())
}

/// Every entry of the `alert_ledger` table in the order they were added (an entry that does not parse is
/// skipped with a warning).
pub async fn alert_ledger(database: &Database) -> Result<Vec<crate::notify::LedgerEntry>, DbError> {
    let client = database.client().await?;
    let rows = client
        .query("SELECT entry FROM alert_ledger ORDER BY seq", &[])
        .await?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            serde_json::from_str(row.get::<_, &str>(0))
                .inspect_err(|error| tracing::warn!(%error, "an alert-ledger row that does not parse is skipped"))
                .ok()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use routerly_core::canonical::{ContentPart, Message, Role};

    use super::super::testdb::TestDb;
    use super::*;
    use crate::store::sessions::contract;

    async fn replica(db: &TestDb) -> Arc<Database> {
        Database::open(&db.url).await.expect("opens")
    }

    #[tokio::test]
    async fn sessions_keep_their_contract_across_replicas() {
        let db = TestDb::create().await;
        let first = PgSessionStore::new(replica(&db).await);
        let second = replica(&db).await;
        contract::rotation_and_reuse(&first, async move || {
            Box::new(PgSessionStore::new(second)) as Box<dyn SessionStore>
        })
        .await;
        // A fresh database for the refusals, whose family ids overlap.
        let refusals_db = TestDb::create().await;
        contract::refusals(&PgSessionStore::new(replica(&refusals_db).await)).await;

        // Two replicas rotating one token at once: exactly one wins, and the loser's
        // attempt counts as a reuse (the family is revoked), as with one replica.
        let (a, b) = (
            PgSessionStore::new(replica(&db).await),
            PgSessionStore::new(replica(&db).await),
        );
        let later = Utc::now() + Duration::days(1);
        a.issue("race".into(), [40; 32], "u9".into(), later)
            .await
            .expect("issue");
        let (left, right) = tokio::join!(
            a.rotate([40; 32], [41; 32], later),
            b.rotate([40; 32], [42; 32], later)
        );
        assert_eq!(
            usize::from(left.is_ok()) + usize::from(right.is_ok()),
            1,
            "{left:?} {right:?}"
        );
        drop((first, a, b));
        db.drop_now().await;
        refusals_db.drop_now().await;
    }

    #[tokio::test]
    async fn api_keys_created_or_revoked_on_one_replica_hold_on_another() {
        let db = TestDb::create().await;
        let (a, b) = (
            PgApiKeyStore::new(replica(&db).await),
            PgApiKeyStore::new(replica(&db).await),
        );
        crate::store::api_keys::contract::shared_at_once(&a, &b).await;
        // Only hashes are stored.
        let client = replica(&db).await.client().await.expect("client");
        let hashes: Vec<String> = client
            .query("SELECT hash FROM api_keys", &[])
            .await
            .expect("rows")
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert!(
            hashes
                .iter()
                .all(|hash| hash.len() == 64 && !hash.starts_with("rly-ak-"))
        );
        drop((a, b, client));
        db.drop_now().await;
    }

    #[tokio::test]
    async fn every_replica_signs_with_one_key_sealed_under_the_master_key() {
        let db = TestDb::create().await;
        let master_key = MasterKey::generate();
        let (one, two) = tokio::join!(
            async {
                session_signing_key(&*replica(&db).await, &master_key)
                    .await
                    .expect("key")
            },
            async {
                session_signing_key(&*replica(&db).await, &master_key)
                    .await
                    .expect("key")
            }
        );
        assert_eq!(one, two);
        let client = replica(&db).await.client().await.expect("client");
        let sealed: String = client
            .query_one("SELECT sealed FROM service_keys", &[])
            .await
            .expect("row")
            .get(0);
        assert!(sealed.starts_with("enc:v1:") && !sealed.contains(&hex::encode(one)));
        let error = session_signing_key(&*replica(&db).await, &MasterKey::generate())
            .await
            .expect_err("another master key cannot read it");
        assert!(error.to_string().contains("ROUTERLY_SECRET_KEY"), "{error}");
        drop(client);
        db.drop_now().await;
    }

    fn stored(id: &str, project: &str, created_at: DateTime<Utc>) -> StoredResponse {
        StoredResponse {
            id: id.to_owned(),
            project_id: project.to_owned(),
            created_at,
            messages: vec![Message {
                role: Role::User,
                content: vec![ContentPart::text("some text")],
            }],
            response: serde_json::Value::Null,
            input_items: Vec::new(),
        }
    }

    #[tokio::test]
    async fn responses_are_shared_per_project_and_bounded() {
        let db = TestDb::create().await;
        let limits = ResponseLimits {
            max_count: 3,
            max_bytes: 1_000_000,
            max_age: Duration::hours(1),
        };
        let a = PgResponseStore::new(replica(&db).await, limits);
        let b = PgResponseStore::new(replica(&db).await, limits);
        let now = Utc::now();
        a.put(stored("resp_1", "p1", now)).await.expect("put");
        let back = b.get("resp_1".into(), "p1".into()).await.expect("shared");
        assert_eq!(back, stored("resp_1", "p1", now));
        assert!(b.get("resp_1".into(), "p2".into()).await.is_none());
        // Another project cannot overwrite or delete it.
        b.put(stored("resp_1", "p2", now)).await.expect("put");
        assert!(a.get("resp_1".into(), "p1".into()).await.is_some());
        assert!(!b.delete("resp_1".into(), "p2".into()).await);
        // Count: the oldest go first.
        for index in 2..=4 {
            a.put(stored(
                &format!("resp_{index}"),
                "p1",
                now + Duration::seconds(index),
            ))
            .await
            .expect("put");
        }
        assert!(a.get("resp_1".into(), "p1".into()).await.is_none());
        assert!(b.get("resp_4".into(), "p1".into()).await.is_some());
        // Age: never read back.
        a.put(stored("resp_old", "p1", now - Duration::hours(2)))
            .await
            .expect("put");
        assert!(b.get("resp_old".into(), "p1".into()).await.is_none());
        assert!(b.delete("resp_4".into(), "p1".into()).await);
        assert!(a.get("resp_4".into(), "p1".into()).await.is_none());
        // Bytes: a tight bound keeps only the newest that fit.
        let small = PgResponseStore::new(
            replica(&db).await,
            ResponseLimits {
                max_count: 100,
                max_bytes: 400,
                max_age: Duration::hours(1),
            },
        );
        for index in 10..15 {
            small
                .put(stored(
                    &format!("resp_{index}"),
                    "p1",
                    now + Duration::seconds(index),
                ))
                .await
                .expect("put");
        }
        let client = replica(&db).await.client().await.expect("client");
        let total: i64 = client
            .query_one(
                "SELECT coalesce(sum(bytes), 0)::bigint FROM stored_responses",
                &[],
            )
            .await
            .expect("sum")
            .get(0);
        assert!(total <= 400, "{total}");
        assert!(small.get("resp_14".into(), "p1".into()).await.is_some());
        drop((a, b, small, client));
        db.drop_now().await;
    }
}
