//! One trace across the hops, with an in-memory OpenTelemetry exporter: an HTTP request with a
//! W3C `traceparent` → the gateway (request span, retrieval, the gRPC client span) → the agent
//! service over real gRPC on loopback (`agent.run_task`, whose parent arrives in the call's
//! metadata) → its model call (`chat`, GenAI attributes) → its tool call (`execute_tool`).
//!
//! Its own test binary: it installs the process-wide subscriber and propagator.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use catena_agents::grpc::{AgentGrpcService, TaskContext};
use catena_agents::AgentExecutor;
use catena_core::test_utils::ScriptedChatModel;
use catena_core::{ChatModel, Tool, ToolError, ToolOutput, TracedChatModel};
use example_gateway::auth::hash_key;
use example_gateway::config::Config;
use opentelemetry::trace::{SpanId, TraceId, TracerProvider as _};
use opentelemetry::Value as OtelValue;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde_json::{json, Value};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

mod support;

const KEY: &str = "trace-key";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

struct Echo(Value);

#[async_trait]
impl Tool for Echo {
    fn name(&self) -> &str {
        "echo"
    }
    fn description(&self) -> &str {
        "Echoes."
    }
    fn parameters(&self) -> &Value {
        &self.0
    }
    async fn call(&self, args: Value) -> Result<ToolOutput, ToolError> {
        Ok(ToolOutput::new(args))
    }
}

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a OtelValue> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn named<'a>(spans: &'a [SpanData], name: &str) -> Vec<&'a SpanData> {
    spans
        .iter()
        .filter(|s| s.name.as_ref() == name || s.name.starts_with(&format!("{name} ")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_from_the_http_request_to_the_agents_tool_call() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    tracing_subscriber::registry()
        .with(
            tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("test"))
                .with_filter(LevelFilter::INFO),
        )
        .init();
    catena_agents::otel::install_propagator();

    // The agent service: a traced scripted model that calls the tool, then answers.
    let service = AgentGrpcService::new(move |ctx: TaskContext| {
        let model: Arc<dyn ChatModel> = Arc::new(TracedChatModel::new(
            ScriptedChatModel::new()
                .with_tool_call("echo", r#"{"say":"hi"}"#)
                .with_text("done"),
        ));
        let tool: Arc<dyn Tool> = Arc::new(Echo(json!({"type": "object"})));
        let agent = ctx
            .apply_limits(AgentExecutor::builder(ctx.model(model)).tool(tool))
            .build()?;
        Ok(agent.run_stream(&ctx.prompt()))
    });
    let (router, _health) = service.into_router().await;
    let agent_url = support::serve_grpc(router).await;

    // The gateway.
    let mut config = Config::default();
    config.auth.api_key_sha256 = vec![hash_key(KEY)];
    config.agent.url = Some(agent_url);
    let gateway = support::start(
        config,
        support::backends(Arc::new(ScriptedChatModel::new().with_text("unused")), 64),
    )
    .await;
    let base = gateway.base.clone();

    let http = {
        example_gateway::install_crypto_provider();
        reqwest::Client::new()
    };
    let ingest = http
        .post(format!("{base}/v1/documents"))
        .bearer_auth(KEY)
        .json(&json!({ "documents": [{ "source": "a.md", "content": "Tracing spans hops." }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(ingest.status(), 200);
    exporter.reset();

    let res = http
        .post(format!("{base}/v1/tasks"))
        .bearer_auth(KEY)
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
        .json(&json!({ "task": "say hi with the echo tool" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // The trace context comes back out in the response.
    let back = res.headers()["traceparent"].to_str().unwrap().to_owned();
    assert!(back.contains(TRACE_ID), "{back}");
    let body = res.text().await.unwrap();
    assert!(body.contains("event: final"), "{body}");

    // Spans end as the streams finish on both sides; wait for the last ones.
    let mut spans = Vec::new();
    for _ in 0..100 {
        spans = exporter.get_finished_spans().unwrap();
        let have = |n: &str| !named(&spans, n).is_empty();
        if [
            "POST /v1/tasks",
            "retrieval",
            "embeddings",
            "catena.agent.v1.AgentService/RunTask",
            "agent.run_task",
            "chat",
            "execute_tool",
        ]
        .iter()
        .all(|n| have(n))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let names: Vec<String> = spans.iter().map(|s| s.name.to_string()).collect();

    let trace = TraceId::from_hex(TRACE_ID).unwrap();
    for span in &spans {
        assert_eq!(
            span.span_context.trace_id(),
            trace,
            "{} left the trace: {names:?}",
            span.name
        );
    }
    let request = named(&spans, "POST /v1/tasks");
    assert_eq!(request.len(), 1, "{names:?}");
    assert_eq!(
        request[0].parent_span_id,
        SpanId::from_hex(PARENT_ID).unwrap()
    );

    // Crossing the gRPC hop: the agent's task span is a child of the gateway's client span.
    let delegate = named(&spans, "catena.agent.v1.AgentService/RunTask");
    assert_eq!(delegate.len(), 1, "{names:?}");
    let run_task = named(&spans, "agent.run_task");
    assert_eq!(run_task.len(), 1, "{names:?}");
    assert_eq!(
        run_task[0].parent_span_id,
        delegate[0].span_context.span_id()
    );

    // The model and tool calls, with the GenAI attributes.
    let chats = named(&spans, "chat");
    assert_eq!(chats.len(), 2, "tool call turn and answer turn: {names:?}");
    for chat in &chats {
        assert_eq!(
            attr(chat, "gen_ai.operation.name").map(|v| v.as_str().into_owned()),
            Some("chat".to_owned())
        );
        assert!(attr(chat, "gen_ai.usage.input_tokens").is_some());
        assert!(attr(chat, "gen_ai.provider.name").is_some());
    }
    let tools = named(&spans, "execute_tool");
    assert_eq!(tools.len(), 1, "{names:?}");
    assert_eq!(
        attr(tools[0], "gen_ai.tool.name").map(|v| v.as_str().into_owned()),
        Some("echo".to_owned())
    );
    assert!(!named(&spans, "retrieval").is_empty());
    assert!(
        !named(&spans, "embeddings").is_empty(),
        "the gateway traces its embedder"
    );

    // An unauthenticated caller cannot choose the trace its request is recorded in: its
    // `traceparent` becomes a link of a new trace, never the parent.
    exporter.reset();
    let res = http
        .post(format!("{base}/v1/query"))
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
        .json(&json!({ "question": "anything" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let back = res.headers()["traceparent"].to_str().unwrap().to_owned();
    assert!(!back.contains(TRACE_ID), "{back}");
    let spans = exporter.get_finished_spans().unwrap();
    let request = named(&spans, "POST /v1/query");
    assert_eq!(request.len(), 1);
    assert_ne!(request[0].span_context.trace_id(), trace);
    assert!(
        request[0]
            .links
            .iter()
            .any(|l| l.span_context.trace_id() == trace
                && l.span_context.span_id() == SpanId::from_hex(PARENT_ID).unwrap()),
        "the caller's context is kept as a link: {:?}",
        request[0].links
    );

    // A wrong key is no better than none.
    let res = http
        .post(format!("{base}/v1/query"))
        .bearer_auth("not-the-key")
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
        .json(&json!({ "question": "anything" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(!res.headers()["traceparent"]
        .to_str()
        .unwrap()
        .contains(TRACE_ID));

    // An authenticated caller's trace is continued, but its vendor `tracestate` is dropped at
    // the edge: it is neither echoed nor forwarded.
    let res = http
        .post(format!("{base}/v1/query"))
        .bearer_auth(KEY)
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
        .header("tracestate", "vendor=secret-routing-hint")
        .json(&json!({ "question": "How are hops traced?" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["traceparent"]
        .to_str()
        .unwrap()
        .contains(TRACE_ID));
    let tracestate = res
        .headers()
        .get("tracestate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(!tracestate.contains("secret"), "{tracestate}");
    gateway.shutdown().await;
    let _ = provider.shutdown();
}
