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
