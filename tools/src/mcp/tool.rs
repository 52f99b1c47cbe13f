//! [`McpTool`]: one tool of an MCP server as a Catena [`Tool`].

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use catena_core::{Tool, ToolError, ToolOutput};
use rmcp::model::{CallToolRequestParams, CallToolResult, ContentBlock, ResourceContents};
use serde_json::Value;

use super::client::Inner;
use super::error::McpError;

/// A tool of an MCP server, listed by [`McpClient::tools`](super::McpClient::tools).
///
/// Its name (with the client's prefix), description and parameters are the server's.
/// [`Tool::call`] sends `tools/call` and maps the result:
///
/// - structured content, when the server sends it, becomes the output as JSON;
///   otherwise the text of the content blocks, joined with newlines, becomes a string
///   (images, audio and binary resources are described in brackets, not inlined);
/// - a result with `isError: true` becomes [`ToolError::Execution`] carrying the
///   server's text, which an agent hands back to the model;
/// - arguments that are not a JSON object, and a JSON-RPC "invalid params" answer,
///   become [`ToolError::InvalidArguments`];
/// - timeouts, a closed connection and transport failures become
///   [`ToolError::Execution`] with a message from [`McpError`].
///
/// [`McpTool::invoke`] keeps the [`McpError`] typed. Cloning is cheap; every clone keeps
/// the connection open.
#[derive(Clone)]
pub struct McpTool {
    client: Arc<Inner>,
    name: String,
    remote_name: String,
    description: String,
    parameters: Value,
}

impl McpTool {
    pub(crate) fn new(client: Arc<Inner>, tool: rmcp::model::Tool) -> Self {
        let remote_name = tool.name.into_owned();
        let name = format!("{}{remote_name}", client.tools.prefix);
        let description = tool
            .description
            .map(|d| d.into_owned())
            .or(tool.title)
            .unwrap_or_default();
        let parameters = Value::Object(Arc::unwrap_or_clone(tool.input_schema));
        McpTool {
            client,
            name,
            remote_name,
            description,
            parameters,
        }
    }

    /// The tool's name on the server, without the prefix; calls send this name.
    pub fn remote_name(&self) -> &str {
        &self.remote_name
    }

    /// Calls the tool, keeping the two kinds of failure apart: the outer error is an
    /// [`McpError`] when no answer came (timeout, closed connection, transport failure,
    /// a JSON-RPC error from the server); the inner result is the tool's own answer,
    /// with `isError: true` as [`ToolError::Execution`] and arguments that are not a
    /// JSON object as [`ToolError::InvalidArguments`]. [`Tool::call`] flattens the two
    /// with [`McpError::into_tool_error`].
    ///
    /// # Errors
    /// [`McpError::Timeout`] after the client's call timeout (the request is cancelled),
    /// [`McpError::Closed`] when the server is gone, [`McpError::Server`] for a JSON-RPC
    /// error answer, and the other [`McpError`] variants for transport failures.
    pub async fn invoke(&self, args: Value) -> Result<Result<ToolOutput, ToolError>, McpError> {
        let mut params = CallToolRequestParams::new(self.remote_name.clone());
        match args {
            Value::Object(map) => params = params.with_arguments(map),
            Value::Null => {}
            other => {
                return Ok(Err(ToolError::invalid_arguments(format!(
                    "arguments must be a JSON object, not {}",
                    json_kind(&other)
                ))))
            }
        }
        let result = self
            .client
            .request(
                || format!("tools/call `{}`", self.remote_name),
                self.client.call_timeout,
                self.client.service_peer().call_tool(params),
            )
            .await?;
        Ok(into_output(result))
    }
}

impl fmt::Debug for McpTool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("McpTool")
            .field("name", &self.name)
            .field("remote_name", &self.remote_name)
            .field("server", &self.client.server)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Tool for McpTool {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn parameters(&self) -> &Value {
        &self.parameters
    }

    async fn call(&self, args: Value) -> Result<ToolOutput, ToolError> {
        self.invoke(args).await.map_err(McpError::into_tool_error)?
    }
}

/// Maps a `tools/call` result to the tool's output or error.
pub(crate) fn into_output(result: CallToolResult) -> Result<ToolOutput, ToolError> {
    let text = content_text(&result.content);
    if result.is_error == Some(true) {
        let message = if !text.is_empty() {
            text
        } else if let Some(structured) = &result.structured_content {
            structured.to_string()
        } else {
            "the tool reported an error without a message".to_string()
        };
        return Err(ToolError::Execution(message));
    }
    Ok(match result.structured_content {
        Some(structured) => ToolOutput::new(structured),
        None => ToolOutput::new(text),
    })
}

/// The text of content blocks, one block a line.
fn content_text(content: &[ContentBlock]) -> String {
    let parts: Vec<String> = content
        .iter()
        .map(|block| match block {
            ContentBlock::Text(t) => t.text.clone(),
            ContentBlock::Image(i) => format!("[image: {}]", i.mime_type),
            ContentBlock::Audio(a) => format!("[audio: {}]", a.mime_type),
            ContentBlock::Resource(r) => match &r.resource {
                ResourceContents::TextResourceContents { text, .. } => text.clone(),
                ResourceContents::BlobResourceContents { uri, mime_type, .. } => format!(
                    "[resource {uri}: {}]",
                    mime_type.as_deref().unwrap_or("binary")
                ),
                _ => "[resource]".to_string(),
            },
            ContentBlock::ResourceLink(link) => format!("[resource link: {}]", link.uri),
            _ => "[unsupported content]".to_string(),
        })
        .collect();
    parts.join("\n")
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn result(value: Value) -> CallToolResult {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn text_is_joined_and_structured_content_wins() {
        let out = into_output(result(json!({
            "content": [
                {"type": "text", "text": "one"},
                {"type": "image", "data": "AAAA", "mimeType": "image/png"},
                {"type": "resource", "resource": {"uri": "file:///a.txt", "text": "two"}},
            ]
        })))
        .unwrap();
        assert_eq!(out.content, json!("one\n[image: image/png]\ntwo"));

        let out = into_output(result(json!({
            "content": [{"type": "text", "text": "{\"sum\":3}"}],
            "structuredContent": {"sum": 3}
        })))
        .unwrap();
        assert_eq!(out.content, json!({"sum": 3}));
    }

    #[test]
    fn is_error_becomes_an_execution_error() {
        let err = into_output(result(json!({
            "content": [{"type": "text", "text": "disk full"}],
            "isError": true
        })))
        .unwrap_err();
        assert_eq!(err, ToolError::Execution("disk full".into()));

        let err = into_output(result(json!({"content": [], "isError": true}))).unwrap_err();
        assert!(matches!(err, ToolError::Execution(m) if m.contains("without a message")));
    }
}
