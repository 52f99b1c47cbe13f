//! Helpers for those who implement Catena's traits (a new chat-model provider, a new vector
//! store, a new agent loop), kept out of the crate root, which holds the vocabulary users
//! write programs with.
//!
//! | helper | for |
//! | --- | --- |
//! | [`validate_vector`], [`validate_key`] | stores: refuse non-finite vectors and metadata keys that could carry query syntax |
//! | [`lookup`] | stores: the value at a dotted metadata path, as [`Filter::matches`](crate::Filter::matches) reads it |
//! | [`mmr_select`], [`cosine_similarity`] | stores and retrievers: maximal marginal relevance, similarity |
//! | [`response_to_chunks`], [`stream_interrupted`] | chat models: replay a response as a stream; the error of a cut stream |
//! | [`effective_ttl`], [`NEVER_EXPIRES_FROM`] | cache stores: the TTL to apply (a huge one means no expiry) |
//! | [`execute_tool_span`], [`record_tool_error`] | agent loops: the GenAI `execute_tool` span with the model's call id |
//!
//! ```
//! use catena_core::backend::{lookup, validate_vector};
//! use catena_core::Document;
//!
//! assert!(validate_vector(&[0.5, f32::NAN]).is_err());
//! let doc = Document::new("x").with_metadata("author", serde_json::json!({"name": "Ada"}));
//! assert_eq!(lookup(&doc.metadata, "author.name"), Some(&serde_json::json!("Ada")));
//! ```

pub use crate::cache::{effective_ttl, NEVER_EXPIRES_FROM};
pub use crate::chat::{response_to_chunks, stream_interrupted};
pub use crate::embed::cosine_similarity;
pub use crate::traced::{execute_tool_span, record_tool_error};
pub use crate::vectorstore::{lookup, mmr_select, validate_key, validate_vector};
