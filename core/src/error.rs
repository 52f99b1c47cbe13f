//! The error type shared by every Catena component.
//!
//! Errors are classified by **what the caller can do** about them: retry later, fix the
//! request, fix the credentials, or give up. Provider failures carry the HTTP status, the
//! `Retry-After` delay and the provider's message — never the API key.
//!
//! ```
//! use std::time::Duration;
//! use catena_core::{Error, ProviderError, ProviderErrorKind};
//!
//! let err = Error::from(
//!     ProviderError::new(ProviderErrorKind::RateLimited, "slow down")
//!         .with_status(429)
//!         .with_retry_after(Duration::from_secs(2)),
//! );
//! assert!(err.is_retryable());
//! assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
//! ```

use std::fmt;
use std::time::Duration;

use crate::loader::LoadError;
use crate::parser::ParseError;
use crate::prompt::PromptError;
use crate::tool::ToolError;

/// A boxed error kept as the `source` of a Catena error, so dependency error types never
/// leak into the public API.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with [`Error`] as the error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every error a Catena component can return.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A model or embedding provider (or any remote service) failed; see [`ProviderError`].
    /// Boxed to keep `Result<T, Error>` small.
    #[error(transparent)]
    Provider(Box<ProviderError>),
    /// The operation did not finish within its deadline.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The caller passed something the component cannot accept (empty input, a vector of the
    /// wrong dimension, a `k` of zero, ...). Nothing was changed.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A component was configured inconsistently (chunk overlap larger than chunk size, an
    /// unknown encoding, ...). Reported by `build()`/`new()`.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// A prompt template could not be parsed or formatted.
    #[error(transparent)]
    Prompt(#[from] PromptError),
    /// A model's output could not be parsed into the expected shape.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// Documents could not be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A tool call failed.
    #[error(transparent)]
    Tool(#[from] ToolError),
    /// A requested item does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// Reading or writing local state (a saved store, a file) failed.
    #[error("i/o error: {message}")]
    Io {
        /// What was being done, including the path.
        message: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// (De)serialising data failed.
    #[error("serialization error: {message}")]
    Serialization {
        /// What was being (de)serialised.
        message: String,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
    /// Any other failure, with its source kept.
    #[error("{message}")]
    Other {
        /// What failed.
        message: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<BoxError>,
    },
}

impl From<ProviderError> for Error {
    fn from(e: ProviderError) -> Self {
        Error::Provider(Box::new(e))
    }
}

impl Error {
    /// Whether retrying the same call later may succeed (rate limits, server errors,
    /// transport failures, timeouts, interrupted streams).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Provider(e) => e.is_retryable(),
            Error::Timeout(_) => true,
            _ => false,
        }
    }

    /// How long the provider asked us to wait before retrying, when it said so.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Provider(e) => e.retry_after,
            _ => None,
        }
    }

    /// The provider error, if this is one.
    pub fn as_provider(&self) -> Option<&ProviderError> {
        match self {
            Error::Provider(e) => Some(e.as_ref()),
            _ => None,
        }
    }

    /// The provider error kind, if this is a provider error.
    pub fn provider_kind(&self) -> Option<&ProviderErrorKind> {
        self.as_provider().map(|e| &e.kind)
    }

    /// Whether this is a timeout, either ours or a provider's.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout(_))
            || matches!(self.provider_kind(), Some(ProviderErrorKind::Timeout))
    }

    /// Whether the credentials were rejected.
    pub fn is_auth(&self) -> bool {
        matches!(self.provider_kind(), Some(ProviderErrorKind::Auth))
    }

    /// Whether the credentials lack permission for the call.
    pub fn is_permission_denied(&self) -> bool {
        matches!(
            self.provider_kind(),
            Some(ProviderErrorKind::PermissionDenied)
        )
    }

    /// Whether the provider rate-limited the call.
    pub fn is_rate_limited(&self) -> bool {
        matches!(self.provider_kind(), Some(ProviderErrorKind::RateLimited))
    }

    /// Builds [`Error::InvalidInput`].
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Error::InvalidInput(message.into())
    }

    /// Builds [`Error::InvalidConfig`].
    pub fn invalid_config(message: impl Into<String>) -> Self {
        Error::InvalidConfig(message.into())
    }

    /// Builds [`Error::Io`] with a description of what was being done.
    pub fn io(message: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            message: message.into(),
            source,
        }
    }

    /// Builds [`Error::Serialization`].
    pub fn serialization(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Serialization {
            message: message.into(),
            source: source.into(),
        }
    }

    /// Builds [`Error::Other`] without a source.
    pub fn other(message: impl Into<String>) -> Self {
        Error::Other {
            message: message.into(),
            source: None,
        }
    }
}

/// What kind of provider failure happened, by what the caller can do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProviderErrorKind {
    /// The credentials are missing or wrong (HTTP 401). Not retryable.
    Auth,
    /// The credentials are valid but may not do this (HTTP 403). Not retryable.
    PermissionDenied,
    /// Too many requests (HTTP 429); see [`ProviderError::retry_after`]. Retryable.
    RateLimited,
    /// The model (or deployment) does not exist (HTTP 404). Not retryable.
    ModelNotFound,
    /// The prompt is longer than the model's context window. Not retryable as is.
    ContextLengthExceeded,
    /// The provider rejected the request as malformed (HTTP 400/422). Not retryable.
    InvalidRequest,
    /// The provider failed (HTTP 5xx, overloaded). Retryable.
    Server,
    /// The connection failed before a response arrived. Retryable.
    Transport,
    /// The provider did not answer in time. Retryable.
    Timeout,
    /// The response could not be understood (bad JSON, missing fields). Not retryable.
    MalformedResponse,
    /// A streamed response stopped before it was complete. Retryable.
    StreamInterrupted,
    /// The provider refused to produce content (safety filters). Not retryable.
    ContentFiltered,
    /// The model is deliberately not being called: its circuit breaker is open after
    /// repeated failures. Retryable after [`ProviderError::retry_after`]; a fallback model
    /// should take over meanwhile.
    Unavailable,
    /// A provider-specific kind that has no category here; the string names it.
    Other(String),
}

impl ProviderErrorKind {
    /// Whether errors of this kind may succeed when retried.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ProviderErrorKind::RateLimited
                | ProviderErrorKind::Server
                | ProviderErrorKind::Transport
                | ProviderErrorKind::Timeout
                | ProviderErrorKind::StreamInterrupted
                | ProviderErrorKind::Unavailable
        )
    }

    /// The kind a bare HTTP status maps to, before looking at the body.
    pub fn from_status(status: u16) -> Self {
        match status {
            401 => ProviderErrorKind::Auth,
            403 => ProviderErrorKind::PermissionDenied,
            404 => ProviderErrorKind::ModelNotFound,
            408 => ProviderErrorKind::Timeout,
            429 => ProviderErrorKind::RateLimited,
            400 | 409 | 413 | 422 => ProviderErrorKind::InvalidRequest,
            500..=599 => ProviderErrorKind::Server,
            other => ProviderErrorKind::Other(format!("http {other}")),
        }
    }
}

impl fmt::Display for ProviderErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ProviderErrorKind::Auth => "authentication failed",
            ProviderErrorKind::PermissionDenied => "permission denied",
            ProviderErrorKind::RateLimited => "rate limited",
            ProviderErrorKind::ModelNotFound => "model not found",
            ProviderErrorKind::ContextLengthExceeded => "context length exceeded",
            ProviderErrorKind::InvalidRequest => "invalid request",
            ProviderErrorKind::Server => "server error",
            ProviderErrorKind::Transport => "transport error",
            ProviderErrorKind::Timeout => "timed out",
            ProviderErrorKind::MalformedResponse => "malformed response",
            ProviderErrorKind::StreamInterrupted => "stream interrupted",
            ProviderErrorKind::ContentFiltered => "content filtered",
            ProviderErrorKind::Unavailable => "unavailable (circuit open)",
            ProviderErrorKind::Other(s) => s.as_str(),
        };
        f.write_str(s)
    }
}

/// A failure reported by (or while talking to) a provider.
///
/// Holds what a caller needs to act: the [`kind`](ProviderError::kind), the HTTP status,
/// the `Retry-After` delay and the provider's own message. It never holds credentials.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub struct ProviderError {
    /// What kind of failure this is.
    pub kind: ProviderErrorKind,
    /// The HTTP status, when there was a response.
    pub status: Option<u16>,
    /// How long the provider asked us to wait before retrying.
    pub retry_after: Option<Duration>,
    /// The provider's message, or ours when the provider gave none.
    pub message: String,
    /// The provider's name (`"openai"`, `"gemini"`, ...), when known.
    pub provider: Option<String>,
    /// The provider's request id (`x-request-id` and similar), for support tickets.
    pub request_id: Option<String>,
    /// The provider's rate-limit headroom (`x-ratelimit-*` headers), when it sent them.
    pub rate_limit: Option<RateLimitInfo>,
    /// The underlying error, when there is one.
    #[source]
    pub source: Option<BoxError>,
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = &self.provider {
            write!(f, "{p}: ")?;
        }
        write!(f, "{}", self.kind)?;
        if let Some(s) = self.status {
            write!(f, " (HTTP {s})")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if let Some(d) = self.retry_after {
            write!(f, "; retry after {:.3}s", d.as_secs_f64())?;
        }
        if let Some(id) = &self.request_id {
            write!(f, " [request id {id}]")?;
        }
        Ok(())
    }
}

impl ProviderError {
    /// A provider error of `kind` with `message`.
    pub fn new(kind: ProviderErrorKind, message: impl Into<String>) -> Self {
        ProviderError {
            kind,
            status: None,
            retry_after: None,
            message: message.into(),
            provider: None,
            request_id: None,
            rate_limit: None,
            source: None,
        }
    }

    /// Sets the rate-limit headroom the provider reported.
    #[must_use]
    pub fn with_rate_limit(mut self, info: RateLimitInfo) -> Self {
        self.rate_limit = Some(info);
        self
    }

    /// Sets the provider's request id.
    #[must_use]
    pub fn with_request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_id = Some(request_id.into());
        self
    }

    /// Sets the HTTP status.
    #[must_use]
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Sets the `Retry-After` delay.
    #[must_use]
    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = Some(retry_after);
        self
    }

    /// Names the provider.
    #[must_use]
    pub fn with_provider(mut self, provider: impl Into<String>) -> Self {
        self.provider = Some(provider.into());
        self
    }

    /// Keeps the underlying error.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Whether retrying may succeed.
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }
}

/// A provider's rate-limit headroom, read from its response headers.
///
/// OpenAI (and compatible servers) send `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`
/// with resets as durations (`"1s"`, `"6m0s"`, `"20ms"`); Anthropic sends
/// `anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}` with resets as RFC 3339
/// times. Both end up here, resets as a delay from now. Client-side limiters use it to slow
/// down before the provider answers 429.
///
/// ```
/// use std::time::Duration;
/// use catena_core::RateLimitInfo;
/// let info = RateLimitInfo::from_headers([
///     ("x-ratelimit-remaining-requests", "0"),
///     ("x-ratelimit-reset-requests", "1m2.5s"),
///     ("x-ratelimit-remaining-tokens", "1200"),
/// ])
/// .unwrap();
/// assert_eq!(info.remaining_requests, Some(0));
/// assert_eq!(info.reset_requests, Some(Duration::from_millis(62_500)));
/// assert_eq!(info.remaining_tokens, Some(1200));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct RateLimitInfo {
    /// Requests allowed per window.
    pub limit_requests: Option<u64>,
    /// Requests left in the current window.
    pub remaining_requests: Option<u64>,
    /// When the request window resets, from now.
    pub reset_requests: Option<Duration>,
    /// Tokens allowed per window.
    pub limit_tokens: Option<u64>,
    /// Tokens left in the current window.
    pub remaining_tokens: Option<u64>,
    /// When the token window resets, from now.
    pub reset_tokens: Option<Duration>,
}

impl RateLimitInfo {
    /// Reads the headers OpenAI and Anthropic send; `None` when none of them is present.
    /// Names are matched case-insensitively; values that do not parse are skipped.
    pub fn from_headers<'a>(headers: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<Self> {
        Self::from_headers_at(headers, std::time::SystemTime::now())
    }

    /// As [`from_headers`](Self::from_headers), with RFC 3339 resets measured from `now`.
    pub fn from_headers_at<'a>(
        headers: impl IntoIterator<Item = (&'a str, &'a str)>,
        now: std::time::SystemTime,
    ) -> Option<Self> {
        let mut info = RateLimitInfo::default();
        let mut seen = false;
        for (name, value) in headers {
            let name = name.to_ascii_lowercase();
            let value = value.trim();
            let rest = if let Some(rest) = name.strip_prefix("x-ratelimit-") {
                // OpenAI: x-ratelimit-<what>-<unit>
                let Some((what, unit)) = rest.split_once('-') else {
                    continue;
                };
                (what.to_owned(), unit.to_owned())
            } else if let Some(rest) = name.strip_prefix("anthropic-ratelimit-") {
                // Anthropic: anthropic-ratelimit-<unit>-<what>
                let Some((unit, what)) = rest.split_once('-') else {
                    continue;
                };
                (what.to_owned(), unit.to_owned())
            } else {
                continue;
            };
            let (what, unit) = (rest.0.as_str(), rest.1.as_str());
            let requests = match unit {
                "requests" => true,
                "tokens" => false,
                _ => continue,
            };
            let parsed = match what {
                "limit" | "remaining" => value.parse::<u64>().ok().map(|n| {
                    let slot = match (what, requests) {
                        ("limit", true) => &mut info.limit_requests,
                        ("limit", false) => &mut info.limit_tokens,
                        (_, true) => &mut info.remaining_requests,
                        (_, false) => &mut info.remaining_tokens,
                    };
                    *slot = Some(n);
                }),
                "reset" => parse_reset(value, now).map(|d| {
                    if requests {
                        info.reset_requests = Some(d);
                    } else {
                        info.reset_tokens = Some(d);
                    }
                }),
                _ => None,
            };
            seen |= parsed.is_some();
        }
        seen.then_some(info)
    }
}

/// A reset as OpenAI writes it (`"6m0s"`, `"1.5s"`, `"20ms"`, `"1h2m3s"`) or as Anthropic
/// does (an RFC 3339 time).
fn parse_reset(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    if value.contains('T') {
        let at = parse_rfc3339(value)?;
        return Some(at.duration_since(now).unwrap_or(Duration::ZERO));
    }
    let mut total = 0f64;
    let mut number = String::new();
    let mut chars = value.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let n: f64 = number.parse().ok()?;
        number.clear();
        let unit = match c {
            'h' => 3600.0,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                0.001
            }
            'm' => 60.0,
            's' => 1.0,
            _ => return None,
        };
        total += n * unit;
        any = true;
    }
    if !number.is_empty() {
        // A bare number: seconds.
        total += number.parse::<f64>().ok()?;
        any = true;
    }
    (any && (0.0..1e9).contains(&total)).then(|| Duration::from_secs_f64(total))
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` as a time.
fn parse_rfc3339(value: &str) -> Option<std::time::SystemTime> {
    let b = value.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| value.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &value[19..];
    let mut frac = 0f64;
    if let Some(r) = rest.strip_prefix('.') {
        let digits = r.bytes().take_while(u8::is_ascii_digit).count();
        frac = format!("0.{}", &r[..digits]).parse().ok()?;
        rest = &r[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + s - offset;
    let secs = u64::try_from(secs).ok()?;
    Some(std::time::UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_secs_f64(frac))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_headers_of_both_providers_parse() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_767_225_600); // 2026-01-01T00:00:00Z
        let anthropic = RateLimitInfo::from_headers_at(
            [
                ("anthropic-ratelimit-requests-limit", "50"),
                ("anthropic-ratelimit-requests-remaining", "3"),
                ("anthropic-ratelimit-requests-reset", "2026-01-01T00:00:12Z"),
                ("anthropic-ratelimit-tokens-remaining", "9000"),
                (
                    "Anthropic-RateLimit-Tokens-Reset",
                    "2026-01-01T01:00:00.5+01:00",
                ),
            ],
            now,
        )
        .unwrap();
        assert_eq!(anthropic.limit_requests, Some(50));
        assert_eq!(anthropic.remaining_requests, Some(3));
        assert_eq!(anthropic.reset_requests, Some(Duration::from_secs(12)));
        assert_eq!(anthropic.remaining_tokens, Some(9000));
        assert_eq!(anthropic.reset_tokens, Some(Duration::from_millis(500)));
        let openai = RateLimitInfo::from_headers([
            ("x-ratelimit-limit-tokens", "40000"),
            ("x-ratelimit-reset-tokens", "20ms"),
            ("x-ratelimit-reset-requests", "1h2m3s"),
        ])
        .unwrap();
        assert_eq!(openai.limit_tokens, Some(40_000));
        assert_eq!(openai.reset_tokens, Some(Duration::from_millis(20)));
        assert_eq!(openai.reset_requests, Some(Duration::from_secs(3723)));
        assert!(RateLimitInfo::from_headers([("content-type", "application/json")]).is_none());
        assert!(RateLimitInfo::from_headers([("x-ratelimit-reset-requests", "soon")]).is_none());
        assert!(RateLimitInfo::from_headers([("x-ratelimit-reset-requests", "1e99s")]).is_none());
    }

    #[test]
    fn classification_by_status() {
        assert_eq!(ProviderErrorKind::from_status(401), ProviderErrorKind::Auth);
        assert_eq!(
            ProviderErrorKind::from_status(403),
            ProviderErrorKind::PermissionDenied
        );
        assert_eq!(
            ProviderErrorKind::from_status(404),
            ProviderErrorKind::ModelNotFound
        );
        assert_eq!(
            ProviderErrorKind::from_status(429),
            ProviderErrorKind::RateLimited
        );
        assert_eq!(
            ProviderErrorKind::from_status(503),
            ProviderErrorKind::Server
        );
        assert_eq!(
            ProviderErrorKind::from_status(400),
            ProviderErrorKind::InvalidRequest
        );
        assert!(ProviderErrorKind::from_status(502).is_retryable());
        assert!(!ProviderErrorKind::from_status(401).is_retryable());
        assert_eq!(
            ProviderErrorKind::from_status(418),
            ProviderErrorKind::Other("http 418".into())
        );
    }

    #[test]
    fn retryability_and_helpers() {
        let e: Error = ProviderError::new(ProviderErrorKind::StreamInterrupted, "cut").into();
        assert!(e.is_retryable());
        let e: Error = ProviderError::new(ProviderErrorKind::Auth, "bad key")
            .with_status(401)
            .into();
        assert!(!e.is_retryable());
        assert!(e.is_auth());
        assert!(Error::Timeout(Duration::from_secs(1)).is_retryable());
        assert!(Error::Timeout(Duration::from_secs(1)).is_timeout());
        assert!(!Error::invalid_input("x").is_retryable());
    }

    #[test]
    fn display_carries_status_message_and_retry_after() {
        let e = ProviderError::new(ProviderErrorKind::RateLimited, "quota")
            .with_provider("openai")
            .with_status(429)
            .with_retry_after(Duration::from_millis(1500));
        assert_eq!(
            e.to_string(),
            "openai: rate limited (HTTP 429): quota; retry after 1.500s"
        );
    }
}
