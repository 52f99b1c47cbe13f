//! [`CohereReranker`]: Cohere's hosted rerank models over `POST /v2/rerank`.

use std::collections::HashSet;
use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;
use catena_core::{
    sort_rerank_results, Document, Error, ProviderErrorKind, RerankResult, Reranker, Result,
};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};

use super::error::cohere_error_hook;
use super::wire::{RerankRequest, RerankResponse};
use crate::http::{provider_error, Transport};
use crate::secret::redact;
use crate::{ApiKey, HttpOptions};

/// Environment variable holding the API key: `COHERE_API_KEY`.
pub const API_KEY_ENV: &str = "COHERE_API_KEY";
/// Environment variable read for the key when [`API_KEY_ENV`] is not set: `CO_API_KEY` (the
/// name Cohere's own SDKs read).
pub const ALT_API_KEY_ENV: &str = "CO_API_KEY";
/// Environment variable overriding the base URL: `CO_API_URL` (as Cohere's SDKs).
pub const BASE_URL_ENV: &str = "CO_API_URL";
/// Environment variable naming the rerank model: `COHERE_RERANK_MODEL`.
pub const RERANK_MODEL_ENV: &str = "COHERE_RERANK_MODEL";
/// Cohere's API root: `https://api.cohere.com` (requests go to `{base}/v2/rerank`).
pub const DEFAULT_BASE_URL: &str = "https://api.cohere.com";
/// The rerank model used unless told otherwise: `rerank-v3.5`.
pub const DEFAULT_RERANK_MODEL: &str = "rerank-v3.5";
/// Documents sent in one request unless told otherwise: 1,000, the most Cohere recommends.
pub const DEFAULT_MAX_DOCUMENTS_PER_REQUEST: usize = 1_000;

pub(crate) const PROVIDER: &str = "cohere";

/// Reranks with Cohere's hosted models (`rerank-v3.5`, `rerank-english-v3.0`,
/// `rerank-multilingual-v3.0`, ...), or any server speaking Cohere's v2 rerank format.
///
/// Scores are Cohere's `relevance_score` (0 to 1). More documents than
/// [`max_documents_per_request`](CohereRerankerBuilder::max_documents_per_request) are sent in
/// several requests and the results merged. Empty input, or `top_n == 0`, returns nothing
/// without a request. Retries (429 with `Retry-After`, 5xx, 499) follow the
/// [`HttpOptions`] retry policy; the key never appears in `Debug` output or errors.
///
/// ```no_run
/// use catena_core::{Document, Reranker};
/// use catena_llms::cohere::CohereReranker;
///
/// # async fn run() -> catena_core::Result<()> {
/// let reranker = CohereReranker::builder()
///     .api_key(std::env::var("COHERE_API_KEY").unwrap_or_default())
///     .model("rerank-v3.5")
///     .build()?;
/// let docs = [Document::new("Paris is in France."), Document::new("Bananas are yellow.")];
/// let best = reranker.rerank("capital of France", &docs, 1).await?;
/// assert_eq!(best[0].index, 0);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct CohereReranker {
    transport: Transport,
    url: String,
    headers: HeaderMap,
    model: String,
    max_tokens_per_doc: Option<u32>,
    max_documents_per_request: usize,
    /// Kept only to redact it from error messages.
    api_key: Option<ApiKey>,
}

impl fmt::Debug for CohereReranker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CohereReranker")
            .field("url", &self.url)
            .field("model", &self.model)
            .field("api_key", &key_state(self.api_key.as_ref()))
            .field("max_tokens_per_doc", &self.max_tokens_per_doc)
            .field("max_documents_per_request", &self.max_documents_per_request)
            .field("http", &self.transport.options)
            .finish()
    }
}

fn key_state(key: Option<&ApiKey>) -> &'static str {
    match key {
        Some(k) if !k.is_empty() => "<redacted>",
        _ => "<none>",
    }
}

/// Configures a [`CohereReranker`]; see [`CohereReranker::builder`].
#[derive(Clone)]
#[must_use]
pub struct CohereRerankerBuilder {
    api_key: Option<ApiKey>,
    base_url: String,
    model: String,
    max_tokens_per_doc: Option<u32>,
    max_documents_per_request: usize,
    http: HttpOptions,
}

impl fmt::Debug for CohereRerankerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CohereRerankerBuilder")
            .field("api_key", &key_state(self.api_key.as_ref()))
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("max_tokens_per_doc", &self.max_tokens_per_doc)
            .field("max_documents_per_request", &self.max_documents_per_request)
            .field("http", &self.http)
            .finish()
    }
}

impl Default for CohereRerankerBuilder {
    fn default() -> Self {
        CohereRerankerBuilder {
            api_key: None,
            base_url: DEFAULT_BASE_URL.to_owned(),
            model: DEFAULT_RERANK_MODEL.to_owned(),
            max_tokens_per_doc: None,
            max_documents_per_request: DEFAULT_MAX_DOCUMENTS_PER_REQUEST,
            http: HttpOptions::default(),
        }
    }
}

impl CohereRerankerBuilder {
    /// The API key, sent as `Authorization: Bearer <key>`. No default: required for Cohere's
    /// own API; a compatible server on another base URL may go without one.
    pub fn api_key(mut self, key: impl Into<ApiKey>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// The API root, without the version: requests go to `{base_url}/v2/rerank`. Default
    /// [`DEFAULT_BASE_URL`] (`https://api.cohere.com`).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// The rerank model. Default [`DEFAULT_RERANK_MODEL`] (`rerank-v3.5`).
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = model.into();
        self
    }

    /// Sent as `max_tokens_per_doc`: Cohere truncates each document to this many tokens.
    /// Default: not sent (Cohere's default, 4,096).
    pub fn max_tokens_per_doc(mut self, n: u32) -> Self {
        self.max_tokens_per_doc = Some(n);
        self
    }

    /// The most documents sent in one request; more are sent in several requests. Default
    /// [`DEFAULT_MAX_DOCUMENTS_PER_REQUEST`] (1,000). Zero is an error at [`build`](Self::build).
    pub fn max_documents_per_request(mut self, n: usize) -> Self {
        self.max_documents_per_request = n;
        self
    }

    /// Timeouts, retries and limits. Default [`HttpOptions::default`] (2 retries, 600 s
    /// request timeout).
    pub fn http(mut self, options: HttpOptions) -> Self {
        self.http = options;
        self
    }

    /// Shares an existing `reqwest` client and its connection pool; shorthand for
    /// `http(options.client(client))`. Default: a client of our own.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = self.http.client(client);
        self
    }

    /// Fills what the environment sets (and is not empty), reading it with `get`.
    fn apply_env(mut self, get: &dyn Fn(&str) -> Option<String>) -> Self {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        if let Some(key) = get(API_KEY_ENV).or_else(|| get(ALT_API_KEY_ENV)) {
            self.api_key = Some(ApiKey::new(key.trim()));
        }
        if let Some(url) = get(BASE_URL_ENV) {
            self.base_url = url.trim().to_owned();
        }
        if let Some(model) = get(RERANK_MODEL_ENV) {
            self.model = model.trim().to_owned();
        }
        self
    }

    /// Validates the settings and builds the client.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a base URL that is not `http(s)`, a missing key when the
    /// base URL is Cohere's own, an empty model, a key that cannot be an HTTP header, or
    /// `max_documents_per_request(0)`.
    pub fn build(self) -> Result<CohereReranker> {
        let base = self.base_url.trim().trim_end_matches('/').to_owned();
        // The URL is not echoed in errors: it may carry credentials.
        let url = reqwest::Url::parse(&base)
            .map_err(|e| Error::invalid_config(format!("invalid Cohere base URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
            return Err(Error::invalid_config(
                "invalid Cohere base URL: expected an http(s) URL",
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Error::invalid_config(
                "invalid Cohere base URL: credentials belong in the API key, not the URL",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(Error::invalid_config(
                "invalid Cohere base URL: it may not have a query or a fragment",
            ));
        }
        let official = url
            .host_str()
            .is_some_and(|h| h == "api.cohere.com" || h == "api.cohere.ai");
        let model = self.model.trim().to_owned();
        if model.is_empty() {
            return Err(Error::invalid_config("the Cohere rerank model is empty"));
        }
        if self.max_documents_per_request == 0 {
            return Err(Error::invalid_config(
                "max_documents_per_request must be at least 1",
            ));
        }
        let api_key = self.api_key.filter(|k| !k.is_empty());
        let mut headers = HeaderMap::new();
        match &api_key {
            Some(key) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose_secret()))
                    .map_err(|_| {
                        Error::invalid_config(
                            "the Cohere API key contains characters not allowed in an HTTP header",
                        )
                    })?;
                value.set_sensitive(true);
                headers.insert(AUTHORIZATION, value);
            }
            None if official => {
                return Err(Error::invalid_config(format!(
                    "missing Cohere API key: set {API_KEY_ENV} (or {ALT_API_KEY_ENV}) or call `api_key(..)`"
                )))
            }
            None => {}
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("catena-llms/", env!("CARGO_PKG_VERSION"))),
        );
        let transport =
            Transport::new(PROVIDER, self.http, cohere_error_hook)?.with_secret(api_key.clone());
        Ok(CohereReranker {
            transport,
            url: format!("{base}/v2/rerank"),
            headers,
            model,
            max_tokens_per_doc: self.max_tokens_per_doc,
            max_documents_per_request: self.max_documents_per_request,
            api_key,
        })
    }
}

impl CohereReranker {
    /// A builder with the defaults.
    pub fn builder() -> CohereRerankerBuilder {
        CohereRerankerBuilder::default()
    }

    /// A reranker configured from the environment: the key from [`API_KEY_ENV`] (else
    /// [`ALT_API_KEY_ENV`]), the base URL from [`BASE_URL_ENV`] and the model from
    /// [`RERANK_MODEL_ENV`] when set.
    ///
    /// # Errors
    /// As [`CohereRerankerBuilder::build`]: no key is an [`Error::InvalidConfig`] naming the
    /// variables.
    pub fn from_env() -> Result<Self> {
        Self::builder()
            .apply_env(&|name| std::env::var(name).ok())
            .build()
    }

    /// The rerank model.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// One request for `documents` (a slice of the caller's, starting at `offset`).
    async fn rerank_batch(
        &self,
        query: &str,
        documents: &[Document],
        offset: usize,
        top_n: usize,
    ) -> Result<Vec<RerankResult>> {
        let top_n = top_n.min(documents.len());
        let body = RerankRequest {
            model: &self.model,
            query,
            documents: documents.iter().map(|d| d.content.as_str()).collect(),
            top_n,
            max_tokens_per_doc: self.max_tokens_per_doc,
        };
        let body = Bytes::from(
            serde_json::to_vec(&body)
                .map_err(|e| Error::serialization("could not encode the Cohere request", e))?,
        );
        let response: RerankResponse = self
            .transport
            .json(|| {
                self.transport
                    .client
                    .post(&self.url)
                    .headers(self.headers.clone())
                    .body(body.clone())
            })
            .await
            .map_err(|e| redact(e, self.api_key.as_ref()))?;
        tracing::debug!(
            id = response.id.as_deref().unwrap_or(""),
            search_units = response
                .meta
                .as_ref()
                .and_then(|m| m.billed_units.as_ref())
                .and_then(|b| b.search_units),
            results = response.results.len(),
            "cohere rerank"
        );
        check_results(response, documents.len(), offset)
    }
}

/// The results of one response, checked: every index names a document of the request and
/// none twice; indexes shifted by `offset`. (A server that ignores `top_n` and answers more
/// is cut to `top_n` by the caller.)
fn check_results(
    response: RerankResponse,
    count: usize,
    offset: usize,
) -> Result<Vec<RerankResult>> {
    let malformed =
        |message: String| provider_error(PROVIDER, ProviderErrorKind::MalformedResponse, message);
    let mut seen = HashSet::with_capacity(response.results.len());
    let mut out = Vec::with_capacity(response.results.len());
    for item in response.results {
        if item.index >= count {
            return Err(malformed(format!(
                "the response names document {} of {count}",
                item.index
            )));
        }
        if !seen.insert(item.index) {
            return Err(malformed(format!(
                "the response names document {} twice",
                item.index
            )));
        }
        out.push(RerankResult::new(
            offset + item.index,
            item.relevance_score as f32,
        ));
    }
    Ok(out)
}

#[async_trait]
impl Reranker for CohereReranker {
    async fn rerank(
        &self,
        query: &str,
        documents: &[Document],
        top_n: usize,
    ) -> Result<Vec<RerankResult>> {
        if documents.is_empty() || top_n == 0 {
            return Ok(Vec::new());
        }
        let mut results = Vec::new();
        for (batch, chunk) in documents.chunks(self.max_documents_per_request).enumerate() {
            let offset = batch * self.max_documents_per_request;
            results.extend(self.rerank_batch(query, chunk, offset, top_n).await?);
        }
        sort_rerank_results(&mut results);
        results.truncate(top_n);
        Ok(results)
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
    fn environment_and_key_rules() {
        let r = CohereReranker::builder()
            .apply_env(&env(&[
                (API_KEY_ENV, ""),
                (ALT_API_KEY_ENV, " co-secret-key-123 "),
                (BASE_URL_ENV, "http://127.0.0.1:8080/"),
                (RERANK_MODEL_ENV, "rerank-english-v3.0"),
            ]))
            .build()
            .unwrap();
        assert_eq!(r.url, "http://127.0.0.1:8080/v2/rerank");
        assert_eq!(r.model(), "rerank-english-v3.0");
        assert!(r.headers.get(AUTHORIZATION).unwrap().is_sensitive());
        assert_eq!(
            r.headers.get(AUTHORIZATION).unwrap(),
            "Bearer co-secret-key-123",
            "the key from the environment is trimmed"
        );
        assert!(!format!("{r:?}").contains("co-secret"), "{r:?}");
        for bad in [
            "http://user:hunter2@127.0.0.1:8080",
            "http://127.0.0.1:8080/?q=1",
            "http://127.0.0.1:8080/#x",
            "ftp://127.0.0.1/",
        ] {
            let e = CohereReranker::builder().base_url(bad).build().unwrap_err();
            assert!(matches!(e, Error::InvalidConfig(_)), "{bad}: {e:?}");
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }

        let r = CohereReranker::builder()
            .apply_env(&env(&[(API_KEY_ENV, "first"), (ALT_API_KEY_ENV, "second")]))
            .build()
            .unwrap();
        assert_eq!(r.api_key.unwrap().expose_secret(), "first");

        let e = CohereReranker::builder().build().unwrap_err();
        assert!(matches!(e, Error::InvalidConfig(_)), "{e:?}");
        assert!(e.to_string().contains(API_KEY_ENV) && e.to_string().contains(ALT_API_KEY_ENV));
        // A compatible server elsewhere may need no key.
        let r = CohereReranker::builder()
            .base_url("http://localhost:7997")
            .build()
            .unwrap();
        assert!(r.headers.get(AUTHORIZATION).is_none());
        for bad in ["not a url", "ftp://x", "mailto:a@b"] {
            assert!(
                CohereReranker::builder()
                    .api_key("k")
                    .base_url(bad)
                    .build()
                    .is_err(),
                "{bad}"
            );
        }
        assert!(CohereReranker::builder()
            .api_key("k")
            .model(" ")
            .build()
            .is_err());
        assert!(CohereReranker::builder()
            .api_key("k")
            .max_documents_per_request(0)
            .build()
            .is_err());
        let e = CohereReranker::builder()
            .api_key("co-bad\nkey-0123456")
            .build()
            .unwrap_err();
        assert!(!e.to_string().contains("co-bad"), "{e}");
    }
}
