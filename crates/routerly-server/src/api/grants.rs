//! Nobody grants what they do not hold.
//!
//! [`super::rbac::ROUTES`] says who may call a route; this module says what a caller may
//! *change* through it, in one place for every route. Every change of the configuration made
//! through the API goes through [`update`], which compares the configuration before and after
//! the change and refuses it (403, nothing written) when it would give anyone, or any role,
//! more than the caller holds:
//!
//! - **Roles.** A custom role may be created, changed or removed only by a caller who holds
//!   every permission it has before and after the change.
//! - **Users.** A user's global role may be set only to a role whose permissions the caller
//!   holds; and a user may be changed at all (email, password, role) or removed only by a
//!   caller who holds everything that user holds, globally and in each of their projects, so
//!   that taking over an account is never a way up.
//! - **Members.** Adding, changing or removing a project member needs `project:members` in
//!   that project and every permission of the member's project role, old and new.
//! - **Limits.** Adding, changing or removing a limit needs the permission that writes its
//!   level: `settings:write` for global limits, `model:write` for model limits, and
//!   `project:write` in the project for project, project-model, token and token-model limits.
//!   A change that takes any *other* limit out of enforcement for some call (a `replace` or
//!   `disable` limit below it, or the removal of a limit that stood between) needs the
//!   permission that writes that limit's level too, whatever the replacing value: to tighten a
//!   level one cannot write, one adds an `extend` limit.
//! - **Secrets.** `env:` references read the service's environment, so only an admin (a
//!   caller holding every permission) may set one, change the `env_allow_list`, or change
//!   where a secret read from the environment is sent: a model's endpoint or provider, a
//!   notification channel.
//!
//! Admin API keys are not configuration; [`require_role`] applies the same rule to them.

use std::collections::{BTreeMap, BTreeSet};

use routerly_core::alerts::Channel;
use routerly_core::config::{ModelConfig, RolesFile};
use routerly_core::limits::{self, CallScope, Level, Limit, Scope};

use super::auth::AuthUser;
use super::rbac::{Permission, PermissionSet, ProjectRole, role_permissions};
use super::{ApiError, ErrorCode};
use crate::state::App;
use crate::store::Draft;
use crate::store::secrets::env_reference;

/// Applies `change` to the configuration as `caller`: the change runs on a copy, then
/// [`check_change`] compares the copy with the configuration before it; only a change that
/// grants nothing beyond the caller's own permissions is validated and written. This is the
/// only way the API's handlers change the configuration (a test checks it).
pub async fn update<T: Send + 'static>(
    app: &App,
    caller: &AuthUser,
    change: impl FnOnce(&mut Draft) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let caller = caller.clone();
    let value = app
        .store
        .update(move |draft| {
            let before = draft.clone();
            let value = change(draft)?;
            check_change(&caller, &before, draft)?;
            Ok(value)
        })
        .await?;
    Ok(value)
}

/// Whether `caller` holds every permission there is (the built-in `admin`, or a custom role
/// with all of them).
pub fn is_admin(caller: &AuthUser) -> bool {
    caller.global == PermissionSet::all()
}

/// Refuses to let `caller` hand out the global `role` (to an API key): allowed only when the
/// caller holds every permission the role grants.
pub fn require_role(caller: &AuthUser, role: &str, roles: &RolesFile) -> Result<(), ApiError> {
    let granted = role_permissions(role, roles).unwrap_or(PermissionSet::NONE);
    require_global(caller, granted, &format!("role `{role}`"))
}

/// The check behind [`update`]: everything `after` grants that `before` did not must be
/// held by `caller`.
pub fn check_change(caller: &AuthUser, before: &Draft, after: &Draft) -> Result<(), ApiError> {
    check_roles(caller, before, after)?;
    check_users(caller, before, after)?;
    check_members(caller, before, after)?;
    check_limits(caller, before, after)?;
    check_secrets(caller, before, after)
}

fn refused(message: String) -> ApiError {
    ApiError::new(ErrorCode::Forbidden, message)
}

/// Names of the permissions in `wanted` that `held` lacks.
fn missing(held: PermissionSet, wanted: PermissionSet) -> Vec<&'static str> {
    wanted
        .iter()
        .filter(|permission| !held.contains(*permission))
        .map(Permission::as_str)
        .collect()
}

fn require_global(caller: &AuthUser, wanted: PermissionSet, what: &str) -> Result<(), ApiError> {
    let lacking = missing(caller.global, wanted);
    if lacking.is_empty() {
        Ok(())
    } else {
        Err(refused(format!(
            "{what} grants {}, which your role `{}` does not hold",
            lacking.join(", "),
            caller.role
        )))
    }
}

/// What the caller holds inside the project with this id.
fn caller_in(caller: &AuthUser, project_id: &str) -> PermissionSet {
    match caller.project_role(project_id) {
        Some(role) => caller.global.union(role.permissions()),
        None => caller.global,
    }
}

fn check_roles(caller: &AuthUser, before: &Draft, after: &Draft) -> Result<(), ApiError> {
    let permissions_of = |roles: &RolesFile, id: &str| {
        roles
            .roles
            .iter()
            .any(|role| role.id == id)
            .then(|| role_permissions(id, roles).unwrap_or(PermissionSet::NONE))
    };
    let ids: BTreeSet<&str> = before
        .roles
        .roles
        .iter()
        .chain(&after.roles.roles)
        .map(|role| role.id.as_str())
        .collect();
    for id in ids {
        let old = before.roles.roles.iter().find(|role| role.id == id);
        let new = after.roles.roles.iter().find(|role| role.id == id);
        if old == new {
            continue;
        }
        for permissions in [
            permissions_of(&before.roles, id),
            permissions_of(&after.roles, id),
        ]
        .into_iter()
        .flatten()
        {
            require_global(caller, permissions, &format!("role `{id}`"))?;
        }
    }
    Ok(())
}

/// Everything `user_id` holds in `draft`: the global role's permissions, and each project's
/// role.
fn holdings(draft: &Draft, user_id: &str) -> (PermissionSet, Vec<(String, ProjectRole)>) {
    let global = draft
        .users
        .users
        .iter()
        .find(|user| user.id == user_id)
        .and_then(|user| role_permissions(&user.role, &draft.roles))
        .unwrap_or(PermissionSet::NONE);
    let projects = draft
        .projects
        .projects
        .iter()
        .filter_map(|project| {
            project
                .members
                .iter()
                .find(|member| member.user_id == user_id)
                .and_then(|member| ProjectRole::parse(&member.role).ok())
                .map(|role| (project.id.clone(), role))
        })
        .collect();
    (global, projects)
}

fn check_users(caller: &AuthUser, before: &Draft, after: &Draft) -> Result<(), ApiError> {
    for old in &before.users.users {
        let new = after.users.users.iter().find(|user| user.id == old.id);
        if new == Some(old) {
            continue;
        }
        // Changing or removing someone needs everything they hold: otherwise a new password
        // would be a way into a stronger account.
        let (global, projects) = holdings(before, &old.id);
        let what = format!("changing user `{}`", old.email);
        let lacking = missing(caller.global, global);
        if !lacking.is_empty() {
            return Err(refused(format!(
                "{what} needs {}, which they hold and your role `{}` does not",
                lacking.join(", "),
                caller.role
            )));
        }
        for (project_id, role) in projects {
            let lacking = missing(caller_in(caller, &project_id), role.permissions());
            if !lacking.is_empty() {
                return Err(refused(format!(
                    "{what} needs {} in a project where they are {}, which you do not hold there",
                    lacking.join(", "),
                    role.as_str()
                )));
            }
        }
    }
    for new in &after.users.users {
        let old = before.users.users.iter().find(|user| user.id == new.id);
        if old.is_some_and(|old| old.role == new.role) {
            continue;
        }
        let granted = role_permissions(&new.role, &after.roles).unwrap_or(PermissionSet::NONE);
        require_global(caller, granted, &format!("role `{}`", new.role))?;
    }
    Ok(())
}

fn check_members(caller: &AuthUser, before: &Draft, after: &Draft) -> Result<(), ApiError> {
    let remaining_users: BTreeSet<&str> = after
        .users
        .users
        .iter()
        .map(|user| user.id.as_str())
        .collect();
    for project in &after.projects.projects {
        let old_project = before
            .projects
            .projects
            .iter()
            .find(|old| old.id == project.id);
        let roles_of = |members: &[routerly_core::config::ProjectMember]| {
            members
                .iter()
                .map(|member| (member.user_id.clone(), member.role.clone()))
                .collect::<BTreeMap<String, String>>()
        };
        let old_roles = old_project
            .map(|old| roles_of(&old.members))
            .unwrap_or_default();
        let new_roles = roles_of(&project.members);
        if old_roles == new_roles {
            continue;
        }
        let held = caller_in(caller, &project.id);
        let user_ids: BTreeSet<&String> = old_roles.keys().chain(new_roles.keys()).collect();
        for user_id in user_ids {
            let old = old_roles.get(user_id);
            let new = new_roles.get(user_id);
            // A removed user's memberships go with them; removing the user was checked above.
            if old == new || (new.is_none() && !remaining_users.contains(user_id.as_str())) {
                continue;
            }
            let mut wanted = PermissionSet::of(&[Permission::ProjectMembers]);
            for role in [old, new].into_iter().flatten() {
                if let Ok(role) = ProjectRole::parse(role) {
                    wanted = wanted.union(role.permissions());
                }
            }
            let lacking = missing(held, wanted);
            if !lacking.is_empty() {
                return Err(refused(format!(
                    "changing the members of project `{}` this way needs {}, which you do not hold there",
                    project.slug,
                    lacking.join(", ")
                )));
            }
        }
    }
    Ok(())
}

/// The project a limit's scope belongs to, looked up in `draft`.
fn owning_project<'d>(draft: &'d Draft, scope: &Scope) -> Option<&'d str> {
    if let Some(project) = scope.project() {
        return draft
            .projects
            .projects
            .iter()
            .find(|candidate| candidate.id == project)
            .map(|project| project.id.as_str());
    }
    let token = scope.token()?;
    draft
        .projects
        .projects
        .iter()
        .find(|project| project.tokens.iter().any(|candidate| candidate.id == token))
        .map(|project| project.id.as_str())
}

/// The permission that writes limits at `scope`'s level, and whether `caller` holds it there.
fn limit_writer(caller: &AuthUser, drafts: [&Draft; 2], scope: &Scope) -> (Permission, bool) {
    match scope.level() {
        Level::Global => (
            Permission::SettingsWrite,
            caller.global.contains(Permission::SettingsWrite),
        ),
        Level::Model => (
            Permission::ModelWrite,
            caller.global.contains(Permission::ModelWrite),
        ),
        _ => {
            let project = drafts.iter().find_map(|draft| owning_project(draft, scope));
            let holds = project.is_some_and(|project_id| {
                caller_in(caller, project_id).contains(Permission::ProjectWrite)
            });
            (Permission::ProjectWrite, holds)
        }
    }
}

fn check_limits(caller: &AuthUser, before: &Draft, after: &Draft) -> Result<(), ApiError> {
    if before.limits == after.limits {
        return Ok(());
    }
    let drafts = [after, before];
    let by_id = |limits: &'_ [Limit]| -> BTreeMap<String, Limit> {
        limits
            .iter()
            .map(|limit| (limit.id.clone(), limit.clone()))
            .collect()
    };
    let old_limits = by_id(&before.limits.limits);
    let new_limits = by_id(&after.limits.limits);
    let ids: BTreeSet<&String> = old_limits.keys().chain(new_limits.keys()).collect();
    for id in ids {
        let old = old_limits.get(id);
        let new = new_limits.get(id);
        if old == new {
            continue;
        }
        for limit in [old, new].into_iter().flatten() {
            let (permission, holds) = limit_writer(caller, drafts, &limit.scope);
            if !holds {
                return Err(refused(format!(
                    "changing {} limits needs `{}`, which you do not hold there",
                    limit.scope.level().as_str(),
                    permission.as_str()
                )));
            }
        }
    }
    // What the change takes out of enforcement, call by call.
    for call in call_classes(after) {
        let scope = CallScope {
            project_id: &call.0,
            token_id: &call.1,
            model_id: Some(&call.2),
        };
        let enforced_after: BTreeSet<&str> = limits::effective_limits(&after.limits.limits, &scope)
            .into_iter()
            .map(|limit| limit.id.as_str())
            .collect();
        for lifted in limits::effective_limits(&before.limits.limits, &scope) {
            if enforced_after.contains(lifted.id.as_str())
                || new_limits.get(&lifted.id) != Some(lifted)
            {
                continue;
            }
            let (permission, holds) = limit_writer(caller, drafts, &lifted.scope);
            if !holds {
                return Err(refused(format!(
                    "this change would lift the {} limit `{}` ({}) for some calls; lifting a {} limit needs `{}`. To tighten it, add a limit in mode `extend` instead",
                    lifted.scope.level().as_str(),
                    lifted.id,
                    lifted.describe(),
                    lifted.scope.level().as_str(),
                    permission.as_str()
                )));
            }
        }
    }
    Ok(())
}

/// Every kind of call `draft` allows, as (project, token, model): each project's tokens and
/// models, plus a token and a model that do not exist yet (so that what a limit lifts for
/// tokens and models added later is counted too).
fn call_classes(draft: &Draft) -> Vec<(String, String, String)> {
    const FUTURE: &str = "\u{0}future";
    let mut classes = Vec::new();
    for project in &draft.projects.projects {
        let tokens = project
            .tokens
            .iter()
            .map(|token| token.id.as_str())
            .chain([FUTURE]);
        let models: Vec<&str> = project
            .models
            .iter()
            .map(|model| model.model_id.as_str())
            .chain(draft.models.models.iter().map(|model| model.id.as_str()))
            .chain([FUTURE])
            .collect::<BTreeSet<&str>>()
            .into_iter()
            .collect();
        for token in tokens {
            for model in &models {
                classes.push((project.id.clone(), token.to_owned(), (*model).to_owned()));
            }
        }
    }
    classes
}

/// Whether a model's change lets a secret from the environment reach somewhere new: the
/// reference itself is new, or the endpoint or provider it is sent to changed.
fn env_secret_moves(old: Option<&ModelConfig>, new: &ModelConfig) -> bool {
    let Some(reference) = new.api_key.as_deref().and_then(env_reference) else {
        return false;
    };
    match old {
        None => true,
        Some(old) => {
            old.api_key.as_deref().and_then(env_reference) != Some(reference)
                || old.endpoint != new.endpoint
                || old.provider != new.provider
        }
    }
}

fn channel_secret(channel: &Channel) -> Option<&str> {
    match channel {
        Channel::Smtp(smtp) => smtp.password.as_deref(),
        Channel::Webhook(webhook) => webhook.secret.as_deref(),
    }
}

fn check_secrets(caller: &AuthUser, before: &Draft, after: &Draft) -> Result<(), ApiError> {
    if is_admin(caller) {
        return Ok(());
    }
    let admin_only = |what: String| {
        Err(refused(format!(
            "{what}: `env:` references read the service's environment, so only an admin may set them or change where their value is sent"
        )))
    };
    for model in &after.models.models {
        let old = before.models.models.iter().find(|old| old.id == model.id);
        if env_secret_moves(old, model) {
            return admin_only(format!(
                "model `{}` takes its key from the environment",
                model.id
            ));
        }
    }
    if after.settings.env_allow_list != before.settings.env_allow_list {
        return admin_only("changing env_allow_list".to_owned());
    }
    let metrics_reference = after
        .settings
        .metrics_token
        .as_deref()
        .and_then(env_reference);
    if metrics_reference.is_some() && after.settings.metrics_token != before.settings.metrics_token
    {
        return admin_only("metrics_token".to_owned());
    }
    for channel in &after.settings.notification_channels {
        let old = before
            .settings
            .notification_channels
            .iter()
            .find(|old| old.id() == channel.id());
        if channel_secret(channel).and_then(env_reference).is_some() && old != Some(channel) {
            return admin_only(format!("notification channel `{}`", channel.id()));
        }
    }
    Ok(())
}
