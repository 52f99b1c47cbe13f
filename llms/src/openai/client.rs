//! Connection settings shared by [`OpenAiChatModel`](super::OpenAiChatModel) and
//! [`OpenAiEmbedder`](super::OpenAiEmbedder): key, base URL, organization / project headers
//! and HTTP options, and the request helpers built from them.

use std::fmt;

use bytes::Bytes;
use catena_core::{Error, RateLimitInfo, Result};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::{openai_error_hook, redact};
use crate::http::{rate_limit_info, Transport};
use crate::{ApiKey, HttpOptions};

/// Environment variable holding the API key: `OPENAI_API_KEY`.
pub const API_KEY_ENV: &str = "OPENAI_API_KEY";
/// Environment variable overriding the base URL: `OPENAI_BASE_URL`.
pub const BASE_URL_ENV: &str = "OPENAI_BASE_URL";
/// Environment variable holding the organization id: `OPENAI_ORG_ID`.
pub const ORG_ID_ENV: &str = "OPENAI_ORG_ID";
/// Environment variable holding the project id: `OPENAI_PROJECT_ID`.
pub const PROJECT_ID_ENV: &str = "OPENAI_PROJECT_ID";
/// Environment variable naming the chat model: `OPENAI_MODEL`.
pub const MODEL_ENV: &str = "OPENAI_MODEL";
/// Environment variable naming the embedding model: `OPENAI_EMBEDDING_MODEL`.
pub const EMBEDDING_MODEL_ENV: &str = "OPENAI_EMBEDDING_MODEL";

/// OpenAI's API root: `https://api.openai.com/v1`.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

pub(crate) const PROVIDER: &str = "openai";

/// What both builders collect.
#[derive(Clone)]
pub(crate) struct ConnectionConfig {
    pub(crate) api_key: Option<ApiKey>,
    pub(crate) base_url: String,
    pub(crate) organization: Option<String>,
    pub(crate) project: Option<String>,
    pub(crate) http: HttpOptions,
    /// Send the key as `api-key: <key>` (Azure OpenAI) instead of `Authorization: Bearer`.
    pub(crate) api_key_header: bool,
    /// Query parameters added to every request (Azure's `api-version`).
    pub(crate) query: Vec<(String, String)>,
    /// Extra headers added to every request.
    pub(crate) headers: Vec<(String, String)>,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            api_key: None,
            base_url: DEFAULT_BASE_URL.to_owned(),
            organization: None,
            project: None,
            http: HttpOptions::default(),
            api_key_header: false,
            query: Vec::new(),
            headers: Vec::new(),
        }
    }
}

impl fmt::Debug for ConnectionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionConfig")
            .field("api_key", &key_state(self.api_key.as_ref()))
            .field("base_url", &self.base_url)
            .field("organization", &self.organization)
            .field("project", &self.project)
            .field("http", &self.http)
            .field("api_key_header", &self.api_key_header)
            .field("query", &self.query)
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl ConnectionConfig {
    /// Points the client at an Azure OpenAI deployment.
    pub(crate) fn azure(&mut self, endpoint: &str, deployment: &str, api_version: &str) {
        self.base_url = format!(
            "{}/openai/deployments/{}",
            endpoint.trim().trim_end_matches('/'),
            deployment.trim()
        );
        self.api_key_header = true;
        self.query.retain(|(k, _)| k != "api-version");
        self.query
            .push(("api-version".to_owned(), api_version.trim().to_owned()));
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
            self.api_key = Some(ApiKey::new(k.trim()));
        }
        if let Some(u) = get(BASE_URL_ENV) {
            self.base_url = u.trim().to_owned();
        }
        if let Some(o) = get(ORG_ID_ENV) {
            self.organization = Some(o.trim().to_owned());
        }
        if let Some(p) = get(PROJECT_ID_ENV) {
            self.project = Some(p.trim().to_owned());
        }
    }
}

/// The connection setters shared by both builders (each has a `connection: ConnectionConfig`).
macro_rules! connection_setters {
    () => {
        /// The API key, sent as `Authorization: Bearer <key>` (or `api-key` for Azure). No
        /// default: required for `api.openai.com`; other base URLs (local servers) may go
        /// without one, and then no credentials header is sent.
        pub fn api_key(mut self, key: impl Into<$crate::ApiKey>) -> Self {
            self.connection.api_key = Some(key.into());
            self
        }

        /// The API root, up to and including the version. Default
        /// [`DEFAULT_BASE_URL`](super::DEFAULT_BASE_URL) (`https://api.openai.com/v1`); any
        /// OpenAI-compatible server works (`http://localhost:8000/v1` for vLLM,
        /// `http://localhost:11434/v1` for Ollama).
        pub fn base_url(mut self, url: impl Into<String>) -> Self {
            self.connection.base_url = url.into();
            self
        }

        /// The organization id, sent as `OpenAI-Organization`. Default: not sent.
        pub fn organization(mut self, id: impl Into<String>) -> Self {
            self.connection.organization = Some(id.into());
            self
        }

        /// The project id, sent as `OpenAI-Project`. Default: not sent.
        pub fn project(mut self, id: impl Into<String>) -> Self {
            self.connection.project = Some(id.into());
            self
        }

        /// Targets an Azure OpenAI deployment: requests go to
        /// `{endpoint}/openai/deployments/{deployment}/…?api-version={api_version}` and the
        /// key is sent as an `api-key` header. Default: OpenAI itself.
        pub fn azure(
            mut self,
            endpoint: impl AsRef<str>,
            deployment: impl AsRef<str>,
            api_version: impl AsRef<str>,
        ) -> Self {
            self.connection
                .azure(endpoint.as_ref(), deployment.as_ref(), api_version.as_ref());
            self
        }

        /// Adds a header to every request (gateways, proxies). Its value is treated as a
        /// secret: never logged or printed. Default: none.
        pub fn default_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
            self.connection.headers.push((name.into(), value.into()));
            self
        }

        /// Adds a query parameter to every request. Default: none.
        pub fn default_query(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
            self.connection.query.push((name.into(), value.into()));
            self
        }

        /// Timeouts, retries and limits. Default [`HttpOptions::default`]($crate::HttpOptions)
        /// (2 retries, 600 s request timeout, 120 s stream idle timeout).
        pub fn http(mut self, options: $crate::HttpOptions) -> Self {
            self.connection.http = options;
            self
        }

        /// Shares an existing `reqwest` client and its connection pool; shorthand for
        /// `http(options.client(client))`. Default: a client of our own.
        pub fn http_client(mut self, client: reqwest::Client) -> Self {
            self.connection.http = self.connection.http.client(client);
            self
        }
    };
}
pub(crate) use connection_setters;

/// Reads a process environment variable.
pub(crate) fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// A validated connection: the transport, the base URL and the fixed headers.
#[derive(Clone)]
pub(crate) struct OpenAiClient {
    transport: Transport,
    base_url: String,
    headers: HeaderMap,
    query: Vec<(String, String)>,
    /// Kept only to redact it from error messages.
    api_key: Option<ApiKey>,
}

impl fmt::Debug for OpenAiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiClient")
            .field("base_url", &self.base_url)
            .field("api_key", &key_state(self.api_key.as_ref()))
            .field("organization", &self.headers.get("openai-organization"))
            .field("project", &self.headers.get("openai-project"))
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

impl OpenAiClient {
    /// Validates `config`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a base URL that is not `http(s)`, a missing key when the
    /// base URL is OpenAI's own, or values that cannot be HTTP headers.
    pub(crate) fn new(config: ConnectionConfig) -> Result<Self> {
        let base_url = config.base_url.trim().trim_end_matches('/').to_owned();
        let url = reqwest::Url::parse(&base_url).map_err(|e| {
            Error::invalid_config(format!("invalid OpenAI base URL `{base_url}`: {e}"))
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
            return Err(Error::invalid_config(format!(
                "invalid OpenAI base URL `{base_url}`: expected an http(s) URL"
            )));
        }
        let official = url.host_str() == Some("api.openai.com");
        let api_key = config.api_key.filter(|k| !k.is_empty());

        let mut headers = HeaderMap::new();
        match &api_key {
            Some(key) if config.api_key_header => {
                let mut v = header_value("API key", key.expose_secret())?;
                v.set_sensitive(true);
                headers.insert(HeaderName::from_static("api-key"), v);
            }
            Some(key) => {
                let mut v = header_value("API key", &format!("Bearer {}", key.expose_secret().trim()))?;
                v.set_sensitive(true);
                headers.insert(AUTHORIZATION, v);
            }
            None if official => {
                return Err(Error::invalid_config(format!(
                    "missing OpenAI API key: set {API_KEY_ENV} or call `api_key(..)` (only servers other than api.openai.com may go without one)"
                )))
            }
            // Local OpenAI-compatible servers usually need no key.
            None => {}
        }
        if let Some(org) = config
            .organization
            .as_deref()
            .filter(|s| !s.trim().is_empty())
        {
            headers.insert(
                HeaderName::from_static("openai-organization"),
                header_value("organization id", org)?,
            );
        }
        if let Some(project) = config.project.as_deref().filter(|s| !s.trim().is_empty()) {
            headers.insert(
                HeaderName::from_static("openai-project"),
                header_value("project id", project)?,
            );
        }
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

        let transport = Transport::new(PROVIDER, config.http, |status, body| {
            openai_error_hook(status, body).into()
        })?
        .with_secret(api_key.clone());
        Ok(OpenAiClient {
            transport,
            base_url,
            headers,
            query: config.query,
            api_key,
        })
    }

    pub(crate) fn transport(&self) -> &Transport {
        &self.transport
    }

    pub(crate) fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Removes the key from an error's message.
    pub(crate) fn redact(&self, err: Error) -> Error {
        redact(err, self.api_key.as_ref())
    }

    fn encode(body: &impl Serialize) -> Result<Bytes> {
        serde_json::to_vec(body)
            .map(Bytes::from)
            .map_err(|e| Error::serialization("could not encode the OpenAI request", e))
    }

    fn request(&self, path: &str, body: &Bytes, accept: &'static str) -> reqwest::RequestBuilder {
        self.transport
            .client
            .post(format!("{}{path}", self.base_url))
            .query(&self.query)
            .headers(self.headers.clone())
            .header(ACCEPT, accept)
            .body(body.clone())
    }

    /// `POST {base}{path}` with a JSON body, retried by policy; parses the JSON answer.
    pub(crate) async fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T> {
        let body = Self::encode(body)?;
        self.transport
            .json(|| self.request(path, &body, "application/json"))
            .await
            .map_err(|e| self.redact(e))
    }

    /// As [`post_json`](Self::post_json), also returning the rate-limit headroom the
    /// response headers (`x-ratelimit-*`) report.
    pub(crate) async fn post_json_with_rate_limit<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<(T, Option<RateLimitInfo>)> {
        let body = Self::encode(body)?;
        self.transport
            .json_with_headers(|| self.request(path, &body, "application/json"))
            .await
            .map(|(value, headers)| (value, rate_limit_info(&headers)))
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

    pub(crate) fn api_key(&self) -> Option<&ApiKey> {
        self.api_key.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn env_fills_settings() {
        let mut c = ConnectionConfig::default();
        c.apply_env(&env(&[
            (API_KEY_ENV, " sk-env "),
            (BASE_URL_ENV, "http://localhost:8000/v1/"),
            (ORG_ID_ENV, "org-1"),
            (PROJECT_ID_ENV, ""),
        ]));
        assert_eq!(
            c.api_key.as_ref().map(ApiKey::expose_secret),
            Some("sk-env")
        );
        assert_eq!(c.base_url, "http://localhost:8000/v1/");
        assert_eq!(c.organization.as_deref(), Some("org-1"));
        assert_eq!(c.project, None, "empty variables are ignored");
        let client = OpenAiClient::new(c).unwrap();
        assert_eq!(client.base_url(), "http://localhost:8000/v1");
        assert!(client.headers.get(AUTHORIZATION).unwrap().is_sensitive());
        assert!(!format!("{client:?}").contains("sk-env"));
    }

    #[test]
    fn key_rules() {
        let err = OpenAiClient::new(ConnectionConfig::default()).unwrap_err();
        assert!(matches!(err, Error::InvalidConfig(_)), "{err:?}");
        assert!(err.to_string().contains(API_KEY_ENV));
        let local = ConnectionConfig {
            base_url: "http://127.0.0.1:11434/v1".into(),
            api_key: Some(ApiKey::new("")),
            ..Default::default()
        };
        let client = OpenAiClient::new(local).unwrap();
        assert!(client.headers.get(AUTHORIZATION).is_none());
        for bad in ["not a url", "ftp://x/v1", "mailto:a@b"] {
            let c = ConnectionConfig {
                base_url: bad.into(),
                api_key: Some(ApiKey::new("k")),
                ..Default::default()
            };
            assert!(
                matches!(OpenAiClient::new(c), Err(Error::InvalidConfig(_))),
                "{bad}"
            );
        }
        let c = ConnectionConfig {
            api_key: Some(ApiKey::new("sk-bad\nkey")),
            ..Default::default()
        };
        let err = OpenAiClient::new(c).unwrap_err();
        assert!(!err.to_string().contains("sk-bad"), "{err}");
    }
}
