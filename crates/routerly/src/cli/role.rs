//! `routerly role list|add|edit|remove`: custom roles, sets of permissions.

use clap::Subcommand;
use reqwest::Method;
use routerly_api::roles::{CreateRole, RoleList, RoleView, UpdateRole};

use super::{print_json, print_table, segment};
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

/// Runs `routerly role …`.
pub async fn run(command: RoleCommand, mut client: Client) -> anyhow::Result<()> {
    match command {
        RoleCommand::List { json } => {
            let answer: RoleList = client.call(Method::GET, "/api/roles", None::<&()>).await?;
            if json {
                return print_json(&answer.roles);
            }
            let rows: Vec<Vec<String>> = answer
                .roles
                .into_iter()
                .map(|role| {
                    let kind = if role.builtin { "built-in" } else { "custom" };
                    let permissions = role.permissions.join(",");
                    vec![role.id, role.name, kind.to_owned(), permissions]
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
            let body = CreateRole {
                id,
                name,
                permissions,
            };
            let role: RoleView = client.call(Method::POST, "/api/roles", Some(&body)).await?;
            if json {
                return print_json(&role);
            }
            println!("Added role {} ({}).", role.id, role.permissions.join(","));
        }
        RoleCommand::Edit {
            id,
            name,
            permissions,
            json,
        } => {
            let body = UpdateRole { name, permissions };
            if body == UpdateRole::default() {
                anyhow::bail!("nothing to change: give --name or --permissions");
            }
            let role: RoleView = client
                .call(
                    Method::PATCH,
                    &format!("/api/roles/{}", segment(&id)),
                    Some(&body),
                )
                .await?;
            if json {
                return print_json(&role);
            }
            println!("Updated role {} ({}).", role.id, role.permissions.join(","));
        }
        RoleCommand::Remove { id } => {
            client
                .delete(&format!("/api/roles/{}", segment(&id)))
                .await?;
            println!("Removed role {id}.");
        }
    }
    Ok(())
}
