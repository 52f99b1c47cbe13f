//! Filtered search in the in-memory store answers from equality indexes built on demand: the
//! answers must equal evaluating the filter on every document, before and after writes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use catena_core::{Document, EmbeddedDocument, Filter, SearchRequest, VectorStore};
use catena_vectorstores::InMemoryVectorStore;
use serde_json::{json, Value};

/// A small deterministic generator (xorshift), so the test needs no RNG crate.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn metadata(rng: &mut Rng, n: usize) -> serde_json::Map<String, Value> {
    let tenants = ["acme", "globex", "initech", "umbrella"];
    let tags = ["red", "green", "blue"];
    let mut m = serde_json::Map::new();
    m.insert("tenant".into(), json!(tenants[rng.below(4) as usize]));
    // Tags: a string, an array (sometimes with a repeated value), a number or missing.
    match rng.below(4) {
        0 => {
            m.insert("tag".into(), json!(tags[rng.below(3) as usize]));
        }
        1 => {
            let a = tags[rng.below(3) as usize];
            let b = tags[rng.below(3) as usize];
            m.insert("tag".into(), json!([a, b, a]));
        }
        2 => {
            m.insert("tag".into(), json!(rng.below(3)));
        }
        _ => {}
    }
    m.insert("page".into(), json!(n % 17));
    m.insert("nested".into(), json!({"kind": tags[n % 3]}));
    m
}

fn filters() -> Vec<Filter> {
    vec![
        Filter::eq("tenant", "acme"),
        Filter::eq("tenant", "nobody"),
        Filter::eq("tag", "red"),
        Filter::eq("tag", 1),
        Filter::eq("nested.kind", "blue"),
        Filter::In("tag".into(), vec![json!("green"), json!("blue")]),
        Filter::In("tag".into(), vec![json!("green"), json!(2)]),
        Filter::And(vec![
            Filter::eq("tenant", "globex"),
            Filter::eq("tag", "blue"),
        ]),
        Filter::And(vec![
            Filter::eq("tenant", "initech"),
            Filter::range("page").gte(3.0).lt(9.0),
        ]),
        Filter::And(vec![
            Filter::Exists("tag".into()),
            Filter::Not(Box::new(Filter::eq("tenant", "acme"))),
        ]),
        Filter::Or(vec![
            Filter::eq("tenant", "umbrella"),
            Filter::eq("tag", "red"),
        ]),
        Filter::Ne("tenant".into(), json!("acme")),
    ]
}

fn vector(rng: &mut Rng) -> Vec<f32> {
    (0..8)
        .map(|_| (rng.below(1000) as f32) / 500.0 - 1.0)
        .collect()
}

async fn check(store: &InMemoryVectorStore, docs: &[(String, serde_json::Map<String, Value>)]) {
    let query = vec![0.5f32; 8];
    for filter in filters() {
        let expected: BTreeSet<&str> = docs
            .iter()
            .filter(|(_, m)| filter.matches(m))
            .map(|(id, _)| id.as_str())
            .collect();
        assert_eq!(
            store.count(Some(&filter)).await.unwrap(),
            expected.len(),
            "{filter:?}"
        );
        let hits = store
            .search(SearchRequest::new(query.clone(), docs.len() + 1).with_filter(filter.clone()))
            .await
            .unwrap();
        let got: BTreeSet<&str> = hits
            .iter()
            .map(|h| h.document.id.as_ref().unwrap().as_str())
            .collect();
        assert_eq!(got.len(), hits.len(), "no document twice: {filter:?}");
        assert_eq!(got, expected, "{filter:?}");
    }
}

#[tokio::test]
async fn filtered_search_equals_evaluating_the_filter_on_every_document_across_writes() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let store = InMemoryVectorStore::new();
    let mut docs: Vec<(String, serde_json::Map<String, Value>)> = Vec::new();
    let upsert = |docs: Vec<(String, serde_json::Map<String, Value>, Vec<f32>)>| {
        docs.into_iter()
            .map(|(id, m, v)| {
                EmbeddedDocument::new(
                    Document::new(id.clone()).with_id(id).with_metadata_map(m),
                    v,
                )
            })
            .collect::<Vec<_>>()
    };
    let batch: Vec<_> = (0..2000)
        .map(|n| (format!("d{n}"), metadata(&mut rng, n), vector(&mut rng)))
        .collect();
    docs.extend(batch.iter().map(|(id, m, _)| (id.clone(), m.clone())));
    store.upsert(upsert(batch)).await.unwrap();
    check(&store, &docs).await;

    // Move documents between tenants: the indexes built by the searches above are stale.
    let moved: Vec<_> = (0..2000)
        .step_by(7)
        .map(|n| (format!("d{n}"), metadata(&mut rng, n + 1), vector(&mut rng)))
        .collect();
    for (id, m, _) in &moved {
        docs.iter_mut().find(|(d, _)| d == id).unwrap().1 = m.clone();
    }
    store.upsert(upsert(moved)).await.unwrap();
    check(&store, &docs).await;

    // Deletes move rows (the last row fills the hole): row numbers in the indexes go stale.
    let gone: Vec<String> = (0..2000).step_by(5).map(|n| format!("d{n}")).collect();
    store
        .delete(&gone.iter().map(|g| g.as_str().into()).collect::<Vec<_>>())
        .await
        .unwrap();
    docs.retain(|(id, _)| !gone.contains(id));
    check(&store, &docs).await;

    // And new documents after that.
    let more: Vec<_> = (2000..2300)
        .map(|n| (format!("d{n}"), metadata(&mut rng, n), vector(&mut rng)))
        .collect();
    docs.extend(more.iter().map(|(id, m, _)| (id.clone(), m.clone())));
    store.upsert(upsert(more)).await.unwrap();
    check(&store, &docs).await;
}
