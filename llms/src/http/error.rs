//! Turning an HTTP error response into a classified [`ProviderError`].

use std::time::{Duration, SystemTime};

use catena_core::{Error, ProviderError, ProviderErrorKind};
use reqwest::header::HeaderMap;
use serde_json::Value;

/// A provider's refinement of an error response: given the status and the parsed JSON
/// body (`Null` when it is not JSON), the kind (when the body says more than the status)
/// and the provider's message.
pub(crate) type ErrorHook = fn(u16, &Value) -> (Option<ProviderErrorKind>, Option<String>);

/// `retry-after-ms` (milliseconds), then `retry-after` (seconds or an HTTP date).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = text("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        if ms.is_finite() && ms >= 0.0 {
            return Some(Duration::from_secs_f64(ms / 1000.0));
        }
    }
    let v = text("retry-after")?;
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(when.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
}

fn request_id(headers: &HeaderMap) -> Option<String> {
    ["x-request-id", "request-id", "x-goog-request-id", "x-cloud-trace-context"]
        .iter()
        .find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()).map(str::to_owned))
}

/// Builds the error for a non-2xx response.
pub(crate) fn error_from_parts(
    provider: &str,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    hook: ErrorHook,
) -> Error {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let (kind, message) = hook(status, &json);
    let kind = kind.unwrap_or_else(|| ProviderErrorKind::from_status(status));
    let message = message.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        if text.is_empty() {
            format!("HTTP {status}")
        } else {
            text.chars().take(500).collect()
        }
    });
    let mut err = ProviderError::new(kind, message)
        .with_status(status)
        .with_provider(provider);
    if let Some(d) = retry_after(headers) {
        err = err.with_retry_after(d);
    }
    if let Some(id) = request_id(headers) {
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
        assert!(d > Duration::from_secs(115) && d <= Duration::from_secs(120), "{d:?}");
        h.insert("retry-after", HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }
}
