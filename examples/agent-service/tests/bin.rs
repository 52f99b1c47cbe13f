//! The real binary with the real local models: it starts, says which model it uses, serves
//! health and one short task, and stops gracefully on SIGTERM.
//!
//! Needs the local model files: `eval "$(bash scripts/models.sh fetch)"` exports
//! `CATENA_CHAT_MODEL` and `CATENA_EMBED_MODEL` (the test command does; without them the
//! default cache paths are tried). Only structural things are asserted: a 135M-parameter
//! model's answer is not predictable.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use catena_agents::grpc::{TaskEvent, TaskRequest};
use example_agent_service::CALCULATOR;
use support::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tonic_health::pb::health_check_response::ServingStatus;

const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

fn model_path(var: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        let cache = std::env::var_os("CATENA_MODEL_DIR")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("XDG_CACHE_HOME")
                    .map(PathBuf::from)
                    .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                    .map(|c| c.join("catena/models"))
            })
            .expect("HOME, XDG_CACHE_HOME or CATENA_MODEL_DIR");
        cache.join(default)
    });
    assert!(
        path.exists(),
        "{} is missing: run `eval \"$(bash scripts/models.sh fetch)\"` first (the test command does)",
        path.display()
    );
    path
}

#[tokio::test]
async fn the_binary_serves_a_task_with_the_local_model_and_stops_on_sigterm() {
    let chat = model_path("CATENA_CHAT_MODEL", "SmolLM2-135M-Instruct.Q4_1.gguf");
    let embed = model_path("CATENA_EMBED_MODEL", "all-MiniLM-L6-v2");
    let mut child = Command::new(env!("CARGO_BIN_EXE_example-agent-service"))
        .args(["--addr", "127.0.0.1:0"])
        .env("CATENA_CHAT_MODEL", &chat)
        .env("CATENA_EMBED_MODEL", &embed)
        .env("CANDLE_NUM_THREADS", "1")
        .env("RUST_LOG", "info")
        .env_remove("OPENAI_API_KEY")
        .env_remove("GEMINI_API_KEY")
        .env_remove("GOOGLE_API_KEY")
        .env_remove("OLLAMA_HOST")
        .env_remove("CATENA_AGENT_ADDR")
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
                let addr = line.split("addr=").nth(1).unwrap().trim().to_owned();
                return addr;
            }
        }
        panic!("the binary exited:\n{}", log.lock().unwrap().join("\n"));
    })
    .await
    .expect("the binary starts");
    let sink = log.clone();
    let drain = tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            sink.lock().unwrap().push(line);
        }
    });
    let has = |needle: &str| log.lock().unwrap().iter().any(|l| l.contains(needle));
    assert!(has("model=local"), "{:?}", log.lock().unwrap());

    let url = format!("http://{addr}");
    assert_eq!(health(&url, "").await, ServingStatus::Serving);

    // One short task with the real local model.
    let client = client(&url).await.with_metadata("traceparent", TRACEPARENT);
    let request = TaskRequest::new("What is 2 + 3? Reply with just the number.")
        .with_request_id("bin-1")
        .with_allowed_tools([CALCULATOR])
        .with_timeout(Duration::from_secs(300));
    let events = events_ok(&client, request).await;
    eprintln!("local model events: {events:?}");
    assert_eq!(events[0], TaskEvent::StepStarted(1));
    match events.last().unwrap() {
        TaskEvent::FinalAnswer { text, usage, .. } => {
            assert!(!text.trim().is_empty(), "empty answer");
            assert!(usage.total_tokens > 0, "{usage:?}");
        }
        other => panic!("the last event is {other:?}"),
    }
    // The task's span carries the caller's trace context.
    assert!(has(TRACEPARENT), "{:?}", log.lock().unwrap());

    // SIGTERM: a graceful stop.
    let pid = child.id().unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("the binary stops")
        .unwrap();
    assert!(status.success(), "{status:?}");
    let _ = drain.await;
    assert!(has("SIGTERM received"));
    assert!(has("stopped"));
}

#[tokio::test]
async fn the_binary_refuses_a_public_address_without_a_token() {
    let out = Command::new(env!("CARGO_BIN_EXE_example-agent-service"))
        .args(["--addr", "0.0.0.0:0"])
        .env_remove("CATENA_AGENT_TOKEN")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("refusing to serve on 0.0.0.0:0 without credentials"),
        "{log}"
    );
}
