//! Moving a configuration in and out of PostgreSQL: `routerly migrate --from-files` (a file
//! installation's configuration and usage history copied in) and `routerly config
//! export|import` (the six config files, for installations kept in Git).
//!
//! Secrets travel as they are stored (`enc:v1:` under the master key, `env:` references):
//! nothing here decrypts them except to validate, and every replica then needs that same
//! master key (`ROUTERLY_SECRET_KEY`). Every write is one new configuration version under
//! the writers' lock, announced to the running replicas like any change made through the
//! API.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use super::OwnConnection;
use super::config as pg_config;
use super::{Database, DbError};
use crate::store::config::{self, Draft, Snapshot};
use crate::store::{Home, MasterKey, StoreError};

/// Records sent per statement when copying a usage log.
const USAGE_BATCH: usize = 1000;

/// Why a transfer changed nothing (or, for the usage history, stopped part way: what was
/// copied stays, and running it again adds only the rest).
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The files could not be read or do not make a valid configuration.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// PostgreSQL could not be used.
    #[error(transparent)]
    Database(#[from] DbError),
    /// The database holds another installation's configuration or usage.
    #[error(
        "the database already holds a configuration (version {version}) or usage records that \
         are not this installation's; nothing was written (--force replaces its configuration \
         and adds this installation's usage records to it)"
    )]
    NotEmpty {
        /// The configuration version in force there.
        version: i64,
    },
    /// A file of the usage log could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
}

/// What a configuration write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigWrite {
    /// Stored as this new version.
    Written(i64),
    /// The database held exactly this configuration already, as this version.
    Unchanged(i64),
}

/// What `migrate --from-files` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    /// The configuration.
    pub config: ConfigWrite,
    /// Usage records read from the log.
    pub usage_read: u64,
    /// Of those, the ones the database did not hold yet.
    pub usage_added: u64,
    /// Admin API keys (hashes) the database did not hold yet.
    pub api_keys_added: u64,
    /// Entries of the alert ledger (alerts fired, their deliveries) it did not hold yet.
    pub alerts_added: u64,
}

/// Copies the file installation at `home` (its config files, secrets still encrypted, its
/// usage log, rotated segments included, its admin API keys and its alert ledger) into the database at `url`, migrating its
/// schema first. Running it again changes nothing; a database holding anything else is
/// refused unless `force`. `progress` is told how many usage records have been read so far,
/// after every batch sent (the step that takes long on a big history).
pub async fn from_files(
    home: &Home,
    url: &str,
    force: bool,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Migrated, TransferError> {
    let master_key = home.master_key()?;
    let draft = config::read_files(home).map_err(StoreError::from)?;
    validate(&draft, &master_key)?;
    let database = Database::open(url).await?;
    let config = store_config(url, &draft, |current, empty| {
        if empty || force {
            Ok(())
        } else {
            Err(TransferError::NotEmpty { version: current })
        }
    })
    .await?;
    let (usage_read, usage_added) = copy_usage(&database, &home.usage_log_path(), progress).await?;
    let api_keys_added = copy_api_keys(&database, home).await?;
    let alerts = crate::notify::AlertLedger::open(Some(home.alerts_path())).fired();
    let alerts_added = super::shared::insert_alerts(&database, &alerts).await?;
    Ok(Migrated {
        config,
        usage_read,
        usage_added,
        api_keys_added,
        alerts_added,
    })
}

/// Copies the admin API keys of `data/api-keys.json` (hashes, revocations kept); keys the
/// database holds already are skipped. Returns how many were added.
async fn copy_api_keys(database: &Database, home: &Home) -> Result<u64, TransferError> {
    use crate::store::api_keys::{ApiKeyStore, FileApiKeyStore};
    let keys = FileApiKeyStore::open(home.api_keys_path())?.list().await?;
    let client = database.client().await?;
    let mut added = 0;
    for key in keys {
        added += super::shared::insert_api_key(&client, &key, true).await?;
    }
    Ok(added)
}

/// Writes the configuration in force in the database at `url` as the six config files in
/// `dir`; its version.
pub async fn export(url: &str, dir: &Path) -> Result<i64, TransferError> {
    Database::open(url).await?;
    let mut connection = OwnConnection::open(url).await?;
    let client = connection.client().await?;
    let (version, draft) = pg_config::newer_than(&*client, 0)
        .await?
        .unwrap_or((0, Draft::default()));
    config::write_config_dir(dir, &draft).map_err(|source| TransferError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    Ok(version)
}

/// Replaces the configuration in the database at `url` with the six config files in `dir`,
/// once they parse (errors name file, line and column) and make a valid configuration under
/// `master_key`; running replicas swap to it within a second.
pub async fn import(
    url: &str,
    master_key: &MasterKey,
    dir: &Path,
) -> Result<ConfigWrite, TransferError> {
    let draft = config::read_config_dir(dir).map_err(StoreError::from)?;
    validate(&draft, master_key)?;
    Database::open(url).await?;
    store_config(url, &draft, |_, _| Ok(())).await
}

fn validate(draft: &Draft, master_key: &MasterKey) -> Result<(), TransferError> {
    Snapshot::build(draft.clone(), master_key).map_err(StoreError::from)?;
    Ok(())
}

/// Stores `draft` as the next version under the writers' lock, unless the database holds
/// it already; `allowed` sees the version in force and whether the database is empty, and
/// may refuse.
async fn store_config(
    url: &str,
    draft: &Draft,
    allowed: impl FnOnce(i64, bool) -> Result<(), TransferError>,
) -> Result<ConfigWrite, TransferError> {
    let mut connection = OwnConnection::open(url).await?;
    let client = connection.client().await?;
    let transaction = client.transaction().await.map_err(DbError::from)?;
    pg_config::lock_writers(&transaction).await?;
    let current = pg_config::newer_than(&transaction, 0).await?;
    let version = current.as_ref().map_or(0, |(version, _)| *version);
    if current.as_ref().is_some_and(|(_, stored)| stored == draft) {
        return Ok(ConfigWrite::Unchanged(version));
    }
    allowed(version, pg_config::is_empty(&transaction).await?)?;
    pg_config::insert(&transaction, version + 1, draft).await?;
    transaction.commit().await.map_err(DbError::from)?;
    Ok(ConfigWrite::Written(version + 1))
}

/// Sends every record of the usage log at `active` (rotated segments first) in order;
/// records the database holds already are skipped; `progress` hears the count read after
/// each batch. Returns (read, added).
async fn copy_usage(
    database: &Database,
    active: &Path,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<(u64, u64), TransferError> {
    let mut connection = OwnConnection::lazy(&database.url);
    let client = connection.client().await?;
    let count = "SELECT count(*) FROM usage_records";
    let before: i64 = client
        .query_one(count, &[])
        .await
        .map_err(DbError::from)?
        .get(0);
    let io_error = |path: &Path, source| TransferError::Io {
        path: path.to_path_buf(),
        source,
    };
    let files = crate::store::usage_log::usage_log_files(active)
        .map_err(|source| io_error(active, source))?;
    let mut read = 0u64;
    for path in files {
        let mut reader =
            crate::store::segments::open_text(&path).map_err(|source| io_error(&path, source))?;
        let mut batch = Vec::with_capacity(USAGE_BATCH);
        loop {
            let mut line = String::new();
            let length = reader
                .read_line(&mut line)
                .map_err(|source| io_error(&path, source))?;
            // The end, or a torn last line (never acknowledged to anyone).
            let complete = length > 0 && line.ends_with('\n');
            if complete && !line.trim().is_empty() {
                line.truncate(line.trim_end().len());
                batch.push(line);
                read += 1;
            }
            if batch.len() == USAGE_BATCH || (!complete && !batch.is_empty()) {
                super::usage::insert(client, &batch).await?;
                batch.clear();
                progress(read);
            }
            if !complete {
                break;
            }
        }
    }
    let after: i64 = client
        .query_one(count, &[])
        .await
        .map_err(DbError::from)?
        .get(0);
    Ok((read, (after - before).max(0) as u64))
}
