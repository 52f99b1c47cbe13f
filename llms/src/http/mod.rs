//! The HTTP transport shared by the providers: timeouts, retries, bounded bodies, error
//! classification, and SSE / NDJSON stream decoding with an idle timeout.

mod error;
mod stream;

use std::fmt;
use std::time::Duration;

use catena_core::{Error, ProviderError, ProviderErrorKind, Result};
use futures::StreamExt;
use serde::de::DeserializeOwned;

use crate::secret::ApiKey;
use catena_core::RetryPolicy;

// Which of these a set of features uses varies.
#[allow(unused_imports)]
pub(crate) use error::{error_from_parts, rate_limit_info, ErrorHook, HookOutcome};
#[cfg_attr(not(feature = "ollama"), allow(unused_imports))]
pub(crate) use stream::ndjson_lines;
#[cfg_attr(
    not(any(feature = "openai", feature = "gemini")),
    allow(unused_imports)
)]
// Which of these a set of features uses varies.
#[allow(unused_imports)]
pub(crate) use stream::{decode_sse, sse_events, with_partial_text, SseDecoder, SseEvent};

/// Connection settings shared by every provider client.
///
/// ```
/// use std::time::Duration;
/// use catena_core::RetryPolicy;
/// use catena_llms::HttpOptions;
/// let http = HttpOptions::new()
///     .timeout(Duration::from_secs(30))
///     .stream_idle_timeout(Duration::from_secs(20))
///     .retry(RetryPolicy::default().with_max_retries(5));
/// ```
#[derive(Clone)]
#[must_use]
pub struct HttpOptions {
    pub(crate) client: Option<reqwest::Client>,
    pub(crate) connect_timeout: Duration,
    pub(crate) timeout: Duration,
    pub(crate) stream_idle_timeout: Duration,
    pub(crate) max_response_bytes: usize,
    pub(crate) max_line_bytes: usize,
    pub(crate) retry: RetryPolicy,
}

impl fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpOptions")
            .field("shared_client", &self.client.is_some())
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .field("stream_idle_timeout", &self.stream_idle_timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("max_line_bytes", &self.max_line_bytes)
            .field("retry", &self.retry)
            .finish()
    }
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            client: None,
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(600),
            stream_idle_timeout: Duration::from_secs(120),
            max_response_bytes: 32 << 20,
            max_line_bytes: 4 << 20,
            retry: RetryPolicy::default(),
        }
    }
}

impl HttpOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Shares an existing client (and its connection pool). Its own connect timeout then
    /// applies instead of [`connect_timeout`](Self::connect_timeout). Default: a client of
    /// our own (rustls on `ring` with the platform's verifier, redirects never followed).
    /// reqwest is built without a crypto provider: build the shared client with
    /// `tls_backend_preconfigured`, or install a process-wide rustls provider first.
    ///
    /// Its redirect policy applies too: build it with
    /// `.redirect(reqwest::redirect::Policy::none())`, as this crate's own clients are.
    /// reqwest's default policy follows cross-host redirects with every header but
    /// `Authorization`, so an API key in `x-goog-api-key` or `api-key` would reach the other
    /// host. A 3xx answer that reaches the client is an error naming the status.
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Time allowed to open a connection. Default 10 s.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Time allowed for a whole non-streaming request, and for a stream's response headers.
    /// Default 600 s (as the OpenAI SDKs).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// Longest silence allowed between two pieces of a stream. Default 120 s.
    pub fn stream_idle_timeout(mut self, d: Duration) -> Self {
        self.stream_idle_timeout = d;
        self
    }

    /// Largest non-streaming response body accepted. Default 32 MiB.
    pub fn max_response_bytes(mut self, n: usize) -> Self {
        self.max_response_bytes = n;
        self
    }

    /// Longest single line of a stream accepted. Default 4 MiB.
    pub fn max_line_bytes(mut self, n: usize) -> Self {
        self.max_line_bytes = n;
        self
    }

    /// The retry policy. Default [`RetryPolicy::default`] (2 retries).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Shorthand for `retry(policy.with_max_retries(n))`.
    pub fn max_retries(mut self, n: u32) -> Self {
        self.retry = self.retry.with_max_retries(n);
        self
    }
}

/// What a provider needs from HTTP; built once per client.
#[derive(Clone)]
pub(crate) struct Transport {
    pub(crate) client: reqwest::Client,
    pub(crate) options: HttpOptions,
    pub(crate) provider: &'static str,
    pub(crate) hook: ErrorHook,
    /// Removed from every error body before it is read.
    pub(crate) secret: Option<ApiKey>,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("provider", &self.provider)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn transport_error(provider: &str, e: &reqwest::Error) -> Error {
    let kind = if e.is_timeout() {
        ProviderErrorKind::Timeout
    } else {
        ProviderErrorKind::Transport
    };
    // `without_url` keeps query strings (which could hold a key) out of the message.
    let msg = match e.url() {
        Some(_) => format!("{}", WithoutUrl(e)),
        None => e.to_string(),
    };
    ProviderError::new(kind, msg).with_provider(provider).into()
}

struct WithoutUrl<'a>(&'a reqwest::Error);

impl fmt::Display for WithoutUrl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        let what = if e.is_timeout() {
            "request timed out"
        } else if e.is_connect() {
            "could not connect"
        } else if e.is_body() || e.is_decode() {
            "connection failed while reading the body"
        } else if e.is_request() {
            "request failed"
        } else {
            "HTTP error"
        };
        f.write_str(what)?;
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

impl Transport {
    /// A transport for `provider`, building a client unless one is shared.
    pub(crate) fn new(
        provider: &'static str,
        options: HttpOptions,
        hook: ErrorHook,
    ) -> Result<Self> {
        let client = match &options.client {
            Some(c) => c.clone(),
            None => reqwest::Client::builder()
                .tls_backend_preconfigured(tls_config()?)
                .connect_timeout(options.connect_timeout)
                // reqwest drops `Authorization` on a cross-host redirect but keeps every other
                // header (`x-goog-api-key`, Azure's `api-key`, custom ones): never follow one.
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| {
                    Error::invalid_config(format!("could not build the HTTP client: {e}"))
                })?,
        };
        Ok(Transport {
            client,
            options,
            provider,
            hook,
            secret: None,
        })
    }

    /// Redacts `secret` from every error this transport builds.
    #[must_use]
    #[cfg_attr(
        not(any(feature = "openai", feature = "anthropic", feature = "cohere")),
        allow(dead_code)
    )]
    pub(crate) fn with_secret(mut self, secret: Option<ApiKey>) -> Self {
        self.secret = secret;
        self
    }

    /// Sends once; returns the response when it is 2xx, or the classified error.
    async fn send_once(
        &self,
        request: reqwest::RequestBuilder,
        whole_request_timeout: bool,
    ) -> Result<reqwest::Response> {
        let request = if whole_request_timeout {
            request.timeout(self.options.timeout)
        } else {
            request
        };
        let sent = tokio::time::timeout(self.options.timeout, request.send()).await;
        let response = match sent {
            Err(_) => {
                return Err(ProviderError::new(
                    ProviderErrorKind::Timeout,
                    format!("no response within {:?}", self.options.timeout),
                )
                .with_provider(self.provider)
                .into())
            }
            Ok(Err(e)) => return Err(transport_error(self.provider, &e)),
            Ok(Ok(r)) => r,
        };
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(response);
        }
        if (300..400).contains(&status) {
            // Neither the `Location` nor the body is quoted: either may carry a secret.
            return Err(redirect_error(self.provider, status));
        }
        let headers = response.headers().clone();
        // The error body gets the same deadline as the request: a body that never ends
        // must not hang the call (streams have no whole-request timeout).
        let body = tokio::time::timeout(
            self.options.timeout,
            read_limited(response, 64 << 10, self.provider),
        )
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
        Err(error_from_parts(
            self.provider,
            status,
            &headers,
            &body,
            self.hook,
            self.secret.as_ref(),
        ))
    }

    /// Sends a request built by `build` (called once per attempt), retrying by policy,
    /// and parses the JSON body.
    #[cfg_attr(
        not(any(
            feature = "openai",
            feature = "gemini",
            feature = "ollama",
            feature = "cohere"
        )),
        allow(dead_code)
    )]
    pub(crate) async fn json<T: DeserializeOwned>(
        &self,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<T> {
        self.json_with_headers(build).await.map(|(value, _)| value)
    }

    /// As [`json`](Self::json), with the response headers (rate-limit headroom, request ids).
    pub(crate) async fn json_with_headers<T: DeserializeOwned>(
        &self,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<(T, reqwest::header::HeaderMap)> {
        self.options
            .retry
            .run(tokio::time::sleep, || async {
                let response = self.send_once(build(), true).await?;
                let headers = response.headers().clone();
                let body =
                    read_limited(response, self.options.max_response_bytes, self.provider).await?;
                let value = serde_json::from_slice(&body).map_err(|e| {
                    Error::from(
                        ProviderError::new(
                            ProviderErrorKind::MalformedResponse,
                            format!("response is not the expected JSON: {e}"),
                        )
                        .with_provider(self.provider),
                    )
                })?;
                Ok((value, headers))
            })
            .await
    }

    /// Starts a streaming request, retrying by policy until the response headers arrive.
    /// Once the response is returned nothing is retried.
    #[cfg_attr(
        not(any(feature = "openai", feature = "gemini", feature = "ollama")),
        allow(dead_code)
    )]
    pub(crate) async fn start_stream(
        &self,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response> {
        self.options
            .retry
            .run(tokio::time::sleep, || self.send_once(build(), false))
            .await
    }
}

/// The error for a 3xx answer. Provider clients do not follow redirects: following one would
/// send the credentials headers to wherever the `Location` points.
fn redirect_error(provider: &str, status: u16) -> Error {
    ProviderError::new(
        ProviderErrorKind::from_status(status),
        format!(
            "the server answered HTTP {status} (a redirect), which is not followed so that \
             credentials never go to another address; set the base URL to the final address"
        ),
    )
    .with_status(status)
    .with_provider(provider)
    .into()
}

/// rustls on the `ring` provider with the platform's certificate verifier, carried by each
/// client this crate builds, so no process-wide crypto provider is needed.
fn tls_config() -> Result<rustls::ClientConfig> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls_platform_verifier::Verifier::new(provider.clone()).map_err(|e| {
        Error::invalid_config(format!(
            "could not load the platform's certificate verifier: {e}"
        ))
    })?;
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::invalid_config(format!("could not configure TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(verifier))
        .with_no_client_auth())
}

/// Reads at most `limit` bytes of body; more is a malformed-response error.
pub(crate) async fn read_limited(
    response: reqwest::Response,
    limit: usize,
    provider: &str,
) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| transport_error(provider, &e))?;
        if body.len() + chunk.len() > limit {
            return Err(ProviderError::new(
                ProviderErrorKind::MalformedResponse,
                format!("response body exceeds {limit} bytes"),
            )
            .with_provider(provider)
            .into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A provider error of `kind` for `provider`.
pub(crate) fn provider_error(
    provider: &str,
    kind: ProviderErrorKind,
    message: impl Into<String>,
) -> Error {
    ProviderError::new(kind, message)
        .with_provider(provider)
        .into()
}
