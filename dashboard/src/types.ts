// The shapes the management API answers with. Those generated from the Rust types
// (crates/routerly-api) come from ./api-types; the rest are still kept here by hand.

export interface Pricing {
  input: number;
  output: number;
  cached_input?: number | null;
  cache_write?: number | null;
}

export interface Capabilities {
  vision?: boolean | null;
  tools?: boolean | null;
  json?: boolean | null;
  thinking?: boolean | null;
  embedding?: boolean | null;
}

export const CAPABILITY_NAMES = ['vision', 'tools', 'json', 'thinking', 'embedding'] as const;
export type CapabilityName = (typeof CAPABILITY_NAMES)[number];

export interface Model {
  id: string;
  provider: string;
  endpoint: string;
  upstream_model: string;
  api_key: string | null;
  pricing: Pricing;
  context_window: number | null;
  capabilities: Capabilities;
  created_at: string;
  /** The circuit breaker's state now (`closed`, `open`, `half_open`). */
  circuit?: string;
}

export interface CatalogueModel {
  id: string;
  pricing: Pricing;
  context_window: number | null;
  capabilities: Capabilities;
}

export interface CatalogueProvider {
  id: string;
  name: string;
  format: string;
  default_endpoint: string | null;
  models: CatalogueModel[];
}

export interface Catalogue {
  prices_as_of: string;
  note: string;
  providers: CatalogueProvider[];
}

export interface ProjectModel {
  model_id: string;
  aliases: string[];
  routing_prompt: string | null;
}

export interface ProjectToken {
  id: string;
  snippet: string;
  labels: string[];
  models: string[];
  expires_at: string | null;
  revoked_at: string | null;
  created_at: string;
}

export interface Project {
  id: string;
  name: string;
  slug: string;
  models: ProjectModel[];
  tokens: ProjectToken[];
  members: { user_id: string; role: string }[];
  created_at: string;
}

export interface Member {
  user_id: string;
  email: string | null;
  role: string;
}

export interface Totals {
  calls: number;
  errors: number;
  input_tokens: number;
  output_tokens: number;
  cached_input_tokens: number;
  total_tokens: number;
  cost_usd: number;
  avg_latency_ms: number;
  /** Calls that reached a provider (not refused by a budget, not cancelled by the client). */
  provider_calls?: number;
  /** Of those, the ones that failed (error or timeout). */
  provider_errors?: number;
  /** Calls refused by a budget before any provider was called. */
  refused?: number;
  /** Mean latency of the calls that reached a provider. */
  provider_avg_latency_ms?: number;
  /** Percentiles from the rollups' sketches (2 % accuracy); absent or null per token, user or tag. */
  p50_latency_ms?: number | null;
  p95_latency_ms?: number | null;
  avg_ttft_ms?: number;
  p50_ttft_ms?: number | null;
  p95_ttft_ms?: number | null;
}

/** A row of `GET /api/usage/by-project`. */
export interface ProjectTotals extends Totals {
  project_id: string;
}

export interface Summary extends Totals {
  by_outcome: Record<string, number>;
}

export interface TimelinePoint extends Totals {
  start: string;
}

export interface UsageRecord {
  id: string;
  timestamp: string;
  project_id: string;
  token_id: string;
  model_id: string | null;
  provider: string | null;
  surface: string;
  call_type: string;
  stream: boolean;
  input_tokens: number;
  output_tokens: number;
  cached_input_tokens: number;
  cache_write_tokens: number;
  cost_usd: number;
  input_cost_usd: number;
  output_cost_usd: number;
  latency_ms: number;
  ttft_ms: number | null;
  overhead_ms: number;
  outcome: string;
  status: number;
  error: string | null;
  trace_id: string;
  user: string | null;
  tags: string[];
  attempts?: { model_id: string; error: string; status: number | null }[];
  /** The model name the client asked for (absent in older records). */
  requested_model?: string | null;
}

export interface UsagePage {
  records: UsageRecord[];
  /** Every matching call, when the rollups know it exactly (else null: use `has_more`). */
  total: number | null;
  limit: number;
  offset: number;
  has_more: boolean;
}

export interface User {
  id: string;
  email: string;
  role: string;
  projects: { id: string; slug: string; role: string }[];
  created_at: string;
}

export interface Role {
  id: string;
  name: string;
  permissions: string[];
  builtin: boolean;
}

export interface Channel {
  id: string;
  type: 'smtp' | 'webhook';
  url?: string;
  secret_set?: boolean;
  host?: string;
  port?: number;
  tls?: string;
  username?: string | null;
  password_set?: boolean;
  from?: string;
  to?: string[];
}

export interface AuditEntry {
  id: string;
  at: string;
  actor: Record<string, unknown>;
  action: string;
  path: string;
  status: number;
  changes: unknown[];
  detail: unknown;
}

export type { Me, MeProject, Session, SetupStatus, SystemInfo, ErrorBody } from './api-types';
export type { ApiKeyView, ApiKeyList, CreateApiKey, CreatedApiKey } from './api-types';
export type { AlertList, AlertRecord, CreateLimit, LimitList, LimitUse, UpdateLimit } from './api-types';

/** One routing policy of a project, as PRODUCT.md ("Routing policies") describes it. */
export interface Policy {
  type: string;
  enabled: boolean;
  config: Record<string, unknown>;
}
