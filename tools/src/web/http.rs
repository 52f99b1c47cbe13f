//! The `http_request` tool: one HTTP request through the SSRF guard.
//!
//! [`HttpRequest`] takes `{ "method": "GET", "url": "…", "headers": {…}?, "body": "…"? }` and
//! returns `{ "status": 200, "final_url": "…", "headers": {…}, "body": "…", "truncated": false }`.
//!
//! - **Methods**: only those on the allow-list, by default `GET` and `HEAD`
//!   ([`HttpRequest::with_methods`] changes it). Others are refused as invalid arguments.
//! - **Request headers**: `Host`, `Cookie`, `Authorization` (unless
//!   [`HttpRequest::allow_authorization`]), every `Proxy-*` header, hop-by-hop and framing
//!   headers (`Connection`, `Keep-Alive`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`,
//!   `Content-Length`, `Expect`), client-address headers (`Forwarded`, `X-Forwarded-*`,
//!   `X-Real-IP`, `True-Client-IP`, `X-Client-IP`, `CF-Connecting-IP`, `Client-IP`,
//!   `X-Originating-IP`, `X-Remote-IP`, `X-Remote-Addr`) and method overrides
//!   (`X-HTTP-Method-Override`, `X-HTTP-Method`, `X-Method-Override`) are refused as invalid
//!   arguments.
//! - **Request body**: at most [`HttpRequest::with_max_request_body`] bytes (default 64 KiB).
//! - **Response**: `Set-Cookie` headers are dropped; repeated headers are joined with `, `;
//!   at most 64 headers reach the model, each value cut to 1,024 characters and all of them
//!   to 16 KiB (a cut sets `truncated: true`).
//!   The body is read up to the client's cap (default 2 MiB), decoded as UTF-8 and cut to
//!   [`HttpRequest::with_max_chars`] characters (default 20,000); either cut sets
//!   `truncated: true`. Non-2xx statuses are returned, not errors.
//!
//! ```no_run
//! use catena_core::{Tool, TypedTool};
//! use catena_tools::{HttpRequest, WebClient};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let http = HttpRequest::new(WebClient::new()?)
//!     .with_methods(["GET", "HEAD", "POST"])
//!     .into_tool();
//! let out = http
//!     .call(serde_json::json!({
//!         "method": "POST",
//!         "url": "https://httpbin.org/post",
//!         "headers": {"content-type": "application/json"},
//!         "body": "{\"hello\": 1}"
//!     }))
//!     .await?;
//! println!("{}", out.content["status"]);
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;

use async_trait::async_trait;
use catena_core::{ToolError, TypedTool};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::client::{WebClient, WebRequest};
use super::{bytes_to_text, cap_chars, DEFAULT_MAX_CHARS};

/// The default cap on a request body: 64 KiB.
pub(crate) const DEFAULT_MAX_REQUEST_BODY: usize = 64 << 10;

/// Request headers refused by name (lower-case).
const DENIED_HEADERS: &[&str] = &[
    "host",
    "cookie",
    "cookie2",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "expect",
    "forwarded",
    "x-real-ip",
    "true-client-ip",
    "x-client-ip",
    "cf-connecting-ip",
    "client-ip",
    "x-originating-ip",
    "x-remote-ip",
    "x-remote-addr",
    "x-cluster-client-ip",
    "fastly-client-ip",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// The most response headers the model sees, the longest value, and all of them together.
const MAX_RESPONSE_HEADERS: usize = 64;
const MAX_HEADER_VALUE_CHARS: usize = 1024;
const MAX_HEADER_BYTES: usize = 16 << 10;

/// Response headers dropped before the model sees them (lower-case).
const HIDDEN_RESPONSE_HEADERS: &[&str] = &["set-cookie", "set-cookie2"];

/// The arguments of [`HttpRequest`].
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct HttpRequestArgs {
    /// The HTTP method, e.g. "GET".
    pub method: String,
    /// The http or https URL.
    pub url: String,
    /// Request headers, name to value.
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
    /// The request body, as text.
    #[serde(default)]
    pub body: Option<String>,
}

/// What [`HttpRequest`] returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HttpRequestOutput {
    /// The HTTP status code.
    pub status: u16,
    /// The URL after redirects.
    pub final_url: String,
    /// Response headers (lower-case names; `Set-Cookie` removed).
    pub headers: BTreeMap<String, String>,
    /// The body as text.
    pub body: String,
    /// Whether the body was cut (byte cap or character cap).
    pub truncated: bool,
}

/// Sends one HTTP request. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct HttpRequest {
    client: WebClient,
    methods: Vec<String>,
    allow_authorization: bool,
    max_request_body: usize,
    max_chars: usize,
}

impl HttpRequest {
    /// A tool sending through `client`, allowing `GET` and `HEAD`.
    pub fn new(client: WebClient) -> Self {
        HttpRequest {
            client,
            methods: vec!["GET".to_owned(), "HEAD".to_owned()],
            allow_authorization: false,
            max_request_body: DEFAULT_MAX_REQUEST_BODY,
            max_chars: DEFAULT_MAX_CHARS,
        }
    }

    /// Replaces the method allow-list (case-insensitive).
    #[must_use]
    pub fn with_methods<I, S>(mut self, methods: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.methods = methods
            .into_iter()
            .map(|m| m.as_ref().trim().to_ascii_uppercase())
            .collect();
        self
    }

    /// Lets the model send an `Authorization` header (off by default).
    #[must_use]
    pub fn allow_authorization(mut self, allow: bool) -> Self {
        self.allow_authorization = allow;
        self
    }

    /// Caps the request body, in bytes (default 64 KiB).
    #[must_use]
    pub fn with_max_request_body(mut self, n: usize) -> Self {
        self.max_request_body = n;
        self
    }

    /// Caps the response text, in characters (default 20,000).
    #[must_use]
    pub fn with_max_chars(mut self, n: usize) -> Self {
        self.max_chars = n;
        self
    }

    fn header_denied(&self, name: &str) -> bool {
        let name = name.trim().to_ascii_lowercase();
        DENIED_HEADERS.contains(&name.as_str())
            || name.starts_with("proxy-")
            || name.starts_with("x-forwarded-")
            || (name == "authorization" && !self.allow_authorization)
    }

    /// Sends the request described by `args` (what the tool does).
    ///
    /// # Errors
    /// [`ToolError::InvalidArguments`] for a method not allowed, a denied or malformed header,
    /// a body over the cap or a refused URL; [`ToolError::Execution`] for later refusals
    /// (DNS, redirect), transport failures and timeouts.
    pub async fn send(&self, args: HttpRequestArgs) -> Result<HttpRequestOutput, ToolError> {
        let method = args.method.trim().to_ascii_uppercase();
        if !self.methods.contains(&method) {
            return Err(ToolError::invalid_arguments(format!(
                "method `{}` is not allowed; allowed: {}",
                args.method,
                self.methods.join(", ")
            )));
        }
        let mut request = WebRequest::new(method, args.url);
        for (name, value) in args.headers.unwrap_or_default() {
            if self.header_denied(&name) {
                return Err(ToolError::invalid_arguments(format!(
                    "header `{name}` is not allowed"
                )));
            }
            request = request.header(name, value);
        }
        if let Some(body) = args.body {
            if body.len() > self.max_request_body {
                return Err(ToolError::invalid_arguments(format!(
                    "the body is {} bytes; at most {} are allowed",
                    body.len(),
                    self.max_request_body
                )));
            }
            request = request.body(body.into_bytes());
        }
        let response = self.client.send(request).await?;
        let mut headers: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in &response.headers {
            if HIDDEN_RESPONSE_HEADERS.contains(&name.as_str()) {
                continue;
            }
            headers
                .entry(name.clone())
                .and_modify(|v| {
                    v.push_str(", ");
                    v.push_str(value);
                })
                .or_insert_with(|| value.clone());
        }
        let headers_cut = cap_headers(&mut headers);
        let mut body = bytes_to_text(&response.body, response.truncated);
        let cut = cap_chars(&mut body, self.max_chars);
        Ok(HttpRequestOutput {
            status: response.status,
            final_url: response.final_url,
            headers,
            body,
            truncated: response.truncated || cut || headers_cut,
        })
    }
}

/// Caps what of the response headers reaches the model (count, each value, all of them);
/// whether anything was cut.
fn cap_headers(headers: &mut BTreeMap<String, String>) -> bool {
    let mut cut = false;
    if headers.len() > MAX_RESPONSE_HEADERS {
        let extra: Vec<String> = headers.keys().skip(MAX_RESPONSE_HEADERS).cloned().collect();
        for k in extra {
            headers.remove(&k);
        }
        cut = true;
    }
    let mut total = 0usize;
    let mut over = Vec::new();
    for (name, value) in headers.iter_mut() {
        cut |= cap_chars(value, MAX_HEADER_VALUE_CHARS);
        total += name.len() + value.len();
        if total > MAX_HEADER_BYTES {
            over.push(name.clone());
        }
    }
    for k in &over {
        headers.remove(k);
    }
    cut || !over.is_empty()
}

#[async_trait]
impl TypedTool for HttpRequest {
    type Args = HttpRequestArgs;
    type Output = HttpRequestOutput;

    fn name(&self) -> &str {
        "http_request"
    }

    fn description(&self) -> &str {
        "Sends one HTTP request to a public http or https URL and returns the status, headers \
         and body. Internal and private addresses are refused."
    }

    async fn call(&self, args: HttpRequestArgs) -> Result<HttpRequestOutput, ToolError> {
        self.send(args).await
    }
}
