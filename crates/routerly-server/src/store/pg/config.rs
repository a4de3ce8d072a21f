//! The configuration in PostgreSQL (`config_versions`): every change is a new row holding
//! the whole configuration, the six config files' contents as one JSON document with
//! secrets as they are stored (`enc:v1:` under the master key, or `env:` references).
//!
//! Writers serialize on a transaction-scoped advisory lock, read the newest version, apply
//! their change to it and insert the next version; the primary key is the optimistic
//! check behind the lock (a writer that skipped the lock and raced another still cannot
//! make both succeed from the same version). The insert's trigger announces the version
//! on [`CHANNEL`]; every replica listens there and re-reads the newest version, and also
//! every [`RESYNC_INTERVAL`] in case a notification was missed while its listening
//! connection was down.

use std::time::Duration;

use tokio_postgres::{Client, GenericClient, NoTls};

use super::DbError;
use crate::store::config::Draft;

/// The channel the insert trigger notifies (migration 0002).
pub const CHANNEL: &str = "routerly_config";

/// How often a replica re-reads the newest version even without a notification.
pub const RESYNC_INTERVAL: Duration = Duration::from_secs(5);

/// Serializes configuration writers across replicas ("routerlc").
const WRITER_LOCK: i64 = 0x726f_7574_6572_6c63;

/// How many versions are kept: the newest and some history to look back at.
const VERSIONS_KEPT: i64 = 100;

/// Takes the writers' lock until the end of `transaction`.
pub async fn lock_writers(transaction: &impl GenericClient) -> Result<(), DbError> {
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&WRITER_LOCK])
        .await?;
    Ok(())
}

/// The newest version and its configuration, when it is newer than `after`.
pub async fn newer_than(
    client: &impl GenericClient,
    after: i64,
) -> Result<Option<(i64, Draft)>, DbError> {
    let row = client
        .query_opt(
            "SELECT version, document::text FROM config_versions \
             WHERE version > $1 ORDER BY version DESC LIMIT 1",
            &[&after],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let version: i64 = row.get(0);
    let text: &str = row.get(1);
    let draft = serde_json::from_str(text).map_err(|error| DbError::Document {
        version,
        message: error.to_string(),
    })?;
    Ok(Some((version, draft)))
}

/// Inserts `draft` as `version`; refused when that version exists already (another
/// writer got there first), and older history beyond [`VERSIONS_KEPT`] is dropped.
pub async fn insert(
    client: &impl GenericClient,
    version: i64,
    draft: &Draft,
) -> Result<(), DbError> {
    let text = serde_json::to_string(draft).map_err(|error| DbError::Document {
        version,
        message: error.to_string(),
    })?;
    let inserted = client
        .execute(
            "INSERT INTO config_versions (version, document) VALUES ($1, $2::text::jsonb) \
             ON CONFLICT (version) DO NOTHING",
            &[&version, &text],
        )
        .await?;
    if inserted == 0 {
        return Err(DbError::ConfigConflict { version });
    }
    client
        .execute(
            "DELETE FROM config_versions WHERE version <= $1",
            &[&(version - VERSIONS_KEPT)],
        )
        .await?;
    Ok(())
}

/// Whether the database holds no configuration beyond the empty one a first start writes,
/// and no usage record: what `routerly migrate --from-files` may fill without `--force`.
pub async fn is_empty(client: &impl GenericClient) -> Result<bool, DbError> {
    let configured = match newer_than(client, 0).await? {
        Some((_, draft)) => draft != Draft::default(),
        None => false,
    };
    let used: bool = client
        .query_one("SELECT EXISTS (SELECT 1 FROM usage_records)", &[])
        .await?
        .get(0);
    Ok(!configured && !used)
}

/// The configuration in force at start: the newest version, or `seed` written as version 1
/// when there is none (two replicas starting together on an empty database both end up
/// with the one that won).
pub async fn load_or_seed(client: &mut Client, seed: &Draft) -> Result<(i64, Draft), DbError> {
    if let Some(found) = newer_than(&*client, 0).await? {
        return Ok(found);
    }
    let transaction = client.transaction().await?;
    lock_writers(&transaction).await?;
    if newer_than(&transaction, 0).await?.is_none() {
        insert(&transaction, 1, seed).await?;
    }
    let found = newer_than(&transaction, 0).await?;
    transaction.commit().await?;
    Ok(found.expect("version 1 was written or found under the lock"))
}

/// A connection that receives the notifications of [`CHANNEL`]: each one (and the end of
/// the connection, as `None`) arrives on the returned receiver.
pub async fn listen(
    url: &str,
) -> Result<(Client, tokio::sync::mpsc::UnboundedReceiver<i64>), DbError> {
    use futures_util::StreamExt;
    use tokio_postgres::AsyncMessage;

    let (client, mut connection) = tokio_postgres::connect(url, NoTls).await?;
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(notification)) => {
                    let version = notification.payload().parse().unwrap_or(i64::MAX);
                    if sender.send(version).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "PostgreSQL configuration listener disconnected");
                    break;
                }
            }
        }
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    Ok((client, receiver))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use routerly_core::config::ModelConfig;

    use super::super::testdb::TestDb;
    use crate::store::{ConfigStore, Home, MasterKey, StoreError, UpdateError};

    fn model(id: &str) -> ModelConfig {
        serde_json::from_value(serde_json::json!({
            "id": id, "provider": "openai", "endpoint": "https://api.openai.com/v1",
            "upstream_model": id,
        }))
        .expect("model json")
    }

    async fn replica(url: &str, key: &MasterKey) -> (tempfile::TempDir, Arc<ConfigStore>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let home = Home::new(dir.path());
        home.init_with_env_key(None).expect("init");
        let store = ConfigStore::open_database(&home, key.clone(), url)
            .await
            .expect("opens on the database");
        (dir, Arc::new(store))
    }

    #[tokio::test]
    async fn concurrent_writes_from_two_replicas_all_land_and_both_see_them() {
        let db = TestDb::create().await;
        crate::store::pg::Database::open(&db.url)
            .await
            .expect("migrates");
        let key = MasterKey::generate();
        let (_a_home, a) = replica(&db.url, &key).await;
        let (_b_home, b) = replica(&db.url, &key).await;
        assert_eq!(a.database_version().await, Some(1));
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let listener = b.spawn_watcher(stopped);

        // A secret set through A is stored encrypted and readable by B.
        let sealed = key.encrypt("sk-upstream-secret");
        a.update(|draft| {
            let mut with_key = model("sealed");
            with_key.api_key = Some(sealed.clone());
            draft.models.models.push(with_key);
            Ok::<_, std::convert::Infallible>(())
        })
        .await
        .expect("A writes");
        let started = tokio::time::Instant::now();
        while b.snapshot().model("sealed").is_none() {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(1),
                "B did not see A's change within a second"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(
            b.snapshot().model_api_key("sealed"),
            Some("sk-upstream-secret")
        );
        let client = crate::store::pg::Database::open(&db.url)
            .await
            .expect("opens")
            .client()
            .await
            .expect("client");
        let stored: String = client
            .query_one(
                "SELECT document::text FROM config_versions ORDER BY version DESC LIMIT 1",
                &[],
            )
            .await
            .expect("newest version")
            .get(0);
        assert!(
            !stored.contains("sk-upstream-secret") && stored.contains(&sealed),
            "the secret is stored sealed"
        );

        // Twenty writes from each replica at once: none lost, each one version.
        let writes = (0..40).map(|index| {
            let store = Arc::clone(if index % 2 == 0 { &a } else { &b });
            async move {
                store
                    .update(|draft| {
                        draft.models.models.push(model(&format!("m{index}")));
                        Ok::<_, std::convert::Infallible>(())
                    })
                    .await
                    .expect("concurrent write")
            }
        });
        futures_util::future::join_all(writes).await;
        let version: i64 = client
            .query_one("SELECT max(version) FROM config_versions", &[])
            .await
            .expect("max version")
            .get(0);
        assert_eq!(version, 1 + 1 + 40, "one version per write");
        for store in [&a, &b] {
            store.reload().await.expect("reload");
            let ids: std::collections::HashSet<String> = store
                .snapshot()
                .models
                .models
                .iter()
                .map(|model| model.id.clone())
                .collect();
            assert_eq!(ids.len(), 41, "{ids:?}");
        }

        // An invalid result is refused and nothing is written.
        let error = a
            .update(|draft| {
                draft.models.models.push(model("m0"));
                Ok::<_, std::convert::Infallible>(())
            })
            .await
            .expect_err("duplicate id");
        assert!(matches!(error, UpdateError::Invalid(_)), "{error}");
        // A replica with another master key cannot read the sealed secret: refused at start.
        let dir = tempfile::tempdir().expect("temp dir");
        let home = Home::new(dir.path());
        home.init_with_env_key(None).expect("init");
        let error = ConfigStore::open_database(&home, MasterKey::generate(), &db.url)
            .await
            .expect_err("another key refused");
        assert!(
            matches!(&error, StoreError::Settings(message) if message.contains("ROUTERLY_SECRET_KEY")),
            "{error}"
        );
        assert!(matches!(
            a.rotate_master_key(MasterKey::generate()).await,
            Err(StoreError::Settings(_))
        ));

        stop.send(true).expect("listener listens");
        listener.await.expect("listener stops");
        drop((a, b, client));
        db.drop_now().await;
    }

    #[tokio::test]
    async fn a_home_with_a_configuration_is_not_served_empty() {
        let db = TestDb::create().await;
        crate::store::pg::Database::open(&db.url)
            .await
            .expect("migrates");
        let dir = tempfile::tempdir().expect("temp dir");
        let home = Home::new(dir.path());
        let key = home.init_with_env_key(None).expect("init").master_key;
        let files = ConfigStore::open(&home, key.clone()).expect("file mode");
        files
            .update(|draft| {
                draft.models.models.push(model("local"));
                Ok::<_, std::convert::Infallible>(())
            })
            .await
            .expect("file write");
        let error = ConfigStore::open_database(&home, key, &db.url)
            .await
            .expect_err("refused");
        assert!(
            error.to_string().contains("migrate --from-files"),
            "{error}"
        );
        db.drop_now().await;
    }
}
