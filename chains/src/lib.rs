//! Chains for Catena: compositions of the core traits (LLM chain, sequential chains,
//! retrieval QA, conversational retrieval, summarisation, memory).
//!
//! **Status: no chains yet.** Until they land, compose steps with
//! [`catena_core::Chain`], [`catena_core::ChainExt::pipe`] and [`catena_core::chain_fn`]:
//!
//! ```
//! use catena_core::{chain_fn, Chain, ChainExt};
//!
//! # futures::executor::block_on(async {
//! let trim = chain_fn(|s: String| async move { Ok(s.trim().to_owned()) });
//! let words = chain_fn(|s: String| async move { Ok(s.split_whitespace().count()) });
//! assert_eq!(trim.pipe(words).invoke("  two words ".into()).await.unwrap(), 2);
//! # });
//! ```
