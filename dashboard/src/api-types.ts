// Generated from crates/routerly-api by `UPDATE_EXPECT=1 cargo test -p routerly-server --test api_contract`; do not edit.

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
 * The admin's password (12 characters at least).
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
 * The new password (12 characters at least).
 */
new_password: string, };

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
 * What it is for (not blank).
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

export type CircuitState = "closed" | "open" | "half_open";

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
