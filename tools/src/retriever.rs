//! A tool that searches any [`Retriever`].
//!
//! [`RetrieverTool`] lets a model look things up: it takes `{ "query": "…" }`, runs the
//! retriever and returns the documents as a **JSON array** of objects, most relevant first:
//!
//! ```json
//! [
//!   { "content": "…", "source": "handbook.md" },
//!   { "content": "…(cut)", "source": null, "truncated": true }
//! ]
//! ```
//!
//! `source` is the document's `source` metadata (or `null`). A cap on the number of
//! documents ([`RetrieverTool::with_max_documents`]) and on the total characters of content
//! ([`RetrieverTool::with_max_chars`], default 16,000) keep the result from flooding the
//! model's context; a document cut by the character cap carries `"truncated": true` and
//! no later documents follow it.
//!
//! ```
//! use std::sync::Arc;
//! use catena_core::{Document, Retriever, Tool, TypedTool};
//! use catena_tools::RetrieverTool;
//!
//! struct Handbook;
//!
//! #[async_trait::async_trait]
//! impl Retriever for Handbook {
//!     async fn retrieve(&self, _query: &str) -> catena_core::Result<Vec<Document>> {
//!         Ok(vec![Document::new("Holidays: 25 days.").with_metadata("source", "hr.md")])
//!     }
//! }
//!
//! # futures::executor::block_on(async {
//! let tool = RetrieverTool::new("search_handbook", "Searches the staff handbook.", Arc::new(Handbook))
//!     .with_max_documents(3)
//!     .into_tool();
//! let out = tool.call(serde_json::json!({"query": "holidays"})).await.unwrap();
//! assert_eq!(out.content[0]["source"], "hr.md");
//! # });
//! ```

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use catena_core::{Retriever, ToolError, TypedTool};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The default cap on the total characters of content returned.
pub(crate) const DEFAULT_MAX_CHARS: usize = 16_000;

/// The arguments of [`RetrieverTool`].
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct RetrieverArgs {
    /// What to search for, in natural language.
    pub query: String,
}

/// One document as the model sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RetrievedDocument {
    /// The text (possibly cut, see `truncated`).
    pub content: String,
    /// Where it came from: the document's `source` metadata.
    pub source: Option<String>,
    /// Whether `content` was cut by the character cap.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

/// Offers a [`Retriever`] to a model as a tool.
#[derive(Clone)]
pub struct RetrieverTool {
    name: String,
    description: String,
    retriever: Arc<dyn Retriever>,
    max_documents: Option<usize>,
    max_chars: usize,
}

impl fmt::Debug for RetrieverTool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetrieverTool")
            .field("name", &self.name)
            .field("max_documents", &self.max_documents)
            .field("max_chars", &self.max_chars)
            .finish_non_exhaustive()
    }
}

impl RetrieverTool {
    /// A tool called `name` over `retriever`. Describe what the collection holds, so the
    /// model knows when to search it.
    pub fn new(
        name: impl Into<String>,
        description: impl Into<String>,
        retriever: Arc<dyn Retriever>,
    ) -> Self {
        RetrieverTool {
            name: name.into(),
            description: description.into(),
            retriever,
            max_documents: None,
            max_chars: DEFAULT_MAX_CHARS,
        }
    }

    /// Returns at most `n` documents (by default, all the retriever returns).
    #[must_use]
    pub fn with_max_documents(mut self, n: usize) -> Self {
        self.max_documents = Some(n);
        self
    }

    /// Caps the total characters of content returned (default [`DEFAULT_MAX_CHARS`]).
    #[must_use]
    pub fn with_max_chars(mut self, n: usize) -> Self {
        self.max_chars = n;
        self
    }

    /// Runs the retriever and applies the caps.
    ///
    /// # Errors
    /// [`ToolError::InvalidArguments`] for an empty query; [`ToolError::Execution`] when
    /// the retriever fails.
    pub async fn search(&self, query: &str) -> Result<Vec<RetrievedDocument>, ToolError> {
        if query.trim().is_empty() {
            return Err(ToolError::invalid_arguments("query must not be empty"));
        }
        let docs = self
            .retriever
            .retrieve(query)
            .await
            .map_err(|e| ToolError::execution(format!("retrieval failed: {e}")))?;
        let limit = self.max_documents.unwrap_or(usize::MAX);
        let mut budget = self.max_chars;
        let mut out = Vec::new();
        for doc in docs.into_iter().take(limit) {
            if budget == 0 {
                break;
            }
            let source = doc.source().map(str::to_owned);
            let len = doc.content.chars().count();
            if len <= budget {
                budget -= len;
                out.push(RetrievedDocument {
                    content: doc.content,
                    source,
                    truncated: false,
                });
            } else {
                let content: String = doc.content.chars().take(budget).collect();
                out.push(RetrievedDocument {
                    content,
                    source,
                    truncated: true,
                });
                break;
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl TypedTool for RetrieverTool {
    type Args = RetrieverArgs;
    type Output = Vec<RetrievedDocument>;

    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    async fn call(&self, args: RetrieverArgs) -> Result<Vec<RetrievedDocument>, ToolError> {
        self.search(&args.query).await
    }
}
