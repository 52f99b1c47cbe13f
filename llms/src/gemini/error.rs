//! Classifying Google API errors (`{"error": {"code", "message", "status", "details"}}`).

use std::time::Duration;

use catena_core::{Error, ProviderErrorKind};
use serde_json::Value;

use crate::http::HookOutcome;

/// The `error` object of a Google error body (which streaming endpoints wrap in an array).
fn error_object(body: &Value) -> Option<&Value> {
    let body = match body {
        Value::Array(items) => items.first()?,
        other => other,
    };
    body.get("error").filter(|e| e.is_object())
}

fn details<'a>(error: &'a Value, type_suffix: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    error
        .get("details")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(move |d| {
            d.get("@type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.ends_with(type_suffix))
        })
}

/// A protobuf `Duration` in JSON form: `"13s"`, `"1.5s"`. Anything that is not a finite,
/// non-negative number of seconds that fits a [`Duration`] (`"-1s"`, `"NaNs"`, `"1e20s"`) is
/// `None`: a server's number never panics the client.
pub(crate) fn parse_proto_duration(s: &str) -> Option<Duration> {
    let secs: f64 = s.trim().strip_suffix('s')?.trim().parse().ok()?;
    Duration::try_from_secs_f64(secs).ok()
}

/// Classifies a Google error body: the kind (when the body says more than the HTTP status),
/// the message (`message`, plus the `status` / `ErrorInfo.reason` in brackets) and the
/// `RetryInfo.retryDelay`.
pub(crate) fn classify(status: u16, body: &Value) -> HookOutcome {
    let Some(error) = error_object(body) else {
        return HookOutcome::default();
    };
    let message = error.get("message").and_then(Value::as_str).unwrap_or("");
    let grpc = error.get("status").and_then(Value::as_str).unwrap_or("");
    let reason = details(error, "google.rpc.ErrorInfo")
        .find_map(|d| d.get("reason").and_then(Value::as_str))
        .unwrap_or("");
    let lower = message.to_lowercase();
    let kind = if reason == "API_KEY_INVALID"
        || reason == "ACCESS_TOKEN_EXPIRED"
        || reason == "ACCESS_TOKEN_TYPE_UNSUPPORTED"
        || grpc == "UNAUTHENTICATED"
    {
        Some(ProviderErrorKind::Auth)
    } else if grpc == "PERMISSION_DENIED" {
        Some(ProviderErrorKind::PermissionDenied)
    } else if grpc == "NOT_FOUND" || status == 404 {
        Some(ProviderErrorKind::ModelNotFound)
    } else if grpc == "RESOURCE_EXHAUSTED" {
        Some(ProviderErrorKind::RateLimited)
    } else if (grpc == "INVALID_ARGUMENT" || status == 400)
        && (lower.contains("exceeds the maximum number of tokens")
            || lower.contains("token count")
            || lower.contains("context window"))
    {
        Some(ProviderErrorKind::ContextLengthExceeded)
    } else if grpc == "UNAVAILABLE" || grpc == "INTERNAL" || grpc == "DEADLINE_EXCEEDED" {
        Some(ProviderErrorKind::Server)
    } else {
        None
    };
    let mut text = if message.is_empty() {
        format!("HTTP {status}")
    } else {
        message.to_owned()
    };
    match (grpc.is_empty(), reason.is_empty()) {
        (false, false) => text.push_str(&format!(" [{grpc}: {reason}]")),
        (false, true) => text.push_str(&format!(" [{grpc}]")),
        (true, false) => text.push_str(&format!(" [{reason}]")),
        (true, true) => {}
    }
    let retry_after = details(error, "google.rpc.RetryInfo")
        .find_map(|d| d.get("retryDelay").and_then(Value::as_str))
        .and_then(parse_proto_duration);
    HookOutcome {
        kind,
        message: Some(text),
        retry_after,
    }
}

/// The transport's hook: [`classify`].
pub(crate) fn error_hook(status: u16, body: &Value) -> HookOutcome {
    classify(status, body)
}

/// Final touch on every error of a Gemini call: secrets that a server echoed back are cut
/// out of the message (the bearer token changes on refresh, so this happens per call).
pub(crate) fn finish_error(err: Error, secrets: &[&str]) -> Error {
    let Error::Provider(mut p) = err else {
        return err;
    };
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        if p.message.contains(secret) {
            p.message = p.message.replace(secret, "<redacted>");
        }
    }
    Error::Provider(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use catena_core::ProviderError;
    use serde_json::json;

    #[test]
    fn classification() {
        let key = json!({"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
            "status": "INVALID_ARGUMENT", "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]}});
        let out = classify(400, &key);
        assert_eq!(out.kind, Some(ProviderErrorKind::Auth));
        assert_eq!(
            out.message.unwrap(),
            "API key not valid. Please pass a valid API key. [INVALID_ARGUMENT: API_KEY_INVALID]"
        );
        let long = json!({"error": {"code": 400, "status": "INVALID_ARGUMENT",
            "message": "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576)."}});
        assert_eq!(
            classify(400, &long).kind,
            Some(ProviderErrorKind::ContextLengthExceeded)
        );
        let nf = json!([{"error": {"code": 404, "status": "NOT_FOUND", "message": "models/x is not found"}}]);
        assert_eq!(
            classify(404, &nf).kind,
            Some(ProviderErrorKind::ModelNotFound)
        );
        let none = classify(500, &Value::Null);
        assert!(none.kind.is_none() && none.message.is_none());
        let denied =
            json!({"error": {"code": 403, "status": "PERMISSION_DENIED", "message": "no"}});
        assert_eq!(
            classify(403, &denied).kind,
            Some(ProviderErrorKind::PermissionDenied)
        );
    }

    #[test]
    fn retry_info_becomes_retry_after_and_secrets_are_cut() {
        let body = json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "Quota exceeded for key SECRET123",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "13s"}]}});
        let out = classify(429, &body);
        assert_eq!(out.kind, Some(ProviderErrorKind::RateLimited));
        assert_eq!(out.retry_after, Some(Duration::from_secs(13)));
        let err: Error =
            ProviderError::new(ProviderErrorKind::RateLimited, out.message.unwrap()).into();
        let err = finish_error(err, &["SECRET123"]);
        assert!(!err.to_string().contains("SECRET123"), "{err}");
        assert_eq!(
            parse_proto_duration("1.5s"),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_proto_duration("soon"), None);
    }

    #[test]
    fn extreme_retry_delays_never_panic() {
        let mut values: Vec<String> = [
            "1e20",
            "1e19",
            "1e308",
            "1e309",
            "-1e308",
            "NaN",
            "nan",
            "inf",
            "-inf",
            "-1",
            "-0",
            "0",
            "1e-400",
            "0.5",
            "18446744073709551615",
            "18446744073709551616",
            "",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        values.push("9".repeat(400));
        values.push(format!("-{}", "9".repeat(400)));
        for v in &values {
            for text in [format!("{v}s"), v.clone(), format!(" {v} s ")] {
                if let Some(d) = parse_proto_duration(&text) {
                    assert!(d <= Duration::MAX, "{text:?}");
                }
                let body = json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
                    "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": text}]}});
                let _ = classify(429, &body);
            }
        }
        assert_eq!(parse_proto_duration("1e20s"), None, "past Duration::MAX");
        assert_eq!(parse_proto_duration("-1s"), None);
        assert_eq!(parse_proto_duration("NaNs"), None);
        assert_eq!(parse_proto_duration("infs"), None);
        assert_eq!(
            parse_proto_duration("1e19s"),
            Some(Duration::from_secs(10_000_000_000_000_000_000))
        );
    }
}
