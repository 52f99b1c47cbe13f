//! Turning an HTTP error response into a classified [`ProviderError`].

use std::time::{Duration, SystemTime};

use catena_core::{Error, ProviderError, ProviderErrorKind};

use crate::secret::{redact_text, ApiKey};
use reqwest::header::HeaderMap;
use serde_json::Value;

/// What a provider reads from an error body.
#[derive(Debug, Default)]
pub(crate) struct HookOutcome {
    /// The kind, when the body says more than the HTTP status.
    pub(crate) kind: Option<ProviderErrorKind>,
    /// The provider's message.
    pub(crate) message: Option<String>,
    /// A wait the body asks for (e.g. Google's `RetryInfo`), used when no `Retry-After`
    /// header gave one.
    pub(crate) retry_after: Option<Duration>,
}

impl From<(Option<ProviderErrorKind>, Option<String>)> for HookOutcome {
    fn from((kind, message): (Option<ProviderErrorKind>, Option<String>)) -> Self {
        HookOutcome {
            kind,
            message,
            retry_after: None,
        }
    }
}

/// A provider's refinement of an error response, given the status and the parsed JSON
/// body (`Null` when it is not JSON).
pub(crate) type ErrorHook = fn(u16, &Value) -> HookOutcome;

/// `retry-after-ms` (milliseconds), then `retry-after` (seconds or an HTTP date). Only a
/// positive wait counts: zero, negative, past or absurd values are ignored, so the caller
/// falls back to its own backoff and never retries in a hot loop.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let positive = |secs: f64| {
        Duration::try_from_secs_f64(secs)
            .ok()
            .filter(|d| !d.is_zero())
    };
    if let Some(d) = text("retry-after-ms")
        .and_then(|v| v.parse::<f64>().ok())
        .and_then(|ms| positive(ms / 1000.0))
    {
        return Some(d);
    }
    let v = text("retry-after")?;
    if let Ok(secs) = v.parse::<f64>() {
        return positive(secs);
    }
    let when = httpdate::parse_http_date(v).ok()?;
    when.duration_since(SystemTime::now())
        .ok()
        .filter(|d| !d.is_zero())
}

fn request_id(headers: &HeaderMap) -> Option<String> {
    [
        "x-request-id",
        "request-id",
        "x-goog-request-id",
        "x-cloud-trace-context",
    ]
    .iter()
    .find_map(|h| {
        headers
            .get(*h)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    })
}

/// The provider's rate-limit headroom in `headers` (`x-ratelimit-*`, `anthropic-ratelimit-*`).
pub(crate) fn rate_limit_info(headers: &HeaderMap) -> Option<catena_core::RateLimitInfo> {
    catena_core::RateLimitInfo::from_headers(
        headers
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?))),
    )
}

/// Builds the error for a non-2xx response. `secret` is removed from the body before
/// anything reads it, so an echoed key never reaches the message (or a retry log line).
pub(crate) fn error_from_parts(
    provider: &str,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    hook: ErrorHook,
    secret: Option<&ApiKey>,
) -> Error {
    let mut body = String::from_utf8_lossy(body).into_owned();
    if let Some(key) = secret {
        body = redact_text(&body, key.expose_secret());
    }
    let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let HookOutcome {
        kind,
        message,
        retry_after: body_retry_after,
    } = hook(status, &json);
    let kind = kind.unwrap_or_else(|| ProviderErrorKind::from_status(status));
    let message = message.unwrap_or_else(|| {
        let text = body.trim();
        if text.is_empty() {
            format!("HTTP {status}")
        } else {
            text.chars().take(500).collect()
        }
    });
    let mut err = ProviderError::new(kind, message)
        .with_status(status)
        .with_provider(provider);
    if let Some(d) = retry_after(headers).or(body_retry_after.filter(|d| !d.is_zero())) {
        err = err.with_retry_after(d);
    }
    if let Some(info) = rate_limit_info(headers) {
        err = err.with_rate_limit(info);
    }
    if let Some(id) = request_id(headers) {
        // A proxy that echoes request headers back could put the key here too.
        let id = match secret {
            Some(key) => redact_text(&id, key.expose_secret()),
            None => id,
        };
        err = err.with_request_id(id);
    }
    err.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert("retry-after-ms", HeaderValue::from_static("1500"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1500)));
        let mut h = HeaderMap::new();
        let later = SystemTime::now() + Duration::from_secs(120);
        h.insert(
            "retry-after",
            HeaderValue::from_str(&httpdate::fmt_http_date(later)).unwrap(),
        );
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(115) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        h.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), None, "a past date means: use the backoff");
        h.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", HeaderValue::from_static("0"));
        assert_eq!(retry_after(&h), None, "zero would be a hot loop");
        h.insert("retry-after", HeaderValue::from_static("1e30"));
        assert_eq!(retry_after(&h), None, "absurd values must not panic");
        h.insert("retry-after-ms", HeaderValue::from_static("-5"));
        assert_eq!(retry_after(&h), None);
    }

    /// Values a server can send, from the sensible to the absurd.
    fn extreme_numbers() -> Vec<String> {
        let mut v: Vec<String> = [
            "NaN",
            "nan",
            "inf",
            "-inf",
            "infinity",
            "1e308",
            "-1e308",
            "1e309",
            "1e20",
            "1e19",
            "-1",
            "-0",
            "0",
            "0.0000000001",
            "1e-400",
            "1.5",
            "0.5",
            "7",
            " 7 ",
            "+3",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "4294967296",
            "0x10",
            "",
            "1s",
            "١",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        v.push("9".repeat(400));
        v.push(format!("-{}", "9".repeat(400)));
        v.push(format!("0.{}1", "0".repeat(400)));
        v.push(u64::MAX.to_string());
        v.push(f64::MAX.to_string());
        v.push(f64::MIN_POSITIVE.to_string());
        v
    }

    #[test]
    fn retry_after_never_panics_and_is_positive_and_finite() {
        for value in extreme_numbers() {
            let Ok(header) = HeaderValue::from_str(&value) else {
                continue;
            };
            for name in ["retry-after", "retry-after-ms"] {
                let mut h = HeaderMap::new();
                h.insert(name, header.clone());
                if let Some(d) = retry_after(&h) {
                    assert!(!d.is_zero(), "{name}: {value:?} gave {d:?}");
                }
            }
        }
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("1.5"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1500)));
        h.insert("retry-after", HeaderValue::from_static("-3"));
        assert_eq!(retry_after(&h), None, "negative");
        h.insert("retry-after", HeaderValue::from_static("1e308"));
        assert_eq!(retry_after(&h), None, "past Duration::MAX");
        h.insert(
            "retry-after",
            HeaderValue::from_static("Fri, 31 Dec 9999 23:59:59 GMT"),
        );
        assert!(retry_after(&h).is_some(), "a far date is a long wait");
    }

    #[test]
    fn error_responses_with_extreme_numbers_never_panic() {
        fn hook(_: u16, _: &Value) -> HookOutcome {
            HookOutcome {
                retry_after: Some(Duration::MAX),
                ..HookOutcome::default()
            }
        }
        for value in extreme_numbers() {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert("retry-after", v);
            }
            let body = format!(r#"{{"error": {{"code": {value:?}, "retryDelay": {value:?}}}}}"#);
            for status in [0, 99, 429, 503, 999, u16::MAX] {
                let e = error_from_parts("p", status, &h, body.as_bytes(), hook, None);
                assert!(e.retry_after().is_some(), "{value:?}");
            }
        }
    }
}

#[cfg(test)]
mod redaction_tests {
    use super::*;

    fn hook(_: u16, v: &Value) -> HookOutcome {
        (
            None,
            v.get("message").and_then(Value::as_str).map(str::to_owned),
        )
            .into()
    }

    #[test]
    fn echoed_keys_are_removed_before_parsing() {
        let key = ApiKey::new("sk-SECRET-0123456789");
        let body = br#"{"message": "bad header: Bearer sk-SECRET-0123456789"}"#;
        let e = error_from_parts("p", 401, &HeaderMap::new(), body, hook, Some(&key));
        assert!(!format!("{e} {e:?}").contains("SECRET-01"), "{e}");
        let long = format!("{}sk-SECRET-0123456789", "x".repeat(490));
        let e = error_from_parts(
            "p",
            500,
            &HeaderMap::new(),
            long.as_bytes(),
            hook,
            Some(&key),
        );
        assert!(!format!("{e} {e:?}").contains("sk-SECRE"), "{e}");
    }

    // Found by the `openai`/`gemini`/`ollama` fuzz targets (fuzz/, docs/fuzzing.md).
    #[test]
    fn echoed_keys_are_removed_from_the_request_id() {
        let key = ApiKey::new("sk-SECRET-0123456789");
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-request-id",
            reqwest::header::HeaderValue::from_static("req-1 sk-SECRET-0123456789"),
        );
        let e = error_from_parts("p", 429, &headers, b"{}", hook, Some(&key));
        assert!(!format!("{e} {e:?}").contains("SECRET-01"), "{e}");
        let Error::Provider(p) = e else {
            panic!("not a provider error: {e}")
        };
        assert!(p.request_id.is_some_and(|id| id.starts_with("req-1 ")));
    }
}
