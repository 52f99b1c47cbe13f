//! The `web_search` tool: DuckDuckGo's HTML results page, parsed into `{title, url, snippet}`.
//!
//! [`WebSearch`] takes `{ "query": "…", "max_results": 5? }` and POSTs the query to
//! `https://html.duckduckgo.com/html/` as DuckDuckGo's own HTML form does (`q=…`,
//! form-encoded). The base URL is configurable ([`WebSearch::with_base_url`]), and the
//! request goes through the same guarded [`WebClient`] as the other web tools, so pointing it
//! at an internal host needs an allow-list entry.
//!
//! Results are read with [`parse_results`]: each `result__a` link gives the title and the
//! URL (DuckDuckGo's `//duckduckgo.com/l/?uddg=<encoded url>` redirect is decoded; ads,
//! which go through `y.js`, are skipped), and the following `result__snippet` gives the
//! snippet. `max_results` defaults to 5 and is capped by [`WebSearch::with_max_results`]
//! (default 20). An empty page gives an empty list; a non-2xx status is an error.
//!
//! ```
//! use catena_tools::parse_results;
//!
//! let html = r#"<div class="result"><h2 class="result__title">
//!   <a rel="nofollow" class="result__a" href="//duckduckgo.com/l/?uddg=https%3A%2F%2Fwww.rust%2Dlang.org%2F&amp;rut=x">Rust &amp; you</a></h2>
//!   <a class="result__snippet" href="//duckduckgo.com/l/?uddg=https%3A%2F%2Fwww.rust%2Dlang.org%2F">A <b>language</b>.</a></div>"#;
//! let results = parse_results(html, 5);
//! assert_eq!(results[0].title, "Rust & you");
//! assert_eq!(results[0].url, "https://www.rust-lang.org/");
//! assert_eq!(results[0].snippet, "A language.");
//! ```

use std::sync::OnceLock;

use async_trait::async_trait;
use catena_core::loader::html_to_text;
use catena_core::{ToolError, TypedTool};
use regex::Regex;
use reqwest::Url;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::bytes_to_text;
use super::client::{WebClient, WebRequest};

/// DuckDuckGo's HTML endpoint.
pub(crate) const DEFAULT_BASE_URL: &str = "https://html.duckduckgo.com/html/";
/// Results returned when the model does not say.
pub(crate) const DEFAULT_RESULTS: usize = 5;
/// The longest query accepted, in characters.
pub(crate) const MAX_QUERY_CHARS: usize = 500;

/// The arguments of [`WebSearch`].
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct WebSearchArgs {
    /// What to search the web for.
    pub query: String,
    /// How many results to return (default 5).
    #[serde(default)]
    pub max_results: Option<usize>,
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SearchResult {
    /// The page title.
    pub title: String,
    /// The page URL.
    pub url: String,
    /// The text DuckDuckGo shows under the title (may be empty).
    pub snippet: String,
}

/// Searches the web with DuckDuckGo. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct WebSearch {
    client: WebClient,
    base_url: String,
    max_results: usize,
}

impl WebSearch {
    /// A search tool sending through `client` to DuckDuckGo.
    pub fn new(client: WebClient) -> Self {
        WebSearch {
            client,
            base_url: DEFAULT_BASE_URL.to_owned(),
            max_results: 20,
        }
    }

    /// Sends queries to `url` instead of DuckDuckGo (a recorded-page server in tests).
    #[must_use]
    pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// The most results a model may ask for (default 20).
    #[must_use]
    pub fn with_max_results(mut self, n: usize) -> Self {
        self.max_results = n;
        self
    }

    /// Runs a search (what the tool does).
    ///
    /// # Errors
    /// [`ToolError::InvalidArguments`] for an empty or over-long query;
    /// [`ToolError::Execution`] when the request is refused or fails, or the status is not
    /// 2xx.
    pub async fn search(
        &self,
        query: &str,
        max_results: Option<usize>,
    ) -> Result<Vec<SearchResult>, ToolError> {
        let query = query.trim();
        if query.is_empty() {
            return Err(ToolError::invalid_arguments("the query is empty"));
        }
        if query.chars().count() > MAX_QUERY_CHARS {
            return Err(ToolError::invalid_arguments(format!(
                "the query is longer than {MAX_QUERY_CHARS} characters"
            )));
        }
        let n = max_results.unwrap_or(DEFAULT_RESULTS).min(self.max_results);
        let request = WebRequest::new("POST", self.base_url.clone())
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "text/html")
            .body(form_body(query).into_bytes());
        // The base URL is configuration, not the model's: every failure is an execution error.
        let response = self
            .client
            .send(request)
            .await
            .map_err(|e| ToolError::execution(e.to_string()))?;
        if !(200..300).contains(&response.status) {
            return Err(ToolError::execution(format!(
                "the search engine answered HTTP {}",
                response.status
            )));
        }
        let html = bytes_to_text(&response.body, response.truncated);
        Ok(parse_results(&html, n))
    }
}

/// `q=<query>` form-encoded.
fn form_body(query: &str) -> String {
    match Url::parse("http://form.invalid/") {
        Ok(mut url) => {
            url.query_pairs_mut().append_pair("q", query);
            url.query().unwrap_or_default().to_owned()
        }
        Err(_) => String::new(),
    }
}

struct Patterns {
    anchor: Regex,
    href: Regex,
    class: Regex,
    snippet: Regex,
}

fn patterns() -> Option<&'static Patterns> {
    static PATTERNS: OnceLock<Option<Patterns>> = OnceLock::new();
    PATTERNS
        .get_or_init(|| {
            Some(Patterns {
                anchor: Regex::new(r"(?is)<a\s([^>]*)>(.*?)</a\s*>").ok()?,
                href: Regex::new(r#"(?is)\bhref\s*=\s*(?:"([^"]*)"|'([^']*)')"#).ok()?,
                class: Regex::new(r#"(?is)\bclass\s*=\s*(?:"([^"]*)"|'([^']*)')"#).ok()?,
                snippet: Regex::new(
                    r#"(?is)<(?:a|div|td|span)\s[^>]*class\s*=\s*["'][^"']*\bresult__snippet\b[^"']*["'][^>]*>(.*?)</(?:a|div|td|span)\s*>"#,
                )
                .ok()?,
            })
        })
        .as_ref()
}

fn attr<'h>(re: &Regex, attrs: &'h str) -> Option<&'h str> {
    let c = re.captures(attrs)?;
    c.get(1).or_else(|| c.get(2)).map(|m| m.as_str())
}

/// The target of a result link: DuckDuckGo's `/l/?uddg=` redirect decoded, direct http(s)
/// links as they are; ads and anything else `None`.
fn result_url(href: &str) -> Option<String> {
    let href = html_to_text(href);
    let href = href.trim();
    let absolute = if let Some(rest) = href.strip_prefix("//") {
        format!("https://{rest}")
    } else if href.starts_with('/') {
        format!("https://duckduckgo.com{href}")
    } else {
        href.to_owned()
    };
    let url = Url::parse(&absolute).ok()?;
    let host = url.host_str().unwrap_or_default();
    let target = if host == "duckduckgo.com" || host.ends_with(".duckduckgo.com") {
        if url.path() != "/l/" {
            return None; // ads (`/y.js`) and internal links
        }
        let (_, uddg) = url.query_pairs().find(|(k, _)| k == "uddg")?;
        Url::parse(&uddg).ok()?
    } else {
        url
    };
    matches!(target.scheme(), "http" | "https").then(|| target.to_string())
}

/// Parses a DuckDuckGo HTML results page into at most `max` results, in page order. Never
/// fails: markup it does not recognise gives fewer results.
pub fn parse_results(html: &str, max: usize) -> Vec<SearchResult> {
    let Some(p) = patterns() else {
        return Vec::new();
    };
    // (start, end, href, title html) of every result title link.
    let links: Vec<(usize, usize, &str, &str)> = p
        .anchor
        .captures_iter(html)
        .filter_map(|c| {
            let whole = c.get(0)?;
            let attrs = c.get(1)?.as_str();
            let is_title = attr(&p.class, attrs)?
                .split_ascii_whitespace()
                .any(|cls| cls == "result__a");
            if !is_title {
                return None;
            }
            Some((
                whole.start(),
                whole.end(),
                attr(&p.href, attrs)?,
                c.get(2)?.as_str(),
            ))
        })
        .collect();
    let mut results = Vec::new();
    for (i, &(_, end, href, title_html)) in links.iter().enumerate() {
        if results.len() >= max {
            break;
        }
        let Some(url) = result_url(href) else {
            continue;
        };
        let region_end = links.get(i + 1).map_or(html.len(), |next| next.0);
        let snippet = html
            .get(end..region_end)
            .and_then(|region| p.snippet.captures(region))
            .and_then(|c| c.get(1))
            .map(|m| html_to_text(m.as_str()).trim().to_owned())
            .unwrap_or_default();
        let title = html_to_text(title_html).trim().to_owned();
        results.push(SearchResult {
            title,
            url,
            snippet,
        });
    }
    results
}

#[async_trait]
impl TypedTool for WebSearch {
    type Args = WebSearchArgs;
    type Output = Vec<SearchResult>;

    fn name(&self) -> &str {
        "web_search"
    }

    fn description(&self) -> &str {
        "Searches the web (DuckDuckGo) and returns results with title, url and snippet."
    }

    async fn call(&self, args: WebSearchArgs) -> Result<Vec<SearchResult>, ToolError> {
        self.search(&args.query, args.max_results).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            result_url(
                "//duckduckgo.com/l/?uddg=https%3A%2F%2Fa.example%2Fx%3Fy%3D1%26z%3D2&amp;rut=abc"
            )
            .as_deref(),
            Some("https://a.example/x?y=1&z=2")
        );
        assert_eq!(result_url("https://duckduckgo.com/y.js?ad_domain=x"), None);
        assert_eq!(
            result_url("//duckduckgo.com/l/?uddg=javascript%3Aalert(1)"),
            None
        );
        assert_eq!(
            result_url("https://b.example/").as_deref(),
            Some("https://b.example/")
        );
        assert_eq!(form_body("rust & go"), "q=rust+%26+go");
    }
}
