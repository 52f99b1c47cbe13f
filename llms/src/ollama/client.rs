//! Configuration shared by the Ollama chat model and embedder.

use catena_core::{Error, ProviderErrorKind, Result};
use serde_json::Value;

use crate::http::{HttpOptions, Transport};

/// The environment variable naming the Ollama server (`host:port` or a URL).
pub const OLLAMA_HOST_ENV: &str = "OLLAMA_HOST";
/// The environment variable naming the chat model.
pub const OLLAMA_MODEL_ENV: &str = "OLLAMA_MODEL";
/// The environment variable naming the embedding model.
pub const OLLAMA_EMBED_MODEL_ENV: &str = "OLLAMA_EMBED_MODEL";
/// Where Ollama listens by default.
pub const DEFAULT_HOST: &str = "http://127.0.0.1:11434";

/// Normalises `OLLAMA_HOST` forms (`0.0.0.0`, `host:port`, `http://host`, `https://host:port/`)
/// into a base URL, as the Ollama CLI does: scheme defaults to `http`, port to 11434, and
/// the unspecified address `0.0.0.0` means the local machine.
pub(crate) fn normalize_host(raw: &str) -> Result<String> {
    let raw = raw.trim().trim_end_matches('/');
    if raw.is_empty() {
        return Ok(DEFAULT_HOST.to_owned());
    }
    // As Ollama's `envconfig.Host`: no scheme means http on 11434; an explicit scheme
    // without a port means that scheme's own port (80 or 443).
    let explicit_scheme = raw.contains("://");
    let (scheme, rest) = match raw.split_once("://") {
        Some((s, r)) if s == "http" || s == "https" => (s, r),
        Some((s, _)) => {
            return Err(Error::invalid_config(format!(
                "unsupported scheme `{s}` in the Ollama host"
            )))
        }
        None => ("http", raw),
    };
    let (hostport, path) = match rest.split_once('/') {
        Some((h, p)) => (h, format!("/{p}")),
        None => (rest, String::new()),
    };
    let has_port = match hostport.rsplit_once(':') {
        // `[::1]:11434` has a port; `[::1]` and bare `::1` do not.
        Some((h, p)) => {
            !p.is_empty()
                && p.chars().all(|c| c.is_ascii_digit())
                && (!h.contains(':') || h.ends_with(']'))
        }
        None => false,
    };
    let hostport = hostport.replace("0.0.0.0", "127.0.0.1");
    let default_port = match (explicit_scheme, scheme) {
        (false, _) => 11434,
        (true, "https") => 443,
        (true, _) => 80,
    };
    let hostport = if has_port {
        hostport
    } else {
        format!("{hostport}:{default_port}")
    };
    Ok(format!("{scheme}://{hostport}{path}"))
}

/// Ollama's error bodies are `{"error": "message"}`.
pub(crate) fn error_hook(status: u16, body: &Value) -> (Option<ProviderErrorKind>, Option<String>) {
    let message = body.get("error").and_then(Value::as_str).map(str::to_owned);
    let lower = message.as_deref().unwrap_or("").to_lowercase();
    let kind = if status == 404 || (lower.contains("model") && lower.contains("not found")) {
        Some(ProviderErrorKind::ModelNotFound)
    } else if lower.contains("context length") || lower.contains("exceeds the context") {
        Some(ProviderErrorKind::ContextLengthExceeded)
    } else {
        None
    };
    (kind, message)
}

/// What both Ollama clients need.
#[derive(Debug, Clone)]
pub(crate) struct OllamaClient {
    pub(crate) base_url: String,
    pub(crate) transport: Transport,
    pub(crate) keep_alive: Option<String>,
}

impl OllamaClient {
    pub(crate) fn new(host: &str, http: HttpOptions, keep_alive: Option<String>) -> Result<Self> {
        Ok(OllamaClient {
            base_url: normalize_host(host)?,
            transport: Transport::new("ollama", http, |status, body| {
                error_hook(status, body).into()
            })?,
            keep_alive,
        })
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }
}

pub(crate) fn host_from_env() -> String {
    std::env::var(OLLAMA_HOST_ENV).unwrap_or_else(|_| DEFAULT_HOST.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_forms() {
        let n = |s: &str| normalize_host(s).unwrap();
        assert_eq!(n(""), "http://127.0.0.1:11434");
        assert_eq!(n("0.0.0.0"), "http://127.0.0.1:11434");
        assert_eq!(n("example.com:8080"), "http://example.com:8080");
        assert_eq!(
            n("https://ollama.example.com"),
            "https://ollama.example.com:443"
        );
        assert_eq!(n("http://10.0.0.5/"), "http://10.0.0.5:80");
        assert_eq!(n("10.0.0.5"), "http://10.0.0.5:11434");
        assert_eq!(n("http://proxy:9000/ollama"), "http://proxy:9000/ollama");
        assert_eq!(n("[::1]:5000"), "http://[::1]:5000");
        assert!(normalize_host("ftp://x").is_err());
    }
}
