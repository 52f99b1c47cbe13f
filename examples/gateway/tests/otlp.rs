//! The gateway binary exports its metrics — the GenAI client metrics of its embedding and
//! model calls among them — over OTLP/gRPC to a collector on loopback when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, periodically and at shutdown.
//!
//! Needs the local models (the embedded defaults embed the ingested document).
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use example_gateway::auth::hash_key;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;

mod support;

/// One metric received: name, unit, and the `key=value`s of its data points' attributes.
type Received = (String, String, Vec<String>);

/// Keeps every metric it is sent.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Received>>>);

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let mut seen = self.0.lock().unwrap();
        for rm in request.into_inner().resource_metrics {
            for sm in rm.scope_metrics {
                for m in sm.metrics {
                    let attrs = match &m.data {
                        Some(Data::Histogram(h)) => h
                            .data_points
                            .iter()
                            .flat_map(|p| p.attributes.iter())
                            .map(|kv| {
                                format!(
                                    "{}={:?}",
                                    kv.key,
                                    kv.value.as_ref().and_then(|v| v.value.clone())
                                )
                            })
                            .collect(),
                        _ => Vec::new(),
                    };
                    seen.push((m.name, m.unit, attrs));
                }
            }
        }
        Ok(tonic::Response::new(ExportMetricsServiceResponse {
            partial_success: None,
        }))
    }
}

/// Accepts spans (the binary exports those too) and drops them.
#[derive(Clone, Default)]
struct Spans;

#[tonic::async_trait]
impl TraceService for Spans {
    async fn export(
        &self,
        _: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_exports_genai_metrics_over_otlp() {
    example_gateway::install_crypto_provider();
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tonic::transport::Server::builder()
        .add_service(MetricsServiceServer::new(collector.clone()))
        .add_service(TraceServiceServer::new(Spans))
        .serve_with_incoming(tokio_stream_of(listener));
    tokio::spawn(server);

    let dir = tempfile::tempdir().unwrap();
    let key = "otlp-test-key";
    let mut cmd = support::gateway_command();
    cmd.env("CATENA_DATA_DIR", dir.path())
        .env("CATENA_API_KEY_SHA256", hash_key(key))
        .env("CATENA_GATEWAY_ADDR", "127.0.0.1:0")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{addr}"))
        .env("OTEL_METRIC_EXPORT_INTERVAL", "500");
    let (mut child, base) = support::spawn_gateway(cmd, "otlp").await;
    let res = reqwest::Client::new()
        .post(format!("{base}/v1/documents"))
        .bearer_auth(key)
        .json(&serde_json::json!({ "documents": [{ "source": "otlp.md", "content": "Metrics travel over OTLP to a collector." }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());

    // The periodic export (every 500 ms here) delivers the embedding call's duration.
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let seen = collector.0.lock().unwrap().clone();
            if let Some(m) = seen.iter().find(|(name, _, attrs)| {
                name == "gen_ai.client.operation.duration"
                    && attrs
                        .iter()
                        .any(|a| a.contains("gen_ai.operation.name") && a.contains("embeddings"))
            }) {
                return m.clone();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "no GenAI metric reached the collector: {:?}",
            collector.0.lock().unwrap()
        )
    });
    assert_eq!(found.1, "s", "{found:?}");
    let names: Vec<String> = collector
        .0
        .lock()
        .unwrap()
        .iter()
        .map(|m| m.0.clone())
        .collect();
    assert!(
        names.iter().any(|n| n == "http_requests_total"),
        "{names:?}"
    );

    // A graceful shutdown exports what is left.
    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the gateway stops after SIGTERM")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}

/// The listener's connections as the stream tonic serves.
fn tokio_stream_of(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |l| async move {
        let conn = l.accept().await.map(|(s, _)| s);
        Some((conn, l))
    })
}
