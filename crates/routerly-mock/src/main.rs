//! `routerly-mock`: starts the OpenAI, Anthropic, Gemini, Mistral, Ollama and Azure mocks,
//! prints their base URLs as one JSON line (keys `openai`, `anthropic`, `gemini`, `mistral`,
//! `ollama`, `azure`), and serves until SIGTERM or SIGINT.

use std::io::Write;
use std::net::IpAddr;

use clap::Parser;
use routerly_mock::{MockKind, MockOptions};

/// Mock LLM providers for Routerly's tests and benchmarks.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Address every mock binds.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port of the OpenAI mock (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    openai_port: u16,
    /// Port of the Anthropic mock (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    anthropic_port: u16,
    /// Port of the Gemini mock (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    gemini_port: u16,
    /// Port of the Mistral mock (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    mistral_port: u16,
    /// Port of the Ollama mock (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    ollama_port: u16,
    /// Port of the Azure OpenAI mock (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    azure_port: u16,
    /// Credential every mock requires; any is accepted when omitted.
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
    let mut servers = Vec::with_capacity(MockKind::ALL.len());
    let mut line = serde_json::Map::new();
    for kind in MockKind::ALL {
        let port = match kind {
            MockKind::OpenAi => args.openai_port,
            MockKind::Anthropic => args.anthropic_port,
            MockKind::Gemini => args.gemini_port,
            MockKind::Mistral => args.mistral_port,
            MockKind::Ollama => args.ollama_port,
            MockKind::Azure => args.azure_port,
        };
        let server = routerly_mock::try_spawn(kind, options(port)).await?;
        line.insert(kind.name().to_owned(), server.base_url().into());
        servers.push(server);
    }
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", serde_json::Value::Object(line))?;
    stdout.flush()?;
    drop(stdout);
    shutdown_signal().await;
    for server in servers {
        server.shutdown();
    }
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
