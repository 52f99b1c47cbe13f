//! Retrieval question answering: retrieve documents, stuff them into a prompt, answer.
//!
//! The details and an example are on [`RetrievalQa`].

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use catena_core::parser::{OutputParser, StrOutputParser};
use catena_core::prompt::{PromptTemplate, PromptValues};
use catena_core::{
    Chain, ChainStream, ChatChunk, ChatModel, ChatRequest, ChatResponse, Document, FinishReason,
    Prompt, Result, Retriever, ScoredDocument, Usage,
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::llm::{ask, check_variables};

/// The default answer prompt; variables `{context}` and `{question}`.
pub const DEFAULT_QA_PROMPT: &str =
    "Use the following pieces of context to answer the question at the end. \
If you don't know the answer, just say that you don't know, don't try to make up an answer.\n\n\
{context}\n\nQuestion: {question}\nHelpful Answer:";

/// The default separator between stuffed documents.
pub const DEFAULT_DOCUMENT_SEPARATOR: &str = "\n\n";

/// An answer and the documents it was drawn from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct QaAnswer {
    /// The model's answer, trimmed.
    pub answer: String,
    /// The retrieved documents put into the prompt, in retrieval order.
    pub sources: Vec<Document>,
}

impl QaAnswer {
    /// An answer with its sources.
    pub fn new(answer: impl Into<String>, sources: Vec<Document>) -> Self {
        QaAnswer {
            answer: answer.into(),
            sources,
        }
    }
}

/// One event of a streamed retrieval answer ([`PreparedAnswer::stream`]): the sources
/// first, then the answer as it arrives.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum QaEvent {
    /// The retrieved documents put into the prompt, with their scores; always the first
    /// event, before the model is called.
    Sources(Vec<ScoredDocument>),
    /// More answer text, as the model sent it (not trimmed).
    Token(String),
    /// Token usage, when the provider reports it.
    Usage(Usage),
    /// Why the answer ended.
    Finish(FinishReason),
}

/// A stream of [`QaEvent`]s.
pub type QaEventStream = ChainStream<QaEvent>;

/// A retrieval answer that is ready to ask: the documents are retrieved and the request is
/// built, but the model has not been called. Look at [`sources`](Self::sources) and
/// [`request`](Self::request) (to reserve a token budget, say), adjust
/// [`with_max_tokens`](Self::with_max_tokens), then [`stream`](Self::stream) or
/// [`generate`](Self::generate). Made by [`RetrievalQa::prepare`].
#[derive(Clone)]
pub struct PreparedAnswer {
    sources: Vec<ScoredDocument>,
    request: ChatRequest,
    model: Arc<dyn ChatModel>,
}

impl fmt::Debug for PreparedAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedAnswer")
            .field("sources", &self.sources.len())
            .field("messages", &self.request.messages.len())
            .finish_non_exhaustive()
    }
}

impl PreparedAnswer {
    /// Builds the request for `question` over `sources` with `prompt`.
    pub(crate) fn new(
        model: Arc<dyn ChatModel>,
        base: &ChatRequest,
        prompt: &dyn Prompt,
        separator: &str,
        question: &str,
        sources: Vec<ScoredDocument>,
    ) -> Result<Self> {
        let context = sources
            .iter()
            .map(|s| s.document.content.as_str())
            .collect::<Vec<_>>()
            .join(separator);
        let values = PromptValues::new()
            .with("context", context)
            .with("question", question);
        let mut request = base.clone();
        request.messages = prompt.format_messages(&values)?;
        Ok(PreparedAnswer {
            sources,
            request,
            model,
        })
    }

    /// The retrieved documents, with their scores, in retrieval order.
    pub fn sources(&self) -> &[ScoredDocument] {
        &self.sources
    }

    /// The request the model will get.
    pub fn request(&self) -> &ChatRequest {
        &self.request
    }

    /// Caps the answer at `max_tokens`.
    #[must_use]
    pub fn with_max_tokens(mut self, max_tokens: u32) -> Self {
        self.request.max_tokens = Some(max_tokens);
        self
    }

    /// Asks the model and streams: [`QaEvent::Sources`] first, then the answer's tokens,
    /// usage and finish reason as the model sends them. Dropping the stream cancels the model
    /// call.
    ///
    /// # Errors
    /// The model's errors before its first chunk; later ones arrive as an `Err` item.
    pub async fn stream(self) -> Result<QaEventStream> {
        let sources = QaEvent::Sources(self.sources);
        let chunks = self.model.stream(self.request).await?;
        let events = chunks.filter_map(|chunk| async move {
            match chunk {
                Ok(ChatChunk::TextDelta(t)) => Some(Ok(QaEvent::Token(t))),
                Ok(ChatChunk::Usage(u)) => Some(Ok(QaEvent::Usage(u))),
                Ok(ChatChunk::Finish(f)) => Some(Ok(QaEvent::Finish(f))),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            }
        });
        Ok(Box::pin(
            futures::stream::once(async move { Ok(sources) }).chain(events),
        ))
    }

    /// Asks the model for the whole answer: the response (usage and model included) and the
    /// sources.
    ///
    /// # Errors
    /// The model's errors.
    pub async fn generate(self) -> Result<(ChatResponse, Vec<ScoredDocument>)> {
        let response = self.model.generate(self.request).await?;
        Ok((response, self.sources))
    }
}

/// Turns a [`QaEventStream`] into answer chunks (`make(answer, sources, is_first)`): the
/// first carries the sources (and an empty answer), each later one a piece of the answer, trimmed as a whole like
/// [`StrOutputParser`] trims, so the pieces concatenate to [`Chain::invoke`]'s answer.
pub(crate) fn answer_chunks<O, F>(events: QaEventStream, make: F) -> ChainStream<O>
where
    O: Send + 'static,
    F: Fn(String, Vec<Document>, bool) -> O + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let mut trim = StrOutputParser.stream_parser();
    Box::pin(events.filter_map(move |event| {
        let out = match event {
            Ok(QaEvent::Sources(s)) => Some(Ok(make(
                String::new(),
                s.into_iter().map(|s| s.document).collect(),
                true,
            ))),
            Ok(QaEvent::Token(t)) => trim.as_mut().and_then(|p| p.push(&t)).map(|piece| {
                piece
                    .map(|p| make(p, Vec::new(), false))
                    .map_err(Into::into)
            }),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        };
        async move { out }
    }))
}

/// Joins the documents' contents with `separator`: the "stuff" strategy.
pub fn stuff_documents(documents: &[Document], separator: &str) -> String {
    documents
        .iter()
        .map(|d| d.content.as_str())
        .collect::<Vec<_>>()
        .join(separator)
}

/// Retrieve → stuff → answer.
///
/// [`RetrievalQa`] asks any [`Retriever`] for documents relevant to the question, joins
/// their contents into the `{context}` of a prompt (by default LangChain's "Use the
/// following pieces of context to answer the question at the end…"), asks the model, and
/// returns the answer with the documents it was given ([`QaAnswer`]).
///
/// ```
/// use std::sync::Arc;
/// use catena_core::test_utils::{DeterministicEmbedder, ScriptedChatModel};
/// use catena_core::{Chain, ChatModelExt, Document, Embedder, EmbeddedDocument, VectorStore, VectorStoreRetriever};
/// use catena_vectorstores::InMemoryVectorStore;
/// use catena_chains::RetrievalQa;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> catena_core::Result<()> {
/// let embedder = Arc::new(DeterministicEmbedder::new(64));
/// let store = Arc::new(InMemoryVectorStore::new());
/// let doc = Document::new("Rust was first released in 2015.");
/// let embedding = embedder.embed_query(&doc.content).await?;
/// store.upsert(vec![EmbeddedDocument::new(doc, embedding)]).await?;
///
/// let retriever = Arc::new(VectorStoreRetriever::new(embedder, store).with_k(1));
/// let model = ScriptedChatModel::new().with_text("In 2015.").boxed();
/// let qa = RetrievalQa::builder(retriever, model).build()?;
/// let out = qa.invoke("When was Rust released?".to_string()).await?;
/// assert_eq!(out.answer, "In 2015.");
/// assert_eq!(out.sources.len(), 1);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RetrievalQa {
    retriever: Arc<dyn Retriever>,
    model: Arc<dyn ChatModel>,
    prompt: Arc<dyn Prompt>,
    separator: String,
    request: ChatRequest,
}

impl fmt::Debug for RetrievalQa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetrievalQa")
            .field("model", &self.model.model_info().model)
            .field("separator", &self.separator)
            .field("request", &self.request)
            .finish_non_exhaustive()
    }
}

/// Builds a [`RetrievalQa`].
#[must_use]
pub struct RetrievalQaBuilder {
    retriever: Arc<dyn Retriever>,
    model: Arc<dyn ChatModel>,
    prompt: Option<Arc<dyn Prompt>>,
    separator: String,
    request: ChatRequest,
}

impl fmt::Debug for RetrievalQaBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetrievalQaBuilder")
            .field("separator", &self.separator)
            .finish_non_exhaustive()
    }
}

impl RetrievalQaBuilder {
    /// Sets the answer prompt; it must use exactly `{context}` and `{question}`. Default
    /// [`DEFAULT_QA_PROMPT`] as one user message.
    pub fn prompt(mut self, prompt: impl Prompt + 'static) -> Self {
        self.prompt = Some(Arc::new(prompt));
        self
    }

    /// Sets the separator between stuffed documents. Default
    /// [`DEFAULT_DOCUMENT_SEPARATOR`] (a blank line).
    pub fn document_separator(mut self, separator: impl Into<String>) -> Self {
        self.separator = separator.into();
        self
    }

    /// Sets the request options (temperature, max tokens, …) of the answer call; its
    /// messages are ignored. Default: everything left to the provider.
    pub fn request(mut self, request: ChatRequest) -> Self {
        self.request = request;
        self.request.messages.clear();
        self
    }

    /// Sets the most tokens the answer may have. Default: the provider's.
    pub fn max_tokens(mut self, max_tokens: u32) -> Self {
        self.request.max_tokens = Some(max_tokens);
        self
    }

    /// Sets the sampling temperature of the answer. Default: the provider's.
    pub fn temperature(mut self, temperature: f32) -> Self {
        self.request.temperature = Some(temperature);
        self
    }

    /// Builds the chain.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`](catena_core::Error::InvalidConfig) when the prompt does not
    /// use exactly `{context}` and `{question}`.
    pub fn build(self) -> Result<RetrievalQa> {
        let prompt = match self.prompt {
            Some(p) => p,
            None => Arc::new(PromptTemplate::new(DEFAULT_QA_PROMPT)?),
        };
        check_variables(prompt.as_ref(), "retrieval QA", &["context", "question"])?;
        Ok(RetrievalQa {
            retriever: self.retriever,
            model: self.model,
            prompt,
            separator: self.separator,
            request: self.request,
        })
    }
}

impl RetrievalQa {
    /// Starts a builder over `retriever` and `model`.
    pub fn builder(retriever: Arc<dyn Retriever>, model: Arc<dyn ChatModel>) -> RetrievalQaBuilder {
        RetrievalQaBuilder {
            retriever,
            model,
            prompt: None,
            separator: DEFAULT_DOCUMENT_SEPARATOR.to_owned(),
            request: ChatRequest::default(),
        }
    }

    /// Answers `question` from `documents` already retrieved (no retrieval).
    ///
    /// # Errors
    /// Prompt errors and the model's errors.
    pub async fn answer_from(&self, question: &str, documents: Vec<Document>) -> Result<QaAnswer> {
        let values = PromptValues::new()
            .with("context", stuff_documents(&documents, &self.separator))
            .with("question", question);
        let messages = self.prompt.format_messages(&values)?;
        let answer = ask(self.model.as_ref(), &self.request, messages).await?;
        Ok(QaAnswer::new(answer.trim(), documents))
    }
}

impl RetrievalQa {
    /// Retrieves the documents for `question` (with their scores) and builds the request,
    /// without calling the model; see [`PreparedAnswer`].
    ///
    /// # Errors
    /// The retriever's errors and prompt errors.
    pub async fn prepare(&self, question: &str) -> Result<PreparedAnswer> {
        let sources = self.retriever.retrieve_scored(question).await?;
        PreparedAnswer::new(
            Arc::clone(&self.model),
            &self.request,
            self.prompt.as_ref(),
            &self.separator,
            question,
            sources,
        )
    }

    /// Streams the answer to `question` as events: the sources, then tokens, usage and the
    /// finish reason. `prepare(question)` then [`PreparedAnswer::stream`].
    ///
    /// # Errors
    /// The retriever's errors, prompt errors, the model's errors before its first chunk.
    pub async fn stream_events(&self, question: &str) -> Result<QaEventStream> {
        self.prepare(question).await?.stream().await
    }
}

#[async_trait]
impl Chain<String, QaAnswer> for RetrievalQa {
    async fn invoke(&self, question: String) -> Result<QaAnswer> {
        let documents = self.retriever.retrieve(&question).await?;
        self.answer_from(&question, documents).await
    }

    /// Streams the sources first, then the answer: the first item has the sources and an
    /// empty answer, each later item a piece of the answer (no sources). The pieces
    /// concatenate to what [`invoke`](Chain::invoke) answers.
    async fn stream(&self, question: String) -> Result<ChainStream<QaAnswer>> {
        let events = self.stream_events(&question).await?;
        Ok(answer_chunks(events, |answer, sources, _| {
            QaAnswer::new(answer, sources)
        }))
    }
}
