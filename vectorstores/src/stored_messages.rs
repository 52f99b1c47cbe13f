//! How the chat histories store a [`Message`]: its JSON, one text per message, so every
//! engine keeps the same format (and reads what another wrote).

use catena_core::{Error, Message, Result};

/// The JSON of each message, in order.
pub(crate) fn encode(messages: &[Message]) -> Result<Vec<String>> {
    messages
        .iter()
        .map(serde_json::to_string)
        .collect::<std::result::Result<Vec<String>, _>>()
        .map_err(|e| Error::serialization("a chat message", e))
}

/// A message from its stored JSON.
pub(crate) fn decode(text: &str) -> Result<Message> {
    serde_json::from_str(text).map_err(|e| Error::serialization("a stored chat message", e))
}
