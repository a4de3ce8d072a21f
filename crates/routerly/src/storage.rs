//! `routerly migrate` and `routerly config export|import`: they open the storage itself
//! (the files of ROUTERLY_HOME, the PostgreSQL database) rather than a running service,
//! since they move what a service would serve from.

use anyhow::Context;
use routerly_server::store::home::Home;
use routerly_server::store::pg::transfer::{self, ConfigWrite};

use crate::cli::{ConfigCommand, MigrateOptions};

/// `routerly migrate --from-files`.
pub async fn migrate(options: MigrateOptions) -> anyhow::Result<()> {
    let home = Home::resolve().context("cannot find the Routerly home")?;
    let progress =
        crate::cli::spinner("Copying the configuration, usage history, API keys and alerts…");
    let records = |read: u64| {
        progress.set_message(format!(
            "Copying the usage history: {read} records read and sent…"
        ))
    };
    let migrated = transfer::from_files(
        &home,
        &options.database.database_url,
        options.force,
        &records,
    )
    .await;
    progress.finish_and_clear();
    let migrated = migrated.with_context(|| format!("cannot migrate {}", home.root.display()))?;
    match migrated.config {
        ConfigWrite::Written(version) => println!("configuration copied (version {version})"),
        ConfigWrite::Unchanged(version) => {
            println!("configuration already there (version {version})")
        }
    }
    println!(
        "usage records: {} read, {} added",
        migrated.usage_read, migrated.usage_added
    );
    println!("admin API keys: {} added", migrated.api_keys_added);
    println!("alerts: {} added", migrated.alerts_added);
    println!(
        "start every replica with ROUTERLY_DATABASE_URL and ROUTERLY_SECRET_KEY set to this \
         installation's master key ({})",
        if std::env::var_os("ROUTERLY_SECRET_KEY").is_some() {
            "the ROUTERLY_SECRET_KEY used now".to_owned()
        } else {
            format!("the contents of {}", home.secret_path().display())
        }
    );
    Ok(())
}

/// `routerly config export|import`.
pub async fn config(command: ConfigCommand) -> anyhow::Result<()> {
    match command {
        ConfigCommand::Export { dir, database } => {
            let version = crate::cli::with_spinner(
                "Reading the configuration from the database…",
                transfer::export(&database.database_url, &dir),
            )
            .await
            .context("cannot export the configuration")?;
            println!(
                "configuration version {version} written to {}",
                dir.display()
            );
        }
        ConfigCommand::Import { dir, database } => {
            let home = Home::resolve().context("cannot find the Routerly home")?;
            let master_key = home
                .master_key()
                .context("the master key the secrets are sealed under")?;
            let written = crate::cli::with_spinner(
                "Checking the files and writing the configuration…",
                transfer::import(&database.database_url, &master_key, &dir),
            )
            .await
            .with_context(|| format!("cannot import {}", dir.display()))?;
            match written {
                ConfigWrite::Written(version) => {
                    println!("configuration imported as version {version}")
                }
                ConfigWrite::Unchanged(version) => {
                    println!("unchanged: the database holds this configuration (version {version})")
                }
            }
        }
    }
    Ok(())
}
