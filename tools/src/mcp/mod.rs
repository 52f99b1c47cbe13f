//! MCP client: the tools of a [Model Context Protocol](https://modelcontextprotocol.io)
//! server as Catena [`Tool`](catena_core::Tool)s, over stdio or streamable HTTP.
//!
//! [`McpClient::stdio`] starts the server as a child process (killed when the client and
//! its tools are dropped); [`McpClient::http`] reaches one over streamable HTTP, with an
//! optional bearer token that never shows in `Debug` output or errors.
//! [`McpClient::list_tools`] follows `tools/list` pagination and returns
//! `Arc<dyn Tool>`s whose names, descriptions and JSON-schema parameters are the
//! server's. [`McpTool`] says how a `tools/call` result is mapped: structured content as
//! JSON, text joined, `isError: true` as [`ToolError::Execution`](catena_core::ToolError)
//! for the model to read, invalid arguments as
//! [`ToolError::InvalidArguments`](catena_core::ToolError). Connection, protocol and
//! timeout failures are [`McpError`]s.
//!
//! A prefix keeps the tools of two servers apart, allow and deny lists choose which tools
//! are exposed, and every request has a timeout (60 s unless set).
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use catena_core::Tool;
//! use catena_tools::McpClient;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // A server run as a child process, speaking MCP on stdin and stdout.
//! let files = McpClient::stdio("npx")
//!     .args(["-y", "@modelcontextprotocol/server-filesystem", "/srv/docs"])
//!     .tool_prefix("fs_")
//!     .deny_tools(["write_file"])
//!     .call_timeout(Duration::from_secs(20))
//!     .connect()
//!     .await?;
//!
//! // A server reached over streamable HTTP.
//! let token = std::env::var("TICKETS_MCP_TOKEN")?;
//! let tickets = McpClient::http("https://mcp.example.com/mcp")
//!     .bearer_token(token)
//!     .tool_prefix("tickets_")
//!     .connect()
//!     .await?;
//!
//! let mut tools: Vec<Arc<dyn Tool>> = files.list_tools().await?;
//! tools.extend(tickets.list_tools().await?);
//! for tool in &tools {
//!     println!("{}: {}", tool.name(), tool.description());
//! }
//! let out = tools[0].call(serde_json::json!({"path": "/srv/docs/README.md"})).await?;
//! println!("{}", out.to_text());
//! # Ok(())
//! # }
//! ```

mod client;
mod error;
mod http;
mod tool;

#[cfg(feature = "fuzzing")]
pub(crate) use tool::into_output;

pub use client::{McpClient, McpClientBuilder, McpServerInfo};
pub use error::{McpError, INVALID_PARAMS};
pub use tool::McpTool;
