//! Tracing decorators for embedders, retrievers and tools, beside
//! [`TracedChatModel`](crate::TracedChatModel): each call runs in a `tracing` span with the
//! [OpenTelemetry GenAI semantic conventions], which a `tracing-opentelemetry` layer turns
//! into OpenTelemetry spans, and embedder and tool calls record the
//! [`genai_metrics`](crate::genai_metrics) duration histogram. Texts, queries, arguments and
//! results are never recorded.
//!
//! ```
//! use std::sync::Arc;
//! use catena_core::{Embedder, Retriever, TracedEmbedder, TracedRetriever, VectorStoreRetriever};
//! use catena_core::test_utils::DeterministicEmbedder;
//!
//! # futures::executor::block_on(async {
//! let embedder = TracedEmbedder::new(DeterministicEmbedder::new(8)).with_model("hash-8");
//! let vector = embedder.embed_query("hello").await.unwrap();
//! assert_eq!(vector.len(), 8);
//! # });
//! ```
//!
//! [OpenTelemetry GenAI semantic conventions]: https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-spans/

use async_trait::async_trait;
use serde_json::Value;
use tracing::field::Empty;
use tracing::{Instrument, Span};

use crate::document::Document;
use crate::embed::{Embedder, Embedding};
use crate::error::{Error, Result};
use crate::genai_metrics::CallLabels;
use crate::retriever::Retriever;
use crate::tool::{Tool, ToolError, ToolOutput};
use crate::vectorstore::ScoredDocument;

/// The `error.type` of a Catena error.
pub(crate) fn error_type(error: &Error) -> String {
    match error {
        Error::Provider(p) => format!("{:?}", p.kind),
        Error::Timeout(_) => "timeout".to_owned(),
        Error::InvalidInput(_) => "invalid_input".to_owned(),
        _ => "error".to_owned(),
    }
}

/// Marks `span` as failed with `kind` as its `error.type`.
pub(crate) fn record_error(span: &Span, kind: &str) {
    span.record("error.type", kind);
    span.record("otel.status_code", "ERROR");
}

/// Wraps an embedder so each call runs in a span named `embeddings {model}`:
/// `gen_ai.operation.name = "embeddings"`, `gen_ai.request.model` and
/// `gen_ai.provider.name` when set, `gen_ai.embeddings.dimension.count`, the number of
/// inputs (`catena.embeddings.input_count`) and `error.type` on failure.
#[derive(Debug, Clone)]
pub struct TracedEmbedder<E> {
    inner: E,
    model: String,
    provider: String,
}

impl<E: Embedder> TracedEmbedder<E> {
    /// Wraps `inner`.
    pub fn new(inner: E) -> Self {
        TracedEmbedder {
            inner,
            model: String::new(),
            provider: String::new(),
        }
    }

    /// The model name recorded as `gen_ai.request.model`. Default: none.
    #[must_use]
    pub fn with_model(mut self, model: impl Into<String>) -> Self {
        self.model = model.into();
        self
    }

    /// The provider recorded as `gen_ai.provider.name`. Default: none.
    #[must_use]
    pub fn with_provider(mut self, provider: impl Into<String>) -> Self {
        self.provider = provider.into();
        self
    }

    /// The wrapped embedder.
    pub fn get_ref(&self) -> &E {
        &self.inner
    }

    fn span(&self, inputs: usize) -> Span {
        let name = if self.model.is_empty() {
            "embeddings".to_owned()
        } else {
            format!("embeddings {}", self.model)
        };
        tracing::info_span!(
            "embeddings",
            otel.name = %name,
            otel.kind = "client",
            otel.status_code = Empty,
            gen_ai.operation.name = "embeddings",
            gen_ai.provider.name = (!self.provider.is_empty()).then_some(self.provider.as_str()),
            gen_ai.request.model = (!self.model.is_empty()).then_some(self.model.as_str()),
            gen_ai.embeddings.dimension.count = self.inner.dimensions(),
            catena.embeddings.input_count = inputs,
            error.type = Empty,
        )
    }

    async fn traced<T>(
        &self,
        inputs: usize,
        call: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let span = self.span(inputs);
        let start = std::time::Instant::now();
        let result = call.instrument(span.clone()).await;
        let error = result.as_ref().err().map(error_type);
        if let Some(kind) = &error {
            record_error(&span, kind);
        }
        CallLabels {
            operation: "embeddings",
            provider: self.provider.clone(),
            model: self.model.clone(),
            tool: None,
        }
        .duration(start.elapsed(), error.as_deref());
        result
    }
}

#[async_trait]
impl<E: Embedder> Embedder for TracedEmbedder<E> {
    async fn embed_documents(&self, texts: &[String]) -> Result<Vec<Embedding>> {
        self.traced(texts.len(), self.inner.embed_documents(texts))
            .await
    }

    async fn embed_query(&self, text: &str) -> Result<Embedding> {
        self.traced(1, self.inner.embed_query(text)).await
    }

    fn dimensions(&self) -> usize {
        self.inner.dimensions()
    }
}

/// Wraps a retriever so each call runs in a span named `retrieval` with
/// `gen_ai.operation.name = "retrieval"`, the requested `k` when set
/// (`catena.retrieval.k`), the number of documents returned (`catena.retrieval.hits`) and
/// `error.type` on failure.
#[derive(Debug, Clone)]
pub struct TracedRetriever<R> {
    inner: R,
    k: Option<usize>,
}

impl<R: Retriever> TracedRetriever<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        TracedRetriever { inner, k: None }
    }

    /// The `k` recorded on each span (what the wrapped retriever was configured with).
    /// Default: not recorded.
    #[must_use]
    pub fn with_k(mut self, k: usize) -> Self {
        self.k = Some(k);
        self
    }

    /// The wrapped retriever.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }
}

#[async_trait]
impl<R: Retriever> Retriever for TracedRetriever<R> {
    async fn retrieve(&self, query: &str) -> Result<Vec<Document>> {
        let span = retrieval_span(self.k);
        let result = self.inner.retrieve(query).instrument(span.clone()).await;
        record_hits(&span, result.as_ref().map(Vec::len));
        result
    }

    /// The inner retriever's scored documents, in the same span.
    async fn retrieve_scored(&self, query: &str) -> Result<Vec<ScoredDocument>> {
        let span = retrieval_span(self.k);
        let result = self
            .inner
            .retrieve_scored(query)
            .instrument(span.clone())
            .await;
        record_hits(&span, result.as_ref().map(Vec::len));
        result
    }
}

fn retrieval_span(k: Option<usize>) -> Span {
    tracing::info_span!(
        "retrieval",
        otel.name = "retrieval",
        otel.kind = "internal",
        otel.status_code = Empty,
        gen_ai.operation.name = "retrieval",
        catena.retrieval.k = k,
        catena.retrieval.hits = Empty,
        error.type = Empty,
    )
}

fn record_hits(span: &Span, hits: std::result::Result<usize, &Error>) {
    match hits {
        Ok(n) => {
            span.record("catena.retrieval.hits", n);
        }
        Err(e) => record_error(span, &error_type(e)),
    }
}

/// The span of one tool execution (GenAI `execute_tool`): `gen_ai.tool.name`, and
/// `gen_ai.tool.call.id` when the call has one. Used by [`TracedTool`] and by agent loops
/// that know the model's call id; record a failure with [`record_tool_error`].
pub fn execute_tool_span(tool_name: &str, call_id: Option<&str>) -> Span {
    tracing::info_span!(
        "execute_tool",
        otel.name = %format!("execute_tool {tool_name}"),
        otel.kind = "internal",
        otel.status_code = Empty,
        gen_ai.operation.name = "execute_tool",
        gen_ai.tool.name = %tool_name,
        gen_ai.tool.call.id = call_id,
        error.type = Empty,
    )
}

/// Marks an [`execute_tool_span`] as failed with `kind` (`"timeout"`,
/// `"invalid_arguments"`, `"tool_error"`, …).
pub fn record_tool_error(span: &Span, kind: &str) {
    record_error(span, kind);
}

/// Wraps a tool so each call runs in an [`execute_tool_span`].
#[derive(Debug, Clone)]
pub struct TracedTool<T> {
    inner: T,
}

impl<T: Tool> TracedTool<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> Self {
        TracedTool { inner }
    }

    /// The wrapped tool.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }
}

#[async_trait]
impl<T: Tool> Tool for TracedTool<T> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn description(&self) -> &str {
        self.inner.description()
    }

    fn parameters(&self) -> &Value {
        self.inner.parameters()
    }

    async fn call(&self, args: Value) -> std::result::Result<ToolOutput, ToolError> {
        let span = execute_tool_span(self.inner.name(), None);
        let start = std::time::Instant::now();
        let result = self.inner.call(args).instrument(span.clone()).await;
        let kind = result.as_ref().err().map(|e| match e {
            ToolError::InvalidArguments(_) => "invalid_arguments",
            _ => "tool_error",
        });
        if let Some(kind) = kind {
            record_tool_error(&span, kind);
        }
        CallLabels {
            operation: "execute_tool",
            provider: String::new(),
            model: String::new(),
            tool: Some(self.inner.name().to_owned()),
        }
        .duration(start.elapsed(), kind);
        result
    }

    fn idempotent(&self) -> bool {
        self.inner.idempotent()
    }

    fn requires_approval(&self) -> bool {
        self.inner.requires_approval()
    }

    async fn call_with_context(
        &self,
        args: Value,
        ctx: &crate::tool::ToolCallContext,
    ) -> std::result::Result<ToolOutput, ToolError> {
        let span = execute_tool_span(self.inner.name(), Some(&ctx.call_id));
        let result = self
            .inner
            .call_with_context(args, ctx)
            .instrument(span.clone())
            .await;
        if let Err(e) = &result {
            let kind = match e {
                ToolError::InvalidArguments(_) => "invalid_arguments",
                _ => "tool_error",
            };
            record_tool_error(&span, kind);
        }
        result
    }
}

#[cfg(all(test, feature = "test-utils"))]
mod tests {
    use super::*;
    use crate::test_utils::DeterministicEmbedder;
    use crate::test_utils::SpanRecorder;

    struct Failing;

    #[async_trait]
    impl Tool for Failing {
        fn name(&self) -> &str {
            "failing"
        }
        fn description(&self) -> &str {
            "always fails"
        }
        fn parameters(&self) -> &Value {
            static NULL: Value = Value::Null;
            &NULL
        }
        async fn call(&self, _: Value) -> std::result::Result<ToolOutput, ToolError> {
            Err(ToolError::InvalidArguments("no".into()))
        }
    }

    struct Two;

    #[async_trait]
    impl Retriever for Two {
        async fn retrieve(&self, _: &str) -> Result<Vec<Document>> {
            Ok(vec![Document::new("a"), Document::new("b")])
        }
    }

    #[test]
    fn spans_carry_the_genai_attributes() {
        let spans = SpanRecorder::default();
        tracing::subscriber::with_default(spans.clone(), || {
            futures::executor::block_on(async {
                let e = TracedEmbedder::new(DeterministicEmbedder::new(4))
                    .with_model("m")
                    .with_provider("p");
                e.embed_documents(&["x".into(), "y".into(), "z".into()])
                    .await
                    .unwrap();
                let r = TracedRetriever::new(Two).with_k(4);
                assert_eq!(r.retrieve("q").await.unwrap().len(), 2);
                let t = TracedTool::new(Failing);
                assert!(t.call(Value::Null).await.is_err());
            });
        });
        let spans = spans.spans();
        let by_name = |n: &str| &spans.iter().find(|(name, _)| name == n).unwrap().1;
        let emb = by_name("embeddings");
        assert_eq!(emb["otel.name"], "embeddings m");
        assert_eq!(emb["gen_ai.operation.name"], "embeddings");
        assert_eq!(emb["gen_ai.request.model"], "m");
        assert_eq!(emb["gen_ai.provider.name"], "p");
        assert_eq!(emb["gen_ai.embeddings.dimension.count"], "4");
        assert_eq!(emb["catena.embeddings.input_count"], "3");
        assert!(!emb.contains_key("error.type"));
        let ret = by_name("retrieval");
        assert_eq!(ret["catena.retrieval.k"], "4");
        assert_eq!(ret["catena.retrieval.hits"], "2");
        let tool = by_name("execute_tool");
        assert_eq!(tool["gen_ai.tool.name"], "failing");
        assert_eq!(tool["error.type"], "invalid_arguments");
        assert_eq!(tool["otel.status_code"], "ERROR");
    }
}
