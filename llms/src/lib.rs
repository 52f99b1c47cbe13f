//! Chat models and embedders for Catena.
//!
//! **Status: no backends yet.** This crate will hold the OpenAI, Gemini and Ollama clients
//! and in-process local models, each behind a cargo feature named after it. Until then it
//! offers nothing of its own; every backend it gains will implement
//! [`catena_core::ChatModel`] and [`catena_core::Embedder`], so code written against those
//! traits today keeps working:
//!
//! ```
//! use std::sync::Arc;
//! use catena_core::{ChatModel, ChatRequest, Message};
//!
//! /// Works with any backend, present or future.
//! async fn ask(model: Arc<dyn ChatModel>, question: &str) -> catena_core::Result<String> {
//!     let answer = model.generate(ChatRequest::new(vec![Message::user(question)])).await?;
//!     Ok(answer.text())
//! }
//! ```
