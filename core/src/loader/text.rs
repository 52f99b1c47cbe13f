//! Plain text and Markdown files.

use std::path::{Path, PathBuf};

use super::{read_text, source_of, DocumentLoader};
use crate::Document;

/// Loads one UTF-8 text file as one document with `source` metadata.
///
/// Invalid UTF-8 is [`LoadError::InvalidUtf8`](super::LoadError::InvalidUtf8), never a lossy
/// conversion. A leading byte-order mark is dropped.
///
/// ```no_run
/// use catena_core::loader::{DocumentLoader, TextLoader};
///
/// let docs = TextLoader::new("notes.txt").load()?;
/// assert_eq!(docs[0].source(), Some("notes.txt"));
/// # Ok::<(), catena_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextLoader {
    path: PathBuf,
}

impl TextLoader {
    /// A loader for the file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        TextLoader { path: path.into() }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl DocumentLoader for TextLoader {
    fn load(&self) -> crate::Result<Vec<Document>> {
        let text = read_text(&self.path)?;
        Ok(vec![
            Document::new(text).with_metadata("source", source_of(&self.path))
        ])
    }
}

/// Loads one Markdown file as one document, as text. The first level-1 ATX heading
/// (`# Title`, outside code fences) becomes `title` metadata.
///
/// ```no_run
/// use catena_core::loader::{DocumentLoader, MarkdownLoader};
///
/// let docs = MarkdownLoader::new("README.md").load()?;
/// println!("{:?}", docs[0].metadata.get("title"));
/// # Ok::<(), catena_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkdownLoader {
    path: PathBuf,
}

impl MarkdownLoader {
    /// A loader for the file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        MarkdownLoader { path: path.into() }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl DocumentLoader for MarkdownLoader {
    fn load(&self) -> crate::Result<Vec<Document>> {
        let text = read_text(&self.path)?;
        let title = markdown_title(&text);
        let mut doc = Document::new(text).with_metadata("source", source_of(&self.path));
        if let Some(title) = title {
            doc = doc.with_metadata("title", title);
        }
        Ok(vec![doc])
    }
}

/// The text of the first `# ` heading outside fenced code blocks.
fn markdown_title(text: &str) -> Option<String> {
    let mut fence: Option<&str> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        for marker in ["```", "~~~"] {
            if trimmed.starts_with(marker) {
                fence = match fence {
                    None => Some(marker),
                    Some(open) if open == marker => None,
                    other => other,
                };
            }
        }
        if fence.is_some() || line.len() - trimmed.len() > 3 {
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix("# ") {
            let title = rest.trim().trim_end_matches('#').trim();
            if !title.is_empty() {
                return Some(title.to_owned());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles() {
        assert_eq!(
            markdown_title("intro\n# Title #\n# Other"),
            Some("Title".into())
        );
        assert_eq!(
            markdown_title("```\n# not a title\n```\n## h2\n# Real"),
            Some("Real".into())
        );
        assert_eq!(markdown_title("#hashtag\n    # code"), None);
    }
}
