//! Agent loops and the executor for Catena, and the gRPC contract for delegating tasks to
//! an agent service.
//!
//! **Status: no agents yet.** An agent will drive a [`catena_core::ChatModel`] with
//! [`catena_core::Tool`]s; both traits exist now, so tools written today will plug in:
//!
//! ```
//! use std::sync::Arc;
//! use catena_core::{ChatRequest, Message, Tool, ToolChoice};
//!
//! fn request_with_tools(tools: &[Arc<dyn Tool>], question: &str) -> ChatRequest {
//!     ChatRequest::new(vec![Message::user(question)])
//!         .with_tools(tools.iter().map(|t| t.definition()))
//!         .with_tool_choice(ToolChoice::Auto)
//! }
//! assert!(request_with_tools(&[], "hi").tools.is_empty());
//! ```
