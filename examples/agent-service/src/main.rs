//! The Catena agent service: a tool-calling agent (context search, calculator, web search,
//! web fetch) served over the `catena.agent.v1` gRPC contract, with the standard gRPC
//! health service. A gateway delegates tasks to it with
//! `catena_agents::grpc::AgentServiceClient`.
//!
//! Environment:
//! - `CATENA_AGENT_ADDR` — the address to listen on (default `127.0.0.1:50051`; the
//!   `--addr` flag wins). Port 0 picks a free port; the log says which.
//! - The model: `OPENAI_API_KEY`, else `GEMINI_API_KEY`, else `OLLAMA_HOST` (with
//!   `OPENAI_MODEL`, `GEMINI_MODEL`, `OLLAMA_MODEL`, `OLLAMA_EMBED_MODEL`), else the
//!   in-process local models from `CATENA_CHAT_MODEL` and `CATENA_EMBED_MODEL`, by default
//!   from the cache `eval "$(bash scripts/models.sh fetch)"` fills
//!   ([`catena_llms::from_env`]). The start-up log says which.
//! - `OTEL_EXPORTER_OTLP_ENDPOINT` — export spans over OTLP/gRPC
//!   ([`catena_agents::otel::init_tracing`]); tasks join the caller's trace.
//! - `CATENA_AGENT_WEB_ALLOW` — comma-separated hosts (`host` or `host:port`) the web
//!   tools may reach although they are internal (default: public addresses only).
//! - `CATENA_AGENT_TOKEN` — a shared bearer token every `RunTask` call must carry
//!   (`authorization: Bearer …`; the gateway sends it from the same variable). Without it
//!   the service refuses to listen on anything but a loopback address.
//! - `CATENA_AGENT_MAX_STEPS`, `CATENA_AGENT_MAX_TOKENS`, `CATENA_AGENT_MAX_TASKS` — caps
//!   on steps and model tokens per task and on tasks at once, whatever a request asks
//!   (defaults 50, 200,000 and 64).
//! - `CATENA_AGENT_CHECKPOINTS` — where checkpoints are kept: a PostgreSQL URL
//!   (`postgres://…`, a `PostgresCheckpointer`, table `catena_checkpoints`, created on first
//!   use; the choice for replicas, which then resume each other's runs) or a directory
//!   (created if missing; a `FileCheckpointer`). Every task runs durably there, so a run
//!   interrupted by a crash or a restart continues with `ResumeTask`, and `GetTask` replays
//!   a run's events. Unset: no checkpoints.
//! - `CATENA_APPROVAL_TOOLS` — comma-separated tool names whose every call waits for a
//!   person's decision (`ApprovalRequired`, then `Decide`); needs `CATENA_AGENT_CHECKPOINTS`.
//! - `RUST_LOG` — log filter (default `info`). Logs go to stderr.
//!
//! Stops gracefully on SIGTERM or Ctrl-C: health turns `NOT_SERVING` and running tasks
//! finish.
//!
//! Run with `cargo run -p example-agent-service -- --addr 127.0.0.1:50051`.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::net::SocketAddr;
use std::process::ExitCode;

use example_agent_service::{serve, service, ServiceOptions, DEFAULT_ADDR};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const USAGE: &str = "usage: example-agent-service [--addr HOST:PORT]\n\
    \n\
    Serves catena.agent.v1 on HOST:PORT (default: $CATENA_AGENT_ADDR, else 127.0.0.1:50051).";

#[tokio::main]
async fn main() -> ExitCode {
    // Logs to stderr; spans over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set.
    let _tracing = match catena_agents::otel::init_tracing("catena-agent-service") {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("error: tracing: {e}");
            return ExitCode::FAILURE;
        }
    };
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), BoxError> {
    let Some(addr) = parse_args(std::env::args().skip(1))? else {
        println!("{USAGE}");
        return Ok(());
    };
    let token = std::env::var("CATENA_AGENT_TOKEN")
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty());
    // Before anything slow: an open port without credentials is a configuration error.
    catena_agents::grpc::check_bind(addr, token.is_some())?;
    let models = catena_llms::from_env()?;
    tracing::info!(model = %models.description, "chat model and embedder");

    let mut options = ServiceOptions::new();
    if let Ok(hosts) = std::env::var("CATENA_AGENT_WEB_ALLOW") {
        for host in hosts.split(',').map(str::trim).filter(|h| !h.is_empty()) {
            options = options.with_web_allow_host(host);
        }
    }
    if let Some(place) = std::env::var_os("CATENA_AGENT_CHECKPOINTS").filter(|d| !d.is_empty()) {
        options = options.with_checkpointer(checkpointer_at(&place)?);
    }
    if let Ok(tools) = std::env::var("CATENA_APPROVAL_TOOLS") {
        for tool in tools.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            options = options.with_approval_tool(tool);
        }
    }
    let mut service = service(models.chat, models.embedder, options)?;
    let number = |name: &str| -> Result<Option<u64>, BoxError> {
        match std::env::var(name).ok().filter(|v| !v.trim().is_empty()) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| format!("{name}={v:?} is not a whole number").into()),
        }
    };
    if let Some(steps) = number("CATENA_AGENT_MAX_STEPS")? {
        service = service.max_steps(u32::try_from(steps).unwrap_or(u32::MAX));
    }
    if let Some(tokens) = number("CATENA_AGENT_MAX_TOKENS")? {
        service = service.max_tokens(Some(tokens));
    }
    if let Some(tasks) = number("CATENA_AGENT_MAX_TASKS")? {
        service = service.max_concurrent_tasks(usize::try_from(tasks).unwrap_or(usize::MAX));
    }
    if let Some(token) = token {
        service = service.require_bearer_token(token);
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr()?;
    tracing::info!(addr = %local, "serving catena.agent.v1 and grpc.health.v1");
    serve(listener, service, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// The address to listen on, or `None` for `--help`.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<SocketAddr>, BoxError> {
    let mut addr = std::env::var("CATENA_AGENT_ADDR")
        .ok()
        .filter(|a| !a.trim().is_empty());
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => addr = Some(args.next().ok_or("--addr needs a value")?),
            "-h" | "--help" => return Ok(None),
            other => match other.strip_prefix("--addr=") {
                Some(value) => addr = Some(value.to_owned()),
                None => return Err(format!("unknown argument `{other}`\n{USAGE}").into()),
            },
        }
    }
    let addr = addr.unwrap_or_else(|| DEFAULT_ADDR.to_owned());
    let parsed = addr
        .parse()
        .map_err(|e| format!("invalid address `{addr}`: {e}"))?;
    Ok(Some(parsed))
}

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}

/// The checkpointer `CATENA_AGENT_CHECKPOINTS` names: PostgreSQL for a `postgres://` or
/// `postgresql://` URL, else a directory on disk. The URL (and its password) is never logged.
fn checkpointer_at(
    place: &std::ffi::OsStr,
) -> Result<std::sync::Arc<dyn catena_core::Checkpointer>, BoxError> {
    let text = place.to_string_lossy();
    if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        let checkpointer = catena_vectorstores::PostgresCheckpointer::builder()
            .url(text.as_ref())
            .build()?;
        tracing::info!(
            table = checkpointer.table(),
            "durable runs: checkpoints in PostgreSQL"
        );
        return Ok(std::sync::Arc::new(checkpointer));
    }
    let checkpointer = catena_core::FileCheckpointer::new(place)?;
    tracing::info!(dir = %std::path::Path::new(place).display(), "durable runs: checkpoints on disk");
    Ok(std::sync::Arc::new(checkpointer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Result<Option<SocketAddr>, BoxError> {
        parse_args(a.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn parses_the_address_flag() {
        let addr = args(&["--addr", "127.0.0.1:7000"]).unwrap().unwrap();
        assert_eq!(addr.port(), 7000);
        let addr = args(&["--addr=0.0.0.0:0"]).unwrap().unwrap();
        assert_eq!(addr.port(), 0);
        assert!(args(&["--help"]).unwrap().is_none());
        assert!(args(&["--addr"]).is_err());
        assert!(args(&["--addr", "nowhere"]).is_err());
        assert!(args(&["--scripted"]).is_err());
    }
}
