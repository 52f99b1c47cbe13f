//! An agent offered to another agent as a tool.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;

use catena_agents::{AgentExecutor, AgentTool, StepError};
use catena_core::test_utils::ScriptedChatModel;
use catena_core::{Role, Tool, ToolError, TypedTool};
use support::Echo;

#[tokio::test]
async fn an_agent_runs_inside_another_agent() {
    let inner_model = Arc::new(
        ScriptedChatModel::new()
            .with_tool_call("echo", r#"{"text":"deep"}"#)
            .with_text("inner found: echo:deep"),
    );
    let inner = AgentExecutor::builder(inner_model.clone())
        .system_prompt("You are the researcher.")
        .tool(Echo::default().into_tool())
        .build()
        .unwrap();
    let outer_model = Arc::new(
        ScriptedChatModel::new()
            .with_tool_call("researcher", r#"{"input":"dig"}"#)
            .with_text("The researcher says: inner found: echo:deep"),
    );
    let outer = AgentExecutor::builder(outer_model.clone())
        .tool(Arc::new(AgentTool::new(
            "researcher",
            "Researches a question.",
            inner,
        )))
        .build()
        .unwrap();
    let run = outer.run("question").await.unwrap();
    assert_eq!(run.output, "The researcher says: inner found: echo:deep");
    assert_eq!(run.steps[0].result.as_deref(), Ok("inner found: echo:deep"));

    // The inner agent received the input as its user message.
    let inner_first = &inner_model.requests()[0];
    assert_eq!(inner_first.messages[1].role, Role::User);
    assert_eq!(inner_first.messages[1].text(), "dig");
    // The outer model saw the tool's schema.
    let def = &outer_model.requests()[0].tools[0];
    assert_eq!(def.name, "researcher");
    assert_eq!(def.parameters["required"], serde_json::json!(["input"]));
}

#[tokio::test]
async fn a_failing_inner_agent_is_an_error_result_for_the_outer_one() {
    let inner = AgentExecutor::builder(Arc::new(ScriptedChatModel::new()))
        .build()
        .unwrap();
    let tool = AgentTool::new("helper", "Helps.", inner.clone());
    let err = tool
        .call(serde_json::json!({"input": "x"}))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ToolError::Execution(ref m) if m.contains("helper")),
        "{err}"
    );
    let bad = tool
        .call(serde_json::json!({"inp": "x"}))
        .await
        .unwrap_err();
    assert!(matches!(bad, ToolError::InvalidArguments(_)));

    let outer = AgentExecutor::builder(Arc::new(
        ScriptedChatModel::new()
            .with_tool_call("helper", r#"{"input":"x"}"#)
            .with_text("could not get help"),
    ))
    .tool(Arc::new(AgentTool::new("helper", "Helps.", inner)))
    .build()
    .unwrap();
    let run = outer.run("q").await.unwrap();
    assert_eq!(run.output, "could not get help");
    assert!(matches!(run.steps[0].result, Err(StepError::Execution(_))));
}
