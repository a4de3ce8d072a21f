//! The configuration in memory: an immutable [`Snapshot`] of the six config files behind an
//! `ArcSwap`, replaced whole when anything changes.
//!
//! Readers call [`ConfigStore::snapshot`] (no lock, no IO). Writers go through
//! [`ConfigStore::update`], one at a time; before applying a change the writer re-reads any
//! file that changed on disk, so a hand edit is never overwritten, and after it the whole
//! result is validated before anything is written. [`ConfigStore::spawn_watcher`] picks up
//! hand edits without a restart and keeps the last good snapshot when an edit is broken.
//!
//! With `ROUTERLY_DATABASE_URL` ([`ConfigStore::open_database`]) the same snapshot comes
//! from PostgreSQL instead (see [`super::pg::config`]): every update is a new version written
//! under the writers' lock, and the watcher listens for other replicas' versions.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use routerly_core::config::{
    ModelConfig, ModelsFile, Project, ProjectToken, ProjectsFile, RolesFile, Settings, User,
    UsersFile,
};
use routerly_core::limits::LimitsFile;
use routerly_core::ranges;
use subtle::ConstantTimeEq;
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

use super::StoreError;
use super::files::{self, ConfigFileError, FileStamp};
use super::home::{ConfigKind, Home};
use super::pg::OwnConnection;
use super::pg::config as pg_config;
use super::secrets::{self, EnvAllowList, MasterKey};

/// How often the watcher looks at the config files.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// The config files as plain data; what [`ConfigStore::update`] lets a change edit. In
/// PostgreSQL it is stored as one JSON document with a member per file.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Draft {
    /// `config/settings.json`.
    pub settings: Settings,
    /// `config/models.json`.
    pub models: ModelsFile,
    /// `config/projects.json`.
    pub projects: ProjectsFile,
    /// `config/users.json`.
    pub users: UsersFile,
    /// `config/roles.json`.
    pub roles: RolesFile,
    /// `config/limits.json`.
    pub limits: LimitsFile,
}

/// Config files that parse but do not agree with each other or with themselves.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config/{}: {entry}: {message}", file.file_name())]
pub struct ValidationError {
    /// The file holding the offending entry.
    pub file: ConfigKind,
    /// The entry, such as ``project `demo` ``.
    pub entry: String,
    /// What is wrong with it.
    pub message: String,
    /// The field at fault inside the entry, when one is (`pricing.input`, `value`).
    pub field: Option<String>,
}

impl ValidationError {
    pub(crate) fn new(
        file: ConfigKind,
        entry: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ValidationError {
            file,
            entry: entry.into(),
            message: message.into(),
            field: None,
        }
    }

    /// An error about a value out of its documented range, naming its field.
    pub(crate) fn out_of_range(
        file: ConfigKind,
        entry: impl Into<String>,
        problem: ranges::OutOfRange,
    ) -> Self {
        ValidationError {
            file,
            entry: entry.into(),
            message: problem.message,
            field: Some(problem.field),
        }
    }

    /// The same error naming `field`.
    pub(crate) fn with_field(mut self, field: &str) -> Self {
        self.field = Some(field.to_owned());
        self
    }
}

/// A resolved provider API key; its `Debug` never shows it.
#[derive(Clone)]
struct ResolvedKey(String);

impl fmt::Debug for ResolvedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResolvedKey(<redacted>)")
    }
}

/// Where a token sits in [`Snapshot::projects`].
#[derive(Debug, Clone, Copy)]
struct TokenSlot {
    project: usize,
    token: usize,
}

/// One consistent, validated view of every config file, with indexes for the request path.
#[derive(Debug)]
pub struct Snapshot {
    /// `config/settings.json`.
    pub settings: Settings,
    /// `config/models.json`.
    pub models: ModelsFile,
    /// `config/projects.json`.
    pub projects: ProjectsFile,
    /// `config/users.json`.
    pub users: UsersFile,
    /// `config/roles.json`.
    pub roles: RolesFile,
    /// `config/limits.json`.
    pub limits: LimitsFile,
    model_by_id: IdMap<String, usize>,
    api_keys: IdMap<String, ResolvedKey>,
    metrics_token: Option<ResolvedKey>,
    token_by_hash: IdMap<[u8; 32], TokenSlot>,
    project_by_id: IdMap<String, usize>,
    project_by_slug: IdMap<String, usize>,
    project_by_unique_name: IdMap<String, usize>,
    user_by_id: IdMap<String, usize>,
    user_by_email: IdMap<String, usize>,
}

/// The snapshot's indexes hash with foldhash (randomly seeded): the request path looks up
/// a token digest, a model and a project on every call, where SipHash cost a few hundred
/// instructions each. The keys come from the configuration (and a token's SHA-256), so no
/// caller chooses what collides.
type IdMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

impl Snapshot {
    /// Validates `draft` across files and builds its indexes, resolving every model's API key
    /// (decrypting `enc:v1:` values, reading `env:` variables) so the request path never does.
    pub fn build(draft: Draft, master_key: &MasterKey) -> Result<Self, ValidationError> {
        let Draft {
            settings,
            models,
            projects,
            users,
            roles,
            limits,
        } = draft;

        ranges::check_settings(&settings).map_err(|problem| {
            ValidationError::out_of_range(ConfigKind::Settings, problem.field.clone(), problem)
        })?;
        for pattern in &settings.env_allow_list {
            secrets::check_env_pattern(pattern).map_err(|message| {
                ValidationError::new(ConfigKind::Settings, "env_allow_list", message)
                    .with_field("env_allow_list")
            })?;
        }
        let env_allowed = EnvAllowList::new(&settings.env_allow_list);

        let mut model_by_id = IdMap::default();
        let mut api_keys = IdMap::default();
        for (index, model) in models.models.iter().enumerate() {
            let entry = entry_name("model", &model.id);
            if model.id.trim().is_empty() {
                return Err(ValidationError::new(
                    ConfigKind::Models,
                    format!("models[{index}]"),
                    "id is empty",
                ));
            }
            if model_by_id.insert(model.id.clone(), index).is_some() {
                return Err(ValidationError::new(
                    ConfigKind::Models,
                    entry,
                    "duplicate model id",
                ));
            }
            ranges::check_length("id", &model.id, ranges::MAX_ID_CHARS)
                .and_then(|()| ranges::check_model(model))
                .map_err(|problem| {
                    ValidationError::out_of_range(ConfigKind::Models, &entry, problem)
                })?;
            if let Some(stored) = &model.api_key {
                let resolved = master_key.resolve(stored, &env_allowed).map_err(|error| {
                    ValidationError::new(ConfigKind::Models, &entry, format!("api_key: {error}"))
                        .with_field("api_key")
                })?;
                if secrets::is_plaintext(stored) {
                    tracing::warn!(
                        model = %model.id,
                        "config/models.json holds this model's API key in clear; \
                         prefer `env:NAME` or setting it through the API, which encrypts it"
                    );
                }
                api_keys.insert(model.id.clone(), ResolvedKey(resolved));
            }
        }

        let metrics_token = match &settings.metrics_token {
            None => None,
            Some(stored) => {
                let resolved = master_key.resolve(stored, &env_allowed).map_err(|error| {
                    ValidationError::new(
                        ConfigKind::Settings,
                        "metrics_token",
                        format!("metrics_token: {error}"),
                    )
                    .with_field("metrics_token")
                })?;
                if secrets::is_plaintext(stored) {
                    tracing::warn!(
                        "config/settings.json holds the metrics token in clear; \
                         prefer `env:NAME` or an `enc:v1:` value"
                    );
                }
                Some(ResolvedKey(resolved))
            }
        };

        let mut project_by_id = IdMap::default();
        let mut project_by_slug = IdMap::default();
        let mut name_counts: HashMap<&str, (usize, usize)> = HashMap::new();
        let mut token_by_hash = IdMap::default();
        let mut token_ids = HashSet::new();
        for (project_index, project) in projects.projects.iter().enumerate() {
            let entry = entry_name("project", &project.id);
            if project.id.trim().is_empty() {
                return Err(ValidationError::new(
                    ConfigKind::Projects,
                    format!("projects[{project_index}]"),
                    "id is empty",
                ));
            }
            if project.slug.trim().is_empty() {
                return Err(ValidationError::new(
                    ConfigKind::Projects,
                    entry,
                    "slug is empty",
                ));
            }
            if project_by_id
                .insert(project.id.clone(), project_index)
                .is_some()
            {
                return Err(ValidationError::new(
                    ConfigKind::Projects,
                    entry,
                    "duplicate project id",
                ));
            }
            if project_by_slug
                .insert(project.slug.clone(), project_index)
                .is_some()
            {
                return Err(ValidationError::new(
                    ConfigKind::Projects,
                    entry,
                    format!("duplicate slug `{}`", project.slug),
                ));
            }
            let name_count = name_counts
                .entry(project.name.as_str())
                .or_insert((project_index, 0));
            name_count.1 += 1;

            let mut project_model_ids = HashSet::new();
            for project_model in &project.models {
                if !model_by_id.contains_key(&project_model.model_id) {
                    return Err(ValidationError::new(
                        ConfigKind::Projects,
                        entry,
                        format!(
                            "model `{}` is not registered in models.json",
                            project_model.model_id
                        ),
                    ));
                }
                if !project_model_ids.insert(project_model.model_id.as_str()) {
                    return Err(ValidationError::new(
                        ConfigKind::Projects,
                        entry,
                        format!("model `{}` is listed twice", project_model.model_id),
                    ));
                }
            }
            check_project_lengths(project)
                .and_then(|()| ranges::check_timeout_overrides(&project.timeouts))
                .map_err(|problem| {
                    ValidationError::out_of_range(ConfigKind::Projects, &entry, problem)
                })?;
            project.routing.validate().map_err(|message| {
                ValidationError::new(ConfigKind::Projects, &entry, format!("routing: {message}"))
            })?;
            for (key, model_id) in project.routing.referenced_models() {
                if !model_by_id.contains_key(model_id) {
                    return Err(ValidationError::new(
                        ConfigKind::Projects,
                        &entry,
                        format!(
                            "routing: {key} names model `{model_id}`, which is not registered in models.json"
                        ),
                    ));
                }
            }

            for (token_index, token) in project.tokens.iter().enumerate() {
                let token_entry = format!("{entry}, {}", entry_name("token", &token.id));
                let mut hash = [0u8; 32];
                if token.hash.len() != 64 || hex::decode_to_slice(&token.hash, &mut hash).is_err() {
                    return Err(ValidationError::new(
                        ConfigKind::Projects,
                        token_entry,
                        "hash must be 64 hexadecimal characters (SHA-256)",
                    ));
                }
                if !token_ids.insert(token.id.as_str()) {
                    return Err(ValidationError::new(
                        ConfigKind::Projects,
                        token_entry,
                        "duplicate token id",
                    ));
                }
                let slot = TokenSlot {
                    project: project_index,
                    token: token_index,
                };
                if token_by_hash.insert(hash, slot).is_some() {
                    return Err(ValidationError::new(
                        ConfigKind::Projects,
                        token_entry,
                        "duplicate token hash",
                    ));
                }
            }
        }
        let project_by_unique_name = name_counts
            .into_iter()
            .filter(|(_, (_, count))| *count == 1)
            .map(|(name, (index, _))| (name.to_owned(), index))
            .collect();

        let mut user_by_id = IdMap::default();
        let mut user_by_email = IdMap::default();
        for (index, user) in users.users.iter().enumerate() {
            let entry = entry_name("user", &user.email);
            if user.id.trim().is_empty() || user.email.trim().is_empty() {
                return Err(ValidationError::new(
                    ConfigKind::Users,
                    format!("users[{index}]"),
                    "id and email must not be empty",
                ));
            }
            if user_by_id.insert(user.id.clone(), index).is_some() {
                return Err(ValidationError::new(
                    ConfigKind::Users,
                    entry,
                    format!("duplicate user id `{}`", user.id),
                ));
            }
            if user_by_email
                .insert(normalize_email(&user.email), index)
                .is_some()
            {
                return Err(ValidationError::new(
                    ConfigKind::Users,
                    entry,
                    "duplicate email",
                ));
            }
        }

        for user in &users.users {
            ranges::check_length("email", &user.email, ranges::MAX_NAME_CHARS)
                .and_then(|()| ranges::check_length("id", &user.id, ranges::MAX_ID_CHARS))
                .map_err(|problem| {
                    ValidationError::out_of_range(
                        ConfigKind::Users,
                        entry_name("user", &user.id),
                        problem,
                    )
                })?;
        }
        let mut role_ids = HashSet::new();
        for role in &roles.roles {
            ranges::check_length("id", &role.id, ranges::MAX_ID_CHARS)
                .and_then(|()| ranges::check_length("name", &role.name, ranges::MAX_NAME_CHARS))
                .map_err(|problem| {
                    ValidationError::out_of_range(
                        ConfigKind::Roles,
                        entry_name("role", &role.id),
                        problem,
                    )
                })?;
            if !role_ids.insert(role.id.as_str()) {
                return Err(ValidationError::new(
                    ConfigKind::Roles,
                    entry_name("role", &role.id),
                    "duplicate role id",
                ));
            }
        }

        super::budget_config::validate(&settings, &limits, &models, &projects, master_key)?;

        Ok(Snapshot {
            settings,
            models,
            projects,
            users,
            roles,
            limits,
            model_by_id,
            api_keys,
            metrics_token,
            token_by_hash,
            project_by_id,
            project_by_slug,
            project_by_unique_name,
            user_by_id,
            user_by_email,
        })
    }

    /// A copy of the files' data, to edit and build a new snapshot from.
    pub fn to_draft(&self) -> Draft {
        Draft {
            settings: self.settings.clone(),
            models: self.models.clone(),
            projects: self.projects.clone(),
            users: self.users.clone(),
            roles: self.roles.clone(),
            limits: self.limits.clone(),
        }
    }

    /// The registered model with this id.
    pub fn model(&self, id: &str) -> Option<&ModelConfig> {
        self.model_by_id
            .get(id)
            .map(|&index| &self.models.models[index])
    }

    /// The model's API key in clear, resolved when this snapshot was built; `None` when the
    /// model has no key. Never log it.
    pub fn model_api_key(&self, id: &str) -> Option<&str> {
        self.api_keys.get(id).map(|key| key.0.as_str())
    }

    /// The bearer token `GET /metrics` requires, resolved when this snapshot was built;
    /// `None` leaves it open. Never log it.
    pub fn metrics_token(&self) -> Option<&str> {
        self.metrics_token.as_ref().map(|key| key.0.as_str())
    }

    /// The project token whose SHA-256 is `sha256`, with its project. Revocation and expiry
    /// are the caller's to check (`revoked_at`, `expires_at`).
    pub fn token_by_hash(&self, sha256: &[u8; 32]) -> Option<(&Project, &ProjectToken)> {
        let (stored_hash, slot) = self.token_by_hash.get_key_value(sha256)?;
        // The map compared the bytes already; a constant-time comparison keeps the last step
        // of authentication free of timing differences whatever the map does.
        if !bool::from(stored_hash.ct_eq(sha256)) {
            return None;
        }
        let project = &self.projects.projects[slot.project];
        Some((project, &project.tokens[slot.token]))
    }

    /// The project whose id, slug or (unambiguous) name is `key`, tried in that order.
    pub fn project(&self, key: &str) -> Option<&Project> {
        self.project_by_id
            .get(key)
            .or_else(|| self.project_by_slug.get(key))
            .or_else(|| self.project_by_unique_name.get(key))
            .map(|&index| &self.projects.projects[index])
    }

    /// The user with this email, compared without regard to ASCII case.
    pub fn user_by_email(&self, email: &str) -> Option<&User> {
        self.user_by_email
            .get(&normalize_email(email))
            .map(|&index| &self.users.users[index])
    }

    /// The user with this id.
    pub fn user(&self, id: &str) -> Option<&User> {
        self.user_by_id
            .get(id)
            .map(|&index| &self.users.users[index])
    }
}

/// How an error names an entry: its kind and id, the id clipped so that an error never
/// echoes a huge value.
pub(crate) fn entry_name(kind: &str, id: &str) -> String {
    format!(
        "{kind} `{}`",
        routerly_core::usage::clip(id, routerly_core::usage::MAX_ECHOED_NAME_CHARS)
    )
}

/// The lengths of a project's names, ids, aliases and labels.
fn check_project_lengths(project: &Project) -> Result<(), ranges::OutOfRange> {
    ranges::check_length("id", &project.id, ranges::MAX_ID_CHARS)?;
    ranges::check_length("name", &project.name, ranges::MAX_NAME_CHARS)?;
    ranges::check_length("slug", &project.slug, ranges::MAX_NAME_CHARS)?;
    for model in &project.models {
        ranges::check_list("aliases", &model.aliases)?;
    }
    for token in &project.tokens {
        ranges::check_length("tokens.id", &token.id, ranges::MAX_ID_CHARS)?;
        ranges::check_list("labels", &token.labels)?;
    }
    Ok(())
}

fn normalize_email(email: &str) -> String {
    email.trim().to_ascii_lowercase()
}

/// Why re-reading the config files from disk failed; the snapshot in force is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReloadError {
    /// A file cannot be read, or has a syntax or schema error.
    #[error(transparent)]
    File(#[from] ConfigFileError),
    /// The files parse but do not agree.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// PostgreSQL could not be read.
    #[error("{0}")]
    Database(String),
}

/// Why [`ConfigStore::update`] changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError<E> {
    /// The change itself refused (its closure returned this error).
    #[error("{0}")]
    Rejected(E),
    /// The result of the change is not a valid configuration; nothing was written.
    #[error("{0}")]
    Invalid(ValidationError),
    /// The files on disk could not be used: a hand edit left one broken or inconsistent
    /// (nothing was written over it), or writing failed (files written before the failure
    /// hold the new contents and are picked up again from disk).
    #[error("cannot update the configuration: {0}")]
    Store(StoreError),
}

impl From<ReloadError> for StoreError {
    fn from(error: ReloadError) -> Self {
        match error {
            ReloadError::File(error) => StoreError::Config(error),
            ReloadError::Invalid(error) => StoreError::Invalid(error),
            ReloadError::Database(message) => StoreError::Database(message),
        }
    }
}

/// The result of looking at one file on disk.
enum FileScan {
    /// Same contents as the stamp.
    Same,
    /// Same contents, new mtime or length.
    Touched(FileStamp),
    /// New contents.
    Changed(Vec<u8>, FileStamp),
}

/// What the single writer knows about the files on disk: what it last read or wrote.
struct DiskState {
    stamps: [FileStamp; 6],
}

/// What the configuration in PostgreSQL's writer knows: its connection and the version of
/// the snapshot in force.
struct DatabaseState {
    connection: OwnConnection,
    version: i64,
}

/// Where the configuration is kept; each holds the lock its writers take.
enum Source {
    /// The files under `config/` (the default).
    Files(Mutex<DiskState>),
    /// PostgreSQL's `config_versions`.
    Database(Mutex<DatabaseState>),
}

/// The configuration of a running service. See the module documentation.
pub struct ConfigStore {
    home: Home,
    master_key: ArcSwap<MasterKey>,
    current: ArcSwap<Snapshot>,
    source: Source,
    reload_error: StdMutex<Option<String>>,
}

impl fmt::Debug for ConfigStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigStore")
            .field("home", &self.home)
            .finish_non_exhaustive()
    }
}

impl ConfigStore {
    /// Loads and validates every config file; refuses to start when one is missing, has a
    /// syntax or schema error (`file:line:column: message`) or disagrees with another.
    pub fn open(home: &Home, master_key: MasterKey) -> Result<Self, StoreError> {
        let mut draft = Draft::default();
        let mut stamps = Vec::with_capacity(ConfigKind::ALL.len());
        for kind in ConfigKind::ALL {
            let path = home.config_file(kind);
            let (bytes, stamp) = read_stamped(&path)?;
            parse_into(&mut draft, kind, &path, &bytes)?;
            stamps.push(stamp);
        }
        let snapshot = Snapshot::build(draft, &master_key)?;
        let stamps: [FileStamp; 6] = stamps.try_into().expect("one stamp per config file kind");
        Ok(ConfigStore {
            home: home.clone(),
            master_key: ArcSwap::from_pointee(master_key),
            current: ArcSwap::from_pointee(snapshot),
            source: Source::Files(Mutex::new(DiskState { stamps })),
            reload_error: StdMutex::new(None),
        })
    }

    /// Loads the newest configuration version from PostgreSQL at `url`, whose schema is
    /// migrated already ([`super::pg::Database::open`]). An empty database starts empty
    /// (version 1, the default configuration); a home whose config files hold models,
    /// projects or users is refused then, so an installation switched to the database is
    /// never served empty by mistake (`routerly migrate --from-files` copies it first).
    pub async fn open_database(
        home: &Home,
        master_key: MasterKey,
        url: &str,
    ) -> Result<Self, StoreError> {
        let mut connection = OwnConnection::open(url).await?;
        let client = connection.client().await?;
        if pg_config::newer_than(&*client, 0).await?.is_none() {
            let local = read_files(home)?;
            if !local.models.models.is_empty()
                || !local.projects.projects.is_empty()
                || !local.users.users.is_empty()
            {
                return Err(StoreError::Settings(format!(
                    "{} holds a configuration but the database in ROUTERLY_DATABASE_URL has                      none: copy it there with `routerly migrate --from-files` first",
                    home.config_dir().display()
                )));
            }
        }
        let (version, draft) = pg_config::load_or_seed(client, &Draft::default()).await?;
        let snapshot = Snapshot::build(draft, &master_key).map_err(|error| {
            StoreError::Settings(format!(
                "the configuration in PostgreSQL (version {version}) is not valid here:                  {error} (every replica needs the same master key, ROUTERLY_SECRET_KEY)"
            ))
        })?;
        tracing::info!(version, "configuration loaded from PostgreSQL");
        Ok(ConfigStore {
            home: home.clone(),
            master_key: ArcSwap::from_pointee(master_key),
            current: ArcSwap::from_pointee(snapshot),
            source: Source::Database(Mutex::new(DatabaseState {
                connection,
                version,
            })),
            reload_error: StdMutex::new(None),
        })
    }

    /// Whether the configuration is in PostgreSQL, shared by every replica.
    pub fn is_shared(&self) -> bool {
        matches!(self.source, Source::Database(_))
    }

    /// The configuration version in force when it comes from PostgreSQL.
    pub async fn database_version(&self) -> Option<i64> {
        match &self.source {
            Source::Files(_) => None,
            Source::Database(state) => Some(state.lock().await.version),
        }
    }

    /// The configuration in force: a pointer load, no lock, no IO.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// The master key the secrets in the files are encrypted under.
    pub fn master_key(&self) -> Arc<MasterKey> {
        self.master_key.load_full()
    }

    /// The home directory the files live in.
    pub fn home(&self) -> &Home {
        &self.home
    }

    /// The error that keeps the last hand edit from being applied, if any (for `/ready` and
    /// the dashboard); cleared when the files are valid again.
    pub fn last_reload_error(&self) -> Option<String> {
        self.reload_error
            .lock()
            .expect("reload error lock is never poisoned")
            .clone()
    }

    /// Applies `f` to a copy of the configuration, validates the result and writes the files
    /// it changed, atomically; one update runs at a time. Files changed on disk since they
    /// were last read are re-read first, so `f` sees (and keeps) hand edits.
    pub async fn update<T, E>(
        &self,
        f: impl FnOnce(&mut Draft) -> Result<T, E>,
    ) -> Result<T, UpdateError<E>> {
        let disk = match &self.source {
            Source::Files(disk) => disk,
            Source::Database(state) => return self.update_database(state, f).await,
        };
        let mut disk = disk.lock().await;
        // Hash every file rather than trusting mtimes: an update is rare, a lost edit is not.
        self.catch_up(&mut disk, true)
            .await
            .map_err(|error| UpdateError::Store(error.into()))?;

        let before = self.current.load_full();
        let mut draft = before.to_draft();
        let value = f(&mut draft).map_err(UpdateError::Rejected)?;
        // Removing a project, model or token through the API removes its limits too.
        super::budget_config::prune_dangling_limits(&mut draft);

        let mut changed = Vec::new();
        for kind in ConfigKind::ALL {
            let bytes = match kind {
                ConfigKind::Settings if draft.settings != before.settings => {
                    files::to_pretty_json(&draft.settings)
                }
                ConfigKind::Models if draft.models != before.models => {
                    files::to_pretty_json(&draft.models)
                }
                ConfigKind::Projects if draft.projects != before.projects => {
                    files::to_pretty_json(&draft.projects)
                }
                ConfigKind::Users if draft.users != before.users => {
                    files::to_pretty_json(&draft.users)
                }
                ConfigKind::Roles if draft.roles != before.roles => {
                    files::to_pretty_json(&draft.roles)
                }
                ConfigKind::Limits if draft.limits != before.limits => {
                    files::to_pretty_json(&draft.limits)
                }
                _ => continue,
            };
            let path = self.home.config_file(kind);
            let bytes = bytes.map_err(|error| UpdateError::Store(StoreError::io(&path, error)))?;
            changed.push((kind, path, bytes));
        }
        if changed.is_empty() {
            return Ok(value);
        }
        let snapshot =
            Snapshot::build(draft, &self.master_key.load()).map_err(UpdateError::Invalid)?;

        let written = tokio::task::spawn_blocking(move || {
            let mut stamps = Vec::with_capacity(changed.len());
            for (kind, path, bytes) in changed {
                let metadata =
                    files::write_atomic_with(&path, |file| std::io::Write::write_all(file, &bytes))
                        .map_err(|error| (StoreError::io(&path, error), stamps.clone()))?;
                stamps.push((kind, FileStamp::new(&metadata, &bytes)));
            }
            Ok::<_, (StoreError, Vec<(ConfigKind, FileStamp)>)>(stamps)
        })
        .await
        .expect("the config write task does not panic");
        match written {
            Ok(stamps) => {
                for (kind, stamp) in stamps {
                    disk.stamps[kind.index()] = stamp;
                }
                self.current.store(Arc::new(snapshot));
                tracing::info!("configuration updated");
                Ok(value)
            }
            Err((error, _partly_written)) => {
                // Files written before the failure are not stamped, so the next look at the
                // disk reloads them: the disk stays the truth.
                tracing::error!(%error, "cannot write the configuration");
                Err(UpdateError::Store(error))
            }
        }
    }

    /// [`ConfigStore::update`] against PostgreSQL: under the writers' lock (one transaction),
    /// the newest version is read first, so `f` sees every other replica's change, and the
    /// result is inserted as the next version, announced to every replica on commit.
    async fn update_database<T, E>(
        &self,
        state: &Mutex<DatabaseState>,
        f: impl FnOnce(&mut Draft) -> Result<T, E>,
    ) -> Result<T, UpdateError<E>> {
        fn unavailable<E>(error: impl Into<super::pg::DbError>) -> UpdateError<E> {
            UpdateError::Store(StoreError::from(error.into()))
        }
        let mut state = state.lock().await;
        let DatabaseState {
            connection,
            version,
        } = &mut *state;
        let client = connection.client().await.map_err(unavailable)?;
        let transaction = client.transaction().await.map_err(unavailable)?;
        pg_config::lock_writers(&transaction)
            .await
            .map_err(unavailable)?;
        if let Some((newer, draft)) = pg_config::newer_than(&transaction, *version)
            .await
            .map_err(unavailable)?
        {
            let snapshot = Snapshot::build(draft, &self.master_key.load())
                .map_err(|error| UpdateError::Store(StoreError::Invalid(error)))?;
            self.current.store(Arc::new(snapshot));
            *version = newer;
        }

        let before = self.current.load_full().to_draft();
        let mut draft = before.clone();
        // A panic in `f` drops the transaction, which rolls back and releases the lock.
        let value = f(&mut draft).map_err(UpdateError::Rejected)?;
        super::budget_config::prune_dangling_limits(&mut draft);
        if draft == before {
            return Ok(value);
        }
        let snapshot = Snapshot::build(draft.clone(), &self.master_key.load())
            .map_err(UpdateError::Invalid)?;
        pg_config::insert(&transaction, *version + 1, &draft)
            .await
            .map_err(unavailable)?;
        transaction.commit().await.map_err(|error| {
            tracing::error!(error = %super::pg::DbError::from(error), "cannot write the configuration");
            UpdateError::Store(StoreError::Database(
                "the configuration database did not confirm the change; it may or may not \
                 be applied (this replica picks it up within seconds if it was)"
                    .to_owned(),
            ))
        })?;
        *version += 1;
        self.current.store(Arc::new(snapshot));
        tracing::info!(version = *version, "configuration updated");
        Ok(value)
    }

    /// Re-encrypts every `enc:` secret in the config files under `new_key` and makes it the
    /// master key, atomically (see [`super::rotate`]): no update or reload runs meanwhile, and
    /// a crash leaves either the old key and files or the new ones. Refused when the
    /// configuration is in PostgreSQL: every replica holds the key, so it changes outside
    /// Routerly.
    pub async fn rotate_master_key(&self, new_key: MasterKey) -> Result<usize, StoreError> {
        let Source::Files(disk) = &self.source else {
            return Err(StoreError::Settings(
                "the configuration is in PostgreSQL, shared by every replica with one master \
                 key (ROUTERLY_SECRET_KEY): it cannot be rotated by one replica"
                    .to_owned(),
            ));
        };
        let mut disk = disk.lock().await;
        self.catch_up(&mut disk, true).await?;
        let old_key = self.master_key();
        let home = self.home.clone();
        let staged_key = new_key.clone();
        let count = tokio::task::spawn_blocking(move || {
            super::rotate::rotate_files(&home, &old_key, &staged_key)
        })
        .await
        .expect("the key rotation task does not panic")?;
        self.master_key.store(Arc::new(new_key));
        // The rewritten files differ from the stamps, so this rebuilds the snapshot under the
        // new key.
        self.catch_up(&mut disk, true).await?;
        Ok(count)
    }

    /// Re-reads the config files that changed on disk and, when they are valid, swaps in a
    /// new snapshot; returns whether anything was reloaded. A broken file leaves the last
    /// good snapshot in force and is logged once per distinct error.
    pub async fn reload(&self) -> Result<bool, ReloadError> {
        match &self.source {
            Source::Files(disk) => {
                let mut disk = disk.lock().await;
                self.catch_up(&mut disk, false).await
            }
            Source::Database(state) => {
                let result = self.resync(state).await;
                self.record_reload(&result);
                result
            }
        }
    }

    /// Swaps in the newest version in PostgreSQL when it is newer than the one in force.
    async fn resync(&self, state: &Mutex<DatabaseState>) -> Result<bool, ReloadError> {
        let unavailable = |error: super::pg::DbError| ReloadError::Database(error.to_string());
        let mut state = state.lock().await;
        let version = state.version;
        let client = state.connection.client().await.map_err(unavailable)?;
        let Some((newer, draft)) = pg_config::newer_than(&*client, version)
            .await
            .map_err(unavailable)?
        else {
            return Ok(false);
        };
        let snapshot = Snapshot::build(draft, &self.master_key.load())?;
        self.current.store(Arc::new(snapshot));
        state.version = newer;
        tracing::info!(version = newer, "configuration reloaded from PostgreSQL");
        Ok(true)
    }

    /// Polls the config files every [`WATCH_INTERVAL`] and reloads hand edits until
    /// `shutdown` turns `true` (or its sender is dropped).
    pub fn spawn_watcher(self: &Arc<Self>, shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
        if let Source::Database(_) = &self.source {
            return self.spawn_listener(shutdown);
        }
        let store = Arc::clone(self);
        crate::panics::supervise("config watcher", move || {
            let (store, mut shutdown) = (Arc::clone(&store), shutdown.clone());
            async move {
                let mut interval = tokio::time::interval(WATCH_INTERVAL);
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    if *shutdown.borrow_and_update() {
                        break;
                    }
                    tokio::select! {
                        _ = interval.tick() => {
                            // Errors are logged and recorded by `catch_up`.
                            let _ = store.reload().await;
                        }
                        changed = shutdown.changed() => {
                            if changed.is_err() {
                                break;
                            }
                        }
                    }
                }
            }
        })
    }

    /// In PostgreSQL mode: listens for other replicas' versions and re-reads the newest on
    /// each notification, every [`pg_config::RESYNC_INTERVAL`] as a safety net, and after
    /// every reconnection (notifications sent while not listening are lost), until
    /// `shutdown` turns `true`.
    fn spawn_listener(self: &Arc<Self>, shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
        let store = Arc::clone(self);
        crate::panics::supervise("config listener", move || {
            let (store, mut shutdown) = (Arc::clone(&store), shutdown.clone());
            async move {
                let Source::Database(state) = &store.source else {
                    return;
                };
                let url = state.lock().await.connection.url().to_owned();
                let mut warned = false;
                loop {
                    if *shutdown.borrow_and_update() {
                        return;
                    }
                    match pg_config::listen(&url).await {
                        Ok((_listening, mut notifications)) => {
                            if warned {
                                tracing::info!("listening for configuration changes again");
                                warned = false;
                            }
                            let mut resync = tokio::time::interval(pg_config::RESYNC_INTERVAL);
                            resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                            loop {
                                tokio::select! {
                                    notification = notifications.recv() => {
                                        if notification.is_none() {
                                            break;
                                        }
                                    }
                                    _ = resync.tick() => {}
                                    changed = shutdown.changed() => {
                                        if changed.is_err() || *shutdown.borrow() {
                                            return;
                                        }
                                    }
                                }
                                // Errors are logged and recorded by `reload`.
                                let _ = store.reload().await;
                            }
                        }
                        Err(error) => {
                            if !warned {
                                tracing::warn!(%error, "cannot listen for configuration changes; retrying every second");
                                warned = true;
                            }
                        }
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {
                            let _ = store.reload().await;
                        }
                        changed = shutdown.changed() => {
                            if changed.is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        })
    }

    /// Brings the snapshot up to date with the files on disk; the caller holds the writer
    /// lock. With `always_hash`, every file is read and hashed; otherwise only files whose
    /// mtime or length moved.
    async fn catch_up(&self, disk: &mut DiskState, always_hash: bool) -> Result<bool, ReloadError> {
        let result = self.catch_up_inner(disk, always_hash).await;
        self.record_reload(&result);
        result
    }

    /// Keeps the error that holds back a reload (logged once per distinct error), or clears
    /// it after a reload that worked.
    fn record_reload(&self, result: &Result<bool, ReloadError>) {
        let mut reload_error = self
            .reload_error
            .lock()
            .expect("reload error lock is never poisoned");
        match &result {
            Ok(_) => {
                if reload_error.take().is_some() {
                    tracing::info!("the configuration reloads again");
                }
            }
            Err(error) => {
                let message = error.to_string();
                if reload_error.as_deref() != Some(message.as_str()) {
                    tracing::error!(
                        error = %message,
                        "configuration change not applied (files on disk or PostgreSQL); the last good configuration stays in force"
                    );
                    *reload_error = Some(message);
                }
            }
        }
    }

    async fn catch_up_inner(
        &self,
        disk: &mut DiskState,
        always_hash: bool,
    ) -> Result<bool, ReloadError> {
        let targets: Vec<(ConfigKind, PathBuf, FileStamp)> = ConfigKind::ALL
            .into_iter()
            .map(|kind| {
                (
                    kind,
                    self.home.config_file(kind),
                    disk.stamps[kind.index()].clone(),
                )
            })
            .collect();
        let scans = tokio::task::spawn_blocking(move || {
            targets
                .into_iter()
                .map(|(kind, path, stamp)| {
                    scan_file(&path, &stamp, always_hash).map(|scan| (kind, path, scan))
                })
                .collect::<Result<Vec<_>, ConfigFileError>>()
        })
        .await
        .expect("the config scan task does not panic")?;

        let mut changed = Vec::new();
        for (kind, path, scan) in scans {
            match scan {
                FileScan::Same => {}
                FileScan::Touched(stamp) => disk.stamps[kind.index()] = stamp,
                FileScan::Changed(bytes, stamp) => changed.push((kind, path, bytes, stamp)),
            }
        }
        if changed.is_empty() {
            return Ok(false);
        }

        let mut draft = self.current.load().to_draft();
        for (kind, path, bytes, _) in &changed {
            parse_into(&mut draft, *kind, path, bytes)?;
        }
        let snapshot = Snapshot::build(draft, &self.master_key.load())?;
        self.current.store(Arc::new(snapshot));
        let names: Vec<&str> = changed.iter().map(|(kind, ..)| kind.file_name()).collect();
        tracing::info!(files = ?names, "reloaded configuration changed on disk");
        for (kind, _, _, stamp) in changed {
            disk.stamps[kind.index()] = stamp;
        }
        Ok(true)
    }
}

/// The config files' contents, unvalidated.
pub(crate) fn read_files(home: &Home) -> Result<Draft, ConfigFileError> {
    read_config_dir(&home.config_dir())
}

/// The six config files in `dir` (`settings.json`, `models.json`, …), parsed but not
/// validated; errors name the file, line and column.
pub fn read_config_dir(dir: &Path) -> Result<Draft, ConfigFileError> {
    let mut draft = Draft::default();
    for kind in ConfigKind::ALL {
        let path = dir.join(kind.file_name());
        let (bytes, _) = read_stamped(&path)?;
        parse_into(&mut draft, kind, &path, &bytes)?;
    }
    Ok(draft)
}

/// Writes `draft` as the six config files in `dir` (created if missing), each atomically
/// and laid out as the service writes them.
pub fn write_config_dir(dir: &Path, draft: &Draft) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    for kind in ConfigKind::ALL {
        let bytes = match kind {
            ConfigKind::Settings => files::to_pretty_json(&draft.settings),
            ConfigKind::Models => files::to_pretty_json(&draft.models),
            ConfigKind::Projects => files::to_pretty_json(&draft.projects),
            ConfigKind::Users => files::to_pretty_json(&draft.users),
            ConfigKind::Roles => files::to_pretty_json(&draft.roles),
            ConfigKind::Limits => files::to_pretty_json(&draft.limits),
        }?;
        files::write_atomic(&dir.join(kind.file_name()), &bytes)?;
    }
    Ok(())
}

/// Reads a file and stamps it; the metadata is taken before the contents, so a write racing
/// with the read shows up as a change next time.
fn read_stamped(path: &Path) -> Result<(Vec<u8>, FileStamp), ConfigFileError> {
    let cannot_read =
        |error: std::io::Error| ConfigFileError::whole_file(path, format!("cannot read: {error}"));
    let mut file = fs::File::open(path).map_err(cannot_read)?;
    let metadata = file.metadata().map_err(cannot_read)?;
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    file.read_to_end(&mut bytes).map_err(cannot_read)?;
    let stamp = FileStamp::new(&metadata, &bytes);
    Ok((bytes, stamp))
}

fn scan_file(
    path: &Path,
    stamp: &FileStamp,
    always_hash: bool,
) -> Result<FileScan, ConfigFileError> {
    if !always_hash {
        let metadata = fs::metadata(path)
            .map_err(|error| ConfigFileError::whole_file(path, format!("cannot read: {error}")))?;
        if stamp.metadata_matches(&metadata) {
            return Ok(FileScan::Same);
        }
    }
    let (bytes, new_stamp) = read_stamped(path)?;
    Ok(if new_stamp.hash != stamp.hash {
        FileScan::Changed(bytes, new_stamp)
    } else if new_stamp != *stamp {
        FileScan::Touched(new_stamp)
    } else {
        FileScan::Same
    })
}

fn parse_into(
    draft: &mut Draft,
    kind: ConfigKind,
    path: &Path,
    bytes: &[u8],
) -> Result<(), ConfigFileError> {
    match kind {
        ConfigKind::Settings => draft.settings = files::parse_json(path, bytes)?,
        ConfigKind::Models => draft.models = files::parse_json(path, bytes)?,
        ConfigKind::Projects => draft.projects = files::parse_json(path, bytes)?,
        ConfigKind::Users => draft.users = files::parse_json(path, bytes)?,
        ConfigKind::Roles => draft.roles = files::parse_json(path, bytes)?,
        ConfigKind::Limits => draft.limits = files::parse_json(path, bytes)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use routerly_core::config::{ProjectModel, ProviderKind};
    use sha2::{Digest, Sha256};

    const TOKEN: &str = "sk-lr-test-token";

    fn model_json(id: &str) -> String {
        format!(
            r#"{{"id": "{id}", "provider": "openai", "endpoint": "https://api.openai.com/v1", "upstream_model": "{id}"}}"#
        )
    }

    fn models_json(ids: &[&str]) -> String {
        let models: Vec<String> = ids.iter().map(|id| model_json(id)).collect();
        format!("{{\"models\": [{}]}}\n", models.join(", "))
    }

    /// A fresh home with one model `gpt` (encrypted key) and one project `demo` using it.
    fn setup() -> (tempfile::TempDir, Home, MasterKey) {
        let dir = tempfile::tempdir().expect("temp dir");
        let home = Home::new(dir.path());
        let report = home.init_with_env_key(None).expect("init");
        let key = report.master_key;
        let encrypted = key.encrypt("sk-upstream-secret");
        let models = format!(
            r#"{{"models": [{{"id": "gpt", "provider": "openai", "endpoint": "https://api.openai.com/v1", "upstream_model": "gpt-4o", "api_key": "{encrypted}"}}]}}"#
        );
        fs::write(home.config_file(ConfigKind::Models), models).expect("write models");
        let hash = hex::encode(Sha256::digest(TOKEN));
        let projects = format!(
            r#"{{"projects": [{{"id": "p1", "name": "Demo", "slug": "demo", "models": [{{"model_id": "gpt"}}], "tokens": [{{"id": "t1", "hash": "{hash}", "snippet": "sk-lr-…oken"}}]}}]}}"#
        );
        fs::write(home.config_file(ConfigKind::Projects), projects).expect("write projects");
        fs::write(
            home.config_file(ConfigKind::Users),
            r#"{"users": [{"id": "u1", "email": "Admin@Example.com", "password_hash": "x", "role": "admin"}]}"#,
        )
        .expect("write users");
        (dir, home, key)
    }

    fn rewrite(path: &Path, contents: &str) {
        fs::write(path, contents).expect("hand edit");
    }

    #[test]
    fn snapshot_lookups_use_the_indexes() {
        let (_dir, home, key) = setup();
        let store = ConfigStore::open(&home, key).expect("open");
        let snapshot = store.snapshot();
        assert_eq!(snapshot.model("gpt").expect("gpt").upstream_model, "gpt-4o");
        assert_eq!(snapshot.model_api_key("gpt"), Some("sk-upstream-secret"));
        assert!(snapshot.model("nope").is_none());
        let hash: [u8; 32] = Sha256::digest(TOKEN).into();
        let (project, token) = snapshot.token_by_hash(&hash).expect("token found");
        assert_eq!((project.id.as_str(), token.id.as_str()), ("p1", "t1"));
        assert!(snapshot.token_by_hash(&[0u8; 32]).is_none());
        for key in ["p1", "demo", "Demo"] {
            assert_eq!(
                snapshot.project(key).map(|p| p.id.as_str()),
                Some("p1"),
                "{key}"
            );
        }
        assert_eq!(
            snapshot
                .user_by_email("admin@example.COM")
                .map(|u| u.id.as_str()),
            Some("u1")
        );
        assert_eq!(snapshot.user("u1").map(|u| u.role.as_str()), Some("admin"));
        let debug = format!("{snapshot:?}");
        assert!(!debug.contains("sk-upstream-secret"), "Debug leaks the key");
    }

    #[test]
    fn open_refuses_a_broken_file_naming_line_and_column() {
        let (_dir, home, key) = setup();
        rewrite(
            &home.config_file(ConfigKind::Models),
            "{\n  \"models\": [\n    {\"id\": \"g\", \"provider\": \"gemni\", \"endpoint\": \"x\", \"upstream_model\": \"g\"}\n  ]\n}\n",
        );
        let error = ConfigStore::open(&home, key).expect_err("broken models.json");
        let message = error.to_string();
        assert!(message.contains("models.json:3:"), "{message}");
        assert!(message.contains("unknown variant `gemni`"), "{message}");
    }

    #[test]
    fn cross_file_validation_names_the_file_and_entry() {
        let key = MasterKey::generate();
        let check = |draft: Draft, expected: &str| {
            let error = Snapshot::build(draft, &key).expect_err(expected);
            assert_eq!(error.to_string(), expected);
        };
        let model = |id: &str| -> ModelConfig {
            serde_json::from_str(&model_json(id)).expect("model json")
        };
        let project = |id: &str, slug: &str| -> Project {
            serde_json::from_str(&format!(
                r#"{{"id": "{id}", "name": "{id}", "slug": "{slug}"}}"#
            ))
            .expect("project json")
        };

        let mut draft = Draft::default();
        draft.models.models = vec![model("a"), model("a")];
        check(draft, "config/models.json: model `a`: duplicate model id");

        let mut draft = Draft::default();
        draft.projects.projects = vec![project("p1", "x"), project("p2", "x")];
        check(
            draft,
            "config/projects.json: project `p2`: duplicate slug `x`",
        );

        let mut draft = Draft::default();
        let mut with_model = project("p1", "x");
        with_model.models.push(ProjectModel {
            model_id: "missing".to_owned(),
            aliases: vec![],
            routing_prompt: None,
        });
        draft.projects.projects = vec![with_model];
        check(
            draft,
            "config/projects.json: project `p1`: model `missing` is not registered in models.json",
        );

        let mut draft = Draft::default();
        let mut with_token = project("p1", "x");
        with_token.tokens.push(
            serde_json::from_str(r#"{"id": "t1", "hash": "abc", "snippet": "s"}"#)
                .expect("token json"),
        );
        draft.projects.projects = vec![with_token];
        check(
            draft,
            "config/projects.json: project `p1`, token `t1`: hash must be 64 hexadecimal characters (SHA-256)",
        );

        let draft = Draft {
            users: serde_json::from_str(
                r#"{"users": [{"id": "u1", "email": "a@b.c", "password_hash": "x", "role": "admin"},
                              {"id": "u2", "email": "A@B.C", "password_hash": "x", "role": "viewer"}]}"#,
            )
            .expect("users json"),
            ..Draft::default()
        };
        check(draft, "config/users.json: user `A@B.C`: duplicate email");

        let mut draft = Draft::default();
        let mut bad_key = model("a");
        bad_key.api_key = Some("env:SURELY_UNSET_TEST_API_KEY".to_owned());
        draft.models.models = vec![bad_key.clone()];
        check(
            draft,
            "config/models.json: model `a`: api_key: environment variable \
             `SURELY_UNSET_TEST_API_KEY` is not set (or not valid UTF-8)",
        );

        // The service's own variables are never readable, set or not, allowed or not.
        let mut draft = Draft::default();
        draft.settings.env_allow_list = vec!["ROUTERLY_*".to_owned(), "*_KEY".to_owned()];
        bad_key.api_key = Some("env:ROUTERLY_SECRET_KEY".to_owned());
        draft.models.models = vec![bad_key];
        check(
            draft,
            "config/models.json: model `a`: api_key: environment variable `ROUTERLY_SECRET_KEY` \
             may not be referenced: names must match the env_allow_list setting, and ROUTERLY_* \
             never does",
        );
    }

    #[tokio::test]
    async fn update_keeps_an_unseen_hand_edit_and_applies_the_change() {
        let (_dir, home, key) = setup();
        let store = ConfigStore::open(&home, key).expect("open");
        let models_path = home.config_file(ConfigKind::Models);
        let mut hand_edited: ModelsFile = files::load_json(&models_path).expect("models");
        hand_edited
            .models
            .push(serde_json::from_str(&model_json("hand")).expect("model"));
        rewrite(
            &models_path,
            &String::from_utf8(files::to_pretty_json(&hand_edited).expect("json")).expect("utf8"),
        );

        store
            .update(|draft| {
                assert!(
                    draft.models.models.iter().any(|m| m.id == "hand"),
                    "the update must see the hand edit"
                );
                draft.models.models.push(ModelConfig {
                    id: "api".to_owned(),
                    provider: ProviderKind::Anthropic,
                    endpoint: "https://api.anthropic.com".to_owned(),
                    upstream_model: "claude".to_owned(),
                    api_key: None,
                    pricing: Default::default(),
                    context_window: None,
                    capabilities: Default::default(),
                    timeouts: Default::default(),
                    api_version: None,
                    created_at: chrono::Utc::now(),
                });
                Ok::<_, std::convert::Infallible>(())
            })
            .await
            .expect("update");

        let on_disk: ModelsFile = files::load_json(&models_path).expect("models after update");
        let ids: Vec<&str> = on_disk.models.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, vec!["gpt", "hand", "api"]);
        let snapshot = store.snapshot();
        assert!(snapshot.model("hand").is_some() && snapshot.model("api").is_some());
        assert_eq!(snapshot.model_api_key("gpt"), Some("sk-upstream-secret"));
    }

    #[tokio::test]
    async fn update_writes_only_changed_files_and_refuses_invalid_results() {
        let (_dir, home, key) = setup();
        let store = ConfigStore::open(&home, key).expect("open");
        let models_path = home.config_file(ConfigKind::Models);
        let projects_path = home.config_file(ConfigKind::Projects);
        let models_before = fs::read(&models_path).expect("models");

        store
            .update(|draft| {
                draft.projects.projects[0].name = "Renamed".to_owned();
                Ok::<_, std::convert::Infallible>(())
            })
            .await
            .expect("rename");
        assert_eq!(fs::read(&models_path).expect("models"), models_before);
        let projects_text = fs::read_to_string(&projects_path).expect("projects");
        assert!(
            projects_text.contains("\"name\": \"Renamed\""),
            "{projects_text}"
        );
        assert!(projects_text.ends_with("}\n"));
        assert_eq!(
            store.snapshot().project("Renamed").map(|p| p.id.as_str()),
            Some("p1")
        );

        let error = store
            .update(|draft| {
                draft.models.models.clear();
                Ok::<_, std::convert::Infallible>(())
            })
            .await
            .expect_err("project p1 still uses gpt");
        assert!(matches!(error, UpdateError::Invalid(_)), "{error}");
        assert_eq!(fs::read(&models_path).expect("models"), models_before);
        assert!(store.snapshot().model("gpt").is_some());

        let error = store
            .update(|_draft| Err::<(), _>("no permission"))
            .await
            .expect_err("rejected");
        assert_eq!(error.to_string(), "no permission");
    }

    #[tokio::test]
    async fn a_change_that_panics_half_way_leaves_nothing_applied_and_the_store_usable() {
        let (_dir, home, key) = setup();
        let store = Arc::new(ConfigStore::open(&home, key).expect("open"));
        let projects_path = home.config_file(ConfigKind::Projects);
        let projects_before = fs::read(&projects_path).expect("projects");
        let panicking = Arc::clone(&store);
        let task = tokio::spawn(async move {
            panicking
                .update(|draft| {
                    draft.projects.projects[0].name = "Half applied".to_owned();
                    if draft.projects.projects[0].name.starts_with("Half") {
                        panic!("a bug half way through a change");
                    }
                    Ok::<_, std::convert::Infallible>(())
                })
                .await
        });
        assert!(task.await.expect_err("the change panicked").is_panic());
        assert_eq!(fs::read(&projects_path).expect("projects"), projects_before);
        assert!(store.snapshot().project("Half applied").is_none());
        // The writer lock was released: the next change goes through.
        store
            .update(|draft| {
                draft.projects.projects[0].name = "Renamed".to_owned();
                Ok::<_, std::convert::Infallible>(())
            })
            .await
            .expect("a change after the panic");
        assert!(store.snapshot().project("Renamed").is_some());
    }

    #[tokio::test]
    async fn update_refuses_to_overwrite_a_broken_hand_edit() {
        let (_dir, home, key) = setup();
        let store = ConfigStore::open(&home, key).expect("open");
        let models_path = home.config_file(ConfigKind::Models);
        rewrite(&models_path, "{\"models\": [ half-typed");
        let error = store
            .update(|draft| {
                draft.models.models.clear();
                Ok::<_, std::convert::Infallible>(())
            })
            .await
            .expect_err("broken file on disk");
        assert!(error.to_string().contains("models.json:1:"), "{error}");
        assert_eq!(
            fs::read_to_string(&models_path).expect("models"),
            "{\"models\": [ half-typed",
            "the hand edit must survive"
        );
    }

    #[tokio::test]
    async fn watcher_picks_up_hand_edits_and_keeps_the_last_good_snapshot_on_errors() {
        let (_dir, home, key) = setup();
        let store = Arc::new(ConfigStore::open(&home, key).expect("open"));
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let watcher = store.spawn_watcher(shutdown_rx);
        let models_path = home.config_file(ConfigKind::Models);

        async fn wait_for(store: &ConfigStore, what: &str, check: impl Fn(&ConfigStore) -> bool) {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
            while !check(store) {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "timed out waiting for {what}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }

        rewrite(&models_path, &models_json(&["gpt", "new"]));
        let started = tokio::time::Instant::now();
        wait_for(&store, "the new model", |store| {
            store.snapshot().model("new").is_some()
        })
        .await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "took {:?}",
            started.elapsed()
        );

        rewrite(
            &models_path,
            "{\n  \"models\": [\n    {\"id\": 1}\n  ]\n}\n",
        );
        wait_for(&store, "the reload error", |store| {
            store.last_reload_error().is_some()
        })
        .await;
        let error = store.last_reload_error().expect("error recorded");
        assert!(error.contains("models.json:3:"), "{error}");
        assert!(
            store.snapshot().model("new").is_some(),
            "last good snapshot stays"
        );

        rewrite(&models_path, &models_json(&["gpt", "fixed"]));
        wait_for(&store, "the fixed file", |store| {
            store.snapshot().model("fixed").is_some()
        })
        .await;
        assert_eq!(store.last_reload_error(), None);
        assert!(store.snapshot().model("new").is_none());

        shutdown_tx.send(true).expect("watcher listens");
        tokio::time::timeout(Duration::from_secs(2), watcher)
            .await
            .expect("watcher stops on shutdown")
            .expect("watcher does not panic");
    }
}
