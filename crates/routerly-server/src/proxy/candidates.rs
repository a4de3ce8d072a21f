//! Which models may serve a request, in the order they are tried (until the routing
//! engine ranks them): PRODUCT.md, "The life of a request", step 4.

use chrono::{DateTime, Utc};
use routerly_core::canonical::{ErrorBody, ErrorKind};
use routerly_core::config::{ModelConfig, Project, ProjectToken};
use routerly_core::usage;

use crate::store::config::Snapshot;

/// The name clients use to let the project choose.
pub const AUTO: &str = "auto";

/// The candidates for `requested`: for `auto`, the project's models in their configured
/// order; for a model id or alias, that model first and the others after it as
/// fallbacks. Models the token may not use are left out.
pub fn resolve<'s>(
    snapshot: &'s Snapshot,
    project: &'s Project,
    token: &ProjectToken,
    requested: &str,
) -> Result<Vec<&'s ModelConfig>, ErrorBody> {
    let allowed =
        |model_id: &str| token.models.is_empty() || token.models.iter().any(|m| m == model_id);
    let usable: Vec<&'s ModelConfig> = project
        .models
        .iter()
        .filter(|project_model| allowed(&project_model.model_id))
        .filter_map(|project_model| snapshot.model(&project_model.model_id))
        .collect();
    if requested.is_empty() || requested == AUTO {
        if usable.is_empty() {
            return Err(ErrorBody::new(
                ErrorKind::NotFound,
                "This project has no models this token may use; add one with `routerly project model add`.",
            )
            .with_code("model_not_found"));
        }
        return Ok(usable);
    }
    let named = project.models.iter().find(|project_model| {
        project_model.model_id == requested
            || project_model.aliases.iter().any(|alias| alias == requested)
    });
    let Some(named) = named else {
        return Err(model_not_found(requested));
    };
    if !allowed(&named.model_id) {
        return Err(ErrorBody::new(
            ErrorKind::Permission,
            format!(
                "This token may not use the model `{}`.",
                usage::clip(requested, usage::MAX_ECHOED_NAME_CHARS)
            ),
        )
        .with_code("model_not_allowed"));
    }
    let mut ordered = Vec::with_capacity(usable.len());
    ordered.extend(
        usable
            .iter()
            .copied()
            .filter(|model| model.id == named.model_id),
    );
    ordered.extend(
        usable
            .iter()
            .copied()
            .filter(|model| model.id != named.model_id),
    );
    Ok(ordered)
}

/// The 404 for a model name the project does not know.
pub fn model_not_found(requested: &str) -> ErrorBody {
    let requested = usage::clip(requested, usage::MAX_ECHOED_NAME_CHARS);
    ErrorBody::new(
        ErrorKind::NotFound,
        format!("The model `{requested}` does not exist in this project; use `auto` or one of the names `GET /v1/models` lists."),
    )
    .with_param("model")
    .with_code("model_not_found")
}

/// One name `/v1/models` lists.
pub struct ListedName {
    /// The id, alias or `auto`.
    pub name: String,
    /// When the model was registered.
    pub created_at: DateTime<Utc>,
    /// The provider (or `routerly` for `auto`).
    pub owned_by: String,
}

/// `auto`, then every project model the token may use, each followed by its aliases.
pub fn listed_names(
    snapshot: &Snapshot,
    project: &Project,
    token: &ProjectToken,
) -> Vec<ListedName> {
    let mut names = vec![ListedName {
        name: AUTO.to_owned(),
        created_at: project.created_at,
        owned_by: "routerly".to_owned(),
    }];
    for project_model in &project.models {
        if !(token.models.is_empty() || token.models.contains(&project_model.model_id)) {
            continue;
        }
        let Some(model) = snapshot.model(&project_model.model_id) else {
            continue;
        };
        for name in std::iter::once(&project_model.model_id).chain(&project_model.aliases) {
            names.push(ListedName {
                name: name.clone(),
                created_at: model.created_at,
                owned_by: model.provider.as_str().to_owned(),
            });
        }
    }
    names
}
