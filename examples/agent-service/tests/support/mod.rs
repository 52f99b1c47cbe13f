//! Helpers shared by the agent service's integration tests: loopback servers, the typed
//! client, health checks, and an HTTP server that never answers.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use catena_agents::grpc::{
    AgentGrpcService, AgentServiceClient, TaskError, TaskEvent, TaskRequest,
};
use catena_core::{Document, ScoredDocument};
use futures::StreamExt;
use tokio::io::AsyncReadExt;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// A running service on 127.0.0.1:0; dropping it stops the server.
pub struct Server {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    pub done: Option<tokio::task::JoinHandle<Result<(), tonic::transport::Error>>>,
}

impl Server {
    pub async fn start(service: AgentGrpcService) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let done = tokio::spawn(example_agent_service::serve(listener, service, async {
            let _ = rx.await;
        }));
        Server {
            addr,
            shutdown: Some(tx),
            done: Some(done),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sends the shutdown signal.
    pub fn shut_down(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shut_down();
    }
}

pub async fn client(url: &str) -> AgentServiceClient {
    AgentServiceClient::connect(url.to_owned()).await.unwrap()
}

pub async fn collect(
    client: &AgentServiceClient,
    request: TaskRequest,
) -> Vec<Result<TaskEvent, TaskError>> {
    client.run_task(request).collect().await
}

/// The events of a task that must succeed.
pub async fn events_ok(client: &AgentServiceClient, request: TaskRequest) -> Vec<TaskEvent> {
    collect(client, request)
        .await
        .into_iter()
        .map(|e| e.unwrap_or_else(|e| panic!("task failed: {e}")))
        .collect()
}

/// The events without text deltas, and the deltas concatenated.
pub fn skeleton(events: &[TaskEvent]) -> (Vec<TaskEvent>, String) {
    let mut text = String::new();
    let mut rest = Vec::new();
    for e in events {
        match e {
            TaskEvent::TextDelta(t) => text.push_str(t),
            other => rest.push(other.clone()),
        }
    }
    (rest, text)
}

/// A health client (the generated client has no `connect`).
pub async fn health_client(url: &str) -> HealthClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_owned())
        .unwrap()
        .connect()
        .await
        .unwrap();
    HealthClient::new(channel)
}

/// The health status of `service` ("" for the whole server).
pub async fn health(url: &str, service: &str) -> ServingStatus {
    let mut health = health_client(url).await;
    let response = health
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    ServingStatus::try_from(response.status).unwrap()
}

/// The three context documents of the retrieval tests: two about garbage collection, one
/// about something else.
pub fn gc_documents() -> Vec<ScoredDocument> {
    vec![
        ScoredDocument::new(
            Document::new("Rust has no garbage collector: memory is freed by ownership.")
                .with_id("faq-1")
                .with_metadata("source", "faq.md"),
            0.9,
        ),
        ScoredDocument::new(
            Document::new("Go and Java reclaim memory with a garbage collector.").with_id("faq-2"),
            0.5,
        ),
        ScoredDocument::new(
            Document::new("Bananas grow in tropical regions.")
                .with_id("fruit-1")
                .with_metadata("source", "fruit.md"),
            0.1,
        ),
    ]
}

/// The task of the retrieval tests.
pub const GC_TASK: &str = "Does Rust have a garbage collector?";
/// The query the scripted model searches with.
pub const GC_QUERY: &str = "rust garbage collector memory";

/// An HTTP server on loopback that accepts connections, reads the request and never
/// answers; it counts connections opened and closed by the client.
#[derive(Clone)]
pub struct Silent {
    pub addr: SocketAddr,
    pub opened: Arc<AtomicUsize>,
    pub closed: Arc<AtomicUsize>,
}

impl Silent {
    pub async fn start() -> Silent {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent = Silent {
            addr: listener.local_addr().unwrap(),
            opened: Arc::default(),
            closed: Arc::default(),
        };
        let (opened, closed) = (silent.opened.clone(), silent.closed.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                opened.fetch_add(1, Ordering::SeqCst);
                let closed = closed.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    // Read until the client closes the connection; never write.
                    while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {}
                    closed.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        silent
    }

    /// `host:port`, for the web tools' allow-list.
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    pub fn url(&self) -> String {
        format!("http://{}/slow", self.addr)
    }
}

/// Waits until `f` holds, failing after `limit`.
pub async fn wait_until(limit: Duration, what: &str, f: impl Fn() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
