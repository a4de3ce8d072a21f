//! The CLI's HTTP client and its saved sessions.
//!
//! Sessions live in the user's config directory (`$XDG_CONFIG_HOME/routerly`, else
//! `~/.config/routerly`), never in `$ROUTERLY_HOME`, keyed by an alias so several
//! servers can be used side by side.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, anyhow, bail};
use reqwest::Method;
use routerly_api::auth::{RefreshToken, Session as Granted};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A saved login to one server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    /// The server's base URL.
    pub url: String,
    /// Who logged in.
    pub email: String,
    /// The current access token.
    pub access_token: String,
    /// The current refresh token.
    pub refresh_token: String,
}

/// `sessions.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SessionsFile {
    /// The alias used when none is given.
    pub current: Option<String>,
    /// Sessions by alias.
    pub servers: BTreeMap<String, Session>,
}

/// The directory of the CLI's own files.
fn config_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").filter(|dir| !dir.is_empty()) {
        return Ok(PathBuf::from(dir).join("routerly"));
    }
    let home = std::env::var_os("HOME").context("neither XDG_CONFIG_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".config").join("routerly"))
}

impl SessionsFile {
    fn path() -> anyhow::Result<PathBuf> {
        Ok(config_dir()?.join("sessions.json"))
    }

    /// Reads the saved sessions (none yet is fine).
    pub fn load() -> anyhow::Result<Self> {
        let path = Self::path()?;
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not valid", path.display())),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                Ok(SessionsFile::default())
            }
            Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Writes the sessions, readable by the user only.
    pub fn save(&self) -> anyhow::Result<()> {
        let path = Self::path()?;
        let dir = path.parent().expect("the sessions file has a directory");
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let temporary = path.with_extension("json.tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(&temporary)
            .with_context(|| format!("cannot write {}", temporary.display()))?;
        std::io::Write::write_all(&mut file, &serde_json::to_vec_pretty(self)?)?;
        file.sync_all()?;
        std::fs::rename(&temporary, &path)?;
        Ok(())
    }

    /// Saves `session` under `alias` and makes it current.
    pub fn remember(alias: &str, session: Session) -> anyhow::Result<()> {
        let mut sessions = Self::load()?;
        sessions.servers.insert(alias.to_owned(), session);
        sessions.current = Some(alias.to_owned());
        sessions.save()
    }
}

/// A management API client: a saved session, or an admin API key (`ROUTERLY_API_KEY`).
pub struct Client {
    http: reqwest::Client,
    alias: String,
    session: Session,
    /// Set when authenticating with an admin API key instead of a session.
    api_key: Option<String>,
}

/// Environment variable holding an admin API key, used instead of a saved session.
pub const API_KEY_ENV: &str = "ROUTERLY_API_KEY";
/// Environment variable holding the server URL for [`API_KEY_ENV`].
pub const URL_ENV: &str = "ROUTERLY_URL";

/// The error body of the management API.
fn api_error_message(status: reqwest::StatusCode, body: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|value| value.pointer("/error/message"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned());
    let field = parsed
        .as_ref()
        .and_then(|value| value.pointer("/error/field"))
        .and_then(Value::as_str)
        .map(|field| format!(" (field `{field}`)"))
        .unwrap_or_default();
    format!("{message}{field} [HTTP {}]", status.as_u16())
}

/// Sends one JSON request without a session and reads the answer into the `routerly-api`
/// type the route is documented with.
pub async fn post_anonymous<T: DeserializeOwned>(
    url: &str,
    path: &str,
    body: &impl Serialize,
) -> anyhow::Result<T> {
    let request = reqwest::Client::new()
        .post(format!("{}{path}", url.trim_end_matches('/')))
        .json(body);
    read_answer(url, path, request).await
}

/// Sends one GET without a session (`/health`) and reads the answer into `T`.
pub async fn get_anonymous<T: DeserializeOwned>(url: &str, path: &str) -> anyhow::Result<T> {
    let request = reqwest::Client::new().get(format!("{}{path}", url.trim_end_matches('/')));
    read_answer(url, path, request).await
}

async fn read_answer<T: DeserializeOwned>(
    url: &str,
    path: &str,
    request: reqwest::RequestBuilder,
) -> anyhow::Result<T> {
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach Routerly at {url}"))?;
    let status = response.status();
    let bytes = response.bytes().await?;
    if !status.is_success() {
        bail!("{}", api_error_message(status, &bytes));
    }
    serde_json::from_slice(&bytes)
        .with_context(|| format!("the server's answer to {path} is not what the API documents"))
}

/// The session to save from a login, refresh, setup or password-change answer.
pub fn session_from_login(url: &str, answer: Granted) -> Session {
    Session {
        url: url.trim_end_matches('/').to_owned(),
        email: answer.user.email,
        access_token: answer.access_token,
        refresh_token: answer.refresh_token,
    }
}

impl Client {
    /// The client of the session `alias`, or the current one; with `ROUTERLY_API_KEY` set,
    /// a client of that key against `ROUTERLY_URL` (or the saved session's server).
    pub fn open(alias: Option<&str>) -> anyhow::Result<Client> {
        let sessions = SessionsFile::load()?;
        if let Some(api_key) = std::env::var(API_KEY_ENV)
            .ok()
            .filter(|key| !key.trim().is_empty())
        {
            let saved = alias
                .map(str::to_owned)
                .or(sessions.current.clone())
                .and_then(|alias| sessions.servers.get(&alias).cloned());
            let url = std::env::var(URL_ENV)
                .ok()
                .filter(|url| !url.trim().is_empty())
                .or(saved.map(|session| session.url))
                .ok_or_else(|| {
                    anyhow!("{API_KEY_ENV} is set: also set {URL_ENV} to the server's URL")
                })?;
            return Ok(Client {
                http: reqwest::Client::new(),
                alias: API_KEY_ENV.to_owned(),
                session: Session {
                    url: url.trim_end_matches('/').to_owned(),
                    email: "(api key)".to_owned(),
                    access_token: String::new(),
                    refresh_token: String::new(),
                },
                api_key: Some(api_key.trim().to_owned()),
            });
        }
        let alias = alias
            .map(str::to_owned)
            .or(sessions.current.clone())
            .ok_or_else(|| anyhow!("not logged in: run `routerly auth login --url URL --email E --password P` first, or set {API_KEY_ENV} and {URL_ENV}"))?;
        let session = sessions.servers.get(&alias).cloned().ok_or_else(|| {
            anyhow!("no saved session `{alias}`: run `routerly auth login` first")
        })?;
        Ok(Client {
            http: reqwest::Client::new(),
            alias,
            session,
            api_key: None,
        })
    }

    /// The alias of the saved session (or `ROUTERLY_API_KEY`).
    pub fn alias(&self) -> &str {
        &self.alias
    }

    /// The saved session.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Sends a DELETE; its answer (none, or the removed resource) is not read.
    pub async fn delete(&mut self, path: &str) -> anyhow::Result<()> {
        self.request(Method::DELETE, path, None).await.map(drop)
    }

    /// Sends a request; on 401 refreshes the session once and retries.
    async fn request(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        for attempt in 0..2 {
            let credential = self
                .api_key
                .as_deref()
                .unwrap_or(&self.session.access_token);
            let mut request = self
                .http
                .request(method.clone(), format!("{}{path}", self.session.url))
                .bearer_auth(credential);
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request
                .send()
                .await
                .with_context(|| format!("cannot reach Routerly at {}", self.session.url))?;
            let status = response.status();
            let bytes = response.bytes().await?;
            if status == reqwest::StatusCode::UNAUTHORIZED && attempt == 0 && self.api_key.is_none()
            {
                self.refresh().await?;
                continue;
            }
            if !status.is_success() {
                bail!("{}", api_error_message(status, &bytes));
            }
            if bytes.is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_slice(&bytes).context("the server's answer is not JSON");
        }
        unreachable!("the second attempt returns")
    }

    /// Sends a request with a typed body and reads the answer into the `routerly-api` type
    /// the route is documented with; on 401 refreshes the session once and retries.
    pub async fn call<T: serde::de::DeserializeOwned>(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&impl serde::Serialize>,
    ) -> anyhow::Result<T> {
        let body = body.map(serde_json::to_value).transpose()?;
        let answer = self.request(method, path, body.as_ref()).await?;
        serde_json::from_value(answer)
            .with_context(|| format!("the server's answer to {path} is not what the API documents"))
    }

    /// Sends a GET whose answer is streamed (an export); on 401 refreshes the session once
    /// and retries. The answer is returned unread when it succeeded.
    pub async fn download(&mut self, path: &str) -> anyhow::Result<reqwest::Response> {
        for attempt in 0..2 {
            let credential = self
                .api_key
                .as_deref()
                .unwrap_or(&self.session.access_token);
            let response = self
                .http
                .get(format!("{}{path}", self.session.url))
                .bearer_auth(credential)
                .send()
                .await
                .with_context(|| format!("cannot reach Routerly at {}", self.session.url))?;
            let status = response.status();
            if status == reqwest::StatusCode::UNAUTHORIZED && attempt == 0 && self.api_key.is_none()
            {
                self.refresh().await?;
                continue;
            }
            if !status.is_success() {
                let bytes = response.bytes().await?;
                bail!("{}", api_error_message(status, &bytes));
            }
            return Ok(response);
        }
        unreachable!("the second attempt returns")
    }

    /// Replaces the saved session with the one in `answer` (after a password change).
    pub fn adopt_session(&mut self, answer: Granted) -> anyhow::Result<()> {
        self.session = session_from_login(&self.session.url, answer);
        let mut sessions = SessionsFile::load()?;
        sessions
            .servers
            .insert(self.alias.clone(), self.session.clone());
        sessions.save()
    }

    async fn refresh(&mut self) -> anyhow::Result<()> {
        let answer = post_anonymous(
            &self.session.url,
            "/api/auth/refresh",
            &RefreshToken {
                refresh_token: self.session.refresh_token.clone(),
            },
        )
        .await
        .context("the session expired; log in again with `routerly auth login`")?;
        self.session = session_from_login(&self.session.url, answer);
        let mut sessions = SessionsFile::load()?;
        sessions
            .servers
            .insert(self.alias.clone(), self.session.clone());
        sessions.save()
    }
}
