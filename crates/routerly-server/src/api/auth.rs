//! Management sessions: passwords, signed access tokens (JWT, HS256) and rotating
//! refresh tokens, and the extractor that authenticates every `/api` call.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use argon2::password_hash::{self, Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use axum::extract::{FromRequestParts, State};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use hmac::{Hmac, Mac};
use http::request::Parts;
use rand::RngCore;
use routerly_api::auth::{
    self as api, ChangePassword, Login, Me, MeProject, RefreshToken, Session, SessionUser,
};
use routerly_core::config::Project;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub use super::rbac::Permission;
use super::rbac::{
    MEMBER_GLOBAL_PERMISSIONS, PermissionSet, ProjectRole, ProjectScope, member_role,
    role_permissions,
};
use super::{ApiError, ApiJson, ErrorCode};
use crate::net::ClientAddr;
use crate::state::App;
use crate::store::api_keys::API_KEY_PREFIX;
use crate::store::config::Snapshot;
use crate::store::redis_counters::FailureMode;
use crate::store::redis_shared::{LoginCount, SharedRedis};
use crate::store::sessions::SessionError;

/// How long an access token is valid.
pub const ACCESS_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);
/// How long a refresh token is valid.
pub const REFRESH_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// The key that signs access tokens: random, of its own (`data/session-key`), so that no secret
/// an API caller might learn (not even the master key) lets anyone forge a token; replaced
/// when the master key is rotated (access tokens then expire at once, refresh tokens keep
/// working).
pub struct SessionKeys {
    signing_key: RwLock<[u8; 32]>,
}

impl SessionKeys {
    /// Keys from 32 bytes of secret material.
    pub fn new(signing_key: [u8; 32]) -> Self {
        SessionKeys {
            signing_key: RwLock::new(signing_key),
        }
    }

    /// Signs with `signing_key` from now on.
    pub fn replace(&self, signing_key: [u8; 32]) {
        *self
            .signing_key
            .write()
            .expect("signing key lock is never poisoned") = signing_key;
    }

    fn mac(&self) -> Hmac<Sha256> {
        let key = self
            .signing_key
            .read()
            .expect("signing key lock is never poisoned");
        Hmac::<Sha256>::new_from_slice(&*key).expect("HMAC takes any key length")
    }

    /// A signed access token for `user`.
    pub fn issue_access_token(&self, claims: &AccessClaims) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize"));
        let signing_input = format!("{header}.{payload}");
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signing_input}.{signature}")
    }

    /// The claims of a valid, unexpired access token.
    pub fn verify_access_token(&self, token: &str) -> Option<AccessClaims> {
        let (signing_input, signature) = token.rsplit_once('.')?;
        let (header, payload) = signing_input.split_once('.')?;
        let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
        if header.get("alg")? != "HS256" {
            return None;
        }
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        mac.verify_slice(&signature).ok()?;
        let claims: AccessClaims =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        (claims.exp > Utc::now().timestamp()).then_some(claims)
    }
}

/// What an access token says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user's id.
    pub sub: String,
    /// The user's email.
    pub email: String,
    /// The user's global role when the token was issued (the current role is what counts).
    pub role: String,
    /// The session family, checked on every request so that logout takes effect at once.
    #[serde(default)]
    pub sid: String,
    /// Issued at (unix seconds).
    pub iat: i64,
    /// Expires at (unix seconds).
    pub exp: i64,
}

/// Largest argon2 memory a stored hash may ask for (64 MiB; new hashes use 19 MiB).
const MAX_ARGON2_BLOCKS: usize = 64 * 1024;

/// Argon2 blocks (1 KiB each) reserved for a hash's memory at least: 33 MiB, above glibc's
/// largest mmap threshold (32 MiB) and above the 16 MiB from which the binary's allocator
/// (mimalloc, see `.cargo/config.toml`) maps memory of its own, see [`argon2_into`].
const MAPPED_BLOCKS: usize = 33 * 1024;

/// Argon2 memories not in use, kept for the next hash and freed when hashing has been idle
/// (see [`crate::admission::PasswordHashing`]); at most one per hashing thread. Reused
/// because freeing 19 MiB blocks and allocating them again left them scattered over
/// glibc's arenas (a login flood grew the process by ~19 MB per hash computed).
static ARGON2_MEMORY: std::sync::Mutex<Vec<Vec<argon2::Block>>> = std::sync::Mutex::new(Vec::new());

/// Frees the argon2 memories kept for the next hash: called by a hashing thread when
/// hashing has been idle.
pub fn release_hashing_memory() {
    ARGON2_MEMORY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clear();
}

/// Argon2 of `password` and `salt` into `out`, in a reused memory.
fn argon2_into(
    argon2: &Argon2<'_>,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    let blocks = argon2.params().block_count();
    if blocks > MAX_ARGON2_BLOCKS {
        return Err(argon2::Error::MemoryTooMuch);
    }
    let pool = || {
        ARGON2_MEMORY
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    let mut memory = pool()
        .pop()
        .filter(|memory| memory.len() == blocks)
        .unwrap_or_else(|| {
            // More address space than glibc's largest mmap threshold, so the block is always
            // its own mapping, given back to the system when freed: below 32 MiB, glibc
            // raises its threshold once such a block is freed and serves the next one from
            // its arena, which keeps it (the process stayed 19 MiB larger after a login).
            // Only the pages argon2 touches become resident.
            let mut memory = Vec::with_capacity(blocks.max(MAPPED_BLOCKS));
            memory.resize(blocks, argon2::Block::default());
            memory
        });
    let result = argon2.hash_password_into_with_memory(password, salt, out, &mut memory[..]);
    pool().push(memory);
    result
}

/// Hashes a password with argon2id (the default parameters: 19 MiB, 2 passes); in the
/// PHC string format. Run it under [`crate::admission::PasswordHashing`].
pub fn hash_password(password: &str) -> Result<String, ApiError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let argon2 = Argon2::default();
    let mut salt_bytes = [0u8; 64];
    let raw_salt = salt
        .as_salt()
        .decode_b64(&mut salt_bytes)
        .map_err(ApiError::internal)?;
    let output = Output::init_with(Params::DEFAULT_OUTPUT_LEN, |out| {
        argon2_into(&argon2, password.as_bytes(), raw_salt, out)
            .map_err(|_| password_hash::Error::Crypto)
    })
    .map_err(ApiError::internal)?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(argon2.params()).map_err(ApiError::internal)?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(hash.to_string())
}

/// Whether `password` matches the stored hash (compared in constant time).
pub fn verify_password(password: &str, stored: &str) -> bool {
    let verify = || -> Option<bool> {
        let hash = PasswordHash::new(stored).ok()?;
        let algorithm = Algorithm::try_from(hash.algorithm).ok()?;
        let version = match hash.version {
            Some(version) => Version::try_from(version).ok()?,
            None => Version::default(),
        };
        let params = Params::try_from(&hash).ok()?;
        let (salt, expected) = (hash.salt?, hash.hash?);
        let mut salt_bytes = [0u8; 64];
        let raw_salt = salt.decode_b64(&mut salt_bytes).ok()?;
        let argon2 = Argon2::new(algorithm, version, params);
        let computed = Output::init_with(expected.len(), |out| {
            argon2_into(&argon2, password.as_bytes(), raw_salt, out)
                .map_err(|_| password_hash::Error::Crypto)
        })
        .ok()?;
        // `Output`'s equality is constant-time.
        Some(computed == expected)
    };
    verify().unwrap_or(false)
}

/// Checks a new password's strength.
pub fn check_new_password(password: &str) -> Result<(), ApiError> {
    if password.chars().count() < 8 {
        return Err(ApiError::invalid(
            "password",
            "the password must have at least 8 characters",
        ));
    }
    Ok(())
}

/// How a caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A dashboard or CLI session (an access token of this refresh-token family).
    Session {
        /// The session family.
        family_id: String,
    },
    /// An admin API key.
    ApiKey {
        /// The key's id.
        id: String,
    },
}

/// The authenticated caller of an `/api` route, with the permissions that apply to this
/// request. The [`super::rbac::authorize`] middleware builds it and has already checked the
/// route's declared permission before the handler runs.
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// The user's id (`api-key:ID` for an API key).
    pub user_id: String,
    /// The user's email (the key's name for an API key).
    pub email: String,
    /// The global role.
    pub role: String,
    /// Session or API key.
    pub via: Via,
    /// What the global role grants everywhere.
    pub global: PermissionSet,
    /// Project id and role, for every project the user is a member of.
    pub memberships: Vec<(String, ProjectRole)>,
    /// What applies to this request: the global permissions, plus the project role's when
    /// the route names a project.
    pub granted: PermissionSet,
}

impl AuthUser {
    /// Fails with 403 unless `permission` applies to this request.
    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        if self.granted.contains(permission) {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::Forbidden,
                format!(
                    "your role `{}` does not grant `{}`",
                    self.role,
                    permission.as_str()
                ),
            ))
        }
    }

    /// The user's role in the project with this id.
    pub fn project_role(&self, project_id: &str) -> Option<ProjectRole> {
        self.memberships
            .iter()
            .find(|(id, _)| id == project_id)
            .map(|(_, role)| *role)
    }

    /// What the user may do inside `project`.
    pub fn permissions_in(&self, project: &Project) -> PermissionSet {
        match self.project_role(&project.id) {
            Some(role) => self.global.union(role.permissions()),
            None => self.global,
        }
    }

    /// Whether the user holds `permission` inside `project`.
    pub fn can(&self, permission: Permission, project: &Project) -> bool {
        self.permissions_in(project).contains(permission)
    }

    /// Fails with 403 unless the user holds `permission` inside `project`.
    pub fn require_in(&self, permission: Permission, project: &Project) -> Result<(), ApiError> {
        if self.can(permission, project) {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::Forbidden,
                format!(
                    "you do not hold `{}` in project `{}`",
                    permission.as_str(),
                    project.slug
                ),
            ))
        }
    }

    /// The projects where the user holds `permission`.
    pub fn project_scope(&self, permission: Permission) -> ProjectScope {
        if self.global.contains(permission) {
            return ProjectScope::All;
        }
        ProjectScope::Only(
            self.memberships
                .iter()
                .filter(|(_, role)| role.permissions().contains(permission))
                .map(|(id, _)| id.clone())
                .collect(),
        )
    }

    /// The projects whose usage the user may read: every project with `report:read` or
    /// `project:read` globally, else the projects they are a member of.
    pub fn usage_scope(&self) -> ProjectScope {
        if self.global.contains(Permission::ReportRead) {
            ProjectScope::All
        } else {
            self.project_scope(Permission::ProjectRead)
        }
    }

    /// Who this is, for the audit log.
    pub fn actor(&self) -> routerly_api::audit::AuditActor {
        use routerly_api::audit::AuditActor;
        match &self.via {
            Via::Session { .. } => AuditActor::Session {
                user_id: self.user_id.clone(),
                email: self.email.clone(),
            },
            Via::ApiKey { id } => AuditActor::ApiKey {
                api_key: id.clone(),
                name: self.email.clone(),
            },
        }
    }
}

impl FromRequestParts<App> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _app: &App) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<AuthUser>().cloned().ok_or_else(|| {
            ApiError::internal(format!(
                "{} asks for a caller but is declared public in api::rbac::ROUTES",
                parts.uri.path()
            ))
        })
    }
}

/// The credential a request presents: `Authorization: Bearer …` or `x-api-key`.
fn presented_credential(headers: &http::HeaderMap) -> Option<&str> {
    if let Some(value) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
    {
        let (scheme, token) = value.trim().split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then_some(token.trim());
    }
    headers
        .get("x-api-key")
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
}

/// Authenticates a request by its access token or admin API key.
pub async fn authenticate(
    app: &App,
    headers: &http::HeaderMap,
    snapshot: &Snapshot,
) -> Result<AuthUser, ApiError> {
    let unauthenticated = |message: &str| ApiError::new(ErrorCode::Unauthenticated, message);
    let credential = presented_credential(headers)
        .filter(|credential| !credential.is_empty())
        .ok_or_else(|| unauthenticated("log in first: no access token or API key was sent"))?;
    if credential.starts_with(API_KEY_PREFIX) {
        let key = app
            .api_keys
            .find(credential.to_owned())
            .await
            .map_err(api_keys_unavailable)?
            .ok_or_else(|| unauthenticated("the API key is unknown or revoked"))?;
        let global = role_permissions(&key.role, &snapshot.roles).unwrap_or(PermissionSet::NONE);
        return Ok(AuthUser {
            user_id: format!("api-key:{}", key.id),
            email: key.name,
            role: key.role,
            via: Via::ApiKey { id: key.id },
            global,
            memberships: Vec::new(),
            granted: global,
        });
    }
    let claims = app
        .session_keys
        .verify_access_token(credential)
        .ok_or_else(|| unauthenticated("the access token is invalid or expired"))?;
    let user = snapshot
        .user(&claims.sub)
        .ok_or_else(|| unauthenticated("this user no longer exists"))?;
    // The session must be live and the caller's own: a valid token naming another user's
    // session is refused.
    if !app
        .sessions
        .family_live(claims.sid.clone(), user.id.clone())
        .await
    {
        return Err(unauthenticated(
            "this session has ended (logged out or revoked); log in again",
        ));
    }
    let memberships: Vec<(String, ProjectRole)> = snapshot
        .projects
        .projects
        .iter()
        .filter_map(|project| member_role(project, &user.id).map(|role| (project.id.clone(), role)))
        .collect();
    let mut global = role_permissions(&user.role, &snapshot.roles).unwrap_or(PermissionSet::NONE);
    if !memberships.is_empty() {
        global = global.union(MEMBER_GLOBAL_PERMISSIONS);
    }
    Ok(AuthUser {
        user_id: user.id.clone(),
        email: user.email.clone(),
        role: user.role.clone(),
        via: Via::Session {
            family_id: claims.sid,
        },
        global,
        memberships,
        granted: global,
    })
}

/// Failed logins allowed per account and client address within [`LOGIN_WINDOW`].
pub const LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS: usize = 5;
/// Failed logins allowed per client address, whatever the account, within [`LOGIN_WINDOW`].
pub const LOGIN_FAILURES_PER_ADDRESS: usize = 20;
/// The window over which failed logins are counted.
pub const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Limiter entries past which expired ones are swept out (then twice the live count).
const LOGIN_SWEEP_AT: usize = 4096;

/// Counts login attempts so that passwords cannot be guessed at speed, and so that a
/// stranger cannot lock the owner out: an attempt is counted against its account *from its
/// address* (5 per 15 minutes) and against its address (20 per 15 minutes, any account),
/// never against the account as a whole. An attempt is counted when it starts, before the
/// password is checked, so a burst of concurrent attempts gets no more verifications than
/// the limit; a successful one is uncounted, and clears its account-and-address failures.
/// In memory, or shared by every replica through Redis when it is set up
/// ([`SharedRedis`]: three replicas do not give three times the attempts); a restart costs
/// an attacker more than it gives. When Redis cannot be reached, fail-closed refuses logins
/// (503) and fail-open counts them in this replica's memory: never unlimited.
#[derive(Debug)]
pub struct LoginLimiter {
    attempts: std::sync::Mutex<LimiterState>,
    shared: Option<Arc<SharedRedis>>,
}

#[derive(Debug)]
struct LimiterState {
    attempts: HashMap<String, VecDeque<Instant>>,
    sweep_at: usize,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter::new(None)
    }
}

/// A counted login attempt; see [`LoginLimiter::begin`].
#[derive(Debug)]
#[must_use = "an attempt is settled with succeeded, failed or abandoned"]
pub struct LoginAttempt {
    keys: [String; 2],
    at: Instant,
    /// The attempt's id in Redis; `None` when counted in memory.
    shared: Option<String>,
}

/// Why [`LoginLimiter::begin`] did not count an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginRefused {
    /// The account from this address, or this address, has used up its attempts; it has
    /// room again after this long.
    TooMany(Duration),
    /// Redis cannot be reached and the failure mode is fail-closed.
    Unavailable,
}

impl LoginLimiter {
    /// A limiter counting in memory, or in `shared` when given.
    pub fn new(shared: Option<Arc<SharedRedis>>) -> Self {
        LoginLimiter {
            attempts: std::sync::Mutex::new(LimiterState {
                attempts: HashMap::new(),
                sweep_at: LOGIN_SWEEP_AT,
            }),
            shared,
        }
    }

    fn keys(email: &str, address: IpAddr) -> [(String, usize); 2] {
        // The account part is bounded, so a long email cannot grow the map's keys.
        let account: String = email.trim().to_lowercase().chars().take(320).collect();
        [
            (
                format!("{address} {account}"),
                LOGIN_FAILURES_PER_ACCOUNT_AND_ADDRESS,
            ),
            (address.to_string(), LOGIN_FAILURES_PER_ADDRESS),
        ]
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LimiterState> {
        self.attempts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts an attempt on `email` from `address`, or says why not.
    pub async fn begin(&self, email: &str, address: IpAddr) -> Result<LoginAttempt, LoginRefused> {
        let keys = Self::keys(email, address);
        let Some(shared) = &self.shared else {
            return self.begin_local(keys).map_err(LoginRefused::TooMany);
        };
        let id = uuid::Uuid::new_v4().simple().to_string();
        match shared.login_begin(&keys, &id, LOGIN_WINDOW).await {
            Ok(LoginCount::Counted) => Ok(LoginAttempt {
                keys: keys.map(|(key, _)| key),
                at: Instant::now(),
                shared: Some(id),
            }),
            Ok(LoginCount::Full(wait)) => Err(LoginRefused::TooMany(wait)),
            Err(error) => match shared.failure_mode() {
                FailureMode::Closed => {
                    tracing::error!(%error, "login refused: Redis (shared login limits) cannot be reached and ROUTERLY_REDIS_FAILURE_MODE is closed");
                    Err(LoginRefused::Unavailable)
                }
                FailureMode::Open => {
                    tracing::error!(%error, "Redis (shared login limits) cannot be reached: this login is counted by this replica only");
                    self.begin_local(keys).map_err(LoginRefused::TooMany)
                }
            },
        }
    }

    fn begin_local(&self, keys: [(String, usize); 2]) -> Result<LoginAttempt, Duration> {
        let now = Instant::now();
        let mut state = self.lock();
        if state.attempts.len() >= state.sweep_at {
            state.attempts.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|time| now.duration_since(*time) < LOGIN_WINDOW)
            });
            state.sweep_at = (state.attempts.len() * 2).max(LOGIN_SWEEP_AT);
        }
        let mut wait = Duration::ZERO;
        for (key, limit) in &keys {
            if let Some(times) = state.attempts.get_mut(key) {
                while times
                    .front()
                    .is_some_and(|time| now.duration_since(*time) >= LOGIN_WINDOW)
                {
                    times.pop_front();
                }
                if times.len() >= *limit {
                    let oldest = times[times.len() - limit];
                    wait = wait.max(LOGIN_WINDOW.saturating_sub(now.duration_since(oldest)));
                }
            }
        }
        if !wait.is_zero() {
            return Err(wait);
        }
        for (key, _) in &keys {
            state
                .attempts
                .entry(key.clone())
                .or_default()
                .push_back(now);
        }
        Ok(LoginAttempt {
            keys: keys.map(|(key, _)| key),
            at: now,
            shared: None,
        })
    }

    /// The password was wrong: the attempt stays counted.
    pub fn failed(&self, attempt: LoginAttempt) {
        drop(attempt);
    }

    /// The password was right: the attempt is uncounted, and so are the earlier failures
    /// on this account from this address (not those of the address: logging in to one's
    /// own account must not buy guesses at others).
    pub fn succeeded(&self, attempt: LoginAttempt) {
        if self.uncount_shared(&attempt, true) {
            return;
        }
        let mut state = self.lock();
        state.attempts.remove(&attempt.keys[0]);
        Self::uncount(&mut state, &attempt.keys[1], attempt.at);
    }

    /// The password was never checked (the service was busy): the attempt is uncounted.
    pub fn abandoned(&self, attempt: LoginAttempt) {
        if self.uncount_shared(&attempt, false) {
            return;
        }
        let mut state = self.lock();
        for key in &attempt.keys {
            Self::uncount(&mut state, key, attempt.at);
        }
    }

    /// Uncounts a shared attempt off the request path (and with `cleared`, the account's
    /// failures from this address); `false` for an attempt counted in memory.
    fn uncount_shared(&self, attempt: &LoginAttempt, cleared: bool) -> bool {
        let (Some(shared), Some(id)) = (&self.shared, &attempt.shared) else {
            return false;
        };
        let (shared, id, keys) = (Arc::clone(shared), id.clone(), attempt.keys.clone());
        tokio::spawn(async move {
            let [account, address] = [keys[0].as_str(), keys[1].as_str()];
            let uncounted = if cleared {
                shared.login_uncount(&[address], Some(account), &id).await
            } else {
                shared.login_uncount(&[account, address], None, &id).await
            };
            if let Err(error) = uncounted {
                tracing::warn!(%error, "cannot uncount a login attempt in Redis; it counts until the window ends");
            }
        });
        true
    }

    fn uncount(state: &mut LimiterState, key: &str, at: Instant) {
        if let Some(times) = state.attempts.get_mut(key) {
            if let Some(index) = times.iter().rposition(|time| *time == at) {
                times.remove(index);
            }
            if times.is_empty() {
                state.attempts.remove(key);
            }
        }
    }
}

fn hash_refresh_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn new_refresh_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("rt_{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Issues an access token and a refresh token in a new session family for `user_id`.
pub async fn start_session(
    app: &App,
    snapshot: &Snapshot,
    user_id: &str,
) -> Result<Session, ApiError> {
    let family_id = uuid::Uuid::new_v4().to_string();
    let refresh_token = new_refresh_token();
    let expires = Utc::now() + REFRESH_TOKEN_TTL;
    app.sessions
        .issue(
            family_id.clone(),
            hash_refresh_token(&refresh_token),
            user_id.to_owned(),
            expires,
        )
        .await
        .map_err(|error| match error {
            SessionError::Persist(_) => sessions_unavailable(error),
            error => ApiError::internal(error),
        })?;
    session_body(app, snapshot, user_id, &family_id, &refresh_token)
}

/// An API key store that cannot be read or written (PostgreSQL away in shared mode): a 503
/// the caller may retry, nothing granted; the store's own words go to the log only.
pub(crate) fn api_keys_unavailable(error: crate::store::StoreError) -> ApiError {
    tracing::error!(%error, "the admin API keys cannot be read or saved");
    ApiError::new(
        ErrorCode::Unavailable,
        "admin API keys cannot be checked right now; try again shortly",
    )
}

/// A session store that cannot be written (PostgreSQL away in shared mode): a 503 the
/// caller may retry; the store's own words go to the log only.
fn sessions_unavailable(error: SessionError) -> ApiError {
    tracing::error!(%error, "a session could not be saved");
    ApiError::new(
        ErrorCode::Unavailable,
        "sessions cannot be saved right now; try again shortly",
    )
}

fn session_body(
    app: &App,
    snapshot: &Snapshot,
    user_id: &str,
    family_id: &str,
    refresh_token: &str,
) -> Result<Session, ApiError> {
    let user = snapshot
        .users
        .users
        .iter()
        .find(|user| user.id == user_id)
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthenticated, "this user no longer exists"))?;
    let now = Utc::now().timestamp();
    let claims = AccessClaims {
        sub: user.id.clone(),
        email: user.email.clone(),
        role: user.role.clone(),
        sid: family_id.to_owned(),
        iat: now,
        exp: now + ACCESS_TOKEN_TTL.as_secs() as i64,
    };
    Ok(Session {
        access_token: app.session_keys.issue_access_token(&claims),
        refresh_token: refresh_token.to_owned(),
        token_type: "Bearer".to_owned(),
        expires_in: ACCESS_TOKEN_TTL.as_secs(),
        user: SessionUser {
            id: user.id.clone(),
            email: user.email.clone(),
            role: user.role.clone(),
        },
    })
}

/// A 429 with `retry-after`.
fn too_many(message: String, wait: Duration) -> Response {
    let seconds = wait.as_secs().max(1);
    let mut response = ApiError::new(ErrorCode::RateLimited, message).into_response();
    response
        .headers_mut()
        .insert(http::header::RETRY_AFTER, http::HeaderValue::from(seconds));
    response
}

/// The answer when password hashing is at its cap.
fn hashing_busy() -> Response {
    too_many(
        "too many logins at once; try again in a second".to_owned(),
        Duration::from_secs(1),
    )
}

/// Hashes a new password under the hashing cap (429 when it is full).
pub async fn hash_new_password(app: &App, password: String) -> Result<String, ApiError> {
    app.password_hashing
        .run(move || hash_password(&password))
        .await
        .map_err(|_| {
            ApiError::new(
                ErrorCode::RateLimited,
                "too many password checks at once; try again in a second",
            )
        })?
}

/// `POST /api/auth/login`: attempts are limited per account-and-address and per address
/// (429 with `retry-after`, see [`LoginLimiter`]), counted before the password is checked;
/// checks run under the hashing cap (429 when it is full).
#[utoipa::path(post, path = "/api/auth/login", operation_id = "login", tag = "auth", security(()),
    request_body = Login, responses((status = 200, body = Session)))]
pub async fn login(
    State(app): State<App>,
    ClientAddr(client): ClientAddr,
    ApiJson(body): ApiJson<Login>,
) -> Result<Response, ApiError> {
    let email = body.email.trim().to_owned();
    let attempt = match app.login_limiter.begin(&email, client).await {
        Ok(attempt) => attempt,
        Err(LoginRefused::Unavailable) => {
            return Err(ApiError::new(
                ErrorCode::Unavailable,
                "logins are unavailable: the shared login limits cannot be reached",
            ));
        }
        Err(LoginRefused::TooMany(wait)) => {
            tracing::warn!(address = %client, "login refused: too many failed attempts");
            return Ok(too_many(
                format!(
                    "too many failed logins; try again in {} s",
                    wait.as_secs().max(1)
                ),
                wait,
            ));
        }
    };
    let snapshot = app.store.snapshot();
    let user = snapshot.user_by_email(&email);
    // Verify against a dummy hash when the user is unknown, so timing does not tell.
    let stored = user.map(|user| user.password_hash.clone());
    let password = body.password;
    let Ok(valid) = app
        .password_hashing
        .run(move || match &stored {
            Some(stored) => verify_password(&password, stored),
            None => verify_password(&password, dummy_hash()),
        })
        .await
    else {
        app.login_limiter.abandoned(attempt);
        return Ok(hashing_busy());
    };
    match user {
        Some(user) if valid => {
            app.login_limiter.succeeded(attempt);
            Ok(axum::Json(start_session(&app, &snapshot, &user.id).await?).into_response())
        }
        _ => {
            app.login_limiter.failed(attempt);
            tracing::info!(address = %client, "login failed: wrong email or password");
            Err(ApiError::new(
                ErrorCode::Unauthenticated,
                "wrong email or password",
            ))
        }
    }
}

/// A real hash of a random password, verified when the email is unknown so that the
/// answer takes as long as for a known one.
static DUMMY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn dummy_hash() -> &'static str {
    DUMMY_HASH.get_or_init(|| {
        hash_password(&uuid::Uuid::new_v4().to_string()).expect("hashing a password works")
    })
}

/// Computes the dummy hash on a hashing thread (at start, so that the first unknown email
/// is not slower than a known one).
pub async fn prepare_dummy_hash(hashing: &crate::admission::PasswordHashing) {
    let _ = hashing.run(|| dummy_hash().len()).await;
}

/// `POST /api/auth/refresh`: rotates the refresh token; reusing an old one revokes the
/// whole session family.
#[utoipa::path(post, path = "/api/auth/refresh", operation_id = "refresh_session", tag = "auth", security(()),
    request_body = RefreshToken, responses((status = 200, body = Session)))]
pub async fn refresh(
    State(app): State<App>,
    ApiJson(body): ApiJson<RefreshToken>,
) -> Result<axum::Json<Session>, ApiError> {
    let new_token = new_refresh_token();
    let session = app
        .sessions
        .rotate(
            hash_refresh_token(&body.refresh_token),
            hash_refresh_token(&new_token),
            Utc::now() + REFRESH_TOKEN_TTL,
        )
        .await
        .map_err(|error| match error {
            SessionError::Persist(_) => sessions_unavailable(error),
            error => ApiError::new(ErrorCode::Unauthenticated, format!("{error}; log in again")),
        })?;
    let snapshot = app.store.snapshot();
    Ok(axum::Json(session_body(
        &app,
        &snapshot,
        &session.user_id,
        &session.family_id,
        &new_token,
    )?))
}

/// `POST /api/auth/logout`: ends the session family of the refresh token.
#[utoipa::path(post, path = "/api/auth/logout", operation_id = "logout", tag = "auth", security(()),
    request_body = RefreshToken, responses((status = 204, description = "The session ended (or was not open).")))]
pub async fn logout(
    State(app): State<App>,
    ApiJson(body): ApiJson<RefreshToken>,
) -> Result<http::StatusCode, ApiError> {
    if let Some(session) = app
        .sessions
        .find(hash_refresh_token(&body.refresh_token))
        .await
    {
        app.sessions
            .revoke_family(session.family_id)
            .await
            .map_err(ApiError::internal)?;
    }
    Ok(http::StatusCode::NO_CONTENT)
}

/// `GET /api/me`: who the caller is and what they may do: the global permissions, and for
/// every project they are a member of, the role and the permissions that apply there (the
/// dashboard shows only what the caller may use).
#[utoipa::path(get, path = "/api/me", operation_id = "show_me", tag = "auth",
    responses((status = 200, body = Me)))]
pub async fn me(State(app): State<App>, user: AuthUser) -> axum::Json<Me> {
    let snapshot = app.store.snapshot();
    let names = |permissions: PermissionSet| -> Vec<String> {
        permissions.names().into_iter().map(str::to_owned).collect()
    };
    let projects = user
        .memberships
        .iter()
        .filter_map(|(project_id, role)| {
            let project = snapshot.project(project_id)?;
            Some(MeProject {
                id: project.id.clone(),
                slug: project.slug.clone(),
                name: project.name.clone(),
                role: role.as_str().to_owned(),
                permissions: names(user.global.union(role.permissions())),
            })
        })
        .collect();
    let via = match &user.via {
        Via::Session { .. } => api::Via::Session,
        Via::ApiKey { .. } => api::Via::ApiKey,
    };
    axum::Json(Me {
        id: user.user_id.clone(),
        email: user.email.clone(),
        role: user.role.clone(),
        via,
        permissions: names(user.global),
        projects,
    })
}

/// `PATCH /api/me`: the same as `PUT /api/me` (a second operation, so that each has its
/// own operation id in the OpenAPI document).
#[utoipa::path(patch, path = "/api/me", tag = "auth", operation_id = "change_password_patch",
    request_body = ChangePassword, responses((status = 200, body = Session)))]
pub async fn patch_me(
    app: State<App>,
    user: AuthUser,
    body: ApiJson<ChangePassword>,
) -> Result<axum::Json<Session>, ApiError> {
    update_me(app, user, body).await
}

/// `PUT /api/me`: changes the caller's password. Every session of the user ends; the answer
/// is a new session, so the caller stays logged in.
#[utoipa::path(put, path = "/api/me", tag = "auth", operation_id = "change_password",
    request_body = ChangePassword, responses((status = 200, body = Session)))]
pub async fn update_me(
    State(app): State<App>,
    user: AuthUser,
    ApiJson(body): ApiJson<ChangePassword>,
) -> Result<axum::Json<Session>, ApiError> {
    if !matches!(user.via, Via::Session { .. }) {
        return Err(ApiError::invalid(
            "current_password",
            "an API key has no password; change a user's password with a session",
        ));
    }
    let stored = app
        .store
        .snapshot()
        .user(&user.user_id)
        .map(|stored| stored.password_hash.clone())
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthenticated, "this user no longer exists"))?;
    let current = body.current_password;
    let Ok(valid) = app
        .password_hashing
        .run(move || verify_password(&current, &stored))
        .await
    else {
        return Err(ApiError::new(
            ErrorCode::RateLimited,
            "too many password checks at once; try again in a second",
        ));
    };
    if !valid {
        return Err(ApiError::invalid(
            "current_password",
            "the current password is wrong",
        ));
    }
    check_new_password(&body.new_password)?;
    let password_hash = hash_new_password(&app, body.new_password).await?;
    let user_id = user.user_id.clone();
    super::grants::update(&app, &user, move |draft| {
        let stored = draft
            .users
            .users
            .iter_mut()
            .find(|stored| stored.id == user_id)
            .ok_or_else(|| ApiError::not_found("this user no longer exists"))?;
        stored.password_hash = password_hash;
        Ok(())
    })
    .await?;
    app.sessions
        .revoke_user(user.user_id.clone())
        .await
        .map_err(ApiError::internal)?;
    let session = start_session(&app, &app.store.snapshot(), &user.user_id).await?;
    Ok(axum::Json(session))
}
