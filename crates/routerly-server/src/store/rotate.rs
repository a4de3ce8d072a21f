//! Master-key rotation: every `enc:` secret in the config files is re-encrypted under a new
//! key, and the new key replaces `config/secret`, all or nothing.
//!
//! The new files and key are first written to `config/.rotate/` and fsynced; then a `COMMIT`
//! marker is written; then each staged file is renamed into place. [`recover`] (run at every
//! start) finishes a committed rotation that a crash interrupted and discards one that never
//! committed, so the files always match the key.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::StoreError;
use super::files::{self, sync_dir, write_atomic};
use super::home::{ConfigKind, Home};
use super::secrets::MasterKey;

const STAGING_DIR: &str = ".rotate";
const COMMIT_MARKER: &str = "COMMIT";
const SECRET_FILE: &str = "secret";

fn staging_dir(home: &Home) -> PathBuf {
    home.config_dir().join(STAGING_DIR)
}

/// Re-encrypts every `enc:` string of `value` from `old` to `new`; returns how many.
fn reencrypt(value: &mut Value, old: &MasterKey, new: &MasterKey) -> Result<usize, String> {
    match value {
        Value::String(text) if text.starts_with("enc:") => {
            let plain = old.decrypt(text).map_err(|error| error.to_string())?;
            *text = new.encrypt(&plain);
            Ok(1)
        }
        Value::Array(items) => items.iter_mut().map(|item| reencrypt(item, old, new)).sum(),
        Value::Object(map) => map.values_mut().map(|item| reencrypt(item, old, new)).sum(),
        _ => Ok(0),
    }
}

/// Rotates from `old` to `new`; returns how many secrets were re-encrypted. The caller holds
/// the config writer lock, so nothing else writes the files meanwhile.
pub fn rotate_files(home: &Home, old: &MasterKey, new: &MasterKey) -> Result<usize, StoreError> {
    recover(home)?;
    let staging = staging_dir(home);
    super::files::create_private_dir_all(&staging)
        .map_err(|error| StoreError::io(&staging, error))?;
    let mut count = 0;
    let mut staged = Vec::new();
    for kind in ConfigKind::ALL {
        let path = home.config_file(kind);
        let bytes = fs::read(&path).map_err(|error| StoreError::io(&path, error))?;
        let mut value: Value = files::parse_json(&path, &bytes)?;
        let changed = reencrypt(&mut value, old, new).map_err(|error| {
            StoreError::MasterKey(format!(
                "config/{}: a secret cannot be decrypted with the current key ({error}); \
                 nothing was changed",
                kind.file_name()
            ))
        })?;
        if changed == 0 {
            continue;
        }
        count += changed;
        let staged_path = staging.join(kind.file_name());
        let contents =
            files::to_pretty_json(&value).map_err(|error| StoreError::io(&staged_path, error))?;
        write_atomic(&staged_path, &contents)
            .map_err(|error| StoreError::io(&staged_path, error))?;
        staged.push(kind.file_name().to_owned());
    }
    let staged_secret = staging.join(SECRET_FILE);
    write_atomic(&staged_secret, format!("{}\n", new.to_hex()).as_bytes())
        .map_err(|error| StoreError::io(&staged_secret, error))?;
    staged.push(SECRET_FILE.to_owned());
    let marker = staging.join(COMMIT_MARKER);
    write_atomic(&marker, staged.join("\n").as_bytes())
        .map_err(|error| StoreError::io(&marker, error))?;
    commit(home)?;
    Ok(count)
}

/// Moves the staged files of a committed rotation into place and removes the staging dir.
fn commit(home: &Home) -> Result<(), StoreError> {
    let staging = staging_dir(home);
    let config_dir = home.config_dir();
    let marker = staging.join(COMMIT_MARKER);
    let names = fs::read_to_string(&marker).map_err(|error| StoreError::io(&marker, error))?;
    for name in names.lines().map(str::trim).filter(|name| !name.is_empty()) {
        let from = staging.join(name);
        // Already moved by an earlier, interrupted commit.
        if !from.exists() {
            continue;
        }
        let to = config_dir.join(name);
        fs::rename(&from, &to).map_err(|error| StoreError::io(&to, error))?;
    }
    sync_dir(&config_dir).map_err(|error| StoreError::io(&config_dir, error))?;
    remove_staging(&staging)
}

fn remove_staging(staging: &Path) -> Result<(), StoreError> {
    fs::remove_dir_all(staging).map_err(|error| StoreError::io(staging, error))?;
    if let Some(parent) = staging.parent() {
        sync_dir(parent).map_err(|error| StoreError::io(parent, error))?;
    }
    Ok(())
}

/// Finishes a committed rotation or discards an uncommitted one; nothing to do otherwise.
pub fn recover(home: &Home) -> Result<(), StoreError> {
    let staging = staging_dir(home);
    if !staging.is_dir() {
        return Ok(());
    }
    if staging.join(COMMIT_MARKER).exists() {
        tracing::warn!("finishing a master-key rotation that was interrupted");
        commit(home)
    } else {
        tracing::warn!("discarding a master-key rotation that never committed");
        remove_staging(&staging)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home_with_secret() -> (tempfile::TempDir, Home, MasterKey, String) {
        let dir = tempfile::tempdir().expect("temp dir");
        let home = Home::new(dir.path());
        let key = home.init_with_env_key(None).expect("init").master_key;
        let stored = key.encrypt("sk-provider-secret");
        fs::write(
            home.config_file(ConfigKind::Models),
            format!(
                r#"{{"models": [{{"id": "m", "provider": "openai", "endpoint": "https://api.openai.com/v1", "upstream_model": "m", "api_key": "{stored}"}}]}}"#
            ),
        )
        .expect("write models");
        (dir, home, key, stored)
    }

    #[test]
    fn rotation_reencrypts_every_secret_and_replaces_the_key() {
        let (_dir, home, old, stored) = home_with_secret();
        let new = MasterKey::generate();
        assert_eq!(rotate_files(&home, &old, &new).expect("rotate"), 1);
        let models = fs::read_to_string(home.config_file(ConfigKind::Models)).expect("models");
        assert!(!models.contains(&stored), "the old ciphertext must be gone");
        assert!(!models.contains("sk-provider-secret"));
        let value: Value = serde_json::from_str(&models).expect("json");
        let rotated = value["models"][0]["api_key"].as_str().expect("key");
        assert_eq!(new.decrypt(rotated).expect("new key"), "sk-provider-secret");
        assert!(old.decrypt(rotated).is_err());
        assert_eq!(home.master_key().expect("key file").to_hex(), new.to_hex());
        assert!(!staging_dir(&home).exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(home.secret_path())
                .expect("secret")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn an_interrupted_commit_is_finished_and_an_uncommitted_one_discarded() {
        let (_dir, home, old, stored) = home_with_secret();
        let new = MasterKey::generate();
        rotate_files(&home, &old, &new).expect("rotate");
        let rotated_models = fs::read(home.config_file(ConfigKind::Models)).expect("models");

        // A crash after COMMIT but before the renames: the next start rolls forward.
        let (_dir2, home2, old2, _) = home_with_secret();
        let staging = staging_dir(&home2);
        fs::create_dir_all(&staging).expect("staging");
        let new2 = MasterKey::generate();
        let mut value: Value =
            serde_json::from_slice(&fs::read(home2.config_file(ConfigKind::Models)).expect("m"))
                .expect("json");
        reencrypt(&mut value, &old2, &new2).expect("reencrypt");
        write_atomic(&staging.join("models.json"), value.to_string().as_bytes()).expect("stage");
        write_atomic(
            &staging.join(SECRET_FILE),
            format!("{}\n", new2.to_hex()).as_bytes(),
        )
        .expect("stage key");
        write_atomic(&staging.join(COMMIT_MARKER), b"models.json\nsecret").expect("marker");
        home2.init_with_env_key(None).expect("init recovers");
        assert_eq!(home2.master_key().expect("key").to_hex(), new2.to_hex());
        assert!(!staging.exists());

        // A crash before COMMIT: the staged files are thrown away and nothing changes.
        let (_dir3, home3, old3, stored3) = home_with_secret();
        let staging = staging_dir(&home3);
        fs::create_dir_all(&staging).expect("staging");
        write_atomic(&staging.join(SECRET_FILE), "00".repeat(32).as_bytes()).expect("stage key");
        home3.init_with_env_key(None).expect("init discards");
        assert_eq!(home3.master_key().expect("key").to_hex(), old3.to_hex());
        let models = fs::read_to_string(home3.config_file(ConfigKind::Models)).expect("models");
        assert!(models.contains(&stored3));
        assert!(!staging.exists());
        assert_ne!(rotated_models, stored.as_bytes());
    }
}
