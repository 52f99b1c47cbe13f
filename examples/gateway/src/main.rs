//! The gateway binary.
//!
//! ```text
//! gateway [serve] [--config FILE]      serve the HTTP API (default 127.0.0.1:8080)
//! gateway demo [--corpus DIR] [QUESTION...]
//!                                      start on a free loopback port, ingest a folder of
//!                                      Markdown (default: this repository's docs/), ask one
//!                                      question through the HTTP API, print answer and sources
//! gateway hash-key KEY                 print the SHA-256 to configure for an API key
//! ```
//!
//! Configuration: `--config FILE` or `CATENA_GATEWAY_CONFIG` (TOML), then the environment
//! (see `example_gateway::config` and `example_gateway::Backends`). With no API key hash
//! configured, `serve` makes a random key for the run and prints it.

use example_gateway::auth::{generate_key, hash_key};
use example_gateway::{config::Config, demo::Demo, shutdown_signal};
use example_gateway::{Backends, Gateway, GatewayError};

#[tokio::main]
async fn main() {
    // Logs to stderr; spans over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set.
    let _tracing = catena_agents::otel::init_tracing("catena-gateway")
        .unwrap_or_else(|e| fail(&format!("tracing: {e}")));
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        None | Some("serve") => serve(args.get(1..).unwrap_or_default()).await,
        Some("demo") => demo(Demo::from_args(&args[1..])).await,
        Some("hash-key") => args
            .get(1)
            .map(|key| println!("{}", hash_key(key)))
            .ok_or_else(|| GatewayError::Config("usage: gateway hash-key KEY".into())),
        Some(flag) if flag.starts_with("--") => serve(&args).await,
        Some(other) => Err(GatewayError::Config(format!(
            "unknown command {other:?} (serve, demo, hash-key)"
        ))),
    };
    result.unwrap_or_else(|e| fail(&e.to_string()));
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1)
}

/// `gateway serve`: the HTTP API until Ctrl-C or SIGTERM.
async fn serve(args: &[String]) -> Result<(), GatewayError> {
    let mut config = Config::from_args(args)?;
    if config.auth.api_key_sha256.is_empty() && config.auth.keys.is_empty() {
        let key = generate_key()?;
        eprintln!("no API key configured (auth.api_key_sha256 / CATENA_API_KEY_SHA256): this run accepts\n\n    Authorization: Bearer {key}\n");
        config.auth.api_key_sha256.push(hash_key(&key));
    }
    let backends = Backends::from_config(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let gateway = Gateway::new(config, backends)?;
    tracing::info!(%addr, backends = gateway.description(), "gateway listening on http://{addr}");
    gateway.serve(listener, shutdown_signal()).await
}

/// `gateway demo`: a gateway on a loopback port for this run, and the demo client against it.
async fn demo(demo: Demo) -> Result<(), GatewayError> {
    let mut config = Config::from_args(&[])?;
    let key = demo.configure(&mut config)?;
    let backends = Backends::from_config(&config).await?;
    eprintln!("gateway demo: {}", backends.description);
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let stopped = async {
        let _ = stopped.await;
    };
    let server = tokio::spawn(Gateway::new(config, backends)?.serve(listener, stopped));
    println!("{}", demo.run(&base, &key).await?);
    let _ = stop.send(());
    let _ = server.await;
    Ok(())
}
