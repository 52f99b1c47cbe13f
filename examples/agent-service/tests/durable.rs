//! Durable runs through the real binary: the service started as a child process with a
//! file checkpointer (`CATENA_AGENT_CHECKPOINTS`), its chat model a scripted
//! OpenAI-compatible server on loopback (`OPENAI_BASE_URL`), and its side-effecting tool
//! `web_fetch` hitting a loopback counter (`CATENA_AGENT_WEB_ALLOW`).
//!
//! - Killed with SIGKILL after the tool finished and before the next model turn answered,
//!   then started again on the same checkpoints — a directory, and PostgreSQL (a
//!   `postgres://` URL in `CATENA_AGENT_CHECKPOINTS`): `ResumeTask` completes the run, the
//!   counter saw exactly one request, and the answer equals an uninterrupted run's.
//! - Approval over gRPC (`CATENA_APPROVAL_TOOLS=web_fetch`): approve with edited arguments,
//!   reject (the model sees why), and `GetTask` replay from every sequence number.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use catena_agents::grpc::pb::{
    self, agent_service_client, decide_request, run_task_response::Event,
};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

type Client = agent_service_client::AgentServiceClient<tonic::transport::Channel>;

/// Reads one HTTP/1.1 request: the request line and the body.
async fn read_request(socket: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let length = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = head.lines().next().unwrap_or_default().to_owned();
    Some((line, buf[head_end..head_end + length].to_vec()))
}

async fn respond(socket: &mut TcpStream, content_type: &str, body: &str) {
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = socket.write_all(response.as_bytes()).await;
    let _ = socket.shutdown().await;
}

/// The side effect: counts the requests it gets, by path.
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
                    let Some((line, _)) = read_request(&mut socket).await else {
                        return;
                    };
                    let path = line.split(' ').nth(1).unwrap_or_default().to_owned();
                    let n = {
                        let mut p = paths.lock().unwrap();
                        p.push(path.clone());
                        p.len()
                    };
                    let body = format!(
                        "<html><head><title>counter</title></head><body>request {n} to {path}</body></html>"
                    );
                    respond(&mut socket, "text/html", &body).await;
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

/// A scripted OpenAI-compatible chat model: on a user message it calls `web_fetch` on the
/// first URL in it; after a tool result it answers from the result; while `hang` is set it
/// never answers a request that carries a tool result (and says it got one).
#[derive(Clone)]
struct Model {
    addr: SocketAddr,
    hang: Arc<AtomicBool>,
    hung: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<Value>>>,
}

/// What the scripted model answers after a tool result (the whole answer depends only on
/// the tool's output, so an interrupted and an uninterrupted run answer alike).
fn answer_for(tool_output: &str) -> String {
    if tool_output.contains("rejected by a person") {
        let why = tool_output
            .split("rejected by a person: ")
            .nth(1)
            .unwrap_or("");
        format!("Not fetched: {}", why.trim_end_matches('"'))
    } else if let Some(i) = tool_output.find("request ") {
        let rest: String = tool_output[i..].chars().take_while(|c| *c != '"').collect();
        format!("Done: {}", rest.split(" to ").next().unwrap_or_default())
    } else {
        format!("Unexpected tool output: {tool_output}")
    }
}

impl Model {
    async fn start() -> Model {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let model = Model {
            addr: listener.local_addr().unwrap(),
            hang: Arc::default(),
            hung: Arc::default(),
            requests: Arc::default(),
        };
        let this = model.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let this = this.clone();
                tokio::spawn(async move {
                    let Some((_, body)) = read_request(&mut socket).await else {
                        return;
                    };
                    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    this.requests.lock().unwrap().push(request.clone());
                    this.answer(&mut socket, &request).await;
                });
            }
        });
        model
    }

    fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    async fn answer(&self, socket: &mut TcpStream, request: &Value) {
        let messages = request["messages"].as_array().cloned().unwrap_or_default();
        let last = messages.last().cloned().unwrap_or(Value::Null);
        let stream = request["stream"].as_bool().unwrap_or(false);
        let base = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": "scripted"});
        let usage = json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15});
        let (message, delta_events) = if last["role"] == "tool" {
            if self.hang.load(Ordering::SeqCst) {
                self.hung.fetch_add(1, Ordering::SeqCst);
                std::future::pending::<()>().await;
            }
            let text = answer_for(last["content"].as_str().unwrap_or_default());
            (
                json!({"role": "assistant", "content": text}),
                vec![
                    json!([{"index": 0, "delta": {"role": "assistant", "content": text}}]),
                    json!([{"index": 0, "delta": {}, "finish_reason": "stop"}]),
                ],
            )
        } else {
            let user = last["content"].as_str().unwrap_or_default();
            let url = user
                .split_whitespace()
                .find(|w| w.starts_with("http://"))
                .unwrap_or("http://127.0.0.1:9/none");
            let arguments = json!({ "url": url }).to_string();
            let call = json!({"index": 0, "id": "call_fetch", "type": "function", "function": {"name": "web_fetch", "arguments": arguments}});
            (
                json!({"role": "assistant", "content": null, "tool_calls": [call]}),
                vec![
                    json!([{"index": 0, "delta": {"role": "assistant", "tool_calls": [call]}}]),
                    json!([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]),
                ],
            )
        };
        if stream {
            let mut out = String::new();
            for choices in delta_events {
                let mut event = base.clone();
                event["choices"] = choices;
                out.push_str(&format!("data: {event}\n\n"));
            }
            let mut last = base.clone();
            last["choices"] = json!([]);
            last["usage"] = usage;
            out.push_str(&format!("data: {last}\n\ndata: [DONE]\n\n"));
            respond(socket, "text/event-stream", &out).await;
        } else {
            let finish = if message["tool_calls"].is_null() {
                "stop"
            } else {
                "tool_calls"
            };
            let body = json!({
                "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "scripted",
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": usage,
            });
            respond(socket, "application/json", &body.to_string()).await;
        }
    }
}

/// The service binary, started on 127.0.0.1:0 with checkpoints in `dir`.
struct Service {
    child: Child,
    addr: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Service {
    async fn start(
        place: impl AsRef<std::ffi::OsStr>,
        model: &Model,
        counter: &Counter,
        approval: &str,
    ) -> Service {
        let mut child = Command::new(env!("CARGO_BIN_EXE_example-agent-service"))
            .args(["--addr", "127.0.0.1:0"])
            .env("OPENAI_API_KEY", "test-key")
            .env("OPENAI_BASE_URL", model.base_url())
            .env("OPENAI_MODEL", "scripted")
            .env("CATENA_AGENT_CHECKPOINTS", place)
            .env("CATENA_APPROVAL_TOOLS", approval)
            .env("CATENA_AGENT_WEB_ALLOW", counter.addr.to_string())
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("GEMINI_API_KEY")
            .env_remove("GOOGLE_API_KEY")
            .env_remove("OLLAMA_HOST")
            .env_remove("CATENA_AGENT_ADDR")
            .env_remove("CATENA_AGENT_TOKEN")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let log = Arc::new(Mutex::new(Vec::<String>::new()));
        let addr = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                log.lock().unwrap().push(line.clone());
                if line.contains("serving catena.agent.v1") {
                    return line.split("addr=").nth(1).unwrap().trim().to_owned();
                }
            }
            panic!("the binary exited:\n{}", log.lock().unwrap().join("\n"));
        })
        .await
        .expect("the binary starts");
        let sink = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock().unwrap().push(line);
            }
        });
        Service { child, addr, log }
    }

    async fn client(&self) -> Client {
        Client::connect(format!("http://{}", self.addr))
            .await
            .unwrap()
    }

    /// SIGKILL: no shutdown, no flushing, nothing.
    async fn kill(mut self) {
        self.child.start_kill().unwrap();
        let status = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("the binary dies")
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
        allowed_tools: vec!["web_fetch".into()],
        ..Default::default()
    }
}

async fn drain(
    response: Result<tonic::Response<tonic::Streaming<pb::RunTaskResponse>>, tonic::Status>,
) -> Vec<pb::RunTaskResponse> {
    let mut stream = response.unwrap().into_inner();
    let mut out = Vec::new();
    while let Some(item) = stream.next().await {
        out.push(item.unwrap_or_else(|s| panic!("the call failed: {s:?}; so far {out:?}")));
    }
    out
}

fn final_answer(events: &[pb::RunTaskResponse]) -> String {
    match events.last().and_then(|e| e.event.as_ref()) {
        Some(Event::FinalAnswer(a)) => a.text.clone(),
        other => panic!("the last event is {other:?}"),
    }
}

async fn wait_until(what: &str, ok: impl Fn() -> bool) {
    let start = tokio::time::Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_run_killed_between_the_tool_and_the_next_turn_resumes_after_a_restart_with_one_effect() {
    let dir = tempfile::tempdir().unwrap();
    killed_and_resumed(dir.path().as_os_str(), "").await;
}

/// The same with the checkpoints in PostgreSQL (`CATENA_AGENT_CHECKPOINTS` a URL; the test
/// database of `DATABASE_URL`), the way replicas share them.
#[tokio::test]
async fn a_run_killed_mid_run_resumes_from_postgresql_checkpoints_with_one_effect() {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL (scripts/pg.sh start)");
    let unique = format!(
        "{}-{}-",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    killed_and_resumed(std::ffi::OsStr::new(&url), &unique).await;
}

/// Kills the binary after a side-effecting tool finished and before the next model turn,
/// starts it again on the checkpoints at `place` and resumes the run: one effect, the
/// uninterrupted run's answer. Run ids start with `prefix`.
async fn killed_and_resumed(place: &std::ffi::OsStr, prefix: &str) {
    let plain_id = format!("{prefix}plain-1");
    let killed_id = format!("{prefix}killed-1");
    let model = Model::start().await;

    // The uninterrupted run, for the expected answer.
    let plain_counter = Counter::start().await;
    let service = Service::start(place, &model, &plain_counter, "").await;
    let mut client = service.client().await;
    let task = format!("Fetch {} please", plain_counter.url("/effect"));
    let plain = drain(client.run_task(run_request(&task, &plain_id)).await).await;
    let expected = final_answer(&plain);
    assert_eq!(expected, "Done: request 1", "{}", service.log());
    assert_eq!(plain_counter.paths(), ["/effect"]);
    service.kill().await;

    // The interrupted run: its second model turn never answers, and the process is killed.
    let counter = Counter::start().await;
    model.hang.store(true, Ordering::SeqCst);
    let service = Service::start(place, &model, &counter, "").await;
    let mut client = service.client().await;
    let task = format!("Fetch {} please", counter.url("/effect"));
    let mut stream = client
        .run_task(run_request(&task, &killed_id))
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
    assert!(
        matches!(before.last().and_then(|e| e.event.as_ref()), Some(Event::ToolResult(r)) if !r.is_error)
    );
    // The tool's result is checkpointed before the next model turn begins.
    wait_until("the next model turn", || {
        model.hung.load(Ordering::SeqCst) == 1
    })
    .await;
    service.kill().await;
    drop(stream);
    assert_eq!(counter.paths(), ["/effect"]);

    // Started again on the same directory: the run goes on from its checkpoint.
    model.hang.store(false, Ordering::SeqCst);
    let service = Service::start(place, &model, &counter, "").await;
    let mut client = service.client().await;
    let status = client
        .get_task(pb::GetTaskRequest {
            run_id: killed_id.clone(),
            from_sequence: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.status, pb::TaskStatus::Running as i32);
    assert_eq!(
        status.events, before,
        "the events before the kill were kept"
    );
    let after = drain(
        client
            .resume_task(pb::ResumeTaskRequest {
                run_id: killed_id.clone(),
            })
            .await,
    )
    .await;
    assert_eq!(final_answer(&after), expected, "{}", service.log());
    assert_eq!(counter.paths(), ["/effect"], "the tool ran exactly once");
    assert!(after.iter().all(|e| e.run_id == killed_id));
    assert_eq!(after[0].sequence, before.last().unwrap().sequence + 1);
    let status = client
        .get_task(pb::GetTaskRequest {
            run_id: killed_id.clone(),
            from_sequence: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status.status,
        pb::TaskStatus::Completed as i32,
        "{}",
        service.log()
    );
    let all: Vec<_> = before.iter().chain(&after).cloned().collect();
    assert_eq!(status.events, all);
    service.kill().await;
}

#[tokio::test]
async fn approvals_round_trip_through_the_binary_and_get_task_replays_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let model = Model::start().await;
    let counter = Counter::start().await;
    let service = Service::start(dir.path(), &model, &counter, "web_fetch").await;
    let mut client = service.client().await;

    // Approve with edited arguments: the tool runs with them.
    let task = format!("Fetch {} please", counter.url("/asked"));
    let first = drain(client.run_task(run_request(&task, "approve-1")).await).await;
    let Some(Event::ApprovalRequired(approval)) = first.last().and_then(|e| e.event.clone()) else {
        panic!("expected an approval request: {first:?}\n{}", service.log());
    };
    assert_eq!(approval.name, "web_fetch");
    assert!(approval.arguments_json.contains("/asked"));
    assert!(counter.paths().is_empty(), "nothing runs before approval");
    let edited = json!({ "url": counter.url("/edited") }).to_string();
    let rest = drain(
        client
            .decide(pb::DecideRequest {
                run_id: "approve-1".into(),
                call_id: approval.call_id.clone(),
                decision: Some(decide_request::Decision::Approve(decide_request::Approve {
                    arguments_json: edited.clone(),
                })),
            })
            .await,
    )
    .await;
    assert_eq!(counter.paths(), ["/edited"]);
    let call = rest.iter().find_map(|e| match &e.event {
        Some(Event::ToolCall(c)) => Some(c.clone()),
        _ => None,
    });
    assert_eq!(call.unwrap().arguments_json, edited);
    assert_eq!(final_answer(&rest), "Done: request 1");

    // GetTask replays every event from any sequence number on, once, in order.
    let all: Vec<_> = first.iter().chain(&rest).cloned().collect();
    let sequences: Vec<u64> = all.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, (1..=all.len() as u64).collect::<Vec<_>>());
    for from in 0..=all.len() as u64 + 1 {
        let replay = client
            .get_task(pb::GetTaskRequest {
                run_id: "approve-1".into(),
                from_sequence: from,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(replay.status, pb::TaskStatus::Completed as i32);
        let expected: Vec<_> = all.iter().filter(|e| e.sequence >= from).cloned().collect();
        assert_eq!(replay.events, expected, "from_sequence {from}");
    }

    // Reject: the tool does not run and the model sees why.
    let task = format!("Fetch {} please", counter.url("/rejected"));
    let first = drain(client.run_task(run_request(&task, "reject-1")).await).await;
    let Some(Event::ApprovalRequired(approval)) = first.last().and_then(|e| e.event.clone()) else {
        panic!("expected an approval request: {first:?}");
    };
    let rest = drain(
        client
            .decide(pb::DecideRequest {
                run_id: "reject-1".into(),
                call_id: approval.call_id,
                decision: Some(decide_request::Decision::Reject(decide_request::Reject {
                    message: "not that site".into(),
                })),
            })
            .await,
    )
    .await;
    assert_eq!(final_answer(&rest), "Not fetched: not that site");
    assert_eq!(counter.paths(), ["/edited"], "a rejected call never runs");
    service.kill().await;
}
