//! What every handler reads from a request: the JSON [`Body`] extractor, whose rejections are
//! problem details, and the checks of the fields several endpoints share.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::Json;
use serde::de::DeserializeOwned;

use crate::problem::Problem;
use crate::state::AppState;

/// The most characters of a question or task.
const MAX_QUESTION_CHARS: usize = 4000;
/// The most chunks a request may ask to retrieve.
const MAX_K: usize = 20;

/// A JSON body whose rejections are problem details: 400 malformed, 408 not sent whole
/// within the body-read timeout, 413 too large, 415 wrong type, 422 wrong shape (naming the
/// field).
pub(crate) struct Body<T>(pub(crate) T);

impl<T: DeserializeOwned> FromRequest<Arc<AppState>> for Body<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let limit = Duration::from_secs(state.config.limits.body_read_timeout_secs.max(1));
        match tokio::time::timeout(limit, Json::<T>::from_request(req, state)).await {
            Ok(Ok(Json(v))) => Ok(Body(v)),
            Ok(Err(rejection)) => Err(json_problem(rejection)),
            Err(_) => Err(
                Problem::new(StatusCode::REQUEST_TIMEOUT, "request body too slow").with_detail(
                    format!(
                        "the request body did not arrive within {} s",
                        limit.as_secs()
                    ),
                ),
            ),
        }
    }
}

/// What a JSON rejection becomes: 400, 413, 415 or 422 naming the field.
fn json_problem(rejection: JsonRejection) -> Problem {
    match rejection {
        JsonRejection::JsonSyntaxError(e) => {
            Problem::new(StatusCode::BAD_REQUEST, "malformed JSON").with_detail(e.body_text())
        }
        JsonRejection::JsonDataError(e) => {
            let text = e.body_text();
            let text = text
                .strip_prefix("Failed to deserialize the JSON body into the target type: ")
                .unwrap_or(&text)
                .to_owned();
            let (field, message) = match text.split_once(": ") {
                Some((f, m)) if !f.contains(' ') => (f.to_owned(), m.to_owned()),
                _ => (".".to_owned(), text.clone()),
            };
            Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid request")
                .with_detail(text)
                .with_field(field, message)
        }
        JsonRejection::MissingJsonContentType(_) => {
            Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported media type")
                .with_detail("send `Content-Type: application/json`")
        }
        JsonRejection::BytesRejection(e) => {
            let status = e.status();
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                Problem::new(status, "request body too large").with_detail(e.body_text())
            } else {
                Problem::new(status, "cannot read the request body").with_detail(e.body_text())
            }
        }
        other => Problem::new(other.status(), "invalid request").with_detail(other.body_text()),
    }
}

/// `k` when given (1 to [`MAX_K`]), else `default`.
pub(super) fn validate_k(k: Option<usize>, default: usize) -> Result<usize, Problem> {
    match k {
        None => Ok(default),
        Some(k) if (1..=MAX_K).contains(&k) => Ok(k),
        Some(_) => Err(Problem::invalid_field("k", format!("must be 1 to {MAX_K}"))),
    }
}

/// A question or task: not blank, at most [`MAX_QUESTION_CHARS`] characters.
pub(super) fn validate_text(field: &str, text: &str) -> Result<(), Problem> {
    if text.trim().is_empty() {
        return Err(Problem::invalid_field(field, "must not be empty"));
    }
    if text.chars().count() > MAX_QUESTION_CHARS {
        return Err(Problem::invalid_field(
            field,
            format!("must be at most {MAX_QUESTION_CHARS} characters"),
        ));
    }
    Ok(())
}
