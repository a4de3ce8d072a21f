//! Where a provider call goes and how long it may take: the one place a call's URL, key and
//! timeouts are put together, for the proxy's attempts and the routing engine's own calls.

use routerly_core::config::{ModelConfig, Project, Timeouts};
use routerly_providers::Target;

use crate::store::config::Snapshot;

/// A call's timeouts: the settings', then `model`'s overrides, then `project`'s, always in
/// that order. Without a model they are the call-wide ones (the attempt loop's deadline);
/// without a project, a call Routerly makes on its own behalf (a routing model's).
pub(crate) fn call_timeouts(
    snapshot: &Snapshot,
    model: Option<&ModelConfig>,
    project: Option<&Project>,
) -> Timeouts {
    let mut timeouts = snapshot.settings.timeouts;
    if let Some(model) = model {
        timeouts = model.timeouts.apply(timeouts);
    }
    if let Some(project) = project {
        timeouts = project.timeouts.apply(timeouts);
    }
    timeouts
}

/// Where and how a call to `model` goes, with [`call_timeouts`]; `query` is the client's
/// query string, for a call in the client's own format.
pub(crate) fn target_for<'s>(
    snapshot: &'s Snapshot,
    model: &'s ModelConfig,
    project: Option<&Project>,
    query: Option<&'s str>,
) -> Target<'s> {
    Target {
        provider: model.provider,
        endpoint: &model.endpoint,
        upstream_model: &model.upstream_model,
        api_version: model.api_version.as_deref(),
        api_key: snapshot.model_api_key(&model.id),
        timeouts: call_timeouts(snapshot, Some(model), project),
        query,
    }
}
