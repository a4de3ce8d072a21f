//! PostgreSQL, for installations whose replicas share one database
//! (`ROUTERLY_DATABASE_URL`).
//!
//! - [`Database`]: the connection (re-opened when it drops) and the versioned schema,
//!   migrated at start; a schema newer than this binary knows is refused.
//! - [`config`]: the configuration as versioned documents, announced to every replica by
//!   `NOTIFY`.
//! - [`shared`]: sessions, Responses-API conversation state and the access-token signing
//!   key, so any replica continues what another began.
//! - [`transfer`]: `routerly migrate --from-files` and `routerly config export|import`.
//! - [`usage`]: the usage records, shipped off the request path in batches and buffered
//!   (memory, then local disk) while the database is unreachable, and the
//!   [`crate::store::history::UsageHistory`] reads over them.
//!
//! The JSON-file mode stays the default: nothing here runs unless the URL is set.

pub mod config;
pub mod shared;
pub mod transfer;
pub mod usage;

use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use tokio::sync::Mutex;
use tokio_postgres::types::{IsNull, ToSql, Type};
use tokio_postgres::{Client, NoTls};

/// The environment variable that selects PostgreSQL.
pub const DATABASE_URL_ENV: &str = "ROUTERLY_DATABASE_URL";

/// The schema, one migration per version; a version once released is never edited.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("migrations/0001_usage.sql")),
    (2, include_str!("migrations/0002_config.sql")),
    (3, include_str!("migrations/0003_shared_state.sql")),
    (4, include_str!("migrations/0004_usage_rollups.sql")),
    (5, include_str!("migrations/0005_api_keys.sql")),
    (6, include_str!("migrations/0006_alert_ledger.sql")),
    (7, include_str!("migrations/0007_traces_by_id.sql")),
    (8, include_str!("migrations/0008_usage_by_time.sql")),
];

/// Any constant shared by every replica: serializes their migrations.
const MIGRATION_LOCK: i64 = 0x726f_7574_6572_6c79; // "routerly"

/// Why the database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Connecting or a statement failed.
    #[error("PostgreSQL: {}", describe(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// The database was migrated by a newer Routerly.
    #[error(
        "the PostgreSQL schema is at version {found}, newer than this Routerly knows ({known}): \
         upgrade Routerly (every replica) instead of running an older one against it"
    )]
    SchemaTooNew {
        /// The database's version.
        found: i32,
        /// The newest version this binary knows.
        known: i32,
    },
    /// A stored configuration document does not read as this binary's configuration.
    #[error("the configuration stored as version {version} cannot be read: {message}")]
    Document {
        /// The version at fault.
        version: i64,
        /// What is wrong with it.
        message: String,
    },
    /// Another writer stored this configuration version first.
    #[error("configuration version {version} was written by another replica meanwhile")]
    ConfigConflict {
        /// The version both wanted to write.
        version: i64,
    },
    /// A value could not be encoded for PostgreSQL.
    #[error("a value cannot be sent to PostgreSQL: {0}")]
    Encode(String),
}

/// `text` as a PostgreSQL text value can hold it: not a NUL, which PostgreSQL refuses in any
/// text (and so in a whole batch, sent again and again). A request's `user` field is text a
/// caller chose; where it is a column or a rollup cell's value, each NUL becomes U+FFFD. The
/// record's line keeps it exactly (JSON writes it as `\u0000`).
pub(crate) fn storable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        std::borrow::Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// The PostgreSQL binary COPY format of `rows` (whose columns have `types`), whole:
/// header, rows and trailer, for one `CopyInSink` send. tokio-postgres's
/// `BinaryCopyInWriter` hands the connection a message every 4 KiB, each a round trip of
/// its task through a one-slot channel: a thousand usage records were hundreds of them.
pub(crate) fn binary_copy<'a, const N: usize>(
    types: &[Type; N],
    rows: impl IntoIterator<Item = [&'a (dyn ToSql + Sync); N]>,
) -> Result<bytes::Bytes, DbError> {
    const MAGIC: &[u8] = b"PGCOPY\n\xff\r\n\0";
    let mut out = BytesMut::with_capacity(64 * 1024);
    out.put_slice(MAGIC);
    out.put_i32(0); // flags
    out.put_i32(0); // header extension
    for row in rows {
        out.put_i16(N as i16);
        for (value, ty) in row.into_iter().zip(types) {
            let at = out.len();
            out.put_i32(0);
            let length = match value
                .to_sql_checked(ty, &mut out)
                .map_err(|error| DbError::Encode(error.to_string()))?
            {
                IsNull::Yes => -1,
                IsNull::No => i32::try_from(out.len() - at - 4)
                    .map_err(|_| DbError::Encode("a value of 2 GiB or more".to_owned()))?,
            };
            out[at..at + 4].copy_from_slice(&length.to_be_bytes());
        }
    }
    out.put_i16(-1);
    Ok(out.freeze())
}

/// Runs `statement` (a `COPY … FROM STDIN BINARY`) with `data` (see [`binary_copy`]).
pub(crate) async fn copy_in(
    client: &Client,
    statement: &str,
    data: bytes::Bytes,
) -> Result<u64, tokio_postgres::Error> {
    use futures_util::SinkExt;
    let sink = client.copy_in(statement).await?;
    futures_util::pin_mut!(sink);
    sink.send(data).await?;
    sink.finish().await
}

/// What the server said, when it said something (the driver's own text is only "db
/// error"); never the connection string.
fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => error.to_string(),
    }
}

/// One database, shared by the background tasks and the management API's reads.
pub struct Database {
    url: String,
    client: Mutex<Option<Arc<Client>>>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: never printed.
        f.debug_struct("Database").finish_non_exhaustive()
    }
}

impl Database {
    /// Connects to `url` and brings the schema to this binary's version.
    pub async fn open(url: &str) -> Result<Arc<Database>, DbError> {
        let database = Arc::new(Database {
            url: url.to_owned(),
            client: Mutex::new(None),
        });
        let mut client = connect(url).await?;
        migrate(&mut client).await?;
        *database.client.lock().await = Some(Arc::new(client));
        usage::ensure_partitions(&*database.client().await?, chrono::Utc::now()).await?;
        Ok(database)
    }

    /// The connection, re-opened when the last one closed.
    pub async fn client(&self) -> Result<Arc<Client>, DbError> {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref()
            && !client.is_closed()
        {
            return Ok(Arc::clone(client));
        }
        *slot = None;
        let client = Arc::new(connect(&self.url).await?);
        *slot = Some(Arc::clone(&client));
        Ok(client)
    }
}

/// A connection of one user's own (re-opened when it drops), for work that holds a
/// transaction open: on [`Database`]'s shared connection it would capture the statements of
/// other tasks.
pub struct OwnConnection {
    url: String,
    client: Option<Client>,
}

impl std::fmt::Debug for OwnConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: never printed.
        f.debug_struct("OwnConnection").finish_non_exhaustive()
    }
}

impl OwnConnection {
    /// Connects to `url`.
    pub async fn open(url: &str) -> Result<OwnConnection, DbError> {
        Ok(OwnConnection {
            url: url.to_owned(),
            client: Some(connect(url).await?),
        })
    }

    /// A connection to `url` made on first use.
    pub fn lazy(url: &str) -> OwnConnection {
        OwnConnection {
            url: url.to_owned(),
            client: None,
        }
    }

    /// The connection, re-opened when the last one closed.
    pub async fn client(&mut self) -> Result<&mut Client, DbError> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = None;
            self.client = Some(connect(&self.url).await?);
        }
        Ok(self.client.as_mut().expect("connected just above"))
    }

    /// The URL, for the listener's own connection.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }
}

/// Opens a connection and drives it on a task of its own.
async fn connect(url: &str) -> Result<Client, DbError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "PostgreSQL connection closed");
        }
    });
    Ok(client)
}

/// The newest schema version this binary knows.
pub fn known_version() -> i32 {
    MIGRATIONS.last().map_or(0, |(version, _)| *version)
}

/// Applies the migrations the database lacks, each in its own transaction, under an
/// advisory lock so replicas starting together migrate once.
async fn migrate(client: &mut Client) -> Result<(), DbError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let result = migrate_locked(client).await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    result?;
    unlocked?;
    Ok(())
}

async fn migrate_locked(client: &mut Client) -> Result<(), DbError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS routerly_schema (
                 version integer PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
    let found: i32 = client
        .query_one("SELECT coalesce(max(version), 0) FROM routerly_schema", &[])
        .await?
        .get(0);
    let known = known_version();
    if found > known {
        return Err(DbError::SchemaTooNew { found, known });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(version, _)| *version > found) {
        let transaction = client.transaction().await?;
        transaction.batch_execute(sql).await?;
        transaction
            .execute(
                "INSERT INTO routerly_schema (version) VALUES ($1)",
                &[version],
            )
            .await?;
        transaction.commit().await?;
        tracing::info!(version, "PostgreSQL schema migrated");
    }
    Ok(())
}

/// A database of its own for one test, dropped with it.
#[cfg(test)]
pub(crate) mod testdb {
    use tokio_postgres::NoTls;

    /// The machine's PostgreSQL, as the tests reach it.
    const ADMIN_URL: &str = "host=127.0.0.1 port=5432 user=postgres dbname=test";

    /// A fresh database; [`TestDb::drop_now`] removes it.
    pub(crate) struct TestDb {
        pub(crate) name: String,
        pub(crate) url: String,
    }

    impl TestDb {
        pub(crate) async fn create() -> TestDb {
            let name = format!("routerly_test_{}", uuid::Uuid::new_v4().simple());
            let (client, connection) = tokio_postgres::connect(ADMIN_URL, NoTls)
                .await
                .expect("the machine's PostgreSQL is reachable");
            tokio::spawn(connection);
            client
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create the test database");
            let url = format!("host=127.0.0.1 port=5432 user=postgres dbname={name}");
            TestDb { name, url }
        }

        pub(crate) async fn drop_now(self) {
            let (client, connection) = tokio_postgres::connect(ADMIN_URL, NoTls)
                .await
                .expect("the machine's PostgreSQL is reachable");
            tokio::spawn(connection);
            client
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .await
                .expect("drop the test database");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testdb::TestDb;
    use super::*;

    #[tokio::test]
    async fn migrates_once_and_refuses_a_newer_schema() {
        let db = TestDb::create().await;
        // Two replicas starting together: one migrates, the other finds it done.
        let (first, second) = tokio::join!(Database::open(&db.url), Database::open(&db.url));
        let first = first.expect("first replica starts");
        second.expect("second replica starts");
        let client = first.client().await.unwrap();
        let versions: Vec<i32> = client
            .query("SELECT version FROM routerly_schema ORDER BY version", &[])
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert_eq!(versions, (1..=known_version()).collect::<Vec<_>>());
        client
            .execute(
                "INSERT INTO routerly_schema (version) VALUES ($1)",
                &[&(known_version() + 1)],
            )
            .await
            .unwrap();
        let error = Database::open(&db.url)
            .await
            .expect_err("newer schema refused");
        let message = error.to_string();
        assert!(
            message.contains("newer than this Routerly knows"),
            "{message}"
        );
        assert!(matches!(error, DbError::SchemaTooNew { found, known } if found == known + 1));
        drop(client);
        drop(first);
        db.drop_now().await;
    }
}
