//! Two gateway replicas — two real processes of the gateway binary — sharing one Redis (the
//! rate limits and token budgets, `CATENA_REDIS_URL`) and one PostgreSQL (the pgvector store
//! and the ingest records, `DATABASE_URL`):
//! - a per-key limit of N requests admits N in total across both replicas;
//! - a budget spent on one replica is spent on the other;
//! - killing one replica in the middle of concurrent ingests loses no acknowledged document,
//!   and whatever it left half done is completed (not duplicated) by ingesting it again on
//!   the other.
//!
//! Needs `REDIS_URL` and `DATABASE_URL` (the test command starts both) and the local models.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use catena_core::{Filter, VectorStore};
use catena_vectorstores::pgvector::PgVectorStore;
use example_gateway::auth::hash_key;
use tokio::process::Child;

mod support;

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run under scripts/test.sh (or start scripts/pg.sh and scripts/redis.sh)"))
}

/// A key nobody used before: each run gets fresh buckets, budgets and tenant.
fn fresh_key(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("replica-{what}-{nanos}-{}", std::process::id())
}

/// Starts one replica with `config` (a TOML file) and `keys`; returns it and its base URL.
async fn replica(dir: &Path, name: &str, config: &Path, keys: &[&str]) -> (Child, String) {
    let hashes: Vec<String> = keys.iter().map(|k| hash_key(k)).collect();
    let mut cmd = support::gateway_command();
    cmd.env("CATENA_GATEWAY_CONFIG", config)
        .env("CATENA_DATA_DIR", dir.join(name))
        .env("CATENA_API_KEY_SHA256", hashes.join(","))
        .env("CATENA_GATEWAY_ADDR", "127.0.0.1:0")
        .env("CATENA_REDIS_URL", env("REDIS_URL"))
        .env("DATABASE_URL", env("DATABASE_URL"));
    support::spawn_gateway(cmd, name).await
}

fn write_config(dir: &Path, limits: &str) -> std::path::PathBuf {
    let path = dir.join("gateway.toml");
    std::fs::write(&path, format!("[limits]\n{limits}\n")).unwrap();
    path
}

async fn post(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    key: &str,
    body: serde_json::Value,
) -> reqwest::Response {
    http.post(format!("{base}{path}"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_rate_limit_and_one_budget() {
    example_gateway::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let (rate_key, budget_key) = (fresh_key("rate"), fresh_key("budget"));
    // 10 a minute, all of them at once; 300 model/embedding tokens a day.
    let config = write_config(
        dir.path(),
        "requests_per_minute = 10\nburst = 10\ntoken_budget = 300",
    );
    let keys = [rate_key.as_str(), budget_key.as_str()];
    let (_a, a) = replica(dir.path(), "a", &config, &keys).await;
    let (_b, b) = replica(dir.path(), "b", &config, &keys).await;
    let http = reqwest::Client::new();

    // 30 requests, alternating replicas: 10 pass the limit (an empty question is refused
    // after it, with 422), the other 20 get 429 — whichever replica they reach.
    let mut statuses = Vec::new();
    for i in 0..30 {
        let base = if i % 2 == 0 { &a } else { &b };
        let res = post(
            &http,
            base,
            "/v1/query",
            &rate_key,
            serde_json::json!({ "question": "" }),
        )
        .await;
        statuses.push(res.status().as_u16());
    }
    let admitted = statuses.iter().filter(|s| **s != 429).count();
    assert_eq!(admitted, 10, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 422 || *s == 429),
        "{statuses:?}"
    );

    // Embedding ~250 tokens on replica A spends the budget for replica B too.
    let text = |n: usize| format!("Replica {n} shares its budget. ").repeat(32);
    let res = post(
        &http,
        &a,
        "/v1/documents",
        &budget_key,
        serde_json::json!({ "documents": [{ "source": "budget-a.md", "content": text(1) }] }),
    )
    .await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    // A's reservation (or, once settled, its usage) is in Redis before A answers.
    let res = post(
        &http,
        &b,
        "/v1/documents",
        &budget_key,
        serde_json::json!({ "documents": [{ "source": "budget-b.md", "content": text(2) }] }),
    )
    .await;
    assert_eq!(res.status(), 429, "B must not embed past the shared budget");
    // Both replicas report the shared limits in their readiness.
    let ready: serde_json::Value = http
        .get(format!("{b}/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["checks"]["shared_limits"], true, "{ready}");
}

/// Four paragraphs of about 100 tokens each.
fn content(run: &str, i: usize) -> String {
    (0..4)
        .map(|p| {
            format!("Paragraph {p} of document {i} ({run}). ")
                + &"Two replicas share one store and lose nothing. ".repeat(9)
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_replica_mid_ingest_loses_no_acknowledged_document() {
    example_gateway::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let key = fresh_key("ingest");
    let run = key.clone();
    let config = write_config(dir.path(), "requests_per_minute = 100000\nburst = 1000");
    let (mut a_child, a) = replica(dir.path(), "a", &config, &[&key]).await;
    let (_b_child, b) = replica(dir.path(), "b", &config, &[&key]).await;
    let http = reqwest::Client::new();
    let source = |i: usize| format!("replicas/{run}/doc-{i}.md");

    // 24 ingests, 4 at a time, into replica A; it is killed after 6 are acknowledged.
    let acked: Arc<tokio::sync::Mutex<BTreeMap<usize, u64>>> = Arc::default();
    let gate = Arc::new(tokio::sync::Semaphore::new(4));
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let (http, a, acked, gate, key) = (
                http.clone(),
                a.clone(),
                acked.clone(),
                gate.clone(),
                key.clone(),
            );
            let (src, text) = (source(i), content(&run, i));
            tokio::spawn(async move {
                let _slot = gate.acquire().await.unwrap();
                let res = http
                    .post(format!("{a}/v1/documents"))
                    .bearer_auth(&key)
                    .json(&serde_json::json!({ "documents": [{ "source": src, "content": text }] }))
                    .send()
                    .await;
                if let Ok(res) = res {
                    if res.status() == 200 {
                        if let Ok(report) = res.json::<serde_json::Value>().await {
                            acked
                                .lock()
                                .await
                                .insert(i, report["chunks"].as_u64().unwrap_or_default());
                        }
                    }
                }
            })
        })
        .collect();
    let started = std::time::Instant::now();
    while acked.lock().await.len() < 6 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no ingests acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    a_child.start_kill().unwrap();
    a_child.wait().await.unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().await.clone();
    assert!(acked.len() >= 6 && acked.len() < 24, "{acked:?}");

    // Straight from the shared store: every acknowledged document has all its chunks.
    let store = PgVectorStore::builder()
        .url(env("DATABASE_URL"))
        .collection("catena_documents")
        .dimensions(384)
        .build()
        .await
        .unwrap();
    for (i, chunks) in &acked {
        let n = store
            .count(Some(&Filter::eq("source", source(*i).as_str())))
            .await
            .unwrap();
        assert_eq!(
            n as u64,
            *chunks,
            "acknowledged {} has {n} of {chunks} chunks",
            source(*i)
        );
    }

    // On replica B, every document is ingested again: the acknowledged ones are skipped
    // whole (their records are there), the others are completed, and no source ends with
    // more or fewer chunks than it should.
    for i in 0..24 {
        let res = post(
            &http,
            &b,
            "/v1/documents",
            &key,
            serde_json::json!({ "documents": [{ "source": source(i), "content": content(&run, i) }] }),
        )
        .await;
        assert_eq!(res.status(), 200);
        let report: serde_json::Value = res.json().await.unwrap();
        let chunks = report["chunks"].as_u64().unwrap();
        if acked.contains_key(&i) {
            assert_eq!(report["added"], 0, "{}: {report}", source(i));
            assert_eq!(report["skipped"].as_u64().unwrap(), chunks, "{report}");
        }
        let n = store
            .count(Some(&Filter::eq("source", source(i).as_str())))
            .await
            .unwrap();
        assert_eq!(
            n as u64,
            chunks,
            "{} ends with {n} of {chunks} chunks",
            source(i)
        );
    }
}
