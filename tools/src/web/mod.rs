//! Web tools: fetch a page, send an HTTP request, search the web, all behind an SSRF guard.
//!
//! | tool | name | arguments | output |
//! | --- | --- | --- | --- |
//! | [`WebFetch`] | `web_fetch` | `{url}` | `{url, final_url, status, title?, text, truncated}` |
//! | [`HttpRequest`] | `http_request` | `{method, url, headers?, body?}` | `{status, final_url, headers, body, truncated}` |
//! | [`WebSearch`] | `web_search` | `{query, max_results?}` | `[{title, url, snippet}]` |
//!
//! All three send through one [`WebClient`], whose [`SsrfPolicy`] is enforced inside the
//! connector: the DNS resolver admits only public addresses (the connection goes to the
//! address that was checked), IP-literal URLs are checked before sending, every redirect hop
//! is checked again (at most 5), proxy environment variables are ignored, and only `http`
//! and `https` are spoken. A deployment admits internal hosts with
//! [`SsrfPolicy::allow_host`]. Bodies are capped (default 2 MiB, the response is then marked
//! truncated) and the whole exchange has a timeout (default 15 s).
//!
//! Refusals come back to the model as [`ToolError::InvalidArguments`] when the URL it gave
//! is the problem (scheme, user info, a non-public IP literal) and as
//! [`ToolError::Execution`] when the refusal came later (a DNS answer, a redirect); both
//! messages start with `refused:` and say why. See [`WebError::into_tool_error`].
//!
//! ```no_run
//! use std::sync::Arc;
//! use catena_core::{Tool, TypedTool};
//! use catena_tools::{HttpRequest, WebClient, WebFetch, WebSearch};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = WebClient::new()?;
//! let tools: Vec<Arc<dyn Tool>> = vec![
//!     WebFetch::new(client.clone()).into_tool(),
//!     HttpRequest::new(client.clone()).into_tool(),
//!     WebSearch::new(client).into_tool(),
//! ];
//! let page = tools[0]
//!     .call(serde_json::json!({"url": "https://www.rust-lang.org/"}))
//!     .await?;
//! println!("{}", page.content["text"]);
//! // Internal addresses are refused before any connection is made.
//! let err = tools[0]
//!     .call(serde_json::json!({"url": "http://169.254.169.254/latest/meta-data/"}))
//!     .await
//!     .unwrap_err();
//! assert!(err.to_string().contains("refused"));
//! # Ok(())
//! # }
//! ```

use std::time::Duration;

use catena_core::ToolError;

mod client;
mod fetch;
mod guard;
mod http;
mod search;

pub use client::{
    HostResolver, ResolveFuture, StaticResolver, SystemResolver, WebClient, WebClientBuilder,
    WebRequest, WebResponse,
};
pub use fetch::{WebFetch, WebFetchArgs, WebFetchOutput};
pub use guard::{classify, local_addresses, AddressClass, Refusal, SsrfPolicy, DEFAULT_PORTS};
pub use http::{HttpRequest, HttpRequestArgs, HttpRequestOutput};
pub use search::{parse_results, SearchResult, WebSearch, WebSearchArgs};

/// Why a web request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebError {
    /// The SSRF guard refused the request; nothing was sent to the refused destination.
    #[error("refused: {0}")]
    Refused(#[source] Refusal),
    /// The request is malformed (method, header).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The exchange took longer than the timeout.
    #[error("timed out after {} ms", .0.as_millis())]
    Timeout(Duration),
    /// The connection or the HTTP exchange failed.
    #[error("HTTP request failed: {0}")]
    Transport(String),
    /// The client could not be built.
    #[error("could not build the HTTP client: {0}")]
    Build(String),
}

impl WebError {
    /// The refusal, if the guard refused.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            WebError::Refused(r) => Some(r),
            _ => None,
        }
    }

    /// Whether this is a timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(self, WebError::Timeout(_))
    }

    /// The error as a tool error: refusals of the URL itself and malformed requests are
    /// [`ToolError::InvalidArguments`] (the model can pick another URL), everything else
    /// [`ToolError::Execution`].
    pub fn into_tool_error(self) -> ToolError {
        match &self {
            WebError::Refused(r) if r.is_url_problem() => {
                ToolError::InvalidArguments(self.to_string())
            }
            WebError::InvalidRequest(_) => ToolError::InvalidArguments(self.to_string()),
            _ => ToolError::Execution(self.to_string()),
        }
    }
}

impl From<Refusal> for WebError {
    fn from(r: Refusal) -> Self {
        WebError::Refused(r)
    }
}

impl From<WebError> for ToolError {
    fn from(e: WebError) -> Self {
        e.into_tool_error()
    }
}

/// The default cap on characters of text handed to the model: 20,000.
pub(crate) const DEFAULT_MAX_CHARS: usize = 20_000;

/// Bytes as text (UTF-8, invalid sequences replaced; a sequence cut by the byte cap at the
/// end is dropped).
pub(crate) fn bytes_to_text(bytes: &[u8], truncated: bool) -> String {
    let mut text = String::from_utf8_lossy(bytes).into_owned();
    if truncated {
        while text.ends_with('\u{FFFD}') {
            text.pop();
        }
    }
    text
}

/// Cuts `text` to at most `max` characters; returns whether it cut.
pub(crate) fn cap_chars(text: &mut String, max: usize) -> bool {
    match text.char_indices().nth(max) {
        Some((i, _)) => {
            text.truncate(i);
            true
        }
        None => false,
    }
}
