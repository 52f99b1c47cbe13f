//! The OpenTelemetry GenAI client metrics, recorded by the traced decorators
//! ([`TracedChatModel`](crate::TracedChatModel), [`TracedEmbedder`](crate::TracedEmbedder),
//! [`TracedTool`](crate::TracedTool)) through the [`metrics`] facade.
//!
//! Nothing is exported until the program installs a recorder: a Prometheus exporter, an
//! OpenTelemetry (OTLP) bridge, or both. Names follow the [GenAI metric conventions]; a
//! Prometheus exporter writes the dots as underscores (`gen_ai_client_token_usage`).
//!
//! | metric | kind | unit | attributes |
//! | --- | --- | --- | --- |
//! | [`OPERATION_DURATION`] | histogram | s | `gen_ai.operation.name`, `gen_ai.provider.name`, `gen_ai.request.model`, `error.type` on failure (`gen_ai.tool.name` for tools) |
//! | [`TOKEN_USAGE`] | histogram | {token} | the same, and `gen_ai.token.type` = `input` or `output` |
//! | [`COST`] | histogram (its sum is the spend) | the price table's currency | the same, and `currency` |
//!
//! ```
//! use catena_core::genai_metrics::{describe, OPERATION_DURATION, TOKEN_USAGE};
//! describe(); // registers units and help texts with whatever recorder is installed
//! assert_eq!(TOKEN_USAGE, "gen_ai.client.token.usage");
//! assert_eq!(OPERATION_DURATION, "gen_ai.client.operation.duration");
//! ```
//!
//! [GenAI metric conventions]: https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-metrics/

use std::time::Duration;

use crate::message::Usage;

/// `gen_ai.client.token.usage`: tokens per call, by `gen_ai.token.type`.
pub const TOKEN_USAGE: &str = "gen_ai.client.token.usage";
/// `gen_ai.client.operation.duration`: seconds per call.
pub const OPERATION_DURATION: &str = "gen_ai.client.operation.duration";
/// `catena.gen_ai.client.cost`: what each priced call cost (see
/// [`PriceTable`](crate::PriceTable)); the histogram's sum is the total spend.
pub const COST: &str = "catena.gen_ai.client.cost";

/// Registers the units and descriptions of the metrics above with the installed recorder.
pub fn describe() {
    metrics::describe_histogram!(
        TOKEN_USAGE,
        metrics::Unit::Count,
        "Number of input and output tokens used per GenAI call"
    );
    metrics::describe_histogram!(
        OPERATION_DURATION,
        metrics::Unit::Seconds,
        "Duration of GenAI client operations"
    );
    metrics::describe_histogram!(
        COST,
        "Cost of each priced GenAI call, in the price table's currency"
    );
}

/// Records one tool call's duration (`gen_ai.operation.name = "execute_tool"`,
/// `gen_ai.tool.name`, and `error.type` when it failed), for agent loops that run tools
/// without a [`TracedTool`](crate::TracedTool).
pub fn record_tool_call(tool: &str, elapsed: Duration, error: Option<&str>) {
    CallLabels {
        operation: "execute_tool",
        provider: String::new(),
        model: String::new(),
        tool: Some(tool.to_owned()),
    }
    .duration(elapsed, error);
}

/// Who made a call: the attributes every GenAI metric carries.
#[derive(Debug, Clone)]
pub(crate) struct CallLabels {
    pub(crate) operation: &'static str,
    pub(crate) provider: String,
    pub(crate) model: String,
    pub(crate) tool: Option<String>,
}

impl CallLabels {
    fn labels(&self, error: Option<&str>) -> Vec<metrics::Label> {
        let mut out = vec![metrics::Label::new("gen_ai.operation.name", self.operation)];
        if !self.provider.is_empty() {
            out.push(metrics::Label::new(
                "gen_ai.provider.name",
                self.provider.clone(),
            ));
        }
        if !self.model.is_empty() {
            out.push(metrics::Label::new(
                "gen_ai.request.model",
                self.model.clone(),
            ));
        }
        if let Some(tool) = &self.tool {
            out.push(metrics::Label::new("gen_ai.tool.name", tool.clone()));
        }
        if let Some(e) = error {
            out.push(metrics::Label::new("error.type", e.to_owned()));
        }
        out
    }

    /// Records a finished call's duration (and its error type when it failed).
    pub(crate) fn duration(&self, elapsed: Duration, error: Option<&str>) {
        metrics::histogram!(OPERATION_DURATION, self.labels(error)).record(elapsed.as_secs_f64());
    }

    /// Records the tokens a call reported.
    pub(crate) fn tokens(&self, usage: &Usage) {
        for (kind, n) in [
            ("input", usage.input_tokens),
            ("output", usage.output_tokens),
        ] {
            let mut labels = self.labels(None);
            labels.push(metrics::Label::new("gen_ai.token.type", kind));
            metrics::histogram!(TOKEN_USAGE, labels).record(n as f64);
        }
    }

    /// Records what a call cost.
    pub(crate) fn cost(&self, amount: f64, currency: &str) {
        let mut labels = self.labels(None);
        labels.push(metrics::Label::new("currency", currency.to_owned()));
        metrics::histogram!(COST, labels).record(amount);
    }
}
