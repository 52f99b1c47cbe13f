//! Conversational retrieval: condense a follow-up question with the chat history, then
//! retrieve and answer.
//!
//! The details and an example are on [`ConversationalRetrieval`].

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use catena_core::prompt::{PromptTemplate, PromptValues};
use catena_core::{
    Chain, ChainStream, ChatHistory, ChatModel, ChatRequest, Document, Message, Prompt, Result,
    Retriever, Role, SessionId,
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::llm::{ask, check_variables};
use crate::qa::{
    answer_chunks, stuff_documents, PreparedAnswer, DEFAULT_DOCUMENT_SEPARATOR, DEFAULT_QA_PROMPT,
};

/// The default condense prompt; variables `{chat_history}` and `{question}`.
pub const DEFAULT_CONDENSE_PROMPT: &str =
    "Given the following conversation and a follow up question, \
rephrase the follow up question to be a standalone question, in its original language.\n\n\
Chat History:\n{chat_history}\nFollow Up Input: {question}\nStandalone question:";

/// One user turn: the session and the (possibly follow-up) question.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConversationTurn {
    /// The conversation.
    pub session: SessionId,
    /// The user's question as asked.
    pub question: String,
}

impl ConversationTurn {
    /// A turn in `session`.
    pub fn new(session: impl Into<SessionId>, question: impl Into<String>) -> Self {
        ConversationTurn {
            session: session.into(),
            question: question.into(),
        }
    }
}

/// What one turn produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ConversationalAnswer {
    /// The model's answer, trimmed.
    pub answer: String,
    /// The retrieved documents the answer was drawn from.
    pub sources: Vec<Document>,
    /// The question used for retrieval: the condensed one, or the original when the
    /// history was empty.
    pub standalone_question: String,
}

/// Formats messages as `Human: …` / `Assistant: …` lines for the condense prompt; system
/// and tool messages are left out.
pub fn format_chat_history(messages: &[Message]) -> String {
    messages
        .iter()
        .filter_map(|m| match m.role {
            Role::User => Some(format!("Human: {}", m.text())),
            Role::Assistant => Some(format!("Assistant: {}", m.text())),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Condense → retrieve → answer, with history.
///
/// [`ConversationalRetrieval`] reads the session's messages from any [`ChatHistory`]. When
/// there are some, the model first rewrites the follow-up into a standalone question (the
/// condense prompt); with an empty history the question is used as it is and no condense
/// call is made. The standalone question is sent to the [`Retriever`] and answered from the
/// stuffed documents; then the user's question and the answer are appended to the history.
///
/// ```
/// use std::sync::Arc;
/// use catena_core::test_utils::ScriptedChatModel;
/// use catena_core::{chain_fn, Chain, ChatHistory, ChatModelExt, Document, InMemoryChatHistory, Retriever, SessionId};
/// use catena_chains::{ConversationTurn, ConversationalRetrieval};
///
/// struct Fixed;
/// #[async_trait::async_trait]
/// impl Retriever for Fixed {
///     async fn retrieve(&self, _q: &str) -> catena_core::Result<Vec<Document>> {
///         Ok(vec![Document::new("Ferris is the Rust mascot.")])
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> catena_core::Result<()> {
/// let history = Arc::new(InMemoryChatHistory::new());
/// let model = ScriptedChatModel::new()
///     .with_text("Ferris.")                          // first turn: no condensing
///     .with_text("What colour is Ferris?")           // condensed follow-up
///     .with_text("Orange.")
///     .boxed();
/// let chain = ConversationalRetrieval::builder(Arc::new(Fixed), model, history.clone()).build()?;
/// let session = SessionId::new("s1");
/// chain.invoke(ConversationTurn::new(session.clone(), "Who is the Rust mascot?")).await?;
/// let out = chain.invoke(ConversationTurn::new(session.clone(), "What colour is it?")).await?;
/// assert_eq!(out.standalone_question, "What colour is Ferris?");
/// assert_eq!(out.answer, "Orange.");
/// assert_eq!(history.messages(&session).await?.len(), 4);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ConversationalRetrieval {
    retriever: Arc<dyn Retriever>,
    model: Arc<dyn ChatModel>,
    history: Arc<dyn ChatHistory>,
    condense_prompt: Arc<dyn Prompt>,
    qa_prompt: Arc<dyn Prompt>,
    separator: String,
    request: ChatRequest,
}

impl fmt::Debug for ConversationalRetrieval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConversationalRetrieval")
            .field("model", &self.model.model_info().model)
            .field("separator", &self.separator)
            .field("request", &self.request)
            .finish_non_exhaustive()
    }
}

/// Builds a [`ConversationalRetrieval`].
#[must_use]
pub struct ConversationalRetrievalBuilder {
    retriever: Arc<dyn Retriever>,
    model: Arc<dyn ChatModel>,
    history: Arc<dyn ChatHistory>,
    condense_prompt: Option<Arc<dyn Prompt>>,
    qa_prompt: Option<Arc<dyn Prompt>>,
    separator: String,
    request: ChatRequest,
}

impl fmt::Debug for ConversationalRetrievalBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConversationalRetrievalBuilder")
            .field("separator", &self.separator)
            .finish_non_exhaustive()
    }
}

impl ConversationalRetrievalBuilder {
    /// Sets the condense prompt; it must use exactly `{chat_history}` and `{question}`.
    /// Default [`DEFAULT_CONDENSE_PROMPT`] as one user message.
    pub fn condense_prompt(mut self, prompt: impl Prompt + 'static) -> Self {
        self.condense_prompt = Some(Arc::new(prompt));
        self
    }

    /// Sets the answer prompt; it must use exactly `{context}` and `{question}`. Default
    /// [`DEFAULT_QA_PROMPT`] as one user message.
    pub fn qa_prompt(mut self, prompt: impl Prompt + 'static) -> Self {
        self.qa_prompt = Some(Arc::new(prompt));
        self
    }

    /// Sets the separator between stuffed documents. Default a blank line.
    pub fn document_separator(mut self, separator: impl Into<String>) -> Self {
        self.separator = separator.into();
        self
    }

    /// Sets the request options of both model calls; messages are ignored. Default:
    /// everything left to the provider.
    pub fn request(mut self, request: ChatRequest) -> Self {
        self.request = request;
        self.request.messages.clear();
        self
    }

    /// Sets the most tokens each model call (condensing and answering) may produce.
    /// Default: the provider's.
    pub fn max_tokens(mut self, max_tokens: u32) -> Self {
        self.request.max_tokens = Some(max_tokens);
        self
    }

    /// Sets the sampling temperature of both model calls. Default: the provider's.
    pub fn temperature(mut self, temperature: f32) -> Self {
        self.request.temperature = Some(temperature);
        self
    }

    /// Builds the chain.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`](catena_core::Error::InvalidConfig) when a prompt does not
    /// use exactly its variables.
    pub fn build(self) -> Result<ConversationalRetrieval> {
        let condense_prompt = match self.condense_prompt {
            Some(p) => p,
            None => Arc::new(PromptTemplate::new(DEFAULT_CONDENSE_PROMPT)?),
        };
        let qa_prompt = match self.qa_prompt {
            Some(p) => p,
            None => Arc::new(PromptTemplate::new(DEFAULT_QA_PROMPT)?),
        };
        check_variables(
            condense_prompt.as_ref(),
            "condense",
            &["chat_history", "question"],
        )?;
        check_variables(qa_prompt.as_ref(), "answer", &["context", "question"])?;
        Ok(ConversationalRetrieval {
            retriever: self.retriever,
            model: self.model,
            history: self.history,
            condense_prompt,
            qa_prompt,
            separator: self.separator,
            request: self.request,
        })
    }
}

impl ConversationalRetrieval {
    /// Starts a builder.
    pub fn builder(
        retriever: Arc<dyn Retriever>,
        model: Arc<dyn ChatModel>,
        history: Arc<dyn ChatHistory>,
    ) -> ConversationalRetrievalBuilder {
        ConversationalRetrievalBuilder {
            retriever,
            model,
            history,
            condense_prompt: None,
            qa_prompt: None,
            separator: DEFAULT_DOCUMENT_SEPARATOR.to_owned(),
            request: ChatRequest::default(),
        }
    }

    /// The standalone form of `question` given `history` (the question itself when the
    /// history is empty).
    ///
    /// # Errors
    /// Prompt errors and the model's errors.
    pub async fn condense(&self, history: &[Message], question: &str) -> Result<String> {
        if history.is_empty() {
            return Ok(question.to_owned());
        }
        let values = PromptValues::new()
            .with("chat_history", format_chat_history(history))
            .with("question", question);
        let messages = self.condense_prompt.format_messages(&values)?;
        let condensed = ask(self.model.as_ref(), &self.request, messages).await?;
        Ok(condensed.trim().to_owned())
    }
}

impl ConversationalRetrieval {
    /// Condenses the turn's question with the session's history, retrieves for it and builds
    /// the answer request, without calling the model for the answer: the standalone question
    /// and the [`PreparedAnswer`]. The history is not changed.
    ///
    /// # Errors
    /// History, prompt, model (condensing) and retriever errors.
    pub async fn prepare(&self, turn: &ConversationTurn) -> Result<(String, PreparedAnswer)> {
        let past = self.history.messages(&turn.session).await?;
        let standalone = self.condense(&past, &turn.question).await?;
        let sources = self.retriever.retrieve_scored(&standalone).await?;
        let prepared = PreparedAnswer::new(
            Arc::clone(&self.model),
            &self.request,
            self.qa_prompt.as_ref(),
            &self.separator,
            &standalone,
            sources,
        )?;
        Ok((standalone, prepared))
    }
}

#[async_trait]
impl Chain<ConversationTurn, ConversationalAnswer> for ConversationalRetrieval {
    async fn invoke(&self, turn: ConversationTurn) -> Result<ConversationalAnswer> {
        let past = self.history.messages(&turn.session).await?;
        let standalone_question = self.condense(&past, &turn.question).await?;
        let sources = self.retriever.retrieve(&standalone_question).await?;
        let values = PromptValues::new()
            .with("context", stuff_documents(&sources, &self.separator))
            .with("question", standalone_question.as_str());
        let messages = self.qa_prompt.format_messages(&values)?;
        let answer = ask(self.model.as_ref(), &self.request, messages)
            .await?
            .trim()
            .to_owned();
        self.history
            .append(
                &turn.session,
                &[
                    Message::user(turn.question),
                    Message::assistant(answer.as_str()),
                ],
            )
            .await?;
        Ok(ConversationalAnswer {
            answer,
            sources,
            standalone_question,
        })
    }

    /// Streams the sources first, then the answer: the first item has the sources, the
    /// standalone question and an empty answer; each later item a piece of the answer. When
    /// the answer has ended, the turn is appended to the history (a failure to append ends
    /// the stream with that error); a stream dropped or failed midway appends nothing.
    async fn stream(&self, turn: ConversationTurn) -> Result<ChainStream<ConversationalAnswer>> {
        let (standalone, prepared) = self.prepare(&turn).await?;
        let events = prepared.stream().await?;
        let question = standalone.clone();
        let chunks = answer_chunks(events, move |answer, sources, first| ConversationalAnswer {
            answer,
            sources,
            standalone_question: if first {
                question.clone()
            } else {
                String::new()
            },
        });
        let answer = Arc::new(std::sync::Mutex::new(Some(String::new())));
        let seen = Arc::clone(&answer);
        let chunks = chunks.map(move |chunk| {
            if let Ok(c) = &chunk {
                if let Ok(mut a) = seen.lock() {
                    if let Some(a) = a.as_mut() {
                        a.push_str(&c.answer);
                    }
                }
            } else if let Ok(mut a) = seen.lock() {
                *a = None; // failed: nothing to remember
            }
            chunk
        });
        let history = Arc::clone(&self.history);
        let finish = futures::stream::once(async move {
            let text = answer.lock().ok().and_then(|mut a| a.take())?;
            match history
                .append(
                    &turn.session,
                    &[Message::user(turn.question), Message::assistant(text)],
                )
                .await
            {
                Ok(()) => None,
                Err(e) => Some(Err(e)),
            }
        })
        .filter_map(|e| async move { e });
        Ok(Box::pin(chunks.chain(finish)))
    }
}
