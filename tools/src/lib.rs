//! Built-in tools for Catena agents, and the ergonomics for writing your own.
//!
//! | item | what it does |
//! | --- | --- |
//! | [`Calculator`] (`calculator`) | arithmetic with a hand-written parser and limits on length, depth and magnitude; [`evaluate`] is the pure function |
//! | [`CurrentTime`] (`current_time`) | the current time as RFC 3339 and unix seconds, at an optional UTC offset |
//! | [`RetrieverTool`] | offers any [`catena_core::Retriever`] to a model as a search tool |
//! | [`SqlQueryTool`] (`sql_query`), [`SqlSchemaTool`] (`sql_schema`) | one read-only query over any [`catena_core::SqlDatabase`] with a byte cap on the result; the tables and columns |
//! | [`tool_fn`] / [`FnTool`] | a tool from an async closure over a typed argument struct |
//! | `WebFetch`, `HttpRequest`, `WebSearch` (feature `web`) | page fetch as readable text, one HTTP request, DuckDuckGo search; all behind an SSRF guard enforced in the connector |
//! | `McpClient` (feature `mcp`) | the tools of a Model Context Protocol server, over stdio or streamable HTTP, as Catena tools |
//!
//! Every tool is, or erases to, an `Arc<dyn `[`catena_core::Tool`]`>`. Arguments that do not
//! fit a tool's schema, and inputs a tool refuses (a calculator expression that divides by
//! zero), come back as [`catena_core::ToolError::InvalidArguments`], which an agent sends
//! back to the model so it can correct itself; [`catena_core::ToolError::Execution`] is a
//! real failure. The guide `docs/tools.md` shows how to write your own tool.
//!
//! | feature | default | what it adds |
//! | --- | --- | --- |
//! | `web` | no | web fetch, HTTP request and web search tools (reqwest, rustls) |
//! | `mcp` | no | an MCP client whose server tools become Catena tools (rmcp) |
//!
//! ```
//! use std::sync::Arc;
//! use catena_core::{ChatRequest, Message, Tool, TypedTool};
//! use catena_tools::{tool_fn, Calculator, CurrentTime};
//!
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! struct Shout {
//!     /// The text to shout.
//!     text: String,
//! }
//!
//! let tools: Vec<Arc<dyn Tool>> = vec![
//!     Calculator::new().into_tool(),
//!     CurrentTime::new().into_tool(),
//!     tool_fn("shout", "Upper-cases a text.", |a: Shout| async move {
//!         Ok(a.text.to_uppercase())
//!     }),
//! ];
//! let request = ChatRequest::new(vec![Message::user("What is 2^10?")])
//!     .with_tools(tools.iter().map(|t| t.definition()));
//! assert_eq!(request.tools.len(), 3);
//!
//! # futures::executor::block_on(async {
//! let out = tools[0].call(serde_json::json!({"expression": "2^10"})).await.unwrap();
//! assert_eq!(out.to_text(), "1024.0");
//! # });
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod calculator;
mod function;
#[cfg(feature = "mcp")]
mod mcp;
mod retriever;
mod sql;
mod time;
#[cfg(any(feature = "web", feature = "mcp"))]
mod tls;
#[cfg(feature = "web")]
mod web;

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;

pub use calculator::{evaluate, evaluate_with, CalcError, CalcLimits, Calculator, CalculatorArgs};
pub use function::{tool_fn, FnTool};
#[cfg(feature = "mcp")]
#[cfg_attr(docsrs, doc(cfg(feature = "mcp")))]
pub use mcp::{McpClient, McpClientBuilder, McpError, McpServerInfo, McpTool, INVALID_PARAMS};
pub use retriever::{RetrievedDocument, RetrieverArgs, RetrieverTool};
pub use sql::{SqlQueryArgs, SqlQueryOutput, SqlQueryTool, SqlSchemaArgs, SqlSchemaTool};
pub use time::{
    civil_from_days, format_rfc3339, weekday_from_days, CurrentTime, CurrentTimeArgs,
    CurrentTimeOutput,
};
#[cfg(feature = "web")]
#[cfg_attr(docsrs, doc(cfg(feature = "web")))]
pub use web::{
    classify, local_addresses, parse_results, AddressClass, HostResolver, HttpRequest,
    HttpRequestArgs, HttpRequestOutput, Refusal, ResolveFuture, SearchResult, SsrfPolicy,
    StaticResolver, SystemResolver, WebClient, WebClientBuilder, WebError, WebFetch, WebFetchArgs,
    WebFetchOutput, WebRequest, WebResponse, WebSearch, WebSearchArgs, DEFAULT_PORTS,
};

/// The "write your own tool" guide (`docs/tools.md`), compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/tools.md")]
pub struct ToolsGuide;
