//! The guarded HTTP client every web tool sends through.
//!
//! [`WebClient`] wraps a `reqwest` client built so that the [`SsrfPolicy`] holds inside the
//! connector, not only in a check before sending:
//!
//! - **DNS**: a custom resolver looks names up (with [`SystemResolver`], or any
//!   [`HostResolver`] such as [`StaticResolver`] in tests) and hands the connector only the
//!   addresses the policy admits, failing when none is left. The connection goes to the
//!   address that was checked, so a second, different DNS answer (rebinding) cannot slip in.
//! - **IP literals** bypass the resolver, so every URL is checked before it is sent.
//! - **Redirects** go through a redirect policy that checks every hop again (scheme, user
//!   info, IP literal, allow-list; names go through the resolver again) and stops after
//!   [`WebClientBuilder::max_redirects`] hops (default 5).
//! - **Proxies**: proxy environment variables (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`)
//!   are ignored; a proxy would connect on our behalf, out of the guard's sight.
//! - **Limits**: a timeout for the whole exchange (default 15 s) and a cap on the body
//!   (default 2 MiB). The body is streamed and reading stops at the cap; the response then
//!   says [`WebResponse::truncated`] rather than failing.
//!
//! ```no_run
//! use std::time::Duration;
//! use catena_tools::{SsrfPolicy, WebClient, WebRequest};
//!
//! # async fn run() -> Result<(), catena_tools::WebError> {
//! let client = WebClient::builder()
//!     .policy(SsrfPolicy::new().allow_host("intranet.example:8080"))
//!     .timeout(Duration::from_secs(10))
//!     .max_body_bytes(1 << 20)
//!     .build()?;
//! let response = client.send(WebRequest::get("https://example.com/")).await?;
//! println!("{} {} bytes", response.status, response.body.len());
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

use super::guard::{Refusal, SsrfPolicy};
use super::WebError;

/// The default timeout for a whole exchange: 15 seconds.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
/// The default cap on a response body: 2 MiB.
pub(crate) const DEFAULT_MAX_BODY_BYTES: usize = 2 << 20;
/// The default limit on redirects followed: 5.
pub(crate) const DEFAULT_MAX_REDIRECTS: usize = 5;

/// A boxed future of a DNS answer.
pub type ResolveFuture = Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send>>;

/// Looks host names up. The [`WebClient`] judges every answer before connecting.
pub trait HostResolver: Send + Sync + fmt::Debug {
    /// The addresses of `host`.
    fn resolve(&self, host: &str) -> ResolveFuture;
}

/// The system resolver (`getaddrinfo`, via `tokio::net::lookup_host`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl HostResolver for SystemResolver {
    fn resolve(&self, host: &str) -> ResolveFuture {
        let host = host.to_owned();
        Box::pin(async move {
            let addrs = tokio::net::lookup_host((host.as_str(), 0)).await?;
            Ok(addrs.map(|a| a.ip()).collect())
        })
    }
}

/// A fixed host → addresses table, for tests. Names are matched case-insensitively and
/// without a trailing dot; an unknown name fails to resolve.
#[derive(Debug, Clone, Default)]
pub struct StaticResolver {
    hosts: HashMap<String, Vec<IpAddr>>,
}

impl StaticResolver {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `host` resolving to `addrs`.
    #[must_use]
    pub fn with_host(mut self, host: &str, addrs: impl IntoIterator<Item = IpAddr>) -> Self {
        self.hosts
            .entry(normalise_name(host))
            .or_default()
            .extend(addrs);
        self
    }
}

fn normalise_name(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

impl HostResolver for StaticResolver {
    fn resolve(&self, host: &str) -> ResolveFuture {
        let found = self.hosts.get(&normalise_name(host)).cloned();
        let host = host.to_owned();
        Box::pin(async move {
            found.ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("unknown host {host}"))
            })
        })
    }
}

/// The resolver installed in reqwest: resolves, then keeps only admitted addresses.
#[derive(Debug)]
struct GuardedResolver {
    inner: Arc<dyn HostResolver>,
    policy: Arc<SsrfPolicy>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let inner = Arc::clone(&self.inner);
        let policy = Arc::clone(&self.policy);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = inner.resolve(&host).await?;
            let allow_all = policy.is_host_allow_listed(&host);
            let mut admitted = Vec::new();
            let mut refused = Vec::new();
            for ip in addrs {
                match policy.classify(ip) {
                    Some(class) if !allow_all => refused.push((ip, class)),
                    _ => admitted.push(SocketAddr::new(ip, 0)),
                }
            }
            if admitted.is_empty() {
                tracing::debug!(%host, ?refused, "refused every address of a host");
                let refusal: Box<dyn std::error::Error + Send + Sync> =
                    Box::new(Refusal::NoAllowedAddress { host, refused });
                return Err(refusal);
            }
            let addrs: Addrs = Box::new(admitted.into_iter());
            Ok(addrs)
        })
    }
}

/// A request for [`WebClient::send`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WebRequest {
    /// The method, e.g. `GET`.
    pub method: String,
    /// The URL, checked by the policy before sending.
    pub url: String,
    /// Headers to send.
    pub headers: Vec<(String, String)>,
    /// The body, if any.
    pub body: Option<Vec<u8>>,
}

impl WebRequest {
    /// A request with `method` to `url`.
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
        WebRequest {
            method: method.into(),
            url: url.into(),
            headers: Vec::new(),
            body: None,
        }
    }

    /// A `GET` request.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new("GET", url)
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    #[must_use]
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }
}

/// A response read through the guard.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WebResponse {
    /// The URL after redirects.
    pub final_url: String,
    /// The HTTP status code.
    pub status: u16,
    /// Response headers, names lower-case, in order.
    pub headers: Vec<(String, String)>,
    /// The body, at most the client's cap.
    pub body: Vec<u8>,
    /// Whether the body was cut at the cap.
    pub truncated: bool,
}

impl WebResponse {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The media type of `Content-Type`, lower-case, without parameters.
    pub fn media_type(&self) -> Option<String> {
        self.header("content-type").map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
    }
}

/// Builds a [`WebClient`].
#[derive(Debug, Clone)]
#[must_use]
pub struct WebClientBuilder {
    policy: SsrfPolicy,
    resolver: Arc<dyn HostResolver>,
    timeout: Duration,
    max_body_bytes: usize,
    max_redirects: usize,
    user_agent: String,
}

impl Default for WebClientBuilder {
    fn default() -> Self {
        WebClientBuilder {
            policy: SsrfPolicy::new(),
            resolver: Arc::new(SystemResolver),
            timeout: DEFAULT_TIMEOUT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_redirects: DEFAULT_MAX_REDIRECTS,
            user_agent: concat!("catena-tools/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

impl WebClientBuilder {
    /// The SSRF policy. Default [`SsrfPolicy::new`]: public addresses only.
    pub fn policy(mut self, policy: SsrfPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Shorthand for adding one [`SsrfPolicy::allow_host`] entry.
    pub fn allow_host(mut self, entry: impl AsRef<str>) -> Self {
        self.policy = self.policy.allow_host(entry);
        self
    }

    /// The resolver. Default [`SystemResolver`].
    pub fn resolver(mut self, resolver: Arc<dyn HostResolver>) -> Self {
        self.resolver = resolver;
        self
    }

    /// Time allowed for a whole exchange, body included. Default 15 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Cap on a response body; reading stops there. Default 2 MiB.
    pub fn max_body_bytes(mut self, n: usize) -> Self {
        self.max_body_bytes = n;
        self
    }

    /// Redirects followed at most. Default 5.
    pub fn max_redirects(mut self, n: usize) -> Self {
        self.max_redirects = n;
        self
    }

    /// The `User-Agent` header. Default `catena-tools/<version>`.
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = ua.into();
        self
    }

    /// Builds the client.
    ///
    /// # Errors
    /// [`WebError::Build`] when the TLS backend cannot be initialised.
    pub fn build(self) -> Result<WebClient, WebError> {
        let policy = Arc::new(self.policy);
        let resolver = Arc::new(GuardedResolver {
            inner: self.resolver,
            policy: Arc::clone(&policy),
        });
        let max_redirects = self.max_redirects;
        let redirect_policy = Arc::clone(&policy);
        let redirect = reqwest::redirect::Policy::custom(move |attempt| {
            // `previous` holds every URL visited so far, the original one included.
            if attempt.previous().len() > max_redirects {
                return attempt.error(Refusal::TooManyRedirects { max: max_redirects });
            }
            match redirect_policy.check_url(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(reason) => {
                    let to = attempt.url().to_string();
                    attempt.error(Refusal::Redirect {
                        to,
                        reason: Box::new(reason),
                    })
                }
            }
        });
        let tls = crate::tls::client_config().map_err(WebError::Build)?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .no_proxy()
            .dns_resolver(resolver)
            .redirect(redirect)
            .referer(false)
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .user_agent(self.user_agent)
            .build()
            .map_err(|e| WebError::Build(error_chain(&e)))?;
        Ok(WebClient {
            client,
            policy,
            timeout: self.timeout,
            max_body_bytes: self.max_body_bytes,
        })
    }
}

/// An HTTP client that only reaches what its [`SsrfPolicy`] admits. See the
/// [module docs](self). Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct WebClient {
    client: reqwest::Client,
    policy: Arc<SsrfPolicy>,
    timeout: Duration,
    max_body_bytes: usize,
}

impl fmt::Debug for WebClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebClient")
            .field("policy", &self.policy)
            .field("timeout", &self.timeout)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

impl WebClient {
    /// A client with the defaults: public addresses only, system DNS, 15 s, 2 MiB.
    ///
    /// # Errors
    /// [`WebError::Build`] when the TLS backend cannot be initialised.
    pub fn new() -> Result<Self, WebError> {
        WebClientBuilder::default().build()
    }

    /// A builder with the defaults.
    pub fn builder() -> WebClientBuilder {
        WebClientBuilder::default()
    }

    /// The policy in force.
    pub fn policy(&self) -> &SsrfPolicy {
        &self.policy
    }

    /// The body cap in bytes.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// Sends `request` through the guard and reads the body up to the cap.
    ///
    /// # Errors
    /// - [`WebError::Refused`] when the URL, an address it resolves to, or a redirect is
    ///   refused (nothing is sent to a refused destination);
    /// - [`WebError::InvalidRequest`] for a bad method or header;
    /// - [`WebError::Timeout`] past the timeout;
    /// - [`WebError::Transport`] when the connection fails.
    pub async fn send(&self, request: WebRequest) -> Result<WebResponse, WebError> {
        let url: Url = self.policy.parse_url(&request.url)?;
        let method =
            reqwest::Method::from_bytes(request.method.trim().as_bytes()).map_err(|_| {
                WebError::InvalidRequest(format!("invalid method `{}`", request.method))
            })?;
        let mut builder = self.client.request(method, url);
        for (name, value) in &request.headers {
            let name = reqwest::header::HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| WebError::InvalidRequest(format!("invalid header name `{name}`")))?;
            let value = reqwest::header::HeaderValue::from_str(value).map_err(|_| {
                WebError::InvalidRequest(format!("invalid value for header `{name}`"))
            })?;
            builder = builder.header(name, value);
        }
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        let exchange = async {
            let mut response = builder
                .send()
                .await
                .map_err(|e| map_reqwest(&e, self.timeout))?;
            let final_url = response.url().to_string();
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let mut body = Vec::new();
            let mut truncated = false;
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|e| map_reqwest(&e, self.timeout))?
            {
                let room = self.max_body_bytes.saturating_sub(body.len());
                if chunk.len() > room {
                    body.extend_from_slice(&chunk[..room]);
                    truncated = true;
                    break;
                }
                body.extend_from_slice(&chunk);
            }
            Ok(WebResponse {
                final_url,
                status,
                headers,
                body,
                truncated,
            })
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(WebError::Timeout(self.timeout)),
        }
    }
}

/// Maps a reqwest error, recovering a [`Refusal`] raised by the resolver or redirect policy.
fn map_reqwest(e: &reqwest::Error, timeout: Duration) -> WebError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(refusal) = s.downcast_ref::<Refusal>() {
            return WebError::Refused(refusal.clone());
        }
        source = s.source();
    }
    if e.is_timeout() {
        return WebError::Timeout(timeout);
    }
    WebError::Transport(error_chain(e))
}

/// The error and its sources, without the URL (which the caller knows).
fn error_chain(e: &reqwest::Error) -> String {
    let mut out = if e.is_connect() {
        "could not connect".to_owned()
    } else if e.is_body() || e.is_decode() {
        "connection failed while reading the body".to_owned()
    } else if e.is_redirect() {
        "redirect failed".to_owned()
    } else if e.is_builder() {
        "could not build the client or request".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
