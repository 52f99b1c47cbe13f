//! Configuration shared by the Gemini chat model and embedder: which API (Gemini API with a
//! key, or Vertex AI with OAuth tokens), where, and how requests are authenticated.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use catena_core::{Error, Result};
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::auth::{application_default_credentials, CachedTokenSource, TokenSource};
use super::error::{error_hook, finish_error};
use crate::http::{HttpOptions, Transport};
use crate::secret::ApiKey;
use catena_core::RetryPolicy;

/// The environment variable holding the Gemini API key.
pub const GEMINI_API_KEY_ENV: &str = "GEMINI_API_KEY";
/// The fallback environment variable for the API key (read when `GEMINI_API_KEY` is unset).
pub const GOOGLE_API_KEY_ENV: &str = "GOOGLE_API_KEY";
/// The environment variable naming the chat model.
pub const GEMINI_MODEL_ENV: &str = "GEMINI_MODEL";
/// The environment variable naming the embedding model.
pub const GEMINI_EMBED_MODEL_ENV: &str = "GEMINI_EMBED_MODEL";
/// The environment variable naming the Google Cloud project (Vertex AI).
pub const GOOGLE_CLOUD_PROJECT_ENV: &str = "GOOGLE_CLOUD_PROJECT";
/// The environment variable naming the Vertex AI location (default `us-central1`).
pub const GOOGLE_CLOUD_LOCATION_ENV: &str = "GOOGLE_CLOUD_LOCATION";
/// The Gemini API's base URL.
pub const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com/v1beta";
/// The Vertex AI location used by `vertex_from_env` when none is set.
pub const DEFAULT_VERTEX_LOCATION: &str = "us-central1";

/// How requests are authenticated.
#[derive(Clone)]
enum Auth {
    /// `x-goog-api-key: <key>`.
    Key(HeaderValue, ApiKey),
    /// `Authorization: Bearer <token>` from a cached source.
    Bearer(Arc<CachedTokenSource>),
}

/// What the builders collect; turned into a [`GeminiClient`] by `build`.
#[derive(Clone, Default)]
pub(crate) struct ClientConfig {
    pub(crate) api_key: Option<ApiKey>,
    pub(crate) vertex: Option<(String, String)>,
    pub(crate) token_source: Option<Arc<dyn TokenSource>>,
    pub(crate) base_url: Option<String>,
    pub(crate) http: HttpOptions,
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("vertex", &self.vertex)
            .field(
                "token_source",
                &self.token_source.as_ref().map(|_| "<token source>"),
            )
            .field("base_url", &self.base_url)
            .field("http", &self.http)
            .finish()
    }
}

impl ClientConfig {
    /// Reads `GEMINI_API_KEY` (else `GOOGLE_API_KEY`).
    pub(crate) fn api_key_from_env() -> Option<ApiKey> {
        [GEMINI_API_KEY_ENV, GOOGLE_API_KEY_ENV]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|k| !k.trim().is_empty()))
            .map(ApiKey::new)
    }

    /// Reads `GOOGLE_CLOUD_PROJECT` and `GOOGLE_CLOUD_LOCATION`.
    pub(crate) fn vertex_from_env() -> Result<(String, String)> {
        let project = std::env::var(GOOGLE_CLOUD_PROJECT_ENV)
            .ok()
            .filter(|p| !p.trim().is_empty())
            .ok_or_else(|| {
                Error::invalid_config(format!("{GOOGLE_CLOUD_PROJECT_ENV} is not set"))
            })?;
        let location = std::env::var(GOOGLE_CLOUD_LOCATION_ENV)
            .ok()
            .filter(|l| !l.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_VERTEX_LOCATION.to_owned());
        Ok((project, location))
    }

    pub(crate) fn build(self) -> Result<GeminiClient> {
        let mut http = self.http;
        // The client runs the retry loop itself, so that every attempt's error is scrubbed
        // (and its `RetryInfo` read) before the policy sees it.
        let retry = std::mem::replace(&mut http.retry, RetryPolicy::none());
        let base_url = self.base_url.map(|u| u.trim_end_matches('/').to_owned());
        match (self.vertex, self.api_key) {
            (Some(_), Some(_)) => Err(Error::invalid_config(
                "set either an API key (Gemini API) or `vertex` (Vertex AI), not both",
            )),
            (Some((project, location)), None) => {
                for (what, v) in [("project", &project), ("location", &location)] {
                    if v.trim().is_empty() || v.contains('/') {
                        return Err(Error::invalid_config(format!(
                            "invalid Vertex AI {what} `{v}`"
                        )));
                    }
                }
                let source = match self.token_source {
                    Some(s) => s,
                    None => application_default_credentials()?,
                };
                let root = base_url.unwrap_or_else(|| {
                    if location == "global" {
                        "https://aiplatform.googleapis.com/v1".to_owned()
                    } else {
                        format!("https://{location}-aiplatform.googleapis.com/v1")
                    }
                });
                Ok(GeminiClient {
                    base: format!(
                        "{root}/projects/{project}/locations/{location}/publishers/google"
                    ),
                    auth: Auth::Bearer(Arc::new(CachedTokenSource::new(source))),
                    transport: Transport::new("vertex", http, error_hook)?,
                    retry,
                })
            }
            (None, key) => {
                if self.token_source.is_some() {
                    return Err(Error::invalid_config(
                        "a token source is only used with Vertex AI; call `vertex(project, location)`",
                    ));
                }
                let key = key.filter(|k| !k.is_empty()).ok_or_else(|| {
                    Error::invalid_config(format!(
                        "no Gemini API key: call `api_key`, or set {GEMINI_API_KEY_ENV} and use `from_env`"
                    ))
                })?;
                let mut header = HeaderValue::from_str(key.expose_secret()).map_err(|_| {
                    Error::invalid_config("the API key contains characters not allowed in a header")
                })?;
                header.set_sensitive(true);
                Ok(GeminiClient {
                    base: base_url.unwrap_or_else(|| DEFAULT_BASE_URL.to_owned()),
                    auth: Auth::Key(header, key),
                    transport: Transport::new("gemini", http, error_hook)?,
                    retry,
                })
            }
        }
    }
}

/// What both Gemini clients need: the base URL, authentication and the transport.
#[derive(Clone)]
pub(crate) struct GeminiClient {
    /// `{base}/models/{model}:{method}` is a method's URL.
    base: String,
    auth: Auth,
    pub(crate) transport: Transport,
    retry: RetryPolicy,
}

impl fmt::Debug for GeminiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match &self.auth {
            Auth::Key(..) => "api key <redacted>",
            Auth::Bearer(_) => "oauth bearer token <redacted>",
        };
        f.debug_struct("GeminiClient")
            .field("base", &self.base)
            .field("auth", &auth)
            .field("transport", &self.transport)
            .field("retry", &self.retry)
            .finish()
    }
}

/// A model id as it goes into a URL: `models/` prefixes are dropped.
pub(crate) fn model_id(model: &str) -> &str {
    model.strip_prefix("models/").unwrap_or(model)
}

impl GeminiClient {
    /// The provider name in errors and [`ModelInfo`](catena_core::ModelInfo):
    /// `gemini` or `vertex`.
    pub(crate) fn provider(&self) -> &'static str {
        self.transport.provider
    }

    pub(crate) fn is_vertex(&self) -> bool {
        matches!(self.auth, Auth::Bearer(_))
    }

    /// The URL of `method` (`generateContent`, `predict`, ...) on `model`.
    pub(crate) fn url(&self, model: &str, method: &str) -> String {
        format!("{}/models/{}:{method}", self.base, model_id(model))
    }

    /// The header that authenticates one attempt, and the secret it carries (to scrub from
    /// error messages).
    async fn auth_header(&self) -> Result<(reqwest::header::HeaderName, HeaderValue, ApiKey)> {
        match &self.auth {
            Auth::Key(h, key) => Ok((
                reqwest::header::HeaderName::from_static("x-goog-api-key"),
                h.clone(),
                key.clone(),
            )),
            Auth::Bearer(source) => {
                let token = source.token().await?;
                let mut h =
                    HeaderValue::from_str(&format!("Bearer {}", token.token.expose_secret()))
                        .map_err(|_| {
                            Error::other(
                                "the OAuth token contains characters not allowed in a header",
                            )
                        })?;
                h.set_sensitive(true);
                Ok((AUTHORIZATION, h, token.token))
            }
        }
    }

    fn request(
        &self,
        url: &str,
        body: &Bytes,
        name: &reqwest::header::HeaderName,
        value: &HeaderValue,
    ) -> reqwest::RequestBuilder {
        self.transport
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .header(name.clone(), value.clone())
            .body(body.clone())
    }

    fn encode(body: &impl Serialize) -> Result<Bytes> {
        serde_json::to_vec(body)
            .map(Bytes::from)
            .map_err(|e| Error::serialization("encoding the Gemini request", e))
    }

    /// POSTs `body` and parses the JSON answer, retrying by policy.
    pub(crate) async fn post_json<T: DeserializeOwned>(
        &self,
        url: &str,
        body: &impl Serialize,
    ) -> Result<T> {
        let body = Self::encode(body)?;
        self.retry
            .run(tokio::time::sleep, || async {
                let (name, value, secret) = self.auth_header().await?;
                self.transport
                    .json(|| self.request(url, &body, &name, &value))
                    .await
                    .map_err(|e| finish_error(e, &[secret.expose_secret()]))
            })
            .await
    }

    /// POSTs `body` and returns the streaming response once its headers arrive, retrying
    /// by policy until then.
    pub(crate) async fn post_stream(
        &self,
        url: &str,
        body: &impl Serialize,
    ) -> Result<reqwest::Response> {
        let body = Self::encode(body)?;
        self.retry
            .run(tokio::time::sleep, || async {
                let (name, value, secret) = self.auth_header().await?;
                self.transport
                    .start_stream(|| self.request(url, &body, &name, &value))
                    .await
                    .map_err(|e| finish_error(e, &[secret.expose_secret()]))
            })
            .await
    }
}

/// Builder setters shared by the chat model and embedder builders.
macro_rules! client_setters {
    () => {
        /// The Gemini API key, sent in the `x-goog-api-key` header (never in the URL).
        /// Default: none (`from_env` reads `GEMINI_API_KEY`, else `GOOGLE_API_KEY`).
        pub fn api_key(mut self, key: impl Into<$crate::ApiKey>) -> Self {
            self.config.api_key = Some(key.into());
            self
        }

        /// Uses Vertex AI in `project` and `location` (`us-central1`, `europe-west4`,
        /// `global`, ...) instead of the Gemini API. Default: the Gemini API.
        pub fn vertex(mut self, project: impl Into<String>, location: impl Into<String>) -> Self {
            self.config.vertex = Some((project.into(), location.into()));
            self
        }

        /// Where Vertex AI bearer tokens come from; it is wrapped in a
        /// [`CachedTokenSource`](super::CachedTokenSource). Default:
        /// [`application_default_credentials`](super::application_default_credentials),
        /// read by `build`.
        pub fn token_source(mut self, source: impl super::TokenSource + 'static) -> Self {
            self.config.token_source = Some(std::sync::Arc::new(source));
            self
        }

        /// The API root. Gemini API default
        /// `https://generativelanguage.googleapis.com/v1beta`; for Vertex AI it replaces
        /// `https://{location}-aiplatform.googleapis.com/v1` (`/projects/{project}/locations/{location}/publishers/google`
        /// is still appended).
        pub fn base_url(mut self, url: impl Into<String>) -> Self {
            self.config.base_url = Some(url.into());
            self
        }

        /// HTTP settings. Default [`HttpOptions::default`](crate::HttpOptions::default).
        pub fn http(mut self, http: $crate::HttpOptions) -> Self {
            self.config.http = http;
            self
        }
    };
}
pub(crate) use client_setters;
