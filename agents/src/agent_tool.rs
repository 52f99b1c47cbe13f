//! [`AgentTool`]: an agent offered to another agent as a tool.

use std::fmt;

use async_trait::async_trait;
use catena_core::{schema_for, Tool, ToolError, ToolOutput};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::executor::AgentExecutor;

/// The arguments of an [`AgentTool`].
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct AgentToolArgs {
    /// The task or question for the agent, in plain language.
    pub input: String,
}

/// An [`AgentExecutor`] as a [`Tool`]: an agent offered to another agent as a tool.
///
/// The tool takes `{"input": "…"}`, runs the wrapped [`AgentExecutor`] on it and returns
/// the final answer as text. A failed run (a model error, or a limit under
/// [`EarlyStopping::Force`](crate::EarlyStopping::Force)) becomes
/// [`ToolError::Execution`], which the outer agent sees as an error result and can work
/// around.
///
/// ```
/// use std::sync::Arc;
/// use catena_agents::{AgentExecutor, AgentTool};
/// use catena_core::test_utils::ScriptedChatModel;
/// use catena_core::Tool;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let researcher = AgentExecutor::builder(Arc::new(ScriptedChatModel::new().with_text("42")))
///     .build()?;
/// let tool = AgentTool::new("researcher", "Answers research questions.", researcher);
/// assert_eq!(tool.parameters()["required"], serde_json::json!(["input"]));
/// let out = tool.call(serde_json::json!({"input": "the answer?"})).await.unwrap();
/// assert_eq!(out.to_text(), "42");
/// # Ok::<(), catena_core::Error>(())
/// # }).unwrap();
/// ```
pub struct AgentTool {
    name: String,
    description: String,
    parameters: Value,
    executor: AgentExecutor,
}

impl fmt::Debug for AgentTool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentTool")
            .field("name", &self.name)
            .field("executor", &self.executor)
            .finish_non_exhaustive()
    }
}

impl AgentTool {
    /// Offers `executor` as a tool called `name`, described to the model by `description`.
    pub fn new(
        name: impl Into<String>,
        description: impl Into<String>,
        executor: AgentExecutor,
    ) -> Self {
        AgentTool {
            name: name.into(),
            description: description.into(),
            parameters: schema_for::<AgentToolArgs>(),
            executor,
        }
    }

    /// The wrapped agent.
    pub fn executor(&self) -> &AgentExecutor {
        &self.executor
    }
}

#[async_trait]
impl Tool for AgentTool {
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
        let args: AgentToolArgs =
            serde_json::from_value(args).map_err(|e| ToolError::InvalidArguments(e.to_string()))?;
        let run = self
            .executor
            .run(&args.input)
            .await
            .map_err(|e| ToolError::Execution(format!("agent `{}` failed: {e}", self.name)))?;
        Ok(ToolOutput::new(run.output))
    }
}
