//! Helpers shared by the fuzz targets.

use bytes_body::chunked;

/// A `reqwest::Response` with status 200 whose body is `body` cut into chunks of
/// `chunk` bytes (at least 1), so the decoders see every kind of boundary (mid-line,
/// mid-`\r\n`, mid-UTF-8 character).
pub fn response(body: &[u8], chunk: usize) -> reqwest::Response {
    http::Response::new(chunked(body, chunk)).into()
}

/// The chunk size a fuzz input's first byte selects: 0 means one piece.
pub fn chunk_size(selector: u8, body_len: usize) -> usize {
    match selector {
        0 => body_len.max(1),
        n => usize::from(n % 32) + 1,
    }
}

mod bytes_body {
    /// `body` as a streamed `reqwest::Body` of `chunk`-byte pieces.
    pub(crate) fn chunked(body: &[u8], chunk: usize) -> reqwest::Body {
        let pieces: Vec<Result<Vec<u8>, std::io::Error>> =
            body.chunks(chunk.max(1)).map(|c| Ok(c.to_vec())).collect();
        reqwest::Body::wrap_stream(futures::stream::iter(pieces))
    }
}

/// Splits `data` at the first `0xFF` byte (never valid UTF-8, so a natural separator):
/// `(before, after)`; `after` is empty when there is none.
pub fn split_ff(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == 0xFF) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// `data` as text, lossily (the parsers under test take `&str`).
pub fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// One input for a provider's parsers, as the `openai`, `gemini` and `ollama` targets share
/// it. Byte 0 picks the parser (and the stream's chunk size), byte 1 the HTTP status of an
/// error; `stream` decodes a streamed body, `reply` a unary one. Checks: the stream yields
/// nothing after an error, and an error never shows the API key (even when a proxy echoes it
/// into a request-id header).
pub fn provider_input(
    data: &[u8],
    provider: catena_llms::fuzzing::Provider,
    stream: fn(reqwest::Response) -> Vec<catena_core::Result<catena_core::ChatChunk>>,
    reply: impl Fn(&[u8]),
) {
    use catena_core::StreamAccumulator;
    use catena_llms::fuzzing;
    use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

    let [sel, status, body @ ..] = data else {
        return;
    };
    match sel % 4 {
        0 | 1 => {
            let chunks = stream(response(body, chunk_size(*sel / 4, body.len())));
            // What callers do with a stream: accumulate it into one response.
            let mut acc = StreamAccumulator::new();
            for chunk in chunks.iter().flatten() {
                acc.push(chunk);
            }
            let _ = acc.finish();
            if let Some(i) = chunks.iter().position(Result::is_err) {
                assert_eq!(i + 1, chunks.len(), "the stream went on after an error");
            }
        }
        2 => reply(body),
        _ => {
            // Body, then after a 0xFF byte a `Retry-After` (and request id) header value.
            let (body, retry_after) = split_ff(body);
            let mut headers = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_bytes(retry_after) {
                headers.insert(HeaderName::from_static("retry-after"), v.clone());
                headers.insert(HeaderName::from_static("x-request-id"), v);
            }
            let status = 400 + u16::from(*status) % 200;
            let err = fuzzing::error_response(provider, status, &headers, body);
            let shown = err.to_string();
            assert!(
                !shown.contains(fuzzing::SECRET),
                "the API key leaked into an error"
            );
        }
    }
}
