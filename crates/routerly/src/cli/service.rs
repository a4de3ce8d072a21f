//! `routerly service status|rotate-key` (and `configure`): the service itself.

use clap::Subcommand;
use reqwest::Method;
use routerly_api::settings::{SettingsView, UpdateSettings};
use routerly_api::system::{KeyRotated, MasterKeySource, SystemInfo, UsageWriter};

use super::print_json;
use crate::client::Client;

/// `routerly service …`.
#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Version, uptime, counts and health of the service.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Generate a new master key and re-encrypt every stored secret under it, atomically.
    /// Sessions continue (access tokens are refreshed); API keys keep working.
    #[command(name = "rotate-key")]
    RotateKey {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change settings; address, port and log level apply at the next start.
    Configure(ServiceConfigure),
}

/// Options of `routerly service configure`.
#[derive(Debug, clap::Args)]
pub struct ServiceConfigure {
    /// Budget alert thresholds in percent, such as 50,80,100.
    #[arg(long, value_delimiter = ',')]
    alert_thresholds: Option<Vec<u32>>,
    /// Whether webhooks may target loopback, private and link-local addresses.
    #[arg(long)]
    allow_private_webhooks: Option<bool>,
    /// Port to listen on.
    #[arg(long)]
    port: Option<u16>,
    /// Address to listen on.
    #[arg(long)]
    host: Option<String>,
    /// Log filter, such as info or routerly=debug.
    #[arg(long)]
    log_level: Option<String>,
    /// IANA time zone of calendar budget windows.
    #[arg(long)]
    budget_time_zone: Option<String>,
    /// Output tokens a budget reservation assumes when a request sets no max_tokens.
    #[arg(long)]
    budget_default_output_tokens: Option<u64>,
    /// Environment variables `env:NAME` secrets may name, as patterns such as *_API_KEY
    /// (admin only; ROUTERLY_* is never allowed).
    #[arg(long, value_delimiter = ',')]
    env_allow_list: Option<Vec<String>>,
    /// Days rotated usage segments are kept (deleted whole after), or `forever`.
    #[arg(long, value_name = "DAYS|forever")]
    usage_retention_days: Option<String>,
    /// Days after which rotated usage segments are gzipped, or `never`.
    #[arg(long, value_name = "DAYS|never")]
    usage_compress_after_days: Option<String>,
    /// Days usage rollups keep hour buckets before merging them into days.
    #[arg(long)]
    usage_hourly_rollup_days: Option<u32>,
    /// Print the settings as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `routerly service …`.
pub async fn run(command: ServiceCommand, mut client: Client) -> anyhow::Result<()> {
    match command {
        ServiceCommand::Status { json } => {
            let system: SystemInfo = client.call(Method::GET, "/api/system", None::<&()>).await?;
            if json {
                return print_json(&system);
            }
            println!("server:        {}", client.session().url);
            println!("version:       {}", system.version);
            println!("uptime:        {} s", system.uptime_seconds);
            println!("home:          {}", system.home);
            println!("listen:        {}", system.listen);
            if system.configured_listen != system.listen {
                println!("configured:    {}", system.configured_listen);
            }
            println!(
                "models:        {}   projects: {}   users: {}",
                system.models, system.projects, system.users
            );
            let writer = match system.usage_writer {
                UsageWriter::Ok => "ok",
                UsageWriter::Failing => "failing (see the service log)",
            };
            println!("usage writer:  {writer}");
            let key = match system.master_key_source {
                MasterKeySource::Environment => "ROUTERLY_SECRET_KEY",
                MasterKeySource::File => "config/secret",
            };
            println!("master key:    {key}");
            if let Some(error) = &system.config_error {
                println!("config error:  {error}");
            }
        }
        ServiceCommand::Configure(configure) => {
            // A number of days, or the word that means "no limit" (sent as null).
            let days = |value: &str, none: &str, flag: &str| -> anyhow::Result<Option<u32>> {
                if value == none {
                    return Ok(None);
                }
                value
                    .parse::<u32>()
                    .map(Some)
                    .map_err(|_| anyhow::anyhow!("--{flag} takes a number of days or `{none}`"))
            };
            let change = UpdateSettings {
                alert_thresholds: configure.alert_thresholds,
                env_allow_list: configure.env_allow_list,
                allow_private_webhooks: configure.allow_private_webhooks,
                port: configure.port,
                host: configure.host,
                log_level: configure.log_level,
                budget_time_zone: configure.budget_time_zone,
                budget_default_output_tokens: configure.budget_default_output_tokens,
                usage_retention_days: configure
                    .usage_retention_days
                    .as_deref()
                    .map(|value| days(value, "forever", "usage-retention-days"))
                    .transpose()?,
                usage_compress_after_days: configure
                    .usage_compress_after_days
                    .as_deref()
                    .map(|value| days(value, "never", "usage-compress-after-days"))
                    .transpose()?,
                usage_hourly_rollup_days: configure.usage_hourly_rollup_days,
                ..UpdateSettings::default()
            };
            if change == UpdateSettings::default() {
                anyhow::bail!("nothing to change: give at least one setting (see --help)");
            }
            let settings: SettingsView = client
                .call(Method::PATCH, "/api/settings", Some(&change))
                .await?;
            if configure.json {
                return print_json(&settings);
            }
            println!("Settings saved.");
        }
        ServiceCommand::RotateKey { json } => {
            let answer: KeyRotated = super::with_spinner(
                "Rotating the master key and re-encrypting every secret…",
                client.call(Method::POST, "/api/system/rotate-key", None::<&()>),
            )
            .await?;
            if json {
                return print_json(&answer);
            }
            println!(
                "Master key rotated; {} secret(s) re-encrypted.",
                answer.secrets_reencrypted
            );
        }
    }
    Ok(())
}
