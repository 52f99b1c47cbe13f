//! The event stream: order of events, errors as the last event, and cancellation by drop.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use catena_agents::{AgentError, AgentEvent, AgentExecutor};
use catena_core::test_utils::ScriptedChatModel;
use catena_core::{ChatResponse, Message, ToolCall, TypedTool};
use futures::StreamExt;
use support::{calls, Echo, Sleeper};

/// Collapses consecutive deltas so the order is easy to assert.
fn shape(events: &[AgentEvent]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in events {
        let s = match e {
            AgentEvent::ModelDelta(_) => "delta".to_owned(),
            AgentEvent::ToolCallStarted { id, .. } => format!("started:{id}"),
            AgentEvent::ToolResult { id, .. } => format!("result:{id}"),
            AgentEvent::FinalAnswer(a) => format!("final:{a}"),
            AgentEvent::Error(e) => format!("error:{e}"),
            other => format!("{other:?}"),
        };
        if s == "delta" && out.last().map(String::as_str) == Some("delta") {
            continue;
        }
        out.push(s);
    }
    out
}

#[tokio::test]
async fn events_come_in_order() {
    let thinking = ChatResponse::new(Message::assistant_with_tool_calls(
        "Let me check both.",
        vec![
            ToolCall::new("a", "echo", r#"{"text":"one"}"#),
            ToolCall::new("b", "echo", r#"{"text":"two"}"#),
        ],
    ));
    let model = Arc::new(
        ScriptedChatModel::new()
            .with_response(thinking)
            .with_text("Both say hello.")
            .with_chunk_chars(3),
    );
    let agent = AgentExecutor::builder(model.clone())
        .tool(Echo::default().into_tool())
        .max_concurrent_tools(1)
        .build()
        .unwrap();
    let events: Vec<AgentEvent> = agent.run_stream("go").collect().await;
    assert_eq!(
        shape(&events),
        [
            "delta",
            "started:a",
            "result:a",
            "started:b",
            "result:b",
            "delta",
            "final:Both say hello.",
        ]
    );
    let deltas: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::ModelDelta(d) => Some(d.as_str()),
            _ => None,
        })
        .collect();
    assert!(deltas.len() > 2, "text arrives in several deltas");
    assert_eq!(deltas.concat(), "Let me check both.Both say hello.");
    assert!(events.contains(&AgentEvent::ToolResult {
        id: "b".into(),
        name: "echo".into(),
        result: Ok("echo:two".into()),
    }));
    // The streamed run sends the same conversation as `run` would.
    let reqs = model.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1].messages.len(), 4);
}

#[tokio::test]
async fn a_limit_ends_the_stream_with_an_error_event() {
    let model = Arc::new(
        ScriptedChatModel::new()
            .with_responder(|_| Ok(calls(&[("x", "echo", r#"{"text":"again"}"#)]))),
    );
    let agent = AgentExecutor::builder(model)
        .tool(Echo::default().into_tool())
        .max_iterations(2)
        .build()
        .unwrap();
    let events: Vec<AgentEvent> = agent.run_stream("go").collect().await;
    let Some(AgentEvent::Error(err)) = events.last() else {
        panic!("last event should be an error: {events:?}");
    };
    assert_eq!(
        AgentError::from_error(err),
        Some(&AgentError::MaxIterations { limit: 2 })
    );
    let results = events
        .iter()
        .filter(|e| matches!(e, AgentEvent::ToolResult { .. }))
        .count();
    assert_eq!(results, 2);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_stream_stops_the_running_tool() {
    let finished = Arc::new(AtomicBool::new(false));
    let model = Arc::new(
        ScriptedChatModel::new()
            .with_tool_call("sleeper", r#"{"text":"x"}"#)
            .with_text("never reached"),
    );
    let agent = AgentExecutor::builder(model.clone())
        .tool(
            Sleeper {
                delay: Duration::from_secs(10),
                finished: finished.clone(),
            }
            .into_tool(),
        )
        .build()
        .unwrap();
    let mut stream = agent.run_stream("go");
    loop {
        match stream.next().await {
            Some(AgentEvent::ToolCallStarted { name, .. }) => {
                assert_eq!(name, "sleeper");
                break;
            }
            Some(_) => {}
            None => panic!("stream ended before the tool started"),
        }
    }
    // Let the tool get going, then drop the stream mid-call.
    let poll_briefly = tokio::time::timeout(Duration::from_secs(1), stream.next()).await;
    assert!(poll_briefly.is_err(), "the tool is still sleeping");
    drop(stream);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(!finished.load(Ordering::SeqCst), "the tool kept running");
    assert_eq!(model.requests().len(), 1, "no further model call");
}
