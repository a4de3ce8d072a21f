//! The audit log, `data/audit.jsonl`: one JSON line per change made through the API (who,
//! what, when, before and after), appended and fsynced; secrets never reach it (callers
//! redact with [`redact`] first). With PostgreSQL the entries of every replica go to one
//! table instead (`audit_log`), in the order they were written.

use std::fs::OpenOptions;
use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use super::pg::{Database, DbError};

/// Keys whose values are never written to the audit log.
const SECRET_KEYS: [&str; 9] = [
    "api_key",
    "password",
    "password_hash",
    "hash",
    "secret",
    "token",
    "refresh_token",
    "access_token",
    "metrics_token",
];

/// `value` with every secret replaced: values of secret-named keys, and any `enc:` string.
pub fn redact(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| {
                    let lowered = key.to_ascii_lowercase();
                    let secret = SECRET_KEYS.contains(&lowered.as_str())
                        || lowered.ends_with("_password")
                        || lowered.ends_with("_secret")
                        || lowered.ends_with("_token");
                    let value = if secret && !value.is_null() {
                        match value {
                            Value::String(text) if text.starts_with("env:") => value.clone(),
                            _ => Value::String("[redacted]".to_owned()),
                        }
                    } else {
                        redact(value)
                    };
                    (key.clone(), value)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        Value::String(text) if text.starts_with("enc:") => Value::String("[redacted]".to_owned()),
        other => other.clone(),
    }
}

/// The append-only audit log.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    writer: tokio::sync::Mutex<()>,
    database: Option<Arc<Database>>,
}

impl AuditLog {
    /// The log at `path` (created on the first append).
    pub fn new(path: PathBuf) -> Self {
        AuditLog {
            path,
            writer: tokio::sync::Mutex::new(()),
            database: None,
        }
    }

    /// The log in `database`, shared by every replica.
    pub fn in_database(database: Arc<Database>) -> Self {
        AuditLog {
            path: PathBuf::new(),
            writer: tokio::sync::Mutex::new(()),
            database: Some(database),
        }
    }

    /// Appends one entry (already redacted) and fsyncs it (committed, in PostgreSQL).
    pub async fn append(&self, entry: &Value) -> io::Result<()> {
        if let Some(database) = &self.database {
            let client = database.client().await.map_err(io::Error::other)?;
            client
                .execute(
                    "INSERT INTO audit_log (entry) VALUES ($1::text::jsonb)",
                    &[&entry.to_string()],
                )
                .await
                .map_err(|error| io::Error::other(DbError::from(error)))?;
            return Ok(());
        }
        let mut line = serde_json::to_vec(entry).map_err(io::Error::other)?;
        line.push(b'\n');
        let _writer = self.writer.lock().await;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let mut options = OpenOptions::new();
            options.create(true).append(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&path)?;
            file.write_all(&line)?;
            file.sync_data()
        })
        .await
        .map_err(io::Error::other)?
    }

    /// A page of entries, newest first: at most `limit`, after skipping the `offset` newest;
    /// and how many entries there are in all. In PostgreSQL the page is cut by the query
    /// (`ORDER BY seq DESC LIMIT … OFFSET …` on the primary key), so a long log costs
    /// nothing beyond the page.
    pub async fn page(&self, limit: usize, offset: usize) -> io::Result<(Vec<Value>, usize)> {
        if let Some(database) = &self.database {
            let failed = |error| io::Error::other(DbError::from(error));
            let client = database.client().await.map_err(io::Error::other)?;
            let (limit, offset) = (
                i64::try_from(limit).unwrap_or(i64::MAX),
                i64::try_from(offset).unwrap_or(i64::MAX),
            );
            let rows = client
                .query(
                    "SELECT entry::text FROM audit_log ORDER BY seq DESC LIMIT $1 OFFSET $2",
                    &[&limit, &offset],
                )
                .await
                .map_err(failed)?;
            let total: i64 = client
                .query_one("SELECT count(*) FROM audit_log", &[])
                .await
                .map_err(failed)?
                .get(0);
            let entries = rows
                .iter()
                .filter_map(|row| serde_json::from_str(row.get::<_, &str>(0)).ok())
                .collect();
            return Ok((entries, usize::try_from(total).unwrap_or(usize::MAX)));
        }
        let entries = self.read_file().await?;
        let total = entries.len();
        Ok((
            entries.into_iter().rev().skip(offset).take(limit).collect(),
            total,
        ))
    }

    /// Every entry of the file, oldest first; a torn last line is skipped.
    async fn read_file(&self) -> io::Result<Vec<Value>> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let file = match std::fs::File::open(&path) {
                Ok(file) => file,
                Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(error) => return Err(error),
            };
            let mut entries = Vec::new();
            for line in io::BufReader::new(file).lines() {
                if let Ok(entry) = serde_json::from_str(&line?) {
                    entries.push(entry);
                }
            }
            Ok(entries)
        })
        .await
        .map_err(io::Error::other)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redact_hides_secret_fields_and_encrypted_values() {
        let value = json!({
            "id": "m", "api_key": "enc:v1:abc", "nested": [{"password": "p", "note": "enc:v1:x"}],
            "webhook_secret": "s", "env": {"api_key": "env:OPENAI_API_KEY"}, "hash": null,
        });
        assert_eq!(
            redact(&value),
            json!({
                "id": "m", "api_key": "[redacted]",
                "nested": [{"password": "[redacted]", "note": "[redacted]"}],
                "webhook_secret": "[redacted]", "env": {"api_key": "env:OPENAI_API_KEY"}, "hash": null,
            })
        );
    }

    #[tokio::test]
    async fn entries_are_appended_and_read_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = AuditLog::new(dir.path().join("audit.jsonl"));
        pages_newest_first(&log).await;
    }

    async fn pages_newest_first(log: &AuditLog) {
        assert_eq!(log.page(10, 0).await.expect("empty"), (vec![], 0));
        for n in 1..=5 {
            log.append(&json!({"n": n})).await.expect("append");
        }
        let (page, total) = log.page(2, 1).await.expect("page");
        assert_eq!((page, total), (vec![json!({"n": 4}), json!({"n": 3})], 5));
        let (page, _) = log.page(10, 3).await.expect("last page");
        assert_eq!(page, vec![json!({"n": 2}), json!({"n": 1})]);
        assert_eq!(log.page(10, 5).await.expect("past the end"), (vec![], 5));
        assert_eq!(
            log.page(usize::MAX, usize::MAX).await.expect("huge"),
            (vec![], 5)
        );
    }

    #[tokio::test]
    async fn postgres_pages_in_sql_newest_first() {
        let db = crate::store::pg::testdb::TestDb::create().await;
        let database = Database::open(&db.url).await.expect("opens");
        let log = AuditLog::in_database(Arc::clone(&database));
        pages_newest_first(&log).await;
        drop((log, database));
        db.drop_now().await;
    }
}
