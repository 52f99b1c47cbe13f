//! Helpers shared by the provider integration tests.
//!
//! `wiremock` covers well-formed HTTP exchanges. [`raw_server`] covers what wiremock cannot
//! produce: bodies cut mid-way, connections closed without a terminator, bytes that are not
//! valid HTTP framing.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use catena_core::RetryPolicy;
use catena_llms::HttpOptions;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Serves `responses` in order, one per accepted connection: reads one request (headers
/// plus a `Content-Length` body), writes the canned bytes verbatim, then closes the
/// connection. The handle yields the raw bytes of every request received.
///
/// The canned bytes are the whole response, status line included; build them with
/// [`http_response`], [`chunked_response`] or by hand for broken framing.
pub(crate) async fn raw_server(responses: Vec<Vec<u8>>) -> (SocketAddr, JoinHandle<Vec<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let handle = tokio::spawn(async move {
        let mut requests = Vec::new();
        for response in responses {
            let Ok((mut socket, _)) = listener.accept().await else {
                break;
            };
            requests.push(read_request(&mut socket).await);
            // The client may have gone away already; that is the test's business.
            let _ = socket.write_all(&response).await;
            let _ = socket.flush().await;
            let _ = socket.shutdown().await;
        }
        requests
    });
    (addr, handle)
}

/// Accepts one connection, reads one request, writes `response`, then keeps the connection
/// open without sending more. The handle completes when the client closes the connection,
/// which shows that dropping a response (or a stream) really hangs up.
pub(crate) async fn stalling_server(response: Vec<u8>) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let handle = tokio::spawn(async move {
        let Ok((mut socket, _)) = listener.accept().await else {
            return;
        };
        read_request(&mut socket).await;
        let _ = socket.write_all(&response).await;
        let _ = socket.flush().await;
        let mut sink = [0u8; 1024];
        while let Ok(n) = socket.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    });
    (addr, handle)
}

async fn read_request(socket: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        if let Some(pos) = find(&buf, b"\r\n\r\n") {
            break pos + 4;
        }
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return buf,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while buf.len() < header_end + length {
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    buf
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A complete response with a `Content-Length` body and `Connection: close`.
pub(crate) fn http_response(status: u16, content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        reason(status),
        body.len()
    )
    .into_bytes()
}

/// A `200` response with a chunked body made of `parts`, one HTTP chunk each. With
/// `terminated == false` the final zero-length chunk is left out, so the client sees the
/// connection drop mid-body.
pub(crate) fn chunked_response(content_type: &str, parts: &[&str], terminated: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    for p in parts {
        out.push_str(&format!("{:x}\r\n{p}\r\n", p.len()));
    }
    if terminated {
        out.push_str("0\r\n\r\n");
    }
    out.into_bytes()
}

/// A `200` response whose body is delimited by closing the connection (no length, no
/// chunking): the body ends cleanly, wherever the server stops.
pub(crate) fn close_delimited_response(content_type: &str, body: &str) -> Vec<u8> {
    format!("HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\nconnection: close\r\n\r\n{body}")
        .into_bytes()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// The body of a raw request (after the blank line).
pub(crate) fn request_body(raw: &[u8]) -> &[u8] {
    find(raw, b"\r\n\r\n").map_or(&[][..], |p| &raw[p + 4..])
}

/// A port on which nothing listens (bound, then released).
pub(crate) fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("local addr")
}

/// `tests/data/<rel>`.
pub(crate) fn data_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

/// The text of `tests/data/<rel>`.
pub(crate) fn data(rel: &str) -> String {
    std::fs::read_to_string(data_path(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

/// `tests/data/<rel>` parsed as JSON.
pub(crate) fn data_json(rel: &str) -> serde_json::Value {
    serde_json::from_str(&data(rel)).unwrap_or_else(|e| panic!("parsing {rel}: {e}"))
}

/// Retries with a tiny, deterministic backoff (10 ms, doubling, no jitter).
pub(crate) fn fast_retry() -> RetryPolicy {
    RetryPolicy::default()
        .with_initial_backoff(Duration::from_millis(10))
        .with_jitter(false)
}

/// Transport options with [`fast_retry`].
pub(crate) fn fast_http() -> HttpOptions {
    HttpOptions::new().retry(fast_retry())
}

/// Serves one raw HTTP response on loopback, to one connection, and returns the base URL.
/// Dropping the socket afterwards closes the connection (mid-stream, for a cut body).
pub(crate) async fn serve_once(response: &'static [u8]) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.expect("accept");
        let mut buf = vec![0u8; 65536];
        let _ = sock.read(&mut buf).await;
        sock.write_all(response).await.expect("write");
        sock.flush().await.expect("flush");
    });
    format!("http://{addr}")
}
