//! The chat page (`GET /`) end to end in headless Chromium: the gateway runs in-process on
//! loopback with a scripted model, and scripts under `examples/gateway/e2e/` (playwright-core)
//! drive the page and report what it shows:
//! - `chat.mjs` types a key and a question, clicks Ask and reads the streamed answer and its
//!   sources;
//! - `conversation.mjs` uploads files, asks, and runs tasks against a real durable agent
//!   service (in-process, on loopback), approving one pending tool call and rejecting another
//!   with a reason, all through the page's buttons; the transcript keeps every turn and a task
//!   carries the earlier turns as its history.
//!
//! Chromium (Debian's `chromium`) and playwright-core come from `scripts/browser.sh`, which this
//! test runs unless `CATENA_CHROMIUM` and `CATENA_PLAYWRIGHT_DIR` are already set. It needs `node`
//! (20 or later). `CATENA_SKIP_BROWSER=1` skips the test where no browser can be installed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use catena_agents::grpc::{AgentGrpcService, DurableTask, TaskContext};
use catena_agents::{AgentExecutor, RunInput};
use catena_core::test_utils::ScriptedChatModel;
use catena_core::{
    ChatModel, ChatRequest, ChatResponse, FinishReason, InMemoryCheckpointer, Message, Role, Tool,
    ToolCall, ToolError, ToolOutput,
};
use example_gateway::auth::hash_key;
use example_gateway::config::Config;
use serde_json::{json, Value};
use tokio::process::Command;

mod support;

use support::Running;

const KEY: &str = "browser-test-key";
const SOURCE: &str = "handbook/ownership.md";
/// Streamed 4 characters per chunk by the scripted model; it has leading spaces, a line break,
/// markup that must stay text, and characters outside ASCII.
const ANSWER: &str = "Rust checks ownership at compile time — so it needs no garbage collector.\n\
                      Borrowing rules keep <b>references</b> valid & data races out.";

fn config() -> Config {
    let mut c = Config::default();
    c.auth.api_key_sha256 = vec![hash_key(KEY)];
    c.limits.requests_per_minute = 600;
    c.limits.burst = 100;
    c
}

async fn start_with(config: Config, chat: Arc<dyn ChatModel>) -> Running {
    support::start(config, support::backends(chat, 256)).await
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where Chromium and playwright-core are: from the environment, or installed by
/// `scripts/browser.sh` (whose export lines bash evaluates, so quoting round-trips).
async fn browser_env() -> (String, String) {
    if let (Ok(chromium), Ok(driver)) = (
        std::env::var("CATENA_CHROMIUM"),
        std::env::var("CATENA_PLAYWRIGHT_DIR"),
    ) {
        return (chromium, driver);
    }
    let run = Command::new("bash")
        .arg("-c")
        .arg(
            r#"set -e; exports="$(bash scripts/browser.sh)"; eval "$exports"; printf '%s\n%s\n' "$CATENA_CHROMIUM" "$CATENA_PLAYWRIGHT_DIR""#,
        )
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(900), run)
        .await
        .expect("scripts/browser.sh finishes in 15 minutes")
        .expect("bash runs");
    assert!(
        out.status.success(),
        "scripts/browser.sh failed ({}); set CATENA_SKIP_BROWSER=1 to skip this test",
        out.status
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines().map(str::to_owned);
    (lines.next().unwrap(), lines.next().unwrap())
}

/// Runs `examples/gateway/e2e/{script}` with `args` and parses the JSON it prints.
async fn run_script(script: &str, args: &[&str]) -> Value {
    let (chromium, driver) = browser_env().await;
    let root = workspace_root();
    let run = Command::new("node")
        .arg(root.join("examples/gateway/e2e").join(script))
        .args(args)
        .args(["--timeout-ms", "60000"])
        .env("CATENA_API_KEY", KEY)
        .env("CATENA_CHROMIUM", chromium)
        .env("CATENA_PLAYWRIGHT_DIR", driver)
        .current_dir(&root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .unwrap_or_else(|_| panic!("{script} finishes in 3 minutes"))
        .expect("node runs (Node.js 20 or later is needed)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{script} failed ({}):\n{stderr}\n{stdout}",
        out.status
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"))
}

/// Runs `chat.mjs` against the gateway.
async fn drive_page(base: &str, question: &str, bad_key: &str) -> Value {
    run_script(
        "chat.mjs",
        &["--url", base, "--question", question, "--bad-key", bad_key],
    )
    .await
}

fn skip_browser() -> bool {
    let skip = std::env::var_os("CATENA_SKIP_BROWSER").is_some_and(|v| v == "1");
    if skip {
        eprintln!("CATENA_SKIP_BROWSER=1: skipping the headless Chromium test");
    }
    skip
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_page_streams_the_answer_and_lists_sources_in_chromium() {
    if skip_browser() {
        return;
    }
    let model = ScriptedChatModel::new()
        .with_responder(|_| Ok(ChatResponse::new(Message::assistant(ANSWER))));
    let g = start_with(config(), Arc::new(model)).await;

    let res = {
        example_gateway::install_crypto_provider();
        reqwest::Client::new()
    }
        .post(format!("{}/v1/documents", g.base))
        .bearer_auth(KEY)
        .json(&json!({ "documents": [{
            "source": SOURCE,
            "content": "Rust checks ownership and borrowing at compile time; it has no garbage collector."
        }]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());

    let page = drive_page(
        &g.base,
        "Does Rust need a garbage collector?",
        "not-the-key",
    )
    .await;

    // The answer, exactly as the model streamed it, in pieces, as text (no markup).
    assert_eq!(page["answer"], ANSWER, "{page:#}");
    assert!(
        page["answer_updates"].as_u64().unwrap() > 1,
        "the answer arrived in several updates: {page:#}"
    );
    assert_eq!(page["status"], "", "{page:#}");
    assert_eq!(page["state"], "done", "{page:#}");
    let sources: Vec<&str> = page["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(!sources.is_empty(), "{page:#}");
    assert!(sources.iter().all(|s| *s == SOURCE), "{page:#}");
    assert!(
        page["source_texts"][0]
            .as_str()
            .unwrap()
            .starts_with(&format!("{SOURCE} (score ")),
        "{page:#}"
    );
    assert_eq!(page["errors"], json!([]), "{page:#}");

    // A wrong key: the page shows the 401 problem and nothing else.
    let bad = &page["bad_key"];
    let status = bad["status"].as_str().unwrap();
    assert!(status.starts_with("unauthorized"), "{bad:#}");
    assert_eq!(bad["state"], "error", "{bad:#}");
    assert_eq!(bad["answer"], "", "{bad:#}");
    assert_eq!(bad["sources"], json!([]), "{bad:#}");

    g.shutdown().await;
}

/// The file the conversation test uploads through the page, and what it says.
const NOTES: &str = "notes.md";
const NOTES_TEXT: &str =
    "# Office notes\n\nThe vault code is 4711. Payments need a person's approval.";
const QUESTION: &str = "What is the vault code?";
/// The gateway's model answers this when the uploaded notes are in its context.
const NOTES_ANSWER: &str = "The notes say the vault code is 4711.";
const FIRST_TASK: &str = "Pay the invoice.";
const SECOND_TASK: &str = "Pay it again.";
/// Markup in a reason must reach the model, and come back to the page, as text.
const REASON: &str = "No payments on <b>Sundays</b>.";

/// The gateway's own model (for `/v1/query`): answers from the notes when they are in its
/// context.
fn notes_model() -> ScriptedChatModel {
    ScriptedChatModel::new().with_responder(|req: &ChatRequest| {
        let seen = req
            .messages
            .iter()
            .any(|m| m.text().contains("vault code is 4711"));
        let answer = if seen { NOTES_ANSWER } else { "I do not know." };
        Ok(ChatResponse::new(Message::assistant(answer)))
    })
}

/// A tool `pay` (`{ "amount": number }`) that records the arguments it ran with.
#[derive(Clone)]
struct Pay {
    calls: Arc<Mutex<Vec<Value>>>,
    schema: Value,
}

impl Pay {
    fn new() -> Self {
        Pay {
            calls: Arc::default(),
            schema: json!({ "type": "object", "properties": { "amount": { "type": "number" } } }),
        }
    }
}

#[async_trait]
impl Tool for Pay {
    fn name(&self) -> &str {
        "pay"
    }
    fn description(&self) -> &str {
        "Pays an amount."
    }
    fn parameters(&self) -> &Value {
        &self.schema
    }
    async fn call(&self, args: Value) -> Result<ToolOutput, ToolError> {
        let amount = args["amount"].clone();
        self.calls.lock().unwrap().push(args);
        Ok(ToolOutput::new(format!("paid {amount}")))
    }
}

/// The agent's model: calls `pay` with `{"amount": 5}` (with a remark) until it has a tool
/// result, then answers with every result it was told. Records the text of each request's
/// messages.
fn agent_model(seen: Arc<Mutex<Vec<String>>>) -> ScriptedChatModel {
    ScriptedChatModel::new().with_responder(move |req: &ChatRequest| {
        let all: Vec<String> = req.messages.iter().map(Message::text).collect();
        seen.lock().unwrap().push(all.join("\n"));
        let results: Vec<String> = req
            .messages
            .iter()
            .filter(|m| m.role == Role::Tool)
            .map(Message::text)
            .collect();
        if results.is_empty() {
            let call = ToolCall::new("call_0", "pay", r#"{"amount":5}"#);
            return Ok(ChatResponse::new(Message::assistant_with_tool_calls(
                "I will <i>pay</i> 5.",
                vec![call],
            ))
            .with_finish_reason(FinishReason::ToolCalls));
        }
        Ok(
            ChatResponse::new(Message::assistant(format!("Told: {}", results.join(" | "))))
                .with_finish_reason(FinishReason::Stop),
        )
    })
}

/// A durable agent service on loopback over `model` and `pay`, which needs approval.
async fn durable_agent(model: ScriptedChatModel, pay: Pay) -> String {
    let model: Arc<dyn ChatModel> = Arc::new(model);
    let tools: Vec<Arc<dyn Tool>> = vec![Arc::new(pay)];
    let service = AgentGrpcService::new_durable(
        Arc::new(InMemoryCheckpointer::new()),
        move |ctx: TaskContext| {
            let executor = ctx
                .apply_limits(AgentExecutor::builder(ctx.model(model.clone())))
                .tools(ctx.select_tools(&tools)?)
                .build()?;
            Ok(DurableTask::new(executor, RunInput::text(ctx.prompt())))
        },
    )
    .require_approval(["pay"]);
    let (router, _health) = service.into_router().await;
    support::serve_grpc(router).await
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

/// The events of a turn of kind `kind` (`tool-call`, `tool-result`, `approval`, `step`).
fn events<'a>(turn: &'a Value, kind: &str) -> Vec<&'a Value> {
    turn["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"].as_str().unwrap().split(' ').any(|k| k == kind))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_uploads_files_asks_and_runs_tasks_with_approvals_keeping_the_conversation() {
    if skip_browser() {
        return;
    }
    let pay = Pay::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let agent = durable_agent(agent_model(seen.clone()), pay.clone()).await;
    let mut c = config();
    c.agent.url = Some(agent);
    c.agent.durable = true;
    let g = start_with(c, Arc::new(notes_model())).await;

    let plan = json!([
        { "upload": [{ "name": "empty.txt", "content": "  \n" }] },
        { "upload": [{ "name": NOTES, "content": NOTES_TEXT }] },
        { "ask": QUESTION },
        { "task": FIRST_TASK, "decide": "approve" },
        { "task": SECOND_TASK, "decide": "reject", "reason": REASON },
    ]);
    let dir = tempfile::tempdir().unwrap();
    let plan_path = dir.path().join("plan.json");
    std::fs::write(&plan_path, plan.to_string()).unwrap();
    let mut args = vec!["--url", &g.base, "--plan", plan_path.to_str().unwrap()];
    // CATENA_E2E_SCREENSHOT=page.png keeps a picture of the page at the end.
    let screenshot = std::env::var("CATENA_E2E_SCREENSHOT").ok();
    if let Some(path) = &screenshot {
        args.extend(["--screenshot", path]);
    }
    let page = run_script("conversation.mjs", &args).await;
    let steps = &page["steps"];
    assert_eq!(page["errors"], json!([]), "{page:#}");
    assert_eq!(
        page["markup"], 0,
        "model and tool text stays text: {page:#}"
    );

    // Uploads: an empty file is refused on the page; the notes are indexed and counted.
    let refused = &steps[0]["upload"];
    assert_eq!(refused["state"], "error", "{refused:#}");
    assert!(
        refused["text"]
            .as_str()
            .unwrap()
            .contains("empty.txt is empty"),
        "{refused:#}"
    );
    let uploaded = &steps[1]["upload"];
    assert_eq!(uploaded["state"], "done", "{uploaded:#}");
    let text = uploaded["text"].as_str().unwrap();
    assert!(text.contains(NOTES), "{uploaded:#}");
    assert!(
        text.contains("1 chunk(s) (1 added, 0 updated"),
        "{uploaded:#}"
    );

    // The question is answered from the uploaded file, which is its source.
    let asked = &steps[2]["turn"];
    assert_eq!(asked["state"], "done", "{asked:#}");
    assert_eq!(asked["answer"], NOTES_ANSWER, "{asked:#}");
    assert_eq!(strs(&asked["sources"]), [NOTES], "{asked:#}");

    // The first task stops for approval, showing the pending call and its remark.
    let stopped = &steps[3]["approval"];
    assert_eq!(stopped["state"], "awaiting-approval", "{stopped:#}");
    assert!(
        stopped["run_id"].as_str().unwrap().starts_with('t'),
        "{stopped:#}"
    );
    let pending = events(stopped, "approval");
    assert_eq!(pending.len(), 1, "{stopped:#}");
    assert_eq!(pending[0]["name"], "pay");
    assert_eq!(pending[0]["pending"], true);
    assert!(
        pending[0]["text"]
            .as_str()
            .unwrap()
            .contains(r#""amount": 5"#),
        "{stopped:#}"
    );
    assert!(
        events(stopped, "step")[0]["text"]
            .as_str()
            .unwrap()
            .contains("I will <i>pay</i> 5."),
        "{stopped:#}"
    );
    assert!(pay.calls.lock().unwrap().len() <= 1);

    // Approved: the tool ran, its result and the answer show in the same turn.
    let approved = &steps[3]["turn"];
    assert_eq!(approved["state"], "done", "{approved:#}");
    assert_eq!(events(approved, "approval")[0]["decision"], "approve");
    // In order: the step it stopped in, the decision, the call and its result, the next step.
    let kinds: Vec<&str> = approved["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["step", "approval", "tool-call", "tool-result", "step"],
        "{approved:#}"
    );
    let calls = events(approved, "tool-call");
    assert_eq!(calls[0]["name"], "pay");
    assert!(
        calls[0]["text"]
            .as_str()
            .unwrap()
            .contains(r#""amount": 5"#),
        "{approved:#}"
    );
    let results = events(approved, "tool-result");
    assert_eq!(results.len(), 1, "{approved:#}");
    assert!(
        results[0]["text"].as_str().unwrap().contains("paid 5"),
        "{approved:#}"
    );
    assert_eq!(approved["answer"], "Told: paid 5", "{approved:#}");
    assert_eq!(strs(&approved["sources"]), [NOTES], "{approved:#}");
    assert_eq!(*pay.calls.lock().unwrap(), [json!({ "amount": 5 })]);

    // Rejected with a reason: the call did not run and the model was told why.
    let rejected = &steps[4]["turn"];
    assert_eq!(steps[4]["approval"]["state"], "awaiting-approval");
    assert_eq!(rejected["state"], "done", "{rejected:#}");
    assert_eq!(events(rejected, "approval")[0]["decision"], "reject");
    let answer = rejected["answer"].as_str().unwrap();
    assert!(answer.starts_with("Told: "), "{rejected:#}");
    assert!(answer.contains(REASON), "{rejected:#}");
    assert_eq!(pay.calls.lock().unwrap().len(), 1);

    // The transcript keeps every turn, oldest first.
    let transcript = page["transcript"].as_array().unwrap();
    let turns: Vec<(&str, &str, &str)> = transcript
        .iter()
        .map(|t| {
            (
                t["kind"].as_str().unwrap(),
                t["prompt"].as_str().unwrap(),
                t["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        turns,
        [
            ("ask", QUESTION, "done"),
            ("task", FIRST_TASK, "done"),
            ("task", SECOND_TASK, "done")
        ],
        "{page:#}"
    );
    assert_eq!(transcript[1]["answer"], "Told: paid 5");

    // Each task carried the earlier answered turns as its history (the first task: the
    // question; the second: the question and the first task), and the agent's model saw them.
    let tasks: Vec<&Value> = page["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["path"] == "/v1/tasks")
        .collect();
    assert_eq!(tasks.len(), 2, "{page:#}");
    let asked = json!([
        { "role": "user", "content": QUESTION },
        { "role": "assistant", "content": NOTES_ANSWER },
    ]);
    assert_eq!(
        tasks[0]["body"],
        json!({ "task": FIRST_TASK, "history": asked }),
        "{page:#}"
    );
    let history = json!([
        { "role": "user", "content": QUESTION },
        { "role": "assistant", "content": NOTES_ANSWER },
        { "role": "user", "content": FIRST_TASK },
        { "role": "assistant", "content": "Told: paid 5" },
    ]);
    assert_eq!(
        tasks[1]["body"],
        json!({ "task": SECOND_TASK, "history": history }),
        "{page:#}"
    );
    let seen = seen.lock().unwrap().clone();
    let second = seen
        .iter()
        .find(|s| s.contains(&format!("Task: {SECOND_TASK}")))
        .unwrap_or_else(|| panic!("the agent's model saw the second task: {seen:#?}"));
    let expected = format!(
        "Conversation so far:\nuser: {QUESTION}\nassistant: {NOTES_ANSWER}\nuser: {FIRST_TASK}\nassistant: Told: paid 5\n"
    );
    assert!(second.contains(&expected), "{second}");
    let decisions: Vec<&str> = page["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["path"].as_str())
        .filter(|p| p.ends_with("/approve") || p.ends_with("/reject"))
        .map(|p| p.rsplit('/').next().unwrap())
        .collect();
    assert_eq!(decisions, ["approve", "reject"], "{page:#}");
    let reject = page["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["path"].as_str().unwrap().ends_with("/reject"))
        .unwrap();
    assert_eq!(reject["body"]["message"], REASON, "{reject:#}");

    g.shutdown().await;
}
