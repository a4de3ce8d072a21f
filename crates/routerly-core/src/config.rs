//! The schema of the JSON files under `$ROUTERLY_HOME/config`.
//!
//! These types are plain data: the server's store loads, validates and writes them;
//! nothing here does IO. Every field that a hand edit may leave out has a default, and
//! unknown fields are refused so that a typo is reported instead of silently ignored.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `config/settings.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on.
    pub host: String,
    /// Port to listen on.
    pub port: u16,
    /// Whether `/dashboard` is served.
    pub dashboard: bool,
    /// Log filter, such as `info` or `routerly=debug`.
    pub log_level: String,
    /// The URL people reach this service at, for links in alerts.
    pub public_url: Option<String>,
    /// Largest request body accepted on any surface, in bytes.
    pub max_body_bytes: usize,
    /// Default upstream timeouts, used where a model sets none.
    pub timeouts: Timeouts,
    /// How long shutdown waits for in-flight requests and streams.
    pub shutdown_grace_seconds: u64,
    /// Budget alert thresholds in percent.
    pub alert_thresholds: Vec<u32>,
    /// Bearer token that `GET /metrics` requires; open when absent. A secret: stored as
    /// `enc:v1:…` (encrypted under the master key) or an `env:NAME` reference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_token: Option<String>,
    /// How `routerly serve` writes its log lines (`ROUTERLY_LOG_FORMAT` overrides it).
    pub log_format: LogFormat,
    /// IANA time zone of calendar budget windows that name none themselves.
    pub budget_time_zone: String,
    /// Output tokens a budget reservation assumes when a request sets no `max_tokens`.
    pub budget_default_output_tokens: u64,
    /// Notification channels for budget alerts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notification_channels: Vec<crate::alerts::Channel>,
    /// Whether webhooks may target loopback, private and link-local addresses.
    pub allow_private_webhooks: bool,
    /// The usage log is rotated when it grows past this many bytes (and at each new month).
    pub usage_log_rotate_bytes: u64,
    /// Environment variables that `env:NAME` secrets may name: patterns where `*` matches any
    /// run of characters. `ROUTERLY_*` variables are never readable, whatever this says.
    pub env_allow_list: Vec<String>,
    /// Rotated usage segments whose newest record is older than this many days are
    /// deleted, whole (`None`: kept forever). Rollups, and so every report, are kept.
    pub usage_retention_days: Option<u32>,
    /// Rotated usage segments whose newest record is older than this many days are
    /// gzip-compressed (`None`: never); they stay readable by every report and by `zcat`.
    pub usage_compress_after_days: Option<u32>,
    /// Usage rollups keep hour buckets for this many days, then merge them into days.
    pub usage_hourly_rollup_days: u32,
}

/// The shape of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable text.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            host: "0.0.0.0".to_owned(),
            port: 3000,
            dashboard: true,
            log_level: "info".to_owned(),
            public_url: None,
            max_body_bytes: 20 * 1024 * 1024,
            timeouts: Timeouts::default(),
            shutdown_grace_seconds: 30,
            alert_thresholds: vec![50, 80, 100],
            metrics_token: None,
            log_format: LogFormat::Text,
            budget_time_zone: "UTC".to_owned(),
            budget_default_output_tokens: 1024,
            notification_channels: Vec::new(),
            allow_private_webhooks: false,
            usage_log_rotate_bytes: 256 * 1024 * 1024,
            env_allow_list: vec!["*_API_KEY".to_owned()],
            usage_retention_days: None,
            usage_compress_after_days: Some(30),
            usage_hourly_rollup_days: 7,
        }
    }
}

/// Upstream timeouts in milliseconds; separate so long reasoning streams are not cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timeouts {
    /// Establishing the connection.
    pub connect_ms: u64,
    /// From sending the request to the response head and first event.
    pub first_token_ms: u64,
    /// Silence allowed between two stream events (or while reading a whole body).
    pub idle_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect_ms: 10_000,
            first_token_ms: 120_000,
            idle_ms: 120_000,
        }
    }
}

/// Timeouts that a model or project may override field by field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimeoutOverrides {
    /// Overrides [`Timeouts::connect_ms`].
    pub connect_ms: Option<u64>,
    /// Overrides [`Timeouts::first_token_ms`].
    pub first_token_ms: Option<u64>,
    /// Overrides [`Timeouts::idle_ms`].
    pub idle_ms: Option<u64>,
}

impl TimeoutOverrides {
    /// `base` with these overrides applied.
    pub fn apply(&self, base: Timeouts) -> Timeouts {
        Timeouts {
            connect_ms: self.connect_ms.unwrap_or(base.connect_ms),
            first_token_ms: self.first_token_ms.unwrap_or(base.first_token_ms),
            idle_ms: self.idle_ms.unwrap_or(base.idle_ms),
        }
    }
}

/// Which provider serves a model: a native adapter or a catalogue preset.
///
/// Presets (`groq`, `deepseek`, …) speak the OpenAI wire format and differ from `custom`
/// only by their default endpoint and the catalogue's knowledge of their models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenAI's API.
    #[serde(rename = "openai")]
    OpenAi,
    /// Any OpenAI-compatible endpoint.
    Custom,
    /// Anthropic's Messages API.
    Anthropic,
    /// Google's Gemini API (`generateContent`).
    Gemini,
    /// Mistral's chat API.
    Mistral,
    /// Ollama's native `/api/chat`.
    Ollama,
    /// Azure OpenAI: OpenAI's format behind deployment URLs and an `api-key` header.
    Azure,
    /// Groq (OpenAI-compatible).
    Groq,
    /// DeepSeek (OpenAI-compatible).
    #[serde(rename = "deepseek")]
    DeepSeek,
    /// xAI (OpenAI-compatible).
    #[serde(rename = "xai")]
    XAi,
    /// Together AI (OpenAI-compatible).
    Together,
    /// OpenRouter (OpenAI-compatible).
    #[serde(rename = "openrouter")]
    OpenRouter,
    /// Perplexity (OpenAI-compatible).
    Perplexity,
    /// Fireworks AI (OpenAI-compatible).
    Fireworks,
    /// A vLLM server (OpenAI-compatible).
    #[serde(rename = "vllm")]
    Vllm,
    /// LM Studio's local server (OpenAI-compatible).
    #[serde(rename = "lmstudio")]
    LmStudio,
}

impl ProviderKind {
    /// Every provider this build supports, in the order error messages list them.
    pub const ALL: [ProviderKind; 16] = [
        ProviderKind::OpenAi,
        ProviderKind::Anthropic,
        ProviderKind::Gemini,
        ProviderKind::Mistral,
        ProviderKind::Ollama,
        ProviderKind::Azure,
        ProviderKind::Custom,
        ProviderKind::Groq,
        ProviderKind::DeepSeek,
        ProviderKind::XAi,
        ProviderKind::Together,
        ProviderKind::OpenRouter,
        ProviderKind::Perplexity,
        ProviderKind::Fireworks,
        ProviderKind::Vllm,
        ProviderKind::LmStudio,
    ];

    /// The name used in config files, the API and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Custom => "custom",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Gemini => "gemini",
            ProviderKind::Mistral => "mistral",
            ProviderKind::Ollama => "ollama",
            ProviderKind::Azure => "azure",
            ProviderKind::Groq => "groq",
            ProviderKind::DeepSeek => "deepseek",
            ProviderKind::XAi => "xai",
            ProviderKind::Together => "together",
            ProviderKind::OpenRouter => "openrouter",
            ProviderKind::Perplexity => "perplexity",
            ProviderKind::Fireworks => "fireworks",
            ProviderKind::Vllm => "vllm",
            ProviderKind::LmStudio => "lmstudio",
        }
    }

    /// Parses a provider name, or says which names exist.
    pub fn parse(name: &str) -> Result<Self, String> {
        ProviderKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
            .ok_or_else(|| {
                let available: Vec<&str> = ProviderKind::ALL.iter().map(|k| k.as_str()).collect();
                format!(
                    "unknown provider `{name}`; available providers: {}",
                    available.join(", ")
                )
            })
    }

    /// The provider's base URL as its official SDK takes it; `None` when one must be given
    /// (`custom`, and `azure`, whose endpoint names the customer's own resource).
    pub fn default_endpoint(self) -> Option<&'static str> {
        crate::catalogue::provider(self).and_then(|entry| entry.default_endpoint.as_deref())
    }

    /// The wire format of the provider's chat endpoint.
    pub fn wire_format(self) -> crate::wire::WireFormat {
        use crate::wire::WireFormat;
        match self {
            ProviderKind::Anthropic => WireFormat::AnthropicMessages,
            ProviderKind::Gemini => WireFormat::GeminiGenerateContent,
            ProviderKind::Mistral => WireFormat::MistralChat,
            ProviderKind::Ollama => WireFormat::OllamaChat,
            ProviderKind::OpenAi
            | ProviderKind::Custom
            | ProviderKind::Azure
            | ProviderKind::Groq
            | ProviderKind::DeepSeek
            | ProviderKind::XAi
            | ProviderKind::Together
            | ProviderKind::OpenRouter
            | ProviderKind::Perplexity
            | ProviderKind::Fireworks
            | ProviderKind::Vllm
            | ProviderKind::LmStudio => WireFormat::OpenAiChat,
        }
    }
}

/// The `api-version` sent to Azure OpenAI when a model sets none: the newest GA version.
pub const AZURE_DEFAULT_API_VERSION: &str = "2024-10-21";

/// `config/models.json`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelsFile {
    /// Registered models.
    pub models: Vec<ModelConfig>,
}

/// A registered model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Routerly's id for the model, unique in the installation.
    pub id: String,
    /// Which provider serves it.
    pub provider: ProviderKind,
    /// Base URL as the provider's official SDK takes it.
    pub endpoint: String,
    /// The provider's own model name.
    pub upstream_model: String,
    /// The API key: `enc:v1:…` (encrypted under the master key), `env:NAME`, or absent.
    #[serde(default)]
    pub api_key: Option<String>,
    /// Prices in USD per million tokens.
    #[serde(default)]
    pub pricing: Pricing,
    /// Context window in tokens.
    #[serde(default)]
    pub context_window: Option<u64>,
    /// What the model can do; `None` means unknown.
    #[serde(default)]
    pub capabilities: Capabilities,
    /// Per-model timeout overrides.
    #[serde(default)]
    pub timeouts: TimeoutOverrides,
    /// Azure OpenAI's `api-version`; [`AZURE_DEFAULT_API_VERSION`] when absent. Other
    /// providers ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// When it was registered.
    #[serde(default = "Utc::now")]
    pub created_at: DateTime<Utc>,
}

/// Prices in USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Pricing {
    /// Uncached input tokens.
    pub input: f64,
    /// Output tokens.
    pub output: f64,
    /// Input tokens read from cache; the input price when absent.
    pub cached_input: Option<f64>,
    /// Input tokens written to cache; the input price when absent.
    pub cache_write: Option<f64>,
    /// Higher prices for calls whose prompt is longer than a threshold (Gemini Pro and
    /// long-context Claude price this way); absent for flat prices.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub long_context: Option<PriceTier>,
}

/// The prices of a call whose prompt has more than `above_input_tokens` tokens; they
/// replace the base prices for the whole call, as the providers bill it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceTier {
    /// The prompt length (all input tokens) above which this tier applies.
    pub above_input_tokens: u64,
    /// Uncached input tokens.
    pub input: f64,
    /// Output tokens.
    pub output: f64,
    /// Cached input tokens; the tier's input price when absent.
    #[serde(default)]
    pub cached_input: Option<f64>,
    /// Cache-write tokens; the tier's input price when absent.
    #[serde(default)]
    pub cache_write: Option<f64>,
}

/// Capability flags; `None` means unknown, which never excludes a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Capabilities {
    /// Accepts images.
    pub vision: Option<bool>,
    /// Calls tools.
    pub tools: Option<bool>,
    /// JSON mode and schemas.
    pub json: Option<bool>,
    /// Extended thinking.
    pub thinking: Option<bool>,
    /// Embeddings.
    pub embedding: Option<bool>,
}

/// `config/projects.json`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProjectsFile {
    /// Projects.
    pub projects: Vec<Project>,
}

/// A project: the unit that owns tokens, models and (later) budgets and policies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Project {
    /// Stable id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// URL-friendly unique name.
    pub slug: String,
    /// The project's models, in routing order.
    #[serde(default)]
    pub models: Vec<ProjectModel>,
    /// Access tokens.
    #[serde(default)]
    pub tokens: Vec<ProjectToken>,
    /// Members and their project roles.
    #[serde(default)]
    pub members: Vec<ProjectMember>,
    /// Project-wide timeout overrides.
    #[serde(default)]
    pub timeouts: TimeoutOverrides,
    /// Routing policies, in order of importance, and the retry count.
    #[serde(default)]
    pub routing: crate::routing::RoutingConfig,
    /// When it was created.
    #[serde(default = "Utc::now")]
    pub created_at: DateTime<Utc>,
}

/// A model as a project uses it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectModel {
    /// The registered model's id.
    pub model_id: String,
    /// Other names clients may use for it in this project.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// What this model is good at, for the `llm` routing policy.
    #[serde(default)]
    pub routing_prompt: Option<String>,
}

/// A project access token, stored only as a hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectToken {
    /// Stable id, used to revoke it and in usage records.
    pub id: String,
    /// Hex SHA-256 of the full token.
    pub hash: String,
    /// A short visible part, such as `sk-lr-AbCd…wXyZ`.
    pub snippet: String,
    /// Free-form labels.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Model ids this token may use; empty means all of the project's.
    #[serde(default)]
    pub models: Vec<String>,
    /// When it stops working.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked; a revoked token is refused at once.
    #[serde(default)]
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it was created.
    #[serde(default = "Utc::now")]
    pub created_at: DateTime<Utc>,
}

/// A user's role inside one project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectMember {
    /// The user's id.
    pub user_id: String,
    /// `viewer`, `editor` or `admin`.
    pub role: String,
}

/// `config/users.json`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UsersFile {
    /// Dashboard and CLI users.
    pub users: Vec<User>,
}

/// A person who logs in to the dashboard or CLI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// Stable id.
    pub id: String,
    /// Login name.
    pub email: String,
    /// PHC-format password hash (argon2id).
    pub password_hash: String,
    /// Global role: `admin`, `operator`, `viewer` or a custom role id.
    pub role: String,
    /// When they were created.
    #[serde(default = "Utc::now")]
    pub created_at: DateTime<Utc>,
}

/// `config/roles.json`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RolesFile {
    /// Custom roles.
    pub roles: Vec<CustomRole>,
}

/// A custom role: a named set of permissions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomRole {
    /// Stable id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Permissions such as `project:read`.
    pub permissions: Vec<String>,
}
