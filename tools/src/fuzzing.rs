//! Entry points for the cargo-fuzz targets in `fuzz/` (feature `fuzzing`): the conversion of
//! an MCP server's `tools/call` result. Not a stable API.

use catena_core::{ToolError, ToolOutput};

/// Reads `json` as an MCP `CallToolResult` and converts it as [`McpTool`](crate::McpTool)
/// does; `None` when it is not such a result.
pub fn mcp_call_result(json: &[u8]) -> Option<Result<ToolOutput, ToolError>> {
    let result: rmcp::model::CallToolResult = serde_json::from_slice(json).ok()?;
    Some(crate::mcp::into_output(result))
}
