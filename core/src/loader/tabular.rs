//! CSV files.

use std::path::{Path, PathBuf};

use super::{read_text, source_of, DocumentLoader, LoadError};
use crate::Document;

/// Loads a CSV file (with a header row) as one document per row, like LangChain's
/// `CSVLoader`.
///
/// The content is one `column: value` line per content column (all columns by default,
/// in file order; keys and values trimmed). With [`content_columns`](Self::content_columns),
/// the other columns go into metadata as strings. Metadata also has `source` and `row`
/// (the 0-based row index, header excluded). Quoted fields may contain delimiters, quotes
/// (`""`) and newlines. Rows of a different length than the header are an error.
///
/// ```no_run
/// use catena_core::loader::{CsvLoader, DocumentLoader};
///
/// let docs = CsvLoader::new("products.csv")
///     .content_columns(["name", "description"])
///     .load()?;
/// println!("{} costs {}", docs[0].content, docs[0].metadata["price"]);
/// # Ok::<(), catena_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvLoader {
    path: PathBuf,
    content_columns: Option<Vec<String>>,
    delimiter: u8,
}

impl CsvLoader {
    /// A loader for the file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        CsvLoader {
            path: path.into(),
            content_columns: None,
            delimiter: b',',
        }
    }

    /// The columns that make up the content; the others go into metadata. Default: all
    /// columns are content and none are metadata.
    #[must_use]
    pub fn content_columns<I, S>(mut self, columns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.content_columns = Some(columns.into_iter().map(Into::into).collect());
        self
    }

    /// The field delimiter. Default: `b','`.
    #[must_use]
    pub fn delimiter(mut self, delimiter: u8) -> Self {
        self.delimiter = delimiter;
        self
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn csv_error(&self, e: &csv::Error) -> LoadError {
        LoadError::Csv {
            path: self.path.clone(),
            line: e.position().map(csv::Position::line),
            message: e.to_string(),
        }
    }
}

impl DocumentLoader for CsvLoader {
    fn load(&self) -> crate::Result<Vec<Document>> {
        let text = read_text(&self.path)?;
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(self.delimiter)
            .from_reader(text.as_bytes());
        let headers = reader.headers().map_err(|e| self.csv_error(&e))?.clone();
        if let Some(columns) = &self.content_columns {
            if let Some(missing) = columns.iter().find(|c| !headers.iter().any(|h| h == *c)) {
                return Err(LoadError::MissingColumn {
                    path: self.path.clone(),
                    column: missing.clone(),
                }
                .into());
            }
        }
        let is_content = |column: &str| {
            self.content_columns
                .as_ref()
                .is_none_or(|cols| cols.iter().any(|c| c == column))
        };
        let source = source_of(&self.path);
        let mut docs = Vec::new();
        for (row, record) in reader.records().enumerate() {
            let record = record.map_err(|e| self.csv_error(&e))?;
            let mut lines = Vec::new();
            let mut doc = Document::new(String::new());
            for (column, value) in headers.iter().zip(record.iter()) {
                if is_content(column) {
                    lines.push(format!("{}: {}", column.trim(), value.trim()));
                } else {
                    doc = doc.with_metadata(column, value);
                }
            }
            doc.content = lines.join("\n");
            docs.push(
                doc.with_metadata("source", source.clone())
                    .with_metadata("row", row),
            );
        }
        Ok(docs)
    }
}
