//! The agent service end to end on loopback: a real tonic server running
//! `example_agent_service::service` (driven by `ScriptedChatModel`, with the real tools and
//! `DeterministicEmbedder`), the typed `AgentServiceClient`, and the gRPC health service.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use catena_agents::grpc::pb::ErrorCode;
use catena_agents::grpc::{AnswerSource, TaskError, TaskEvent, TaskLimits, TaskRequest};
use catena_core::test_utils::{DeterministicEmbedder, ScriptedChatModel};
use catena_core::{ChatModel, DocumentId, Role};
use example_agent_service::{
    service, ServiceOptions, CALCULATOR, SEARCH_DOCUMENTS, WEB_FETCH, WEB_SEARCH,
};
use futures::StreamExt;
use support::*;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

fn embedder() -> Arc<DeterministicEmbedder> {
    Arc::new(DeterministicEmbedder::new(256))
}

async fn start(model: Arc<ScriptedChatModel>, options: ServiceOptions) -> Server {
    let model: Arc<dyn ChatModel> = model;
    Server::start(service(model, embedder(), options).unwrap()).await
}

fn final_of(events: &[TaskEvent]) -> (String, Vec<AnswerSource>, catena_core::Usage) {
    match events.last().unwrap() {
        TaskEvent::FinalAnswer {
            text,
            sources,
            usage,
        } => (text.clone(), sources.clone(), *usage),
        other => panic!("the last event is {other:?}"),
    }
}

#[tokio::test]
async fn a_search_streams_step_call_result_and_the_answer_with_the_found_sources_and_usage() {
    let model = Arc::new(
        ScriptedChatModel::new()
            .with_tool_call(SEARCH_DOCUMENTS, format!(r#"{{"query":"{GC_QUERY}"}}"#))
            .with_text("Rust has no garbage collector."),
    );
    let server = start(model.clone(), ServiceOptions::new().with_retriever_k(2)).await;
    let client = client(&server.url()).await.with_metadata(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    );
    let request = TaskRequest::new(GC_TASK)
        .with_request_id("req-1")
        .with_scored_documents(gc_documents())
        .with_timeout(Duration::from_secs(20));
    let events = events_ok(&client, request).await;
    let (skeleton, text) = skeleton(&events);
    assert_eq!(text, "Rust has no garbage collector.");

    // Step, tool call, tool result, next step, then the deltas and the final answer.
    assert_eq!(skeleton.len(), 5, "{skeleton:#?}");
    assert_eq!(skeleton[0], TaskEvent::StepStarted(1));
    assert_eq!(
        skeleton[1],
        TaskEvent::ToolCall {
            id: "call_0".into(),
            name: SEARCH_DOCUMENTS.into(),
            arguments: format!(r#"{{"query":"{GC_QUERY}"}}"#),
        }
    );
    let TaskEvent::ToolResult {
        id,
        name,
        content,
        is_error,
    } = &skeleton[2]
    else {
        panic!("expected a tool result, got {:?}", skeleton[2]);
    };
    assert_eq!(
        (id.as_str(), name.as_str(), *is_error),
        ("call_0", SEARCH_DOCUMENTS, false)
    );
    let found: serde_json::Value = serde_json::from_str(content).unwrap();
    assert_eq!(
        found,
        serde_json::json!([
            {"content": "Rust has no garbage collector: memory is freed by ownership.", "source": "faq.md"},
            {"content": "Go and Java reclaim memory with a garbage collector.", "source": null},
        ])
    );
    assert_eq!(skeleton[3], TaskEvent::StepStarted(2));
    let first_delta = events
        .iter()
        .position(|e| matches!(e, TaskEvent::TextDelta(_)))
        .unwrap();
    assert!(
        first_delta
            > events
                .iter()
                .position(|e| *e == TaskEvent::StepStarted(2))
                .unwrap()
    );

    // The sources are the documents the search returned, as the caller sent them.
    let (answer, sources, usage) = final_of(&events);
    assert_eq!(answer, "Rust has no garbage collector.");
    let ids: Vec<Option<DocumentId>> = sources.iter().map(|s| s.id.clone()).collect();
    assert_eq!(
        ids,
        [
            Some(DocumentId::new("faq-1")),
            Some(DocumentId::new("faq-2"))
        ]
    );
    assert_eq!(sources[0].source.as_deref(), Some("faq.md"));
    assert_eq!((sources[0].score, sources[1].score), (0.9, 0.5));
    assert!(usage.input_tokens > 0 && usage.output_tokens > 0);
    assert_eq!(usage.total_tokens, usage.input_tokens + usage.output_tokens);

    // The model was offered every tool, and told the documents are searchable (not given
    // them inline).
    let requests = model.requests();
    let offered: Vec<&str> = requests[0].tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        offered,
        [SEARCH_DOCUMENTS, CALCULATOR, WEB_SEARCH, WEB_FETCH]
    );
    let input = requests[0]
        .messages
        .iter()
        .find(|m| m.role == Role::User)
        .unwrap()
        .text();
    assert!(
        input.contains("3 context documents for this task can be searched"),
        "{input}"
    );
    assert!(input.ends_with(&format!("Task: {GC_TASK}")), "{input}");
    assert!(!input.contains("Bananas"), "{input}");
}

#[tokio::test]
async fn the_calculator_answers_arithmetic() {
    let model = Arc::new(
        ScriptedChatModel::new()
            .with_tool_call(CALCULATOR, r#"{"expression":"6*(3+4)"}"#)
            .with_text("42"),
    );
    let server = start(model, ServiceOptions::new()).await;
    let client = client(&server.url()).await;
    let events = events_ok(&client, TaskRequest::new("What is 6*(3+4)?")).await;
    let (skeleton, _) = skeleton(&events);
    assert_eq!(
        skeleton[..4],
        [
            TaskEvent::StepStarted(1),
            TaskEvent::ToolCall {
                id: "call_0".into(),
                name: CALCULATOR.into(),
                arguments: r#"{"expression":"6*(3+4)"}"#.into(),
            },
            TaskEvent::ToolResult {
                id: "call_0".into(),
                name: CALCULATOR.into(),
                content: "42.0".into(),
                is_error: false,
            },
            TaskEvent::StepStarted(2),
        ]
    );
    let (answer, sources, _) = final_of(&events);
    assert_eq!(answer, "42");
    assert!(sources.is_empty());
}

#[tokio::test]
async fn allowed_tools_narrow_the_offer_and_a_call_to_another_tool_is_an_error_result() {
    let model = Arc::new(
        ScriptedChatModel::new()
            .with_tool_call(SEARCH_DOCUMENTS, r#"{"query":"rust"}"#)
            .with_text("I may only calculate."),
    );
    let server = start(model.clone(), ServiceOptions::new()).await;
    let client = client(&server.url()).await;
    let request = TaskRequest::new(GC_TASK)
        .with_scored_documents(gc_documents())
        .with_allowed_tools([CALCULATOR]);
    let events = events_ok(&client, request).await;
    let (skeleton, _) = skeleton(&events);
    let TaskEvent::ToolResult {
        name,
        content,
        is_error,
        ..
    } = &skeleton[2]
    else {
        panic!("expected a tool result, got {skeleton:#?}");
    };
    assert_eq!(name, SEARCH_DOCUMENTS);
    assert!(*is_error);
    assert!(content.starts_with("Error:"), "{content}");
    let (answer, sources, _) = final_of(&events);
    assert_eq!(answer, "I may only calculate.");
    // No search ran: the answer lists every context document.
    assert_eq!(sources.len(), 3);

    // Only the calculator was offered, and without the search tool the documents are in
    // the prompt itself.
    let first = &model.requests()[0];
    let offered: Vec<&str> = first.tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(offered, [CALCULATOR]);
    let input = first
        .messages
        .iter()
        .find(|m| m.role == Role::User)
        .unwrap()
        .text();
    assert!(input.contains("Bananas grow"), "{input}");
}

#[tokio::test]
async fn an_unknown_allowed_tool_or_an_empty_task_is_rejected_before_any_event() {
    let model = Arc::new(ScriptedChatModel::new().with_text("never"));
    let server = start(model.clone(), ServiceOptions::new()).await;
    let client = client(&server.url()).await;

    let events = collect(
        &client,
        TaskRequest::new("Run a shell command.").with_allowed_tools(["shell"]),
    )
    .await;
    assert_eq!(events.len(), 1);
    let err = events[0].as_ref().unwrap_err();
    assert!(err.is_invalid_argument(), "{err}");
    assert!(err.to_string().contains("shell"), "{err}");

    let events = collect(&client, TaskRequest::new("   ")).await;
    assert_eq!(events.len(), 1);
    assert!(events[0].as_ref().unwrap_err().is_invalid_argument());
    assert_eq!(model.requests().len(), 0);
}

#[tokio::test]
async fn the_deadline_expires_inside_the_service_while_a_web_fetch_hangs() {
    let silent = Silent::start().await;
    let model = Arc::new(
        ScriptedChatModel::new()
            .with_tool_call(WEB_FETCH, format!(r#"{{"url":"{}"}}"#, silent.url()))
            .with_text("too late"),
    );
    let options = ServiceOptions::new().with_web_allow_host(silent.host_port());
    let server = start(model, options).await;
    let client = client(&server.url()).await;

    // The client would wait 30 s; the task's own limit is 1 s, so the service's deadline
    // is what stops it.
    let request = TaskRequest::new("Fetch the slow page.")
        .with_limits(TaskLimits::new().with_max_duration(Duration::from_secs(1)))
        .with_timeout(Duration::from_secs(30));
    let started = tokio::time::Instant::now();
    let events = collect(&client, request).await;
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    let (last, before) = events.split_last().unwrap();
    match last {
        Err(TaskError::Task { code, .. }) => assert_eq!(*code, ErrorCode::DeadlineExceeded),
        other => panic!("expected the service's deadline error, got {other:?}"),
    }
    assert_eq!(last.as_ref().unwrap_err().code(), Code::DeadlineExceeded);
    // The fetch had started, and was stopped with the task (its connection closed).
    assert!(before.iter().any(|e| matches!(
        e,
        Ok(TaskEvent::ToolCall { name, .. }) if name == WEB_FETCH
    )));
    assert!(!before
        .iter()
        .any(|e| matches!(e, Ok(TaskEvent::ToolResult { .. }))));
    assert_eq!(silent.opened.load(Ordering::SeqCst), 1);
    wait_until(Duration::from_secs(5), "the fetch to be dropped", || {
        silent.closed.load(Ordering::SeqCst) == 1
    })
    .await;
}

#[tokio::test]
async fn the_grpc_deadline_alone_stops_the_task() {
    let silent = Silent::start().await;
    let model = Arc::new(
        ScriptedChatModel::new()
            .with_tool_call(WEB_FETCH, format!(r#"{{"url":"{}"}}"#, silent.url()))
            .with_text("too late"),
    );
    let options = ServiceOptions::new().with_web_allow_host(silent.host_port());
    let server = start(model, options).await;
    let client = client(&server.url()).await;
    let events = collect(
        &client,
        TaskRequest::new("Fetch the slow page.").with_timeout(Duration::from_millis(800)),
    )
    .await;
    let err = events.last().unwrap().as_ref().unwrap_err();
    assert!(err.is_deadline_exceeded(), "{err}");
    wait_until(Duration::from_secs(5), "the fetch to be dropped", || {
        silent.closed.load(Ordering::SeqCst) == 1
    })
    .await;
}

#[tokio::test]
async fn dropping_the_client_stream_cancels_the_running_tool() {
    let silent = Silent::start().await;
    let model = Arc::new(
        ScriptedChatModel::new()
            .with_tool_call(WEB_FETCH, format!(r#"{{"url":"{}"}}"#, silent.url()))
            .with_text("never sent"),
    );
    let options = ServiceOptions::new().with_web_allow_host(silent.host_port());
    let server = start(model.clone(), options).await;
    let client = client(&server.url()).await;
    let mut events = client.run_task(TaskRequest::new("Fetch the slow page."));
    // Read up to the tool call, then wait for the fetch to reach the silent server.
    loop {
        match events.next().await.unwrap().unwrap() {
            TaskEvent::ToolCall { .. } => break,
            _ => continue,
        }
    }
    wait_until(Duration::from_secs(5), "the fetch to connect", || {
        silent.opened.load(Ordering::SeqCst) == 1
    })
    .await;
    drop(events);
    wait_until(Duration::from_secs(5), "the fetch to be cancelled", || {
        silent.closed.load(Ordering::SeqCst) == 1
    })
    .await;
    // The model was never asked for the second turn.
    assert_eq!(model.requests().len(), 1);
}

#[tokio::test]
async fn health_is_serving_until_shutdown() {
    let model = Arc::new(ScriptedChatModel::new());
    let mut server = start(model, ServiceOptions::new()).await;
    let url = server.url();
    assert_eq!(health(&url, "").await, ServingStatus::Serving);
    assert_eq!(
        health(&url, "catena.agent.v1.AgentService").await,
        ServingStatus::Serving
    );

    // A watcher sees NOT_SERVING when shutdown begins; the server then drains and stops.
    let mut watcher = health_client(&url).await;
    let mut watch = watcher
        .watch(tonic_health::pb::HealthCheckRequest {
            service: "catena.agent.v1.AgentService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.next().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);
    server.shut_down();
    let next = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("a status change")
        .unwrap()
        .unwrap();
    assert_eq!(next.status, ServingStatus::NotServing as i32);
    drop(watch);
    drop(watcher);
    let done = server.done.take().unwrap();
    tokio::time::timeout(Duration::from_secs(10), done)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
}
