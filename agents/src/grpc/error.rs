//! The client's error type, and how failures map between Catena, events and gRPC status.

use std::time::Duration;

use catena_core::{BoxError, Error, Usage};
use tonic::Code;

use super::pb::{self, ErrorCode};
use crate::error::AgentError;

/// Why a task sent through [`AgentServiceClient`](super::AgentServiceClient) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TaskError {
    /// The agent service could not be reached.
    #[error("cannot connect to the agent service: {message}")]
    Connect {
        /// What failed.
        message: String,
        /// The transport's error.
        #[source]
        source: BoxError,
    },
    /// The request could not be sent as it is (a metadata value that is not a valid
    /// header, history the contract cannot carry). Nothing was sent.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The call ended with a non-OK gRPC status and no error event: rejected before it
    /// started (validation, authentication) or cut off (transport).
    #[error("agent service call failed ({code:?}): {message}")]
    Status {
        /// The gRPC status code.
        code: Code,
        /// The status message.
        message: String,
    },
    /// The task started and failed; the service sent an error event.
    #[error("task failed ({code:?}): {message}")]
    Task {
        /// The kind of failure.
        code: ErrorCode,
        /// What went wrong.
        message: String,
        /// Whether sending the same task again later may succeed.
        retryable: bool,
        /// Tokens the task's model calls used before it failed (zero when the service does
        /// not report them): spent all the same.
        usage: Usage,
    },
    /// The client's own deadline passed before the service answered.
    #[error("task deadline of {0:?} passed")]
    DeadlineExceeded(Duration),
    /// The stream broke the contract (it ended without a final answer).
    #[error("agent service broke the contract: {0}")]
    Protocol(String),
}

impl TaskError {
    pub(crate) fn from_event(e: pb::ErrorEvent) -> Self {
        TaskError::Task {
            code: ErrorCode::try_from(e.code).unwrap_or(ErrorCode::Unspecified),
            message: e.message,
            retryable: e.retryable,
            usage: e.usage.map(Usage::from).unwrap_or_default(),
        }
    }

    pub(crate) fn from_status(status: &tonic::Status) -> Self {
        TaskError::Status {
            code: status.code(),
            message: status.message().to_owned(),
        }
    }

    /// The gRPC status code that best describes this error.
    pub fn code(&self) -> Code {
        match self {
            TaskError::Connect { .. } => Code::Unavailable,
            TaskError::InvalidRequest(_) => Code::InvalidArgument,
            TaskError::Status { code, .. } => *code,
            TaskError::Task { code, .. } => status_code(*code),
            TaskError::DeadlineExceeded(_) => Code::DeadlineExceeded,
            TaskError::Protocol(_) => Code::Internal,
        }
    }

    /// Whether the task's deadline passed (the client's, the service's, or `max_duration`).
    pub fn is_deadline_exceeded(&self) -> bool {
        self.code() == Code::DeadlineExceeded
    }

    /// Whether the request was rejected as invalid (`INVALID_ARGUMENT`).
    pub fn is_invalid_argument(&self) -> bool {
        self.code() == Code::InvalidArgument
    }

    /// Tokens the task used before it failed, as the service reported them in its error
    /// event; `None` for failures without one (nothing started, or the call was cut off).
    pub fn usage(&self) -> Option<&Usage> {
        match self {
            TaskError::Task { usage, .. } => Some(usage),
            _ => None,
        }
    }

    /// Whether sending the same task again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            TaskError::Task { retryable, .. } => *retryable,
            TaskError::Connect { .. } => true,
            TaskError::Status { code, .. } => {
                matches!(code, Code::Unavailable | Code::ResourceExhausted)
            }
            _ => false,
        }
    }
}

/// The gRPC status that closes a call failed with `code`.
pub(crate) fn status_code(code: ErrorCode) -> Code {
    match code {
        ErrorCode::InvalidArgument => Code::InvalidArgument,
        ErrorCode::DeadlineExceeded => Code::DeadlineExceeded,
        ErrorCode::ResourceExhausted | ErrorCode::LimitExceeded => Code::ResourceExhausted,
        ErrorCode::Unavailable => Code::Unavailable,
        ErrorCode::Cancelled => Code::Cancelled,
        ErrorCode::ModelFailed | ErrorCode::Internal | ErrorCode::Unspecified => Code::Internal,
    }
}

/// How a durable run ended without an error of its own (cancelled, failed on a limit
/// earlier): carried inside [`Error::Other`] so that the wire event gets `code`.
#[derive(Debug)]
struct RunEnded {
    code: ErrorCode,
    message: String,
}

impl std::fmt::Display for RunEnded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RunEnded {}

/// An error whose wire event has `code`.
pub(crate) fn run_ended(code: ErrorCode, message: impl Into<String>) -> Error {
    let message = message.into();
    Error::Other {
        message: message.clone(),
        source: Some(Box::new(RunEnded { code, message })),
    }
}

/// Classifies a failed run by what the caller can do about it.
pub(crate) fn error_event(e: &Error) -> pb::ErrorEvent {
    let ended = match e {
        Error::Other {
            source: Some(s), ..
        } => s.downcast_ref::<RunEnded>(),
        _ => None,
    };
    let (code, retryable) = if let Some(ended) = ended {
        (ended.code, false)
    } else if AgentError::from_error(e).is_some() {
        (ErrorCode::LimitExceeded, false)
    } else if e.as_checkpoint_conflict().is_some() {
        // Another call advanced the durable run first: it carries on; this one may follow
        // it later (GetTask, or ResumeTask once it has stopped).
        (ErrorCode::Unavailable, true)
    } else {
        match e {
            Error::Timeout(_) => (ErrorCode::DeadlineExceeded, true),
            Error::InvalidInput(_) => (ErrorCode::InvalidArgument, false),
            Error::Provider(p) if p.is_retryable() => (ErrorCode::Unavailable, true),
            Error::Provider(_) => (ErrorCode::ModelFailed, false),
            _ => (ErrorCode::Internal, false),
        }
    };
    pb::ErrorEvent {
        code: code.into(),
        message: e.to_string(),
        retryable,
        usage: None,
    }
}

/// The status a runner's start-up error rejects the call with.
pub(crate) fn start_status(e: &Error) -> tonic::Status {
    match e {
        Error::InvalidInput(m) => tonic::Status::invalid_argument(m.clone()),
        Error::NotFound(m) => tonic::Status::not_found(m.clone()),
        other => tonic::Status::internal(format!("cannot start the task: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_provider_errors_are_classified() {
        let limit: Error = AgentError::MaxIterations { limit: 2 }.into();
        let ev = error_event(&limit);
        assert_eq!(ev.code, ErrorCode::LimitExceeded as i32);
        assert!(!ev.retryable);
        let rate = Error::from(catena_core::ProviderError::new(
            catena_core::ProviderErrorKind::RateLimited,
            "slow down",
        ));
        let ev = error_event(&rate);
        assert_eq!(ev.code, ErrorCode::Unavailable as i32);
        assert!(ev.retryable);
        let err = TaskError::from_event(ev);
        assert_eq!(err.code(), Code::Unavailable);
        assert!(err.is_retryable());
    }

    /// The call that loses the race to advance a durable run is told to retry later (as the
    /// Python service says it), not that the service failed (`ERROR_CODE_INTERNAL` before).
    #[test]
    fn a_lost_race_to_advance_a_durable_run_is_unavailable_and_retryable() {
        let conflict: Error = catena_core::CheckpointError::Conflict {
            run_id: "run-1".into(),
            step: 3,
            latest: Some(3),
        }
        .into();
        let ev = error_event(&conflict);
        assert_eq!(ev.code, ErrorCode::Unavailable as i32);
        assert!(ev.retryable);
    }
}
