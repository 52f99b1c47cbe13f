//! [`McpError`]: why connecting to, listing or calling an MCP server failed.

use std::time::Duration;

use catena_core::ToolError;

/// The JSON-RPC error code for invalid method parameters, which MCP servers use for
/// arguments that do not fit a tool's schema and for unknown tool names.
pub const INVALID_PARAMS: i32 = -32602;

/// Why an MCP operation failed.
///
/// Messages name the server (the program for stdio, the URL without its query for HTTP)
/// and the operation; they never contain the bearer token or header values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum McpError {
    /// The builder was given a setting that does not fit (an HTTP header for a stdio
    /// server, a URL that does not parse, an empty command).
    #[error("invalid MCP client configuration: {0}")]
    InvalidConfig(String),
    /// The server process could not be started.
    #[error("could not start MCP server `{program}`: {message}")]
    Spawn {
        /// The program that was to be run.
        program: String,
        /// Why it could not be started.
        message: String,
    },
    /// The MCP `initialize` handshake failed.
    #[error("could not connect to MCP server {server}: {message}")]
    Connect {
        /// The server.
        server: String,
        /// Why.
        message: String,
    },
    /// The server refused the credentials (HTTP 401 or 403).
    #[error("MCP server {server} refused the credentials: {message}")]
    Auth {
        /// The server.
        server: String,
        /// What the server said, without the token.
        message: String,
    },
    /// An operation took longer than its timeout; the request was cancelled.
    #[error("MCP server {server}: {operation} timed out after {} ms", after.as_millis())]
    Timeout {
        /// The server.
        server: String,
        /// What timed out, such as `tools/call echo`.
        operation: String,
        /// The timeout that ran out.
        after: Duration,
    },
    /// The connection is gone: the server process exited, or the HTTP session closed.
    #[error("MCP server {server}: connection closed during {operation} (did the server exit?)")]
    Closed {
        /// The server.
        server: String,
        /// What was being done when the connection was found closed.
        operation: String,
    },
    /// Sending or receiving failed (I/O, HTTP status, a broken stream).
    #[error("MCP server {server}: {operation} failed: {message}")]
    Transport {
        /// The server.
        server: String,
        /// What was being done.
        operation: String,
        /// Why it failed.
        message: String,
    },
    /// The server answered with a JSON-RPC error.
    #[error("MCP server {server}: {operation} returned error {code}: {message}")]
    Server {
        /// The server.
        server: String,
        /// What was being done.
        operation: String,
        /// The JSON-RPC error code, such as [`INVALID_PARAMS`].
        code: i32,
        /// The server's message.
        message: String,
    },
    /// The server's answer broke the protocol (an unexpected result type, a tool listed
    /// twice, a tools list that never ends).
    #[error("MCP server {server} broke the protocol: {message}")]
    Protocol {
        /// The server.
        server: String,
        /// What is wrong.
        message: String,
    },
}

impl McpError {
    /// Whether an operation ran out of time.
    pub fn is_timeout(&self) -> bool {
        matches!(self, McpError::Timeout { .. })
    }

    /// Whether the connection to the server is gone; a new [`McpClient`](super::McpClient)
    /// is needed.
    pub fn is_closed(&self) -> bool {
        matches!(self, McpError::Closed { .. })
    }

    /// Whether the server refused the credentials.
    pub fn is_auth(&self) -> bool {
        matches!(self, McpError::Auth { .. })
    }

    /// The JSON-RPC error code, when the server answered with an error.
    pub fn code(&self) -> Option<i32> {
        match self {
            McpError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The error as a tool error: a JSON-RPC "invalid params" answer is
    /// [`ToolError::InvalidArguments`] (the model can correct its call), everything else
    /// [`ToolError::Execution`].
    pub fn into_tool_error(self) -> ToolError {
        match &self {
            McpError::Server { code, .. } if *code == INVALID_PARAMS => {
                ToolError::InvalidArguments(self.to_string())
            }
            _ => ToolError::Execution(self.to_string()),
        }
    }
}

impl From<McpError> for ToolError {
    fn from(e: McpError) -> Self {
        e.into_tool_error()
    }
}

impl From<McpError> for catena_core::Error {
    fn from(e: McpError) -> Self {
        match e {
            McpError::InvalidConfig(m) => catena_core::Error::InvalidConfig(m),
            McpError::Timeout { after, .. } => catena_core::Error::Timeout(after),
            other => catena_core::Error::Other {
                message: other.to_string(),
                source: Some(Box::new(other)),
            },
        }
    }
}
