//! The chat-history conformance suite.

use crate::history::{ChatHistory, SessionId};
use crate::message::{ContentPart, Message, ToolCall};

/// The sessions the suite uses; the history must not hold them when it starts.
const SESSIONS: [&str; 2] = ["conformance-a", "conformance-b"];

/// Messages that exercise every part of [`Message`]: a system prompt, a named user message
/// with quotes, backslashes, non-ASCII text, an emoji and images (by URL and base64), tool
/// calls (one with arguments that are not valid JSON), tool results (one empty) and a
/// multi-line answer. No U+0000: PostgreSQL's `jsonb` cannot hold it.
fn tricky_messages() -> Vec<Message> {
    vec![
        Message::system("You are terse."),
        Message::user_parts(vec![
            ContentPart::text("what's this? \"quotes\" \\ 'single' ünïcødé 🚀"),
            ContentPart::image_url("https://example.com/cat.png"),
            ContentPart::image_base64("image/png", "iVBORw0KGgo="),
        ])
        .with_name("alice"),
        Message::assistant_with_tool_calls(
            "",
            vec![
                ToolCall::new("call_1", "lookup", r#"{"q":"cat","n":2}"#),
                ToolCall::new("call_2", "broken", "{not json"),
            ],
        ),
        Message::tool_result("call_1", "a cat"),
        Message::tool_result("call_2", ""),
        Message::assistant("It is a cat.\nLine two."),
    ]
}

async fn messages(history: &dyn ChatHistory, session: &SessionId) -> Vec<Message> {
    history
        .messages(session)
        .await
        .expect("conformance: messages() failed")
}

async fn append(history: &dyn ChatHistory, session: &SessionId, messages: &[Message]) {
    history
        .append(session, messages)
        .await
        .expect("conformance: append() failed");
}

/// Checks the rules every [`ChatHistory`] shares with
/// [`InMemoryChatHistory`](crate::InMemoryChatHistory):
/// - an unknown session has no messages, and appending nothing changes nothing;
/// - messages come back exactly as appended (every content part, tool call, tool-call id
///   and name), oldest first, across several appends;
/// - sessions are isolated: appending to or clearing one leaves the other alone;
/// - `clear` forgets a session, and clearing an already cleared session is not an error;
/// - two writers appending to one session at the same time (interleaved at every await)
///   lose nothing, and each writer's messages keep their order.
///
/// It uses the sessions `conformance-a` and `conformance-b`, which must be empty when it
/// starts, and leaves them cleared. Persistent backends should run it on a fresh table,
/// key prefix or database.
///
/// # Panics
/// When the history breaks a rule; the message names it.
pub async fn chat_history_conformance(history: &dyn ChatHistory) {
    let a = SessionId::new(SESSIONS[0]);
    let b = SessionId::new(SESSIONS[1]);
    assert!(
        messages(history, &a).await.is_empty(),
        "conformance: an unknown session has no messages"
    );
    history
        .append(&a, &[])
        .await
        .expect("conformance: appending nothing must not fail");
    assert!(
        messages(history, &a).await.is_empty(),
        "conformance: appending nothing adds nothing"
    );
    let tricky = tricky_messages();
    append(history, &a, &tricky[..2]).await;
    append(history, &b, &[Message::user("other")]).await;
    append(history, &a, &tricky[2..]).await;
    assert_eq!(
        messages(history, &a).await,
        tricky,
        "conformance: exact round trip, in order"
    );
    assert_eq!(
        messages(history, &b).await,
        [Message::user("other")],
        "conformance: each session keeps its own messages"
    );
    history
        .clear(&a)
        .await
        .expect("conformance: clear() failed");
    assert!(
        messages(history, &a).await.is_empty(),
        "conformance: a cleared session has no messages"
    );
    assert_eq!(
        messages(history, &b).await.len(),
        1,
        "conformance: sessions are isolated"
    );
    history
        .clear(&b)
        .await
        .expect("conformance: clear() failed");
    history
        .clear(&b)
        .await
        .expect("conformance: clearing a cleared session must not fail");
    concurrent_appends_keep_every_message(history, &b).await;
}

/// Two writers, 100 appends each, interleaved on one session.
async fn concurrent_appends_keep_every_message(history: &dyn ChatHistory, session: &SessionId) {
    let writer = |who: &'static str| async move {
        for i in 0..100 {
            append(history, session, &[Message::user(format!("{who}-{i}"))]).await;
        }
    };
    futures::future::join(writer("a"), writer("b")).await;
    let all: Vec<String> = messages(history, session)
        .await
        .iter()
        .map(Message::text)
        .collect();
    assert_eq!(
        all.len(),
        200,
        "conformance: concurrent appends lose nothing"
    );
    for who in ["a", "b"] {
        let mine: Vec<&String> = all.iter().filter(|t| t.starts_with(who)).collect();
        let want: Vec<String> = (0..100).map(|i| format!("{who}-{i}")).collect();
        assert_eq!(
            mine,
            want.iter().collect::<Vec<_>>(),
            "conformance: writer {who}'s messages keep their order"
        );
    }
    history
        .clear(session)
        .await
        .expect("conformance: clear() failed");
}
