//! Tool calls of an agent run are metered like model calls: the GenAI duration histogram
//! with `gen_ai.operation.name = execute_tool`, the tool's name, and `error.type` on failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::{Arc, Mutex};

use catena_agents::AgentExecutor;
use catena_core::test_utils::ScriptedChatModel;
use catena_core::{ToolError, TypedTool};
use metrics::{
    Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};

#[derive(Clone, Default)]
struct Histograms(Arc<Mutex<Vec<String>>>);

struct Keep(Arc<Mutex<Vec<String>>>, String);

impl HistogramFn for Keep {
    fn record(&self, _: f64) {
        self.0.lock().unwrap().push(self.1.clone());
    }
}

impl Recorder for Histograms {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
        Counter::noop()
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let mut labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        Histogram::from_arc(Arc::new(Keep(
            self.0.clone(),
            format!("{} {}", key.name(), labels.join(",")),
        )))
    }
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Args {
    fail: bool,
}

struct Flaky;

#[async_trait::async_trait]
impl TypedTool for Flaky {
    type Args = Args;
    type Output = String;
    fn name(&self) -> &str {
        "flaky"
    }
    fn description(&self) -> &str {
        "Fails when asked to."
    }
    async fn call(&self, args: Args) -> Result<String, ToolError> {
        if args.fail {
            Err(ToolError::Execution("asked to".into()))
        } else {
            Ok("fine".into())
        }
    }
}

#[test]
fn agent_tool_calls_record_the_genai_duration_histogram() {
    let histograms = Histograms::default();
    metrics::with_local_recorder(&histograms, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let model = Arc::new(
                ScriptedChatModel::new()
                    .with_tool_call("flaky", r#"{"fail":false}"#)
                    .with_tool_call("flaky", r#"{"fail":true}"#)
                    .with_text("done"),
            );
            let agent = AgentExecutor::builder(model)
                .tool(Flaky.into_tool())
                .build()
                .unwrap();
            agent.run("go").await.unwrap();
        });
    });
    let seen = histograms.0.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            "gen_ai.client.operation.duration gen_ai.operation.name=execute_tool,gen_ai.tool.name=flaky".to_owned(),
            "gen_ai.client.operation.duration error.type=tool_error,gen_ai.operation.name=execute_tool,gen_ai.tool.name=flaky".to_owned(),
        ]
    );
}
