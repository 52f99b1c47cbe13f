//! The PostgreSQL chat history and record manager against a real server: the shared
//! conformance suites, then what is PostgreSQL's own (persistence across handles,
//! table names, `index()` scenarios).
//!
//! Needs `DATABASE_URL`: `eval "$(bash scripts/pg.sh start)"` (stop with
//! `bash scripts/pg.sh stop`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// `index()` scenarios, shared with the in-memory record manager's tests in catena-chains.
#[path = "../../chains/tests/support/indexing.rs"]
mod indexing_scenarios;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use catena_chains::{Memory, SummaryBufferMemory};
use catena_core::test_utils::{
    chat_history_conformance, record_manager_conformance, ScriptedChatModel,
};
use catena_core::{ChatHistory, Error, Message, SessionId};
use catena_vectorstores::{PostgresChatHistory, PostgresRecordManager};

fn database_url() -> String {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "DATABASE_URL is not set: start PostgreSQL with `eval \"$(bash scripts/pg.sh start)\"` \
             (stop it with `bash scripts/pg.sh stop`)"
        ),
    }
}

fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}_{}_{nanos}", std::process::id())
}

async fn drop_table(table: &str) {
    let (client, conn) = tokio_postgres::connect(&database_url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    let task = tokio::spawn(conn);
    client
        .batch_execute(&format!("DROP TABLE IF EXISTS \"{table}\""))
        .await
        .unwrap();
    drop(client);
    let _ = task.await;
}

#[tokio::test]
async fn postgres_history_behaves_like_in_memory() {
    let table = unique("catena_test_hist");
    let history = PostgresChatHistory::builder()
        .url(database_url())
        .table(&table)
        .build()
        .unwrap();
    chat_history_conformance(&history).await;
    // A second handle on the same table (a restart) sees the same data.
    let s = SessionId::new("persist");
    history.append(&s, &[Message::user("kept")]).await.unwrap();
    let again = PostgresChatHistory::builder()
        .url(database_url())
        .table(&table)
        .build()
        .unwrap();
    assert_eq!(again.messages(&s).await.unwrap(), [Message::user("kept")]);
    drop_table(&table).await;
}

#[tokio::test]
async fn postgres_history_rejects_bad_table_names() {
    for bad in ["Chat", "1chat", "chat; DROP TABLE x", ""] {
        let err = PostgresChatHistory::builder()
            .url(database_url())
            .table(bad)
            .build()
            .unwrap_err();
        assert!(matches!(err, Error::InvalidConfig(_)), "{bad}: {err:?}");
    }
    let err = PostgresRecordManager::builder()
        .url(database_url())
        .table("x-y")
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::InvalidConfig(_)));
    let debug = format!(
        "{:?}",
        PostgresChatHistory::builder().url("postgres://u:hunter2@h/db")
    );
    assert!(!debug.contains("hunter2"), "{debug}");
}

#[tokio::test]
async fn summary_buffer_survives_a_restart_on_postgres() {
    let table = unique("catena_test_sbm");
    let open = || {
        Arc::new(
            PostgresChatHistory::builder()
                .url(database_url())
                .table(&table)
                .build()
                .unwrap(),
        )
    };
    let s = SessionId::new("s");
    let model = Arc::new(ScriptedChatModel::new().with_text("They said hi."));
    let memory = SummaryBufferMemory::new(open(), model, 1);
    memory.save(&s, &[Message::user("hi")]).await.unwrap();
    let loaded = memory.load(&s).await.unwrap();
    let restarted = SummaryBufferMemory::new(open(), Arc::new(ScriptedChatModel::new()), 1);
    assert_eq!(restarted.load(&s).await.unwrap(), loaded);
    assert!(loaded[0].text().ends_with("They said hi."));
    drop_table(&table).await;
}

#[tokio::test]
async fn postgres_record_manager_contract_and_index_scenarios() {
    let table = unique("catena_test_rec");
    let records = PostgresRecordManager::builder()
        .url(database_url())
        .table(&table)
        .build()
        .unwrap();
    record_manager_conformance(&records).await;
    indexing_scenarios::scenarios(&records).await;
    drop_table(&table).await;
}

#[tokio::test]
async fn the_postgres_checkpointer_conforms_and_replicas_share_runs() {
    use catena_core::Checkpointer;
    let table = unique("catena_test_ckpt");
    let saver = catena_vectorstores::PostgresCheckpointer::builder()
        .url(database_url())
        .table(table.clone())
        .build()
        .unwrap();
    catena_core::test_utils::checkpointer_conformance(&saver).await;
    // Two "replicas" (two pools) racing for the same next step: exactly one wins.
    let other = catena_vectorstores::PostgresCheckpointer::builder()
        .url(database_url())
        .table(table)
        .build()
        .unwrap();
    saver.put("race", 0, &serde_json::json!({})).await.unwrap();
    let (by_a, by_b) = (
        serde_json::json!({"by": "a"}),
        serde_json::json!({"by": "b"}),
    );
    let (a, b) = tokio::join!(saver.put("race", 1, &by_a), other.put("race", 1, &by_b));
    assert_eq!(
        usize::from(a.is_ok()) + usize::from(b.is_ok()),
        1,
        "{a:?} {b:?}"
    );
    let loser = a.err().or(b.err()).unwrap();
    assert!(loser.as_checkpoint_conflict().is_some(), "{loser}");
    // What one wrote, the other reads.
    let latest = other.latest("race").await.unwrap().unwrap();
    assert_eq!(latest.step, 1);
    // U+0000 is refused with a typed error, nothing written.
    let err = saver
        .put("race", 2, &serde_json::json!({"bad": "a\u{0}b"}))
        .await
        .unwrap_err();
    assert!(matches!(err, catena_core::Error::InvalidInput(_)), "{err}");
    assert_eq!(saver.latest("race").await.unwrap().unwrap().step, 1);
}
