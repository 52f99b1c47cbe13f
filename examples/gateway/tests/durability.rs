//! The embedded default storage survives `kill -9`: the real gateway binary (local models,
//! the in-memory store in `<data_dir>/vectors.json`, the records in
//! `<data_dir>/records.json`) is killed in the middle of concurrent ingests and restarted on
//! the same data directory. Every ingest answered 200 must be there (chunks in the store,
//! records so re-ingesting skips them), and no source may be half-indexed.
//!
//! Needs the local models (`eval "$(bash scripts/models.sh fetch)"`).
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use catena_core::{Filter, VectorStore};
use catena_vectorstores::InMemoryVectorStore;
use example_gateway::auth::hash_key;
use tokio::process::Child;

mod support;

const KEY: &str = "durability-test-key";
const DOCUMENTS: usize = 40;
/// Kill the gateway once this many ingests were acknowledged.
const KILL_AFTER: usize = 8;

/// Starts the gateway on `data_dir`; returns it and its base URL.
async fn start(data_dir: &Path) -> (Child, String) {
    let mut cmd = support::gateway_command();
    cmd.env("CATENA_DATA_DIR", data_dir)
        .env("CATENA_API_KEY_SHA256", hash_key(KEY))
        .env("CATENA_GATEWAY_ADDR", "127.0.0.1:0")
        .env("CATENA_RATE_PER_MINUTE", "100000");
    support::spawn_gateway(cmd, "gateway").await
}

/// Four paragraphs of about 100 tokens: the same number of chunks for every document.
fn content(i: usize) -> String {
    (0..4)
        .map(|p| {
            format!("Paragraph {p} of document {i}. ")
                + &"Catena keeps every acknowledged write safe on the disk. ".repeat(9)
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

fn source(i: usize) -> String {
    format!("docs/durable-{i}.md")
}

async fn ingest(
    http: &reqwest::Client,
    base: &str,
    i: usize,
) -> reqwest::Result<serde_json::Value> {
    http.post(format!("{base}/v1/documents"))
        .bearer_auth(KEY)
        .json(&serde_json::json!({
            "documents": [{ "source": source(i), "content": content(i) }]
        }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_ingests_survive_kill_9() {
    example_gateway::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let http = reqwest::Client::new();

    // Ingest concurrently and SIGKILL the gateway once some ingests are acknowledged.
    let (mut child, base) = start(&data_dir).await;
    let acked: Arc<tokio::sync::Mutex<BTreeMap<usize, u64>>> = Arc::default();
    let (killed_tx, killed_rx) = tokio::sync::watch::channel(false);
    let gate = Arc::new(tokio::sync::Semaphore::new(6));
    let tasks: Vec<_> = (0..DOCUMENTS)
        .map(|i| {
            let (http, base, acked, gate) =
                (http.clone(), base.clone(), acked.clone(), gate.clone());
            let killed = killed_rx.clone();
            tokio::spawn(async move {
                let _permit = gate.acquire().await.unwrap();
                if *killed.borrow() {
                    return;
                }
                if let Ok(report) = ingest(&http, &base, i).await {
                    assert_eq!(report["added"], report["chunks"], "{report}");
                    acked
                        .lock()
                        .await
                        .insert(i, report["chunks"].as_u64().unwrap());
                }
            })
        })
        .collect();
    tokio::time::timeout(Duration::from_secs(300), async {
        while acked.lock().await.len() < KILL_AFTER {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("some ingests succeed");
    child.start_kill().unwrap(); // SIGKILL
    child.wait().await.unwrap();
    killed_tx.send(true).unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().await.clone();
    assert!(acked.len() < DOCUMENTS, "the kill came after every ingest");
    let chunks = *acked.values().next().unwrap();
    assert!(chunks >= 2, "documents of several chunks: {chunks}");
    assert!(acked.values().all(|&c| c == chunks), "{acked:?}");
    eprintln!(
        "{} of {DOCUMENTS} ingests acknowledged before the kill, {chunks} chunks each",
        acked.len()
    );

    // It restarts on the same data, and its records know every acknowledged chunk.
    let (mut child, base) = start(&data_dir).await;
    for &i in acked.keys() {
        let report = ingest(&http, &base, i).await.unwrap();
        assert_eq!(report["skipped"], chunks, "document {i}: {report}");
        assert_eq!(report["added"], 0, "document {i}: {report}");
    }
    child.start_kill().unwrap();
    child.wait().await.unwrap();

    // The store holds every acknowledged chunk, and every source whole or not at all.
    let store = InMemoryVectorStore::builder()
        .persist_to(data_dir.join("vectors.json"))
        .build()
        .unwrap();
    for i in 0..DOCUMENTS {
        let n = store
            .count(Some(&Filter::eq("source", source(i))))
            .await
            .unwrap() as u64;
        if acked.contains_key(&i) {
            assert_eq!(n, chunks, "acknowledged document {i}");
        } else {
            assert!(
                n == 0 || n == chunks,
                "document {i} is half-indexed: {n} of {chunks}"
            );
        }
    }

    // Private files in a private directory.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data_dir), 0o700);
    assert_eq!(mode(&data_dir.join("vectors.json")), 0o600);
    assert_eq!(mode(&data_dir.join("records.json")), 0o600);
}
