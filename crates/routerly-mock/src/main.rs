//! `routerly-mock`: starts the OpenAI and Anthropic mocks, prints their base URLs as one JSON
//! line, and serves until SIGTERM or SIGINT.

use std::io::Write;
use std::net::IpAddr;

use clap::Parser;
use routerly_mock::{MockKind, MockOptions};

/// Mock OpenAI and Anthropic providers for Routerly's tests and benchmarks.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Address both mocks bind.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port of the OpenAI mock (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    openai_port: u16,
    /// Port of the Anthropic mock (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    anthropic_port: u16,
    /// Credential both mocks require; any is accepted when omitted.
    #[arg(long)]
    api_key: Option<String>,
    /// How many recent requests each mock records (0 records none, e.g. for benchmarks).
    #[arg(long, default_value_t = 1000)]
    record_limit: usize,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let options = |port| MockOptions {
        api_key: args.api_key.clone(),
        host: args.host,
        port,
        record_limit: args.record_limit,
        ..MockOptions::default()
    };
    let openai = routerly_mock::try_spawn(MockKind::OpenAi, options(args.openai_port)).await?;
    let anthropic =
        routerly_mock::try_spawn(MockKind::Anthropic, options(args.anthropic_port)).await?;
    let line = serde_json::json!({"openai": openai.base_url(), "anthropic": anthropic.base_url()});
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()?;
    drop(stdout);
    shutdown_signal().await;
    openai.shutdown();
    anthropic.shutdown();
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
