//! `routerly role list|add|edit|remove`: custom roles, sets of permissions.

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::{print_json, print_table, segment, text};
use crate::client::Client;

/// `routerly role …`.
#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// List built-in and custom roles with their permissions.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add a custom role.
    #[command(
        after_help = "Permissions: model:read, model:write, project:read, project:write,\nproject:members, user:read, user:write, report:read, settings:write.\n\nExample:\n  routerly role add --id auditor --name Auditor --permissions report:read,project:read"
    )]
    Add {
        /// Its id (lowercase letters, digits, - and _).
        #[arg(long)]
        id: String,
        /// Its display name.
        #[arg(long)]
        name: String,
        /// Its permissions, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        permissions: Vec<String>,
        /// Print it as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change a custom role's name or permissions.
    Edit {
        /// The role's id.
        id: String,
        /// New display name.
        #[arg(long)]
        name: Option<String>,
        /// New permissions (replacing the old ones), comma-separated.
        #[arg(long, value_delimiter = ',')]
        permissions: Option<Vec<String>>,
        /// Print it as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a custom role nobody holds.
    Remove {
        /// The role's id.
        id: String,
    },
}

fn permissions_text(role: &Value) -> String {
    role["permissions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

/// Runs `routerly role …`.
pub async fn run(command: RoleCommand, mut client: Client) -> anyhow::Result<()> {
    match command {
        RoleCommand::List { json } => {
            let answer = client.request(Method::GET, "/api/roles", None).await?;
            if json {
                return print_json(&answer["roles"]);
            }
            let rows: Vec<Vec<String>> = answer["roles"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|role| {
                    vec![
                        text(role, "/id"),
                        text(role, "/name"),
                        if role["builtin"] == true {
                            "built-in"
                        } else {
                            "custom"
                        }
                        .to_owned(),
                        permissions_text(role),
                    ]
                })
                .collect();
            print_table(&["ID", "NAME", "KIND", "PERMISSIONS"], &rows);
        }
        RoleCommand::Add {
            id,
            name,
            permissions,
            json,
        } => {
            let role = client
                .request(
                    Method::POST,
                    "/api/roles",
                    Some(&json!({ "id": id, "name": name, "permissions": permissions })),
                )
                .await?;
            if json {
                return print_json(&role);
            }
            println!(
                "Added role {} ({}).",
                text(&role, "/id"),
                permissions_text(&role)
            );
        }
        RoleCommand::Edit {
            id,
            name,
            permissions,
            json,
        } => {
            let mut body = Map::new();
            if let Some(name) = name {
                body.insert("name".into(), Value::String(name));
            }
            if let Some(permissions) = permissions {
                body.insert("permissions".into(), json!(permissions));
            }
            if body.is_empty() {
                anyhow::bail!("nothing to change: give --name or --permissions");
            }
            let role = client
                .request(
                    Method::PATCH,
                    &format!("/api/roles/{}", segment(&id)),
                    Some(&Value::Object(body)),
                )
                .await?;
            if json {
                return print_json(&role);
            }
            println!(
                "Updated role {} ({}).",
                text(&role, "/id"),
                permissions_text(&role)
            );
        }
        RoleCommand::Remove { id } => {
            client
                .request(
                    Method::DELETE,
                    &format!("/api/roles/{}", segment(&id)),
                    None,
                )
                .await?;
            println!("Removed role {id}.");
        }
    }
    Ok(())
}
