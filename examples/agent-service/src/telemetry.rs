//! Tracing for tasks: the span each task runs in, inside the caller's trace.

use catena_agents::grpc::TaskContext;

/// The span every task of the service runs in (the agent loop, model calls and tools are
/// polled inside it). It records the caller's request id and the W3C trace context
/// (`traceparent`, `tracestate`) from the request metadata, so logs of one task can be
/// matched with the caller's trace.
///
/// It opens inside the gRPC adapter's `agent.run_task` span, which already continues the
/// caller's trace: with `catena-agents`' features `grpc` and `otel` (on here) the adapter
/// takes that span's parent from the request metadata through
/// [`catena_agents::otel::set_remote_parent`]. The binary installs the OpenTelemetry layer
/// with [`catena_agents::otel::init_tracing`], so this span, the model calls and the tool
/// calls are exported as part of the caller's trace.
pub fn task_span(ctx: &TaskContext) -> tracing::Span {
    tracing::info_span!(
        "task",
        request_id = %ctx.request_id(),
        traceparent = ctx.traceparent().unwrap_or(""),
        tracestate = ctx.tracestate().unwrap_or(""),
    )
}
