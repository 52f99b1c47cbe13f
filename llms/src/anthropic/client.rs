//! Connection settings of [`AnthropicChatModel`](super::AnthropicChatModel): key, base URL,
//! extra headers and HTTP options, and the request helpers built from them.

use std::fmt;

use bytes::Bytes;
use catena_core::{Error, Result};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::{anthropic_error_hook, redact};
use crate::http::Transport;
use crate::{ApiKey, HttpOptions};

/// Environment variable holding the API key: `ANTHROPIC_API_KEY`.
pub const API_KEY_ENV: &str = "ANTHROPIC_API_KEY";
/// Environment variable overriding the base URL: `ANTHROPIC_BASE_URL`.
pub const BASE_URL_ENV: &str = "ANTHROPIC_BASE_URL";
/// Environment variable naming the chat model: `ANTHROPIC_MODEL`.
pub const MODEL_ENV: &str = "ANTHROPIC_MODEL";

/// Anthropic's API root: `https://api.anthropic.com` (requests go to `{base}/v1/messages`).
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";

/// The API version sent as `anthropic-version`: `2023-06-01`.
pub const API_VERSION: &str = "2023-06-01";

pub(crate) const PROVIDER: &str = "anthropic";

/// What the builder collects.
#[derive(Clone)]
pub(crate) struct ConnectionConfig {
    pub(crate) api_key: Option<ApiKey>,
    pub(crate) base_url: String,
    pub(crate) http: HttpOptions,
    /// Extra headers added to every request (`anthropic-beta`, gateways).
    pub(crate) headers: Vec<(String, String)>,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            api_key: None,
            base_url: DEFAULT_BASE_URL.to_owned(),
            http: HttpOptions::default(),
            headers: Vec::new(),
        }
    }
}

impl fmt::Debug for ConnectionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionConfig")
            .field("api_key", &key_state(self.api_key.as_ref()))
            .field("base_url", &self.base_url)
            .field("http", &self.http)
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn key_state(key: Option<&ApiKey>) -> &'static str {
    match key {
        Some(k) if !k.is_empty() => "<redacted>",
        _ => "<none>",
    }
}

impl ConnectionConfig {
    /// Fills the settings whose variables are set (and not empty), reading them with `get`.
    pub(crate) fn apply_env(&mut self, get: &dyn Fn(&str) -> Option<String>) {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        if let Some(k) = get(API_KEY_ENV) {
            self.api_key = Some(ApiKey::new(k));
        }
        if let Some(u) = get(BASE_URL_ENV) {
            self.base_url = u.trim().to_owned();
        }
    }
}

/// Reads a process environment variable.
pub(crate) fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// A validated connection: the transport, the base URL and the fixed headers.
#[derive(Clone)]
pub(crate) struct AnthropicClient {
    transport: Transport,
    base_url: String,
    headers: HeaderMap,
    /// Kept only to redact it from error messages.
    api_key: Option<ApiKey>,
}

impl fmt::Debug for AnthropicClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnthropicClient")
            .field("base_url", &self.base_url)
            .field("api_key", &key_state(self.api_key.as_ref()))
            .field("http", &self.transport.options)
            .finish()
    }
}

fn header_value(name: &str, value: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(value.trim()).map_err(|_| {
        Error::invalid_config(format!(
            "the {name} contains characters not allowed in an HTTP header"
        ))
    })
}

impl AnthropicClient {
    /// Validates `config`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a base URL that is not `http(s)`, a missing key when the
    /// base URL is Anthropic's own, or values that cannot be HTTP headers.
    pub(crate) fn new(config: ConnectionConfig) -> Result<Self> {
        let base_url = config.base_url.trim().trim_end_matches('/').to_owned();
        let url = reqwest::Url::parse(&base_url).map_err(|e| {
            Error::invalid_config(format!("invalid Anthropic base URL `{base_url}`: {e}"))
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
            return Err(Error::invalid_config(format!(
                "invalid Anthropic base URL `{base_url}`: expected an http(s) URL"
            )));
        }
        let official = url.host_str() == Some("api.anthropic.com");
        let api_key = config.api_key.filter(|k| !k.is_empty());

        let mut headers = HeaderMap::new();
        match &api_key {
            Some(key) => {
                let mut v = header_value("API key", key.expose_secret())?;
                v.set_sensitive(true);
                headers.insert(HeaderName::from_static("x-api-key"), v);
            }
            None if official => {
                return Err(Error::invalid_config(format!(
                    "missing Anthropic API key: set {API_KEY_ENV} or call `api_key(..)` (only servers other than api.anthropic.com may go without one)"
                )))
            }
            // Gateways and proxies may hold the key themselves.
            None => {}
        }
        headers.insert(
            HeaderName::from_static("anthropic-version"),
            HeaderValue::from_static(API_VERSION),
        );
        for (name, value) in &config.headers {
            let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| {
                Error::invalid_config(format!("`{name}` is not a valid HTTP header name"))
            })?;
            let mut v = header_value(&format!("header `{name}`"), value)?;
            // Extra headers may carry credentials (gateways, proxies): never print them.
            v.set_sensitive(true);
            headers.insert(name, v);
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            reqwest::header::USER_AGENT,
            HeaderValue::from_static(concat!("catena-llms/", env!("CARGO_PKG_VERSION"))),
        );

        let transport = Transport::new(PROVIDER, config.http, anthropic_error_hook)?
            .with_secret(api_key.clone());
        Ok(AnthropicClient {
            transport,
            base_url,
            headers,
            api_key,
        })
    }

    pub(crate) fn transport(&self) -> &Transport {
        &self.transport
    }

    pub(crate) fn base_url(&self) -> &str {
        &self.base_url
    }

    pub(crate) fn api_key(&self) -> Option<&ApiKey> {
        self.api_key.as_ref()
    }

    /// Removes the key from an error's message.
    pub(crate) fn redact(&self, err: Error) -> Error {
        redact(err, self.api_key.as_ref())
    }

    fn encode(body: &impl Serialize) -> Result<Bytes> {
        serde_json::to_vec(body)
            .map(Bytes::from)
            .map_err(|e| Error::serialization("could not encode the Anthropic request", e))
    }

    fn request(&self, path: &str, body: &Bytes, accept: &'static str) -> reqwest::RequestBuilder {
        self.transport
            .client
            .post(format!("{}{path}", self.base_url))
            .headers(self.headers.clone())
            .header(ACCEPT, accept)
            .body(body.clone())
    }

    /// `POST {base}{path}` with a JSON body, retried by policy; parses the JSON answer and
    /// keeps the response headers (for the rate-limit headroom).
    pub(crate) async fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<(T, HeaderMap)> {
        let body = Self::encode(body)?;
        self.transport
            .json_with_headers(|| self.request(path, &body, "application/json"))
            .await
            .map_err(|e| self.redact(e))
    }

    /// `POST {base}{path}` for a server-sent-event stream; retried until headers arrive.
    pub(crate) async fn post_stream(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<reqwest::Response> {
        let body = Self::encode(body)?;
        self.transport
            .start_stream(|| self.request(path, &body, "text/event-stream"))
            .await
            .map_err(|e| self.redact(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_and_key_rules() {
        let mut c = ConnectionConfig::default();
        c.apply_env(&|name: &str| match name {
            API_KEY_ENV => Some(" sk-ant-env-0123456789 ".to_owned()),
            BASE_URL_ENV => Some("http://localhost:8080/".to_owned()),
            _ => None,
        });
        let client = AnthropicClient::new(c).unwrap();
        assert_eq!(client.base_url(), "http://localhost:8080");
        assert!(client.headers.get("x-api-key").unwrap().is_sensitive());
        assert_eq!(
            client.headers.get("anthropic-version").unwrap(),
            API_VERSION
        );
        assert!(!format!("{client:?}").contains("sk-ant-env"));

        let err = AnthropicClient::new(ConnectionConfig::default()).unwrap_err();
        assert!(matches!(err, Error::InvalidConfig(_)), "{err:?}");
        assert!(err.to_string().contains(API_KEY_ENV));
        for bad in ["not a url", "ftp://x", "mailto:a@b"] {
            let c = ConnectionConfig {
                base_url: bad.into(),
                api_key: Some(ApiKey::new("k")),
                ..Default::default()
            };
            assert!(
                matches!(AnthropicClient::new(c), Err(Error::InvalidConfig(_))),
                "{bad}"
            );
        }
        let c = ConnectionConfig {
            api_key: Some(ApiKey::new("sk-ant-bad\nkey")),
            ..Default::default()
        };
        let err = AnthropicClient::new(c).unwrap_err();
        assert!(!err.to_string().contains("sk-ant-bad"), "{err}");
    }
}
