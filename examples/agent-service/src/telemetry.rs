//! Tracing for tasks: the hook where OpenTelemetry will join the caller's trace.

use catena_agents::grpc::TaskContext;

/// The span every task of the service runs in (the agent loop, model calls and tools are
/// polled inside it). It records the caller's request id and the W3C trace context
/// (`traceparent`, `tracestate`) from the request metadata, so logs of one task can be
/// matched with the caller's trace.
///
/// This is the one place to make the span a real child of the caller's span once
/// OpenTelemetry is wired in: extract the context from [`TaskContext::metadata`] with a
/// W3C propagator and set it as the span's parent (for example with
/// `tracing_opentelemetry::OpenTelemetrySpanExt::set_parent`) before returning it.
pub fn task_span(ctx: &TaskContext) -> tracing::Span {
    tracing::info_span!(
        "task",
        request_id = %ctx.request_id(),
        traceparent = ctx.traceparent().unwrap_or(""),
        tracestate = ctx.tracestate().unwrap_or(""),
    )
}
