//! The `web_fetch` tool: GET a page through the SSRF guard and return its readable text.
//!
//! [`WebFetch`] takes `{ "url": "…" }` and returns
//!
//! ```json
//! { "url": "…", "final_url": "…", "status": 200, "title": "…", "text": "…", "truncated": false }
//! ```
//!
//! - `text/html` and `application/xhtml+xml` are converted to readable text with
//!   [`catena_core::loader::html_to_text`] (scripts, styles and the head are dropped);
//!   `title` is the page's `<title>`, when it has one.
//! - Other textual types (`text/*`, JSON, XML, JavaScript) pass through as they are.
//! - Without a `Content-Type`, a body that starts with `<` is read as HTML and other UTF-8
//!   as text.
//! - Anything else (images, PDF, archives, …) is refused with [`ToolError::Execution`]
//!   naming the type.
//! - The body is read up to the client's byte cap (default 2 MiB) and the text cut to
//!   [`WebFetch::with_max_chars`] characters (default 20,000); either sets
//!   `truncated: true`. Bytes are decoded as UTF-8 (the charset parameter is ignored;
//!   invalid sequences become U+FFFD).
//! - Non-2xx responses are returned, not errors: `status` says what happened and `text`
//!   holds the error page.
//!
//! ```no_run
//! use catena_core::{Tool, TypedTool};
//! use catena_tools::{WebClient, WebFetch};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let fetch = WebFetch::new(WebClient::new()?).with_max_chars(5_000).into_tool();
//! let page = fetch.call(serde_json::json!({"url": "https://example.com/"})).await?;
//! println!("{}: {}", page.content["title"], page.content["text"]);
//! # Ok(())
//! # }
//! ```

use std::sync::OnceLock;

use async_trait::async_trait;
use catena_core::loader::html_to_text;
use catena_core::{ToolError, TypedTool};
use regex::Regex;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::client::{WebClient, WebRequest};
use super::{bytes_to_text, cap_chars, DEFAULT_MAX_CHARS};

/// The arguments of [`WebFetch`].
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct WebFetchArgs {
    /// The http or https URL of the page to read.
    pub url: String,
}

/// What [`WebFetch`] returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WebFetchOutput {
    /// The URL asked for.
    pub url: String,
    /// The URL after redirects.
    pub final_url: String,
    /// The HTTP status code.
    pub status: u16,
    /// The page's `<title>`, for HTML.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The readable text.
    pub text: String,
    /// Whether the body hit the byte cap or the text the character cap.
    pub truncated: bool,
}

/// Reads a web page as text. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct WebFetch {
    client: WebClient,
    max_chars: usize,
}

impl WebFetch {
    /// A fetch tool sending through `client`.
    pub fn new(client: WebClient) -> Self {
        WebFetch {
            client,
            max_chars: DEFAULT_MAX_CHARS,
        }
    }

    /// Caps the text returned, in characters (default 20,000).
    #[must_use]
    pub fn with_max_chars(mut self, n: usize) -> Self {
        self.max_chars = n;
        self
    }

    /// Fetches `url` (what the tool does, callable without JSON).
    ///
    /// # Errors
    /// [`ToolError::InvalidArguments`] for a refused URL, [`ToolError::Execution`] for a
    /// refusal later on (DNS, redirect), a transport failure, a timeout or an unsupported
    /// content type.
    pub async fn fetch(&self, url: &str) -> Result<WebFetchOutput, ToolError> {
        let response = self
            .client
            .send(WebRequest::get(url).header(
                "accept",
                "text/html,application/xhtml+xml,text/plain;q=0.9,*/*;q=0.5",
            ))
            .await?;
        let media = response.media_type();
        let raw = bytes_to_text(&response.body, response.truncated);
        let is_html = match media.as_deref() {
            Some("text/html" | "application/xhtml+xml") => true,
            Some(m) if is_textual(m) => false,
            Some(m) => {
                return Err(ToolError::execution(format!(
                    "unsupported content type `{m}`: web_fetch reads HTML and text only"
                )))
            }
            None => {
                if raw.trim_start().starts_with('<') {
                    true
                } else if std::str::from_utf8(&response.body).is_ok() || response.truncated {
                    false
                } else {
                    return Err(ToolError::execution(
                        "the response has no content type and is not text",
                    ));
                }
            }
        };
        let (title, mut text) = if is_html {
            (page_title(&raw), html_to_text(&raw))
        } else {
            (None, raw)
        };
        let cut = cap_chars(&mut text, self.max_chars);
        Ok(WebFetchOutput {
            url: url.to_owned(),
            final_url: response.final_url,
            status: response.status,
            title,
            text,
            truncated: response.truncated || cut,
        })
    }
}

fn is_textual(media: &str) -> bool {
    media.starts_with("text/")
        || matches!(
            media,
            "application/json"
                | "application/xml"
                | "application/javascript"
                | "application/ecmascript"
                | "application/x-javascript"
        )
        || media.ends_with("+json")
        || media.ends_with("+xml")
}

/// The text of the first `<title>`, if any.
pub(crate) fn page_title(html: &str) -> Option<String> {
    static TITLE: OnceLock<Option<Regex>> = OnceLock::new();
    let re = TITLE
        .get_or_init(|| Regex::new(r"(?is)<title\b[^>]*>(.*?)</title\s*>").ok())
        .as_ref()?;
    let inner = re.captures(html)?.get(1)?.as_str();
    let title = html_to_text(inner).trim().to_owned();
    (!title.is_empty()).then_some(title)
}

#[async_trait]
impl TypedTool for WebFetch {
    type Args = WebFetchArgs;
    type Output = WebFetchOutput;

    fn name(&self) -> &str {
        "web_fetch"
    }

    fn description(&self) -> &str {
        "Fetches a public web page (http or https) and returns its readable text and title. \
         Internal and private addresses are refused."
    }

    async fn call(&self, args: WebFetchArgs) -> Result<WebFetchOutput, ToolError> {
        self.fetch(&args.url).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_and_types() {
        assert_eq!(
            page_title("<html><head><TITLE> Caf&eacute; </TITLE></head></html>").as_deref(),
            Some("Café")
        );
        assert_eq!(page_title("<p>no title</p>"), None);
        assert!(is_textual("text/markdown"));
        assert!(is_textual("application/ld+json"));
        assert!(!is_textual("image/png"));
        assert!(!is_textual("application/pdf"));
    }
}
