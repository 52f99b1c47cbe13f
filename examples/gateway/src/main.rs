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
//! (see `example_gateway::config` and `example_gateway::backends`). With no API key hash
//! configured, `serve` makes a random key for the run and prints it.

use std::path::PathBuf;
use std::time::Duration;

use catena_core::loader::{DirectoryLoader, DocumentLoader};
use example_gateway::auth::hash_key;
use example_gateway::config::Config;
use example_gateway::{Backends, Gateway, GatewayError};
use serde_json::{json, Value};

const DEFAULT_QUESTION: &str = "How does the recursive splitter choose where to cut?";

#[tokio::main]
async fn main() {
    // Logs to stderr; spans over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set.
    let _tracing = match catena_agents::grpc::otel::init_tracing("catena-gateway") {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("error: tracing: {e}");
            std::process::exit(1);
        }
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        None | Some("serve") => serve(args.get(1..).unwrap_or_default()).await,
        Some("demo") => demo(&args[1..]).await,
        Some("hash-key") => match args.get(1) {
            Some(key) => {
                println!("{}", hash_key(key));
                Ok(())
            }
            None => Err(GatewayError::Config("usage: gateway hash-key KEY".into())),
        },
        Some(flag) if flag.starts_with("--") => serve(&args).await,
        Some(other) => Err(GatewayError::Config(format!(
            "unknown command {other:?} (serve, demo, hash-key)"
        ))),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn flag_value(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn random_key() -> Result<String, GatewayError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 24];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| GatewayError::Config("no system randomness for an API key".into()))?;
    Ok(format!(
        "ck_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

fn load_config(args: &[String]) -> Result<Config, GatewayError> {
    let path = flag_value(args, "--config")
        .or_else(|| std::env::var("CATENA_GATEWAY_CONFIG").ok())
        .map(PathBuf::from);
    Config::load(path.as_deref())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

async fn serve(args: &[String]) -> Result<(), GatewayError> {
    let mut config = load_config(args)?;
    if config.auth.api_key_sha256.is_empty() {
        let key = random_key()?;
        eprintln!(
            "no API key configured (auth.api_key_sha256 / CATENA_API_KEY_SHA256): this run accepts\n\n    Authorization: Bearer {key}\n"
        );
        config.auth.api_key_sha256.push(hash_key(&key));
    }
    let backends = Backends::from_env(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let gateway = Gateway::new(config, backends)?;
    tracing::info!(%addr, backends = gateway.description(), "gateway listening on http://{addr}");
    gateway.serve(listener, shutdown_signal()).await
}

async fn demo(args: &[String]) -> Result<(), GatewayError> {
    let corpus = flag_value(args, "--corpus")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs")));
    let mut words: Vec<&String> = Vec::new();
    let mut skip = false;
    for a in args {
        if skip {
            skip = false;
        } else if a == "--corpus" {
            skip = true;
        } else {
            words.push(a);
        }
    }
    let question = words
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let question = if question.trim().is_empty() {
        DEFAULT_QUESTION.to_owned()
    } else {
        question
    };

    let mut config = load_config(&[])?;
    config.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let key = random_key()?;
    config.auth.api_key_sha256 = vec![hash_key(&key)];
    let backends = Backends::from_env(&config).await?;
    eprintln!("gateway demo: {}", backends.description);
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let base = format!("http://{}", listener.local_addr()?);
    let gateway = Gateway::new(config, backends)?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(gateway.serve(listener, async {
        let _ = stop_rx.await;
    }));

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()
        .map_err(|e| GatewayError::Config(format!("http client: {e}")))?;
    let call = |path: &str, body: Value| {
        http.post(format!("{base}{path}"))
            .bearer_auth(&key)
            .json(&body)
            .send()
    };

    // Ingest the corpus through the API.
    let docs = DirectoryLoader::builder(&corpus)
        .include("**/*.md")
        .build()
        .map_err(catena_core::Error::from)?
        .load()?;
    if docs.is_empty() {
        return Err(GatewayError::Config(format!(
            "no Markdown files under {}",
            corpus.display()
        )));
    }
    let documents: Vec<Value> = docs
        .iter()
        .map(|d| {
            json!({
                "source": d.source().unwrap_or("unknown"),
                "content": d.content,
            })
        })
        .collect();
    eprintln!(
        "POST {base}/v1/documents ({} files from {})",
        documents.len(),
        corpus.display()
    );
    let res = call("/v1/documents", json!({ "documents": documents }))
        .await
        .map_err(|e| GatewayError::Config(format!("ingest request: {e}")))?;
    let status = res.status();
    let report: Value = res
        .json()
        .await
        .map_err(|e| GatewayError::Config(format!("ingest response: {e}")))?;
    if !status.is_success() {
        return Err(GatewayError::Config(format!(
            "ingest failed ({status}): {report}"
        )));
    }
    eprintln!("ingest report: {report}");

    eprintln!("POST {base}/v1/query");
    let res = call("/v1/query", json!({ "question": question }))
        .await
        .map_err(|e| GatewayError::Config(format!("query request: {e}")))?;
    let status = res.status();
    let answer: Value = res
        .json()
        .await
        .map_err(|e| GatewayError::Config(format!("query response: {e}")))?;
    if !status.is_success() {
        return Err(GatewayError::Config(format!(
            "query failed ({status}): {answer}"
        )));
    }
    println!("Question: {question}\n");
    println!(
        "Answer: {}\n",
        answer["answer"].as_str().unwrap_or_default().trim()
    );
    println!("Sources:");
    for s in answer["sources"].as_array().into_iter().flatten() {
        println!(
            "  - {} (score {:.3})",
            s["source"].as_str().unwrap_or("?"),
            s["score"].as_f64().unwrap_or_default()
        );
    }
    let _ = stop_tx.send(());
    let _ = server.await;
    Ok(())
}
