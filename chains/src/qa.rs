//! Retrieval question answering: retrieve documents, stuff them into a prompt, answer.
//!
//! The details and an example are on [`RetrievalQa`].

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use catena_core::prompt::{PromptTemplate, PromptValues};
use catena_core::{Chain, ChatModel, ChatRequest, Document, Prompt, Result, Retriever};
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

#[async_trait]
impl Chain<String, QaAnswer> for RetrievalQa {
    async fn invoke(&self, question: String) -> Result<QaAnswer> {
        let documents = self.retriever.retrieve(&question).await?;
        self.answer_from(&question, documents).await
    }
}
