//! JSON and JSON Lines files.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{read_text, source_of, DocumentLoader, LoadError, RecordLocation};
use crate::{Document, Metadata};

/// Loads records of a JSON file as documents.
///
/// The records are selected by an RFC 6901 JSON pointer (default: the whole file; a
/// missing leading `/` is added): each element when it selects an array, else the one value.
/// With a [`content_key`](Self::content_key), each record must be an object: that field is
/// the content (a string as is, another non-null value as JSON text) and the other fields
/// go into metadata. Without one, a string record is the content and any other record is
/// serialised as JSON. Metadata also has `source` and `index` (the record's 0-based
/// position), which win over record fields of the same name.
///
/// ```no_run
/// use catena_core::loader::{DocumentLoader, JsonLoader};
///
/// // {"data": {"posts": [{"body": "...", "author": "ada"}, ...]}}
/// let docs = JsonLoader::new("export.json")
///     .pointer("/data/posts")
///     .content_key("body")
///     .load()?;
/// assert_eq!(docs[0].metadata["author"], "ada");
/// # Ok::<(), catena_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonLoader {
    path: PathBuf,
    pointer: String,
    content_key: Option<String>,
}

impl JsonLoader {
    /// A loader for the file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        JsonLoader {
            path: path.into(),
            pointer: String::new(),
            content_key: None,
        }
    }

    /// The JSON pointer to the records, e.g. `/data/items`. Default: `""`, the whole file.
    #[must_use]
    pub fn pointer(mut self, pointer: impl Into<String>) -> Self {
        let pointer = pointer.into();
        self.pointer = if pointer.is_empty() || pointer.starts_with('/') {
            pointer
        } else {
            format!("/{pointer}")
        };
        self
    }

    /// The field holding each record's content. Default: none, the whole record is the
    /// content.
    #[must_use]
    pub fn content_key(mut self, key: impl Into<String>) -> Self {
        self.content_key = Some(key.into());
        self
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl DocumentLoader for JsonLoader {
    fn load(&self) -> crate::Result<Vec<Document>> {
        let text = read_text(&self.path)?;
        let root: Value = serde_json::from_str(&text).map_err(|e| json_error(&self.path, &e, 0))?;
        let selected = root
            .pointer(&self.pointer)
            .ok_or_else(|| LoadError::PointerNotFound {
                path: self.path.clone(),
                pointer: self.pointer.clone(),
            })?;
        let records: Vec<&Value> = match selected {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        let source = source_of(&self.path);
        let mut docs = Vec::with_capacity(records.len());
        for (i, record) in records.into_iter().enumerate() {
            let location = RecordLocation::Index(i);
            let doc = record_document(record, self.content_key.as_deref(), &self.path, location)?
                .with_metadata("source", source.clone())
                .with_metadata("index", i);
            docs.push(doc);
        }
        Ok(docs)
    }
}

/// Loads a JSON Lines file: one JSON value per line, blank lines skipped.
///
/// Each line is a record, as for [`JsonLoader`] (with [`content_key`](Self::content_key)
/// or without). Metadata has `source` and `line` (1-based). A line that is not valid JSON
/// is [`LoadError::InvalidJson`] with its line number.
///
/// ```no_run
/// use catena_core::loader::{DocumentLoader, JsonLinesLoader};
///
/// let docs = JsonLinesLoader::new("chats.jsonl").content_key("text").load()?;
/// # Ok::<(), catena_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonLinesLoader {
    path: PathBuf,
    content_key: Option<String>,
}

impl JsonLinesLoader {
    /// A loader for the file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        JsonLinesLoader {
            path: path.into(),
            content_key: None,
        }
    }

    /// The field holding each record's content. Default: none, the whole record is the
    /// content.
    #[must_use]
    pub fn content_key(mut self, key: impl Into<String>) -> Self {
        self.content_key = Some(key.into());
        self
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl DocumentLoader for JsonLinesLoader {
    fn load(&self) -> crate::Result<Vec<Document>> {
        let text = read_text(&self.path)?;
        let source = source_of(&self.path);
        let mut docs = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let number = i + 1;
            if line.trim().is_empty() {
                continue;
            }
            let record: Value =
                serde_json::from_str(line).map_err(|e| json_error(&self.path, &e, i))?;
            let location = RecordLocation::Line(number);
            let doc = record_document(&record, self.content_key.as_deref(), &self.path, location)?
                .with_metadata("source", source.clone())
                .with_metadata("line", number);
            docs.push(doc);
        }
        Ok(docs)
    }
}

/// A serde error as [`LoadError::InvalidJson`]; `line_offset` is added to serde's line (for
/// JSON Lines, where each line is parsed on its own).
fn json_error(path: &Path, e: &serde_json::Error, line_offset: usize) -> LoadError {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
    LoadError::InvalidJson {
        path: path.to_path_buf(),
        line: e.line() + line_offset,
        column: e.column(),
        message,
    }
}

fn record_document(
    record: &Value,
    content_key: Option<&str>,
    path: &Path,
    location: RecordLocation,
) -> Result<Document, LoadError> {
    let Some(key) = content_key else {
        let content = match record {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        return Ok(Document::new(content));
    };
    let Value::Object(fields) = record else {
        return Err(LoadError::InvalidRecord {
            path: path.to_path_buf(),
            location,
            message: format!("expected an object with a `{key}` field"),
        });
    };
    let content = match fields.get(key) {
        None | Some(Value::Null) => {
            return Err(LoadError::MissingContent {
                path: path.to_path_buf(),
                location,
                key: key.to_owned(),
            })
        }
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let metadata: Metadata = fields
        .iter()
        .filter(|(k, _)| k.as_str() != key)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(Document::new(content).with_metadata_map(metadata))
}
