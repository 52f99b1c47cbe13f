//! The gateway delegating to the two real agent services over gRPC on loopback: the Rust one
//! (`example-agent-service`, its tool-calling agent with the retriever over the documents the
//! gateway sent) and the Python one (`examples/python-agent`, LangChain, started as a child
//! process in its scripted-model fixture mode). Same request, same contract, same events.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use catena_core::test_utils::{DeterministicEmbedder, ScriptedChatModel};
use example_agent_service::{service, ServiceOptions};
use example_gateway::auth::hash_key;
use example_gateway::config::Config;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

mod support;

use support::Running;

const KEY: &str = "polyglot-key";
const TASK: &str = "Does Rust have a garbage collector?";
const ANSWER: &str = "Rust has no garbage collector.";

fn repo_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The gateway with an agent URL.
async fn gateway(agent_url: String) -> Running {
    let mut config = Config::default();
    config.auth.api_key_sha256 = vec![hash_key(KEY)];
    config.agent.url = Some(agent_url);
    let chat = Arc::new(ScriptedChatModel::new().with_text("unused"));
    support::start(config, support::backends(chat, 128)).await
}

/// Ingests one document and runs the task; returns the SSE events.
async fn delegate(base: &str) -> Vec<(String, Value)> {
    let http = {
        example_gateway::install_crypto_provider();
        reqwest::Client::new()
    };
    let res = http
        .post(format!("{base}/v1/documents"))
        .bearer_auth(KEY)
        .json(&json!({ "documents": [{ "source": "rust-faq.md", "content": "Rust manages memory with ownership; Rust has no garbage collector." }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = http
        .post(format!("{base}/v1/tasks"))
        .bearer_auth(KEY)
        .json(&json!({ "task": TASK, "k": 1, "timeout_secs": 60 }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    body.split("\n\n")
        .filter_map(|block| {
            let mut event = String::new();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event:") {
                    event = e.trim().to_owned();
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push_str(d.trim());
                }
            }
            (!data.is_empty()).then(|| (event, serde_json::from_str(&data).unwrap()))
        })
        .collect()
}

fn assert_delegated(events: &[(String, Value)], who: &str) {
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(names.first(), Some(&"accepted"), "{who}: {names:?}");
    let call = names.iter().position(|n| *n == "tool_call");
    let result = names.iter().position(|n| *n == "tool_result");
    assert!(call.is_some() && call < result, "{who}: {names:?}");
    let (last, data) = events.last().unwrap();
    assert_eq!(last, "final", "{who}: {events:?}");
    assert_eq!(data["answer"], ANSWER, "{who}");
    assert_eq!(data["sources"][0]["source"], "rust-faq.md", "{who}: {data}");
}

#[tokio::test]
async fn the_gateway_delegates_to_the_rust_agent_service() {
    let model = ScriptedChatModel::new()
        .with_tool_call("search_documents", r#"{"query":"garbage collector"}"#)
        .with_text(ANSWER);
    let svc = service(
        Arc::new(model),
        Arc::new(DeterministicEmbedder::new(128)),
        ServiceOptions::new().with_web_tools(false),
    )
    .unwrap();
    let (router, _health) = svc.into_router().await;
    let url = support::serve_grpc(router).await;
    let g = gateway(url).await;
    assert_delegated(&delegate(&g.base).await, "rust");
    g.shutdown().await;
}

#[tokio::test]
async fn the_gateway_delegates_to_the_python_agent_service() {
    let status = std::process::Command::new("bash")
        .args(["scripts/python-agent.sh", "setup"])
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "scripts/python-agent.sh setup failed");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("script.json");
    std::fs::write(
        &script,
        json!({"scripts": [{"match": "garbage collector", "steps": [
            {"tool_calls": [{"name": "search_documents", "args": {"query": "garbage collector"}}]},
            {"text": ANSWER}
        ]}]})
        .to_string(),
    )
    .unwrap();
    let mut child = tokio::process::Command::new("bash")
        .args(["scripts/python-agent.sh", "run", "127.0.0.1:0"])
        .current_dir(repo_root())
        .env("CATENA_PY_AGENT_SCRIPT", &script)
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(addr) = line.strip_prefix("listening on ") {
                return addr.trim().to_owned();
            }
        }
        panic!("the Python agent service exited before listening");
    })
    .await
    .expect("the Python agent service starts");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let g = gateway(format!("http://{addr}")).await;
    assert_delegated(&delegate(&g.base).await, "python");
    g.shutdown().await;
    drop(child);
}
