//! SQL question answering: the model writes a query, a read-only database runs it, and the
//! model answers from the rows.
//!
//! The details and an example are on [`SqlQaChain`].

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use catena_core::prompt::{PromptTemplate, PromptValues};
use catena_core::{Chain, ChatModel, ChatRequest, Prompt, Result};
use serde::{Deserialize, Serialize};

use crate::llm::{ask, check_variables};

/// The default query-writing prompt; variables `{dialect}`, `{table_info}`, `{top_k}` and
/// `{question}`.
pub const DEFAULT_SQL_QUERY_PROMPT: &str = "You are a {dialect} expert. Given an input question, \
write one syntactically correct {dialect} query that answers it.\n\
Unless the question asks for a specific number of rows, return at most {top_k} rows using a LIMIT clause. \
Query only the columns needed to answer the question. \
Only read data: never write INSERT, UPDATE, DELETE or DDL statements.\n\
Use only the following tables:\n{table_info}\n\n\
Return only the SQL query, with no explanation.\n\n\
Question: {question}\nSQLQuery:";

/// The default answer prompt; variables `{question}`, `{query}` and `{result}`.
pub const DEFAULT_SQL_ANSWER_PROMPT: &str = "Given the following user question, the SQL query \
that was run and its result, answer the question.\n\n\
Question: {question}\nSQLQuery: {query}\nSQLResult:\n{result}\nAnswer:";

pub use catena_core::{SqlDatabase, SqlRows};

/// The SQL in a model's output: the content of the first fenced code block when there is
/// one (its language tag dropped), with a leading `SQLQuery:` label removed and whitespace
/// trimmed.
///
/// ```
/// use catena_chains::extract_sql;
/// assert_eq!(extract_sql("Here:\n```sql\nSELECT 1;\n```\nDone."), "SELECT 1;");
/// assert_eq!(extract_sql("SQLQuery: SELECT 2"), "SELECT 2");
/// ```
pub fn extract_sql(output: &str) -> String {
    let mut text = output.trim();
    if let Some(start) = text.find("```") {
        let after = &text[start + 3..];
        let close = after.find("```").unwrap_or(after.len());
        text = match after.find('\n') {
            // The rest of the opening fence line is the language tag.
            Some(nl) if nl < close => {
                let body = &after[nl + 1..];
                &body[..body.find("```").unwrap_or(body.len())]
            }
            // A one-line block: drop a leading `sql` tag.
            _ => {
                let inline = after[..close].trim_start();
                match inline.get(..3) {
                    Some(tag)
                        if tag.eq_ignore_ascii_case("sql")
                            && inline[3..].starts_with(char::is_whitespace) =>
                    {
                        &inline[3..]
                    }
                    _ => inline,
                }
            }
        };
    }
    let text = text.trim();
    let text = text
        .strip_prefix("SQLQuery:")
        .or_else(|| text.strip_prefix("SQL:"))
        .unwrap_or(text);
    text.trim().to_owned()
}

/// What a [`SqlQaChain`] produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SqlAnswer {
    /// The question asked.
    pub question: String,
    /// The SQL the model wrote (fences stripped), as run.
    pub sql: String,
    /// The rows it returned.
    pub rows: SqlRows,
    /// The model's answer from the rows, trimmed.
    pub answer: String,
}

/// Question → SQL → rows → answer.
///
/// [`SqlDatabase`] is the backend-neutral contract: a dialect name, the schema as text, and
/// a read-only query runner that enforces its own row limit and timeout. [`SqlQaChain`]
/// asks the model for a query (the prompt holds the dialect, the table info and the row
/// limit), strips code fences from its output ([`extract_sql`]), runs it, and asks the
/// model to answer from the rows. It returns the question, the SQL, the rows and the answer
/// ([`SqlAnswer`]). The rows go into the answer prompt as text of at most
/// [`max_result_bytes`](SqlQaChainBuilder::max_result_bytes) (16 KiB by default), whatever
/// the database returned.
///
/// `catena_vectorstores::PostgresSqlDatabase` (feature `postgres` there) runs the model's
/// SQL inside a read-only transaction with a statement timeout, a row limit and a byte
/// budget.
///
/// ```
/// use std::sync::Arc;
/// use async_trait::async_trait;
/// use catena_core::test_utils::ScriptedChatModel;
/// use catena_core::{Chain, ChatModelExt};
/// use catena_chains::{SqlDatabase, SqlQaChain, SqlRows};
///
/// #[derive(Debug)]
/// struct Fake;
/// #[async_trait]
/// impl SqlDatabase for Fake {
///     fn dialect(&self) -> &str { "PostgreSQL" }
///     async fn table_info(&self) -> catena_core::Result<String> {
///         Ok("CREATE TABLE cities (name text, population bigint);".into())
///     }
///     async fn run_read_only(&self, _sql: &str) -> catena_core::Result<SqlRows> {
///         Ok(SqlRows::new(vec!["count".into()], vec![vec![3.into()]]))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> catena_core::Result<()> {
/// let model = ScriptedChatModel::new()
///     .with_text("```sql\nSELECT count(*) FROM cities;\n```")
///     .with_text("There are 3 cities.")
///     .boxed();
/// let chain = SqlQaChain::builder(Arc::new(Fake), model).build()?;
/// let out = chain.invoke("How many cities are there?".to_string()).await?;
/// assert_eq!(out.sql, "SELECT count(*) FROM cities;");
/// assert_eq!(out.answer, "There are 3 cities.");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SqlQaChain {
    database: Arc<dyn SqlDatabase>,
    model: Arc<dyn ChatModel>,
    query_prompt: Arc<dyn Prompt>,
    answer_prompt: Arc<dyn Prompt>,
    top_k: usize,
    max_result_bytes: usize,
    request: ChatRequest,
}

impl fmt::Debug for SqlQaChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlQaChain")
            .field("dialect", &self.database.dialect())
            .field("model", &self.model.model_info().model)
            .field("top_k", &self.top_k)
            .field("max_result_bytes", &self.max_result_bytes)
            .finish_non_exhaustive()
    }
}

/// The default of [`SqlQaChainBuilder::max_result_bytes`] (16 KiB).
pub(crate) const DEFAULT_SQL_MAX_RESULT_BYTES: usize = 16 * 1024;

/// Builds a [`SqlQaChain`].
#[must_use]
pub struct SqlQaChainBuilder {
    database: Arc<dyn SqlDatabase>,
    model: Arc<dyn ChatModel>,
    query_prompt: Option<Arc<dyn Prompt>>,
    answer_prompt: Option<Arc<dyn Prompt>>,
    top_k: usize,
    max_result_bytes: usize,
    request: ChatRequest,
}

impl fmt::Debug for SqlQaChainBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlQaChainBuilder")
            .field("top_k", &self.top_k)
            .field("max_result_bytes", &self.max_result_bytes)
            .finish_non_exhaustive()
    }
}

impl SqlQaChainBuilder {
    /// Sets the query-writing prompt; it must use exactly `{dialect}`, `{table_info}`,
    /// `{top_k}` and `{question}`. Default [`DEFAULT_SQL_QUERY_PROMPT`].
    pub fn query_prompt(mut self, prompt: impl Prompt + 'static) -> Self {
        self.query_prompt = Some(Arc::new(prompt));
        self
    }

    /// Sets the answer prompt; it must use exactly `{question}`, `{query}` and `{result}`.
    /// Default [`DEFAULT_SQL_ANSWER_PROMPT`].
    pub fn answer_prompt(mut self, prompt: impl Prompt + 'static) -> Self {
        self.answer_prompt = Some(Arc::new(prompt));
        self
    }

    /// Sets the row count the prompt asks the model to limit its query to. Default 10.
    /// (The database enforces its own hard limit.)
    pub fn top_k(mut self, top_k: usize) -> Self {
        self.top_k = top_k;
        self
    }

    /// Caps the bytes of the rows' text put into the answer prompt: the text stops at the
    /// value that would pass the cap and says it was cut (see [`SqlRows::to_text_capped`]).
    /// The rows in [`SqlAnswer`] are not cut. Default 16 KiB.
    pub fn max_result_bytes(mut self, max_bytes: usize) -> Self {
        self.max_result_bytes = max_bytes;
        self
    }

    /// Sets the request options of both model calls; messages are ignored. Default:
    /// everything left to the provider.
    pub fn request(mut self, request: ChatRequest) -> Self {
        self.request = request;
        self.request.messages.clear();
        self
    }

    /// Builds the chain.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`](catena_core::Error::InvalidConfig) when a prompt does not
    /// use exactly its variables.
    pub fn build(self) -> Result<SqlQaChain> {
        let query_prompt = match self.query_prompt {
            Some(p) => p,
            None => Arc::new(PromptTemplate::new(DEFAULT_SQL_QUERY_PROMPT)?),
        };
        let answer_prompt = match self.answer_prompt {
            Some(p) => p,
            None => Arc::new(PromptTemplate::new(DEFAULT_SQL_ANSWER_PROMPT)?),
        };
        check_variables(
            query_prompt.as_ref(),
            "SQL query",
            &["dialect", "table_info", "top_k", "question"],
        )?;
        check_variables(
            answer_prompt.as_ref(),
            "SQL answer",
            &["question", "query", "result"],
        )?;
        Ok(SqlQaChain {
            database: self.database,
            model: self.model,
            query_prompt,
            answer_prompt,
            top_k: self.top_k,
            max_result_bytes: self.max_result_bytes,
            request: self.request,
        })
    }
}

impl SqlQaChain {
    /// Starts a builder over `database` and `model`.
    pub fn builder(database: Arc<dyn SqlDatabase>, model: Arc<dyn ChatModel>) -> SqlQaChainBuilder {
        SqlQaChainBuilder {
            database,
            model,
            query_prompt: None,
            answer_prompt: None,
            top_k: 10,
            max_result_bytes: DEFAULT_SQL_MAX_RESULT_BYTES,
            request: ChatRequest::default(),
        }
    }

    /// Asks the model for the SQL answering `question` (fences stripped).
    ///
    /// # Errors
    /// The database's `table_info` errors, prompt and model errors.
    pub async fn write_query(&self, question: &str) -> Result<String> {
        let table_info = self.database.table_info().await?;
        let values = PromptValues::new()
            .with("dialect", self.database.dialect())
            .with("table_info", table_info)
            .with("top_k", self.top_k)
            .with("question", question);
        let messages = self.query_prompt.format_messages(&values)?;
        let output = ask(self.model.as_ref(), &self.request, messages).await?;
        Ok(extract_sql(&output))
    }
}

#[async_trait]
impl Chain<String, SqlAnswer> for SqlQaChain {
    async fn invoke(&self, question: String) -> Result<SqlAnswer> {
        let sql = self.write_query(&question).await?;
        let rows = self.database.run_read_only(&sql).await?;
        let values = PromptValues::new()
            .with("question", question.as_str())
            .with("query", sql.as_str())
            .with("result", rows.to_text_capped(self.max_result_bytes));
        let messages = self.answer_prompt.format_messages(&values)?;
        let answer = ask(self.model.as_ref(), &self.request, messages)
            .await?
            .trim()
            .to_owned();
        Ok(SqlAnswer {
            question,
            sql,
            rows,
            answer,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_sql_from_fences_and_labels() {
        assert_eq!(extract_sql("```\nSELECT 1\n```"), "SELECT 1");
        assert_eq!(extract_sql("```SQL\nSELECT 1\n```"), "SELECT 1");
        assert_eq!(extract_sql("  SELECT 1  "), "SELECT 1");
        assert_eq!(extract_sql("```sql\nSELECT 1"), "SELECT 1");
        assert_eq!(extract_sql("```sql SELECT 1```"), "SELECT 1");
        assert_eq!(
            extract_sql("```SELECT sqlx FROM t```"),
            "SELECT sqlx FROM t"
        );
    }

    #[test]
    fn rows_as_text() {
        let rows = SqlRows::new(
            vec!["a".into(), "b".into()],
            vec![vec!["x".into(), 1.into()]],
        )
        .with_truncated(true);
        assert_eq!(
            rows.to_text(),
            "a | b\nx | 1\n(truncated: 1 rows shown; further rows or the ends of long values \
             were left out)"
        );
    }

    /// A database that returns more than any prompt should hold.
    #[derive(Debug)]
    struct Huge;

    #[async_trait]
    impl SqlDatabase for Huge {
        fn dialect(&self) -> &str {
            "PostgreSQL"
        }
        async fn table_info(&self) -> Result<String> {
            Ok("CREATE TABLE t (s text);".into())
        }
        async fn run_read_only(&self, _sql: &str) -> Result<SqlRows> {
            let rows = (0..50).map(|_| vec!["x".repeat(100_000).into()]).collect();
            Ok(SqlRows::new(vec!["s".into()], rows))
        }
    }

    #[tokio::test]
    async fn the_answer_prompt_is_capped() {
        use catena_core::test_utils::ScriptedChatModel;
        for (cap, limit) in [(None, DEFAULT_SQL_MAX_RESULT_BYTES), (Some(1000), 1000)] {
            let model = Arc::new(
                ScriptedChatModel::new()
                    .with_text("SELECT s FROM t")
                    .with_text("Many x."),
            );
            let mut builder = SqlQaChain::builder(Arc::new(Huge), model.clone());
            if let Some(cap) = cap {
                builder = builder.max_result_bytes(cap);
            }
            let out = builder
                .build()
                .unwrap()
                .invoke("What?".into())
                .await
                .unwrap();
            assert_eq!(out.rows.rows.len(), 50);
            let prompt = model.requests()[1].messages[0].text();
            let template = DEFAULT_SQL_ANSWER_PROMPT.len() + 200;
            assert!(
                prompt.len() <= limit + template,
                "{} bytes for a cap of {limit}",
                prompt.len()
            );
            assert!(prompt.contains("(truncated: the result was cut to fit)"));
        }
    }
}
