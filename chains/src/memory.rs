//! Conversation memory: what a chain remembers of a session, on top of any
//! [`ChatHistory`].
//!
//! The details and an example are on [`Memory`].

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use catena_core::splitter::{count_tokens, TokenEncoding};
use catena_core::{ChatHistory, ChatModel, ChatRequest, Error, Message, Result, Role, SessionId};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

/// The tokens counted for each message on top of its content (role and separators, as in
/// OpenAI's accounting).
pub const MESSAGE_OVERHEAD_TOKENS: usize = 4;

/// How many summary records the summary session keeps before it is compacted to the newest.
const MAX_SUMMARY_RECORDS: usize = 16;

/// What a chain remembers of a conversation.
///
/// A [`Memory`] [`save`](Memory::save)s the messages of each exchange to a history and
/// [`load`](Memory::load)s the messages to put in front of the next prompt:
///
/// | memory | loads |
/// | --- | --- |
/// | [`BufferMemory`] | every message |
/// | [`WindowMemory`] | the last `k` turns (a turn starts at a user message) |
/// | [`TokenBufferMemory`] | the newest messages that fit a token budget |
/// | [`SummaryMemory`] | one system message with a running summary of the whole conversation |
/// | [`SummaryBufferMemory`] | the running summary of older messages, then the newest messages that fit a token budget |
///
/// Token counts are tiktoken counts ([`count_tokens`]): a message costs
/// [`MESSAGE_OVERHEAD_TOKENS`] plus the tokens of its text and of each tool call's name and
/// arguments. Trimming never separates an assistant message that asks for tool calls from
/// the tool results that follow it: they are kept or dropped together.
///
/// # Where summaries live
/// The summary memories keep the full conversation in the history under the session's own
/// id and their running summary under a second session, `"<session>:summary"` (see
/// [`summary_session`]), in the same history. Each record there is a system message whose
/// text is a small JSON object `{"summary": "...", "covered": n}`: the summary, and how many
/// messages of the conversation it covers. The newest record wins, so the summary survives
/// process restarts with any [`ChatHistory`] (a persistent one keeps it; the in-memory one
/// loses it with the conversation).
///
/// ```
/// use std::sync::Arc;
/// use catena_chains::{Memory, WindowMemory};
/// use catena_core::{InMemoryChatHistory, Message, SessionId};
///
/// # futures::executor::block_on(async {
/// let memory = WindowMemory::new(Arc::new(InMemoryChatHistory::new()), 1);
/// let session = SessionId::new("user-7");
/// memory.save(&session, &[Message::user("hi"), Message::assistant("hello")]).await.unwrap();
/// memory.save(&session, &[Message::user("how are you?"), Message::assistant("fine")]).await.unwrap();
/// let recent = memory.load(&session).await.unwrap();
/// assert_eq!(recent.len(), 2);
/// assert_eq!(recent[0].text(), "how are you?");
/// # });
/// ```
#[async_trait]
pub trait Memory: Send + Sync {
    /// The messages to put in front of the next prompt, oldest first.
    ///
    /// # Errors
    /// History failures.
    async fn load(&self, session: &SessionId) -> Result<Vec<Message>>;

    /// Records the messages of one exchange (typically the user's message and the answer).
    ///
    /// # Errors
    /// History failures; model failures for the summary memories (the messages are stored
    /// before summarising, so none are lost).
    async fn save(&self, session: &SessionId, messages: &[Message]) -> Result<()>;

    /// Forgets the session (and its summary).
    ///
    /// # Errors
    /// History failures.
    async fn clear(&self, session: &SessionId) -> Result<()>;
}

#[async_trait]
impl<T: Memory + ?Sized> Memory for Arc<T> {
    async fn load(&self, session: &SessionId) -> Result<Vec<Message>> {
        (**self).load(session).await
    }
    async fn save(&self, session: &SessionId, messages: &[Message]) -> Result<()> {
        (**self).save(session, messages).await
    }
    async fn clear(&self, session: &SessionId) -> Result<()> {
        (**self).clear(session).await
    }
}

struct HistoryDebug;

impl fmt::Debug for HistoryDebug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<dyn ChatHistory>")
    }
}

/// The tokens a message costs: [`MESSAGE_OVERHEAD_TOKENS`] plus its text and its tool calls'
/// names and arguments.
pub fn message_tokens(encoding: TokenEncoding, message: &Message) -> usize {
    let calls: usize = message
        .tool_calls
        .iter()
        .map(|c| count_tokens(encoding, &c.name) + count_tokens(encoding, &c.arguments))
        .sum();
    MESSAGE_OVERHEAD_TOKENS + count_tokens(encoding, &message.text()) + calls
}

/// The ranges of messages that must be kept or dropped together: an assistant message with
/// tool calls and the tool results right after it form one unit; every other message is a
/// unit of its own.
fn units(messages: &[Message]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < messages.len() {
        let start = i;
        i += 1;
        if messages[start].role == Role::Assistant && !messages[start].tool_calls.is_empty() {
            while i < messages.len() && messages[i].role == Role::Tool {
                i += 1;
            }
        }
        out.push(start..i);
    }
    out
}

/// The index where the newest messages that fit `max_tokens` start (whole units only).
fn fit_start(encoding: TokenEncoding, messages: &[Message], max_tokens: usize) -> usize {
    let mut total = 0usize;
    let mut start = messages.len();
    for unit in units(messages).into_iter().rev() {
        let cost: usize = messages[unit.clone()]
            .iter()
            .map(|m| message_tokens(encoding, m))
            .sum();
        if total + cost > max_tokens {
            break;
        }
        total += cost;
        start = unit.start;
    }
    start
}

/// Keeps every message.
#[derive(Clone)]
pub struct BufferMemory {
    history: Arc<dyn ChatHistory>,
}

impl fmt::Debug for BufferMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufferMemory")
            .field("history", &HistoryDebug)
            .finish()
    }
}

impl BufferMemory {
    /// A memory that loads the whole conversation.
    pub fn new(history: Arc<dyn ChatHistory>) -> Self {
        BufferMemory { history }
    }
}

#[async_trait]
impl Memory for BufferMemory {
    async fn load(&self, session: &SessionId) -> Result<Vec<Message>> {
        self.history.messages(session).await
    }
    async fn save(&self, session: &SessionId, messages: &[Message]) -> Result<()> {
        self.history.append(session, messages).await
    }
    async fn clear(&self, session: &SessionId) -> Result<()> {
        self.history.clear(session).await
    }
}

/// Keeps the last `k` turns. A turn starts at a user message and runs to the next one, so
/// it holds the answer and any tool calls and results in between; messages before the
/// first user message (say, a system message) are not part of any turn and are not loaded.
#[derive(Clone)]
pub struct WindowMemory {
    history: Arc<dyn ChatHistory>,
    k: usize,
}

impl fmt::Debug for WindowMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WindowMemory")
            .field("history", &HistoryDebug)
            .field("k", &self.k)
            .finish()
    }
}

impl WindowMemory {
    /// A memory that loads the last `k` turns (none for `k = 0`).
    pub fn new(history: Arc<dyn ChatHistory>, k: usize) -> Self {
        WindowMemory { history, k }
    }
}

/// The start of the `k`-th last turn (`messages.len()` for `k = 0` or no turn).
fn last_turns_start(messages: &[Message], k: usize) -> usize {
    if k == 0 {
        return messages.len();
    }
    let starts: Vec<usize> = messages
        .iter()
        .enumerate()
        .filter(|(_, m)| m.role == Role::User)
        .map(|(i, _)| i)
        .collect();
    match starts.len().checked_sub(k) {
        Some(i) => starts[i],
        None => starts.first().copied().unwrap_or(messages.len()),
    }
}

#[async_trait]
impl Memory for WindowMemory {
    async fn load(&self, session: &SessionId) -> Result<Vec<Message>> {
        let mut messages = self.history.messages(session).await?;
        let start = last_turns_start(&messages, self.k);
        Ok(messages.split_off(start))
    }
    async fn save(&self, session: &SessionId, messages: &[Message]) -> Result<()> {
        self.history.append(session, messages).await
    }
    async fn clear(&self, session: &SessionId) -> Result<()> {
        self.history.clear(session).await
    }
}

/// Keeps the newest messages whose tokens fit a budget, dropping the oldest first; an
/// assistant tool-call message and its tool results are dropped together.
#[derive(Clone)]
pub struct TokenBufferMemory {
    history: Arc<dyn ChatHistory>,
    max_tokens: usize,
    encoding: TokenEncoding,
}

impl fmt::Debug for TokenBufferMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenBufferMemory")
            .field("history", &HistoryDebug)
            .field("max_tokens", &self.max_tokens)
            .field("encoding", &self.encoding)
            .finish()
    }
}

impl TokenBufferMemory {
    /// A memory that loads at most `max_tokens` tokens of the newest messages.
    pub fn new(history: Arc<dyn ChatHistory>, max_tokens: usize) -> Self {
        TokenBufferMemory {
            history,
            max_tokens,
            encoding: TokenEncoding::Cl100kBase,
        }
    }

    /// The tokenizer. Default [`TokenEncoding::Cl100kBase`].
    #[must_use]
    pub fn with_encoding(mut self, encoding: TokenEncoding) -> Self {
        self.encoding = encoding;
        self
    }
}

#[async_trait]
impl Memory for TokenBufferMemory {
    async fn load(&self, session: &SessionId) -> Result<Vec<Message>> {
        let mut messages = self.history.messages(session).await?;
        let start = fit_start(self.encoding, &messages, self.max_tokens);
        Ok(messages.split_off(start))
    }
    async fn save(&self, session: &SessionId, messages: &[Message]) -> Result<()> {
        self.history.append(session, messages).await
    }
    async fn clear(&self, session: &SessionId) -> Result<()> {
        self.history.clear(session).await
    }
}

/// The session under which the summary memories keep `session`'s running summary:
/// `"<session>:summary"`.
pub fn summary_session(session: &SessionId) -> SessionId {
    SessionId::new(format!("{session}:summary"))
}

/// The default summarisation prompt (LangChain's progressive summary prompt). `{summary}`
/// and `{new_lines}` are replaced by the current summary and the new lines of conversation.
pub const DEFAULT_MEMORY_SUMMARY_PROMPT: &str =
    "Progressively summarize the lines of conversation \
provided, adding onto the previous summary returning a new summary.

Current summary:
{summary}

New lines of conversation:
{new_lines}

New summary:";

/// The prefix of the system message that carries a loaded summary.
pub const SUMMARY_MESSAGE_PREFIX: &str = "Summary of the conversation so far:\n";

/// One record of the summary session.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct SummaryRecord {
    summary: String,
    covered: usize,
}

/// Formats messages as `Human: …` / `AI: …` lines for the summary prompt.
fn format_lines(messages: &[Message]) -> String {
    let mut out = String::new();
    for m in messages {
        let who = match m.role {
            Role::System => "System",
            Role::User => "Human",
            Role::Assistant => "AI",
            Role::Tool => "Tool",
        };
        let mut text = m.text();
        for call in &m.tool_calls {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(&format!("[calls {}({})]", call.name, call.arguments));
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(who);
        out.push_str(": ");
        out.push_str(&text);
    }
    out
}

/// Fills the prompt in one pass, so placeholders inside the summary or the lines stay as
/// they are.
fn fill_prompt(template: &str, summary: &str, new_lines: &str) -> String {
    let mut out = String::with_capacity(template.len() + summary.len() + new_lines.len());
    let mut rest = template;
    loop {
        let next = [("{summary}", summary), ("{new_lines}", new_lines)]
            .into_iter()
            .filter_map(|(p, v)| rest.find(p).map(|i| (i, p, v)))
            .min_by_key(|(i, _, _)| *i);
        match next {
            Some((i, p, v)) => {
                out.push_str(&rest[..i]);
                out.push_str(v);
                rest = &rest[i + p.len()..];
            }
            None => {
                out.push_str(rest);
                return out;
            }
        }
    }
}

/// The summarising part shared by [`SummaryMemory`] and [`SummaryBufferMemory`].
struct Summarizer {
    history: Arc<dyn ChatHistory>,
    model: Arc<dyn ChatModel>,
    prompt: String,
    /// Serialises saves in this process so two saves do not summarise the same lines.
    lock: Mutex<()>,
}

impl Summarizer {
    fn new(history: Arc<dyn ChatHistory>, model: Arc<dyn ChatModel>) -> Self {
        Summarizer {
            history,
            model,
            prompt: DEFAULT_MEMORY_SUMMARY_PROMPT.to_owned(),
            lock: Mutex::new(()),
        }
    }

    async fn record(&self, session: &SessionId) -> Result<SummaryRecord> {
        let records = self.history.messages(&summary_session(session)).await?;
        for m in records.iter().rev() {
            if m.role != Role::System {
                continue;
            }
            if let Ok(r) = serde_json::from_str::<SummaryRecord>(&m.text()) {
                return Ok(r);
            }
        }
        Ok(SummaryRecord::default())
    }

    async fn store(&self, session: &SessionId, record: &SummaryRecord) -> Result<()> {
        let key = summary_session(session);
        let json =
            serde_json::to_string(record).map_err(|e| Error::serialization("summary record", e))?;
        let message = Message::system(json);
        self.history
            .append(&key, std::slice::from_ref(&message))
            .await?;
        // Compact now and then; losing the summary in between only costs a re-summarisation.
        if self.history.messages(&key).await?.len() > MAX_SUMMARY_RECORDS {
            self.history.clear(&key).await?;
            self.history.append(&key, &[message]).await?;
        }
        Ok(())
    }

    async fn summarize(&self, summary: &str, lines: &[Message]) -> Result<String> {
        let prompt = fill_prompt(&self.prompt, summary, &format_lines(lines));
        let response = self
            .model
            .generate(ChatRequest::new(vec![Message::user(prompt)]))
            .await?;
        Ok(response.text().trim().to_owned())
    }

    fn summary_message(record: &SummaryRecord) -> Option<Message> {
        (!record.summary.is_empty())
            .then(|| Message::system(format!("{SUMMARY_MESSAGE_PREFIX}{}", record.summary)))
    }

    async fn clear(&self, session: &SessionId) -> Result<()> {
        self.history.clear(session).await?;
        self.history.clear(&summary_session(session)).await
    }
}

/// Summarises the whole conversation with a model after every save and loads one system
/// message with the running summary (nothing before the first save).
///
/// The conversation itself is kept in full in the history; see [`Memory`]
/// for where the summary is stored.
pub struct SummaryMemory {
    inner: Summarizer,
}

impl fmt::Debug for SummaryMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SummaryMemory")
            .field("history", &HistoryDebug)
            .field("model", &self.inner.model.model_info().model)
            .finish_non_exhaustive()
    }
}

impl SummaryMemory {
    /// A memory summarising with `model`.
    pub fn new(history: Arc<dyn ChatHistory>, model: Arc<dyn ChatModel>) -> Self {
        SummaryMemory {
            inner: Summarizer::new(history, model),
        }
    }

    /// The summarisation prompt, sent as one user message; `{summary}` and `{new_lines}`
    /// are filled in. Default [`DEFAULT_MEMORY_SUMMARY_PROMPT`].
    #[must_use]
    pub fn with_prompt(mut self, prompt: impl Into<String>) -> Self {
        self.inner.prompt = prompt.into();
        self
    }

    /// The current summary, empty before the first save.
    ///
    /// # Errors
    /// History failures.
    pub async fn summary(&self, session: &SessionId) -> Result<String> {
        Ok(self.inner.record(session).await?.summary)
    }
}

#[async_trait]
impl Memory for SummaryMemory {
    async fn load(&self, session: &SessionId) -> Result<Vec<Message>> {
        let record = self.inner.record(session).await?;
        Ok(Summarizer::summary_message(&record).into_iter().collect())
    }

    async fn save(&self, session: &SessionId, messages: &[Message]) -> Result<()> {
        let _guard = self.inner.lock.lock().await;
        self.inner.history.append(session, messages).await?;
        let all = self.inner.history.messages(session).await?;
        let record = self.inner.record(session).await?;
        let covered = record.covered.min(all.len());
        if covered == all.len() {
            return Ok(());
        }
        let summary = self
            .inner
            .summarize(&record.summary, &all[covered..])
            .await?;
        let record = SummaryRecord {
            summary,
            covered: all.len(),
        };
        self.inner.store(session, &record).await
    }

    async fn clear(&self, session: &SessionId) -> Result<()> {
        self.inner.clear(session).await
    }
}

/// Keeps the newest messages under a token budget verbatim and folds the older ones into a
/// running summary written by a model (LangChain's `ConversationSummaryBufferMemory`).
///
/// [`load`](Memory::load) returns a system message with the summary (once there is one)
/// followed by the messages not yet summarised. A save that pushes those past
/// `max_tokens` summarises the oldest of them (whole tool-call units) until the rest fit.
pub struct SummaryBufferMemory {
    inner: Summarizer,
    max_tokens: usize,
    encoding: TokenEncoding,
}

impl fmt::Debug for SummaryBufferMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SummaryBufferMemory")
            .field("history", &HistoryDebug)
            .field("model", &self.inner.model.model_info().model)
            .field("max_tokens", &self.max_tokens)
            .field("encoding", &self.encoding)
            .finish_non_exhaustive()
    }
}

impl SummaryBufferMemory {
    /// A memory keeping at most `max_tokens` tokens of recent messages, summarising the
    /// rest with `model`.
    pub fn new(
        history: Arc<dyn ChatHistory>,
        model: Arc<dyn ChatModel>,
        max_tokens: usize,
    ) -> Self {
        SummaryBufferMemory {
            inner: Summarizer::new(history, model),
            max_tokens,
            encoding: TokenEncoding::Cl100kBase,
        }
    }

    /// The tokenizer. Default [`TokenEncoding::Cl100kBase`].
    #[must_use]
    pub fn with_encoding(mut self, encoding: TokenEncoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// The summarisation prompt, sent as one user message; `{summary}` and `{new_lines}`
    /// are filled in. Default [`DEFAULT_MEMORY_SUMMARY_PROMPT`].
    #[must_use]
    pub fn with_prompt(mut self, prompt: impl Into<String>) -> Self {
        self.inner.prompt = prompt.into();
        self
    }

    /// The current summary, empty until messages overflowed the budget.
    ///
    /// # Errors
    /// History failures.
    pub async fn summary(&self, session: &SessionId) -> Result<String> {
        Ok(self.inner.record(session).await?.summary)
    }
}

#[async_trait]
impl Memory for SummaryBufferMemory {
    async fn load(&self, session: &SessionId) -> Result<Vec<Message>> {
        let record = self.inner.record(session).await?;
        let all = self.inner.history.messages(session).await?;
        let covered = record.covered.min(all.len());
        let mut out: Vec<Message> = Summarizer::summary_message(&record).into_iter().collect();
        out.extend_from_slice(&all[covered..]);
        Ok(out)
    }

    async fn save(&self, session: &SessionId, messages: &[Message]) -> Result<()> {
        let _guard = self.inner.lock.lock().await;
        self.inner.history.append(session, messages).await?;
        let all = self.inner.history.messages(session).await?;
        let record = self.inner.record(session).await?;
        let covered = record.covered.min(all.len());
        let recent = &all[covered..];
        let keep_from = fit_start(self.encoding, recent, self.max_tokens);
        if keep_from == 0 {
            return Ok(());
        }
        let summary = self
            .inner
            .summarize(&record.summary, &recent[..keep_from])
            .await?;
        let record = SummaryRecord {
            summary,
            covered: covered + keep_from,
        };
        self.inner.store(session, &record).await
    }

    async fn clear(&self, session: &SessionId) -> Result<()> {
        self.inner.clear(session).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use catena_core::ToolCall;

    #[test]
    fn units_keep_tool_calls_with_results() {
        let m = vec![
            Message::user("q"),
            Message::assistant_with_tool_calls("", vec![ToolCall::new("1", "f", "{}")]),
            Message::tool_result("1", "r"),
            Message::assistant("a"),
        ];
        assert_eq!(units(&m), vec![0..1, 1..3, 3..4]);
    }

    #[test]
    fn prompt_placeholders_fill_once() {
        assert_eq!(
            fill_prompt("a {summary} b {new_lines}", "{new_lines}", "x"),
            "a {new_lines} b x"
        );
    }

    #[test]
    fn turns_start_at_user_messages() {
        let m = vec![
            Message::system("s"),
            Message::user("1"),
            Message::assistant("a"),
            Message::user("2"),
        ];
        assert_eq!(last_turns_start(&m, 1), 3);
        assert_eq!(last_turns_start(&m, 5), 1);
        assert_eq!(last_turns_start(&m, 0), 4);
    }
}
