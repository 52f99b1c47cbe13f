//! Reranking retrieved documents: any [`Reranker`] as a document compressor, and a reranker
//! that asks a chat model for relevance scores.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use catena_core::prompt::PromptTemplate;
use catena_core::{
    sort_rerank_results, ChatModel, ChatRequest, Document, Error, Message, RerankResult, Reranker,
    Result,
};
use futures::StreamExt;

use super::compression::DocumentCompressor;

/// The metadata key a [`RerankCompressor`] writes each kept document's score under (as
/// LangChain's rerank compressors do).
pub const RELEVANCE_SCORE_KEY: &str = "relevance_score";

/// Any [`Reranker`] as a [`DocumentCompressor`]: keeps the `top_n` best documents (optionally
/// only those scoring at least `min_score`), best first, each with its score in metadata under
/// [`RELEVANCE_SCORE_KEY`]. With a
/// [`ContextualCompressionRetriever`](super::ContextualCompressionRetriever) it reranks a
/// first-stage retriever's candidates:
///
/// ```
/// use std::sync::Arc;
/// use catena_chains::{ContextualCompressionRetriever, LlmReranker, RerankCompressor};
/// use catena_core::{ChatModel, Retriever};
///
/// fn reranked(base: Arc<dyn Retriever>, model: Arc<dyn ChatModel>) -> catena_core::Result<ContextualCompressionRetriever> {
///     let reranker = Arc::new(LlmReranker::new(model)?);
///     Ok(ContextualCompressionRetriever::new(base, Arc::new(RerankCompressor::new(reranker, 4))))
/// }
/// ```
#[derive(Clone)]
pub struct RerankCompressor {
    reranker: Arc<dyn Reranker>,
    top_n: usize,
    min_score: Option<f32>,
}

impl fmt::Debug for RerankCompressor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RerankCompressor")
            .field("top_n", &self.top_n)
            .field("min_score", &self.min_score)
            .finish_non_exhaustive()
    }
}

impl RerankCompressor {
    /// Keeps the `top_n` best documents by `reranker`.
    pub fn new(reranker: Arc<dyn Reranker>, top_n: usize) -> Self {
        RerankCompressor {
            reranker,
            top_n,
            min_score: None,
        }
    }

    /// Also drops documents scoring below `min_score` (on the reranker's scale).
    #[must_use]
    pub fn with_min_score(mut self, min_score: f32) -> Self {
        self.min_score = Some(min_score);
        self
    }
}

/// Checks a reranker's answer: indices in range and distinct.
fn checked(results: Vec<RerankResult>, len: usize) -> Result<Vec<RerankResult>> {
    let mut seen = vec![false; len];
    for r in &results {
        match seen.get_mut(r.index) {
            Some(s) if !*s => *s = true,
            Some(_) => {
                return Err(Error::other(format!(
                    "the reranker returned document {} twice",
                    r.index
                )))
            }
            None => {
                return Err(Error::other(format!(
                    "the reranker returned document {} of {len}",
                    r.index
                )))
            }
        }
    }
    Ok(results)
}

#[async_trait]
impl DocumentCompressor for RerankCompressor {
    async fn compress(&self, documents: Vec<Document>, query: &str) -> Result<Vec<Document>> {
        if documents.is_empty() || self.top_n == 0 {
            return Ok(Vec::new());
        }
        let results = self.reranker.rerank(query, &documents, self.top_n).await?;
        let results = checked(results, documents.len())?;
        let mut slots: Vec<Option<Document>> = documents.into_iter().map(Some).collect();
        Ok(results
            .into_iter()
            .take(self.top_n)
            .filter(|r| self.min_score.is_none_or(|m| r.score >= m))
            .filter_map(|r| {
                slots[r.index]
                    .take()
                    .map(|d| d.with_metadata(RELEVANCE_SCORE_KEY, f64::from(r.score)))
            })
            .collect())
    }
}

/// The prompt of [`LlmReranker`]; variables `{question}` and `{document}`.
pub const LLM_RERANK_PROMPT: &str = "Rate how relevant the document is to the question, from 0 \
(unrelated) to 10 (answers it directly). Reply with the number only.\n\nQuestion: {question}\n\n\
Document:\n{document}\n\nRelevance (0-10):";

/// A [`Reranker`] that asks a chat model to rate each document's relevance (0–10) with
/// [`LLM_RERANK_PROMPT`], a few documents at a time. The score is the first number in the
/// answer, clamped to `[0, 10]`; an answer without a number scores `NaN` (ranked last) and
/// is logged. Slow and costly next to a cross-encoder: for small candidate sets, or where
/// only a hosted model is at hand.
#[derive(Clone)]
pub struct LlmReranker {
    model: Arc<dyn ChatModel>,
    prompt: PromptTemplate,
    concurrency: usize,
}

impl fmt::Debug for LlmReranker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmReranker")
            .field("model", &self.model.model_info().model)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

impl LlmReranker {
    /// A reranker over `model` with the default prompt, four calls at a time.
    ///
    /// # Errors
    /// Never for the built-in prompt.
    pub fn new(model: Arc<dyn ChatModel>) -> Result<Self> {
        Ok(LlmReranker {
            model,
            prompt: PromptTemplate::new(LLM_RERANK_PROMPT)?,
            concurrency: 4,
        })
    }

    /// Sets the prompt; it must use `{question}` and `{document}`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when it does not.
    pub fn with_prompt(mut self, template: &str) -> Result<Self> {
        let prompt = PromptTemplate::new(template)?;
        let mut vars = prompt.input_variables().to_vec();
        vars.sort();
        if vars != ["document", "question"] {
            return Err(Error::invalid_config(format!(
                "the rerank prompt must use {{question}} and {{document}}, found {vars:?}"
            )));
        }
        self.prompt = prompt;
        Ok(self)
    }

    /// How many model calls run at once (at least 1).
    #[must_use]
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }
}

/// The score in a judge's answer, clamped to `[0, 10]`: the first number after the last
/// colon (a model that echoes the label, "Relevance (0-10): 7", means 7), else the first
/// number.
fn relevance(text: &str) -> Option<f32> {
    let tail = text.rsplit_once(':').map_or(text, |(_, after)| after);
    let text = if tail.contains(|c: char| c.is_ascii_digit()) {
        tail
    } else {
        text
    };
    let start = text.find(|c: char| c.is_ascii_digit())?;
    let number: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    number
        .trim_end_matches('.')
        .parse::<f32>()
        .ok()
        .map(|n| n.clamp(0.0, 10.0))
}

#[async_trait]
impl Reranker for LlmReranker {
    async fn rerank(
        &self,
        query: &str,
        documents: &[Document],
        top_n: usize,
    ) -> Result<Vec<RerankResult>> {
        if top_n == 0 || documents.is_empty() {
            return Ok(Vec::new()); // nothing to return: no model call
        }
        let calls: Vec<_> = documents
            .iter()
            .enumerate()
            .map(|(i, d)| async move {
                let text = self
                    .prompt
                    .format([("question", query), ("document", d.content.as_str())])?;
                let answer = self
                    .model
                    .generate(
                        ChatRequest::new(vec![Message::user(text)])
                            .with_temperature(0.0)
                            .with_max_tokens(8),
                    )
                    .await?
                    .text();
                Ok(relevance(&answer).unwrap_or_else(|| {
                    tracing::warn!(document = i, "the rerank model's answer has no score");
                    f32::NAN
                }))
            })
            .collect();
        let scores: Vec<Result<f32>> = futures::stream::iter(calls)
            .buffered(self.concurrency)
            .collect()
            .await;
        let mut results = scores
            .into_iter()
            .enumerate()
            .map(|(i, s)| s.map(|s| RerankResult::new(i, s)))
            .collect::<Result<Vec<_>>>()?;
        sort_rerank_results(&mut results);
        results.truncate(top_n);
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_score_is_the_number_after_the_label_or_the_first() {
        assert_eq!(relevance("8"), Some(8.0));
        assert_eq!(relevance("Relevance: 7.5/10"), Some(7.5));
        assert_eq!(relevance("42"), Some(10.0));
        assert_eq!(relevance("3."), Some(3.0));
        assert_eq!(relevance("none"), None);
        // A model that echoes the label: the number after it, not the label's range.
        assert_eq!(relevance("Relevance (0-10): 7"), Some(7.0));
        assert_eq!(relevance("Score (0 to 10): 3 out of 10"), Some(3.0));
        assert_eq!(relevance("9 (reason: on topic)"), Some(9.0));
    }

    #[test]
    fn out_of_range_or_repeated_indices_are_errors() {
        assert!(checked(vec![RerankResult::new(2, 1.0)], 2).is_err());
        assert!(checked(
            vec![RerankResult::new(0, 1.0), RerankResult::new(0, 0.5)],
            2
        )
        .is_err());
        assert!(checked(
            vec![RerankResult::new(1, 1.0), RerankResult::new(0, 0.5)],
            2
        )
        .is_ok());
    }
}
