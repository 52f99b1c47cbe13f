//! The ReAct text agent against scripted models: prompts, parsing, errors, limits and the
//! event stream.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use catena_agents::{AgentError, AgentEvent, AgentExecutor, ReactAgent, StepError, REACT_STOP};
use catena_core::test_utils::ScriptedChatModel;
use catena_core::{ChatRequest, ChatResponse, Message, ToolCall, ToolError, TypedTool, Usage};
use futures::StreamExt;
use schemars::JsonSchema;
use serde::Deserialize;
use support::{Echo, Failing, Sleeper};

#[derive(Deserialize, JsonSchema)]
struct AddArgs {
    a: i64,
    b: i64,
}

/// Two integer arguments: plain-text input cannot be wrapped for it.
struct Add;

#[async_trait]
impl TypedTool for Add {
    type Args = AddArgs;
    type Output = i64;
    fn name(&self) -> &str {
        "add"
    }
    fn description(&self) -> &str {
        "Adds two integers."
    }
    async fn call(&self, args: AddArgs) -> Result<i64, ToolError> {
        Ok(args.a + args.b)
    }
}

fn prompt(req: &ChatRequest) -> String {
    req.messages.last().unwrap().text()
}

fn agent(model: &Arc<ScriptedChatModel>) -> ReactAgent {
    ReactAgent::builder(model.clone())
        .tool(Echo::default().into_tool())
        .tool(Add.into_tool())
        .tool(Failing.into_tool())
        .build()
        .unwrap()
}

#[tokio::test]
async fn two_step_run_sends_react_prompts_without_tools() {
    let model = Arc::new(
        ScriptedChatModel::new()
            .with_text(" I should echo.\nAction: echo\nAction Input: {\"text\": \"hi\"}")
            .with_text(" I now know the final answer.\nFinal Answer: it said hi"),
    );
    let run = agent(&model).run("What does echo say?").await.unwrap();
    assert_eq!(run.output, "it said hi");
    assert_eq!(run.iterations, 2);
    assert_eq!(run.steps.len(), 1);
    assert_eq!(run.steps[0].call.name, "echo");
    assert_eq!(run.steps[0].call.arguments, r#"{"text":"hi"}"#);
    assert_eq!(run.steps[0].result.as_deref(), Ok("echo:hi"));

    let requests = model.requests();
    assert_eq!(requests.len(), 2);
    for req in &requests {
        assert!(req.tools.is_empty(), "no native tools in a ReAct request");
        assert!(req.tool_choice.is_none());
        assert_eq!(req.stop, vec![REACT_STOP.to_string()]);
        assert_eq!(REACT_STOP, "\nObservation:");
    }
    let first = prompt(&requests[0]);
    // Tools listed with description and argument schema; the format is explained.
    assert!(first.contains("echo: Echoes its text."));
    assert!(first.contains("add: Adds two integers."));
    assert!(first.contains(r#""required":["a","b"]"#), "{first}");
    assert!(first.contains("should be one of [echo, add, failing]"));
    for label in [
        "Thought:",
        "Action:",
        "Action Input:",
        "Observation:",
        "Final Answer:",
    ] {
        assert!(first.contains(label), "{label} missing");
    }
    assert!(first.ends_with("Question: What does echo say?\nThought:"));
    // The scratchpad grows with the model's text and the observation.
    let second = prompt(&requests[1]);
    assert!(second.starts_with(&first));
    assert_eq!(
        &second[first.len()..],
        " I should echo.\nAction: echo\nAction Input: {\"text\": \"hi\"}\nObservation: echo:hi\nThought:"
    );
}

#[tokio::test]
async fn malformed_output_is_corrected_after_one_reminder() {
    let model = Arc::new(
        ScriptedChatModel::new()
            .with_text("I think the answer is 4.")
            .with_text("Final Answer: 4"),
    );
    let run = agent(&model).run("2+2?").await.unwrap();
    assert_eq!(run.output, "4");
    assert_eq!(run.iterations, 2);
    assert!(run.steps.is_empty());
    let second = prompt(&model.requests()[1]);
    assert!(second.ends_with(
        "Thought:I think the answer is 4.\nObservation: Invalid format: no `Action:` or \
         `Final Answer:` was found. Remember to use Action/Action Input or Final Answer.\nThought:"
    ));
}

#[tokio::test]
async fn malformed_twice_in_a_row_is_a_typed_error() {
    let model = Arc::new(
        ScriptedChatModel::new()
            .with_text("no idea")
            .with_text("still chatting"),
    );
    let err = agent(&model).run("2+2?").await.unwrap_err();
    match AgentError::from_error(&err) {
        Some(AgentError::OutputParse { output, reason }) => {
            assert_eq!(output, "still chatting");
            assert!(reason.contains("Final Answer"));
        }
        other => panic!("unexpected {other:?} / {err}"),
    }
    assert_eq!(model.requests().len(), 2);
}

#[tokio::test]
async fn a_good_turn_resets_the_reminder() {
    let model = Arc::new(
        ScriptedChatModel::new()
            .with_text("oops")
            .with_text("Action: echo\nAction Input: a")
            .with_text("oops again")
            .with_text("Final Answer: done"),
    );
    let run = agent(&model).run("go").await.unwrap();
    assert_eq!(run.output, "done");
    assert_eq!(run.iterations, 4);
}

#[tokio::test]
async fn action_and_final_answer_together_is_a_format_error() {
    let model = Arc::new(
        ScriptedChatModel::new()
            .with_text("Action: echo\nAction Input: a\nFinal Answer: guessed")
            .with_text("Final Answer: real"),
    );
    let run = agent(&model).run("go").await.unwrap();
    assert_eq!(run.output, "real");
    assert!(run.steps.is_empty(), "the action was not run");
    assert!(prompt(&model.requests()[1]).contains("both an Action and a Final Answer"));
}

#[tokio::test]
async fn invented_observation_is_dropped_when_stop_is_ignored() {
    let model = Arc::new(
        ScriptedChatModel::new()
            .with_text("Action: echo\nAction Input: a\nObservation: made up\nFinal Answer: fake")
            .with_text("Final Answer: real"),
    );
    let run = agent(&model).run("go").await.unwrap();
    assert_eq!(run.output, "real");
    assert_eq!(run.steps[0].result.as_deref(), Ok("echo:a"));
    let second = prompt(&model.requests()[1]);
    assert!(!second.contains("made up"));
    assert!(second.ends_with("Action: echo\nAction Input: a\nObservation: echo:a\nThought:"));
}

#[tokio::test]
async fn unknown_tool_observation_lists_available_tools() {
    let model = Arc::new(
        ScriptedChatModel::new()
            .with_text("Action: search\nAction Input: rust")
            .with_text("Final Answer: gave up"),
    );
    let run = agent(&model).run("go").await.unwrap();
    assert_eq!(
        run.steps[0].result,
        Err(StepError::UnknownTool {
            name: "search".into(),
            available: vec!["echo".into(), "add".into(), "failing".into()],
        })
    );
    assert!(prompt(&model.requests()[1]).contains(
        "Observation: Error: tool `search` does not exist; available: echo, add, failing\nThought:"
    ));
}

#[tokio::test]
async fn bold_labels_code_fences_and_case_are_tolerated() {
    let model = Arc::new(
        ScriptedChatModel::new()
            .with_text(
                "**Thought:** add them\n**ACTION:** `Add`\n**Action Input:**\n```json\n{\"a\": 2, \"b\": 3}\n```",
            )
            .with_text("**action**: echo\n  action input :  `hello there`  ")
            .with_text("**Final Answer:** 5"),
    );
    let run = agent(&model).run("2+3?").await.unwrap();
    assert_eq!(run.output, "5");
    assert_eq!(run.steps[0].call.name, "add");
    assert_eq!(run.steps[0].result.as_deref(), Ok("5"));
    // Plain text for a single-string-argument tool is wrapped.
    assert_eq!(run.steps[1].call.arguments, r#"{"text":"hello there"}"#);
    assert_eq!(run.steps[1].result.as_deref(), Ok("echo:hello there"));
}

#[tokio::test]
async fn plain_text_for_a_multi_argument_tool_is_a_format_error() {
    let model = Arc::new(
        ScriptedChatModel::new()
            .with_text("Action: add\nAction Input: two and three")
            .with_text("Action: add\nAction Input: {\"a\": 2, \"b\": 3}")
            .with_text("Final Answer: 5"),
    );
    let run = agent(&model).run("2+3?").await.unwrap();
    assert_eq!(run.output, "5");
    assert_eq!(run.steps.len(), 1);
    assert!(prompt(&model.requests()[1]).contains(
        "Invalid format: the Action Input for `add` must be a JSON object matching its arguments schema"
    ));
}

#[tokio::test]
async fn tool_errors_become_observations() {
    let model = Arc::new(
        ScriptedChatModel::new()
            .with_text("Action: failing\nAction Input: x")
            .with_text("Action: add\nAction Input: {\"a\": \"two\"}")
            .with_text("Final Answer: could not"),
    );
    let run = agent(&model).run("go").await.unwrap();
    assert_eq!(run.output, "could not");
    assert_eq!(
        run.steps[0].result,
        Err(StepError::Execution("database unreachable".into()))
    );
    assert!(matches!(
        run.steps[1].result,
        Err(StepError::InvalidArguments(_))
    ));
    let requests = model.requests();
    assert!(prompt(&requests[1])
        .ends_with("Observation: Error: tool failed: database unreachable\nThought:"));
    assert!(prompt(&requests[2]).contains("Observation: Error: invalid arguments:"));
}

#[tokio::test(start_paused = true)]
async fn slow_tool_times_out_into_an_observation() {
    let finished = Arc::new(AtomicBool::new(false));
    let model = Arc::new(
        ScriptedChatModel::new()
            .with_text("Action: sleeper\nAction Input: x")
            .with_text("Final Answer: too slow"),
    );
    let agent = ReactAgent::builder(model.clone())
        .tool(
            Sleeper {
                delay: Duration::from_secs(60),
                finished: finished.clone(),
            }
            .into_tool(),
        )
        .tool_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let run = agent.run("go").await.unwrap();
    assert_eq!(
        run.steps[0].result,
        Err(StepError::Timeout(Duration::from_secs(1)))
    );
    assert!(!finished.load(Ordering::SeqCst));
}

#[tokio::test]
async fn max_iterations_stops_a_looping_model() {
    let model = Arc::new(ScriptedChatModel::new().with_responder(|_| {
        Ok(catena_core::ChatResponse::new(
            catena_core::Message::assistant("Action: echo\nAction Input: again"),
        ))
    }));
    let agent = ReactAgent::builder(model.clone())
        .tool(Echo::default().into_tool())
        .max_iterations(3)
        .build()
        .unwrap();
    let err = agent.run("loop").await.unwrap_err();
    assert_eq!(
        AgentError::from_error(&err),
        Some(&AgentError::MaxIterations { limit: 3 })
    );
    let requests = model.requests();
    assert_eq!(requests.len(), 3);
    // Each turn's prompt carries one more observation.
    for (n, req) in requests.iter().enumerate() {
        assert_eq!(prompt(req).matches("Observation: echo:again").count(), n);
    }
}

#[tokio::test(start_paused = true)]
async fn time_budget_stops_the_run() {
    let model = Arc::new(ScriptedChatModel::new().with_responder(|_| {
        Ok(catena_core::ChatResponse::new(
            catena_core::Message::assistant("Action: sleeper\nAction Input: x"),
        ))
    }));
    let agent = ReactAgent::builder(model)
        .tool(
            Sleeper {
                delay: Duration::from_secs(10),
                finished: Arc::default(),
            }
            .into_tool(),
        )
        .max_iterations(100)
        .time_budget(Duration::from_secs(25))
        .build()
        .unwrap();
    let err = agent.run("go").await.unwrap_err();
    assert!(AgentError::from_error(&err).is_some_and(AgentError::is_timeout));
}

#[tokio::test]
async fn builder_rejects_bad_config() {
    let model = Arc::new(ScriptedChatModel::new());
    assert!(ReactAgent::builder(model.clone())
        .max_iterations(0)
        .build()
        .is_err());
    assert!(ReactAgent::builder(model)
        .tool(Add.into_tool())
        .tool(Add.into_tool())
        .build()
        .is_err());
}

/// The events as labels that do not depend on the loop: consecutive text deltas collapse
/// into one `delta`, calls are named by tool, arguments and result (ids differ), and native
/// tool-call pieces, which a ReAct model has none of, are left out.
fn shape(events: &[AgentEvent]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in events {
        let s = match e {
            AgentEvent::ModelDelta(_) => "delta".to_owned(),
            AgentEvent::ToolCallDelta { .. } => continue,
            AgentEvent::StepFinished { step, .. } => format!("step:{step}"),
            AgentEvent::ToolCallStarted {
                name, arguments, ..
            } => format!("started:{name}:{arguments}"),
            AgentEvent::ToolResult { name, result, .. } => format!("result:{name}:{result:?}"),
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

fn text_deltas(events: &[AgentEvent]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::ModelDelta(d) => Some(d.as_str()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn stream_has_the_executor_event_shape() {
    // The same run twice: native tool calls, and ReAct text.
    let native = Arc::new(
        ScriptedChatModel::new()
            .with_response(ChatResponse::new(Message::assistant_with_tool_calls(
                "I should echo.",
                vec![ToolCall::new("c1", "echo", r#"{"text":"hi"}"#)],
            )))
            .with_text("It said hi.")
            .with_chunk_chars(3),
    );
    let executor = AgentExecutor::builder(native)
        .tool(Echo::default().into_tool())
        .build()
        .unwrap();
    let react_model = Arc::new(
        ScriptedChatModel::new()
            .with_text(" I should echo.\nAction: echo\nAction Input: {\"text\": \"hi\"}")
            .with_text(" I now know.\nFinal Answer: It said hi.")
            .with_chunk_chars(3),
    );
    let react = ReactAgent::builder(react_model)
        .tool(Echo::default().into_tool())
        .build()
        .unwrap();

    let from_executor: Vec<AgentEvent> = executor.run_stream("go").collect().await;
    let from_react: Vec<AgentEvent> = react.run_stream("go").collect().await;
    let expected = [
        "delta",
        "step:1",
        r#"started:echo:{"text":"hi"}"#,
        r#"result:echo:Ok("echo:hi")"#,
        "delta",
        "step:2",
        "final:It said hi.",
    ];
    assert_eq!(shape(&from_executor), expected);
    assert_eq!(shape(&from_react), expected);

    // The model's text streams in pieces, as the model sent it.
    let deltas = text_deltas(&from_react);
    assert!(deltas.len() > 10, "text arrives in several deltas");
    assert_eq!(
        deltas.concat(),
        " I should echo.\nAction: echo\nAction Input: {\"text\": \"hi\"} I now know.\nFinal Answer: It said hi."
    );
    assert!(from_react.contains(&AgentEvent::ToolCallStarted {
        id: "react_0".into(),
        name: "echo".into(),
        arguments: r#"{"text":"hi"}"#.into(),
    }));
}

#[tokio::test]
async fn stream_step_usage_sums_to_the_run_usage() {
    let script = || {
        ScriptedChatModel::new()
            .with_response(
                ChatResponse::new(Message::assistant("Action: echo\nAction Input: a"))
                    .with_usage(Usage::new(40, 6)),
            )
            // A format error is a step of its own.
            .with_text("I am not sure.")
            .with_response(
                ChatResponse::new(Message::assistant("Final Answer: a"))
                    .with_usage(Usage::new(60, 3)),
            )
    };
    let run = agent(&Arc::new(script())).run("go").await.unwrap();
    let events: Vec<AgentEvent> = agent(&Arc::new(script())).run_stream("go").collect().await;
    assert_eq!(events.last(), Some(&AgentEvent::FinalAnswer("a".into())));
    let steps: Vec<(usize, Usage)> = events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::StepFinished { step, usage } => Some((*step, *usage)),
            _ => None,
        })
        .collect();
    assert_eq!(run.iterations, 3);
    assert_eq!(steps.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(steps[0].1, Usage::new(40, 6));
    assert_eq!(steps[2].1, Usage::new(60, 3));
    let total = steps
        .iter()
        .fold(Usage::default(), |sum, (_, usage)| sum + *usage);
    assert_eq!(total, run.usage);
    // The malformed turn has no tool events.
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, AgentEvent::ToolCallStarted { .. }))
            .count(),
        1
    );
}

#[tokio::test]
async fn stream_reports_unknown_tools_and_ends_with_a_limit_error() {
    let model = Arc::new(ScriptedChatModel::new().with_responder(|_| {
        Ok(ChatResponse::new(Message::assistant(
            "Action: search\nAction Input: rust",
        )))
    }));
    let agent = ReactAgent::builder(model.clone())
        .tool(Echo::default().into_tool())
        .max_iterations(2)
        .build()
        .unwrap();
    let events: Vec<AgentEvent> = agent.run_stream("go").collect().await;
    assert!(events.contains(&AgentEvent::ToolResult {
        id: "react_1".into(),
        name: "search".into(),
        result: Err(StepError::UnknownTool {
            name: "search".into(),
            available: vec!["echo".into()],
        }),
    }));
    let Some(AgentEvent::Error(err)) = events.last() else {
        panic!("last event should be an error: {events:?}");
    };
    assert_eq!(
        AgentError::from_error(err),
        Some(&AgentError::MaxIterations { limit: 2 })
    );
    assert_eq!(model.requests().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_stream_stops_the_running_tool() {
    let finished = Arc::new(AtomicBool::new(false));
    let model = Arc::new(
        ScriptedChatModel::new()
            .with_text("Action: sleeper\nAction Input: x")
            .with_text("Final Answer: never reached"),
    );
    let agent = ReactAgent::builder(model.clone())
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
    let poll_briefly = tokio::time::timeout(Duration::from_secs(1), stream.next()).await;
    assert!(poll_briefly.is_err(), "the tool is still sleeping");
    drop(stream);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(!finished.load(Ordering::SeqCst), "the tool kept running");
    assert_eq!(model.requests().len(), 1, "no further model call");
}
