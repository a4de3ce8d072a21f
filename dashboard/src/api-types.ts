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

export type LimitMetric = "cost" | "calls" | "input_tokens" | "output_tokens" | "total_tokens";

export type LimitMode = "extend" | "replace" | "disable";

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
resets_at: string, };

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
