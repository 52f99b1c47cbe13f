//! Durable runs over the gRPC contract: a real tonic server on loopback serving a
//! `DurableAgent` per task (driven by `ScriptedChatModel`), called with the generated
//! client: run ids on every event, approvals through `Decide`, `ResumeTask` in another
//! service instance on the same checkpoints, and `GetTask` replay.

#![cfg(feature = "grpc")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use catena_agents::grpc::pb::{
    self, agent_service_client, decide_request, run_task_response::Event,
};
use catena_agents::grpc::{AgentGrpcService, DurableTask, TaskContext};
use catena_agents::{AgentExecutor, RunInput};
use catena_core::test_utils::ScriptedChatModel;
use catena_core::{
    ChatModel, ChatRequest, ChatResponse, ChatStream, Checkpointer, FileCheckpointer,
    InMemoryCheckpointer, ModelInfo, Tool, ToolError, TypedTool,
};
use futures::StreamExt;
use schemars::JsonSchema;
use serde::Deserialize;
use tonic::transport::Channel;
use tonic::Code;

type Client = agent_service_client::AgentServiceClient<Channel>;

#[derive(Deserialize, JsonSchema)]
struct Payment {
    /// The amount to pay.
    amount: u32,
}

/// Pays an amount: records every payment it makes.
#[derive(Clone, Default)]
struct Pay {
    paid: Arc<Mutex<Vec<u32>>>,
}

#[async_trait]
impl TypedTool for Pay {
    type Args = Payment;
    type Output = String;
    fn name(&self) -> &str {
        "pay"
    }
    fn description(&self) -> &str {
        "Pays an amount."
    }
    async fn call(&self, args: Payment) -> Result<String, ToolError> {
        self.paid.lock().unwrap().push(args.amount);
        Ok(format!("paid {}", args.amount))
    }
}

/// A model that hangs (forever) on its `hang_on`-th call, and otherwise follows `inner`.
struct Hanging {
    inner: Arc<ScriptedChatModel>,
    calls: AtomicUsize,
    hang_on: usize,
    hanging: Arc<AtomicBool>,
}

#[async_trait]
impl ChatModel for Hanging {
    async fn generate(&self, request: ChatRequest) -> catena_core::Result<ChatResponse> {
        self.gate().await;
        self.inner.generate(request).await
    }
    async fn stream(&self, request: ChatRequest) -> catena_core::Result<ChatStream> {
        self.gate().await;
        self.inner.stream(request).await
    }
    fn model_info(&self) -> ModelInfo {
        self.inner.model_info()
    }
}

impl Hanging {
    async fn gate(&self) {
        if self.calls.fetch_add(1, Ordering::SeqCst) + 1 == self.hang_on {
            self.hanging.store(true, Ordering::SeqCst);
            std::future::pending::<()>().await;
        }
    }
}

/// A durable service over `model` with the `pay` tool, checkpoints in `checkpointer`.
fn durable_service(
    model: Arc<dyn ChatModel>,
    pay: Pay,
    checkpointer: Arc<dyn Checkpointer>,
    approval: &[&str],
) -> AgentGrpcService {
    let tools: Vec<Arc<dyn Tool>> = vec![pay.into_tool()];
    AgentGrpcService::new_durable(checkpointer, move |ctx: TaskContext| {
        let executor = ctx
            .apply_limits(AgentExecutor::builder(ctx.model(model.clone())))
            .tools(ctx.select_tools(&tools)?)
            .build()?;
        Ok(DurableTask::new(executor, RunInput::text(ctx.prompt())))
    })
    .require_approval(approval.iter().copied())
}

async fn serve(service: AgentGrpcService) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (router, _health) = service.into_router().await;
    tokio::spawn(async move {
        router
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
            .unwrap();
    });
    addr
}

async fn client(addr: SocketAddr) -> Client {
    Client::connect(format!("http://{addr}")).await.unwrap()
}

fn run_request(task: &str, run_id: &str) -> pb::RunTaskRequest {
    pb::RunTaskRequest {
        task: task.into(),
        run_id: run_id.into(),
        ..Default::default()
    }
}

/// Every response of a streaming call that must end OK.
async fn drain(
    response: Result<tonic::Response<tonic::Streaming<pb::RunTaskResponse>>, tonic::Status>,
) -> Vec<pb::RunTaskResponse> {
    let mut stream = response.unwrap().into_inner();
    let mut out = Vec::new();
    while let Some(item) = stream.next().await {
        out.push(item.unwrap());
    }
    out
}

/// The events as short labels.
fn labels(responses: &[pb::RunTaskResponse]) -> Vec<String> {
    responses
        .iter()
        .map(|r| match r.event.as_ref().unwrap() {
            Event::StepStarted(s) => format!("step{}", s.step),
            Event::TextDelta(d) => format!("delta:{}", d.text),
            Event::ToolCall(c) => format!("call:{}:{}", c.name, c.arguments_json),
            Event::ToolResult(r) => format!("result:{}", r.content),
            Event::FinalAnswer(a) => format!("final:{}", a.text),
            Event::Error(e) => format!("error:{}", e.code),
            Event::ApprovalRequired(a) => format!("approval:{}:{}", a.name, a.arguments_json),
        })
        .filter(|l| !l.starts_with("delta:"))
        .collect()
}

async fn status(client: &mut Client, run_id: &str) -> pb::TaskStatus {
    let response = client
        .get_task(pb::GetTaskRequest {
            run_id: run_id.into(),
            from_sequence: 0,
        })
        .await
        .unwrap()
        .into_inner();
    pb::TaskStatus::try_from(response.status).unwrap()
}

fn decide(run_id: &str, call_id: &str, decision: decide_request::Decision) -> pb::DecideRequest {
    pb::DecideRequest {
        run_id: run_id.into(),
        call_id: call_id.into(),
        decision: Some(decision),
    }
}

fn approval_call_id(responses: &[pb::RunTaskResponse]) -> String {
    match responses.last().and_then(|r| r.event.as_ref()) {
        Some(Event::ApprovalRequired(a)) => a.call_id.clone(),
        other => panic!("expected an approval request last, got {other:?}"),
    }
}

#[tokio::test]
async fn without_checkpoints_the_new_rpcs_fail_and_run_task_stamps_a_run_id() {
    let model = Arc::new(
        ScriptedChatModel::new()
            .with_text("Hi.")
            .with_text("Hi again."),
    );
    let service = AgentGrpcService::new(move |ctx: TaskContext| {
        let agent = AgentExecutor::builder(ctx.model(model.clone())).build()?;
        Ok(agent.run_stream(&ctx.prompt()))
    });
    assert!(!service.is_durable());
    let mut client = client(serve(service).await).await;

    for status in [
        client
            .resume_task(pb::ResumeTaskRequest {
                run_id: "r1".into(),
            })
            .await
            .err()
            .unwrap(),
        client
            .decide(decide(
                "r1",
                "c1",
                decide_request::Decision::Cancel(decide_request::Cancel {}),
            ))
            .await
            .err()
            .unwrap(),
        client
            .get_task(pb::GetTaskRequest {
                run_id: "r1".into(),
                from_sequence: 0,
            })
            .await
            .unwrap_err(),
    ] {
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(status.message(), "this agent service keeps no checkpoints");
    }

    // The client's run id is echoed; without one the service makes one up.
    let events = drain(client.run_task(run_request("hello", "mine-1")).await).await;
    assert_eq!(labels(&events), ["step1", "final:Hi."]);
    assert!(events.iter().all(|e| e.run_id == "mine-1"));
    let events = drain(client.run_task(run_request("hello", "")).await).await;
    let generated = &events[0].run_id;
    assert!(!generated.is_empty());
    assert!(events.iter().all(|e| &e.run_id == generated));
    // A malformed run id is refused before anything runs.
    let bad = client
        .run_task(run_request("hello", "a/b"))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn an_approval_round_trip_runs_the_tool_with_the_edited_arguments() {
    let model = Arc::new(
        ScriptedChatModel::new()
            .with_tool_call("pay", r#"{"amount":500}"#)
            .with_text("Paid."),
    );
    let pay = Pay::default();
    let checkpoints: Arc<dyn Checkpointer> = Arc::new(InMemoryCheckpointer::new());
    let service = durable_service(model.clone(), pay.clone(), checkpoints, &["pay"]);
    assert!(service.is_durable());
    let mut client = client(serve(service).await).await;

    let first = drain(
        client
            .run_task(run_request("Pay the invoice", "pay-1"))
            .await,
    )
    .await;
    assert_eq!(labels(&first), ["step1", r#"approval:pay:{"amount":500}"#]);
    assert!(first.iter().all(|e| e.run_id == "pay-1"));
    assert!(
        pay.paid.lock().unwrap().is_empty(),
        "nothing runs before approval"
    );
    assert_eq!(
        status(&mut client, "pay-1").await,
        pb::TaskStatus::AwaitingApproval
    );
    let call_id = approval_call_id(&first);

    // A decision about another call, or a second start under the same id, is refused.
    let wrong = client
        .decide(decide(
            "pay-1",
            "nope",
            decide_request::Decision::Cancel(decide_request::Cancel {}),
        ))
        .await
        .err()
        .unwrap();
    assert_eq!(wrong.code(), Code::FailedPrecondition);
    let not_json = decide_request::Decision::Approve(decide_request::Approve {
        arguments_json: "{amount".into(),
    });
    let refused = client
        .decide(decide("pay-1", &call_id, not_json))
        .await
        .err()
        .unwrap();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let again = client
        .run_task(run_request("Pay it twice", "pay-1"))
        .await
        .err()
        .unwrap();
    assert_eq!(again.code(), Code::AlreadyExists);

    let approve = decide_request::Decision::Approve(decide_request::Approve {
        arguments_json: r#"{"amount":450}"#.into(),
    });
    let rest = drain(client.decide(decide("pay-1", &call_id, approve)).await).await;
    assert_eq!(
        labels(&rest),
        [
            "step1",
            r#"call:pay:{"amount":450}"#,
            "result:paid 450",
            "step2",
            "final:Paid."
        ]
    );
    assert!(rest.iter().all(|e| e.run_id == "pay-1"));
    // Sequence numbers go on across the calls of one run.
    let sequences: Vec<u64> = first.iter().chain(&rest).map(|e| e.sequence).collect();
    assert_eq!(sequences, (1..=sequences.len() as u64).collect::<Vec<_>>());
    assert_eq!(*pay.paid.lock().unwrap(), [450]);
    assert_eq!(
        status(&mut client, "pay-1").await,
        pb::TaskStatus::Completed
    );

    // A finished run resumed sends its answer again and runs nothing.
    let replayed = drain(
        client
            .resume_task(pb::ResumeTaskRequest {
                run_id: "pay-1".into(),
            })
            .await,
    )
    .await;
    assert_eq!(labels(&replayed).last().unwrap(), "final:Paid.");
    assert_eq!(*pay.paid.lock().unwrap(), [450]);
}

#[tokio::test]
async fn a_rejection_reaches_the_model_and_cancel_ends_the_run() {
    let model = Arc::new(
        ScriptedChatModel::new()
            .with_tool_call("pay", r#"{"amount":9000}"#)
            .with_text("I did not pay.")
            .with_tool_call("pay", r#"{"amount":1}"#),
    );
    let pay = Pay::default();
    let checkpoints: Arc<dyn Checkpointer> = Arc::new(InMemoryCheckpointer::new());
    let service = durable_service(model.clone(), pay.clone(), checkpoints, &["pay"]);
    let mut client = client(serve(service).await).await;

    let first = drain(
        client
            .run_task(run_request("Pay the invoice", "rej-1"))
            .await,
    )
    .await;
    let call_id = approval_call_id(&first);
    let reject = decide_request::Decision::Reject(decide_request::Reject {
        message: "too much".into(),
    });
    let rest = drain(client.decide(decide("rej-1", &call_id, reject)).await).await;
    assert_eq!(labels(&rest).last().unwrap(), "final:I did not pay.");
    assert!(pay.paid.lock().unwrap().is_empty());
    // The model's second turn saw the rejection as the call's result.
    let requests = model.requests();
    let seen = requests[1].messages.last().unwrap().text();
    assert!(seen.contains("rejected by a person: too much"), "{seen}");

    // Cancel: the run ends with ERROR_CODE_CANCELLED and stays cancelled.
    let first = drain(
        client
            .run_task(run_request("Pay a little", "cancel-1"))
            .await,
    )
    .await;
    let call_id = approval_call_id(&first);
    let mut stream = client
        .decide(decide(
            "cancel-1",
            &call_id,
            decide_request::Decision::Cancel(decide_request::Cancel {}),
        ))
        .await
        .unwrap()
        .into_inner();
    let mut events = Vec::new();
    let mut closing = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(e) => events.push(e),
            Err(status) => closing = Some(status.code()),
        }
    }
    assert_eq!(
        labels(&events).last().unwrap(),
        &format!("error:{}", pb::ErrorCode::Cancelled as i32)
    );
    assert_eq!(closing, Some(Code::Cancelled));
    assert_eq!(
        status(&mut client, "cancel-1").await,
        pb::TaskStatus::Cancelled
    );
    assert!(pay.paid.lock().unwrap().is_empty());
}

#[tokio::test]
async fn get_task_replays_every_later_event_once_in_order() {
    let model = Arc::new(
        ScriptedChatModel::new()
            .with_tool_call("pay", r#"{"amount":5}"#)
            .with_tool_call("pay", r#"{"amount":6}"#)
            .with_text("Paid twice, as asked.")
            // Many text deltas, streamed (and kept) in batches.
            .with_chunk_chars(2),
    );
    let checkpoints: Arc<dyn Checkpointer> = Arc::new(InMemoryCheckpointer::new());
    let service = durable_service(model, Pay::default(), checkpoints, &[]);
    let mut client = client(serve(service).await).await;

    let streamed = drain(client.run_task(run_request("Pay", "replay-1")).await).await;
    assert_eq!(
        labels(&streamed).last().unwrap(),
        "final:Paid twice, as asked."
    );
    for from in 0..=streamed.len() as u64 + 1 {
        let replay = client
            .get_task(pb::GetTaskRequest {
                run_id: "replay-1".into(),
                from_sequence: from,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(replay.status, pb::TaskStatus::Completed as i32);
        let expected: Vec<_> = streamed
            .iter()
            .filter(|e| e.sequence >= from)
            .cloned()
            .collect();
        assert_eq!(replay.events, expected, "from_sequence {from}");
    }
    let unknown = client
        .get_task(pb::GetTaskRequest {
            run_id: "nobody".into(),
            from_sequence: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let unknown = client
        .resume_task(pb::ResumeTaskRequest {
            run_id: "nobody".into(),
        })
        .await
        .err()
        .unwrap();
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn resume_task_continues_in_another_service_on_the_same_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let pay = Pay::default();

    // The first service runs the tool, then its model hangs; the client goes away.
    let hanging = Arc::new(AtomicBool::new(false));
    let first_model = Arc::new(Hanging {
        inner: Arc::new(
            ScriptedChatModel::new()
                .with_tool_call("pay", r#"{"amount":7}"#)
                .with_text("never"),
        ),
        calls: AtomicUsize::new(0),
        hang_on: 2,
        hanging: hanging.clone(),
    });
    let checkpoints: Arc<dyn Checkpointer> = Arc::new(FileCheckpointer::new(dir.path()).unwrap());
    let mut first =
        client(serve(durable_service(first_model, pay.clone(), checkpoints, &[])).await).await;
    let mut stream = first
        .run_task(run_request("Pay seven", "resume-1"))
        .await
        .unwrap()
        .into_inner();
    let mut before = Vec::new();
    while let Some(item) = stream.next().await {
        let event = item.unwrap();
        let done = matches!(event.event, Some(Event::ToolResult(_)));
        before.push(event);
        if done {
            break;
        }
    }
    let start = tokio::time::Instant::now();
    while !hanging.load(Ordering::SeqCst) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the second turn never began"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(stream);
    assert_eq!(
        status(&mut first, "resume-1").await,
        pb::TaskStatus::Running
    );

    // Another service (a new checkpointer on the same directory) resumes it.
    let second_model = Arc::new(ScriptedChatModel::new().with_text("Paid seven."));
    let checkpoints: Arc<dyn Checkpointer> = Arc::new(FileCheckpointer::new(dir.path()).unwrap());
    let mut second =
        client(serve(durable_service(second_model, pay.clone(), checkpoints, &[])).await).await;
    let after = drain(
        second
            .resume_task(pb::ResumeTaskRequest {
                run_id: "resume-1".into(),
            })
            .await,
    )
    .await;
    assert_eq!(labels(&after), ["step2", "final:Paid seven."]);
    assert_eq!(*pay.paid.lock().unwrap(), [7], "the tool ran exactly once");
    // Numbering goes on from the events the first service streamed.
    assert_eq!(after[0].sequence, before.last().unwrap().sequence + 1);
    let replay = second
        .get_task(pb::GetTaskRequest {
            run_id: "resume-1".into(),
            from_sequence: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replay.status, pb::TaskStatus::Completed as i32);
    let all: Vec<_> = before.iter().chain(&after).cloned().collect();
    assert_eq!(replay.events, all);
}

#[tokio::test]
async fn the_typed_client_runs_decides_and_asks_about_durable_runs() {
    use catena_agents::grpc::{AgentServiceClient, TaskEvent, TaskRequest};
    use catena_agents::Decision;

    let model = Arc::new(
        ScriptedChatModel::new()
            .with_tool_call("pay", r#"{"amount":30}"#)
            .with_text("Paid."),
    );
    let pay = Pay::default();
    let checkpoints: Arc<dyn Checkpointer> = Arc::new(InMemoryCheckpointer::new());
    let addr = serve(durable_service(model, pay.clone(), checkpoints, &["pay"])).await;
    let client = AgentServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();

    // No run id asked for: the stream tells the one the service made up.
    let mut stream = client.run_task(TaskRequest::new("Pay thirty"));
    let mut events = Vec::new();
    while let Some(event) = stream.next().await {
        events.push(event.unwrap());
    }
    let run_id = stream.run_id().unwrap().to_owned();
    let Some(TaskEvent::ApprovalRequired {
        id,
        name,
        arguments,
    }) = events.last().cloned()
    else {
        panic!("{events:?}");
    };
    assert_eq!(
        (name.as_str(), arguments.as_str()),
        ("pay", r#"{"amount":30}"#)
    );
    let state = client.get_task(&run_id, 0).await.unwrap();
    assert_eq!(state.status, pb::TaskStatus::AwaitingApproval as i32);

    let events: Vec<_> = client
        .decide(
            &run_id,
            &id,
            Decision::approve_with_arguments(r#"{"amount":25}"#),
        )
        .map(Result::unwrap)
        .collect()
        .await;
    assert!(matches!(events.last(), Some(TaskEvent::FinalAnswer { text, .. }) if text == "Paid."));
    assert_eq!(*pay.paid.lock().unwrap(), [25]);
    let resumed: Vec<_> = client.resume_task(&run_id).collect().await;
    assert!(
        matches!(resumed.last(), Some(Ok(TaskEvent::FinalAnswer { text, .. })) if text == "Paid.")
    );
    let unknown = client.get_task("nobody", 0).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}

/// A checkpointer whose writes take a while, as a database's do.
struct SlowWrites(InMemoryCheckpointer);

#[async_trait]
impl Checkpointer for SlowWrites {
    async fn put(
        &self,
        run_id: &str,
        step: u64,
        state: &serde_json::Value,
    ) -> catena_core::Result<()> {
        tokio::time::sleep(Duration::from_millis(30)).await;
        self.0.put(run_id, step, state).await
    }
    async fn latest(&self, run_id: &str) -> catena_core::Result<Option<catena_core::Checkpoint>> {
        self.0.latest(run_id).await
    }
    async fn history(
        &self,
        run_id: &str,
        from: u64,
    ) -> catena_core::Result<Vec<catena_core::Checkpoint>> {
        self.0.history(run_id, from).await
    }
    async fn delete(&self, run_id: &str) -> catena_core::Result<()> {
        self.0.delete(run_id).await
    }
}

/// The final answer is sent only once the completed run is saved: the call ends with the
/// answer (and the server stops polling the run), so a save still pending then was lost and
/// the run stayed `RUNNING` forever (seen with PostgreSQL checkpoints).
#[tokio::test]
async fn a_run_whose_answer_was_streamed_is_completed_even_when_checkpoint_writes_are_slow() {
    let model = Arc::new(
        ScriptedChatModel::new()
            .with_tool_call("pay", r#"{"amount":3}"#)
            .with_text("Paid."),
    );
    let pay = Pay::default();
    let checkpointer: Arc<dyn Checkpointer> = Arc::new(SlowWrites(InMemoryCheckpointer::new()));
    let addr = serve(durable_service(model, pay.clone(), checkpointer, &[])).await;
    let mut client = client(addr).await;
    let events = drain(client.run_task(run_request("pay 3", "slow-1")).await).await;
    assert!(
        matches!(events.last().and_then(|e| e.event.as_ref()), Some(Event::FinalAnswer(a)) if a.text == "Paid."),
        "{events:?}"
    );
    assert_eq!(
        status(&mut client, "slow-1").await,
        pb::TaskStatus::Completed
    );
    assert_eq!(*pay.paid.lock().unwrap(), vec![3]);
}
