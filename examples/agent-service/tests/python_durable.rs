//! Durable runs in the Python agent service (examples/python-agent: LangGraph with its
//! PostgreSQL checkpointer), driven by the Rust client as the Rust service is in
//! `durable.rs`. The service runs as a child process with its scripted test model
//! (`CATENA_PY_AGENT_SCRIPT`), durable runs in the test database
//! (`CATENA_PY_AGENT_CHECKPOINTS` = `DATABASE_URL`, which the test command sets) and its
//! test-only side-effecting tool `http_get`, allowed to reach a loopback counter only
//! (`CATENA_PY_AGENT_TEST_HTTP_ALLOW`).
//!
//! - Killed with SIGKILL after the tool finished and while the next model turn waits (the
//!   scripted turn waits for a file), then started again: `ResumeTask` completes the run, the
//!   counter saw exactly one request, and the answer equals an uninterrupted run's.
//! - Approval (`CATENA_APPROVAL_TOOLS=http_get`): approve with edited arguments, reject (the
//!   model sees why), cancel, the refusals, and `GetTask` replay from every sequence number.
//! - Without checkpoints the durable RPCs answer FAILED_PRECONDITION.
//!
//! Every run id is unique to the test process, so reruns against one database never collide.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use catena_agents::grpc::pb::{
    self, agent_service_client, decide_request, run_task_response::Event,
};
use futures::StreamExt;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tonic::Code;

type Client = agent_service_client::AgentServiceClient<tonic::transport::Channel>;

/// How long any one wait may take: generous, for a loaded two-core machine.
const PATIENCE: Duration = Duration::from_secs(120);

fn repo_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .expect("DATABASE_URL must name the test PostgreSQL (the test command sets it)")
}

/// A run id no other test process used.
fn run_id(name: &str) -> String {
    static PREFIX: OnceLock<String> = OnceLock::new();
    let prefix = PREFIX.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        format!("pyd-{nanos:x}-{}", std::process::id())
    });
    format!("{prefix}-{name}")
}

/// Runs the setup script once per test process.
fn setup() {
    static SETUP: OnceLock<()> = OnceLock::new();
    SETUP.get_or_init(|| {
        let status = std::process::Command::new("bash")
            .arg("scripts/python-agent.sh")
            .arg("setup")
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .status()
            .expect("bash runs");
        assert!(status.success(), "scripts/python-agent.sh setup failed");
    });
}

/// Reads one HTTP/1.1 request's request line (the counter's requests have no body).
async fn read_request_line(socket: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    head.lines().next().map(str::to_owned)
}

/// The side effect: a loopback HTTP server that counts the requests to each path and
/// answers `request N` (N: the requests to that path so far).
#[derive(Clone)]
struct Counter {
    addr: SocketAddr,
    paths: Arc<Mutex<Vec<String>>>,
}

impl Counter {
    async fn start() -> Counter {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let counter = Counter {
            addr: listener.local_addr().unwrap(),
            paths: Arc::default(),
        };
        let paths = counter.paths.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let paths = paths.clone();
                tokio::spawn(async move {
                    let Some(line) = read_request_line(&mut socket).await else {
                        return;
                    };
                    let path = line.split(' ').nth(1).unwrap_or_default().to_owned();
                    let n = {
                        let mut p = paths.lock().unwrap();
                        p.push(path.clone());
                        p.iter().filter(|q| **q == path).count()
                    };
                    let body = format!("request {n}");
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        counter
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn paths(&self) -> Vec<String> {
        self.paths.lock().unwrap().clone()
    }
}

/// The scripted model's turns, per task: each fetches one counter path, then answers from
/// what the fetch returned (so an interrupted and an uninterrupted run answer alike, unless
/// the tool ran twice). The `killed` task's second turn waits for `gate` to exist.
fn script(counter: &Counter, gate: &Path) -> serde_json::Value {
    let fetch = |path: &str| json!({"tool_calls": [{"name": "http_get", "args": {"url": counter.url(path)}}]});
    json!({"scripts": [
        {"match": "plain", "steps": [fetch("/plain"), {"text": "Done: {last_tool_result}"}]},
        {"match": "killed", "steps": [
            fetch("/killed"),
            {"wait_for_file": gate, "text": "Done: {last_tool_result}"}
        ]},
        {"match": "approve", "steps": [fetch("/asked"), {"text": "Done: {last_tool_result}"}]},
        {"match": "reject", "steps": [fetch("/rejected"), {"text": "The model saw: {last_tool_result}"}]},
        {"match": "cancel", "steps": [fetch("/cancelled"), {"text": "never"}]},
        {"match": "hello", "steps": [{"text": "Hi."}]}
    ]})
}

/// The Python service as a child process (`scripts/python-agent.sh run`, which execs
/// Python: the child is the server itself); killed on drop.
struct PyService {
    child: Child,
    addr: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl PyService {
    async fn start(script: &Path, env: &[(&str, String)]) -> PyService {
        setup();
        let mut child = Command::new("bash")
            .args(["scripts/python-agent.sh", "run", "127.0.0.1:0"])
            .current_dir(repo_root())
            .env("CATENA_PY_AGENT_SCRIPT", script)
            .env_remove("CATENA_AGENT_TOKEN")
            .env_remove("CATENA_PY_AGENT_CHECKPOINTS")
            .env_remove("CATENA_APPROVAL_TOOLS")
            .env_remove("CATENA_PY_AGENT_TEST_HTTP_ALLOW")
            .env_remove("CATENA_PY_AGENT_SPAN_LOG")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let log = Arc::new(Mutex::new(Vec::<String>::new()));
        let addr = tokio::time::timeout(PATIENCE, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                log.lock().unwrap().push(line.clone());
                if let Some(addr) = line.strip_prefix("listening on ") {
                    return addr.trim().to_owned();
                }
            }
            panic!(
                "the Python service exited before listening:\n{}",
                log.lock().unwrap().join("\n")
            );
        })
        .await
        .expect("the Python service starts");
        // Keep draining its log (a full pipe would block it) and keep the lines.
        let sink = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock().unwrap().push(line);
            }
        });
        PyService { child, addr, log }
    }

    /// Durable, with the counter's address allowed and tools needing approval.
    async fn durable(script: &Path, counter: &Counter, approval: &str) -> PyService {
        Self::start(
            script,
            &[
                ("CATENA_PY_AGENT_CHECKPOINTS", database_url()),
                ("CATENA_PY_AGENT_TEST_HTTP_ALLOW", counter.addr.to_string()),
                ("CATENA_APPROVAL_TOOLS", approval.to_owned()),
            ],
        )
        .await
    }

    async fn client(&self) -> Client {
        Client::connect(format!("http://{}", self.addr))
            .await
            .unwrap()
    }

    /// SIGKILL: no shutdown, no flushing, nothing.
    async fn kill(mut self) {
        self.child.start_kill().unwrap();
        let status = tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("the Python service dies")
            .unwrap();
        assert!(!status.success());
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

fn run_request(task: &str, run_id: &str) -> pb::RunTaskRequest {
    pb::RunTaskRequest {
        task: task.into(),
        run_id: run_id.into(),
        ..Default::default()
    }
}

type Call = Result<tonic::Response<tonic::Streaming<pb::RunTaskResponse>>, tonic::Status>;

/// Every event of a call, and the status it closed with when not OK.
async fn events_and_status(response: Call) -> (Vec<pb::RunTaskResponse>, Option<tonic::Status>) {
    let mut stream = response.unwrap().into_inner();
    let mut out = Vec::new();
    let closing = tokio::time::timeout(PATIENCE, async {
        while let Some(item) = stream.next().await {
            match item {
                Ok(event) => out.push(event),
                Err(status) => return Some(status),
            }
        }
        None
    })
    .await
    .expect("the call ends");
    (out, closing)
}

/// Every event of a call that must close OK.
async fn drain(response: Call) -> Vec<pb::RunTaskResponse> {
    let (events, closing) = events_and_status(response).await;
    assert!(
        closing.is_none(),
        "the call failed: {closing:?}; events {events:?}"
    );
    events
}

/// The events as short labels, for readable assertions.
fn labels(events: &[pb::RunTaskResponse]) -> Vec<String> {
    events
        .iter()
        .map(|e| match &e.event {
            Some(Event::StepStarted(s)) => format!("step{}", s.step),
            Some(Event::TextDelta(_)) => "text".into(),
            Some(Event::ToolCall(c)) => format!("call:{}:{}", c.name, c.arguments_json),
            Some(Event::ToolResult(r)) => format!("result:{}", r.content),
            Some(Event::FinalAnswer(a)) => format!("final:{}", a.text),
            Some(Event::Error(e)) => format!("error:{}:{}", e.code, e.message),
            Some(Event::ApprovalRequired(a)) => format!("approval:{}:{}", a.name, a.arguments_json),
            None => "unknown".into(),
        })
        .collect()
}

fn final_answer(events: &[pb::RunTaskResponse]) -> String {
    match events.last().and_then(|e| e.event.as_ref()) {
        Some(Event::FinalAnswer(a)) => a.text.clone(),
        other => panic!("the last event is {other:?}; all: {:?}", labels(events)),
    }
}

fn approval(events: &[pb::RunTaskResponse]) -> pb::ApprovalRequired {
    match events.last().and_then(|e| e.event.clone()) {
        Some(Event::ApprovalRequired(a)) => a,
        other => panic!(
            "expected an approval request last, got {other:?}; all: {:?}",
            labels(events)
        ),
    }
}

async fn get_task(client: &mut Client, run_id: &str, from_sequence: u64) -> pb::GetTaskResponse {
    client
        .get_task(pb::GetTaskRequest {
            run_id: run_id.into(),
            from_sequence,
        })
        .await
        .unwrap()
        .into_inner()
}

fn decide(run_id: &str, call_id: &str, decision: decide_request::Decision) -> pb::DecideRequest {
    pb::DecideRequest {
        run_id: run_id.into(),
        call_id: call_id.into(),
        decision: Some(decision),
    }
}

/// `ResumeTask`, again while the run is still held by the process that died (its database
/// session may take a moment to end): the refusal says so with a retryable UNAVAILABLE
/// error, and logs nothing.
async fn resume(client: &mut Client, run_id: &str) -> Vec<pb::RunTaskResponse> {
    let start = tokio::time::Instant::now();
    loop {
        let (events, closing) = events_and_status(
            client
                .resume_task(pb::ResumeTaskRequest {
                    run_id: run_id.into(),
                })
                .await,
        )
        .await;
        let busy = matches!(
            events.as_slice(),
            [pb::RunTaskResponse { event: Some(Event::Error(e)), .. }]
                if e.code == pb::ErrorCode::Unavailable as i32 && e.retryable
        );
        if !busy {
            assert!(
                closing.is_none(),
                "the call failed: {closing:?}; events {events:?}"
            );
            return events;
        }
        assert_eq!(closing.map(|s| s.code()), Some(Code::Aborted));
        assert!(
            start.elapsed() < PATIENCE,
            "the run stayed busy: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_run_killed_between_the_tool_and_the_next_turn_resumes_after_a_restart_with_one_effect() {
    let dir = tempfile::tempdir().unwrap();
    let counter = Counter::start().await;
    let gate = dir.path().join("gate");
    let script_path = dir.path().join("script.json");
    std::fs::write(&script_path, script(&counter, &gate).to_string()).unwrap();

    // The uninterrupted run, for the expected answer.
    let service = PyService::durable(&script_path, &counter, "").await;
    let mut client = service.client().await;
    let plain_id = run_id("plain");
    let plain = drain(client.run_task(run_request("Fetch plain", &plain_id)).await).await;
    let expected = final_answer(&plain);
    assert_eq!(expected, "Done: request 1", "{}", service.log());
    assert_eq!(counter.paths(), ["/plain"]);

    // The interrupted run: the tool runs, then the next model turn waits on the gate, and
    // the process is killed there.
    let killed_id = run_id("killed");
    let mut stream = client
        .run_task(run_request("Fetch killed", &killed_id))
        .await
        .unwrap()
        .into_inner();
    let mut before = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        while let Some(item) = stream.next().await {
            let event = item.unwrap();
            // The second step begins only once the tool's result is checkpointed (LangGraph
            // saves each super-step before the next one starts).
            let second_step = matches!(&event.event, Some(Event::StepStarted(s)) if s.step == 2);
            before.push(event);
            if second_step {
                return;
            }
        }
        panic!("the stream ended early: {:?}", labels(&before));
    })
    .await
    .expect("the second step begins");
    assert_eq!(
        labels(&before),
        [
            "step1".to_owned(),
            format!("call:http_get:{}", json!({"url": counter.url("/killed")})),
            "result:request 1".to_owned(),
            "step2".to_owned(),
        ],
        "{}",
        service.log()
    );
    service.kill().await;
    drop(stream);
    assert_eq!(counter.paths(), ["/plain", "/killed"]);

    // Started again on the same database: the run goes on from its checkpoint.
    std::fs::write(&gate, "open").unwrap();
    let service = PyService::durable(&script_path, &counter, "").await;
    let mut client = service.client().await;
    let status = get_task(&mut client, &killed_id, 0).await;
    assert_eq!(status.status, pb::TaskStatus::Running as i32);
    assert_eq!(
        status.events, before,
        "the events before the kill were kept"
    );
    let after = resume(&mut client, &killed_id).await;
    assert_eq!(final_answer(&after), expected, "{}", service.log());
    assert_eq!(
        counter.paths(),
        ["/plain", "/killed"],
        "the tool ran exactly once"
    );
    assert!(after.iter().all(|e| e.run_id == killed_id));
    assert_eq!(labels(&after)[0], "step2");
    assert_eq!(after[0].sequence, before.last().unwrap().sequence + 1);
    let status = get_task(&mut client, &killed_id, 0).await;
    assert_eq!(status.status, pb::TaskStatus::Completed as i32);
    let all: Vec<_> = before.iter().chain(&after).cloned().collect();
    assert_eq!(status.events, all);

    // A finished run resumed sends its answer again and runs nothing.
    let again = resume(&mut client, &killed_id).await;
    assert_eq!(final_answer(&again), expected);
    assert_eq!(again[0].sequence, all.last().unwrap().sequence + 1);
    assert_eq!(counter.paths(), ["/plain", "/killed"]);
    service.kill().await;
}

#[tokio::test]
async fn approvals_round_trip_and_get_task_replays_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let counter = Counter::start().await;
    let script_path = dir.path().join("script.json");
    std::fs::write(
        &script_path,
        script(&counter, &dir.path().join("gate")).to_string(),
    )
    .unwrap();
    let service = PyService::durable(&script_path, &counter, "http_get").await;
    let mut client = service.client().await;

    // The run stops before the call, and nothing runs.
    let id = run_id("approve");
    let first = drain(client.run_task(run_request("Fetch approve", &id)).await).await;
    let asked = approval(&first);
    assert_eq!(asked.name, "http_get");
    assert_eq!(
        asked.arguments_json,
        json!({"url": counter.url("/asked")}).to_string()
    );
    assert_eq!(labels(&first)[0], "step1");
    assert!(first.iter().all(|e| e.run_id == id));
    assert!(counter.paths().is_empty(), "nothing runs before approval");
    assert_eq!(
        get_task(&mut client, &id, 0).await.status,
        pb::TaskStatus::AwaitingApproval as i32
    );

    // Refused before anything runs: a decision about another call, edited arguments that are
    // not JSON, a second start under the same id, an unknown or malformed run.
    let wrong = client
        .decide(decide(
            &id,
            "nope",
            decide_request::Decision::Cancel(decide_request::Cancel {}),
        ))
        .await
        .err()
        .unwrap();
    assert_eq!(wrong.code(), Code::FailedPrecondition, "{wrong:?}");
    let not_json = decide_request::Decision::Approve(decide_request::Approve {
        arguments_json: "{url".into(),
    });
    let refused = client
        .decide(decide(&id, &asked.call_id, not_json))
        .await
        .err()
        .unwrap();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    let again = client
        .run_task(run_request("Fetch approve twice", &id))
        .await
        .err()
        .unwrap();
    assert_eq!(again.code(), Code::AlreadyExists, "{again:?}");
    let unknown = client
        .resume_task(pb::ResumeTaskRequest {
            run_id: run_id("nobody"),
        })
        .await
        .err()
        .unwrap();
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");
    let unknown = client
        .get_task(pb::GetTaskRequest {
            run_id: run_id("nobody"),
            from_sequence: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");
    for bad in ["a/b", ".hidden", "x.events", "x.task"] {
        let status = client
            .run_task(run_request("Fetch approve", bad))
            .await
            .err()
            .unwrap();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad}: {status:?}");
    }

    // Resumed while it waits, the run asks again.
    let asked_again = resume(&mut client, &id).await;
    assert_eq!(approval(&asked_again), asked);
    assert!(counter.paths().is_empty());

    // Approve with edited arguments: the tool runs with them.
    let edited = json!({ "url": counter.url("/edited") }).to_string();
    let approve = decide_request::Decision::Approve(decide_request::Approve {
        arguments_json: edited.clone(),
    });
    let rest = drain(client.decide(decide(&id, &asked.call_id, approve)).await).await;
    assert_eq!(counter.paths(), ["/edited"], "{}", service.log());
    let rest_labels = labels(&rest);
    assert_eq!(
        rest_labels[..4],
        [
            "step1".to_owned(),
            format!("call:http_get:{edited}"),
            "result:request 1".to_owned(),
            "step2".to_owned(),
        ]
    );
    assert_eq!(final_answer(&rest), "Done: request 1");
    assert!(rest.iter().all(|e| e.run_id == id));

    // GetTask replays every event from any sequence number on, once, in order; sequence
    // numbers go on across the calls of one run.
    let all: Vec<_> = first
        .iter()
        .chain(&asked_again)
        .chain(&rest)
        .cloned()
        .collect();
    let sequences: Vec<u64> = all.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, (1..=all.len() as u64).collect::<Vec<_>>());
    for from in 0..=all.len() as u64 + 1 {
        let replay = get_task(&mut client, &id, from).await;
        assert_eq!(replay.status, pb::TaskStatus::Completed as i32);
        let expected: Vec<_> = all.iter().filter(|e| e.sequence >= from).cloned().collect();
        assert_eq!(replay.events, expected, "from_sequence {from}");
    }

    // Reject: the tool does not run and the model sees why.
    let id = run_id("reject");
    let first = drain(client.run_task(run_request("Fetch reject", &id)).await).await;
    let asked = approval(&first);
    let reject = decide_request::Decision::Reject(decide_request::Reject {
        message: "not that site".into(),
    });
    let rest = drain(client.decide(decide(&id, &asked.call_id, reject)).await).await;
    assert_eq!(
        final_answer(&rest),
        "The model saw: Error: rejected by a person: not that site"
    );
    assert_eq!(counter.paths(), ["/edited"], "a rejected call never runs");

    // Cancel: the run ends with ERROR_CODE_CANCELLED and stays cancelled.
    let id = run_id("cancel");
    let first = drain(client.run_task(run_request("Fetch cancel", &id)).await).await;
    let asked = approval(&first);
    let cancel = decide_request::Decision::Cancel(decide_request::Cancel {});
    let (events, closing) =
        events_and_status(client.decide(decide(&id, &asked.call_id, cancel)).await).await;
    assert_eq!(
        labels(&events).last().unwrap(),
        &format!(
            "error:{}:the run was cancelled",
            pb::ErrorCode::Cancelled as i32
        )
    );
    assert_eq!(closing.map(|s| s.code()), Some(Code::Cancelled));
    assert_eq!(
        get_task(&mut client, &id, 0).await.status,
        pb::TaskStatus::Cancelled as i32
    );
    assert_eq!(counter.paths(), ["/edited"]);
    service.kill().await;
}

#[tokio::test]
async fn without_checkpoints_the_durable_rpcs_fail_and_run_task_stamps_a_run_id() {
    let dir = tempfile::tempdir().unwrap();
    let counter = Counter::start().await;
    let script_path = dir.path().join("script.json");
    std::fs::write(
        &script_path,
        script(&counter, &dir.path().join("gate")).to_string(),
    )
    .unwrap();
    let service = PyService::start(&script_path, &[]).await;
    let mut client = service.client().await;

    let cancel = decide_request::Decision::Cancel(decide_request::Cancel {});
    for status in [
        client
            .resume_task(pb::ResumeTaskRequest {
                run_id: "r1".into(),
            })
            .await
            .err()
            .unwrap(),
        client
            .decide(decide("r1", "c1", cancel))
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
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        assert_eq!(status.message(), "this agent service keeps no checkpoints");
    }

    // The client's run id is echoed; without one the service makes one up.
    let events = drain(client.run_task(run_request("hello", "mine-1")).await).await;
    assert_eq!(labels(&events), ["step1", "text", "final:Hi."]);
    assert!(events.iter().all(|e| e.run_id == "mine-1"));
    let events = drain(client.run_task(run_request("hello", "")).await).await;
    let generated = &events[0].run_id;
    assert!(!generated.is_empty());
    assert!(events.iter().all(|e| &e.run_id == generated));
    let bad = client
        .run_task(run_request("hello", "a/b"))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    service.kill().await;
}
