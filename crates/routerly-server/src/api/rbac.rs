//! Who may call which `/api` route.
//!
//! - [`Permission`]: the permissions PRODUCT.md names (`model:read`, `project:write`, …).
//! - Global roles: the built-in `admin`, `operator`, `viewer` and `none`, plus custom roles
//!   from `config/roles.json`; a global role applies everywhere.
//! - [`ProjectRole`]: `viewer`, `editor` or `admin` of one project; applies only there.
//! - [`ROUTES`]: the one table that declares every `/api` route's [`Access`]. The
//!   [`authorize`] middleware checks it before any handler runs, so a handler never forgets a
//!   check; a route missing from the table is refused (fail closed).

use std::collections::HashSet;

use axum::extract::{MatchedPath, RawPathParams, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::Method;
use routerly_core::config::{self, RolesFile};

use super::auth::{AuthUser, authenticate};
use super::{ApiError, ErrorCode};
use crate::state::App;
use crate::store::config::Snapshot;

/// A permission a route may require; custom roles are sets of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    /// Read models, their API keys masked.
    ModelRead,
    /// Create, change and remove models; read a model's API key in clear.
    ModelWrite,
    /// Read a project, its models, tokens (never in clear), members, usage and traces.
    ProjectRead,
    /// Change a project: its models, policies, limits and tokens.
    ProjectWrite,
    /// Add, change and remove a project's members.
    ProjectMembers,
    /// Read users and roles.
    UserRead,
    /// Create, change and remove users, roles and admin API keys.
    UserWrite,
    /// Read usage reports across every project.
    ReportRead,
    /// Settings, notification channels, master-key rotation and the audit log.
    SettingsWrite,
}

impl Permission {
    /// Every permission, in the order listings show them.
    pub const ALL: [Permission; 9] = [
        Permission::ModelRead,
        Permission::ModelWrite,
        Permission::ProjectRead,
        Permission::ProjectWrite,
        Permission::ProjectMembers,
        Permission::UserRead,
        Permission::UserWrite,
        Permission::ReportRead,
        Permission::SettingsWrite,
    ];

    /// The name used in roles, the API and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::ModelRead => "model:read",
            Permission::ModelWrite => "model:write",
            Permission::ProjectRead => "project:read",
            Permission::ProjectWrite => "project:write",
            Permission::ProjectMembers => "project:members",
            Permission::UserRead => "user:read",
            Permission::UserWrite => "user:write",
            Permission::ReportRead => "report:read",
            Permission::SettingsWrite => "settings:write",
        }
    }

    /// Parses a permission name, or says which names exist.
    pub fn parse(name: &str) -> Result<Permission, String> {
        Permission::ALL
            .into_iter()
            .find(|permission| permission.as_str() == name.trim())
            .ok_or_else(|| {
                let names: Vec<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
                format!(
                    "unknown permission `{name}`; known permissions: {}",
                    names.join(", ")
                )
            })
    }
}

/// A set of permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PermissionSet(u16);

impl PermissionSet {
    /// No permission.
    pub const NONE: PermissionSet = PermissionSet(0);

    /// The set of `permissions`.
    pub const fn of(permissions: &[Permission]) -> PermissionSet {
        let mut bits = 0u16;
        let mut index = 0;
        while index < permissions.len() {
            bits |= 1 << permissions[index] as u16;
            index += 1;
        }
        PermissionSet(bits)
    }

    /// Every permission.
    pub const fn all() -> PermissionSet {
        PermissionSet::of(&Permission::ALL)
    }

    /// Whether `permission` is in the set.
    pub fn contains(self, permission: Permission) -> bool {
        self.0 & (1 << permission as u16) != 0
    }

    /// Both sets together.
    pub fn union(self, other: PermissionSet) -> PermissionSet {
        PermissionSet(self.0 | other.0)
    }

    /// The permissions in the set, in [`Permission::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL
            .into_iter()
            .filter(move |permission| self.contains(*permission))
    }

    /// The permissions' names.
    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Permission::as_str).collect()
    }
}

/// The built-in global roles and what they grant.
pub const BUILTIN_ROLES: [(&str, &str, PermissionSet); 4] = [
    ("admin", "Administrator", PermissionSet::all()),
    (
        "operator",
        "Operator",
        PermissionSet::of(&[
            Permission::ModelRead,
            Permission::ModelWrite,
            Permission::ProjectRead,
            Permission::ProjectWrite,
            Permission::ProjectMembers,
            Permission::ReportRead,
        ]),
    ),
    (
        "viewer",
        "Viewer",
        PermissionSet::of(&[
            Permission::ModelRead,
            Permission::ProjectRead,
            Permission::ReportRead,
        ]),
    ),
    ("none", "Project roles only", PermissionSet::NONE),
];

/// Whether `role` is a built-in global role.
pub fn is_builtin_role(role: &str) -> bool {
    BUILTIN_ROLES.iter().any(|(id, ..)| *id == role)
}

/// What the global `role` grants; `None` when no built-in or custom role has that id.
pub fn role_permissions(role: &str, roles: &RolesFile) -> Option<PermissionSet> {
    if let Some((_, _, permissions)) = BUILTIN_ROLES.iter().find(|(id, ..)| *id == role) {
        return Some(*permissions);
    }
    let custom = roles.roles.iter().find(|custom| custom.id == role)?;
    // Unknown names in a hand-edited roles.json grant nothing rather than failing the caller.
    let permissions: Vec<Permission> = custom
        .permissions
        .iter()
        .filter_map(|name| Permission::parse(name).ok())
        .collect();
    Some(PermissionSet::of(&permissions))
}

/// A member's role inside one project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectRole {
    /// Reads the project.
    Viewer,
    /// Reads and changes the project.
    Editor,
    /// Reads and changes the project and manages its members.
    Admin,
}

impl ProjectRole {
    /// Every project role.
    pub const ALL: [ProjectRole; 3] =
        [ProjectRole::Viewer, ProjectRole::Editor, ProjectRole::Admin];

    /// The name stored in `projects.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProjectRole::Viewer => "viewer",
            ProjectRole::Editor => "editor",
            ProjectRole::Admin => "admin",
        }
    }

    /// Parses `viewer`, `editor` or `admin`.
    pub fn parse(name: &str) -> Result<ProjectRole, String> {
        ProjectRole::ALL
            .into_iter()
            .find(|role| role.as_str() == name.trim())
            .ok_or_else(|| format!("unknown project role `{name}`; use viewer, editor or admin"))
    }

    /// What the role grants inside its project (and `model:read`, which every member has).
    pub fn permissions(self) -> PermissionSet {
        match self {
            ProjectRole::Viewer => {
                PermissionSet::of(&[Permission::ModelRead, Permission::ProjectRead])
            }
            ProjectRole::Editor => PermissionSet::of(&[
                Permission::ModelRead,
                Permission::ProjectRead,
                Permission::ProjectWrite,
            ]),
            ProjectRole::Admin => PermissionSet::of(&[
                Permission::ModelRead,
                Permission::ProjectRead,
                Permission::ProjectWrite,
                Permission::ProjectMembers,
            ]),
        }
    }
}

/// Permissions a project role grants outside its project: reading the model catalogue
/// (keys masked), which every project role may do.
pub const MEMBER_GLOBAL_PERMISSIONS: PermissionSet = PermissionSet::of(&[Permission::ModelRead]);

/// What a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, logged in or not (setup, login, refresh).
    Public,
    /// Any logged-in caller (their own profile, logout, system status).
    Authenticated,
    /// The permission from the caller's global role.
    Global(Permission),
    /// The permission inside the project named by the `{project}` path segment, from the
    /// global role or the caller's role in that project.
    Project(Permission),
    /// The permission globally or in at least one project; the handler narrows the answer to
    /// the projects where the caller holds it (listings such as `GET /api/projects`).
    AnyProject(Permission),
    /// Usage reports: `report:read` or `project:read` globally (every project), or a role in
    /// some project (only those projects); the handler narrows the records.
    Usage,
}

/// One `/api` route and what it requires.
#[derive(Debug, Clone)]
pub struct Route {
    /// The HTTP method.
    pub method: Method,
    /// The path as the router declares it, such as `/api/projects/{project}`.
    pub path: &'static str,
    /// What the caller needs.
    pub access: Access,
}

const fn route(method: Method, path: &'static str, access: Access) -> Route {
    Route {
        method,
        path,
        access,
    }
}

use Access::{AnyProject, Authenticated, Global, Project, Public, Usage};
use Permission::*;

/// Every `/api` route and its permission: the one place where access is declared. A route
/// the router has but this table lacks is refused with a 500 naming it.
pub const ROUTES: &[Route] = &[
    // The contract (public: it describes the API's shapes, which PRODUCT.md documents too,
    // and holds no configured data, name or secret).
    route(Method::GET, "/api/openapi.json", Public),
    // Setup and sessions.
    route(Method::GET, "/api/setup/status", Public),
    route(Method::POST, "/api/setup/first-admin", Public),
    route(Method::POST, "/api/auth/login", Public),
    route(Method::POST, "/api/auth/refresh", Public),
    route(Method::POST, "/api/auth/logout", Public),
    route(Method::GET, "/api/me", Authenticated),
    route(Method::PUT, "/api/me", Authenticated),
    route(Method::PATCH, "/api/me", Authenticated),
    // Models.
    route(Method::GET, "/api/models", Global(ModelRead)),
    route(Method::POST, "/api/models", Global(ModelWrite)),
    route(Method::GET, "/api/models/{id}", Global(ModelRead)),
    route(Method::PATCH, "/api/models/{id}", Global(ModelWrite)),
    route(Method::DELETE, "/api/models/{id}", Global(ModelWrite)),
    route(Method::GET, "/api/models/{id}/key", Global(ModelWrite)),
    // One call to the provider spends its key: for who may change the model.
    route(Method::POST, "/api/models/{id}/test", Global(ModelWrite)),
    route(Method::GET, "/api/routing/health", Global(ModelRead)),
    route(Method::GET, "/api/catalogue", Global(ModelRead)),
    // Projects.
    route(Method::GET, "/api/projects", AnyProject(ProjectRead)),
    route(Method::POST, "/api/projects", Global(ProjectWrite)),
    route(Method::GET, "/api/projects/{project}", Project(ProjectRead)),
    route(
        Method::PATCH,
        "/api/projects/{project}",
        Project(ProjectWrite),
    ),
    route(
        Method::DELETE,
        "/api/projects/{project}",
        Project(ProjectWrite),
    ),
    route(
        Method::GET,
        "/api/projects/{project}/models",
        Project(ProjectRead),
    ),
    route(
        Method::POST,
        "/api/projects/{project}/models",
        Project(ProjectWrite),
    ),
    route(
        Method::PATCH,
        "/api/projects/{project}/models/{model_id}",
        Project(ProjectWrite),
    ),
    route(
        Method::DELETE,
        "/api/projects/{project}/models/{model_id}",
        Project(ProjectWrite),
    ),
    route(
        Method::GET,
        "/api/projects/{project}/tokens",
        Project(ProjectRead),
    ),
    route(
        Method::POST,
        "/api/projects/{project}/tokens",
        Project(ProjectWrite),
    ),
    route(
        Method::PATCH,
        "/api/projects/{project}/tokens/{token_id}",
        Project(ProjectWrite),
    ),
    route(
        Method::DELETE,
        "/api/projects/{project}/tokens/{token_id}",
        Project(ProjectWrite),
    ),
    route(
        Method::GET,
        "/api/projects/{project}/members",
        Project(ProjectRead),
    ),
    route(
        Method::POST,
        "/api/projects/{project}/members",
        Project(ProjectMembers),
    ),
    route(
        Method::PATCH,
        "/api/projects/{project}/members/{user}",
        Project(ProjectMembers),
    ),
    route(
        Method::DELETE,
        "/api/projects/{project}/members/{user}",
        Project(ProjectMembers),
    ),
    route(
        Method::GET,
        "/api/projects/{project}/policies",
        Project(ProjectRead),
    ),
    route(
        Method::PUT,
        "/api/projects/{project}/policies",
        Project(ProjectWrite),
    ),
    route(
        Method::GET,
        "/api/projects/{project}/traces",
        Project(ProjectRead),
    ),
    route(
        Method::GET,
        "/api/projects/{project}/traces/{trace_id}",
        Project(ProjectRead),
    ),
    // Usage.
    route(Method::GET, "/api/traces/{trace_id}", Usage),
    route(Method::GET, "/api/usage", Usage),
    route(Method::GET, "/api/usage/summary", Usage),
    route(Method::GET, "/api/usage/by-model", Usage),
    route(Method::GET, "/api/usage/by-project", Usage),
    route(Method::GET, "/api/usage/by-token", Usage),
    route(Method::GET, "/api/usage/last-use", Usage),
    route(Method::GET, "/api/usage/by-user", Usage),
    route(Method::GET, "/api/usage/timeline", Usage),
    route(Method::GET, "/api/usage/export", Usage),
    route(Method::GET, "/api/usage/limits", Usage),
    // Budgets and notifications.
    route(Method::GET, "/api/limits", Usage),
    route(Method::POST, "/api/limits", AnyProject(ProjectWrite)),
    route(Method::GET, "/api/limits/{id}", Usage),
    route(Method::PATCH, "/api/limits/{id}", AnyProject(ProjectWrite)),
    route(Method::DELETE, "/api/limits/{id}", AnyProject(ProjectWrite)),
    route(Method::GET, "/api/alerts", Usage),
    route(Method::GET, "/api/channels", Global(SettingsWrite)),
    route(Method::POST, "/api/channels", Global(SettingsWrite)),
    route(Method::GET, "/api/channels/{id}", Global(SettingsWrite)),
    route(Method::DELETE, "/api/channels/{id}", Global(SettingsWrite)),
    route(
        Method::POST,
        "/api/channels/{id}/test",
        Global(SettingsWrite),
    ),
    // People.
    route(Method::GET, "/api/users", Global(UserRead)),
    route(Method::POST, "/api/users", Global(UserWrite)),
    route(Method::GET, "/api/users/{user}", Global(UserRead)),
    route(Method::PATCH, "/api/users/{user}", Global(UserWrite)),
    route(Method::DELETE, "/api/users/{user}", Global(UserWrite)),
    route(Method::GET, "/api/roles", Global(UserRead)),
    route(Method::POST, "/api/roles", Global(UserWrite)),
    route(Method::PATCH, "/api/roles/{id}", Global(UserWrite)),
    route(Method::DELETE, "/api/roles/{id}", Global(UserWrite)),
    route(Method::GET, "/api/api-keys", Global(UserWrite)),
    route(Method::POST, "/api/api-keys", Global(UserWrite)),
    route(Method::DELETE, "/api/api-keys/{id}", Global(UserWrite)),
    // Service.
    route(Method::GET, "/api/settings", Global(SettingsWrite)),
    route(Method::PATCH, "/api/settings", Global(SettingsWrite)),
    route(Method::GET, "/api/system", Authenticated),
    route(
        Method::POST,
        "/api/system/rotate-key",
        Global(SettingsWrite),
    ),
    route(Method::GET, "/api/audit", Global(SettingsWrite)),
];

/// The declared access of `method` on the route `path` (as the router declares it).
pub fn access_of(method: &Method, path: &str) -> Option<Access> {
    let method = if method == Method::HEAD {
        &Method::GET
    } else {
        method
    };
    ROUTES
        .iter()
        .find(|route| route.method == method && route.path == path)
        .map(|route| route.access)
}

/// The middleware that enforces [`ROUTES`]: authenticates the caller, checks the route's
/// access and hands the handler an [`AuthUser`] whose permissions fit this request; then
/// writes the audit entry of a successful change.
pub async fn authorize(
    State(app): State<App>,
    matched_path: MatchedPath,
    path_params: RawPathParams,
    mut request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let route_path = matched_path.as_str().to_owned();
    let Some(access) = access_of(&method, &route_path) else {
        return unsupported_method(&method, &route_path);
    };
    let project_key = path_params
        .iter()
        .find(|(name, _)| *name == "project")
        .map(|(_, value)| value.to_owned());
    let snapshot = app.store.snapshot();
    let caller = if access == Access::Public {
        None
    } else {
        let mut user = match authenticate(&app, request.headers(), &snapshot).await {
            Ok(user) => user,
            Err(error) => return error.into_response(),
        };
        if let Err(error) = check(&mut user, access, project_key.as_deref(), &snapshot) {
            return error.into_response();
        }
        request.extensions_mut().insert(user.clone());
        Some(user)
    };
    let audited = super::audit::is_audited(&method, &route_path);
    let before = audited.then(|| app.store.snapshot());
    let address = crate::net::client_address(
        request
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |info| info.0.ip()),
        request.headers(),
        &snapshot.settings.trusted_proxies,
    );
    let response = next.run(request).await;
    if let Some(before) = before
        && response.status().is_success()
    {
        let write = super::audit::record(
            &app,
            caller.as_ref(),
            address,
            format!("{method} {route_path}"),
            &path,
            &before,
            &response,
        );
        write.await;
    }
    response
}

/// The answer to a method the route does not have: 405 with `Allow` listing the methods
/// [`ROUTES`] declares for the path; a path that [`ROUTES`] does not know at all is a route
/// the router has but the table lacks, refused with a 500 naming it (fail closed).
fn unsupported_method(method: &Method, route_path: &str) -> Response {
    let mut allowed: Vec<&str> = ROUTES
        .iter()
        .filter(|route| route.path == route_path)
        .map(|route| route.method.as_str())
        .collect();
    if allowed.is_empty() {
        return ApiError::internal(format!(
            "route {method} {route_path} declares no permission in api::rbac::ROUTES"
        ))
        .into_response();
    }
    if allowed.contains(&"GET") {
        allowed.push("HEAD");
    }
    let allow = allowed.join(", ");
    let mut response = ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("{route_path} does not take {method}; it takes {allow}"),
    )
    .into_response();
    if let Ok(value) = http::HeaderValue::from_str(&allow) {
        response.headers_mut().insert(http::header::ALLOW, value);
    }
    response
}

/// Checks `access` for `user` and narrows `user.granted` to this request's scope.
fn check(
    user: &mut AuthUser,
    access: Access,
    project_key: Option<&str>,
    snapshot: &Snapshot,
) -> Result<(), ApiError> {
    match access {
        Access::Public | Access::Authenticated => Ok(()),
        Access::Global(permission) => {
            if user.global.contains(permission) {
                Ok(())
            } else {
                Err(forbidden(user, permission))
            }
        }
        Access::Project(permission) => {
            let key = project_key.unwrap_or_default();
            let Some(project) = snapshot.project(key) else {
                // Only someone who could see every project learns that this one is missing.
                return if user.global.contains(permission) {
                    Ok(())
                } else {
                    Err(forbidden(user, permission))
                };
            };
            user.granted = user.permissions_in(project);
            if user.granted.contains(permission) {
                Ok(())
            } else if user.global.contains(Permission::ProjectRead)
                || user.project_role(&project.id).is_some()
            {
                Err(forbidden(user, permission))
            } else {
                Err(ApiError::new(
                    ErrorCode::Forbidden,
                    format!("you are not a member of project `{key}`"),
                ))
            }
        }
        Access::AnyProject(permission) => {
            if user.global.contains(permission)
                || user
                    .memberships
                    .iter()
                    .any(|(_, role)| role.permissions().contains(permission))
            {
                Ok(())
            } else {
                Err(forbidden(user, permission))
            }
        }
        Access::Usage => {
            if user.global.contains(Permission::ReportRead)
                || user.global.contains(Permission::ProjectRead)
                || !user.memberships.is_empty()
            {
                Ok(())
            } else {
                Err(forbidden(user, Permission::ReportRead))
            }
        }
    }
}

fn forbidden(user: &AuthUser, permission: Permission) -> ApiError {
    ApiError::new(
        ErrorCode::Forbidden,
        format!(
            "your role `{}` does not grant `{}`",
            user.role,
            permission.as_str()
        ),
    )
}

/// Which projects' usage a caller may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectScope {
    /// Every project.
    All,
    /// Only these project ids.
    Only(HashSet<String>),
}

impl ProjectScope {
    /// Whether the project with this id is in scope.
    pub fn includes(&self, project_id: &str) -> bool {
        match self {
            ProjectScope::All => true,
            ProjectScope::Only(ids) => ids.contains(project_id),
        }
    }
}

/// The members' roles of `project` by user id.
pub fn member_role(project: &config::Project, user_id: &str) -> Option<ProjectRole> {
    project
        .members
        .iter()
        .find(|member| member.user_id == user_id)
        .and_then(|member| ProjectRole::parse(&member.role).ok())
}
