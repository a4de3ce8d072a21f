//! The `routerly` binary: `routerly serve` runs the service; `migrate` and `config` work
//! on the storage directly (see `storage`); every other command talks to a running service
//! over the management API (see `cli`).

mod cli;
mod client;
mod serve;
mod storage;

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let args = cli::Args::parse();
    // The service spreads its connections over every core; a CLI command is one client's
    // requests in turn, on one thread (with mimalloc, memory a thread frees for another is
    // reused later: an export's downloaded chunks, read on one worker and written on the
    // other, raised the CLI's peak by a few MB).
    let runtime = match args.command {
        cli::Command::Serve(_) | cli::Command::Migrate(_) | cli::Command::Config(_) => {
            tokio::runtime::Builder::new_multi_thread()
        }
        _ => tokio::runtime::Builder::new_current_thread(),
    }
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
