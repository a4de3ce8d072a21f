// The shapes the management API answers with. Those generated from the Rust types
// (crates/routerly-api) come from ./api-types; the rest are still kept here by hand.

export const CAPABILITY_NAMES = ['vision', 'tools', 'json', 'thinking', 'embedding'] as const;
export type CapabilityName = (typeof CAPABILITY_NAMES)[number];

/** Projects and what hangs off them, as `/api/projects` shows them (generated). */
export type {
  ProjectView as Project,
  ProjectList,
  ProjectModelView as ProjectModel,
  ProjectModelList,
  TokenView as ProjectToken,
  TokenList,
  CreatedToken,
  CreateProject,
  UpdateProject,
  AddProjectModel,
  UpdateProjectModel,
  CreateToken,
  UpdateToken,
  RoutingView,
  PolicyView,
  ReplaceRouting,
} from './api-types';

/** A project member as `/api/projects/{project}/members` shows it (generated). */
export type { MemberView as Member, MemberList, AddMember, UpdateMember } from './api-types';

/** A user as `/api/users` shows it (generated from the API's Rust types). */
export type { UserView as User, UserList, UserProject, CreateUser, UpdateUser } from './api-types';

export type { Me, MeProject, Session, SetupStatus, SystemInfo, ErrorBody } from './api-types';
export type { ApiKeyView, ApiKeyList, CreateApiKey, CreatedApiKey } from './api-types';
export type { AuditActor, AuditChange, AuditEntry, AuditPage } from './api-types';
export type { ChannelView as Channel, ChannelList, ChannelTested, CreateChannel, SmtpTls } from './api-types';
export type { SettingsView, UpdateSettings } from './api-types';
export type { RoleView as Role, RoleList, CreateRole, UpdateRole } from './api-types';
export type { AlertList, AlertRecord, CreateLimit, LimitList, LimitUse, UpdateLimit } from './api-types';

/** One routing policy of a project, as PRODUCT.md ("Routing policies") describes it. */
export interface Policy {
  type: string;
  enabled: boolean;
  config: Record<string, unknown>;
}
export type {
  Capabilities,
  Catalogue,
  CatalogueModel,
  CatalogueProvider,
  CircuitState,
  CreateModel,
  Model,
  ModelKey,
  ModelList,
  Pricing,
  UpdateModel,
} from './api-types';
export type {
  ModelUsage,
  Outcome,
  Timeline,
  TimelinePoint,
  UsageByModel,
  UsageByProject,
  UsageByToken,
  UsageByUser,
  UsageLastUse,
  UsagePage,
  UsageRecord,
  UsageSummary,
  UsageTotals,
} from './api-types';
/** Totals over a set of calls (`UsageTotals`), as every usage report row carries them. */
export type Totals = import('./api-types').UsageTotals;
/** A row of `GET /api/usage/by-project`. */
export type ProjectTotals = import('./api-types').ProjectUsage;
/** `GET /api/usage/summary`. */
export type Summary = import('./api-types').UsageSummary;
