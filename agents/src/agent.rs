//! [`Agent`]: the agent loop that suits a model, picked from what the model says it can do.

use std::sync::Arc;

use async_trait::async_trait;
use catena_core::{Chain, ChatModel, Result, Tool};

use crate::executor::{AgentExecutor, AgentRun};
use crate::options::AgentOptions;
use crate::react::ReactAgent;

/// An agent whose loop was chosen for its model: native tool calling
/// ([`AgentExecutor`]) when [`ModelInfo::supports_tools`](catena_core::ModelInfo) is
/// `true`, the text-based ReAct loop ([`ReactAgent`]) otherwise.
///
/// Use it when the model comes from configuration (as from `catena_llms::from_env`) and may
/// be a hosted model that calls tools or an in-process one that cannot.
///
/// ```
/// use std::sync::Arc;
/// use catena_agents::{Agent, AgentOptions};
/// use catena_core::test_utils::ScriptedChatModel;
/// use catena_core::{ChatModel, ModelInfo, ToolError, TypedTool};
///
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// struct Nothing {}
///
/// struct Clock;
/// #[async_trait::async_trait]
/// impl TypedTool for Clock {
///     type Args = Nothing;
///     type Output = String;
///     fn name(&self) -> &str { "clock" }
///     fn description(&self) -> &str { "The time of day." }
///     async fn call(&self, _: Nothing) -> Result<String, ToolError> { Ok("noon".into()) }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> catena_core::Result<()> {
/// let options = AgentOptions::new().tool(Clock.into_tool());
///
/// // A model that calls tools natively gets the tool-calling executor…
/// let native: Arc<dyn ChatModel> = Arc::new(ScriptedChatModel::new());
/// assert!(matches!(Agent::for_model(native, options.clone())?, Agent::ToolCalling(_)));
///
/// // …one that cannot gets the ReAct loop, which asks for actions in text.
/// let text_only: Arc<dyn ChatModel> = Arc::new(
///     ScriptedChatModel::new()
///         .with_model_info(ModelInfo::new("local", "tiny"))
///         .with_text("Thought: I know it.\nFinal Answer: noon"),
/// );
/// let agent = Agent::for_model(text_only, options)?;
/// assert!(matches!(agent, Agent::React(_)));
/// assert_eq!(agent.run("What time is it?").await?.output, "noon");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Agent {
    /// Native tool calls through the provider's API.
    ToolCalling(AgentExecutor),
    /// Tool calls written by the model as `Action:` / `Action Input:` text.
    React(ReactAgent),
}

impl Agent {
    /// Builds the loop that suits `model` with `options`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`](catena_core::Error::InvalidConfig) for bad options (see
    /// [`AgentExecutorBuilder::build`](crate::AgentExecutorBuilder::build)).
    pub fn for_model(model: Arc<dyn ChatModel>, options: AgentOptions) -> Result<Agent> {
        if model.model_info().supports_tools {
            AgentExecutor::builder(model)
                .options(options)
                .build()
                .map(Agent::ToolCalling)
        } else {
            ReactAgent::builder(model)
                .options(options)
                .build()
                .map(Agent::React)
        }
    }

    /// Runs the agent on `input` until the model gives a final answer; see
    /// [`AgentExecutor::run`] and [`ReactAgent::run`].
    ///
    /// # Errors
    /// The model's errors and the limits' [`AgentError`](crate::AgentError)s.
    pub async fn run(&self, input: &str) -> Result<AgentRun> {
        match self {
            Agent::ToolCalling(agent) => agent.run(input).await,
            Agent::React(agent) => agent.run(input).await,
        }
    }

    /// The registered tools.
    pub fn tools(&self) -> &[Arc<dyn Tool>] {
        match self {
            Agent::ToolCalling(agent) => agent.tools(),
            Agent::React(agent) => agent.tools(),
        }
    }
}

/// Runs the agent and returns its final answer; the steps are dropped.
#[async_trait]
impl Chain<String, String> for Agent {
    async fn invoke(&self, input: String) -> Result<String> {
        Ok(self.run(&input).await?.output)
    }
}
