//! Errors as RFC 9457 problem details (`application/problem+json`).
//!
//! ```
//! use axum::http::StatusCode;
//! use example_gateway::problem::Problem;
//!
//! let p = Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid request")
//!     .with_field("question", "must not be empty");
//! assert_eq!(p.status, 422);
//! ```

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use catena_core::{Error, ProviderErrorKind};

/// One bad field of a request.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FieldError {
    /// The field's path, e.g. `documents[2].content`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// A problem details object.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// A URI naming the problem type (`about:blank` when the status says it all).
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What happened in this case.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The bad fields, for validation errors.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// The request this problem ended (also its `x-request-id` header): the key to the full
    /// error in the gateway's logs, which the client is only told about in general terms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(skip)]
    retry_after: Option<Duration>,
    #[serde(skip)]
    www_authenticate: Option<&'static str>,
}

impl Problem {
    /// A problem with `status` and `title`.
    pub fn new(status: StatusCode, title: impl Into<String>) -> Self {
        Problem {
            kind: "about:blank".to_owned(),
            title: title.into(),
            status: status.as_u16(),
            detail: None,
            errors: Vec::new(),
            request_id: None,
            retry_after: None,
            www_authenticate: None,
        }
    }

    /// Sets the detail.
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Sets the request id.
    #[must_use]
    pub fn with_request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = Some(id.into());
        self
    }

    /// Sets the type URI.
    #[must_use]
    pub fn with_type(mut self, kind: impl Into<String>) -> Self {
        self.kind = kind.into();
        self
    }

    /// Adds a bad field.
    #[must_use]
    pub fn with_field(mut self, field: impl Into<String>, message: impl Into<String>) -> Self {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
        self
    }

    /// Adds a `Retry-After` header (whole seconds, at least 1).
    #[must_use]
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// A 401 with a `WWW-Authenticate: Bearer` challenge.
    pub fn unauthorized(detail: &str) -> Self {
        let mut p = Problem::new(StatusCode::UNAUTHORIZED, "unauthorized").with_detail(detail);
        p.www_authenticate = Some(r#"Bearer realm="catena", error="invalid_token""#);
        p
    }

    /// A 422 for one bad field.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid request")
            .with_detail(format!("`{field}` is invalid"))
            .with_field(field, message)
    }

    /// A 503 that tells the client to come back later.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, "service unavailable")
            .with_detail(detail)
            .with_retry_after(Duration::from_secs(1))
    }

    /// The problem for a failure of a Catena component (the model, the store, the embedder).
    ///
    /// Only a fault of the request's own input is described; an upstream failure gets a
    /// general detail, never the component's message (which may name hosts, paths, databases
    /// or provider accounts): that goes to the log, under the problem's request id.
    pub fn from_catena(e: &Error) -> Self {
        const FAILED: &str =
            "a backend of the gateway failed; the request id names it in the gateway's logs";
        match e {
            Error::InvalidInput(m) => {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid input")
                    .with_detail(m.clone())
            }
            Error::Timeout(_) => Problem::new(StatusCode::GATEWAY_TIMEOUT, "upstream timed out")
                .with_detail("a backend of the gateway did not answer in time"),
            Error::Provider(p) => match p.kind {
                ProviderErrorKind::ContextLengthExceeded => {
                    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "context too long").with_detail(
                        "the question and its context exceed the model's context window",
                    )
                }
                ProviderErrorKind::RateLimited
                | ProviderErrorKind::Server
                | ProviderErrorKind::Unavailable => {
                    Problem::unavailable("the model is unavailable; try again later")
                        .with_retry_after(p.retry_after.unwrap_or(Duration::from_secs(1)))
                }
                ProviderErrorKind::Timeout => {
                    Problem::new(StatusCode::GATEWAY_TIMEOUT, "upstream timed out")
                        .with_detail("the model did not answer in time")
                }
                _ => Problem::new(StatusCode::BAD_GATEWAY, "upstream failed").with_detail(FAILED),
            },
            _ => Problem::new(StatusCode::BAD_GATEWAY, "upstream failed").with_detail(FAILED),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut res = (status, body).into_response();
        let headers = res.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(after) = self.retry_after {
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        if let Some(challenge) = self.www_authenticate {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        res
    }
}
