//! Built-in tools for Catena agents.
//!
//! **Status: no built-in tools yet.** Write your own with [`catena_core::TypedTool`]: the
//! JSON schema of the arguments is derived from a Rust type.
//!
//! ```
//! use catena_core::{ToolError, TypedTool};
//!
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! struct Args { text: String }
//!
//! struct WordCount;
//!
//! #[async_trait::async_trait]
//! impl TypedTool for WordCount {
//!     type Args = Args;
//!     type Output = usize;
//!     fn name(&self) -> &str { "word_count" }
//!     fn description(&self) -> &str { "Counts the words in a text." }
//!     async fn call(&self, args: Args) -> Result<usize, ToolError> {
//!         Ok(args.text.split_whitespace().count())
//!     }
//! }
//!
//! let tool = WordCount.into_tool();
//! assert_eq!(tool.name(), "word_count");
//! ```
