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
            source: None,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

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
