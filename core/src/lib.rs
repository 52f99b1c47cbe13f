//! Catena core: the vocabulary every Catena crate speaks.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod document;
mod error;
mod tool;

pub mod loader;
pub mod parser;
pub mod prompt;
pub mod splitter;

pub use document::{Document, DocumentId, Metadata};
pub use error::{BoxError, Error, ProviderError, ProviderErrorKind, Result};
pub use tool::{schema_for, Tool, ToolDefinition, ToolError, ToolOutput, TypedTool, TypedToolAdapter};
