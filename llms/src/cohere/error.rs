//! Classifying Cohere's error responses.
//!
//! Cohere answers failures with `{"message": "..."}` (sometimes with an `id`). The status
//! decides the kind, refined where the caller can act differently: a 400 whose message
//! starts "too many tokens", a 402 (billing: retrying does not help), a 404 that names no
//! model (a wrong base URL), a 499 (cancelled: Cohere's reference says to try again), a 501.

use catena_core::ProviderErrorKind;
use serde_json::Value;

use crate::http::HookOutcome;

/// The [`ErrorHook`](crate::http::ErrorHook) for Cohere.
pub(crate) fn cohere_error_hook(status: u16, body: &Value) -> HookOutcome {
    let message = body
        .get("message")
        .and_then(Value::as_str)
        .filter(|m| !m.trim().is_empty())
        .map(str::to_owned);
    let lower = message.as_deref().unwrap_or("").to_ascii_lowercase();
    let kind = match status {
        400 if lower.starts_with("too many tokens") => {
            Some(ProviderErrorKind::ContextLengthExceeded)
        }
        402 => Some(ProviderErrorKind::Other("payment required".to_owned())),
        404 if !lower.contains("model") => Some(ProviderErrorKind::InvalidRequest),
        499 => Some(ProviderErrorKind::Server),
        501 => Some(ProviderErrorKind::InvalidRequest),
        _ => None,
    };
    let message = match (status, message) {
        (402, Some(m)) => Some(format!(
            "payment required (retrying will not help until the billing changes): {m}"
        )),
        (_, m) => m,
    };
    HookOutcome {
        kind,
        message,
        retry_after: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kinds() {
        let kind = |status, body: Value| cohere_error_hook(status, &body).kind;
        assert_eq!(
            kind(
                400,
                json!({"message": "too many tokens: size limit exceeded by 11326 tokens."})
            ),
            Some(ProviderErrorKind::ContextLengthExceeded)
        );
        assert_eq!(
            kind(
                400,
                json!({"message": "invalid request: query must not be empty"})
            ),
            None
        );
        assert_eq!(
            kind(404, json!({"message": "model 'x' not found"})),
            None,
            "the status says ModelNotFound"
        );
        assert_eq!(
            kind(404, json!({"message": "Not Found"})),
            Some(ProviderErrorKind::InvalidRequest)
        );
        assert!(kind(499, json!({"message": "request cancelled"}))
            .unwrap()
            .is_retryable());
        assert!(!kind(402, json!({})).unwrap().is_retryable());
        let out = cohere_error_hook(402, &json!({"message": "Please add a payment method"}));
        assert!(out.message.unwrap().starts_with("payment required"));
        assert_eq!(cohere_error_hook(500, &Value::Null).message, None);
    }
}
