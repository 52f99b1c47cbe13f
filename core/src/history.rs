//! Chat history: the messages of a conversation, kept per session.
//!
//! ```
//! use catena_core::{ChatHistory, InMemoryChatHistory, Message, SessionId};
//!
//! # futures::executor::block_on(async {
//! let history = InMemoryChatHistory::new();
//! let session = SessionId::new("user-42");
//! history.append(&session, &[Message::user("hi"), Message::assistant("hello")]).await.unwrap();
//! assert_eq!(history.messages(&session).await.unwrap().len(), 2);
//! history.clear(&session).await.unwrap();
//! assert!(history.messages(&session).await.unwrap().is_empty());
//! # });
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::message::Message;

/// Identifies one conversation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(String);

impl SessionId {
    /// A session id from any string.
    pub fn new(id: impl Into<String>) -> Self {
        SessionId(id.into())
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for SessionId {
    fn from(s: &str) -> Self {
        SessionId(s.to_owned())
    }
}

impl From<String> for SessionId {
    fn from(s: String) -> Self {
        SessionId(s)
    }
}

/// Where conversations are kept.
#[async_trait]
pub trait ChatHistory: Send + Sync {
    /// The session's messages, oldest first; empty for an unknown session.
    ///
    /// # Errors
    /// Backend failures.
    async fn messages(&self, session: &SessionId) -> Result<Vec<Message>>;

    /// Appends messages to the session, atomically.
    ///
    /// # Errors
    /// Backend failures; nothing is appended then.
    async fn append(&self, session: &SessionId, messages: &[Message]) -> Result<()>;

    /// Forgets the session.
    ///
    /// # Errors
    /// Backend failures.
    async fn clear(&self, session: &SessionId) -> Result<()>;
}

#[async_trait]
impl<T: ChatHistory + ?Sized> ChatHistory for Arc<T> {
    async fn messages(&self, session: &SessionId) -> Result<Vec<Message>> {
        (**self).messages(session).await
    }
    async fn append(&self, session: &SessionId, messages: &[Message]) -> Result<()> {
        (**self).append(session, messages).await
    }
    async fn clear(&self, session: &SessionId) -> Result<()> {
        (**self).clear(session).await
    }
}

#[async_trait]
impl<T: ChatHistory + ?Sized> ChatHistory for Box<T> {
    async fn messages(&self, session: &SessionId) -> Result<Vec<Message>> {
        (**self).messages(session).await
    }
    async fn append(&self, session: &SessionId, messages: &[Message]) -> Result<()> {
        (**self).append(session, messages).await
    }
    async fn clear(&self, session: &SessionId) -> Result<()> {
        (**self).clear(session).await
    }
}

/// Chat history in process memory; lost when the process exits.
#[derive(Debug, Default)]
pub struct InMemoryChatHistory {
    sessions: Mutex<HashMap<SessionId, Vec<Message>>>,
}

impl InMemoryChatHistory {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl ChatHistory for InMemoryChatHistory {
    async fn messages(&self, session: &SessionId) -> Result<Vec<Message>> {
        let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(sessions.get(session).cloned().unwrap_or_default())
    }

    async fn append(&self, session: &SessionId, messages: &[Message]) -> Result<()> {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        sessions
            .entry(session.clone())
            .or_default()
            .extend_from_slice(messages);
        Ok(())
    }

    async fn clear(&self, session: &SessionId) -> Result<()> {
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        sessions.remove(session);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_isolated() {
        futures::executor::block_on(async {
            let h = InMemoryChatHistory::new();
            let (a, b) = (SessionId::new("a"), SessionId::new("b"));
            h.append(&a, &[Message::user("1")]).await.unwrap();
            h.append(&b, &[Message::user("2")]).await.unwrap();
            h.append(&a, &[Message::assistant("3")]).await.unwrap();
            let got: Vec<String> = h
                .messages(&a)
                .await
                .unwrap()
                .iter()
                .map(Message::text)
                .collect();
            assert_eq!(got, ["1", "3"]);
            h.clear(&a).await.unwrap();
            assert!(h.messages(&a).await.unwrap().is_empty());
            assert_eq!(h.messages(&b).await.unwrap().len(), 1);
        });
    }
}
