//! Several phrasings of one question, retrieved together.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use catena_core::parser::LineListOutputParser;
use catena_core::prompt::PromptTemplate;
use catena_core::{ChatModel, ChatRequest, Document, Message, OutputParser, Result, Retriever};

use super::dedup_key;

/// LangChain's default multi-query prompt.
pub const DEFAULT_PROMPT: &str = "You are an AI language model assistant. Your task is to generate {n} \
different versions of the given user question to retrieve relevant documents from a vector database. \
By generating multiple perspectives on the user question, your goal is to help the user overcome some \
of the limitations of the distance-based similarity search. Provide these alternative questions \
separated by newlines.\nOriginal question: {question}";

/// Asks a model for `n` rephrasings of the question, retrieves for the original and each
/// rephrasing concurrently, and returns the union, de-duplicated by id, in order of first
/// appearance.
#[derive(Clone)]
pub struct MultiQueryRetriever {
    model: Arc<dyn ChatModel>,
    retriever: Arc<dyn Retriever>,
    prompt: PromptTemplate,
    n: usize,
    include_original: bool,
}

impl fmt::Debug for MultiQueryRetriever {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiQueryRetriever")
            .field("n", &self.n)
            .field("include_original", &self.include_original)
            .finish_non_exhaustive()
    }
}

impl MultiQueryRetriever {
    /// Three rephrasings with LangChain's prompt, plus the original question.
    ///
    /// # Errors
    /// Never for the built-in prompt; kept fallible for [`with_prompt`](Self::with_prompt).
    pub fn new(model: Arc<dyn ChatModel>, retriever: Arc<dyn Retriever>) -> Result<Self> {
        Ok(MultiQueryRetriever {
            model,
            retriever,
            prompt: PromptTemplate::new(DEFAULT_PROMPT)?,
            n: 3,
            include_original: true,
        })
    }

    /// How many rephrasings to ask for. Default 3.
    #[must_use]
    pub fn with_n(mut self, n: usize) -> Self {
        self.n = n;
        self
    }

    /// Whether to retrieve for the original question too. Default true.
    #[must_use]
    pub fn with_original(mut self, yes: bool) -> Self {
        self.include_original = yes;
        self
    }

    /// A custom prompt with the variables `{question}` and `{n}`.
    ///
    /// # Errors
    /// A prompt error when the template does not parse.
    pub fn with_prompt(mut self, template: &str) -> Result<Self> {
        self.prompt = PromptTemplate::new(template)?;
        Ok(self)
    }

    /// The questions that will be searched: the model's rephrasings (and the original).
    ///
    /// # Errors
    /// Model failures.
    pub async fn queries(&self, question: &str) -> Result<Vec<String>> {
        let n = self.n.to_string();
        let text = self
            .prompt
            .format([("question", question), ("n", n.as_str())])?;
        let answer = self
            .model
            .generate(ChatRequest::new(vec![Message::user(text)]))
            .await?;
        let mut queries = Vec::new();
        if self.include_original {
            queries.push(question.to_owned());
        }
        for q in LineListOutputParser::new().parse(&answer.text())? {
            if !queries.contains(&q) {
                queries.push(q);
            }
        }
        Ok(queries)
    }
}

#[async_trait]
impl Retriever for MultiQueryRetriever {
    async fn retrieve(&self, query: &str) -> Result<Vec<Document>> {
        let queries = self.queries(query).await?;
        let lists =
            futures::future::try_join_all(queries.iter().map(|q| self.retriever.retrieve(q)))
                .await?;
        let mut seen = HashSet::new();
        Ok(lists
            .into_iter()
            .flatten()
            .filter(|d| seen.insert(dedup_key(d)))
            .collect())
    }
}
