//! Metrics: the process-wide recorder that `GET /metrics` renders (Prometheus), fanned out
//! to OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, and the middleware that counts requests
//! and their latency by route and status. The GenAI client metrics of every model, embedding
//! and tool call ([`catena_core::genai_metrics`]) go to both, with the buckets the semantic
//! conventions advise.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use catena_core::genai_metrics;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// The OTLP metrics exporter, when one was configured (flushed by [`flush_otlp`]).
static OTLP: OnceLock<Option<catena_agents::otel::OtlpMetrics>> = OnceLock::new();

/// The process-wide recorder (installed once): Prometheus, plus OTLP when configured.
pub(crate) fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("http_request_duration_seconds".to_owned()),
                    &[
                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                    ],
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(genai_metrics::OPERATION_DURATION.to_owned()),
                        &[
                            0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24,
                            20.48, 40.96, 81.92,
                        ],
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(genai_metrics::TOKEN_USAGE.to_owned()),
                        &[
                            1.0,
                            4.0,
                            16.0,
                            64.0,
                            256.0,
                            1024.0,
                            4096.0,
                            16384.0,
                            65536.0,
                            262_144.0,
                            1_048_576.0,
                            4_194_304.0,
                        ],
                    )
                });
            let Ok(builder) = builder else {
                return PrometheusBuilder::new().build_recorder().handle();
            };
            let prometheus = builder.build_recorder();
            let handle = prometheus.handle();
            spawn_upkeep(handle.clone());
            let otlp = match catena_agents::otel::otlp_metrics("catena-gateway") {
                Ok(otlp) => otlp,
                Err(e) => {
                    tracing::warn!(error = %e, "OTLP metrics are off");
                    None
                }
            };
            // Another recorder may already be installed (a host program's); then our handle
            // renders only what we record through it.
            let installed = match &otlp {
                Some(otlp) => metrics::set_global_recorder(
                    metrics_util::layers::FanoutBuilder::default()
                        .add_recorder(prometheus)
                        .add_recorder(otlp.recorder())
                        .build(),
                )
                .is_ok(),
                None => metrics::set_global_recorder(prometheus).is_ok(),
            };
            if installed {
                genai_metrics::describe();
            }
            let _ = OTLP.set(otlp);
            handle
        })
        .clone()
}

/// How often the histograms' raw samples are folded into their buckets.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Folds the histograms' samples into their buckets every [`UPKEEP_INTERVAL`], on a thread of
/// its own. The Prometheus recorder keeps every sample of a histogram (8 bytes each) until
/// then; without upkeep only a scrape drains them, so a gateway nobody scrapes grew by about
/// 50 bytes a request, without bound.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .stack_size(64 * 1024)
        .spawn(move || loop {
            std::thread::sleep(UPKEEP_INTERVAL);
            handle.run_upkeep();
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no metrics upkeep thread: histograms are drained only by scrapes");
    }
}

/// Exports the metrics recorded so far over OTLP, when it is configured (at shutdown).
pub fn flush_otlp() {
    if let Some(Some(otlp)) = OTLP.get() {
        otlp.flush();
    }
}

/// Counts requests and their latency by route and status.
pub(crate) async fn record_metrics(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = method_label(request.method());
    let start = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let labels = [
        ("route", route),
        ("method", method.to_owned()),
        ("status", status),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels)
        .record(start.elapsed().as_secs_f64());
    response
}

/// The method as a label from a fixed set: any other method a client makes up is `OTHER`, so
/// clients cannot create metric series at will.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}
