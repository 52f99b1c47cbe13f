//! Classifying Anthropic error bodies.
//!
//! Anthropic answers failures with `{"type": "error", "error": {"type", "message"},
//! "request_id"}`; the same `error` object arrives as an `error` event inside a stream that
//! already answered 200. The HTTP status decides the kind in general (the transport reads
//! `Retry-After` and the `request-id` header); the error `type` refines it where the
//! caller can act differently.

use catena_core::{Error, ProviderError, ProviderErrorKind};
use serde_json::Value;

use super::client::PROVIDER;
use crate::http::HookOutcome;

/// The [`ErrorHook`](crate::http::ErrorHook) for Anthropic.
pub(crate) fn anthropic_error_hook(status: u16, body: &Value) -> HookOutcome {
    let Some(error) = body.get("error").filter(|e| e.is_object()) else {
        let message = body
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_owned);
        return (None, message).into();
    };
    let (kind, message) = classify(error);
    // The status decides (404 is a missing model, 529 a retryable server error, ...); the
    // body adds what the status cannot say: a prompt that is too long, or the kind of a
    // status the core does not classify (Anthropic uses its error types for other 4XX
    // codes too, e.g. 402 `billing_error`).
    let unclassified = matches!(
        ProviderErrorKind::from_status(status),
        ProviderErrorKind::Other(_)
    );
    let kind = kind.filter(|k| *k == ProviderErrorKind::ContextLengthExceeded || unclassified);
    let mut message = message;
    if let Some(id) = body.get("request_id").and_then(Value::as_str) {
        message = format!("{message} (request_id: {id})");
    }
    (kind, Some(message)).into()
}

/// The kind an `error` object names, and a message built from `message` and `type`.
fn classify(error: &Value) -> (Option<ProviderErrorKind>, String) {
    let field = |k: &str| error.get(k).and_then(Value::as_str).unwrap_or("");
    let (kind_name, text) = (field("type"), field("message"));
    let lower = text.to_ascii_lowercase();
    let kind = match kind_name {
        "invalid_request_error"
            if lower.contains("prompt is too long")
                || lower.contains("context window")
                || lower.contains("context length") =>
        {
            ProviderErrorKind::ContextLengthExceeded
        }
        "invalid_request_error" | "request_too_large" => ProviderErrorKind::InvalidRequest,
        "authentication_error" => ProviderErrorKind::Auth,
        "permission_error" | "billing_error" => ProviderErrorKind::PermissionDenied,
        "not_found_error" => ProviderErrorKind::ModelNotFound,
        "rate_limit_error" => ProviderErrorKind::RateLimited,
        // `api_error`, `overloaded_error` and anything new: the provider failed.
        _ => ProviderErrorKind::Server,
    };
    let message = match (text.is_empty(), kind_name.is_empty()) {
        (false, false) => format!("{text} (type: {kind_name})"),
        (false, true) => text.to_owned(),
        (true, false) => kind_name.to_owned(),
        (true, true) => error.to_string(),
    };
    (Some(kind), message)
}

/// The error for an `error` event inside a stream, where there is no HTTP status: the
/// kind comes from `error.type` (`overloaded_error` is a retryable server error, as a 529
/// would be, and carries that status).
pub(crate) fn stream_error(error: &Value) -> Error {
    let (kind, message) = classify(error);
    let kind = kind.unwrap_or(ProviderErrorKind::Server);
    let mut err = ProviderError::new(kind, format!("error event mid-stream: {message}"))
        .with_provider(PROVIDER);
    let status = match error.get("type").and_then(Value::as_str) {
        Some("overloaded_error") => Some(529),
        Some("api_error") => Some(500),
        Some("rate_limit_error") => Some(429),
        _ => None,
    };
    if let Some(s) = status {
        err = err.with_status(s);
    }
    err.into()
}

pub(crate) use crate::secret::redact;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hook(status: u16, body: Value) -> (Option<ProviderErrorKind>, String) {
        let out = anthropic_error_hook(status, &body);
        (out.kind, out.message.unwrap_or_default())
    }

    #[test]
    fn types_refine_the_status_only_where_it_matters() {
        let (k, m) = hook(
            400,
            json!({"type": "error", "error": {"type": "invalid_request_error",
                "message": "prompt is too long: 210000 tokens > 200000 maximum"}, "request_id": "req_1"}),
        );
        assert_eq!(k, Some(ProviderErrorKind::ContextLengthExceeded));
        assert!(
            m.contains("210000") && m.contains("invalid_request_error") && m.contains("req_1"),
            "{m}"
        );
        let (k, m) = hook(
            529,
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        );
        assert_eq!(k, None, "the status decides: Server");
        assert_eq!(m, "Overloaded (type: overloaded_error)");
        let (k, _) = hook(
            402,
            json!({"type": "error", "error": {"type": "billing_error", "message": "credit balance too low"}}),
        );
        assert_eq!(k, Some(ProviderErrorKind::PermissionDenied));
        let (k, m) = hook(502, json!({"message": "bad gateway"}));
        assert_eq!((k, m.as_str()), (None, "bad gateway"));
        let (k, m) = hook(500, Value::Null);
        assert_eq!((k, m.as_str()), (None, ""));
    }

    #[test]
    fn stream_errors_are_typed() {
        let e = stream_error(&json!({"type": "overloaded_error", "message": "Overloaded"}));
        assert_eq!(e.provider_kind(), Some(&ProviderErrorKind::Server));
        assert!(e.is_retryable());
        assert_eq!(e.as_provider().and_then(|p| p.status), Some(529));
        let e = stream_error(&json!({"type": "rate_limit_error", "message": "slow down"}));
        assert_eq!(e.provider_kind(), Some(&ProviderErrorKind::RateLimited));
        let e = stream_error(&json!({"type": "invalid_request_error", "message": "bad"}));
        assert_eq!(e.provider_kind(), Some(&ProviderErrorKind::InvalidRequest));
        assert!(!e.is_retryable());
    }
}
