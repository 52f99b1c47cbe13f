//! Durable agent runs: checkpoints on disk, a process that stops between any two steps and a
//! new one that resumes, exactly-once tool effects, approvals and conflicting resumers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use catena_agents::{
    AgentExecutor, CallStatus, Decision, DurableAgent, RunInput, RunOutcome, RunStatus, INTERRUPTED,
};
use catena_core::test_utils::ScriptedChatModel;
use catena_core::{
    Checkpoint, Checkpointer, Error, FileCheckpointer, InMemoryCheckpointer, Message, Result, Role,
    Tool, ToolCallContext, ToolError, ToolOutput,
};
use serde_json::{json, Value};

/// A side effect the test can count: every call adds its amount and records its key.
struct Counter {
    total: Arc<AtomicU64>,
    calls: Arc<AtomicUsize>,
    keys: Arc<Mutex<Vec<String>>>,
    idempotent: bool,
    params: Value,
}

impl Counter {
    fn new(idempotent: bool) -> Self {
        Counter {
            total: Arc::default(),
            calls: Arc::default(),
            keys: Arc::default(),
            idempotent,
            params: json!({"type": "object", "properties": {"amount": {"type": "integer"}}}),
        }
    }
}

#[async_trait]
impl Tool for Counter {
    fn name(&self) -> &str {
        "add"
    }
    fn description(&self) -> &str {
        "Adds an amount to the counter."
    }
    fn parameters(&self) -> &Value {
        &self.params
    }
    async fn call(&self, _args: Value) -> std::result::Result<ToolOutput, ToolError> {
        Err(ToolError::Execution("call me with a context".into()))
    }
    fn idempotent(&self) -> bool {
        self.idempotent
    }
    async fn call_with_context(
        &self,
        args: Value,
        ctx: &ToolCallContext,
    ) -> std::result::Result<ToolOutput, ToolError> {
        let amount = args["amount"].as_u64().unwrap_or(0);
        self.calls.fetch_add(1, Ordering::SeqCst);
        // Takes a moment, as a real side effect does (and lets other tasks run meanwhile).
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        self.keys.lock().unwrap().push(ctx.idempotency_key.clone());
        let total = self.total.fetch_add(amount, Ordering::SeqCst) + amount;
        Ok(ToolOutput::new(format!("total {total}")))
    }
}

/// A checkpointer that "crashes the process" at step `at`: that write and every later one
/// fail, as if the process died just before it; what was written before stays on disk.
struct CrashAt {
    inner: Arc<dyn Checkpointer>,
    at: u64,
}

#[async_trait]
impl Checkpointer for CrashAt {
    async fn put(&self, run_id: &str, step: u64, state: &Value) -> Result<()> {
        if step >= self.at {
            return Err(Error::other("simulated crash"));
        }
        self.inner.put(run_id, step, state).await
    }
    async fn latest(&self, run_id: &str) -> Result<Option<Checkpoint>> {
        self.inner.latest(run_id).await
    }
    async fn history(&self, run_id: &str, from: u64) -> Result<Vec<Checkpoint>> {
        self.inner.history(run_id, from).await
    }
    async fn delete(&self, run_id: &str) -> Result<()> {
        self.inner.delete(run_id).await
    }
}

fn script() -> ScriptedChatModel {
    ScriptedChatModel::new()
        .with_tool_call("add", r#"{"amount":5}"#)
        .with_text("The counter is at 5.")
}

fn agent(
    model: ScriptedChatModel,
    tool: Arc<Counter>,
    saver: Arc<dyn Checkpointer>,
) -> DurableAgent {
    let executor = AgentExecutor::builder(Arc::new(model))
        .system_prompt("You keep a counter.")
        .tool(tool)
        .build()
        .unwrap();
    DurableAgent::new(executor, saver)
}

/// The steps an uninterrupted run writes, and its answer.
async fn uninterrupted() -> (Vec<RunStatus>, String) {
    let saver = Arc::new(InMemoryCheckpointer::new());
    let tool = Arc::new(Counter::new(false));
    let a = agent(script(), tool.clone(), saver.clone());
    let RunOutcome::Completed { output, .. } =
        a.start("ref", RunInput::text("Add 5")).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(tool.total.load(Ordering::SeqCst), 5);
    let states = saver
        .history("ref", 0)
        .await
        .unwrap()
        .into_iter()
        .map(|c| {
            serde_json::from_value::<catena_agents::RunState>(c.state)
                .unwrap()
                .status
        })
        .collect();
    (states, output)
}

#[tokio::test]
async fn a_run_stopped_between_any_two_steps_resumes_and_its_tool_runs_exactly_once() {
    let (statuses, answer) = uninterrupted().await;
    // 0 start, 1 model turn with the call, 2 in flight, 3 finished, 4 results appended,
    // 5 completed.
    assert_eq!(statuses.len(), 6, "{statuses:?}");
    for crash_at in 1..6u64 {
        let dir = tempfile::tempdir().unwrap();
        let disk: Arc<dyn Checkpointer> = Arc::new(FileCheckpointer::new(dir.path()).unwrap());
        let tool = Arc::new(Counter::new(false));
        // The first process dies at `crash_at`.
        let first = agent(
            script(),
            tool.clone(),
            Arc::new(CrashAt {
                inner: disk.clone(),
                at: crash_at,
            }),
        );
        let err = first
            .start("run-1", RunInput::text("Add 5"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("simulated crash"), "{err}");
        drop(first);
        // A new process: new model client (the script goes on where the first stopped),
        // new executor, the same directory.
        let model = if crash_at <= 1 {
            script()
        } else {
            ScriptedChatModel::new().with_text("The counter is at 5.")
        };
        let fresh = FileCheckpointer::new(dir.path()).unwrap();
        let second = agent(model, tool.clone(), Arc::new(fresh));
        let outcome = second.resume("run-1").await.unwrap();
        let RunOutcome::Completed { output, .. } = outcome else {
            panic!("crash at {crash_at}: {outcome:?}")
        };
        assert_eq!(output, answer, "crash at {crash_at}");
        // Whenever the first process died, the effect happened exactly once.
        assert_eq!(tool.calls.load(Ordering::SeqCst), 1, "crash at {crash_at}");
        assert_eq!(tool.total.load(Ordering::SeqCst), 5, "crash at {crash_at}");
        if crash_at == 3 {
            // Died after the tool ran, before its result was saved: the call was in flight,
            // and a non-idempotent tool is not repeated; the model is told.
            let state = second.state("run-1").await.unwrap().unwrap();
            let tool_msg = state
                .messages
                .iter()
                .find(|m| m.role == Role::Tool)
                .unwrap();
            assert!(tool_msg.text().contains(INTERRUPTED), "{}", tool_msg.text());
        }
    }
}

#[tokio::test]
async fn a_call_in_flight_at_a_crash_is_repeated_only_when_idempotent_with_the_same_key() {
    for idempotent in [false, true] {
        let disk: Arc<dyn Checkpointer> = Arc::new(InMemoryCheckpointer::new());
        let tool = Arc::new(Counter::new(idempotent));
        let first = agent(
            script(),
            tool.clone(),
            Arc::new(CrashAt {
                inner: disk.clone(),
                at: 3,
            }),
        );
        assert!(first.start("r", RunInput::text("Add 5")).await.is_err());
        assert_eq!(tool.calls.load(Ordering::SeqCst), 1);
        let second = agent(
            ScriptedChatModel::new().with_text("done"),
            tool.clone(),
            disk.clone(),
        );
        second.resume("r").await.unwrap();
        let keys = tool.keys.lock().unwrap().clone();
        if idempotent {
            assert_eq!(keys.len(), 2);
            assert_eq!(
                keys[0], keys[1],
                "a repeated call carries the same idempotency key"
            );
            assert_eq!(keys[0], "r:call_0");
        } else {
            assert_eq!(keys.len(), 1, "a non-idempotent call is never repeated");
        }
    }
}

#[tokio::test]
async fn approvals_run_edited_arguments_tell_the_model_of_rejections_and_cancel() {
    // Approve with edited arguments.
    let saver: Arc<dyn Checkpointer> = Arc::new(InMemoryCheckpointer::new());
    let tool = Arc::new(Counter::new(false));
    let a = agent(script(), tool.clone(), saver.clone()).require_approval(["add"]);
    let outcome = a.start("ap", RunInput::text("Add 5")).await.unwrap();
    let RunOutcome::AwaitingApproval { call, .. } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(
        (call.name.as_str(), call.arguments.as_str()),
        ("add", r#"{"amount":5}"#)
    );
    assert_eq!(
        tool.calls.load(Ordering::SeqCst),
        0,
        "nothing runs before the decision"
    );
    // A decision about another call, or bad JSON, is refused and changes nothing.
    assert!(a.decide("ap", "nope", Decision::approve()).await.is_err());
    assert!(a
        .decide(
            "ap",
            &call.id,
            Decision::approve_with_arguments("{not json")
        )
        .await
        .is_err());
    // Resuming without a decision keeps waiting.
    assert!(matches!(
        a.resume("ap").await.unwrap(),
        RunOutcome::AwaitingApproval { .. }
    ));
    // Another process (another replica) decides.
    let other = agent(
        ScriptedChatModel::new().with_text("The counter is at 7."),
        tool.clone(),
        saver.clone(),
    )
    .require_approval(["add"]);
    let done = other
        .decide(
            "ap",
            &call.id,
            Decision::approve_with_arguments(r#"{"amount":7}"#),
        )
        .await
        .unwrap();
    assert!(matches!(done, RunOutcome::Completed { .. }), "{done:?}");
    assert_eq!(
        tool.total.load(Ordering::SeqCst),
        7,
        "ran with the edited arguments"
    );

    // Reject: the model sees why, the tool never runs.
    let tool = Arc::new(Counter::new(false));
    let model = Arc::new(script());
    let executor = AgentExecutor::builder(model.clone())
        .tool(tool.clone())
        .build()
        .unwrap();
    let a = DurableAgent::new(executor, Arc::new(InMemoryCheckpointer::new()))
        .require_approval(["add"]);
    let RunOutcome::AwaitingApproval { call, .. } =
        a.start("rj", RunInput::text("Add 5")).await.unwrap()
    else {
        panic!()
    };
    a.decide("rj", &call.id, Decision::reject("not today"))
        .await
        .unwrap();
    assert_eq!(tool.calls.load(Ordering::SeqCst), 0);
    let last_request = model.requests().last().unwrap().clone();
    let result = last_request.messages.last().unwrap();
    assert_eq!(result.tool_call_id.as_deref(), Some(call.id.as_str()));
    assert!(
        result.text().contains("rejected by a person: not today"),
        "{}",
        result.text()
    );

    // Cancel.
    let a = agent(
        script(),
        Arc::new(Counter::new(false)),
        Arc::new(InMemoryCheckpointer::new()),
    )
    .require_approval(["add"]);
    let RunOutcome::AwaitingApproval { call, .. } =
        a.start("cx", RunInput::text("Add 5")).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(
        a.decide("cx", &call.id, Decision::Cancel).await.unwrap(),
        RunOutcome::Cancelled
    );
    assert_eq!(a.resume("cx").await.unwrap(), RunOutcome::Cancelled);
}

#[tokio::test]
async fn two_processes_resuming_one_run_cannot_both_run_its_tools() {
    let saver: Arc<dyn Checkpointer> = Arc::new(InMemoryCheckpointer::new());
    let tool = Arc::new(Counter::new(false));
    let first = agent(
        script(),
        tool.clone(),
        Arc::new(CrashAt {
            inner: saver.clone(),
            at: 2,
        }),
    );
    assert!(first.start("dup", RunInput::text("Add 5")).await.is_err());
    let a = agent(
        ScriptedChatModel::new().with_text("a"),
        tool.clone(),
        saver.clone(),
    );
    let b = agent(
        ScriptedChatModel::new().with_text("b"),
        tool.clone(),
        saver.clone(),
    );
    let (ra, rb) = tokio::join!(a.resume("dup"), b.resume("dup"));
    let errors: Vec<&Error> = [&ra, &rb]
        .into_iter()
        .filter_map(|r| r.as_ref().err())
        .collect();
    assert_eq!(errors.len(), 1, "{ra:?} / {rb:?}");
    assert!(
        errors[0].as_checkpoint_conflict().is_some(),
        "{}",
        errors[0]
    );
    assert_eq!(tool.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_run_starts_from_a_conversation_and_refuses_a_used_run_id() {
    let model = Arc::new(ScriptedChatModel::new().with_text("You said blue."));
    let executor = AgentExecutor::builder(model.clone())
        .system_prompt("Be brief.")
        .build()
        .unwrap();
    let a = DurableAgent::new(executor, Arc::new(InMemoryCheckpointer::new()));
    let conversation = vec![
        Message::user("My favourite colour is blue."),
        Message::assistant("Noted."),
        Message::user("What did I say?"),
    ];
    let outcome = a
        .start("conv", RunInput::messages(conversation))
        .await
        .unwrap();
    assert!(matches!(outcome, RunOutcome::Completed { .. }));
    let sent = &model.requests()[0].messages;
    assert_eq!(sent.len(), 4);
    assert_eq!(sent[0].role, Role::System);
    assert_eq!(sent[2].text(), "Noted.");
    let again = a.start("conv", RunInput::text("again")).await.unwrap_err();
    assert!(matches!(again, Error::InvalidInput(_)), "{again}");
    assert!(a.start("../x", RunInput::text("x")).await.is_err());
    let state = a.state("conv").await.unwrap().unwrap();
    assert!(state.calls.iter().all(|c| c.status != CallStatus::Pending));
}

#[tokio::test]
async fn repeated_call_ids_are_made_unique_so_a_decision_never_reruns_a_finished_call() {
    // A server that sends two calls with the same id in one turn (and `call_0` again the
    // next turn): before, a decision about the second one landed on the first, finished,
    // call and ran it again.
    let dup = catena_core::ChatResponse::new(Message::assistant_with_tool_calls(
        "",
        vec![
            catena_core::ToolCall::new("x", "add", r#"{"amount":5}"#),
            catena_core::ToolCall::new("x", "pay", r#"{"amount":500}"#),
        ],
    ));
    let model = ScriptedChatModel::new()
        .with_response(dup)
        .with_tool_call("add", r#"{"amount":1}"#)
        .with_text("done");
    let tool = Arc::new(Counter::new(false));
    let pay = Arc::new(Pay::default());
    let executor = AgentExecutor::builder(Arc::new(model))
        .tool(tool.clone())
        .tool(pay.clone())
        .build()
        .unwrap();
    let agent = DurableAgent::new(executor, Arc::new(InMemoryCheckpointer::new()))
        .require_approval(["pay"]);
    let outcome = agent.start("dup-ids", RunInput::text("go")).await.unwrap();
    let RunOutcome::AwaitingApproval { call, .. } = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(call.name, "pay", "the approver sees the call that waits");
    assert_ne!(call.id, "x", "the repeated id was rewritten");
    assert_eq!(tool.calls.load(Ordering::SeqCst), 1);
    let done = agent
        .decide("dup-ids", &call.id, Decision::approve())
        .await
        .unwrap();
    assert!(matches!(done, RunOutcome::Completed { .. }), "{done:?}");
    assert_eq!(pay.calls.load(Ordering::SeqCst), 1);
    // `add` ran once per call the model made (5, then 1), never again.
    assert_eq!(tool.calls.load(Ordering::SeqCst), 2);
    assert_eq!(tool.total.load(Ordering::SeqCst), 6);
    let keys = tool.keys.lock().unwrap().clone();
    assert_ne!(keys[0], keys[1], "idempotency keys differ across turns");
    // Results pair with their (rewritten) calls in the conversation.
    let state = agent.state("dup-ids").await.unwrap().unwrap();
    let asked: Vec<String> = state
        .messages
        .iter()
        .flat_map(|m| m.tool_calls.iter().map(|c| c.id.clone()))
        .collect();
    let answered: Vec<String> = state
        .messages
        .iter()
        .filter_map(|m| m.tool_call_id.clone())
        .collect();
    assert_eq!(asked, answered);
}

#[derive(Default)]
struct Pay {
    calls: AtomicUsize,
}

#[async_trait]
impl Tool for Pay {
    fn name(&self) -> &str {
        "pay"
    }
    fn description(&self) -> &str {
        "Pays."
    }
    fn parameters(&self) -> &Value {
        static P: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
        P.get_or_init(|| json!({"type": "object"}))
    }
    async fn call(&self, _: Value) -> std::result::Result<ToolOutput, ToolError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(ToolOutput::new("paid"))
    }
}
