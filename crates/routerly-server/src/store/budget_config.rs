//! Validation of the budget side of the configuration: `config/limits.json` against the
//! models, projects and tokens it names, and the alert settings (time zone, thresholds,
//! notification channels) in `config/settings.json`.
//!
//! Limits live in their own file so that one place lists every budget of the installation
//! and a hand edit of a limit never touches `projects.json`. A limit names its project by
//! id and its token by id; removing a project, model or token through the API removes the
//! limits that name it ([`prune_dangling_limits`]), while a hand edit that leaves a limit
//! pointing nowhere is refused like any other inconsistency.

use std::collections::HashSet;

use routerly_core::alerts::Channel;
use routerly_core::config::{ModelsFile, ProjectsFile, Settings};
use routerly_core::limits::{self, LimitsFile, Scope};

use super::config::{Draft, ValidationError};
use super::home::ConfigKind;
use super::secrets::MasterKey;

fn error(
    file: ConfigKind,
    entry: impl Into<String>,
    message: impl Into<String>,
) -> ValidationError {
    ValidationError::new(file, entry, message)
}

/// Checks limits and alert settings; the first problem found is returned.
pub(crate) fn validate(
    settings: &Settings,
    limits_file: &LimitsFile,
    models: &ModelsFile,
    projects: &ProjectsFile,
    master_key: &MasterKey,
) -> Result<(), ValidationError> {
    limits::parse_time_zone(&settings.budget_time_zone)
        .map_err(|message| error(ConfigKind::Settings, "budget_time_zone", message))?;
    let mut channel_ids = HashSet::new();
    for channel in &settings.notification_channels {
        routerly_core::ranges::check_length(
            "id",
            channel.id(),
            routerly_core::ranges::MAX_ID_CHARS,
        )
        .map_err(|problem| {
            ValidationError::out_of_range(ConfigKind::Settings, "notification_channels", problem)
        })?;
        let entry = super::config::entry_name("notification channel", channel.id());
        if channel.id().trim().is_empty() || !channel_ids.insert(channel.id()) {
            return Err(error(ConfigKind::Settings, entry, "empty or duplicate id"));
        }
        let secret = match channel {
            Channel::Smtp(smtp) => {
                if smtp.host.trim().is_empty() || smtp.from.trim().is_empty() || smtp.to.is_empty()
                {
                    return Err(error(
                        ConfigKind::Settings,
                        entry,
                        "host, from and at least one recipient are required",
                    ));
                }
                smtp.password.as_deref()
            }
            Channel::Webhook(webhook) => {
                let url = reqwest::Url::parse(&webhook.url).map_err(|parse_error| {
                    error(ConfigKind::Settings, &entry, format!("url: {parse_error}"))
                })?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(error(
                        ConfigKind::Settings,
                        entry,
                        "url must be http or https",
                    ));
                }
                webhook.secret.as_deref()
            }
        };
        if let Some(secret) = secret {
            let allowed = super::secrets::EnvAllowList::new(&settings.env_allow_list);
            master_key
                .resolve(secret, &allowed)
                .map_err(|resolve_error| {
                    error(
                        ConfigKind::Settings,
                        &entry,
                        format!("secret: {resolve_error}"),
                    )
                })?;
        }
    }

    let model_ids: HashSet<&str> = models.models.iter().map(|m| m.id.as_str()).collect();
    let project_ids: HashSet<&str> = projects.projects.iter().map(|p| p.id.as_str()).collect();
    let token_ids: HashSet<&str> = projects
        .projects
        .iter()
        .flat_map(|project| project.tokens.iter().map(|token| token.id.as_str()))
        .collect();
    let mut limit_ids = HashSet::new();
    for (index, limit) in limits_file.limits.iter().enumerate() {
        let entry = if limit.id.trim().is_empty() {
            format!("limits[{index}]")
        } else {
            super::config::entry_name("limit", &limit.id)
        };
        routerly_core::ranges::check_length("id", &limit.id, routerly_core::ranges::MAX_ID_CHARS)
            .map_err(|problem| ValidationError::out_of_range(ConfigKind::Limits, "limits", problem))?;
        if limit.id.trim().is_empty() || !limit_ids.insert(limit.id.as_str()) {
            return Err(error(ConfigKind::Limits, entry, "empty or duplicate id"));
        }
        routerly_core::ranges::check_limit(limit).map_err(|problem| {
            ValidationError::out_of_range(ConfigKind::Limits, &entry, problem)
        })?;
        if let Some(zone) = &limit.time_zone {
            limits::parse_time_zone(zone)
                .map_err(|message| error(ConfigKind::Limits, &entry, message))?;
        }
        if let Some(missing) = missing_reference(&limit.scope, &model_ids, &project_ids, &token_ids)
        {
            return Err(error(ConfigKind::Limits, entry, missing));
        }
    }
    Ok(())
}

/// What `scope` names that does not exist, if anything.
fn missing_reference(
    scope: &Scope,
    model_ids: &HashSet<&str>,
    project_ids: &HashSet<&str>,
    token_ids: &HashSet<&str>,
) -> Option<String> {
    if let Some(model) = scope.model()
        && !model_ids.contains(model)
    {
        return Some(format!("model `{model}` is not registered in models.json"));
    }
    if let Some(project) = scope.project()
        && !project_ids.contains(project)
    {
        return Some(format!(
            "no project has the id `{project}` in projects.json"
        ));
    }
    if let Some(token) = scope.token()
        && !token_ids.contains(token)
    {
        return Some(format!("no token has the id `{token}` in projects.json"));
    }
    None
}

/// Drops limits whose model, project or token no longer exists in `draft`.
pub(crate) fn prune_dangling_limits(draft: &mut Draft) {
    let model_ids: HashSet<&str> = draft.models.models.iter().map(|m| m.id.as_str()).collect();
    let project_ids: HashSet<&str> = draft
        .projects
        .projects
        .iter()
        .map(|p| p.id.as_str())
        .collect();
    let token_ids: HashSet<&str> = draft
        .projects
        .projects
        .iter()
        .flat_map(|project| project.tokens.iter().map(|token| token.id.as_str()))
        .collect();
    let before = draft.limits.limits.len();
    let mut kept = std::mem::take(&mut draft.limits.limits);
    kept.retain(|limit| {
        missing_reference(&limit.scope, &model_ids, &project_ids, &token_ids).is_none()
    });
    if kept.len() != before {
        tracing::info!(
            removed = before - kept.len(),
            "removed limits whose model, project or token was removed"
        );
    }
    draft.limits.limits = kept;
}
