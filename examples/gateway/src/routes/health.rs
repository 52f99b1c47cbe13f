//! The unauthenticated pages and probes (`GET /`, `/healthz`, `/readyz`) and the Prometheus
//! scrape endpoint (`GET /metrics`, behind authentication).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map};

use crate::state::AppState;

/// `GET /`: the chat page.
pub(crate) async fn index_page() -> Html<&'static str> {
    Html(include_str!("../../static/index.html"))
}

/// `GET /healthz`: the process is alive.
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: 200 when accepting requests with the vector store (and the agent service,
/// when configured) reachable; 503 otherwise, with the failing check.
pub(crate) async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let mut checks = Map::new();
    let mut ready = state.ready.load(Ordering::SeqCst);
    checks.insert("accepting".into(), json!(ready));
    let store = tokio::time::timeout(Duration::from_secs(2), state.store.count(None)).await;
    let store_ok = matches!(store, Ok(Ok(_)));
    checks.insert("vector_store".into(), json!(store_ok));
    ready &= store_ok;
    if let Some(channel) = &state.agent_channel {
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
        let check = tokio::time::timeout(
            Duration::from_secs(2),
            health.check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            }),
        )
        .await;
        let serving = matches!(&check, Ok(Ok(r)) if r.get_ref().status == 1);
        checks.insert("agent_service".into(), json!(serving));
        ready &= serving;
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(json!({ "ready": ready, "checks": checks }))).into_response()
}

/// `GET /metrics`: the Prometheus text format.
pub(crate) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}
