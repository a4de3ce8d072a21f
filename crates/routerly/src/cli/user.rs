//! `routerly user list|add|edit|remove`.

use clap::Subcommand;
use reqwest::Method;
use routerly_api::users::{CreateUser, UpdateUser, UserList, UserView};

use super::{print_json, print_table, segment};
use crate::client::Client;

/// `routerly user …`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// List users.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Add a user.
    #[command(
        after_help = "Examples:\n  routerly user add --email ops@example.com --password '…' --role operator\n  routerly user add --email dev@example.com --password '…' --projects shop:editor,blog"
    )]
    Add {
        /// Their email, used to log in.
        #[arg(long)]
        email: String,
        /// Their password (at least 8 characters).
        #[arg(long)]
        password: String,
        /// Global role: admin, operator, viewer, none or a custom role (default viewer, or
        /// none when --projects is given).
        #[arg(long)]
        role: Option<String>,
        /// Project memberships, comma-separated: PROJECT (as viewer) or PROJECT:ROLE.
        #[arg(long, value_delimiter = ',')]
        projects: Vec<String>,
        /// Print the user as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change a user's role, email, password or memberships.
    Edit {
        /// The user's email or id.
        user: String,
        /// New global role.
        #[arg(long)]
        role: Option<String>,
        /// New email.
        #[arg(long)]
        email: Option<String>,
        /// New password (their sessions end).
        #[arg(long)]
        password: Option<String>,
        /// Memberships to add or change: PROJECT or PROJECT:ROLE.
        #[arg(long, value_delimiter = ',')]
        projects: Option<Vec<String>>,
        /// Print the user as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a user (their sessions end at once).
    Remove {
        /// The user's email or id.
        user: String,
    },
}

/// `slug:role` of each of the user's projects, comma-separated.
fn memberships(user: &UserView) -> String {
    user.projects
        .iter()
        .map(|project| format!("{}:{}", project.slug, project.role))
        .collect::<Vec<_>>()
        .join(",")
}

fn print_user(user: &UserView) {
    let projects = memberships(user);
    println!(
        "{} ({}, role {}{})",
        user.email,
        user.id,
        user.role,
        if projects.is_empty() {
            String::new()
        } else {
            format!(", projects {projects}")
        }
    );
}

/// Runs `routerly user …`.
pub async fn run(command: UserCommand, mut client: Client) -> anyhow::Result<()> {
    match command {
        UserCommand::List { json } => {
            let answer: UserList = client.call(Method::GET, "/api/users", None::<&()>).await?;
            if json {
                return print_json(&answer.users);
            }
            let rows: Vec<Vec<String>> = answer
                .users
                .iter()
                .map(|user| {
                    vec![
                        user.email.clone(),
                        user.role.clone(),
                        memberships(user),
                        user.id.clone(),
                    ]
                })
                .collect();
            print_table(&["EMAIL", "ROLE", "PROJECTS", "ID"], &rows);
        }
        UserCommand::Add {
            email,
            password,
            role,
            projects,
            json,
        } => {
            let body = CreateUser {
                email,
                password,
                role,
                projects,
            };
            let user: UserView = client.call(Method::POST, "/api/users", Some(&body)).await?;
            if json {
                return print_json(&user);
            }
            print!("Added user ");
            print_user(&user);
        }
        UserCommand::Edit {
            user,
            role,
            email,
            password,
            projects,
            json,
        } => {
            let body = UpdateUser {
                email,
                password,
                role,
                projects,
            };
            if body == UpdateUser::default() {
                anyhow::bail!("nothing to change: give --role, --email, --password or --projects");
            }
            let updated: UserView = client
                .call(
                    Method::PATCH,
                    &format!("/api/users/{}", segment(&user)),
                    Some(&body),
                )
                .await?;
            if json {
                return print_json(&updated);
            }
            print!("Updated user ");
            print_user(&updated);
        }
        UserCommand::Remove { user } => {
            client
                .delete(&format!("/api/users/{}", segment(&user)))
                .await?;
            println!("Removed user {user}.");
        }
    }
    Ok(())
}
