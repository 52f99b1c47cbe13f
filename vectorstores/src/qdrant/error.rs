//! Qdrant errors as Catena errors, and which of them are retried.

use std::future::Future;
use std::time::Duration;

use catena_core::{Error, ProviderError, ProviderErrorKind, RetryPolicy};
use qdrant_client::QdrantError;

/// gRPC status codes (stable across gRPC implementations).
mod code {
    pub(super) const CANCELLED: i32 = 1;
    pub(super) const INVALID_ARGUMENT: i32 = 3;
    pub(super) const DEADLINE_EXCEEDED: i32 = 4;
    pub(super) const NOT_FOUND: i32 = 5;
    pub(super) const ALREADY_EXISTS: i32 = 6;
    pub(super) const PERMISSION_DENIED: i32 = 7;
    pub(super) const RESOURCE_EXHAUSTED: i32 = 8;
    pub(super) const FAILED_PRECONDITION: i32 = 9;
    pub(super) const OUT_OF_RANGE: i32 = 11;
    pub(super) const UNIMPLEMENTED: i32 = 12;
    pub(super) const UNAVAILABLE: i32 = 14;
    pub(super) const UNAUTHENTICATED: i32 = 16;
}

/// The gRPC status code of a server response, if `e` is one.
pub(crate) fn status_code(e: &QdrantError) -> Option<i32> {
    match e {
        QdrantError::ResponseError { status }
        | QdrantError::ResourceExhaustedError { status, .. } => Some(i32::from(status.code())),
        _ => None,
    }
}

/// The store's default [`RetryPolicy`]: 3 retries, backoff from 100 ms doubling up to 5 s, a
/// server's retry-after honoured up to 5 s, no jitter.
///
/// The store retries gRPC `UNAVAILABLE`, `DEADLINE_EXCEEDED` and `RESOURCE_EXHAUSTED`
/// (honouring the server's retry-after) and I/O failures; other failures
/// (`INVALID_ARGUMENT`, authentication, ...) are never retried. Every Qdrant call the store
/// makes is idempotent, so a retry cannot duplicate.
pub(crate) fn default_retry() -> RetryPolicy {
    RetryPolicy::default()
        .with_max_retries(3)
        .with_initial_backoff(Duration::from_millis(100))
        .with_max_backoff(Duration::from_secs(5))
        .with_max_retry_after(Duration::from_secs(5))
        .with_jitter(false)
}

/// Runs Qdrant calls under a [`RetryPolicy`], retrying the transient failures.
pub(crate) trait RunQdrant {
    /// Runs `call`, retrying transient failures; `what` names the call in logs.
    async fn run_qdrant<T, F, Fut>(&self, what: &str, call: F) -> Result<T, QdrantError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, QdrantError>>;
}

impl RunQdrant for RetryPolicy {
    async fn run_qdrant<T, F, Fut>(&self, what: &str, call: F) -> Result<T, QdrantError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, QdrantError>>,
    {
        self.run_classified(tokio::time::sleep, transient, call)
            .await
            .inspect_err(|e| tracing::debug!(what, error = %e, "qdrant call failed"))
    }
}

/// `Some(retry-after)` when `e` is transient.
fn transient(e: &QdrantError) -> Option<Option<Duration>> {
    match e {
        QdrantError::ResourceExhaustedError {
            retry_after_seconds,
            ..
        } => Some(Some(Duration::from_secs(*retry_after_seconds))),
        QdrantError::ResponseError { status } => matches!(
            i32::from(status.code()),
            code::UNAVAILABLE | code::DEADLINE_EXCEEDED | code::RESOURCE_EXHAUSTED
        )
        .then_some(None),
        QdrantError::Io(_) => Some(None),
        _ => None,
    }
}

/// Whether the server rejected the request's content (as opposed to failing): such an
/// upsert batch is split to find the points at fault.
pub(crate) fn is_rejection(e: &QdrantError) -> bool {
    matches!(e, QdrantError::ResponseError { .. })
        && matches!(
            status_code(e),
            Some(code::INVALID_ARGUMENT | code::OUT_OF_RANGE | code::FAILED_PRECONDITION)
        )
}

/// The server's message for a rejected request.
pub(crate) fn reason(e: &QdrantError) -> String {
    match e {
        QdrantError::ResponseError { status }
        | QdrantError::ResourceExhaustedError { status, .. } => {
            format!("{:?}: {}", status.code(), status.message())
        }
        other => other.to_string(),
    }
}

/// A Qdrant client error as a Catena error; `what` names the operation.
pub(crate) fn convert(e: QdrantError, what: &str) -> Error {
    let (kind, retry_after) = match &e {
        QdrantError::ResponseError { status } => (kind_of(i32::from(status.code())), None),
        QdrantError::ResourceExhaustedError {
            retry_after_seconds,
            ..
        } => (
            ProviderErrorKind::RateLimited,
            Some(Duration::from_secs(*retry_after_seconds)),
        ),
        QdrantError::ConversionError(_) => (ProviderErrorKind::MalformedResponse, None),
        QdrantError::InvalidUri(_) => {
            return Error::invalid_config(format!("qdrant: invalid url: {e}"));
        }
        QdrantError::Io(_) => (ProviderErrorKind::Transport, None),
        _ => (ProviderErrorKind::Other("qdrant".into()), None),
    };
    let mut err =
        ProviderError::new(kind, format!("{what}: {}", reason(&e))).with_provider("qdrant");
    if let Some(d) = retry_after {
        err = err.with_retry_after(d);
    }
    Error::from(err.with_source(e))
}

fn kind_of(grpc_code: i32) -> ProviderErrorKind {
    match grpc_code {
        code::UNAVAILABLE | code::CANCELLED => ProviderErrorKind::Transport,
        code::DEADLINE_EXCEEDED => ProviderErrorKind::Timeout,
        code::RESOURCE_EXHAUSTED => ProviderErrorKind::RateLimited,
        code::INVALID_ARGUMENT
        | code::OUT_OF_RANGE
        | code::FAILED_PRECONDITION
        | code::ALREADY_EXISTS => ProviderErrorKind::InvalidRequest,
        code::UNAUTHENTICATED => ProviderErrorKind::Auth,
        code::PERMISSION_DENIED => ProviderErrorKind::PermissionDenied,
        code::NOT_FOUND => ProviderErrorKind::Other("not found".into()),
        code::UNIMPLEMENTED => ProviderErrorKind::Other("unimplemented".into()),
        _ => ProviderErrorKind::Server,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use tonic::Code;

    fn status(code: Code) -> QdrantError {
        QdrantError::ResponseError {
            status: tonic::Status::new(code, "boom"),
        }
    }

    #[tokio::test]
    async fn retries_only_transient_codes() {
        let policy = default_retry().with_initial_backoff(Duration::from_millis(1));
        for (code, calls) in [
            (Code::Unavailable, 4),
            (Code::DeadlineExceeded, 4),
            (Code::ResourceExhausted, 4),
            (Code::InvalidArgument, 1),
            (Code::Unauthenticated, 1),
        ] {
            let n = AtomicU32::new(0);
            let r: Result<(), _> = policy
                .run_qdrant("t", || {
                    n.fetch_add(1, Ordering::SeqCst);
                    async move { Err(status(code)) }
                })
                .await;
            assert!(r.is_err());
            assert_eq!(n.load(Ordering::SeqCst), calls, "{code:?}");
        }
        // Succeeds after two transient failures.
        let n = AtomicU32::new(0);
        let r = policy
            .run_qdrant("t", || {
                let k = n.fetch_add(1, Ordering::SeqCst);
                async move {
                    if k < 2 {
                        Err(status(Code::Unavailable))
                    } else {
                        Ok(k)
                    }
                }
            })
            .await;
        assert_eq!(r.unwrap(), 2);
    }

    #[test]
    fn classification() {
        let e = convert(status(Code::Unavailable), "upsert");
        assert!(e.is_retryable());
        assert!(e.to_string().contains("qdrant"), "{e}");
        assert!(convert(status(Code::Unauthenticated), "x").is_auth());
        assert!(!convert(status(Code::InvalidArgument), "x").is_retryable());
        assert!(is_rejection(&status(Code::InvalidArgument)));
        assert!(!is_rejection(&status(Code::Unavailable)));
    }
}
