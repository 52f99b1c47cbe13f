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

/// How long a readiness answer of the backends is reused: probes and anonymous clients
/// cannot turn `/readyz` into load on the store and the agent service.
const READINESS_TTL: Duration = Duration::from_secs(2);

/// `GET /readyz`: 200 when accepting requests with the vector store (and the agent service,
/// when configured) reachable; 503 otherwise, with the failing check. Whether the gateway
/// accepts requests is read live; the backends' checks run at most once per
/// [`READINESS_TTL`], however many probes arrive at once (they wait for the one running).
pub(crate) async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let accepting = state.ready.load(Ordering::SeqCst);
    let (backends_ok, mut checks) = {
        let mut cached = state.readiness.lock().await;
        match &*cached {
            Some((at, ok, checks)) if at.elapsed() < READINESS_TTL => (*ok, checks.clone()),
            _ => {
                let (ok, checks) = check_backends(&state).await;
                *cached = Some((std::time::Instant::now(), ok, checks.clone()));
                (ok, checks)
            }
        }
    };
    if let Some(map) = checks.as_object_mut() {
        map.insert("accepting".into(), json!(accepting));
    }
    let ready = accepting && backends_ok;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(json!({ "ready": ready, "checks": checks }))).into_response()
}

/// The vector store's, the shared limits' (Redis) and the agent service's checks.
async fn check_backends(state: &AppState) -> (bool, serde_json::Value) {
    let mut checks = Map::new();
    let mut ready = true;
    let store = tokio::time::timeout(Duration::from_secs(2), state.store.count(None)).await;
    let store_ok = matches!(store, Ok(Ok(_)));
    checks.insert("vector_store".into(), json!(store_ok));
    ready &= store_ok;
    if let Some(redis) = &state.shared {
        let redis_ok = redis.ping().await;
        checks.insert("shared_limits".into(), json!(redis_ok));
        ready &= redis_ok;
    }
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
    (ready, serde_json::Value::Object(checks))
}

/// `GET /metrics`: the Prometheus text format.
pub(crate) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}
