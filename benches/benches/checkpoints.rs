//! How long a durable run's checkpoint write takes on PostgreSQL: a 50-step agent run
//! (`DurableAgent` with a scripted model and a tool, 24 tool calls and 25 model turns, each
//! step saved) against the PostgreSQL checkpointer, and, for comparison, the file
//! checkpointer. Prints p50 / p99 / max of the writes and the state size at the end.
//!
//! Needs `DATABASE_URL` (`eval "$(bash scripts/pg.sh start)"`). Run with
//! `cargo bench -p catena-benches --bench checkpoints`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use catena_agents::{AgentExecutor, DurableAgent, RunInput, RunOutcome};
use catena_core::test_utils::ScriptedChatModel;
use catena_core::{Checkpoint, Checkpointer, FileCheckpointer, Result, ToolError, TypedTool};
use serde_json::Value;

/// Times every `put` of the checkpointer it wraps.
struct Timed<C> {
    inner: C,
    writes: Mutex<Vec<(Duration, usize)>>,
}

#[async_trait]
impl<C: Checkpointer> Checkpointer for Timed<C> {
    async fn put(&self, run_id: &str, step: u64, state: &Value) -> Result<()> {
        let size = state.to_string().len();
        let start = Instant::now();
        let r = self.inner.put(run_id, step, state).await;
        self.writes.lock().unwrap().push((start.elapsed(), size));
        r
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

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Query {
    q: String,
}

struct Lookup;

#[async_trait]
impl TypedTool for Lookup {
    type Args = Query;
    type Output = String;
    fn name(&self) -> &str {
        "lookup"
    }
    fn description(&self) -> &str {
        "Looks something up."
    }
    async fn call(&self, args: Query) -> std::result::Result<String, ToolError> {
        Ok(format!(
            "{} is documented in chapter 7 of the manual, with an example.",
            args.q
        ))
    }
}

async fn run<C: Checkpointer + 'static>(name: &str, saver: C) {
    let saver = Arc::new(Timed {
        inner: saver,
        writes: Mutex::new(Vec::new()),
    });
    let mut model = ScriptedChatModel::new();
    for i in 0..12 {
        model = model.with_tool_call("lookup", format!(r#"{{"q":"topic {i}"}}"#));
    }
    model = model.with_text("Everything is documented in chapter 7.");
    let executor = AgentExecutor::builder(Arc::new(model))
        .system_prompt("You look things up before answering.")
        .tool(Lookup.into_tool())
        .max_iterations(20)
        .build()
        .unwrap();
    let agent = DurableAgent::new(executor, saver.clone());
    let run_id = format!("bench-{}-{}", name, std::process::id());
    let outcome = agent
        .start(&run_id, RunInput::text("Find all twelve topics."))
        .await
        .unwrap();
    assert!(
        matches!(outcome, RunOutcome::Completed { .. }),
        "{outcome:?}"
    );
    let writes = saver.writes.lock().unwrap().clone();
    let mut times: Vec<Duration> = writes.iter().map(|w| w.0).collect();
    times.sort();
    let pct = |p: f64| times[((times.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "{name}: {} checkpoint writes; p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; state {} → {} bytes",
        times.len(),
        pct(0.5).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        times.last().unwrap().as_secs_f64() * 1e3,
        writes.first().unwrap().1,
        writes.last().unwrap().1,
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = std::env::temp_dir().join(format!("catena-ckpt-bench-{}", std::process::id()));
        run("file", FileCheckpointer::new(&dir).unwrap()).await;
        let _ = std::fs::remove_dir_all(&dir);
        match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => {
                let pg = catena_vectorstores::PostgresCheckpointer::builder()
                    .url(url)
                    .table("catena_bench_checkpoints")
                    .build()
                    .unwrap();
                run("postgres", pg).await;
            }
            _ => println!("postgres: skipped (DATABASE_URL is not set)"),
        }
    });
}
