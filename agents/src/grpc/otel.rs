//! OpenTelemetry across the gRPC hop (feature `otel`): W3C trace context (`traceparent`,
//! `tracestate`) goes from the caller's current span into the call's metadata, and the
//! served task's `agent.run_task` span takes it as its parent, so the gateway's request,
//! the agent's model calls and its tool calls form one trace.
//!
//! Spans are `tracing` spans; a `tracing-opentelemetry` layer (see [`init_tracing`] with
//! feature `otlp`, or your own) turns them into OpenTelemetry spans. The propagator is the
//! global one; [`install_propagator`] sets the W3C one.
//!
//! ```no_run
//! use catena_agents::grpc::otel::{current_trace_headers, install_propagator};
//! use catena_agents::grpc::AgentServiceClient;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! install_propagator();
//! let mut client = AgentServiceClient::connect("http://127.0.0.1:50051").await?;
//! // Inside the span that should be the parent of the remote work:
//! for (name, value) in current_trace_headers() {
//!     client = client.with_metadata(&name, &value);
//! }
//! # Ok(()) }
//! ```

use std::collections::HashMap;

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TraceContextExt;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Sets the global propagator to W3C Trace Context (idempotent).
pub fn install_propagator() {
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
}

struct MapInjector<'a>(&'a mut HashMap<String, String>);

impl Injector for MapInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

/// The trace headers (`traceparent`, and `tracestate` when set) of the current `tracing` span's
/// OpenTelemetry context, for an outgoing call or a response. Empty when there is no valid
/// span context (no OpenTelemetry layer, or tracing off).
pub fn current_trace_headers() -> Vec<(String, String)> {
    headers_of(&tracing::Span::current())
}

/// The trace headers of `span`'s OpenTelemetry context; see [`current_trace_headers`].
pub fn headers_of(span: &tracing::Span) -> Vec<(String, String)> {
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return Vec::new();
    }
    let mut map = HashMap::new();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&cx, &mut MapInjector(&mut map));
    });
    let mut out: Vec<(String, String)> = map.into_iter().collect();
    out.sort();
    out
}

struct MapExtractor(HashMap<String, String>);

impl Extractor for MapExtractor {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(&key.to_ascii_lowercase()).map(String::as_str)
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// The remote parent context carried by `traceparent` / `tracestate`, looked up through
/// `get` (header names are lowercase).
pub fn parent_from(get: impl Fn(&str) -> Option<String>) -> opentelemetry::Context {
    let mut map = HashMap::new();
    for name in ["traceparent", "tracestate"] {
        if let Some(v) = get(name) {
            map.insert(name.to_owned(), v);
        }
    }
    let carrier = MapExtractor(map);
    opentelemetry::global::get_text_map_propagator(|p| p.extract(&carrier))
}

/// Makes the context carried by `get`'s `traceparent` the parent of `span`. Does nothing when
/// there is none (the span starts a new trace) or no OpenTelemetry layer is installed.
pub fn set_remote_parent(span: &tracing::Span, get: impl Fn(&str) -> Option<String>) {
    let parent = parent_from(get);
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// The parent of a served call: its metadata's trace context.
pub(crate) fn set_parent_from_metadata(
    span: &tracing::Span,
    metadata: &tonic::metadata::MetadataMap,
) {
    set_remote_parent(span, |name| {
        metadata
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
}

#[cfg(feature = "otlp")]
pub use otlp::{init_tracing, TracingGuard};

#[cfg(feature = "otlp")]
mod otlp {
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
}
