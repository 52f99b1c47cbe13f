//! Memory types over the in-memory chat history, with a scripted model for the summaries.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use catena_chains::{
    message_tokens, summary_session, BufferMemory, Memory, SummaryBufferMemory, SummaryMemory,
    TokenBufferMemory, WindowMemory, DEFAULT_MEMORY_SUMMARY_PROMPT, SUMMARY_MESSAGE_PREFIX,
};
use catena_core::test_utils::ScriptedChatModel;
use catena_core::{
    ChatHistory, InMemoryChatHistory, Message, Role, SessionId, TokenEncoding, ToolCall,
};

fn texts(messages: &[Message]) -> Vec<String> {
    messages.iter().map(Message::text).collect()
}

fn prompt(summary: &str, lines: &str) -> String {
    DEFAULT_MEMORY_SUMMARY_PROMPT
        .replace("{summary}", summary)
        .replace("{new_lines}", lines)
}

fn tool_turn() -> Vec<Message> {
    vec![
        Message::user("weather?"),
        Message::assistant_with_tool_calls(
            "",
            vec![ToolCall::new("call_1", "weather", r#"{"city":"Paris"}"#)],
        ),
        Message::tool_result("call_1", "sunny and warm"),
        Message::assistant("It is sunny."),
    ]
}

#[tokio::test]
async fn buffer_keeps_everything_and_clears() {
    let history = Arc::new(InMemoryChatHistory::new());
    let memory = BufferMemory::new(history.clone());
    let s = SessionId::new("s");
    memory
        .save(&s, &[Message::user("a"), Message::assistant("b")])
        .await
        .unwrap();
    memory.save(&s, &tool_turn()).await.unwrap();
    assert_eq!(memory.load(&s).await.unwrap().len(), 6);
    assert_eq!(history.messages(&s).await.unwrap().len(), 6);
    memory.clear(&s).await.unwrap();
    assert!(memory.load(&s).await.unwrap().is_empty());
}

#[tokio::test]
async fn window_loads_the_last_k_turns() {
    let memory = WindowMemory::new(Arc::new(InMemoryChatHistory::new()), 2);
    let s = SessionId::new("s");
    memory
        .save(
            &s,
            &[
                Message::system("be nice"),
                Message::user("1"),
                Message::assistant("one"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(texts(&memory.load(&s).await.unwrap()), ["1", "one"]);
    memory.save(&s, &tool_turn()).await.unwrap();
    memory
        .save(&s, &[Message::user("3"), Message::assistant("three")])
        .await
        .unwrap();
    let loaded = memory.load(&s).await.unwrap();
    assert_eq!(loaded.len(), 6, "the tool turn is whole: {loaded:?}");
    assert_eq!(loaded[0].text(), "weather?");
    assert_eq!(loaded[1].tool_calls[0].id, "call_1");
    assert_eq!(loaded[5].text(), "three");
    let none = WindowMemory::new(Arc::new(InMemoryChatHistory::new()), 0);
    none.save(&s, &[Message::user("x")]).await.unwrap();
    assert!(none.load(&s).await.unwrap().is_empty());
}

#[tokio::test]
async fn token_buffer_trims_oldest_and_keeps_tool_calls_with_results() {
    let enc = TokenEncoding::Cl100kBase;
    let history = Arc::new(InMemoryChatHistory::new());
    let s = SessionId::new("s");
    let mut all = vec![
        Message::user("first question"),
        Message::assistant("first answer"),
    ];
    all.extend(tool_turn());
    history.append(&s, &all).await.unwrap();
    let cost = |m: &Message| message_tokens(enc, m);
    let tail = cost(&all[4]) + cost(&all[5]);
    let with_call = tail + cost(&all[3]);

    // Room for the tool result and the answer but not the call: the result goes too.
    let memory = TokenBufferMemory::new(history.clone(), with_call - 1);
    let loaded = memory.load(&s).await.unwrap();
    assert_eq!(texts(&loaded), ["It is sunny."]);
    assert!(loaded.iter().all(|m| m.role != Role::Tool));

    let memory = TokenBufferMemory::new(history.clone(), with_call);
    let loaded = memory.load(&s).await.unwrap();
    assert_eq!(loaded.len(), 3);
    assert_eq!(loaded[0].tool_calls.len(), 1);
    assert_eq!(loaded[1].tool_call_id.as_deref(), Some("call_1"));

    let everything: usize = all.iter().map(cost).sum();
    let memory = TokenBufferMemory::new(history.clone(), everything).with_encoding(enc);
    assert_eq!(memory.load(&s).await.unwrap(), all);
    let memory = TokenBufferMemory::new(history, everything - 1);
    assert_eq!(memory.load(&s).await.unwrap().len(), all.len() - 1);
}

#[tokio::test]
async fn summary_memory_summarises_new_lines_onto_the_running_summary() {
    let history = Arc::new(InMemoryChatHistory::new());
    let model = Arc::new(
        ScriptedChatModel::new()
            .with_text("The human greeted the AI.")
            .with_text("The human greeted the AI and asked about the weather; it is sunny."),
    );
    let memory = SummaryMemory::new(history.clone(), model.clone());
    let s = SessionId::new("s");
    assert!(memory.load(&s).await.unwrap().is_empty());

    memory
        .save(&s, &[Message::user("hi"), Message::assistant("hello")])
        .await
        .unwrap();
    let loaded = memory.load(&s).await.unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].role, Role::System);
    assert_eq!(
        loaded[0].text(),
        format!("{SUMMARY_MESSAGE_PREFIX}The human greeted the AI.")
    );

    memory.save(&s, &tool_turn()).await.unwrap();
    let requests = model.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].messages.len(), 1);
    assert_eq!(requests[0].messages[0].role, Role::User);
    assert_eq!(
        requests[0].messages[0].text(),
        prompt("", "Human: hi\nAI: hello")
    );
    assert_eq!(
        requests[1].messages[0].text(),
        prompt(
            "The human greeted the AI.",
            "Human: weather?\nAI: [calls weather({\"city\":\"Paris\"})]\nTool: sunny and warm\nAI: It is sunny."
        )
    );
    assert_eq!(
        memory.summary(&s).await.unwrap(),
        "The human greeted the AI and asked about the weather; it is sunny."
    );
    // The full conversation is still in the history.
    assert_eq!(history.messages(&s).await.unwrap().len(), 6);

    memory.clear(&s).await.unwrap();
    assert!(memory.load(&s).await.unwrap().is_empty());
    assert!(history
        .messages(&summary_session(&s))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn summary_buffer_folds_overflow_into_a_persisted_summary() {
    let enc = TokenEncoding::Cl100kBase;
    let history = Arc::new(InMemoryChatHistory::new());
    let model = Arc::new(ScriptedChatModel::new().with_text("S1").with_text("S2"));
    let turn = |q: &str, a: &str| [Message::user(q), Message::assistant(a)];
    let budget: usize = turn("how", "fine")
        .iter()
        .map(|m| message_tokens(enc, m))
        .sum();
    assert!(
        turn("hi", "hello")
            .iter()
            .map(|m| message_tokens(enc, m))
            .sum::<usize>()
            <= budget
    );
    let memory = SummaryBufferMemory::new(history.clone(), model.clone(), budget);
    let s = SessionId::new("s");

    memory.save(&s, &turn("hi", "hello")).await.unwrap();
    assert!(model.requests().is_empty(), "under the budget: no summary");
    assert_eq!(texts(&memory.load(&s).await.unwrap()), ["hi", "hello"]);

    memory.save(&s, &turn("how", "fine")).await.unwrap();
    let requests = model.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].messages[0].text(),
        prompt("", "Human: hi\nAI: hello")
    );
    let loaded = memory.load(&s).await.unwrap();
    assert_eq!(
        texts(&loaded),
        [
            format!("{SUMMARY_MESSAGE_PREFIX}S1"),
            "how".into(),
            "fine".into()
        ]
    );
    assert_eq!(loaded[0].role, Role::System);

    // A new memory over the same history (a restart) sees the stored summary.
    let restarted = SummaryBufferMemory::new(history.clone(), model.clone(), budget);
    assert_eq!(restarted.load(&s).await.unwrap(), loaded);
    assert_eq!(restarted.summary(&s).await.unwrap(), "S1");

    restarted.save(&s, &turn("bye", "ok")).await.unwrap();
    let requests = model.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[1].messages[0].text(),
        prompt("S1", "Human: how\nAI: fine")
    );
    assert_eq!(
        texts(&restarted.load(&s).await.unwrap()),
        [
            format!("{SUMMARY_MESSAGE_PREFIX}S2"),
            "bye".into(),
            "ok".into()
        ]
    );
    assert_eq!(history.messages(&s).await.unwrap().len(), 6);
}

#[tokio::test]
async fn summary_buffer_custom_prompt_and_model_failure_keeps_messages() {
    let history = Arc::new(InMemoryChatHistory::new());
    let model = Arc::new(ScriptedChatModel::new());
    let memory =
        SummaryBufferMemory::new(history.clone(), model.clone(), 1).with_prompt("Sum: {new_lines}");
    let s = SessionId::new("s");
    let err = memory.save(&s, &[Message::user("hi")]).await;
    assert!(err.is_err(), "the scripted model has no answer");
    assert_eq!(
        history.messages(&s).await.unwrap().len(),
        1,
        "stored before summarising"
    );
    assert_eq!(model.requests()[0].messages[0].text(), "Sum: Human: hi");
}
