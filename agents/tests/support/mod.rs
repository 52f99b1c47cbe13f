//! Test tools and scripted-model helpers shared by the agent tests.

#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use catena_core::{ChatResponse, FinishReason, Message, ToolCall, ToolError, TypedTool};
use schemars::JsonSchema;
use serde::Deserialize;

/// Arguments with one text field.
#[derive(Deserialize, JsonSchema)]
pub struct TextArgs {
    /// The text.
    pub text: String,
}

/// Echoes `echo:<text>` after sleeping `delay`, tracking how many calls are in flight.
#[derive(Default)]
pub struct Echo {
    pub delay: Duration,
    pub in_flight: Arc<AtomicUsize>,
    pub max_in_flight: Arc<AtomicUsize>,
    pub calls: Arc<AtomicUsize>,
}

#[async_trait]
impl TypedTool for Echo {
    type Args = TextArgs;
    type Output = String;
    fn name(&self) -> &str {
        "echo"
    }
    fn description(&self) -> &str {
        "Echoes its text."
    }
    async fn call(&self, args: TextArgs) -> Result<String, ToolError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        Ok(format!("echo:{}", args.text))
    }
}

/// Always fails with an execution error.
pub struct Failing;

#[async_trait]
impl TypedTool for Failing {
    type Args = TextArgs;
    type Output = String;
    fn name(&self) -> &str {
        "failing"
    }
    fn description(&self) -> &str {
        "Always fails."
    }
    async fn call(&self, _args: TextArgs) -> Result<String, ToolError> {
        Err(ToolError::execution("database unreachable"))
    }
}

/// Sleeps `delay`, then sets `finished`.
pub struct Sleeper {
    pub delay: Duration,
    pub finished: Arc<AtomicBool>,
}

#[async_trait]
impl TypedTool for Sleeper {
    type Args = TextArgs;
    type Output = String;
    fn name(&self) -> &str {
        "sleeper"
    }
    fn description(&self) -> &str {
        "Sleeps, then reports."
    }
    async fn call(&self, _args: TextArgs) -> Result<String, ToolError> {
        tokio::time::sleep(self.delay).await;
        self.finished.store(true, Ordering::SeqCst);
        Ok("slept".into())
    }
}

/// Returns fixed text and counts calls.
pub struct Fixed {
    pub name: &'static str,
    pub text: &'static str,
    pub calls: Arc<AtomicUsize>,
}

#[async_trait]
impl TypedTool for Fixed {
    type Args = TextArgs;
    type Output = String;
    fn name(&self) -> &str {
        self.name
    }
    fn description(&self) -> &str {
        "Returns fixed text."
    }
    async fn call(&self, _args: TextArgs) -> Result<String, ToolError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(self.text.into())
    }
}

/// A response with several tool calls in one turn: `(id, name, arguments)`.
pub fn calls(list: &[(&str, &str, &str)]) -> ChatResponse {
    ChatResponse::new(Message::assistant_with_tool_calls(
        "",
        list.iter()
            .map(|(id, name, args)| ToolCall::new(*id, *name, *args))
            .collect(),
    ))
    .with_finish_reason(FinishReason::ToolCalls)
}
