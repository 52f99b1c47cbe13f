//! Document loaders: read files into [`Document`]s.
//!
//! Every loader implements the synchronous [`DocumentLoader`] trait (plain `std::fs`; core
//! has no async runtime, wrap a call in `spawn_blocking` from async code). Every document
//! carries a `source` metadata entry: the path as given for single-file loaders, the path
//! relative to the root for [`DirectoryLoader`].
//!
//! | loader | one document per | extra metadata |
//! | --- | --- | --- |
//! | [`TextLoader`] | file (strict UTF-8) | |
//! | [`MarkdownLoader`] | file | `title` (first `# ` heading) |
//! | [`JsonLoader`] | record of a JSON array (or the one object) | other fields, `index` |
//! | [`JsonLinesLoader`] | line of a JSON Lines file | other fields, `line` |
//! | [`CsvLoader`] | row | other columns, `row` |
//! | [`HtmlLoader`] | file, as readable text | `title` |
//! | `PdfLoader` (feature `pdf`) | page of a PDF | `page` (1-based), `total_pages`, `title` |
//! | `DocxLoader` (feature `docx`) | Word (.docx) file | `title` (core properties) |
//! | [`DirectoryLoader`] | file under a root, by extension | that of the file's loader |
//!
//! Bad input is a typed [`LoadError`] (converted into [`crate::Error::Load`]), never a
//! panic and never a lossy conversion. No file loader reads more than
//! [`DEFAULT_MAX_FILE_BYTES`] (64 MiB) of a file, and a directory load stops at
//! [`DEFAULT_MAX_TOTAL_BYTES`] (1 GiB; both lower with
//! [`DirectoryLoaderBuilder::max_file_bytes`] and [`DirectoryLoaderBuilder::max_total_bytes`]):
//! past a cap the load fails with [`LoadError::TooLarge`] or [`LoadError::TotalTooLarge`] and
//! returns nothing, never a truncated document. The PDF and DOCX loaders also decompress no
//! more than the file cap ([`LoadError::DecompressedTooLarge`]); the PDF loader's own cap is
//! lower (16 MiB, since a parsed PDF takes many times its size in memory) and it refuses more
//! than 10,000 pages ([`LoadError::TooManyPages`]).
//!
//! ```no_run
//! use catena_core::loader::{DirectoryLoader, DocumentLoader, JsonLinesLoader};
//!
//! # fn run() -> catena_core::Result<()> {
//! let docs = DirectoryLoader::builder("knowledge")
//!     .include("**/*.md")
//!     .exclude("drafts/**")
//!     .build()?
//!     .load()?;
//! for doc in &docs {
//!     println!("{}: {} bytes", doc.source().unwrap_or("?"), doc.content.len());
//! }
//!
//! let faq = JsonLinesLoader::new("faq.jsonl").content_key("answer").load()?;
//! # Ok(()) }
//! ```
//!
//! The HTML converter is also usable on its own:
//!
//! ```
//! use catena_core::loader::html_to_text;
//!
//! let text = html_to_text("<p>Fish &amp; chips</p><script>track()</script><p>&#x2014; &#163;5</p>");
//! assert_eq!(text, "Fish & chips\n\n\u{2014} £5");
//! ```

mod directory;
#[cfg(feature = "docx")]
mod docx;
mod html;
mod json;
#[cfg(feature = "pdf")]
mod pdf;
mod tabular;
mod text;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::Document;

pub use directory::{DirectoryLoader, DirectoryLoaderBuilder, LoadReport, SkipReason, SkippedPath};
#[cfg(feature = "docx")]
#[cfg_attr(docsrs, doc(cfg(feature = "docx")))]
pub use docx::DocxLoader;
pub use html::{html_to_text, HtmlLoader};
pub use json::{JsonLinesLoader, JsonLoader};
#[cfg(feature = "pdf")]
#[cfg_attr(docsrs, doc(cfg(feature = "pdf")))]
pub use pdf::PdfLoader;
pub use tabular::CsvLoader;
pub use text::{MarkdownLoader, TextLoader};

/// Loads documents.
///
/// ```
/// use catena_core::loader::DocumentLoader;
/// use catena_core::{Document, Result};
///
/// /// Documents from memory, e.g. for tests.
/// struct Fixed(Vec<String>);
///
/// impl DocumentLoader for Fixed {
///     fn load(&self) -> Result<Vec<Document>> {
///         Ok(self.0.iter().map(|t| Document::new(t.as_str())).collect())
///     }
/// }
///
/// let loader: Box<dyn DocumentLoader> = Box::new(Fixed(vec!["a".into()]));
/// assert_eq!(loader.load()?.len(), 1);
/// # Ok::<(), catena_core::Error>(())
/// ```
pub trait DocumentLoader: Send + Sync {
    /// Loads all documents.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Load`] with a [`LoadError`] for the built-in loaders; custom
    /// loaders may return any [`crate::Error`].
    fn load(&self) -> crate::Result<Vec<Document>>;
}

impl<L: DocumentLoader + ?Sized> DocumentLoader for &L {
    fn load(&self) -> crate::Result<Vec<Document>> {
        (**self).load()
    }
}

impl<L: DocumentLoader + ?Sized> DocumentLoader for Box<L> {
    fn load(&self) -> crate::Result<Vec<Document>> {
        (**self).load()
    }
}

impl<L: DocumentLoader + ?Sized> DocumentLoader for Arc<L> {
    fn load(&self) -> crate::Result<Vec<Document>> {
        (**self).load()
    }
}

/// Where a record is in its file: an index into a JSON array, or a line of a JSON Lines
/// file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordLocation {
    /// The 0-based index of the record among the selected JSON records.
    Index(usize),
    /// The 1-based line number.
    Line(usize),
}

impl fmt::Display for RecordLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordLocation::Index(i) => write!(f, "record {i}"),
            RecordLocation::Line(l) => write!(f, "line {l}"),
        }
    }
}

/// Why documents could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The path is outside the loader's root, or was refused because it could be: it has a
    /// `..` component, is absolute and outside the root, or resolves outside the root
    /// through a symbolic link.
    #[error("refusing `{}`: it {reason}", path.display())]
    PathEscape {
        /// The requested path.
        path: PathBuf,
        /// Why it was refused.
        reason: &'static str,
    },
    /// Reading a file or a directory failed.
    #[error("cannot read `{}`: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid UTF-8.
    #[error("`{}` is not valid UTF-8 (invalid byte at offset {valid_up_to})", path.display())]
    InvalidUtf8 {
        /// The file.
        path: PathBuf,
        /// The length of the valid prefix: the offset of the first invalid byte.
        valid_up_to: usize,
    },
    /// The file (or one line of it) is not valid JSON.
    #[error("invalid JSON in `{}` at line {line}, column {column}: {message}", path.display())]
    InvalidJson {
        /// The file.
        path: PathBuf,
        /// The 1-based line.
        line: usize,
        /// The 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// The JSON pointer selecting the records matches nothing.
    #[error("JSON pointer `{pointer}` matches nothing in `{}`", path.display())]
    PointerNotFound {
        /// The file.
        path: PathBuf,
        /// The pointer.
        pointer: String,
    },
    /// A record lacks the content field (or it is `null`).
    #[error("{location} of `{}` has no `{key}` field", path.display())]
    MissingContent {
        /// The file.
        path: PathBuf,
        /// Which record.
        location: RecordLocation,
        /// The content field.
        key: String,
    },
    /// A record does not have the expected shape.
    #[error("{location} of `{}`: {message}", path.display())]
    InvalidRecord {
        /// The file.
        path: PathBuf,
        /// Which record.
        location: RecordLocation,
        /// What is wrong.
        message: String,
    },
    /// The CSV file is malformed (unequal row lengths, bad quoting, ...).
    #[error("invalid CSV in `{}`{}: {message}", path.display(), line.map(|l| format!(" at line {l}")).unwrap_or_default())]
    Csv {
        /// The file.
        path: PathBuf,
        /// The 1-based line of the error, when known.
        line: Option<u64>,
        /// What is wrong.
        message: String,
    },
    /// A configured CSV column is not in the header.
    #[error("`{}` has no column `{column}`", path.display())]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The column.
        column: String,
    },
    /// A glob pattern does not parse.
    #[error("invalid glob pattern `{pattern}`: {message}")]
    InvalidPattern {
        /// The pattern.
        pattern: String,
        /// What is wrong.
        message: String,
    },
    /// The path is not a regular file.
    #[error("`{}` is not a file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// The root is not a directory.
    #[error("`{}` is not a directory", path.display())]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// No loader is configured for the file's extension.
    #[error("no loader for `{}` (by extension)", path.display())]
    UnsupportedFile {
        /// The file.
        path: PathBuf,
    },
    /// The path is inside the root but excluded by the loader's patterns or hidden-file
    /// rule.
    #[error("`{}` is excluded by the loader's patterns", path.display())]
    Excluded {
        /// The path, relative to the root.
        path: PathBuf,
    },
    /// The file is larger than the loader reads ([`DEFAULT_MAX_FILE_BYTES`], or the lower
    /// cap of the directory loader's [`max_file_bytes`](DirectoryLoaderBuilder::max_file_bytes)).
    /// Nothing of it was returned.
    #[error("`{}` is larger than {max} bytes{}", path.display(), size.map(|s| format!(" ({s} bytes)")).unwrap_or_default())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size, when the file system says.
        size: Option<u64>,
        /// The cap.
        max: u64,
    },
    /// The file is not a well-formed document of its format (a PDF or DOCX that does not
    /// parse, lacks a required part, ...). Nothing of it was returned.
    #[error("`{}` is not a valid {format} file: {message}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The format expected: `"PDF"`, `"DOCX"`.
        format: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The file is encrypted and cannot be read without a password.
    #[error("`{}` is encrypted: it cannot be read without a password", path.display())]
    Encrypted {
        /// The file.
        path: PathBuf,
    },
    /// Decompressing the file (a compressed PDF stream, a DOCX's zip entries) would produce
    /// more than the loader's cap: a decompression bomb, or a document too large to load.
    /// Decompression stopped at the cap and nothing was returned.
    #[error("`{}` decompresses to more than {max} bytes", path.display())]
    DecompressedTooLarge {
        /// The file.
        path: PathBuf,
        /// The cap.
        max: u64,
    },
    /// The document has more pages than the loader reads (a PDF over `PdfLoader`'s
    /// `max_pages`, 10 000 unless set). Nothing of it was returned.
    #[error("`{}` has more than {max} pages", path.display())]
    TooManyPages {
        /// The file.
        path: PathBuf,
        /// The cap.
        max: usize,
    },
    /// The files of a directory load add up to more than its
    /// [`max_total_bytes`](DirectoryLoaderBuilder::max_total_bytes). Nothing was returned.
    #[error("the files under `{}` add up to more than {max} bytes", root.display())]
    TotalTooLarge {
        /// The directory.
        root: PathBuf,
        /// The cap.
        max: u64,
    },
}

/// The largest file a loader reads unless told otherwise: 64 MiB.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 64 << 20;
/// The most a directory load reads in all unless told otherwise: 1 GiB.
pub const DEFAULT_MAX_TOTAL_BYTES: u64 = 1 << 30;

/// The `source` metadata value for a path given to a single-file loader.
pub(crate) fn source_of(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Reads `path` as UTF-8 (no lossy conversion), dropping a leading byte-order mark; at
/// most [`DEFAULT_MAX_FILE_BYTES`] (a larger file, or one that grows past it while being
/// read, is [`LoadError::TooLarge`]).
pub(crate) fn read_text(path: &Path) -> Result<String, LoadError> {
    read_text_capped(path, DEFAULT_MAX_FILE_BYTES)
}

/// [`read_text`] with the cap `max` bytes.
pub(crate) fn read_text_capped(path: &Path, max: u64) -> Result<String, LoadError> {
    let bytes = read_bytes_capped(path, max)?;
    let mut text = String::from_utf8(bytes).map_err(|e| LoadError::InvalidUtf8 {
        path: path.to_path_buf(),
        valid_up_to: e.utf8_error().valid_up_to(),
    })?;
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    Ok(text)
}

/// Reads at most `max` bytes of `path` (a larger file, or one that grows past the cap
/// while being read, is [`LoadError::TooLarge`]).
pub(crate) fn read_bytes_capped(path: &Path, max: u64) -> Result<Vec<u8>, LoadError> {
    use std::io::Read;
    let io = |source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().ok().map(|m| m.len());
    if size.is_some_and(|s| s > max) {
        return Err(LoadError::TooLarge {
            path: path.to_path_buf(),
            size,
            max,
        });
    }
    // The length may lie (a growing file, a special file): never read more than the cap.
    let mut bytes = Vec::with_capacity(usize::try_from(size.unwrap_or(0).min(max)).unwrap_or(0));
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > max {
        return Err(LoadError::TooLarge {
            path: path.to_path_buf(),
            size,
            max,
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_safe() {
        fn _obj_safe(_: &dyn DocumentLoader) {}
    }

    #[test]
    fn errors_display_paths() {
        let e = LoadError::MissingContent {
            path: "a.json".into(),
            location: RecordLocation::Index(2),
            key: "text".into(),
        };
        assert_eq!(e.to_string(), "record 2 of `a.json` has no `text` field");
        let e = LoadError::Csv {
            path: "a.csv".into(),
            line: Some(3),
            message: "bad".into(),
        };
        assert_eq!(e.to_string(), "invalid CSV in `a.csv` at line 3: bad");
    }
}
