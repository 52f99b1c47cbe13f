//! Summarisation of many documents: stuff, map-reduce and refine.
//!
//! The details and an example are on [`Summarizer`].

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use catena_core::prompt::{PromptTemplate, PromptValues};
use catena_core::{
    count_tokens, Chain, ChatModel, ChatRequest, Document, Error, Message, Prompt, PromptError,
    Result, TokenEncoding,
};
use futures::{StreamExt, TryStreamExt};

use crate::llm::{ask, check_variables};

/// The default stuff, map, combine and collapse prompt; variable `{text}`.
pub const DEFAULT_SUMMARY_PROMPT: &str =
    "Write a concise summary of the following:\n\n\n\"{text}\"\n\n\nCONCISE SUMMARY:";

/// The default refine prompt; variables `{existing_answer}` and `{text}`.
pub const DEFAULT_REFINE_PROMPT: &str = "Your job is to produce a final summary.\n\
We have provided an existing summary up to a certain point: {existing_answer}\n\
We have the opportunity to refine the existing summary (only if needed) with some more context below.\n\
------------\n{text}\n------------\n\
Given the new context, refine the original summary.\n\
If the context isn't useful, return the original summary.";

/// The separator between documents or summaries joined into one prompt.
pub const SUMMARY_SEPARATOR: &str = "\n\n";

/// Why a summarisation could not finish (besides model and prompt errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SummarizeError {
    /// After `depth` collapse rounds the summaries still take `tokens` tokens, more than
    /// the `budget`.
    #[error(
        "summaries still take {tokens} tokens (budget {budget}) after {depth} collapse rounds"
    )]
    CollapseDepthExceeded {
        /// Collapse rounds run.
        depth: usize,
        /// Tokens the joined summaries still take.
        tokens: usize,
        /// The token budget.
        budget: usize,
    },
}

impl From<SummarizeError> for Error {
    /// [`Error::Other`] with the [`SummarizeError`] as its source.
    fn from(e: SummarizeError) -> Self {
        Error::Other {
            message: e.to_string(),
            source: Some(Box::new(e)),
        }
    }
}

/// How a [`Summarizer`] combines documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SummarizeStrategy {
    /// Every document in one prompt.
    Stuff,
    /// Summarise each document, then combine (collapsing to fit the token budget).
    MapReduce,
    /// Summarise the first document, then refine with each next one.
    Refine,
}

/// Summarises a list of documents into one text.
///
/// - **Stuff** puts every document into one prompt.
/// - **Map-reduce** summarises each document on its own (at most `max_concurrency` calls in
///   flight), then combines the summaries. When the joined summaries exceed the token
///   budget (counted with [`count_tokens`]), they are grouped into chunks under the budget
///   and each chunk is summarised again, recursively, until they fit; after
///   `max_collapse_depth` rounds it stops with [`SummarizeError::CollapseDepthExceeded`].
/// - **Refine** summarises the first document, then refines that summary with each next
///   document in turn.
///
/// ```
/// use catena_core::test_utils::ScriptedChatModel;
/// use catena_core::{Chain, ChatModelExt, Document};
/// use catena_chains::Summarizer;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> catena_core::Result<()> {
/// let model = ScriptedChatModel::new()
///     .with_text("A is about cats.")
///     .with_text("B is about dogs.")
///     .with_text("Pets.")
///     .boxed();
/// let summarizer = Summarizer::map_reduce(model).with_max_concurrency(1);
/// let docs = vec![Document::new("cats ..."), Document::new("dogs ...")];
/// assert_eq!(summarizer.invoke(docs).await?, "Pets.");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Summarizer {
    strategy: SummarizeStrategy,
    model: Arc<dyn ChatModel>,
    prompt: Arc<dyn Prompt>,
    combine_prompt: Arc<dyn Prompt>,
    refine_prompt: Arc<dyn Prompt>,
    max_concurrency: usize,
    token_budget: usize,
    encoding: TokenEncoding,
    max_collapse_depth: usize,
    request: ChatRequest,
}

impl fmt::Debug for Summarizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Summarizer")
            .field("strategy", &self.strategy)
            .field("model", &self.model.model_info().model)
            .field("max_concurrency", &self.max_concurrency)
            .field("token_budget", &self.token_budget)
            .field("encoding", &self.encoding)
            .field("max_collapse_depth", &self.max_collapse_depth)
            .finish_non_exhaustive()
    }
}

fn default_prompt(template: &str) -> Arc<dyn Prompt> {
    match PromptTemplate::new(template) {
        Ok(p) => Arc::new(p),
        // The defaults are constants that parse (tested); a broken one would report its
        // error on use rather than panic.
        Err(e) => Arc::new(BrokenPrompt(e)),
    }
}

struct BrokenPrompt(PromptError);

impl Prompt for BrokenPrompt {
    fn input_variables(&self) -> Vec<String> {
        Vec::new()
    }
    fn format_messages(
        &self,
        _values: &PromptValues,
    ) -> std::result::Result<Vec<Message>, PromptError> {
        Err(self.0.clone())
    }
}

impl Summarizer {
    /// A summariser using `strategy`, with the default prompts and limits.
    pub fn new(strategy: SummarizeStrategy, model: Arc<dyn ChatModel>) -> Self {
        Summarizer {
            strategy,
            model,
            prompt: default_prompt(DEFAULT_SUMMARY_PROMPT),
            combine_prompt: default_prompt(DEFAULT_SUMMARY_PROMPT),
            refine_prompt: default_prompt(DEFAULT_REFINE_PROMPT),
            max_concurrency: 4,
            token_budget: 3000,
            encoding: TokenEncoding::Cl100kBase,
            max_collapse_depth: 3,
            request: ChatRequest::default(),
        }
    }

    /// The stuff strategy.
    pub fn stuff(model: Arc<dyn ChatModel>) -> Self {
        Summarizer::new(SummarizeStrategy::Stuff, model)
    }

    /// The map-reduce strategy.
    pub fn map_reduce(model: Arc<dyn ChatModel>) -> Self {
        Summarizer::new(SummarizeStrategy::MapReduce, model)
    }

    /// The refine strategy.
    pub fn refine(model: Arc<dyn ChatModel>) -> Self {
        Summarizer::new(SummarizeStrategy::Refine, model)
    }

    /// Sets the prompt of stuff, of the map step and of refine's first document; it must
    /// use exactly `{text}`. Default [`DEFAULT_SUMMARY_PROMPT`].
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when the prompt's variables differ.
    pub fn with_prompt(mut self, prompt: impl Prompt + 'static) -> Result<Self> {
        check_variables(&prompt, "summary", &["text"])?;
        self.prompt = Arc::new(prompt);
        Ok(self)
    }

    /// Sets the prompt that combines (and collapses) map-reduce summaries; it must use
    /// exactly `{text}`. Default [`DEFAULT_SUMMARY_PROMPT`].
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when the prompt's variables differ.
    pub fn with_combine_prompt(mut self, prompt: impl Prompt + 'static) -> Result<Self> {
        check_variables(&prompt, "combine", &["text"])?;
        self.combine_prompt = Arc::new(prompt);
        Ok(self)
    }

    /// Sets the refine prompt; it must use exactly `{existing_answer}` and `{text}`.
    /// Default [`DEFAULT_REFINE_PROMPT`].
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when the prompt's variables differ.
    pub fn with_refine_prompt(mut self, prompt: impl Prompt + 'static) -> Result<Self> {
        check_variables(&prompt, "refine", &["existing_answer", "text"])?;
        self.refine_prompt = Arc::new(prompt);
        Ok(self)
    }

    /// Sets how many map (and collapse) calls may be in flight at once (0 is treated as
    /// 1). Default 4.
    #[must_use]
    pub fn with_max_concurrency(mut self, max_concurrency: usize) -> Self {
        self.max_concurrency = max_concurrency.max(1);
        self
    }

    /// Sets the token budget the joined map-reduce summaries must fit before the final
    /// combine. Default 3000.
    #[must_use]
    pub fn with_token_budget(mut self, tokens: usize) -> Self {
        self.token_budget = tokens;
        self
    }

    /// Sets the encoding tokens are counted with. Default
    /// [`TokenEncoding::Cl100kBase`].
    #[must_use]
    pub fn with_encoding(mut self, encoding: TokenEncoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// Sets how many collapse rounds may run before giving up. Default 3.
    #[must_use]
    pub fn with_max_collapse_depth(mut self, depth: usize) -> Self {
        self.max_collapse_depth = depth;
        self
    }

    /// Sets the request options of every model call; messages are ignored. Default:
    /// everything left to the provider.
    #[must_use]
    pub fn with_request(mut self, request: ChatRequest) -> Self {
        self.request = request;
        self.request.messages.clear();
        self
    }

    /// The strategy.
    pub fn strategy(&self) -> SummarizeStrategy {
        self.strategy
    }

    async fn run_prompt(&self, prompt: &dyn Prompt, values: PromptValues) -> Result<String> {
        let messages = prompt.format_messages(&values)?;
        Ok(ask(self.model.as_ref(), &self.request, messages)
            .await?
            .trim()
            .to_owned())
    }

    async fn summarize_text(&self, prompt: &dyn Prompt, text: String) -> Result<String> {
        self.run_prompt(prompt, PromptValues::new().with("text", text))
            .await
    }

    /// Summarises each text with `prompt`, at most `max_concurrency` at once, in order.
    async fn map_all(&self, prompt: &dyn Prompt, texts: Vec<String>) -> Result<Vec<String>> {
        futures::stream::iter(texts)
            .map(|t| self.summarize_text(prompt, t))
            .buffered(self.max_concurrency)
            .try_collect()
            .await
    }

    fn tokens(&self, text: &str) -> usize {
        count_tokens(self.encoding, text)
    }

    /// Groups `summaries`, in order, into chunks whose joined text fits the budget (a
    /// summary larger than the budget forms a chunk of its own).
    fn group(&self, summaries: Vec<String>) -> Vec<String> {
        let sep = self.tokens(SUMMARY_SEPARATOR);
        let mut groups: Vec<Vec<String>> = Vec::new();
        let mut current_tokens = 0;
        for s in summaries {
            let t = self.tokens(&s);
            match groups.last_mut() {
                Some(g) if !g.is_empty() && current_tokens + sep + t <= self.token_budget => {
                    current_tokens += sep + t;
                    g.push(s);
                }
                _ => {
                    current_tokens = t;
                    groups.push(vec![s]);
                }
            }
        }
        groups
            .into_iter()
            .map(|g| g.join(SUMMARY_SEPARATOR))
            .collect()
    }

    async fn map_reduce_docs(&self, documents: Vec<Document>) -> Result<String> {
        let texts = documents.into_iter().map(|d| d.content).collect();
        let mut summaries = self.map_all(self.prompt.as_ref(), texts).await?;
        let mut depth = 0;
        loop {
            let joined = summaries.join(SUMMARY_SEPARATOR);
            let tokens = self.tokens(&joined);
            if tokens <= self.token_budget {
                return self
                    .summarize_text(self.combine_prompt.as_ref(), joined)
                    .await;
            }
            if depth >= self.max_collapse_depth {
                return Err(SummarizeError::CollapseDepthExceeded {
                    depth,
                    tokens,
                    budget: self.token_budget,
                }
                .into());
            }
            depth += 1;
            let groups = self.group(summaries);
            tracing::debug!(depth, tokens, groups = groups.len(), "collapsing summaries");
            summaries = self.map_all(self.combine_prompt.as_ref(), groups).await?;
        }
    }

    async fn refine_docs(&self, documents: Vec<Document>) -> Result<String> {
        let mut docs = documents.into_iter();
        let first = docs.next().map(|d| d.content).unwrap_or_default();
        let mut summary = self.summarize_text(self.prompt.as_ref(), first).await?;
        for doc in docs {
            let values = PromptValues::new()
                .with("existing_answer", summary)
                .with("text", doc.content);
            summary = self.run_prompt(self.refine_prompt.as_ref(), values).await?;
        }
        Ok(summary)
    }

    /// Summarises `documents`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty list; [`SummarizeError`] (inside
    /// [`Error::Other`]) when map-reduce cannot collapse under the budget; prompt and
    /// model errors.
    pub async fn summarize(&self, documents: Vec<Document>) -> Result<String> {
        if documents.is_empty() {
            return Err(Error::invalid_input("no documents to summarise"));
        }
        match self.strategy {
            SummarizeStrategy::Stuff => {
                let texts: Vec<&str> = documents.iter().map(|d| d.content.as_str()).collect();
                self.summarize_text(self.prompt.as_ref(), texts.join(SUMMARY_SEPARATOR))
                    .await
            }
            SummarizeStrategy::MapReduce => self.map_reduce_docs(documents).await,
            SummarizeStrategy::Refine => self.refine_docs(documents).await,
        }
    }
}

#[async_trait]
impl Chain<Vec<Document>, String> for Summarizer {
    async fn invoke(&self, documents: Vec<Document>) -> Result<String> {
        self.summarize(documents).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_prompts_parse() {
        assert!(PromptTemplate::new(DEFAULT_SUMMARY_PROMPT).is_ok());
        assert!(PromptTemplate::new(DEFAULT_REFINE_PROMPT).is_ok());
    }
}
