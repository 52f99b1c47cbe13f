//! Classifying OpenAI error bodies, and keeping the API key out of error messages.
//!
//! OpenAI (and most compatible servers) answer failures with
//! `{"error": {"message", "type", "code", "param"}}`. The status decides the kind in general;
//! the `code` refines it where the caller can act differently (a prompt that is too long, a
//! model that does not exist, a wrong key).

use catena_core::ProviderErrorKind;
use serde_json::Value;

/// The [`ErrorHook`](crate::http::ErrorHook) for OpenAI: the kind the body implies (when it
/// says more than the status) and a message built from `error.message`, `code`, `type` and
/// `param`.
pub(crate) fn openai_error_hook(
    status: u16,
    body: &Value,
) -> (Option<ProviderErrorKind>, Option<String>) {
    let Some(error) = body.get("error") else {
        // Some compatible servers answer `{"message": ...}` or `{"detail": ...}` (FastAPI).
        let message = ["message", "detail"]
            .iter()
            .find_map(|k| body.get(*k).map(value_text));
        return (None, message);
    };
    if let Value::String(s) = error {
        return (None, Some(s.clone()));
    }
    let field = |k: &str| {
        error
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let message = field("message").unwrap_or("");
    let code = error.get("code").and_then(|c| match c {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    });
    let kind_field = field("type");
    let param = field("param");

    let lower = message.to_ascii_lowercase();
    let kind = match code.as_deref() {
        Some("context_length_exceeded" | "string_above_max_length") => {
            Some(ProviderErrorKind::ContextLengthExceeded)
        }
        Some("model_not_found") => Some(ProviderErrorKind::ModelNotFound),
        Some("invalid_api_key" | "invalid_organization" | "invalid_project") => {
            Some(ProviderErrorKind::Auth)
        }
        Some("content_filter" | "content_policy_violation") => {
            Some(ProviderErrorKind::ContentFiltered)
        }
        // A 429 for an exhausted quota stays `RateLimited`; the message says so.
        _ if status == 400 && lower.contains("maximum context length") => {
            // vLLM and other compatible servers use OpenAI's wording without the code.
            Some(ProviderErrorKind::ContextLengthExceeded)
        }
        _ if status == 404 && lower.starts_with("invalid url") => {
            // A wrong base URL or path, not a missing model.
            Some(ProviderErrorKind::InvalidRequest)
        }
        _ => None,
    };

    let mut out = if message.is_empty() {
        format!("HTTP {status}")
    } else {
        message.to_owned()
    };
    if code.as_deref() == Some("insufficient_quota") {
        out = format!(
            "insufficient quota (retrying will not help until the plan or billing changes): {out}"
        );
    }
    let mut details = Vec::new();
    if let Some(c) = &code {
        details.push(format!("code: {c}"));
    }
    if let Some(t) = kind_field {
        details.push(format!("type: {t}"));
    }
    if let Some(p) = param {
        details.push(format!("param: {p}"));
    }
    if !details.is_empty() {
        out = format!("{out} ({})", details.join(", "));
    }
    (kind, Some(out))
}

/// The kind of an `{"error": ...}` object that arrives inside a stream, where there is no
/// HTTP status to go by.
pub(crate) fn stream_error_kind(error: &Value) -> ProviderErrorKind {
    let (kind, _) = openai_error_hook(0, &serde_json::json!({ "error": error }));
    if let Some(kind) = kind {
        return kind;
    }
    let text = |k: &str| error.get(k).and_then(Value::as_str).unwrap_or("");
    match (text("type"), text("code")) {
        (_, "rate_limit_exceeded") | ("rate_limit_exceeded" | "tokens" | "requests", _) => {
            ProviderErrorKind::RateLimited
        }
        ("invalid_request_error", _) => ProviderErrorKind::InvalidRequest,
        ("authentication_error", _) => ProviderErrorKind::Auth,
        ("permission_error", _) => ProviderErrorKind::PermissionDenied,
        // `server_error` and anything unknown: the provider failed mid-answer.
        _ => ProviderErrorKind::Server,
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub(crate) use crate::secret::redact;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ApiKey;
    use catena_core::{Error, ProviderError};
    use serde_json::json;

    fn hook(status: u16, body: Value) -> (Option<ProviderErrorKind>, String) {
        let (k, m) = openai_error_hook(status, &body);
        (k, m.unwrap_or_default())
    }

    #[test]
    fn codes_refine_the_status() {
        let (k, m) = hook(
            400,
            json!({"error": {"message": "This model's maximum context length is 8192 tokens.",
                "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}),
        );
        assert_eq!(k, Some(ProviderErrorKind::ContextLengthExceeded));
        assert!(m.contains("8192") && m.contains("param: messages"), "{m}");
        let (k, _) = hook(
            404,
            json!({"error": {"message": "The model `gpt-9` does not exist", "code": "model_not_found"}}),
        );
        assert_eq!(k, Some(ProviderErrorKind::ModelNotFound));
        let (k, _) = hook(
            401,
            json!({"error": {"message": "bad", "code": "invalid_api_key"}}),
        );
        assert_eq!(k, Some(ProviderErrorKind::Auth));
        let (k, m) = hook(
            429,
            json!({"error": {"message": "You exceeded your current quota", "type": "insufficient_quota", "code": "insufficient_quota"}}),
        );
        assert_eq!(k, None, "status decides: RateLimited");
        assert!(m.starts_with("insufficient quota"), "{m}");
        let (k, _) = hook(
            404,
            json!({"error": {"message": "Invalid URL (POST /v1/chat)"}}),
        );
        assert_eq!(k, Some(ProviderErrorKind::InvalidRequest));
        let (k, _) = hook(
            400,
            json!({"object": "error", "message": "This model's maximum context length is 4096 tokens"}),
        );
        assert_eq!(k, None);
        let (k, m) = hook(400, json!({"error": "plain string"}));
        assert_eq!((k, m.as_str()), (None, "plain string"));
        let (k, m) = hook(500, Value::Null);
        assert_eq!((k, m.as_str()), (None, ""));
    }

    #[test]
    fn stream_errors_get_a_kind() {
        assert_eq!(
            stream_error_kind(&json!({"message": "boom", "type": "server_error"})),
            ProviderErrorKind::Server
        );
        assert_eq!(
            stream_error_kind(
                &json!({"message": "slow", "type": "tokens", "code": "rate_limit_exceeded"})
            ),
            ProviderErrorKind::RateLimited
        );
        assert_eq!(
            stream_error_kind(&json!({"message": "x", "code": "context_length_exceeded"})),
            ProviderErrorKind::ContextLengthExceeded
        );
    }

    #[test]
    fn redaction_covers_whole_and_cut_keys() {
        let key = ApiKey::new("sk-abcdefghijklmnop");
        let e: Error = ProviderError::new(
            ProviderErrorKind::Auth,
            "bad header Bearer sk-abcdefghijklmnop; again sk-abcdefghij",
        )
        .into();
        let e = redact(e, Some(&key));
        let text = e.to_string();
        assert!(!text.contains("abcdefgh"), "{text}");
        assert!(
            text.contains("Bearer <redacted>; again <redacted>"),
            "{text}"
        );
        let short = ApiKey::new("x");
        let e: Error = ProviderError::new(ProviderErrorKind::Auth, "x marks").into();
        assert_eq!(
            redact(e, Some(&short)).to_string(),
            "authentication failed: x marks"
        );
    }
}
