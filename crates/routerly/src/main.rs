//! The `routerly` binary: `routerly serve` runs the service; `migrate` and `config` work
//! on the storage directly (see `storage`); every other command talks to a running service
//! over the management API (see `cli`).

mod cli;
mod client;
mod serve;
mod storage;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = cli::Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts");
    let result = runtime.block_on(async {
        match args.command {
            cli::Command::Serve(options) => serve::run(options).await,
            cli::Command::Migrate(options) => storage::migrate(options).await,
            cli::Command::Config(command) => storage::config(command).await,
            command => cli::run(command, args.server).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("routerly: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
