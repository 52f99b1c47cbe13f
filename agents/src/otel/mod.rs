//! OpenTelemetry for any transport (feature `otel`): W3C trace context (`traceparent`,
//! `tracestate`) written from a span into outgoing headers ([`headers_of`],
//! [`current_trace_headers`]) and read from incoming headers as a span's remote parent
//! ([`set_remote_parent`], [`parent_from`]). Nothing here knows HTTP or gRPC: the functions
//! take and return plain name/value pairs, so the gateway uses them with HTTP headers and the
//! [`grpc`](crate::grpc) adapter with gRPC metadata. A gateway's request, the agent's model
//! calls and its tool calls then form one trace.
//!
//! Spans are `tracing` spans; a `tracing-opentelemetry` layer (the process subscriber of
//! [`init_tracing`] with feature `otlp`, or your own) turns them into OpenTelemetry spans. The
//! propagator is the global one; [`install_propagator`] sets the W3C one.
//!
//! ```
//! use catena_agents::otel::{current_trace_headers, install_propagator, set_remote_parent};
//!
//! install_propagator();
//! // Server side: continue the caller's trace from its headers (here, a fixed lookup).
//! let span = tracing::info_span!("http.request");
//! set_remote_parent(&span, |name| {
//!     (name == "traceparent")
//!         .then(|| "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned())
//! });
//! // Client side: the headers to send along, from inside the span that calls out (empty
//! // without an OpenTelemetry layer).
//! let headers: Vec<(String, String)> = span.in_scope(current_trace_headers);
//! # let _ = headers;
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

/// Links `span` to the context carried by `get`'s `traceparent` without making it the parent:
/// `span` stays in (or starts) its own trace. For a request whose caller is not trusted to
/// choose the trace its work is recorded in. Does nothing when there is none.
pub fn link_remote(span: &tracing::Span, get: impl Fn(&str) -> Option<String>) {
    let remote = parent_from(get);
    let remote = remote.span().span_context().clone();
    if remote.is_valid() {
        span.add_link(remote);
    }
}

#[cfg(feature = "otlp")]
mod subscriber;

#[cfg(feature = "otlp")]
#[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
pub use subscriber::{init_tracing, TracingGuard};

#[cfg(feature = "otlp")]
mod metrics;

#[cfg(feature = "otlp")]
#[cfg_attr(docsrs, doc(cfg(feature = "otlp")))]
pub use metrics::{otlp_metrics, OtelRecorder, OtlpMetrics};
