//! `routerly serve`: open the home, bind, serve until SIGINT or SIGTERM.

use std::io::{IsTerminal, Write};

use anyhow::Context;
use routerly_server::Service;
use routerly_server::logging::{self, BufferedStderr};
use routerly_server::store::home::Home;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

use crate::cli::ServeOptions;

/// Runs the service in the foreground.
pub async fn run(options: ServeOptions) -> anyhow::Result<()> {
    let home = Home::resolve().context("cannot find the Routerly home")?;
    let settings_level = log_setting(&home, "log_level");
    let filter = EnvFilter::try_from_env("ROUTERLY_LOG")
        .or_else(|_| EnvFilter::try_new(settings_level.as_deref().unwrap_or("info")))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let format = std::env::var("ROUTERLY_LOG_FORMAT")
        .ok()
        .or_else(|| log_setting(&home, "log_format"));
    let writer = BufferedStderr::start().context("cannot start the log writer")?;
    // Colour codes only for a terminal: they cost ~10 % of a request's instructions.
    let logger = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer.clone());
    let json = format
        .as_deref()
        .is_some_and(|format| format.trim().eq_ignore_ascii_case("json"));
    if json {
        // One JSON object per line, the request's fields at the top level.
        logger.json().flatten_event(true).init();
    } else {
        logger.init();
    }
    logging::install_request_log(writer.clone(), json);
    routerly_server::panics::install_hook();
    // Before anything is opened, and before "listening" is printed: the limit is in force
    // from the first file and the first connection (the listener raises it again, a no-op).
    routerly_server::net::raise_nofile_limit();
    let result = run_service(home, options).await;
    writer.flush();
    result
}

/// Runs the service once logging is set up.
async fn run_service(home: Home, options: ServeOptions) -> anyhow::Result<()> {
    let service = Service::open(home.clone())
        .await
        .with_context(|| format!("cannot start with ROUTERLY_HOME={}", home.root.display()))?;
    let settings = service.app().store.snapshot().settings.clone();
    let host = options
        .host
        .or_else(|| std::env::var("ROUTERLY_HOST").ok())
        .unwrap_or(settings.host);
    let port = match options.port {
        Some(port) => port,
        None => match std::env::var("ROUTERLY_PORT") {
            Ok(port) => port.parse().context("ROUTERLY_PORT is not a port number")?,
            Err(_) => settings.port,
        },
    };
    let listener = TcpListener::bind((host.as_str(), port))
        .await
        .with_context(|| format!("cannot listen on {host}:{port}"))?;
    let address = listener
        .local_addr()
        .context("the listener has no address")?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "routerly listening on http://{address}")?;
    if let Some(token) = &service.new_setup_token {
        writeln!(
            stdout,
            "first start: create the first admin at http://{address}/dashboard or with `routerly setup`; \
             from another machine you need this one-time setup token: {token}"
        )?;
    }
    stdout.flush()?;
    service.serve(listener, shutdown_signal()).await?;
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("SIGTERM can be handled");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

/// A string setting of `config/settings.json` (`log_level`, `log_format`), read before
/// logging starts.
fn log_setting(home: &Home, name: &str) -> Option<String> {
    let text = std::fs::read(home.root.join("config").join("settings.json")).ok()?;
    let settings: serde_json::Value = serde_json::from_slice(&text).ok()?;
    settings.get(name)?.as_str().map(str::to_owned)
}
