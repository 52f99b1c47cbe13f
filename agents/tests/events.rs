//! The event stream: order of events, tool-call pieces, per-step usage, errors as the last
//! event, and cancellation by drop.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use catena_agents::{AgentError, AgentEvent, AgentExecutor, DurableAgent, RunInput, RunOutcome};
use catena_core::test_utils::ScriptedChatModel;
use catena_core::{ChatResponse, InMemoryCheckpointer, Message, ToolCall, TypedTool, Usage};
use futures::StreamExt;
use support::{calls, Echo, Sleeper};

/// Collapses consecutive deltas (text: `delta`, tool-call pieces: `args`) so the order is
/// easy to assert.
fn shape(events: &[AgentEvent]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in events {
        let s = match e {
            AgentEvent::ModelDelta(_) => "delta".to_owned(),
            AgentEvent::ToolCallDelta { .. } => "args".to_owned(),
            AgentEvent::StepFinished { step, .. } => format!("step:{step}"),
            AgentEvent::ToolCallStarted { id, .. } => format!("started:{id}"),
            AgentEvent::ToolResult { id, .. } => format!("result:{id}"),
            AgentEvent::FinalAnswer(a) => format!("final:{a}"),
            AgentEvent::Error(e) => format!("error:{e}"),
            other => format!("{other:?}"),
        };
        if (s == "delta" || s == "args") && out.last() == Some(&s) {
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
            "args",
            "step:1",
            "started:a",
            "result:a",
            "started:b",
            "result:b",
            "delta",
            "step:2",
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

/// The tool-call pieces of `events` per call index: (id, name, arguments concatenated).
fn assembled(events: &[AgentEvent]) -> Vec<(Option<String>, Option<String>, String)> {
    let mut calls: Vec<(Option<String>, Option<String>, String)> = Vec::new();
    for e in events {
        if let AgentEvent::ToolCallDelta {
            index,
            id,
            name,
            arguments,
        } = e
        {
            if calls.len() <= *index {
                calls.resize(*index + 1, (None, None, String::new()));
            }
            let call = &mut calls[*index];
            call.0 = call.0.take().or_else(|| id.clone());
            call.1 = call.1.take().or_else(|| name.clone());
            call.2.push_str(arguments);
        }
    }
    calls
}

/// Every `(id, name, arguments)` of `ToolCallStarted`, in order.
fn started(events: &[AgentEvent]) -> Vec<(String, String, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::ToolCallStarted {
                id,
                name,
                arguments,
            } => Some((id.clone(), name.clone(), arguments.clone())),
            _ => None,
        })
        .collect()
}

/// `(step, usage)` of every `StepFinished`, in order.
fn step_usage(events: &[AgentEvent]) -> Vec<(usize, Usage)> {
    events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::StepFinished { step, usage } => Some((*step, *usage)),
            _ => None,
        })
        .collect()
}

fn position(events: &[AgentEvent], f: impl Fn(&AgentEvent) -> bool) -> usize {
    events.iter().position(f).unwrap()
}

#[tokio::test]
async fn tool_call_argument_pieces_arrive_in_order_before_the_call_starts() {
    let first = r#"{"text":"the first, rather long argument"}"#;
    let second = r#"{"text":"two"}"#;
    let model = Arc::new(
        ScriptedChatModel::new()
            .with_response(calls(&[("a", "echo", first), ("b", "echo", second)]))
            .with_text("Done.")
            .with_chunk_chars(5),
    );
    let agent = AgentExecutor::builder(model)
        .tool(Echo::default().into_tool())
        .build()
        .unwrap();
    let events: Vec<AgentEvent> = agent.run_stream("go").collect().await;

    let pieces = events
        .iter()
        .filter(|e| matches!(e, AgentEvent::ToolCallDelta { index: 0, .. }))
        .count();
    assert!(pieces > 2, "the arguments arrive in several pieces");
    // The pieces of each call concatenate to the started call, id and name included.
    let from_pieces: Vec<(String, String, String)> = assembled(&events)
        .into_iter()
        .map(|(id, name, args)| (id.unwrap(), name.unwrap(), args))
        .collect();
    assert_eq!(
        from_pieces,
        [
            ("a".to_owned(), "echo".to_owned(), first.to_owned()),
            ("b".to_owned(), "echo".to_owned(), second.to_owned()),
        ]
    );
    assert_eq!(started(&events), from_pieces);
    // All pieces come before the turn ends, and the turn ends before any call starts.
    let last_piece = events
        .iter()
        .rposition(|e| matches!(e, AgentEvent::ToolCallDelta { .. }))
        .unwrap();
    let step_one = position(&events, |e| {
        matches!(e, AgentEvent::StepFinished { step: 1, .. })
    });
    let first_start = position(&events, |e| matches!(e, AgentEvent::ToolCallStarted { .. }));
    assert!(
        last_piece < step_one && step_one < first_start,
        "{events:?}"
    );
}

#[tokio::test]
async fn step_usage_sums_to_the_run_usage() {
    let script = || {
        ScriptedChatModel::new()
            .with_response(
                calls(&[("a", "echo", r#"{"text":"one"}"#)]).with_usage(Usage::new(10, 3)),
            )
            // No usage given: the scripted model counts words.
            .with_tool_call("echo", r#"{"text":"two"}"#)
            .with_response(
                ChatResponse::new(Message::assistant("All done.")).with_usage(Usage::new(30, 2)),
            )
    };
    let agent = |model: ScriptedChatModel| {
        AgentExecutor::builder(Arc::new(model))
            .tool(Echo::default().into_tool())
            .build()
            .unwrap()
    };
    let run = agent(script()).run("go").await.unwrap();
    let events: Vec<AgentEvent> = agent(script()).run_stream("go").collect().await;
    assert_eq!(
        events.last(),
        Some(&AgentEvent::FinalAnswer("All done.".into()))
    );

    let steps = step_usage(&events);
    let numbers: Vec<usize> = steps.iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers, (1..=run.iterations).collect::<Vec<_>>());
    assert_eq!(steps[0].1, Usage::new(10, 3));
    assert_eq!(steps[2].1, Usage::new(30, 2));
    let total = steps
        .iter()
        .fold(Usage::default(), |sum, (_, usage)| sum + *usage);
    assert_eq!(total, run.usage);
    // Each step's usage is reported once its turn's text is complete.
    let last_delta = events
        .iter()
        .rposition(|e| matches!(e, AgentEvent::ModelDelta(_)))
        .unwrap();
    let last_step = position(&events, |e| {
        matches!(e, AgentEvent::StepFinished { step: 3, .. })
    });
    assert!(last_delta < last_step);
}

#[tokio::test]
async fn a_durable_run_reports_tool_call_pieces_and_step_usage() {
    let args = r#"{"text":"durable pieces"}"#;
    let model = Arc::new(
        ScriptedChatModel::new()
            .with_tool_call("echo", args)
            .with_text("Echoed.")
            .with_chunk_chars(3),
    );
    let executor = AgentExecutor::builder(model)
        .tool(Echo::default().into_tool())
        .build()
        .unwrap();
    let agent = DurableAgent::new(executor, Arc::new(InMemoryCheckpointer::new()));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let outcome = agent
        .start_with_events("run-1", RunInput::text("go"), &tx)
        .await
        .unwrap();
    drop(tx);
    let mut events = Vec::new();
    while let Some(e) = rx.recv().await {
        events.push(e);
    }
    let RunOutcome::Completed { usage, steps, .. } = outcome else {
        panic!("{outcome:?}");
    };

    let from_pieces = assembled(&events);
    assert_eq!(from_pieces.len(), 1);
    assert_eq!(from_pieces[0].1.as_deref(), Some("echo"));
    assert_eq!(from_pieces[0].2, args);
    assert!(
        events
            .iter()
            .filter(|e| matches!(e, AgentEvent::ToolCallDelta { .. }))
            .count()
            > 2
    );
    assert_eq!(started(&events)[0].2, steps[0].call.arguments);
    let last_piece = events
        .iter()
        .rposition(|e| matches!(e, AgentEvent::ToolCallDelta { .. }))
        .unwrap();
    let first_start = position(&events, |e| matches!(e, AgentEvent::ToolCallStarted { .. }));
    assert!(last_piece < first_start);

    let steps = step_usage(&events);
    assert_eq!(steps.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [1, 2]);
    let total = steps
        .iter()
        .fold(Usage::default(), |sum, (_, usage)| sum + *usage);
    assert_eq!(total, usage);
    assert!(total.total_tokens > 0);
}
