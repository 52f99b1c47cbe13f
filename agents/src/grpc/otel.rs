//! The gRPC side of trace propagation (features `grpc` and `otel`): a served call's metadata
//! read through the transport-neutral [`otel`](crate::otel) functions.

/// Makes the trace context in a served call's `metadata` the parent of `span`.
pub(super) fn set_parent_from_metadata(
    span: &tracing::Span,
    metadata: &tonic::metadata::MetadataMap,
) {
    crate::otel::set_remote_parent(span, |name| {
        metadata
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
}
