//! The management API's contract: the request and response types of every `/api` route.
//!
//! The server's handlers take and return these types, the CLI reads answers into them, the
//! OpenAPI document served at `/api/openapi.json` is derived from them (with `utoipa`) and
//! the dashboard's `src/api-types.ts` is generated from them (with `ts-rs`, see
//! [`typescript`]). Conversions from `routerly-core`'s config and usage types sit next to
//! the types they fill. A field renamed here is renamed everywhere; a test in the server
//! compares the committed document and TypeScript file against fresh generation.

pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod channels;
pub mod error;
pub mod limits;
pub mod members;
pub mod model_checks;
pub mod models;
pub mod projects;
pub mod roles;
pub mod settings;
pub mod setup;
pub mod system;
pub mod traces;
pub mod usage;
pub mod users;

pub use error::{ErrorBody, ErrorCode, ErrorDetail};

/// The TypeScript declarations of every type the dashboard reads, as written to
/// `dashboard/src/api-types.ts`.
pub fn typescript() -> String {
    use ts_rs::TS;
    let declarations = [
        error::ErrorCode::decl(),
        error::ErrorDetail::decl(),
        error::ErrorBody::decl(),
        settings::LogFormat::decl(),
        settings::UpstreamTimeouts::decl(),
        settings::ConnectionLimits::decl(),
        settings::SettingsView::decl(),
        settings::UpstreamTimeoutsChange::decl(),
        settings::ConnectionLimitsChange::decl(),
        settings::UpdateSettings::decl(),
        setup::SetupStatus::decl(),
        setup::FirstAdmin::decl(),
        auth::Login::decl(),
        auth::RefreshToken::decl(),
        auth::Session::decl(),
        auth::SessionUser::decl(),
        auth::Via::decl(),
        auth::Me::decl(),
        auth::MeProject::decl(),
        auth::ChangePassword::decl(),
        channels::SmtpTls::decl(),
        channels::ChannelView::decl(),
        channels::ChannelList::decl(),
        channels::CreateChannel::decl(),
        channels::CreateSmtpChannel::decl(),
        channels::CreateWebhookChannel::decl(),
        channels::ChannelTested::decl(),
        system::SystemInfo::decl(),
        system::UsageWriter::decl(),
        system::MasterKeySource::decl(),
        system::KeyRotated::decl(),
        system::Health::decl(),
        api_keys::ApiKeyView::decl(),
        api_keys::ApiKeyList::decl(),
        api_keys::CreateApiKey::decl(),
        api_keys::CreatedApiKey::decl(),
        projects::ProjectModelView::decl(),
        projects::ProjectModelList::decl(),
        projects::TokenView::decl(),
        projects::TokenList::decl(),
        projects::CreatedToken::decl(),
        projects::PolicyView::decl(),
        projects::RoutingView::decl(),
        projects::ReplaceRouting::decl(),
        projects::ProjectView::decl(),
        projects::ProjectMemberRef::decl(),
        projects::ProjectList::decl(),
        projects::CreateProject::decl(),
        projects::UpdateProject::decl(),
        projects::AddProjectModel::decl(),
        projects::UpdateProjectModel::decl(),
        projects::CreateToken::decl(),
        projects::UpdateToken::decl(),
        members::MemberView::decl(),
        members::MemberList::decl(),
        members::AddMember::decl(),
        members::UpdateMember::decl(),
        traces::TraceView::decl(),
        traces::PolicyTraceView::decl(),
        traces::ModelScoreView::decl(),
        traces::RankedModelView::decl(),
        traces::AttemptTraceView::decl(),
        traces::TraceList::decl(),
        users::UserProject::decl(),
        users::UserView::decl(),
        users::UserList::decl(),
        users::CreateUser::decl(),
        users::UpdateUser::decl(),
        audit::AuditActor::decl(),
        audit::AuditChange::decl(),
        audit::AuditEntry::decl(),
        audit::AuditPage::decl(),
        limits::LimitMetric::decl(),
        limits::LimitMode::decl(),
        limits::LimitRefusal::decl(),
        limits::LimitUse::decl(),
        limits::LimitList::decl(),
        limits::CreateLimit::decl(),
        limits::UpdateLimit::decl(),
        limits::AlertKind::decl(),
        limits::DeliveryOutcome::decl(),
        limits::AlertDelivery::decl(),
        limits::AlertRecord::decl(),
        limits::AlertList::decl(),
        model_checks::RoutingHealth::decl(),
        model_checks::ModelHealth::decl(),
        model_checks::ConnectionTest::decl(),
        models::Model::decl(),
        models::CircuitState::decl(),
        models::ModelList::decl(),
        models::Pricing::decl(),
        models::PriceTier::decl(),
        models::Capabilities::decl(),
        models::TimeoutOverrides::decl(),
        models::CreateModel::decl(),
        models::PricingOverride::decl(),
        models::UpdateModel::decl(),
        models::ModelKey::decl(),
        models::KeySource::decl(),
        models::Catalogue::decl(),
        models::CatalogueProvider::decl(),
        models::CatalogueModel::decl(),
        roles::RoleView::decl(),
        roles::RoleList::decl(),
        roles::CreateRole::decl(),
        roles::UpdateRole::decl(),
        usage::Outcome::decl(),
        usage::Surface::decl(),
        usage::CallType::decl(),
        usage::Bucket::decl(),
        usage::ExportFormat::decl(),
        usage::UsageRecord::decl(),
        usage::Attempt::decl(),
        usage::UsagePage::decl(),
        usage::UsageTotals::decl(),
        usage::UsageSummary::decl(),
        usage::ModelUsage::decl(),
        usage::ProjectUsage::decl(),
        usage::TokenUsage::decl(),
        usage::UserUsage::decl(),
        usage::TagUsage::decl(),
        usage::UsageByModel::decl(),
        usage::UsageByProject::decl(),
        usage::UsageByToken::decl(),
        usage::TokenLastUse::decl(),
        usage::UsageLastUse::decl(),
        usage::UsageByUser::decl(),
        usage::TimelinePoint::decl(),
        usage::Timeline::decl(),
    ];
    let mut out = String::from(
        "// Generated from crates/routerly-api by `UPDATE_EXPECT=1 cargo test -p routerly-server --test it api_contract`; do not edit.\n",
    );
    for declaration in declarations {
        out.push_str("\nexport ");
        out.push_str(&declaration);
        out.push('\n');
    }
    out
}
