//! The process's tracing set-up (feature `otlp`), one helper for every Catena binary: logs to
//! stderr, and spans over OTLP/gRPC when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
//!
//! ```no_run
//! # async fn run() -> Result<(), String> {
//! // Keep the guard alive for the whole of `main`: dropping it flushes the exporter.
//! let _tracing = catena_agents::otel::init_tracing("my-service")?;
//! tracing::info!("started");
//! # Ok(()) }
//! ```

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Flushes and shuts the exporter down when dropped (keep it alive in `main`).
#[derive(Debug)]
pub struct TracingGuard {
    provider: Option<SdkTracerProvider>,
}

impl TracingGuard {
    /// Whether spans are exported (an OTLP endpoint was configured).
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for TracingGuard {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            let _ = p.force_flush();
            let _ = p.shutdown();
        }
    }
}

/// Installs the global subscriber: logs to stderr filtered by `RUST_LOG` (default `info`),
/// and, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, spans exported over OTLP/gRPC in
/// batches as service `service_name` (`OTEL_SERVICE_NAME` wins). Installs the W3C
/// propagator either way. Must run inside a Tokio runtime.
///
/// # Errors
/// The exporter could not be built (a bad endpoint), or a subscriber is already set.
pub fn init_tracing(service_name: &str) -> Result<TracingGuard, String> {
    super::install_propagator();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal as _;
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // Colours only on a terminal: logs read by programs stay plain `key=value`.
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(filter);
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let Some(_) = endpoint else {
        tracing_subscriber::registry()
            .with(fmt)
            .try_init()
            .map_err(|e| e.to_string())?;
        return Ok(TracingGuard { provider: None });
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .map_err(|e| format!("OTLP exporter: {e}"))?;
    let name = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| service_name.to_owned());
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(name.clone())
                .build(),
        )
        .build();
    let tracer = provider.tracer(name);
    opentelemetry::global::set_tracer_provider(provider.clone());
    tracing_subscriber::registry()
        .with(fmt)
        // INFO and above: Catena's spans, not the transport crates' per-frame TRACE spans.
        .with(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
        )
        .try_init()
        .map_err(|e| e.to_string())?;
    Ok(TracingGuard {
        provider: Some(provider),
    })
}
