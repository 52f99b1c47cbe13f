//! Server-sent event responses: the keep-alive, and the guard that ends a stream with a
//! terminal `error` event when the upstream goes quiet or the gateway shuts down.

use std::convert::Infallible;
use std::pin::Pin;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use serde_json::json;
use tokio::sync::watch;

use crate::state::AppState;

/// A boxed stream of server-sent events.
pub(super) type EventStream = Pin<Box<dyn Stream<Item = Result<Event, Infallible>> + Send>>;

/// An SSE response over `events`, with a keep-alive comment every 15 s.
pub(super) fn sse(events: EventStream) -> Response {
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// Ends `events` with a terminal `error` event when nothing arrives for the idle timeout or
/// the gateway shuts down. Dropping the result (a client that went away) drops `events`,
/// which cancels the upstream model stream or delegated task.
pub(super) fn guard(
    events: impl Stream<Item = Event> + Send + 'static,
    state: &AppState,
) -> EventStream {
    struct Guard {
        inner: Pin<Box<dyn Stream<Item = Event> + Send>>,
        shutdown: watch::Receiver<bool>,
        idle: Duration,
        deadline: tokio::time::Instant,
        done: bool,
    }
    let g = Guard {
        inner: Box::pin(events),
        shutdown: state.shutdown.clone(),
        idle: Duration::from_secs(state.config.limits.stream_idle_timeout_secs.max(1)),
        deadline: tokio::time::Instant::now()
            + Duration::from_secs(state.config.limits.stream_max_secs.max(1)),
        done: false,
    };
    let terminal = |kind: &str, detail: &str| {
        Event::default()
            .event("error")
            .json_data(json!({ "type": kind, "detail": detail }))
            .unwrap_or_default()
    };
    Box::pin(futures::stream::unfold(g, move |mut g| async move {
        if g.done {
            return None;
        }
        if *g.shutdown.borrow() {
            g.done = true;
            return Some((Ok(terminal("shutdown", "the gateway is shutting down")), g));
        }
        let next = {
            let Guard {
                inner,
                shutdown,
                idle,
                deadline,
                ..
            } = &mut g;
            tokio::select! {
                item = tokio::time::timeout(*idle, inner.next()) => Some(Some(item)),
                _ = shutdown.changed() => None,
                () = tokio::time::sleep_until(*deadline) => Some(None),
            }
        };
        let next = match next {
            Some(None) => {
                g.done = true;
                return Some((
                    Ok(terminal(
                        "max_duration",
                        "the stream reached its longest allowed duration",
                    )),
                    g,
                ));
            }
            Some(Some(item)) => Some(item),
            None => None,
        };
        match next {
            None => {
                g.done = true;
                Some((Ok(terminal("shutdown", "the gateway is shutting down")), g))
            }
            Some(Err(_)) => {
                g.done = true;
                Some((
                    Ok(terminal(
                        "idle_timeout",
                        "the upstream sent nothing for too long",
                    )),
                    g,
                ))
            }
            Some(Ok(None)) => None,
            Some(Ok(Some(event))) => Some((Ok(event), g)),
        }
    }))
}
