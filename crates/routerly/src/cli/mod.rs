//! The command tree and what each command does, over the management API.

mod auth;
mod channel;
mod limit;
mod model;
mod project;
mod report;
mod role;
mod routing;
mod service;
mod status;
mod user;

use clap::{Parser, Subcommand};

use crate::client::{Client, SessionsFile, post_anonymous, session_from_login};
pub use auth::AuthCommand;
pub use channel::ChannelCommand;
pub use limit::LimitCommand;
pub use model::ModelCommand;
pub use project::ProjectCommand;
pub use report::ReportCommand;
pub use role::RoleCommand;
pub use service::ServiceCommand;
pub use user::UserCommand;

/// Examples shown under `routerly --help`.
const EXAMPLES: &str = "\
Examples:
  routerly serve --port 3000
  routerly setup --url http://localhost:3000 --email admin@example.com --password '…'
  routerly model add --id gpt-4o --provider openai --api-key env:OPENAI_API_KEY
  routerly project create --name shop --json
  routerly project model add shop gpt-4o --alias default
  routerly project token create shop --labels web --json
  routerly report calls --project shop --limit 20

Every command but `serve`, `migrate` and `config` talks to a running service (the current session, `--server ALIAS`,
or ROUTERLY_API_KEY with ROUTERLY_URL). Listings take --json.";

/// Routerly: a self-hosted LLM API gateway.
#[derive(Debug, Parser)]
#[command(name = "routerly", version, about = "Routerly: a self-hosted LLM API gateway.", after_help = EXAMPLES)]
pub struct Args {
    /// Use this saved session instead of the current one.
    #[arg(long, global = true, env = "ROUTERLY_SERVER")]
    pub server: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service in the foreground.
    Serve(ServeOptions),
    /// Create the first admin on a fresh install and log in.
    Setup {
        /// The server's URL.
        #[arg(long)]
        url: String,
        /// The admin's email.
        #[arg(long)]
        email: String,
        /// The admin's password (at least 8 characters).
        #[arg(long)]
        password: String,
        /// The one-time setup token (needed from another machine than the server).
        #[arg(long)]
        setup_token: Option<String>,
        /// Save the session under this alias.
        #[arg(long, default_value = "default")]
        alias: String,
    },
    /// Is the server up, and who am I on it.
    Status(status::StatusOptions),
    /// Log in and out, saved servers, admin API keys.
    #[command(subcommand)]
    Auth(AuthCommand),
    /// Registered models.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Projects, their models and tokens.
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Usage reports.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Budgets and rate limits at every level.
    #[command(subcommand)]
    Limit(LimitCommand),
    /// Where budget alerts go: email (SMTP) and webhooks.
    #[command(subcommand)]
    Channel(ChannelCommand),
    /// Users of the dashboard and CLI.
    #[command(subcommand)]
    User(UserCommand),
    /// Custom roles: sets of permissions.
    #[command(subcommand)]
    Role(RoleCommand),
    /// The service: status, settings, master-key rotation.
    #[command(subcommand)]
    Service(ServiceCommand),
    /// Copy this file installation (ROUTERLY_HOME) into PostgreSQL: run on the machine
    /// that holds it, with the service stopped.
    #[command(
        after_help = "Example:\n  ROUTERLY_DATABASE_URL='host=db user=routerly dbname=routerly' \\\n    routerly migrate --from-files\n\n\
        Copies the configuration (secrets stay encrypted under this home's master key: give every \
        replica that key as ROUTERLY_SECRET_KEY) and the usage history. Running it again adds only \
        what is missing; a database holding another configuration is refused without --force."
    )]
    Migrate(MigrateOptions),
    /// The configuration in PostgreSQL as files: export, edit or keep in Git, import.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script.
    #[command(
        after_help = "Example:\n  routerly completions bash > /etc/bash_completion.d/routerly"
    )]
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

/// The database the storage commands work on.
#[derive(Debug, clap::Args)]
pub struct DatabaseOption {
    /// The PostgreSQL connection string (its value is never printed).
    #[arg(long, env = "ROUTERLY_DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
}

/// Options of `routerly migrate`.
#[derive(Debug, clap::Args)]
pub struct MigrateOptions {
    /// Copy from the files of ROUTERLY_HOME (the only source there is).
    #[arg(long, required = true)]
    pub from_files: bool,
    /// Replace a configuration the database already holds.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub database: DatabaseOption,
}

/// `routerly config …`: run where the database is reachable, not through a service.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Write the configuration in force as settings.json, models.json, projects.json,
    /// users.json, roles.json and limits.json in a directory (secrets stay encrypted).
    Export {
        /// The directory (created if missing; the six files in it are replaced).
        #[arg(long)]
        dir: std::path::PathBuf,
        #[command(flatten)]
        database: DatabaseOption,
    },
    /// Replace the configuration with the six files of a directory, once they are valid
    /// under the master key (ROUTERLY_SECRET_KEY); running replicas apply it within a second.
    Import {
        /// The directory holding the six files.
        #[arg(long)]
        dir: std::path::PathBuf,
        #[command(flatten)]
        database: DatabaseOption,
    },
}

/// Options of `routerly serve`.
#[derive(Debug, clap::Args)]
pub struct ServeOptions {
    /// Address to listen on (default from settings, then `ROUTERLY_HOST`).
    #[arg(long)]
    pub host: Option<String>,
    /// Port to listen on (default from settings, then `ROUTERLY_PORT`).
    #[arg(long)]
    pub port: Option<u16>,
}

/// Percent-encodes a path segment.
pub(crate) fn segment(value: &str) -> String {
    let mut encoded = String::new();
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Awaits `work` with a spinner saying `message` on stderr, for a command that can take
/// more than a second (a delivery, a key rotation, a password check, a migration). It is
/// drawn only when stderr is a terminal, so scripts and `--json` output see nothing of it.
pub(crate) async fn with_spinner<T>(
    message: &str,
    work: impl std::future::Future<Output = T>,
) -> T {
    let spinner = spinner(message);
    let result = work.await;
    spinner.finish_and_clear();
    result
}

/// A spinner saying `message` on stderr, ticking on its own until finished; drawn only when
/// stderr is a terminal. Its message can be replaced to show how far the work has come.
pub(crate) fn spinner(message: &str) -> indicatif::ProgressBar {
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.set_message(message.to_owned());
    spinner.enable_steady_tick(std::time::Duration::from_millis(100));
    spinner
}

/// Prints an answer as pretty JSON.
pub(crate) fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Prints rows as an aligned table.
pub(crate) fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers
        .iter()
        .map(|header| header.chars().count())
        .collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.iter().map(|header| header.to_string()).collect());
    for row in rows {
        line(row.clone());
    }
    if rows.is_empty() {
        println!("(none)");
    }
}

/// Runs a command other than `serve`.
pub async fn run(command: Command, server: Option<String>) -> anyhow::Result<()> {
    match command {
        Command::Serve(_) | Command::Migrate(_) | Command::Config(_) => {
            unreachable!("serve and the storage commands are run by main")
        }
        Command::Setup {
            url,
            email,
            password,
            setup_token,
            alias,
        } => {
            let answer: routerly_api::auth::Session = with_spinner(
                "Creating the first admin…",
                post_anonymous(
                    &url,
                    "/api/setup/first-admin",
                    &routerly_api::setup::FirstAdmin {
                        email: email.clone(),
                        password,
                        setup_token,
                    },
                ),
            )
            .await?;
            SessionsFile::remember(&alias, session_from_login(&url, answer))?;
            println!("Created the first admin {email} and logged in (session `{alias}`).");
            Ok(())
        }
        Command::Status(options) => status::run(options, server).await,
        Command::Auth(command) => auth::run(command, server).await,
        Command::User(command) => user::run(command, Client::open(server.as_deref())?).await,
        Command::Role(command) => role::run(command, Client::open(server.as_deref())?).await,
        Command::Service(command) => service::run(command, Client::open(server.as_deref())?).await,
        Command::Completions { shell } => {
            let mut command = <Args as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "routerly", &mut std::io::stdout());
            Ok(())
        }
        Command::Model(command) => model::run(command, Client::open(server.as_deref())?).await,
        Command::Project(command) => project::run(command, Client::open(server.as_deref())?).await,
        Command::Report(command) => report::run(command, Client::open(server.as_deref())?).await,
        Command::Limit(command) => limit::run(command, Client::open(server.as_deref())?).await,
        Command::Channel(command) => channel::run(command, Client::open(server.as_deref())?).await,
    }
}
