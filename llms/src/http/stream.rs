//! Decoding streamed bodies: lines with a length bound and an idle timeout, then SSE events
//! or NDJSON lines.

use std::time::Duration;

use bytes::Bytes;
use catena_core::{ProviderErrorKind, Result};
use futures::stream::BoxStream;
use futures::StreamExt;

use super::provider_error;

/// One server-sent event.
#[cfg_attr(not(any(feature = "openai", feature = "gemini")), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    /// The `event:` field, when present.
    pub(crate) event: Option<String>,
    /// The `data:` lines, joined by `\n`.
    pub(crate) data: String,
}

struct Lines {
    inner: BoxStream<'static, reqwest::Result<Bytes>>,
    buf: Vec<u8>,
    scanned: usize,
    idle: Duration,
    max_line: usize,
    provider: &'static str,
    eof: bool,
    failed: bool,
}

impl Lines {
    fn new(
        response: reqwest::Response,
        provider: &'static str,
        idle: Duration,
        max_line: usize,
    ) -> Self {
        Lines {
            inner: response.bytes_stream().boxed(),
            buf: Vec::new(),
            scanned: 0,
            idle,
            max_line,
            provider,
            eof: false,
            failed: false,
        }
    }

    fn take_line(&mut self, end: usize, consumed: usize) -> Result<String> {
        if end > self.max_line {
            return Err(provider_error(
                self.provider,
                ProviderErrorKind::MalformedResponse,
                format!("stream line exceeds {} bytes", self.max_line),
            ));
        }
        let mut line: Vec<u8> = self.buf.drain(..consumed).collect();
        line.truncate(end);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        self.scanned = 0;
        String::from_utf8(line).map_err(|_| {
            provider_error(
                self.provider,
                ProviderErrorKind::MalformedResponse,
                "stream line is not valid UTF-8",
            )
        })
    }

    async fn next_line(&mut self) -> Option<Result<String>> {
        if self.failed {
            return None;
        }
        let out = self.next_line_inner().await;
        if matches!(out, Some(Err(_))) {
            self.failed = true;
        }
        out
    }

    async fn next_line_inner(&mut self) -> Option<Result<String>> {
        loop {
            if let Some(pos) = self.buf[self.scanned..].iter().position(|b| *b == b'\n') {
                let end = self.scanned + pos;
                return Some(self.take_line(end, end + 1));
            }
            self.scanned = self.buf.len();
            if self.buf.len() > self.max_line {
                return Some(Err(provider_error(
                    self.provider,
                    ProviderErrorKind::MalformedResponse,
                    format!("stream line exceeds {} bytes", self.max_line),
                )));
            }
            if self.eof {
                if self.buf.is_empty() {
                    return None;
                }
                let n = self.buf.len();
                return Some(self.take_line(n, n));
            }
            match tokio::time::timeout(self.idle, self.inner.next()).await {
                Err(_) => {
                    return Some(Err(provider_error(
                        self.provider,
                        ProviderErrorKind::Timeout,
                        format!("stream idle for more than {:?}", self.idle),
                    )))
                }
                Ok(None) => self.eof = true,
                Ok(Some(Err(e))) => {
                    return Some(Err(provider_error(
                        self.provider,
                        ProviderErrorKind::StreamInterrupted,
                        format!("connection lost mid-stream: {}", super::WithoutUrl(&e)),
                    )))
                }
                Ok(Some(Ok(bytes))) => self.buf.extend_from_slice(&bytes),
            }
        }
    }
}

/// The events of a `text/event-stream` body. Comments are skipped; an event cut off by the
/// end of the body is dropped (as the SSE spec says), so callers must check for their
/// provider's terminal marker. After an error the stream ends.
#[cfg_attr(not(any(feature = "openai", feature = "gemini")), allow(dead_code))]
pub(crate) fn sse_events(
    response: reqwest::Response,
    provider: &'static str,
    idle: Duration,
    max_line: usize,
) -> BoxStream<'static, Result<SseEvent>> {
    let lines = Lines::new(response, provider, idle, max_line);
    futures::stream::unfold(lines, |mut lines| async move {
        let mut event: Option<String> = None;
        let mut data: Option<String> = None;
        loop {
            match lines.next_line().await? {
                Err(e) => return Some((Err(e), lines)),
                Ok(line) if line.is_empty() => {
                    if let Some(data) = data.take() {
                        return Some((
                            Ok(SseEvent {
                                event: event.take(),
                                data,
                            }),
                            lines,
                        ));
                    }
                    event = None;
                }
                Ok(line) if line.starts_with(':') => {}
                Ok(line) => {
                    let (field, value) = match line.split_once(':') {
                        Some((f, v)) => (f.to_owned(), v.strip_prefix(' ').unwrap_or(v).to_owned()),
                        None => (line, String::new()),
                    };
                    match field.as_str() {
                        "data" => {
                            match &mut data {
                                Some(d) => {
                                    d.push('\n');
                                    d.push_str(&value);
                                }
                                None => data = Some(value),
                            }
                            // An event is bounded like a line: endless `data:` lines
                            // without a blank line must not grow memory.
                            if data.as_ref().is_some_and(|d| d.len() > lines.max_line) {
                                lines.failed = true;
                                let e = provider_error(
                                    lines.provider,
                                    ProviderErrorKind::MalformedResponse,
                                    format!("stream event exceeds {} bytes", lines.max_line),
                                );
                                return Some((Err(e), lines));
                            }
                        }
                        "event" => event = Some(value),
                        _ => {}
                    }
                }
            }
        }
    })
    .boxed()
}

/// The non-empty lines of a newline-delimited JSON body. After an error the stream ends.
#[cfg_attr(not(feature = "ollama"), allow(dead_code))]
pub(crate) fn ndjson_lines(
    response: reqwest::Response,
    provider: &'static str,
    idle: Duration,
    max_line: usize,
) -> BoxStream<'static, Result<String>> {
    let lines = Lines::new(response, provider, idle, max_line);
    futures::stream::unfold(lines, |mut lines| async move {
        loop {
            match lines.next_line().await? {
                Ok(line) if line.trim().is_empty() => continue,
                other => return Some((other, lines)),
            }
        }
    })
    .boxed()
}

/// How much of the partial text an interruption error quotes.
const MAX_QUOTED_CHARS: usize = 2000;

/// The protocol logic of one provider's chat event stream, free of I/O; [`decode_sse`]
/// feeds it.
#[cfg_attr(not(any(feature = "openai", feature = "anthropic")), allow(dead_code))]
pub(crate) trait SseDecoder: Send + 'static {
    /// Decodes one event into chunks (or an error, after which [`is_done`](Self::is_done)).
    fn on_event(
        &mut self,
        event: &SseEvent,
        out: &mut std::collections::VecDeque<Result<catena_core::ChatChunk>>,
    );
    /// Whether the terminal event (or an error) has been seen: nothing more is read.
    fn is_done(&self) -> bool;
    /// The error for a stream that ended before its terminal event.
    fn interrupted(&self) -> catena_core::Error;
    /// Adds what was received so far to a transport error's message.
    fn with_partial(&self, err: catena_core::Error) -> catena_core::Error;
}

/// Runs `decoder` over the server-sent events of `response` (after the `first` chunks);
/// errors are redacted of `key`.
#[cfg_attr(not(any(feature = "openai", feature = "anthropic")), allow(dead_code))]
pub(crate) fn decode_sse<D: SseDecoder>(
    response: reqwest::Response,
    provider: &'static str,
    options: &super::HttpOptions,
    key: Option<crate::ApiKey>,
    first: Vec<catena_core::ChatChunk>,
    decoder: D,
) -> catena_core::ChatStream {
    struct State<D> {
        events: BoxStream<'static, Result<SseEvent>>,
        decoder: D,
        pending: std::collections::VecDeque<Result<catena_core::ChatChunk>>,
        ended: bool,
        key: Option<crate::ApiKey>,
    }
    let events = sse_events(
        response,
        provider,
        options.stream_idle_timeout,
        options.max_line_bytes,
    );
    let state = State {
        events,
        decoder,
        pending: first.into_iter().map(Ok).collect(),
        ended: false,
        key,
    };
    Box::pin(futures::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(item) = state.pending.pop_front() {
                let item = item.map_err(|e| crate::secret::redact(e, state.key.as_ref()));
                return Some((item, state));
            }
            if state.ended {
                return None;
            }
            match state.events.next().await {
                Some(Ok(event)) => state.decoder.on_event(&event, &mut state.pending),
                Some(Err(e)) => {
                    state.ended = true;
                    state.pending.push_back(Err(state.decoder.with_partial(e)));
                }
                None => {
                    state.ended = true;
                    state.pending.push_back(Err(state.decoder.interrupted()));
                }
            }
            if state.decoder.is_done() {
                // Stop reading: whatever follows the terminal event (or an error) is not ours.
                state.ended = true;
            }
        }
    }))
}

/// Adds `text` (the answer received so far, quoted and cut at 2,000 characters) to a
/// provider error's message.
#[cfg_attr(not(any(feature = "openai", feature = "anthropic")), allow(dead_code))]
pub(crate) fn with_partial_text(err: catena_core::Error, text: &str) -> catena_core::Error {
    if text.is_empty() {
        return err;
    }
    match err {
        catena_core::Error::Provider(mut p) => {
            let quoted: String = text.chars().take(MAX_QUOTED_CHARS).collect();
            let more = if quoted.len() < text.len() { "…" } else { "" };
            p.message = format!("{}; partial text received: {quoted:?}{more}", p.message);
            catena_core::Error::Provider(p)
        }
        other => other,
    }
}
