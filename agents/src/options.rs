//! [`AgentOptions`]: what both agent loops are configured with (instructions, tools, limits),
//! in one type that [`AgentExecutorBuilder`](crate::AgentExecutorBuilder) and
//! [`ReactAgentBuilder`](crate::ReactAgentBuilder) share.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use catena_agents::{AgentExecutor, AgentOptions, ReactAgent};
//! use catena_core::test_utils::ScriptedChatModel;
//!
//! let options = AgentOptions::new()
//!     .system_prompt("Be brief.")
//!     .max_iterations(5)
//!     .time_budget(Duration::from_secs(60))
//!     .token_budget(20_000);
//! let model = Arc::new(ScriptedChatModel::new().with_text("ok"));
//! let native = AgentExecutor::builder(model.clone()).options(options.clone()).build()?;
//! let react = ReactAgent::builder(model).options(options).build()?;
//! # let _ = (native, react);
//! # Ok::<(), catena_core::Error>(())
//! ```

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use catena_core::{Error, Result, Tool};

/// The options every agent loop of this crate takes: a system prompt, the tools, and the
/// limits of a run. Each setter's doc states its default; both agent builders have setters
/// of the same names that set the same fields, and an `options` setter that takes a whole
/// `AgentOptions`.
#[derive(Clone)]
pub struct AgentOptions {
    pub(crate) tools: Vec<Arc<dyn Tool>>,
    pub(crate) system_prompt: Option<String>,
    pub(crate) max_iterations: usize,
    pub(crate) tool_timeout: Duration,
    pub(crate) time_budget: Option<Duration>,
    pub(crate) token_budget: Option<u64>,
}

impl Default for AgentOptions {
    fn default() -> Self {
        AgentOptions {
            tools: Vec::new(),
            system_prompt: None,
            max_iterations: 10,
            tool_timeout: Duration::from_secs(30),
            time_budget: None,
            token_budget: None,
        }
    }
}

impl fmt::Debug for AgentOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentOptions")
            .field(
                "tools",
                &self.tools.iter().map(|t| t.name()).collect::<Vec<_>>(),
            )
            .field("system_prompt", &self.system_prompt.is_some())
            .field("max_iterations", &self.max_iterations)
            .field("tool_timeout", &self.tool_timeout)
            .field("time_budget", &self.time_budget)
            .field("token_budget", &self.token_budget)
            .finish()
    }
}

impl AgentOptions {
    /// The defaults: no system prompt, no tools, 10 iterations, a 30 s tool timeout, no time
    /// or token budget.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the system prompt sent first in every run. Default: none.
    #[must_use]
    pub fn system_prompt(mut self, prompt: impl Into<String>) -> Self {
        self.system_prompt = Some(prompt.into());
        self
    }

    /// Adds a tool. Default: no tools.
    #[must_use]
    pub fn tool(mut self, tool: Arc<dyn Tool>) -> Self {
        self.tools.push(tool);
        self
    }

    /// Adds tools.
    #[must_use]
    pub fn tools(mut self, tools: impl IntoIterator<Item = Arc<dyn Tool>>) -> Self {
        self.tools.extend(tools);
        self
    }

    /// The most model calls before the run stops with
    /// [`AgentError::MaxIterations`](crate::AgentError::MaxIterations). Default 10.
    #[must_use]
    pub fn max_iterations(mut self, n: usize) -> Self {
        self.max_iterations = n;
        self
    }

    /// How long one tool call may take; a call that takes longer is cancelled and the model
    /// gets a timeout error as its result. Default 30 s.
    #[must_use]
    pub fn tool_timeout(mut self, timeout: Duration) -> Self {
        self.tool_timeout = timeout;
        self
    }

    /// An overall deadline for the run; past it the run stops with
    /// [`AgentError::TimeBudget`](crate::AgentError::TimeBudget). Default: none.
    #[must_use]
    pub fn time_budget(mut self, budget: Duration) -> Self {
        self.time_budget = Some(budget);
        self
    }

    /// A limit on the total tokens the model reports over the run, checked before each model
    /// call; past it the run stops with
    /// [`AgentError::TokenBudget`](crate::AgentError::TokenBudget). Default: none.
    #[must_use]
    pub fn token_budget(mut self, tokens: u64) -> Self {
        self.token_budget = Some(tokens);
        self
    }

    /// Checks the options: `max_iterations`, then what the agent checks itself (`own`), then
    /// `tool_timeout` and unique tool names.
    pub(crate) fn validate(&self, own: impl FnOnce() -> Result<()>) -> Result<()> {
        if self.max_iterations == 0 {
            return Err(Error::invalid_config("max_iterations must be at least 1"));
        }
        own()?;
        if self.tool_timeout.is_zero() {
            return Err(Error::invalid_config("tool_timeout must not be zero"));
        }
        let mut seen = HashSet::new();
        for t in &self.tools {
            if !seen.insert(t.name()) {
                return Err(Error::invalid_config(format!(
                    "two tools are named `{}`",
                    t.name()
                )));
            }
        }
        Ok(())
    }
}
