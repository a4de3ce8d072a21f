//! `$ROUTERLY_HOME`: where every file lives, and what the first start creates.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rand::RngCore;
use routerly_core::config::{ModelsFile, ProjectsFile, RolesFile, Settings, UsersFile};
use routerly_core::limits::LimitsFile;

use super::StoreError;
use super::files::{self, to_pretty_json, write_atomic};
use super::secrets::MasterKey;

/// Environment variable that gives the master key as 64 hex characters.
pub const SECRET_KEY_ENV: &str = "ROUTERLY_SECRET_KEY";
/// Environment variable that names the home directory.
pub const HOME_ENV: &str = "ROUTERLY_HOME";

/// One of the six JSON config files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigKind {
    /// `config/settings.json`.
    Settings,
    /// `config/models.json`.
    Models,
    /// `config/projects.json`.
    Projects,
    /// `config/users.json`.
    Users,
    /// `config/roles.json`.
    Roles,
    /// `config/limits.json`.
    Limits,
}

impl ConfigKind {
    /// Every config file, in the order they are loaded.
    pub const ALL: [ConfigKind; 6] = [
        ConfigKind::Settings,
        ConfigKind::Models,
        ConfigKind::Projects,
        ConfigKind::Users,
        ConfigKind::Roles,
        ConfigKind::Limits,
    ];

    /// The file's name inside `config/`.
    pub fn file_name(self) -> &'static str {
        match self {
            ConfigKind::Settings => "settings.json",
            ConfigKind::Models => "models.json",
            ConfigKind::Projects => "projects.json",
            ConfigKind::Users => "users.json",
            ConfigKind::Roles => "roles.json",
            ConfigKind::Limits => "limits.json",
        }
    }

    /// Position in [`ConfigKind::ALL`], for per-file arrays.
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// The contents a fresh install starts with.
    fn default_contents(self) -> io::Result<Vec<u8>> {
        match self {
            ConfigKind::Settings => to_pretty_json(&Settings::default()),
            ConfigKind::Models => to_pretty_json(&ModelsFile::default()),
            ConfigKind::Projects => to_pretty_json(&ProjectsFile::default()),
            ConfigKind::Users => to_pretty_json(&UsersFile::default()),
            ConfigKind::Roles => to_pretty_json(&RolesFile::default()),
            ConfigKind::Limits => to_pretty_json(&LimitsFile::default()),
        }
    }
}

/// Where the master key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// `ROUTERLY_SECRET_KEY`.
    Environment,
    /// An existing `config/secret`.
    File,
    /// A new `config/secret` written by this start.
    Generated,
}

/// What [`Home::init`] found and created.
#[derive(Debug)]
pub struct InitReport {
    /// The master key to open the [`super::ConfigStore`] with.
    pub master_key: MasterKey,
    /// Where the master key came from.
    pub key_source: KeySource,
    /// Files created because they were missing.
    pub created: Vec<PathBuf>,
    /// The one-time setup token while no user exists yet; `serve` prints it.
    pub setup_token: Option<String>,
    /// Whether the setup token was created by this start (rather than left from an earlier one).
    pub setup_token_created: bool,
}

/// The Routerly home directory (`$ROUTERLY_HOME`, default `~/.routerly`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    /// The directory itself.
    pub root: PathBuf,
}

impl Home {
    /// A home at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Home { root: root.into() }
    }

    /// `$ROUTERLY_HOME` if set and not empty, else `~/.routerly`.
    pub fn resolve() -> Result<Self, StoreError> {
        if let Some(root) = std::env::var_os(HOME_ENV).filter(|root| !root.is_empty()) {
            return Ok(Home::new(root));
        }
        let user_home = std::env::var_os("HOME")
            .filter(|home| !home.is_empty())
            .ok_or(StoreError::NoHome)?;
        Ok(Home::new(PathBuf::from(user_home).join(".routerly")))
    }

    /// `config/`.
    pub fn config_dir(&self) -> PathBuf {
        self.root.join("config")
    }

    /// `data/`.
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// The path of one config file.
    pub fn config_file(&self, kind: ConfigKind) -> PathBuf {
        self.config_dir().join(kind.file_name())
    }

    /// `config/secret`, the master key file.
    pub fn secret_path(&self) -> PathBuf {
        self.config_dir().join("secret")
    }

    /// `config/setup-token`, the one-time token for creating the first admin.
    pub fn setup_token_path(&self) -> PathBuf {
        self.config_dir().join("setup-token")
    }

    /// `data/usage.jsonl`.
    pub fn usage_log_path(&self) -> PathBuf {
        self.data_dir().join("usage.jsonl")
    }

    /// `data/alerts.json`: which budget alert fired for which limit and window.
    pub fn alerts_path(&self) -> PathBuf {
        self.data_dir().join("alerts.json")
    }

    /// `data/checkpoints/counters.json`: budget counters and the usage log position.
    pub fn checkpoint_path(&self) -> PathBuf {
        self.data_dir().join("checkpoints").join("counters.json")
    }

    /// `data/checkpoints/usage.bin`: the usage rollups and the active segment's index
    /// (binary; `usage.json` beside it is the version 1 form, read once to upgrade).
    pub fn usage_checkpoint_path(&self) -> PathBuf {
        self.data_dir().join("checkpoints").join("usage.bin")
    }

    /// `data/sessions.json`.
    pub fn sessions_path(&self) -> PathBuf {
        self.data_dir().join("sessions.json")
    }

    /// `data/api-keys.json`: admin API keys, hashed.
    pub fn api_keys_path(&self) -> PathBuf {
        self.data_dir().join("api-keys.json")
    }

    /// `data/responses/`: Responses-API conversation state, one file per stored response.
    pub fn responses_dir(&self) -> PathBuf {
        self.data_dir().join("responses")
    }

    /// `data/audit.jsonl`: one line per change made through the API.
    pub fn audit_log_path(&self) -> PathBuf {
        self.data_dir().join("audit.jsonl")
    }

    /// Prepares the home: creates `config/` and `data/`, the default config files that are
    /// missing, the master key (unless `ROUTERLY_SECRET_KEY` gives it) and, while no user
    /// exists, the setup token. Refuses a master key file that group or others can read.
    pub fn init(&self) -> Result<InitReport, StoreError> {
        self.init_with_env_key(std::env::var(SECRET_KEY_ENV).ok())
    }

    /// [`Home::init`] with the value of `ROUTERLY_SECRET_KEY` given.
    pub(crate) fn init_with_env_key(
        &self,
        env_key: Option<String>,
    ) -> Result<InitReport, StoreError> {
        let mut created = Vec::new();
        for dir in [self.root.clone(), self.config_dir(), self.data_dir()] {
            if !dir.is_dir() {
                create_private_dir(&dir)?;
                created.push(dir);
            }
        }
        // A master-key rotation cut short by a crash is finished (or discarded) first, so
        // the key and the files agree.
        super::rotate::recover(self)?;
        for kind in ConfigKind::ALL {
            let path = self.config_file(kind);
            if !path.exists() {
                let contents = kind
                    .default_contents()
                    .map_err(|error| StoreError::io(&path, error))?;
                write_atomic(&path, &contents).map_err(|error| StoreError::io(&path, error))?;
                created.push(path);
            }
        }

        let (master_key, key_source) = match env_key {
            Some(text) => (parse_env_key(&text)?, KeySource::Environment),
            None => self.load_or_create_key_file(&mut created)?,
        };

        let users: UsersFile = files::load_json(&self.config_file(ConfigKind::Users))?;
        let token_path = self.setup_token_path();
        let (setup_token, setup_token_created) = if users.users.is_empty() {
            match self.read_setup_token()? {
                Some(token) => (Some(token), false),
                None => {
                    let mut bytes = [0u8; 24];
                    rand::rngs::OsRng.fill_bytes(&mut bytes);
                    let token = hex::encode(bytes);
                    write_atomic(&token_path, format!("{token}\n").as_bytes())
                        .map_err(|error| StoreError::io(&token_path, error))?;
                    created.push(token_path);
                    (Some(token), true)
                }
            }
        } else {
            // Users exist, so a leftover token must not allow creating another first admin.
            self.remove_setup_token()?;
            (None, false)
        };

        Ok(InitReport {
            master_key,
            key_source,
            created,
            setup_token,
            setup_token_created,
        })
    }

    /// The master key of an initialised home: `ROUTERLY_SECRET_KEY` when set, else
    /// `config/secret`, which must exist, be private (mode 0600) and hold 64 hex characters.
    pub fn master_key(&self) -> Result<MasterKey, StoreError> {
        match std::env::var(SECRET_KEY_ENV) {
            Ok(text) => parse_env_key(&text),
            Err(_) => self.read_key_file(),
        }
    }

    /// Reads `config/secret`, or creates it with a new random key when it does not exist.
    fn load_or_create_key_file(
        &self,
        created: &mut Vec<PathBuf>,
    ) -> Result<(MasterKey, KeySource), StoreError> {
        let path = self.secret_path();
        if path.symlink_metadata().is_ok() {
            return Ok((self.read_key_file()?, KeySource::File));
        }
        let key = MasterKey::generate();
        write_atomic(&path, format!("{}\n", key.to_hex()).as_bytes())
            .map_err(|error| StoreError::io(&path, error))?;
        created.push(path);
        Ok((key, KeySource::Generated))
    }

    /// Reads `config/secret`, refusing it when it is not private or not 64 hex characters.
    fn read_key_file(&self) -> Result<MasterKey, StoreError> {
        let path = self.secret_path();
        let metadata = fs::metadata(&path).map_err(|error| {
            if error.kind() == io::ErrorKind::NotFound {
                StoreError::MasterKey(format!(
                    "{} does not exist; start `routerly serve` once to create it, or set {SECRET_KEY_ENV}",
                    path.display()
                ))
            } else {
                StoreError::io(&path, error)
            }
        })?;
        check_private(&path, &metadata)?;
        let text = fs::read_to_string(&path).map_err(|error| StoreError::io(&path, error))?;
        MasterKey::from_hex(&text).map_err(|_| {
            StoreError::MasterKey(format!(
                "{} is malformed: it must hold 64 hexadecimal characters (32 bytes); \
                 restore it from a backup, since secrets encrypted under the old key \
                 cannot be read without it",
                path.display()
            ))
        })
    }

    /// `data/session-key`: the key that signs access tokens, random and of its own, so that
    /// nothing else (not even the master key) lets anyone derive it.
    pub fn session_key_path(&self) -> PathBuf {
        self.data_dir().join("session-key")
    }

    /// The key that signs access tokens: read from `data/session-key` (which must be private),
    /// or created there, random, on first use.
    pub fn session_signing_key(&self) -> Result<[u8; 32], StoreError> {
        let path = self.session_key_path();
        let metadata = match fs::metadata(&path) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return self.new_session_signing_key();
            }
            Err(error) => return Err(StoreError::io(&path, error)),
        };
        check_private(&path, &metadata)?;
        let text = fs::read_to_string(&path).map_err(|error| StoreError::io(&path, error))?;
        let mut key = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut key).map_err(|_| {
            StoreError::MasterKey(format!(
                "{} is malformed: delete it to make a new one (every access token then ends; refresh tokens keep working)",
                path.display()
            ))
        })?;
        Ok(key)
    }

    /// Writes a new random access-token signing key to `data/session-key` and returns it
    /// (at first start, and when the master key is rotated).
    pub fn new_session_signing_key(&self) -> Result<[u8; 32], StoreError> {
        let path = self.session_key_path();
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        write_atomic(&path, format!("{}\n", hex::encode(key)).as_bytes())
            .map_err(|error| StoreError::io(&path, error))?;
        Ok(key)
    }

    /// This home's replica id (`data/replica-id`, random, made at first use): how the
    /// routing statistics a replica shares through Redis are told from the others', across
    /// its restarts (its own are replayed from its usage log).
    pub fn replica_id(&self) -> Result<String, StoreError> {
        let path = self.data_dir().join("replica-id");
        match fs::read_to_string(&path) {
            Ok(text) if !text.trim().is_empty() => return Ok(text.trim().to_owned()),
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(StoreError::io(&path, error)),
        }
        let mut id = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut id);
        let id = hex::encode(id);
        write_atomic(&path, format!("{id}\n").as_bytes())
            .map_err(|error| StoreError::io(&path, error))?;
        Ok(id)
    }

    /// The setup token, if the file exists.
    pub fn read_setup_token(&self) -> Result<Option<String>, StoreError> {
        let path = self.setup_token_path();
        match fs::read_to_string(&path) {
            Ok(text) if !text.trim().is_empty() => Ok(Some(text.trim().to_owned())),
            Ok(_) => Ok(None),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(StoreError::io(&path, error)),
        }
    }

    /// Deletes the setup token (once the first admin exists); missing is fine.
    pub fn remove_setup_token(&self) -> Result<(), StoreError> {
        let path = self.setup_token_path();
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(StoreError::io(&path, error)),
        }
    }
}

fn parse_env_key(text: &str) -> Result<MasterKey, StoreError> {
    MasterKey::from_hex(text).map_err(|_| {
        StoreError::MasterKey(format!(
            "{SECRET_KEY_ENV} must be 64 hexadecimal characters (32 bytes)"
        ))
    })
}

fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    files::create_private_dir_all(dir).map_err(|error| StoreError::io(dir, error))
}

#[cfg(unix)]
fn check_private(path: &Path, metadata: &fs::Metadata) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(StoreError::MasterKey(format!(
            "{} is accessible by group or others (mode {mode:04o}); \
             run `chmod 600 {}` and start again",
            path.display(),
            path.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path, _metadata: &fs::Metadata) -> Result<(), StoreError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_creates_the_layout_key_and_setup_token_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let home = Home::new(dir.path().join("home"));
        let first = home.init_with_env_key(None).expect("first init");
        assert_eq!(first.key_source, KeySource::Generated);
        assert!(first.setup_token_created);
        let token = first.setup_token.clone().expect("no users yet, so a token");
        for kind in ConfigKind::ALL {
            assert!(home.config_file(kind).is_file(), "{kind:?} created");
        }
        assert_eq!(
            fs::read_to_string(home.config_file(ConfigKind::Models)).expect("models"),
            "{\n  \"models\": []\n}\n"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(home.secret_path())
                .expect("secret")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        let second = home.init_with_env_key(None).expect("second init");
        assert_eq!(second.key_source, KeySource::File);
        assert_eq!(second.master_key.to_hex(), first.master_key.to_hex());
        assert!(
            second.created.is_empty(),
            "nothing to create: {:?}",
            second.created
        );
        assert!(!second.setup_token_created);
        assert_eq!(second.setup_token.as_deref(), Some(token.as_str()));
    }

    #[test]
    fn setup_token_is_removed_once_a_user_exists() {
        let dir = tempfile::tempdir().expect("temp dir");
        let home = Home::new(dir.path());
        home.init_with_env_key(None).expect("init");
        fs::write(
            home.config_file(ConfigKind::Users),
            r#"{"users":[{"id":"u1","email":"a@b.c","password_hash":"x","role":"admin"}]}"#,
        )
        .expect("write users");
        let report = home.init_with_env_key(None).expect("init with a user");
        assert_eq!(report.setup_token, None);
        assert!(!home.setup_token_path().exists());
    }

    #[cfg(unix)]
    #[test]
    fn a_master_key_readable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let home = Home::new(dir.path());
        home.init_with_env_key(None).expect("init");
        fs::set_permissions(home.secret_path(), fs::Permissions::from_mode(0o644)).expect("chmod");
        let error = home
            .init_with_env_key(None)
            .expect_err("0644 must be refused");
        let message = error.to_string();
        assert!(message.contains("mode 0644"), "{message}");
        assert!(message.contains("chmod 600"), "{message}");
    }

    #[test]
    fn a_malformed_master_key_is_refused_and_the_environment_overrides_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let home = Home::new(dir.path());
        home.init_with_env_key(None).expect("init");
        write_atomic(&home.secret_path(), b"not-hex\n").expect("overwrite");
        let error = home.init_with_env_key(None).expect_err("malformed");
        assert!(error.to_string().contains("malformed"), "{error}");

        let env_hex = "ab".repeat(32);
        let report = home
            .init_with_env_key(Some(env_hex.clone()))
            .expect("env key wins over the broken file");
        assert_eq!(report.key_source, KeySource::Environment);
        assert_eq!(report.master_key.to_hex(), env_hex);
        let error = home
            .init_with_env_key(Some("1234".to_owned()))
            .expect_err("short env key");
        assert!(error.to_string().contains(SECRET_KEY_ENV), "{error}");
        assert!(
            !error.to_string().contains("1234"),
            "never echo the key: {error}"
        );
    }
}
