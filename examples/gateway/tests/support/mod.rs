//! What the gateway's test binaries share: a gateway on scripted backends on 127.0.0.1:0,
//! and a tonic router served on a loopback port.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::sync::Arc;
use std::time::Duration;

use catena_core::test_utils::DeterministicEmbedder;
use catena_core::ChatModel;
use catena_core::InMemoryRecordManager;
use catena_vectorstores::InMemoryVectorStore;
use example_gateway::config::Config;
use example_gateway::{Backends, Gateway};
use tokio::sync::oneshot;

/// Test backends: `chat`, the deterministic embedder with `dims` dimensions, an in-memory
/// store and record manager.
pub fn backends(chat: Arc<dyn ChatModel>, dims: usize) -> Backends {
    Backends {
        embedder: Arc::new(DeterministicEmbedder::new(dims)),
        chat,
        store: Arc::new(InMemoryVectorStore::new()),
        records: Arc::new(InMemoryRecordManager::new()),
        chunk_tokens: None,
        description: "test".into(),
    }
}

/// A running gateway; dropping it shuts it down (not waiting), [`Running::shutdown`] waits.
pub struct Running {
    pub base: String,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
}

impl Running {
    /// A POST to `path` with `key` as the bearer token.
    pub fn post(&self, path: &str, key: &str) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.base))
            .bearer_auth(key)
    }

    /// A GET of `path` without credentials.
    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("{}{path}", self.base))
    }

    /// Triggers graceful shutdown and waits (at most 10 s) for it to finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.server)
            .await
            .expect("graceful shutdown finishes")
            .unwrap();
    }
}

/// Starts a gateway with `config` on `backends` on 127.0.0.1:0.
pub async fn start(config: Config, backends: Backends) -> Running {
    let gateway = Gateway::new(config, backends).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        gateway
            .serve(listener, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    Running {
        base,
        http: {
            example_gateway::install_crypto_provider();
            reqwest::Client::new()
        },
        stop: Some(tx),
        server,
    }
}

/// Serves a tonic router (an agent service) on 127.0.0.1:0; returns its URL.
pub async fn serve_grpc(router: tonic::transport::server::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let incoming = futures::stream::unfold(listener, |l| async move {
            Some((l.accept().await.map(|(s, _)| s), l))
        });
        router.serve_with_incoming(incoming).await.unwrap();
    });
    url
}

/// The real gateway binary (`serve`), its environment cleared of what would change its
/// backends or its output: hosted providers, a config file, an exporter, a shared-limits
/// Redis. Logs on a pipe, local models on one thread.
pub fn gateway_command() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_gateway"));
    cmd.arg("serve")
        .env("CANDLE_NUM_THREADS", "1")
        .env("RUST_LOG", "info")
        .env_remove("CATENA_GATEWAY_CONFIG")
        .env_remove("CATENA_RATE_PER_MINUTE")
        .env_remove("CATENA_TOKEN_BUDGET")
        .env_remove("CATENA_REDIS_URL")
        .env_remove("OPENAI_API_KEY")
        .env_remove("GEMINI_API_KEY")
        .env_remove("GOOGLE_API_KEY")
        .env_remove("OLLAMA_HOST")
        .env_remove("QDRANT_URL")
        .env_remove("DATABASE_URL")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Starts `cmd` (from [`gateway_command`]) and waits up to 120 s for its `listening on
/// http://…` line; returns the process and its base URL. Its log keeps being drained (a
/// full pipe would block it); the lines before start-up are echoed as `name: …`.
pub async fn spawn_gateway(
    mut cmd: tokio::process::Command,
    name: &str,
) -> (tokio::process::Child, String) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let base = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(at) = line.find("listening on http://") {
                let url = &line[at + "listening on ".len()..];
                let end = url.find(char::is_whitespace).unwrap_or(url.len());
                return url[..end].to_owned();
            }
            eprintln!("{name}: {line}");
        }
        panic!("{name} exited before listening (are the local models fetched?)");
    })
    .await
    .expect("the gateway starts within 120 s");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, base)
}
