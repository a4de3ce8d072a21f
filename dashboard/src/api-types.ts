// Generated from crates/routerly-api by `UPDATE_EXPECT=1 cargo test -p routerly-server --test it api_contract`; do not edit.

export type ErrorCode = "invalid_request" | "unauthenticated" | "forbidden" | "not_found" | "conflict" | "method_not_allowed" | "payload_too_large" | "request_timeout" | "rate_limited" | "delivery_failed" | "internal_error" | "unavailable";

export type ErrorDetail = { 
/**
 * The kind of error.
 */
code: ErrorCode, 
/**
 * In words, for a person.
 */
message: string, 
/**
 * The path of the value at fault (`pricing.input`), when one is.
 */
field: string | null, };

export type ErrorBody = { 
/**
 * What went wrong.
 */
error: ErrorDetail, };

export type LogFormat = "text" | "json";

export type UpstreamTimeouts = { 
/**
 * Establishing the connection.
 */
connect_ms: bigint, 
/**
 * From sending the request to the response head and first event.
 */
first_token_ms: bigint, 
/**
 * Silence allowed between two stream events (or while reading a whole body).
 */
idle_ms: bigint, };

export type ConnectionLimits = { 
/**
 * Time a connection may take to send a whole request head, counted from the moment it
 * waits for one (also the idle keep-alive timeout); 100 ms to 1 hour.
 */
header_timeout_ms: bigint, 
/**
 * Longest silence while a request body arrives; 100 ms to 1 hour.
 */
body_timeout_ms: bigint, 
/**
 * Connections served at once; further ones wait in the kernel's accept queue.
 */
max_connections: number, 
/**
 * Bytes of request bodies held in memory at once; at least `max_body_bytes`.
 */
body_memory_bytes: number, 
/**
 * Password hashes computed at once (1 to 256).
 */
password_hashing_concurrency: number, 
/**
 * Password checks that may wait for a hashing slot (0 to 100,000).
 */
password_hashing_queue: number, };

export type SettingsView = { 
/**
 * The address to listen on.
 */
host: string, 
/**
 * The port to listen on.
 */
port: number, 
/**
 * Whether `/dashboard` is served.
 */
dashboard: boolean, 
/**
 * The log filter (`info`, `debug`, `routerly=debug,info`, …).
 */
log_level: string, 
/**
 * The shape of log lines.
 */
log_format: LogFormat, 
/**
 * The address people reach Routerly at, for links in alerts.
 */
public_url: string | null, 
/**
 * The largest request body on `/v1` (1 KiB to 1 GiB).
 */
max_body_bytes: number, 
/**
 * Upstream timeouts, unless a model or project overrides them.
 */
timeouts: UpstreamTimeouts, 
/**
 * Seconds live requests get to finish on SIGTERM (0 to 3600).
 */
shutdown_grace_seconds: bigint, 
/**
 * Percentages of a limit that send an alert (at most 32, each 1 to 1000).
 */
alert_thresholds: Array<number>, 
/**
 * Whether `/metrics` needs a bearer token (the token is never shown).
 */
metrics_token_set: boolean, 
/**
 * The time zone of daily, weekly and monthly budget windows (an IANA name).
 */
budget_time_zone: string, 
/**
 * Output tokens assumed for a budget reservation when a call names no limit.
 */
budget_default_output_tokens: bigint, 
/**
 * Whether webhooks may target loopback, private and link-local addresses.
 */
allow_private_webhooks: boolean, 
/**
 * Size at which the usage log is rotated into a segment.
 */
usage_log_rotate_bytes: bigint, 
/**
 * Patterns of environment variable names that `env:NAME` secrets may read.
 */
env_allow_list: Array<string>, 
/**
 * Days raw usage records are kept; `null`: for ever.
 */
usage_retention_days: number | null, 
/**
 * Days after which rotated usage segments are compressed; `null`: never.
 */
usage_compress_after_days: number | null, 
/**
 * Days of hourly usage rollups before they are kept by day only.
 */
usage_hourly_rollup_days: number, 
/**
 * How connections and request bodies are bounded.
 */
connections: ConnectionLimits, 
/**
 * Proxies (addresses or CIDR blocks) whose forwarding headers are believed.
 */
trusted_proxies: Array<string>, };

export type UpstreamTimeoutsChange = { 
/**
 * Establishing the connection.
 */
connect_ms?: bigint, 
/**
 * From sending the request to the response head and first event.
 */
first_token_ms?: bigint, 
/**
 * Silence allowed between two stream events.
 */
idle_ms?: bigint, };

export type ConnectionLimitsChange = { 
/**
 * See [`ConnectionLimits::header_timeout_ms`].
 */
header_timeout_ms?: bigint, 
/**
 * See [`ConnectionLimits::body_timeout_ms`].
 */
body_timeout_ms?: bigint, 
/**
 * See [`ConnectionLimits::max_connections`].
 */
max_connections?: number, 
/**
 * See [`ConnectionLimits::body_memory_bytes`].
 */
body_memory_bytes?: number, 
/**
 * See [`ConnectionLimits::password_hashing_concurrency`].
 */
password_hashing_concurrency?: number, 
/**
 * See [`ConnectionLimits::password_hashing_queue`].
 */
password_hashing_queue?: number, };

export type UpdateSettings = { 
/**
 * See [`SettingsView::host`] (not blank).
 */
host?: string, 
/**
 * See [`SettingsView::port`] (1 to 65535).
 */
port?: number, 
/**
 * See [`SettingsView::dashboard`].
 */
dashboard?: boolean, 
/**
 * See [`SettingsView::log_level`] (not blank).
 */
log_level?: string, 
/**
 * See [`SettingsView::log_format`].
 */
log_format?: LogFormat, 
/**
 * An `http(s)://` URL; `null` clears it.
 */
public_url?: string | null, 
/**
 * See [`SettingsView::max_body_bytes`].
 */
max_body_bytes?: number, 
/**
 * See [`SettingsView::timeouts`].
 */
timeouts?: UpstreamTimeoutsChange, 
/**
 * See [`SettingsView::shutdown_grace_seconds`].
 */
shutdown_grace_seconds?: bigint, 
/**
 * See [`SettingsView::alert_thresholds`].
 */
alert_thresholds?: Array<number>, 
/**
 * The bearer token `/metrics` requires (stored sealed, never shown); `null` opens
 * `/metrics` again.
 */
metrics_token?: string | null, 
/**
 * See [`SettingsView::budget_time_zone`].
 */
budget_time_zone?: string, 
/**
 * See [`SettingsView::budget_default_output_tokens`].
 */
budget_default_output_tokens?: bigint, 
/**
 * See [`SettingsView::allow_private_webhooks`].
 */
allow_private_webhooks?: boolean, 
/**
 * See [`SettingsView::usage_log_rotate_bytes`].
 */
usage_log_rotate_bytes?: bigint, 
/**
 * See [`SettingsView::env_allow_list`] (admins only).
 */
env_allow_list?: Array<string>, 
/**
 * Days raw usage records are kept; `null`: for ever.
 */
usage_retention_days?: number | null, 
/**
 * Days after which rotated segments are compressed; `null`: never.
 */
usage_compress_after_days?: number | null, 
/**
 * See [`SettingsView::usage_hourly_rollup_days`].
 */
usage_hourly_rollup_days?: number, 
/**
 * See [`SettingsView::connections`].
 */
connections?: ConnectionLimitsChange, 
/**
 * See [`SettingsView::trusted_proxies`]: addresses or CIDR blocks.
 */
trusted_proxies?: Array<string>, };

export type SetupStatus = { 
/**
 * No user exists yet: the first admin is still to be created.
 */
needs_setup: boolean, 
/**
 * Creating the first admin from where the caller is needs the one-time setup token.
 */
setup_token_required: boolean, };

export type FirstAdmin = { 
/**
 * The admin's email address.
 */
email: string, 
/**
 * The admin's password (8 characters at least).
 */
password: string, 
/**
 * The setup token `routerly serve` printed at first start; needed from another machine.
 */
setup_token?: string | null, };

export type Login = { 
/**
 * The user's email address.
 */
email: string, 
/**
 * The user's password.
 */
password: string, };

export type RefreshToken = { 
/**
 * The refresh token of the session.
 */
refresh_token: string, };

export type Session = { 
/**
 * A short-lived bearer token for `Authorization`.
 */
access_token: string, 
/**
 * Exchanged at `POST /api/auth/refresh` for a new session; used once.
 */
refresh_token: string, 
/**
 * Always `Bearer`.
 */
token_type: string, 
/**
 * Seconds until the access token expires.
 */
expires_in: number, 
/**
 * Who is logged in.
 */
user: SessionUser, };

export type SessionUser = { 
/**
 * The user's id.
 */
id: string, 
/**
 * The user's email address.
 */
email: string, 
/**
 * The user's global role.
 */
role: string, };

export type Via = "session" | "api_key";

export type Me = { 
/**
 * The user's id (`api-key:ID` for an API key).
 */
id: string, 
/**
 * The user's email (the key's name for an API key).
 */
email: string, 
/**
 * The global role.
 */
role: string, 
/**
 * How the caller authenticated.
 */
via: Via, 
/**
 * What the global role grants everywhere (`model:read`, `project:write`, …).
 */
permissions: Array<string>, 
/**
 * Every project the caller is a member of, with what applies there.
 */
projects: Array<MeProject>, };

export type MeProject = { 
/**
 * The project's id.
 */
id: string, 
/**
 * The project's slug.
 */
slug: string, 
/**
 * The project's name.
 */
name: string, 
/**
 * The caller's role in the project: `viewer`, `editor` or `admin`.
 */
role: string, 
/**
 * What applies inside this project: the global permissions and the project role's
 * together.
 */
permissions: Array<string>, };

export type ChangePassword = { 
/**
 * The caller's password now.
 */
current_password: string, 
/**
 * The new password (8 characters at least).
 */
new_password: string, };

export type SmtpTls = "none" | "starttls" | "tls";

export type ChannelView = { "type": "smtp", 
/**
 * Stable id.
 */
id: string, 
/**
 * Server host name or address.
 */
host: string, 
/**
 * Server port.
 */
port: number, 
/**
 * Transport security.
 */
tls: SmtpTls, 
/**
 * PEM file (on the server) of extra certificate authorities to trust.
 */
ca_file: string | null, 
/**
 * Login name, if the server wants one.
 */
username: string | null, 
/**
 * Whether a password is set (it is never shown).
 */
password_set: boolean, 
/**
 * Sender address.
 */
from: string, 
/**
 * Recipients.
 */
to: Array<string>, } | { "type": "webhook", 
/**
 * Stable id.
 */
id: string, 
/**
 * Where to POST.
 */
url: string, 
/**
 * Whether deliveries are signed (the secret is never shown).
 */
secret_set: boolean, };

export type ChannelList = { 
/**
 * Every channel, in the order they were added.
 */
channels: Array<ChannelView>, };

export type CreateChannel = { "type": "smtp" } & CreateSmtpChannel | { "type": "webhook" } & CreateWebhookChannel;

export type CreateSmtpChannel = { 
/**
 * A chosen id (default: generated, `ch-…`).
 */
id?: string, 
/**
 * Server host name or address.
 */
host: string, 
/**
 * Server port.
 */
port: number, 
/**
 * Transport security (default `starttls`).
 */
tls: SmtpTls, 
/**
 * PEM file (readable on the server) of extra certificate authorities to trust.
 */
ca_file?: string, 
/**
 * Login name.
 */
username?: string, 
/**
 * Password, or `env:NAME` (admins only, names in `env_allow_list`).
 */
password?: string, 
/**
 * Sender address.
 */
from: string, 
/**
 * Recipients (each entry may hold several, comma-separated); at least one.
 */
to: Array<string>, };

export type CreateWebhookChannel = { 
/**
 * A chosen id (default: generated, `ch-…`).
 */
id?: string, 
/**
 * Where to POST: `http(s)://`; loopback, private and link-local hosts are refused
 * unless `allow_private_webhooks` is set.
 */
url: string, 
/**
 * HMAC-SHA256 key of `X-Routerly-Signature`, or `env:NAME`; unsigned when absent.
 */
secret?: string, };

export type ChannelTested = { 
/**
 * Always `true` (a failed delivery is an error answer).
 */
delivered: boolean, 
/**
 * The channel's id.
 */
channel: string, 
/**
 * The id of the `test` event sent.
 */
event_id: string, };

export type SystemInfo = { 
/**
 * Routerly's version.
 */
version: string, 
/**
 * Seconds since the service started.
 */
uptime_seconds: number, 
/**
 * The home directory (`ROUTERLY_HOME`).
 */
home: string, 
/**
 * The address the service is really listening on (`host:port`); the configured one
 * until the listener is bound.
 */
listen: string, 
/**
 * `host:port` from the settings (differs from `listen` when `--host`/`--port` or the
 * environment override them, or when port 0 picked a free port).
 */
configured_listen: string, 
/**
 * How many models are configured.
 */
models: number, 
/**
 * How many projects exist.
 */
projects: number, 
/**
 * How many users exist.
 */
users: number, 
/**
 * Whether usage records are being written.
 */
usage_writer: UsageWriter, 
/**
 * Why the last reload of a hand-edited config file failed, if it did.
 */
config_error: string | null, 
/**
 * Where the master key comes from.
 */
master_key_source: MasterKeySource, };

export type UsageWriter = "ok" | "failing";

export type MasterKeySource = "environment" | "file";

export type KeyRotated = { 
/**
 * Always true: the rotation is all or nothing.
 */
rotated: boolean, 
/**
 * How many secrets in the config files were re-encrypted under the new key.
 */
secrets_reencrypted: number, };

export type Health = { 
/**
 * Always `ok`.
 */
status: string, 
/**
 * Routerly's version.
 */
version: string, 
/**
 * Seconds since the service started.
 */
uptime: number, };

export type ApiKeyView = { 
/**
 * Stable id (`ak_…`).
 */
id: string, 
/**
 * What it is for.
 */
name: string, 
/**
 * The global role whose permissions it carries.
 */
role: string, 
/**
 * A short visible part of the key, such as `rly-ak-AbCd…wXyZ`.
 */
snippet: string, 
/**
 * Who created it (user id).
 */
created_by: string, 
/**
 * When it was created.
 */
created_at: string, 
/**
 * When it was revoked (a revoked key is refused at once); `null` while it is live.
 */
revoked_at: string | null, };

export type ApiKeyList = { 
/**
 * Every key, revoked ones included, oldest first.
 */
api_keys: Array<ApiKeyView>, };

export type CreateApiKey = { 
/**
 * What it is for (not blank, one line, at most 128 characters).
 */
name: string, 
/**
 * The global role it carries: a built-in or custom role the caller holds every
 * permission of. Absent: `admin`.
 */
role?: string, };

export type CreatedApiKey = { 
/**
 * The key, for `Authorization: Bearer` (or `ROUTERLY_API_KEY`); shown this once.
 */
key: string, 
/**
 * Stable id (`ak_…`).
 */
id: string, 
/**
 * What it is for.
 */
name: string, 
/**
 * The global role whose permissions it carries.
 */
role: string, 
/**
 * A short visible part of the key, such as `rly-ak-AbCd…wXyZ`.
 */
snippet: string, 
/**
 * Who created it (user id).
 */
created_by: string, 
/**
 * When it was created.
 */
created_at: string, 
/**
 * When it was revoked (a revoked key is refused at once); `null` while it is live.
 */
revoked_at: string | null, };

export type ProjectModelView = { 
/**
 * The registered model's id.
 */
model_id: string, 
/**
 * Other names clients may use for it in this project.
 */
aliases: Array<string>, 
/**
 * What this model is good at, for the `llm` routing policy.
 */
routing_prompt: string | null, };

export type ProjectModelList = { 
/**
 * The project's models, first tried first.
 */
models: Array<ProjectModelView>, };

export type TokenView = { 
/**
 * Stable id (`tok_…`), as usage records name it.
 */
id: string, 
/**
 * A short visible part of the token, such as `sk-lr-AbCd…wXyZ`.
 */
snippet: string, 
/**
 * Labels, for people.
 */
labels: Array<string>, 
/**
 * The project models it may use; empty: all of them.
 */
models: Array<string>, 
/**
 * When it stops working; `null`: never.
 */
expires_at: string | null, 
/**
 * When it was revoked; `null` while it is live.
 */
revoked_at: string | null, 
/**
 * When it was created.
 */
created_at: string, };

export type TokenList = { 
/**
 * Every token, revoked ones included, oldest first.
 */
tokens: Array<TokenView>, };

export type CreatedToken = { 
/**
 * The token (`sk-lr-…`), for `Authorization: Bearer`; shown this once.
 */
token: string, 
/**
 * The project it belongs to.
 */
project_id: string, 
/**
 * Stable id (`tok_…`), as usage records name it.
 */
id: string, 
/**
 * A short visible part of the token, such as `sk-lr-AbCd…wXyZ`.
 */
snippet: string, 
/**
 * Labels, for people.
 */
labels: Array<string>, 
/**
 * The project models it may use; empty: all of them.
 */
models: Array<string>, 
/**
 * When it stops working; `null`: never.
 */
expires_at: string | null, 
/**
 * When it was revoked; `null` while it is live.
 */
revoked_at: string | null, 
/**
 * When it was created.
 */
created_at: string, };

export type PolicyView = { 
/**
 * The policy type (one of `RoutingView::types`).
 */
type: string, 
/**
 * Whether it takes part in routing (default `true`).
 */
enabled: boolean, 
/**
 * The type's configuration (camelCase members, as PRODUCT.md documents each type's).
 */
config: Record<string, unknown>, };

export type RoutingView = { 
/**
 * The policies, most important first.
 */
policies: Array<PolicyView>, 
/**
 * Retries on the same model after a retryable failure, before the next candidate.
 */
retries: number, 
/**
 * Every policy type there is (in `GET`/`PUT /api/projects/{project}/policies` only).
 */
types?: Array<string>, };

export type ReplaceRouting = { 
/**
 * The policies, most important first; each type at most once.
 */
policies: Array<PolicyView>, 
/**
 * Retries per model, 0 to 10; absent: unchanged.
 */
retries?: number, };

export type ProjectView = { 
/**
 * Stable id.
 */
id: string, 
/**
 * Its name, unique.
 */
name: string, 
/**
 * Its URL-friendly name, unique.
 */
slug: string, 
/**
 * Its models in fallback order.
 */
models: Array<ProjectModelView>, 
/**
 * Its tokens.
 */
tokens: Array<TokenView>, 
/**
 * Who holds which role in it.
 */
members: Array<ProjectMemberRef>, 
/**
 * Timeouts that replace the models' and the service's for its calls.
 */
timeouts: TimeoutOverrides, 
/**
 * Its routing.
 */
routing: RoutingView, 
/**
 * Whether a translation that would leave something out answers 400 instead.
 */
strict_translation: boolean, 
/**
 * When it was created.
 */
created_at: string, };

export type ProjectMemberRef = { 
/**
 * The user's id.
 */
user_id: string, 
/**
 * `viewer`, `editor` or `admin`.
 */
role: string, };

export type ProjectList = { 
/**
 * The projects the caller may read.
 */
projects: Array<ProjectView>, };

export type CreateProject = { 
/**
 * Its name (not blank, one line, at most 128 characters), unique.
 */
name: string, 
/**
 * Its slug: lowercase letters, digits and dashes; absent: made from the name.
 */
slug?: string, 
/**
 * Timeouts for its calls.
 */
timeouts?: TimeoutOverrides, 
/**
 * Refuse translations that would leave something out (default `false`).
 */
strict_translation?: boolean, };

export type UpdateProject = { 
/**
 * A new name (not blank, one line, at most 128 characters), unique.
 */
name?: string, 
/**
 * New timeouts, replacing the old ones.
 */
timeouts?: TimeoutOverrides, 
/**
 * Refuse translations that would leave something out.
 */
strict_translation?: boolean, 
/**
 * The project's model ids in their new (fallback) order: each of them exactly once.
 */
model_order?: Array<string>, };

export type AddProjectModel = { 
/**
 * A registered model's id.
 */
model_id: string, 
/**
 * Other names for it in this project (each naming no other of its models).
 */
aliases?: Array<string>, 
/**
 * What it is good at, for the `llm` routing policy.
 */
routing_prompt?: string, };

export type UpdateProjectModel = { 
/**
 * New aliases, replacing the old ones.
 */
aliases?: Array<string>, 
/**
 * A new routing prompt; `null` or `""` clears it.
 */
routing_prompt?: string | null, };

export type CreateToken = { 
/**
 * Labels, for people: at most 32; each is trimmed and blank ones are left out.
 */
labels?: Array<string>, 
/**
 * The project models it may use; absent or empty: all of them.
 */
models?: Array<string>, 
/**
 * When it stops working (in the future); absent: never.
 */
expires_at?: string, };

export type UpdateToken = { 
/**
 * New labels: at most 32; each is trimmed and blank ones are left out.
 */
labels?: Array<string>, 
/**
 * New models (empty: all of the project's).
 */
models?: Array<string>, 
/**
 * A new expiry in the future; `null` removes it.
 */
expires_at?: string | null, };

export type MemberView = { 
/**
 * The user's id.
 */
user_id: string, 
/**
 * The user's email; `null` when the user no longer exists.
 */
email: string | null, 
/**
 * Their role in the project: `viewer`, `editor` or `admin`.
 */
role: string, };

export type MemberList = { 
/**
 * In the order they were added.
 */
members: Array<MemberView>, };

export type AddMember = { 
/**
 * The user's email or id (also accepted as `user_id`).
 */
email: string, 
/**
 * Their role: `viewer`, `editor` or `admin`, granting nothing the caller does not hold.
 */
role: string, };

export type UpdateMember = { 
/**
 * Their new role: `viewer`, `editor` or `admin`.
 */
role: string, };

export type TraceView = { 
/**
 * The call's trace id (its usage record's `trace_id`, the `x-routerly-trace-id` header).
 */
id: string, 
/**
 * The project's id.
 */
project_id: string, 
/**
 * When the call arrived.
 */
created_at: string, 
/**
 * The model name the client asked for.
 */
requested_model: string, 
/**
 * Candidates after the token's models and the model-level budgets, in configured order.
 */
candidates: Array<string>, 
/**
 * Candidates dropped before the policies because their own limits had no room.
 */
dropped_by_budget?: Array<string>, 
/**
 * Each enabled policy, in order.
 */
policies: Array<PolicyTraceView>, 
/**
 * The final order (the fallback order), best first.
 */
ranking: Array<RankedModelView>, 
/**
 * Whether the order is an even shuffle (every policy left out).
 */
shuffled: boolean, 
/**
 * Microseconds spent choosing.
 */
routing_us: bigint, 
/**
 * Every attempt, retries included.
 */
attempts: Array<AttemptTraceView>, 
/**
 * The model that served, if any.
 */
served_by: string | null, 
/**
 * How the call ended (`success`, `error`, `timeout`, …), once it has.
 */
outcome: string | null, 
/**
 * The status returned to the client.
 */
status: number | null, };

export type PolicyTraceView = { 
/**
 * The policy type.
 */
type: string, 
/**
 * `weighted`, `uniform` (left out of the mean), or `failed` (skipped).
 */
status: string, 
/**
 * Its weight in the mean when it counted.
 */
weight: number | null, 
/**
 * Score per candidate.
 */
scores: Array<ModelScoreView>, 
/**
 * Why it failed, or what it decided (the intent, the routing model's reasons).
 */
detail?: string, 
/**
 * Microseconds it took.
 */
duration_us: bigint, };

export type ModelScoreView = { 
/**
 * The model.
 */
model: string, 
/**
 * Its score, 0 to 1.
 */
score: number, 
/**
 * Why the policy excluded it (for instance `circuit open: cooling down`).
 */
excluded?: string, };

export type RankedModelView = { 
/**
 * The model.
 */
model: string, 
/**
 * The weighted mean, when any policy counted.
 */
score: number | null, };

export type AttemptTraceView = { 
/**
 * The model.
 */
model: string, 
/**
 * 0 for the first try of this model, 1 for its first retry, …
 */
retry: number, 
/**
 * Backoff waited before this try, in milliseconds.
 */
waited_ms: number, 
/**
 * When it began, in milliseconds after the call arrived.
 */
started_ms: number, 
/**
 * How long it took until an answer or a failure, in milliseconds.
 */
duration_ms: number | null, 
/**
 * `success`, `failed`, or `rejected` (the provider refused the request itself).
 */
outcome: string, 
/**
 * The provider's status, when it answered.
 */
status: number | null, 
/**
 * What went wrong.
 */
error?: string, 
/**
 * What the translation for this model left out (the `x-routerly-dropped` header).
 */
dropped?: Array<string>, };

export type TraceList = { 
/**
 * The project's most recent traces, newest first.
 */
traces: Array<TraceView>, };

export type UserProject = { 
/**
 * The project's id.
 */
id: string, 
/**
 * The project's slug.
 */
slug: string, 
/**
 * The user's role in it: `viewer`, `editor` or `admin`.
 */
role: string, };

export type UserView = { 
/**
 * Stable id.
 */
id: string, 
/**
 * The email they log in with.
 */
email: string, 
/**
 * Their global role: `admin`, `operator`, `viewer`, `none` or a custom role's id.
 */
role: string, 
/**
 * The projects they are a member of.
 */
projects: Array<UserProject>, 
/**
 * When the user was created.
 */
created_at: string, };

export type UserList = { 
/**
 * Every user, oldest first.
 */
users: Array<UserView>, };

export type CreateUser = { 
/**
 * Their email (with an `@`, at most 254 characters), unique among users whatever its
 * case.
 */
email: string, 
/**
 * Their password (at least 8 characters).
 */
password: string, 
/**
 * The global role: a built-in or custom role, granting no permission the caller does
 * not hold. Absent: `viewer`, or `none` when `projects` is given.
 */
role?: string, 
/**
 * Project memberships: `PROJECT` (as viewer) or `PROJECT:ROLE`, the project by id, slug
 * or name.
 */
projects?: Array<string>, };

export type UpdateUser = { 
/**
 * A new email (with an `@`), unique among users whatever its case.
 */
email?: string, 
/**
 * A new password (at least 8 characters); every session of the user ends.
 */
password?: string, 
/**
 * A new global role (the last admin keeps `admin`).
 */
role?: string, 
/**
 * Memberships to add or change: `PROJECT` or `PROJECT:ROLE`.
 */
projects?: Array<string>, };

export type AuditActor = { "via": "session", 
/**
 * The user's id.
 */
user_id: string, 
/**
 * The user's email.
 */
email: string, } | { "via": "api_key", 
/**
 * The key's id (`ak_…`).
 */
api_key: string, 
/**
 * The key's name.
 */
name: string, } | { "via": "setup" };

export type AuditChange = { 
/**
 * The config file (`models.json`, `projects.json`, `settings.json`, …).
 */
file: string, 
/**
 * The entity's id; `null` for the settings, which are one entity.
 */
id: string | null, 
/**
 * The entity before the change; `null` when the change added it.
 */
before: unknown, 
/**
 * The entity after the change; `null` when the change removed it.
 */
after: unknown, };

export type AuditEntry = { 
/**
 * Its id (a UUIDv7, so ids sort by time).
 */
id: string, 
/**
 * When the change was made.
 */
at: string, 
/**
 * Who made it.
 */
actor: AuditActor, 
/**
 * The client's address (behind `trusted_proxies`, the forwarded one); absent in
 * entries written before addresses were recorded.
 */
address?: string, 
/**
 * The route, such as `PATCH /api/models/{id}`.
 */
action: string, 
/**
 * The path called, such as `/api/models/m1`.
 */
path: string, 
/**
 * The answer's HTTP status.
 */
status: number, 
/**
 * The config entities the change touched.
 */
changes: Array<AuditChange>, 
/**
 * What a change outside the config files adds (an API key created, a key rotated);
 * never a secret; `null` for a change to the config files.
 */
detail: unknown, };

export type AuditPage = { 
/**
 * The entries of this page.
 */
entries: Array<AuditEntry>, 
/**
 * Entries in the whole log.
 */
total: number, 
/**
 * The page size applied.
 */
limit: number, 
/**
 * The entries skipped.
 */
offset: number, };

export type LimitMetric = "cost" | "calls" | "input_tokens" | "output_tokens" | "total_tokens";

export type LimitMode = "extend" | "replace" | "disable";

export type LimitRefusal = { 
/**
 * When.
 */
at: string, 
/**
 * What the call needed: its estimate in the limit's metric (prompt plus `max_tokens`
 * priced at the model's prices, for cost).
 */
needed: number, };

export type LimitUse = { 
/**
 * Stable id, used to change or remove it and in alerts.
 */
id: string, 
/**
 * What it applies to: `global`, `model:ID`, `project:ID`, `project:ID/model:ID`,
 * `token:ID` or `token:ID/model:ID`.
 */
scope: string, 
/**
 * What it measures.
 */
metric: LimitMetric, 
/**
 * Over which span: a calendar window (`daily`) or a rolling one (`rolling:15m`).
 */
window: string, 
/**
 * The most allowed in one window (USD for `cost`).
 */
value: number, 
/**
 * How it combines with the levels above.
 */
mode: LimitMode, 
/**
 * IANA time zone of a calendar window; absent: the `budget_time_zone` setting.
 */
time_zone?: string, 
/**
 * Its level: `global`, `model`, `project`, `project-model`, `token` or `token-model`.
 */
level: string, 
/**
 * Used in the current window.
 */
used: number, 
/**
 * Held by calls in flight.
 */
reserved: number, 
/**
 * `used / value` in percent (0 for a zero-valued limit with no use).
 */
percent: number, 
/**
 * Start of the current window (for a rolling window: now minus its span).
 */
window_start: string, 
/**
 * When the window resets: the next calendar window, or when a call of one unit fits
 * again in a rolling window.
 */
resets_at: string, 
/**
 * The last call this limit refused in the current window (as seen by the replica that
 * answers); absent when it refused none. A limit whose room is less than that call's
 * `needed` is refusing calls like it, whatever its percentage.
 */
last_refusal?: LimitRefusal, };

export type LimitList = { 
/**
 * The limits the caller may see (those of the projects whose usage it may read; global
 * and model limits to callers who may read every project's usage).
 */
limits: Array<LimitUse>, };

export type CreateLimit = { 
/**
 * A chosen id (absent: generated, `lim-…`).
 */
id?: string, 
/**
 * What it applies to; projects by id, slug or name.
 */
scope: string, 
/**
 * What it measures.
 */
metric: LimitMetric, 
/**
 * The window, calendar or rolling.
 */
window?: string, 
/**
 * A calendar window: `hourly`, `daily`, `weekly`, `monthly` or `yearly`.
 */
period?: string, 
/**
 * A rolling window's span: `30s`, `15m`, `1h`, `7d`.
 */
rolling?: string, 
/**
 * The most allowed in one window (not negative).
 */
value: number, 
/**
 * How it combines with the levels above (absent: `extend`).
 */
mode?: LimitMode, 
/**
 * IANA time zone of a calendar window.
 */
time_zone?: string, };

export type UpdateLimit = { 
/**
 * The most allowed in one window (not negative).
 */
value?: number, 
/**
 * How it combines with the levels above.
 */
mode?: LimitMode, 
/**
 * The window, calendar or rolling.
 */
window?: string, 
/**
 * A calendar window.
 */
period?: string, 
/**
 * A rolling window's span.
 */
rolling?: string, 
/**
 * IANA time zone of a calendar window.
 */
time_zone?: string, };

export type AlertKind = "budget.threshold" | "budget.exhausted" | "budget.reset";

export type DeliveryOutcome = "pending" | "delivered" | "failed";

export type AlertDelivery = { 
/**
 * The channel's id.
 */
channel: string, 
/**
 * How it went.
 */
outcome: DeliveryOutcome, 
/**
 * Attempts made so far.
 */
attempts: number, 
/**
 * When it was delivered or given up; `null` while pending.
 */
finished_at: string | null, };

export type AlertRecord = { 
/**
 * The limit's id (the limit may since have been removed).
 */
limit_id: string, 
/**
 * The limit's scope when the alert fired (`null` for alerts recorded before scopes were).
 */
scope: string | null, 
/**
 * What happened.
 */
event: AlertKind, 
/**
 * The threshold crossed, in percent (`budget.threshold` only).
 */
threshold: number | null, 
/**
 * Start of the limit's window the alert is about.
 */
window_start: string, 
/**
 * When it fired.
 */
fired_at: string, 
/**
 * The alert's sentence, as delivered (`null` for alerts recorded before messages were).
 */
message: string | null, 
/**
 * Its delivery to each channel configured when it fired (empty: none was).
 */
deliveries: Array<AlertDelivery>, };

export type AlertList = { 
/**
 * The alerts about limits the caller may see, newest first.
 */
alerts: Array<AlertRecord>, };

export type RoutingHealth = { 
/**
 * The window the counts cover, in minutes (the `health` policy's default).
 */
window_minutes: number, 
/**
 * One entry per configured model, in configuration order.
 */
models: Array<ModelHealth>, };

export type ModelHealth = { 
/**
 * The model's id.
 */
model_id: string, 
/**
 * Its circuit breaker now.
 */
circuit: CircuitState, 
/**
 * When the circuit last changed state (RFC 3339); `null` when it never opened.
 */
circuit_since: string | null, 
/**
 * Provider attempts in the window (since the circuit last closed).
 */
calls: number, 
/**
 * Of which failed: connection errors, timeouts, 401/403/404/408/409/425/429 and 5xx.
 */
failures: number, 
/**
 * The `health` policy's score from 0 to 1 (1: no recent failure).
 */
score: number, 
/**
 * Mean latency of the successful calls in the window, in milliseconds.
 */
mean_latency_ms: number | null, };

export type ConnectionTest = { 
/**
 * Whether the provider answered the call successfully.
 */
ok: boolean, 
/**
 * The provider's HTTP status, when it answered.
 */
status: number | null, 
/**
 * How long the call took, in milliseconds.
 */
latency_ms: number, 
/**
 * What happened, in words (never the provider's answer or the key).
 */
message: string, };

export type Model = { 
/**
 * Routerly's id for the model, unique in the installation.
 */
id: string, 
/**
 * Which provider serves it (`openai`, `anthropic`, `gemini`, …; see `/api/catalogue`).
 */
provider: string, 
/**
 * Base URL as the provider's official SDK takes it.
 */
endpoint: string, 
/**
 * The provider's own model name (Azure: the deployment).
 */
upstream_model: string, 
/**
 * The key masked (`sk-…wXyZ`), an `env:NAME` reference as it is, `(unreadable)` when
 * the master key cannot decrypt it, or `null` when there is none.
 */
api_key: string | null, 
/**
 * Prices in USD per million tokens.
 */
pricing: Pricing, 
/**
 * Context window in tokens, when known.
 */
context_window: number | null, 
/**
 * What the model can do.
 */
capabilities: Capabilities, 
/**
 * Timeouts that replace the service's for this model.
 */
timeouts: TimeoutOverrides, 
/**
 * Azure OpenAI's `api-version`, when one is set.
 */
api_version?: string, 
/**
 * When it was registered.
 */
created_at: string, 
/**
 * Its circuit breaker as routing sees it now; in the list only.
 */
circuit?: CircuitState, };

export type CircuitState = "closed" | "open" | "half_open";

export type ModelList = { 
/**
 * Every model, in the order they were registered.
 */
models: Array<Model>, };

export type Pricing = { 
/**
 * Uncached input tokens (absent in a request: 0).
 */
input: number, 
/**
 * Output tokens (absent in a request: 0).
 */
output: number, 
/**
 * Input tokens read from cache; the input price when `null`.
 */
cached_input?: number | null, 
/**
 * Input tokens written to cache; the input price when `null`.
 */
cache_write?: number | null, 
/**
 * Higher prices for calls whose prompt is longer than a threshold; absent for flat
 * prices.
 */
long_context?: PriceTier, };

export type PriceTier = { 
/**
 * The prompt length (all input tokens) above which this tier applies.
 */
above_input_tokens: number, 
/**
 * Uncached input tokens.
 */
input: number, 
/**
 * Output tokens.
 */
output: number, 
/**
 * Cached input tokens; the tier's input price when absent.
 */
cached_input: number | null, 
/**
 * Cache-write tokens; the tier's input price when absent.
 */
cache_write: number | null, };

export type Capabilities = { 
/**
 * Accepts images.
 */
vision?: boolean | null, 
/**
 * Calls tools.
 */
tools?: boolean | null, 
/**
 * JSON mode and schemas.
 */
json?: boolean | null, 
/**
 * Extended thinking.
 */
thinking?: boolean | null, 
/**
 * Embeddings.
 */
embedding?: boolean | null, };

export type TimeoutOverrides = { 
/**
 * Connecting to the provider.
 */
connect_ms?: number | null, 
/**
 * Waiting for the first token.
 */
first_token_ms?: number | null, 
/**
 * Waiting between two chunks of a stream.
 */
idle_ms?: number | null, };

export type CreateModel = { 
/**
 * Routerly's id: letters, digits and `- _ . : / @`, at most 128, not `auto`.
 */
id: string, 
/**
 * Which provider serves it (see `/api/catalogue`).
 */
provider: string, 
/**
 * Base URL (`http(s)://…`); absent or blank: the provider's default (`custom`,
 * `azure` and the local servers have none: they need one).
 */
endpoint?: string, 
/**
 * The provider key, or `env:NAME` to read it from the service's environment; stored
 * encrypted.
 */
api_key?: string, 
/**
 * The provider's own model name; absent or blank: the id.
 */
upstream_model?: string, 
/**
 * Prices that replace the catalogue's, field by field.
 */
pricing?: PricingOverride, 
/**
 * Context window in tokens; absent: the catalogue's.
 */
context_window?: number, 
/**
 * Capabilities that replace the catalogue's, flag by flag.
 */
capabilities?: Capabilities, 
/**
 * Timeouts that replace the service's.
 */
timeouts?: TimeoutOverrides, 
/**
 * Azure OpenAI's `api-version`.
 */
api_version?: string, };

export type PricingOverride = { 
/**
 * Uncached input tokens.
 */
input?: number | null, 
/**
 * Output tokens.
 */
output?: number | null, 
/**
 * Input tokens read from cache.
 */
cached_input?: number | null, 
/**
 * Input tokens written to cache.
 */
cache_write?: number | null, 
/**
 * Long-prompt prices.
 */
long_context?: PriceTier | null, };

export type UpdateModel = { 
/**
 * Base URL (`http(s)://…`).
 */
endpoint?: string, 
/**
 * The provider key or `env:NAME`; blank removes the key.
 */
api_key?: string, 
/**
 * The provider's own model name (not blank).
 */
upstream_model?: string, 
/**
 * Prices.
 */
pricing?: Pricing, 
/**
 * Context window in tokens.
 */
context_window?: number, 
/**
 * Capabilities.
 */
capabilities?: Capabilities, 
/**
 * Timeouts.
 */
timeouts?: TimeoutOverrides, 
/**
 * Azure OpenAI's `api-version`; blank removes it.
 */
api_version?: string, };

export type ModelKey = { 
/**
 * The key, an `env:NAME` reference as it is (never its value), or `null` when there is
 * none.
 */
api_key: string | null, 
/**
 * Where the key is kept; `null` when there is none.
 */
source: KeySource | null, };

export type KeySource = "env" | "encrypted";

export type Catalogue = { 
/**
 * When the prices were taken from the providers' price lists.
 */
prices_as_of: string, 
/**
 * A word on what the prices mean.
 */
note: string, 
/**
 * Every provider, in the order the CLI and dashboard list them.
 */
providers: Array<CatalogueProvider>, };

export type CatalogueProvider = { 
/**
 * The provider's name in configs, the API and the CLI.
 */
id: string, 
/**
 * Its display name.
 */
name: string, 
/**
 * The wire format of its chat endpoint (`openai_chat`, `anthropic_messages`, …).
 */
format: string, 
/**
 * Its base URL as its official SDK takes it; `null` when each user has their own.
 */
default_endpoint: string | null, 
/**
 * Another provider whose model list prices this one's (Azure deploys OpenAI's models).
 */
prices_like?: string, 
/**
 * Models it is known to serve.
 */
models: Array<CatalogueModel>, };

export type CatalogueModel = { 
/**
 * The provider's own model name.
 */
id: string, 
/**
 * Prices in USD per million tokens.
 */
pricing: Pricing, 
/**
 * Context window in tokens.
 */
context_window: number | null, 
/**
 * What it can do.
 */
capabilities: Capabilities, };

export type RoleView = { 
/**
 * Its id (`admin`, `operator`, `viewer`, or a custom role's lowercase id).
 */
id: string, 
/**
 * Its display name.
 */
name: string, 
/**
 * Its permissions (such as `model:read`), in a fixed order.
 */
permissions: Array<string>, 
/**
 * Whether it is built in (built-in roles cannot be changed or removed).
 */
builtin: boolean, };

export type RoleList = { 
/**
 * Built-in roles first, then custom ones.
 */
roles: Array<RoleView>, 
/**
 * Every permission a role may hold.
 */
permissions: Array<string>, };

export type CreateRole = { 
/**
 * Its id: 1 to 64 lowercase letters, digits, `-` and `_`; not a built-in role's.
 */
id: string, 
/**
 * Its display name (not blank, one line, at most 128 characters).
 */
name: string, 
/**
 * At least one permission; the caller must hold each of them.
 */
permissions: Array<string>, };

export type UpdateRole = { 
/**
 * New display name (not blank, one line, at most 128 characters).
 */
name?: string, 
/**
 * New permissions, replacing the old ones (at least one; held by the caller before and
 * after the change).
 */
permissions?: Array<string>, };

export type Outcome = "success" | "error" | "timeout" | "budget_exceeded" | "cancelled";

export type Surface = "chat_completions" | "messages" | "responses" | "embeddings";

export type CallType = "completion" | "routing" | "embedding";

export type Bucket = "hour" | "day";

export type ExportFormat = "csv" | "jsonl";

export type UsageRecord = { 
/**
 * The record's id.
 */
id: string, 
/**
 * When the call started.
 */
timestamp: string, 
/**
 * The project's id.
 */
project_id: string, 
/**
 * The project token's id.
 */
token_id: string, 
/**
 * The model that answered (or was tried last); `null` when none was tried.
 */
model_id: string | null, 
/**
 * That model's provider.
 */
provider: string | null, 
/**
 * The client surface.
 */
surface: Surface, 
/**
 * What the call was for.
 */
call_type: CallType, 
/**
 * Whether the answer was streamed.
 */
stream: boolean, 
/**
 * Uncached input tokens.
 */
input_tokens: number, 
/**
 * Output tokens.
 */
output_tokens: number, 
/**
 * Input tokens read from cache.
 */
cached_input_tokens: number, 
/**
 * Input tokens written to cache.
 */
cache_write_tokens: number, 
/**
 * Cost in USD.
 */
cost_usd: number, 
/**
 * Of which the input side.
 */
input_cost_usd: number, 
/**
 * Of which the output side.
 */
output_cost_usd: number, 
/**
 * From the call's arrival to its last byte, in milliseconds.
 */
latency_ms: number, 
/**
 * Time to the first token of a stream, in milliseconds.
 */
ttft_ms: number | null, 
/**
 * Time Routerly itself spent, in milliseconds.
 */
overhead_ms: number, 
/**
 * How it ended.
 */
outcome: Outcome, 
/**
 * The HTTP status the client got.
 */
status: number, 
/**
 * Why it failed, when it did.
 */
error: string | null, 
/**
 * The id the client got in `x-routerly-trace-id`.
 */
trace_id: string, 
/**
 * The request's `user` field.
 */
user: string | null, 
/**
 * Tags from `x-routerly-tags`.
 */
tags: Array<string>, 
/**
 * Models tried before the one that answered, with why each failed.
 */
attempts?: Array<Attempt>, 
/**
 * The model the client asked for, when routing served another.
 */
requested_model?: string, };

export type Attempt = { 
/**
 * The model.
 */
model_id: string, 
/**
 * Why it failed.
 */
error: string, 
/**
 * The provider's HTTP status, when it answered.
 */
status: number | null, };

export type UsagePage = { 
/**
 * The records.
 */
records: Array<UsageRecord>, 
/**
 * How many records match, when the rollups can say it exactly; else `null`.
 */
total: number | null, 
/**
 * The page size.
 */
limit: number, 
/**
 * Records skipped.
 */
offset: number, 
/**
 * Whether more records follow this page.
 */
has_more: boolean, };

export type UsageTotals = { 
/**
 * Calls.
 */
calls: number, 
/**
 * Calls that did not succeed.
 */
errors: number, 
/**
 * Calls that reached a provider (not refused by a budget, not cancelled).
 */
provider_calls: number, 
/**
 * Of those, the ones that failed (error or timeout).
 */
provider_errors: number, 
/**
 * Calls refused by a budget before any provider was called.
 */
refused: number, 
/**
 * Mean latency of the calls that reached a provider (ms).
 */
provider_avg_latency_ms: number, 
/**
 * Calls per outcome (outcomes without calls left out).
 */
by_outcome: Partial<Record<Outcome, number>>, 
/**
 * Uncached input tokens.
 */
input_tokens: number, 
/**
 * Output tokens.
 */
output_tokens: number, 
/**
 * Input tokens read from cache.
 */
cached_input_tokens: number, 
/**
 * Input tokens written to cache.
 */
cache_write_tokens: number, 
/**
 * Input plus output tokens.
 */
total_tokens: number, 
/**
 * Cost in USD.
 */
cost_usd: number, 
/**
 * Of which the input side.
 */
input_cost_usd: number, 
/**
 * Of which the output side.
 */
output_cost_usd: number, 
/**
 * Mean latency of every call (ms).
 */
avg_latency_ms: number, 
/**
 * Median latency (ms) of the calls that reached a provider (budget refusals and
 * cancellations left out, as in `provider_avg_latency_ms`), from sketches with 2 %
 * accuracy; `null` where there is none.
 */
p50_latency_ms: number | null, 
/**
 * 95th percentile latency (ms) of the calls that reached a provider; `null` where
 * there is none.
 */
p95_latency_ms: number | null, 
/**
 * Mean time to first token of streams (ms).
 */
avg_ttft_ms: number, 
/**
 * Median time to first token (ms) of the calls that reached a provider; `null` where
 * there is none.
 */
p50_ttft_ms: number | null, 
/**
 * 95th percentile time to first token (ms) of the calls that reached a provider;
 * `null` where there is none.
 */
p95_ttft_ms: number | null, };

export type UsageSummary = { 
/**
 * Start of the range the totals cover; `null`: from the first record.
 */
from: string | null, 
/**
 * End of the range (exclusive); `null`: up to now.
 */
to: string | null, 
/**
 * Calls.
 */
calls: number, 
/**
 * Calls that did not succeed.
 */
errors: number, 
/**
 * Calls that reached a provider (not refused by a budget, not cancelled).
 */
provider_calls: number, 
/**
 * Of those, the ones that failed (error or timeout).
 */
provider_errors: number, 
/**
 * Calls refused by a budget before any provider was called.
 */
refused: number, 
/**
 * Mean latency of the calls that reached a provider (ms).
 */
provider_avg_latency_ms: number, 
/**
 * Calls per outcome (outcomes without calls left out).
 */
by_outcome: Partial<Record<Outcome, number>>, 
/**
 * Uncached input tokens.
 */
input_tokens: number, 
/**
 * Output tokens.
 */
output_tokens: number, 
/**
 * Input tokens read from cache.
 */
cached_input_tokens: number, 
/**
 * Input tokens written to cache.
 */
cache_write_tokens: number, 
/**
 * Input plus output tokens.
 */
total_tokens: number, 
/**
 * Cost in USD.
 */
cost_usd: number, 
/**
 * Of which the input side.
 */
input_cost_usd: number, 
/**
 * Of which the output side.
 */
output_cost_usd: number, 
/**
 * Mean latency of every call (ms).
 */
avg_latency_ms: number, 
/**
 * Median latency (ms) of the calls that reached a provider (budget refusals and
 * cancellations left out, as in `provider_avg_latency_ms`), from sketches with 2 %
 * accuracy; `null` where there is none.
 */
p50_latency_ms: number | null, 
/**
 * 95th percentile latency (ms) of the calls that reached a provider; `null` where
 * there is none.
 */
p95_latency_ms: number | null, 
/**
 * Mean time to first token of streams (ms).
 */
avg_ttft_ms: number, 
/**
 * Median time to first token (ms) of the calls that reached a provider; `null` where
 * there is none.
 */
p50_ttft_ms: number | null, 
/**
 * 95th percentile time to first token (ms) of the calls that reached a provider;
 * `null` where there is none.
 */
p95_ttft_ms: number | null, };

export type ModelUsage = { 
/**
 * The model's id, or `(none)`.
 */
model_id: string, 
/**
 * Calls.
 */
calls: number, 
/**
 * Calls that did not succeed.
 */
errors: number, 
/**
 * Calls that reached a provider (not refused by a budget, not cancelled).
 */
provider_calls: number, 
/**
 * Of those, the ones that failed (error or timeout).
 */
provider_errors: number, 
/**
 * Calls refused by a budget before any provider was called.
 */
refused: number, 
/**
 * Mean latency of the calls that reached a provider (ms).
 */
provider_avg_latency_ms: number, 
/**
 * Calls per outcome (outcomes without calls left out).
 */
by_outcome: Partial<Record<Outcome, number>>, 
/**
 * Uncached input tokens.
 */
input_tokens: number, 
/**
 * Output tokens.
 */
output_tokens: number, 
/**
 * Input tokens read from cache.
 */
cached_input_tokens: number, 
/**
 * Input tokens written to cache.
 */
cache_write_tokens: number, 
/**
 * Input plus output tokens.
 */
total_tokens: number, 
/**
 * Cost in USD.
 */
cost_usd: number, 
/**
 * Of which the input side.
 */
input_cost_usd: number, 
/**
 * Of which the output side.
 */
output_cost_usd: number, 
/**
 * Mean latency of every call (ms).
 */
avg_latency_ms: number, 
/**
 * Median latency (ms) of the calls that reached a provider (budget refusals and
 * cancellations left out, as in `provider_avg_latency_ms`), from sketches with 2 %
 * accuracy; `null` where there is none.
 */
p50_latency_ms: number | null, 
/**
 * 95th percentile latency (ms) of the calls that reached a provider; `null` where
 * there is none.
 */
p95_latency_ms: number | null, 
/**
 * Mean time to first token of streams (ms).
 */
avg_ttft_ms: number, 
/**
 * Median time to first token (ms) of the calls that reached a provider; `null` where
 * there is none.
 */
p50_ttft_ms: number | null, 
/**
 * 95th percentile time to first token (ms) of the calls that reached a provider;
 * `null` where there is none.
 */
p95_ttft_ms: number | null, };

export type ProjectUsage = { 
/**
 * The project's id.
 */
project_id: string, 
/**
 * Calls.
 */
calls: number, 
/**
 * Calls that did not succeed.
 */
errors: number, 
/**
 * Calls that reached a provider (not refused by a budget, not cancelled).
 */
provider_calls: number, 
/**
 * Of those, the ones that failed (error or timeout).
 */
provider_errors: number, 
/**
 * Calls refused by a budget before any provider was called.
 */
refused: number, 
/**
 * Mean latency of the calls that reached a provider (ms).
 */
provider_avg_latency_ms: number, 
/**
 * Calls per outcome (outcomes without calls left out).
 */
by_outcome: Partial<Record<Outcome, number>>, 
/**
 * Uncached input tokens.
 */
input_tokens: number, 
/**
 * Output tokens.
 */
output_tokens: number, 
/**
 * Input tokens read from cache.
 */
cached_input_tokens: number, 
/**
 * Input tokens written to cache.
 */
cache_write_tokens: number, 
/**
 * Input plus output tokens.
 */
total_tokens: number, 
/**
 * Cost in USD.
 */
cost_usd: number, 
/**
 * Of which the input side.
 */
input_cost_usd: number, 
/**
 * Of which the output side.
 */
output_cost_usd: number, 
/**
 * Mean latency of every call (ms).
 */
avg_latency_ms: number, 
/**
 * Median latency (ms) of the calls that reached a provider (budget refusals and
 * cancellations left out, as in `provider_avg_latency_ms`), from sketches with 2 %
 * accuracy; `null` where there is none.
 */
p50_latency_ms: number | null, 
/**
 * 95th percentile latency (ms) of the calls that reached a provider; `null` where
 * there is none.
 */
p95_latency_ms: number | null, 
/**
 * Mean time to first token of streams (ms).
 */
avg_ttft_ms: number, 
/**
 * Median time to first token (ms) of the calls that reached a provider; `null` where
 * there is none.
 */
p50_ttft_ms: number | null, 
/**
 * 95th percentile time to first token (ms) of the calls that reached a provider;
 * `null` where there is none.
 */
p95_ttft_ms: number | null, };

export type TokenUsage = { 
/**
 * The token's id.
 */
token_id: string, 
/**
 * Calls.
 */
calls: number, 
/**
 * Calls that did not succeed.
 */
errors: number, 
/**
 * Calls that reached a provider (not refused by a budget, not cancelled).
 */
provider_calls: number, 
/**
 * Of those, the ones that failed (error or timeout).
 */
provider_errors: number, 
/**
 * Calls refused by a budget before any provider was called.
 */
refused: number, 
/**
 * Mean latency of the calls that reached a provider (ms).
 */
provider_avg_latency_ms: number, 
/**
 * Calls per outcome (outcomes without calls left out).
 */
by_outcome: Partial<Record<Outcome, number>>, 
/**
 * Uncached input tokens.
 */
input_tokens: number, 
/**
 * Output tokens.
 */
output_tokens: number, 
/**
 * Input tokens read from cache.
 */
cached_input_tokens: number, 
/**
 * Input tokens written to cache.
 */
cache_write_tokens: number, 
/**
 * Input plus output tokens.
 */
total_tokens: number, 
/**
 * Cost in USD.
 */
cost_usd: number, 
/**
 * Of which the input side.
 */
input_cost_usd: number, 
/**
 * Of which the output side.
 */
output_cost_usd: number, 
/**
 * Mean latency of every call (ms).
 */
avg_latency_ms: number, 
/**
 * Median latency (ms) of the calls that reached a provider (budget refusals and
 * cancellations left out, as in `provider_avg_latency_ms`), from sketches with 2 %
 * accuracy; `null` where there is none.
 */
p50_latency_ms: number | null, 
/**
 * 95th percentile latency (ms) of the calls that reached a provider; `null` where
 * there is none.
 */
p95_latency_ms: number | null, 
/**
 * Mean time to first token of streams (ms).
 */
avg_ttft_ms: number, 
/**
 * Median time to first token (ms) of the calls that reached a provider; `null` where
 * there is none.
 */
p50_ttft_ms: number | null, 
/**
 * 95th percentile time to first token (ms) of the calls that reached a provider;
 * `null` where there is none.
 */
p95_ttft_ms: number | null, };

export type UserUsage = { 
/**
 * The `user` field, or `(none)`.
 */
user: string, 
/**
 * Calls.
 */
calls: number, 
/**
 * Calls that did not succeed.
 */
errors: number, 
/**
 * Calls that reached a provider (not refused by a budget, not cancelled).
 */
provider_calls: number, 
/**
 * Of those, the ones that failed (error or timeout).
 */
provider_errors: number, 
/**
 * Calls refused by a budget before any provider was called.
 */
refused: number, 
/**
 * Mean latency of the calls that reached a provider (ms).
 */
provider_avg_latency_ms: number, 
/**
 * Calls per outcome (outcomes without calls left out).
 */
by_outcome: Partial<Record<Outcome, number>>, 
/**
 * Uncached input tokens.
 */
input_tokens: number, 
/**
 * Output tokens.
 */
output_tokens: number, 
/**
 * Input tokens read from cache.
 */
cached_input_tokens: number, 
/**
 * Input tokens written to cache.
 */
cache_write_tokens: number, 
/**
 * Input plus output tokens.
 */
total_tokens: number, 
/**
 * Cost in USD.
 */
cost_usd: number, 
/**
 * Of which the input side.
 */
input_cost_usd: number, 
/**
 * Of which the output side.
 */
output_cost_usd: number, 
/**
 * Mean latency of every call (ms).
 */
avg_latency_ms: number, 
/**
 * Median latency (ms) of the calls that reached a provider (budget refusals and
 * cancellations left out, as in `provider_avg_latency_ms`), from sketches with 2 %
 * accuracy; `null` where there is none.
 */
p50_latency_ms: number | null, 
/**
 * 95th percentile latency (ms) of the calls that reached a provider; `null` where
 * there is none.
 */
p95_latency_ms: number | null, 
/**
 * Mean time to first token of streams (ms).
 */
avg_ttft_ms: number, 
/**
 * Median time to first token (ms) of the calls that reached a provider; `null` where
 * there is none.
 */
p50_ttft_ms: number | null, 
/**
 * 95th percentile time to first token (ms) of the calls that reached a provider;
 * `null` where there is none.
 */
p95_ttft_ms: number | null, };

export type TagUsage = { 
/**
 * The tag.
 */
tag: string, 
/**
 * Calls.
 */
calls: number, 
/**
 * Calls that did not succeed.
 */
errors: number, 
/**
 * Calls that reached a provider (not refused by a budget, not cancelled).
 */
provider_calls: number, 
/**
 * Of those, the ones that failed (error or timeout).
 */
provider_errors: number, 
/**
 * Calls refused by a budget before any provider was called.
 */
refused: number, 
/**
 * Mean latency of the calls that reached a provider (ms).
 */
provider_avg_latency_ms: number, 
/**
 * Calls per outcome (outcomes without calls left out).
 */
by_outcome: Partial<Record<Outcome, number>>, 
/**
 * Uncached input tokens.
 */
input_tokens: number, 
/**
 * Output tokens.
 */
output_tokens: number, 
/**
 * Input tokens read from cache.
 */
cached_input_tokens: number, 
/**
 * Input tokens written to cache.
 */
cache_write_tokens: number, 
/**
 * Input plus output tokens.
 */
total_tokens: number, 
/**
 * Cost in USD.
 */
cost_usd: number, 
/**
 * Of which the input side.
 */
input_cost_usd: number, 
/**
 * Of which the output side.
 */
output_cost_usd: number, 
/**
 * Mean latency of every call (ms).
 */
avg_latency_ms: number, 
/**
 * Median latency (ms) of the calls that reached a provider (budget refusals and
 * cancellations left out, as in `provider_avg_latency_ms`), from sketches with 2 %
 * accuracy; `null` where there is none.
 */
p50_latency_ms: number | null, 
/**
 * 95th percentile latency (ms) of the calls that reached a provider; `null` where
 * there is none.
 */
p95_latency_ms: number | null, 
/**
 * Mean time to first token of streams (ms).
 */
avg_ttft_ms: number, 
/**
 * Median time to first token (ms) of the calls that reached a provider; `null` where
 * there is none.
 */
p50_ttft_ms: number | null, 
/**
 * 95th percentile time to first token (ms) of the calls that reached a provider;
 * `null` where there is none.
 */
p95_ttft_ms: number | null, };

export type UsageByModel = { 
/**
 * One row per model.
 */
models: Array<ModelUsage>, };

export type UsageByProject = { 
/**
 * One row per project.
 */
projects: Array<ProjectUsage>, };

export type UsageByToken = { 
/**
 * One row per token.
 */
tokens: Array<TokenUsage>, };

export type TokenLastUse = { 
/**
 * The token's id.
 */
token_id: string, 
/**
 * The time of its newest usage record matching the filter.
 */
last_used_at: string, };

export type UsageLastUse = { 
/**
 * One row per token that has a matching call.
 */
tokens: Array<TokenLastUse>, };

export type UsageByUser = { 
/**
 * One row per `user` field.
 */
users: Array<UserUsage>, 
/**
 * One row per tag.
 */
tags: Array<TagUsage>, };

export type TimelinePoint = { 
/**
 * When the bucket starts.
 */
start: string, 
/**
 * Calls.
 */
calls: number, 
/**
 * Calls that did not succeed.
 */
errors: number, 
/**
 * Calls that reached a provider (not refused by a budget, not cancelled).
 */
provider_calls: number, 
/**
 * Of those, the ones that failed (error or timeout).
 */
provider_errors: number, 
/**
 * Calls refused by a budget before any provider was called.
 */
refused: number, 
/**
 * Mean latency of the calls that reached a provider (ms).
 */
provider_avg_latency_ms: number, 
/**
 * Calls per outcome (outcomes without calls left out).
 */
by_outcome: Partial<Record<Outcome, number>>, 
/**
 * Uncached input tokens.
 */
input_tokens: number, 
/**
 * Output tokens.
 */
output_tokens: number, 
/**
 * Input tokens read from cache.
 */
cached_input_tokens: number, 
/**
 * Input tokens written to cache.
 */
cache_write_tokens: number, 
/**
 * Input plus output tokens.
 */
total_tokens: number, 
/**
 * Cost in USD.
 */
cost_usd: number, 
/**
 * Of which the input side.
 */
input_cost_usd: number, 
/**
 * Of which the output side.
 */
output_cost_usd: number, 
/**
 * Mean latency of every call (ms).
 */
avg_latency_ms: number, 
/**
 * Median latency (ms) of the calls that reached a provider (budget refusals and
 * cancellations left out, as in `provider_avg_latency_ms`), from sketches with 2 %
 * accuracy; `null` where there is none.
 */
p50_latency_ms: number | null, 
/**
 * 95th percentile latency (ms) of the calls that reached a provider; `null` where
 * there is none.
 */
p95_latency_ms: number | null, 
/**
 * Mean time to first token of streams (ms).
 */
avg_ttft_ms: number, 
/**
 * Median time to first token (ms) of the calls that reached a provider; `null` where
 * there is none.
 */
p50_ttft_ms: number | null, 
/**
 * 95th percentile time to first token (ms) of the calls that reached a provider;
 * `null` where there is none.
 */
p95_ttft_ms: number | null, };

export type Timeline = { 
/**
 * The bucket size.
 */
bucket: Bucket, 
/**
 * The time zone whose midnights start days.
 */
tz: string, 
/**
 * Start of the covered range; `null`: from the first record.
 */
from: string | null, 
/**
 * End of the covered range (exclusive); `null`: up to now.
 */
to: string | null, 
/**
 * The buckets that have calls.
 */
points: Array<TimelinePoint>, };
