//! Documents: a piece of text with metadata, the unit that loaders produce, splitters cut,
//! and vector stores index.
//!
//! ```
//! use catena_core::{Document, DocumentId};
//! use serde_json::json;
//!
//! let doc = Document::new("Rust has no garbage collector.")
//!     .with_id("faq-1")
//!     .with_metadata("source", json!("faq.md"));
//! assert_eq!(doc.id, Some(DocumentId::from("faq-1")));
//! assert_eq!(doc.metadata["source"], "faq.md");
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Free-form document metadata: a JSON object.
pub type Metadata = serde_json::Map<String, Value>;

/// The identifier of a document in a vector store.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DocumentId(String);

/// The namespace of [`DocumentId::derived`] ids (a fixed, random UUID).
const DERIVED_ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6b1e_3c2a_9f4d_4e8b_a5c7_1d20_8e3f_5a91);

impl DocumentId {
    /// An id from any string.
    pub fn new(id: impl Into<String>) -> Self {
        DocumentId(id.into())
    }

    /// The deterministic id of a document: a UUIDv5 of its content and source. Ingesting the
    /// same text from the same source twice gives the same id, so the second upsert changes
    /// nothing instead of duplicating it.
    ///
    /// ```
    /// use catena_core::DocumentId;
    /// let a = DocumentId::derived("Rust is fast.", Some("faq.md"));
    /// assert_eq!(a, DocumentId::derived("Rust is fast.", Some("faq.md")));
    /// assert_ne!(a, DocumentId::derived("Rust is fast.", Some("other.md")));
    /// assert_eq!(a.as_str().len(), 36);
    /// ```
    pub fn derived(content: &str, source: Option<&str>) -> Self {
        // Length-prefix the source so ("ab", "c") and ("a", "bc") differ.
        let source = source.unwrap_or("");
        let mut name = Vec::with_capacity(content.len() + source.len() + 24);
        name.extend_from_slice(source.len().to_string().as_bytes());
        name.push(b':');
        name.extend_from_slice(source.as_bytes());
        name.extend_from_slice(content.as_bytes());
        DocumentId(uuid::Uuid::new_v5(&DERIVED_ID_NAMESPACE, &name).to_string())
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as an owned string.
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl fmt::Display for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for DocumentId {
    fn from(s: &str) -> Self {
        DocumentId(s.to_owned())
    }
}

impl From<String> for DocumentId {
    fn from(s: String) -> Self {
        DocumentId(s)
    }
}

impl AsRef<str> for DocumentId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A piece of text with metadata.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Document {
    /// The document's id, when it has one (stores assign one on upsert otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<DocumentId>,
    /// The text.
    pub content: String,
    /// Metadata: `source`, page, headers, anything filterable.
    #[serde(default)]
    pub metadata: Metadata,
}

impl Document {
    /// A document with `content`, no id and no metadata.
    pub fn new(content: impl Into<String>) -> Self {
        Document {
            id: None,
            content: content.into(),
            metadata: Metadata::new(),
        }
    }

    /// Sets the id.
    #[must_use]
    pub fn with_id(mut self, id: impl Into<DocumentId>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets one metadata entry.
    #[must_use]
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Replaces all metadata.
    #[must_use]
    pub fn with_metadata_map(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }

    /// The `source` metadata entry, when it is a string.
    pub fn source(&self) -> Option<&str> {
        self.metadata.get("source").and_then(Value::as_str)
    }

    /// The document's id, or its [derived](DocumentId::derived) id when it has none.
    pub fn id_or_derived(&self) -> DocumentId {
        self.id
            .clone()
            .unwrap_or_else(|| DocumentId::derived(&self.content, self.source()))
    }
}
