//! The cross-encoder reranker.
//!
//! - On `data/tiny_cross_encoder/`: a small random BERT cross-encoder whose reference scores
//!   come from an independent NumPy implementation of transformers'
//!   `BertForSequenceClassification` (`data/make_tiny_cross_encoder.py` says how it was made).
//!   No PyPI package ships real cross-encoder weights, so this is what the test command runs.
//! - On a real model when `CATENA_RERANK_MODEL` names one (a directory with `config.json`,
//!   `tokenizer.json`, `model.safetensors`): relevant passages outrank irrelevant ones, and for
//!   `cross-encoder/ms-marco-MiniLM-L6-v2` the scores of its model card.
#![cfg(feature = "local")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use catena_core::{Document, Error, Reranker};
use catena_llms::local::CrossEncoderReranker;
use serde_json::Value;

fn tiny_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny_cross_encoder")
}

fn data_json(rel: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

struct Case {
    query: String,
    document: String,
    logit: f32,
}

fn cases() -> Vec<Case> {
    data_json("tiny_cross_encoder/reference.json")["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Case {
            query: c["query"].as_str().unwrap().to_owned(),
            document: c["document"].as_str().unwrap().to_owned(),
            logit: c["logit"].as_f64().unwrap() as f32,
        })
        .collect()
}

fn close(a: f32, b: f32, tolerance: f32) -> bool {
    (a - b).abs() <= tolerance
}

#[tokio::test]
async fn tiny_model_matches_the_numpy_reference_alone_and_batched() {
    let reranker = CrossEncoderReranker::from_dir(tiny_dir()).unwrap();
    assert_eq!(reranker.max_length(), 32);
    assert_eq!(reranker.model_name(), "tiny_cross_encoder");
    let cases = cases();
    // One pair per call: no padding.
    for c in &cases {
        let s = reranker
            .score(&c.query, std::slice::from_ref(&c.document))
            .await
            .unwrap();
        assert!(
            close(s[0], c.logit, 1e-4),
            "{:?}: {} vs {}",
            c.document,
            s[0],
            c.logit
        );
    }
    // Pairs of one query in one padded batch, in several batch sizes.
    for batch_size in [1, 2, 16] {
        let reranker = CrossEncoderReranker::builder(tiny_dir())
            .batch_size(batch_size)
            .build()
            .unwrap();
        for query in [
            "How many people live in Berlin?",
            "What is the capital of France?",
        ] {
            let group: Vec<&Case> = cases.iter().filter(|c| c.query == query).collect();
            let docs: Vec<String> = group.iter().map(|c| c.document.clone()).collect();
            let scores = reranker.score(query, &docs).await.unwrap();
            for (c, s) in group.iter().zip(&scores) {
                assert!(
                    close(*s, c.logit, 1e-4),
                    "batch {batch_size}: {s} vs {}",
                    c.logit
                );
            }
        }
    }
}

#[tokio::test]
async fn long_pairs_are_cut_longest_first_like_transformers() {
    // The last reference case is longer than 32 tokens: its logit is that of the cut pair.
    let reranker = CrossEncoderReranker::from_dir(tiny_dir()).unwrap();
    let long = cases().pop().unwrap();
    let s = reranker
        .score(&long.query, std::slice::from_ref(&long.document))
        .await
        .unwrap();
    assert!(close(s[0], long.logit, 1e-4), "{} vs {}", s[0], long.logit);
    // A lower limit changes what is read, and still scores.
    let short = CrossEncoderReranker::builder(tiny_dir())
        .max_length(16)
        .build()
        .unwrap();
    assert_eq!(short.max_length(), 16);
    let s16 = short
        .score(&long.query, std::slice::from_ref(&long.document))
        .await
        .unwrap();
    assert!(s16[0].is_finite() && !close(s16[0], s[0], 1e-6));
    // Never above the model's own limit.
    let capped = CrossEncoderReranker::builder(tiny_dir())
        .max_length(4096)
        .build()
        .unwrap();
    assert_eq!(capped.max_length(), 32);
}

#[tokio::test]
async fn rerank_orders_by_score_and_honours_top_n() {
    let reranker = CrossEncoderReranker::from_dir(tiny_dir()).unwrap();
    let query = "What is the capital of France?";
    let group: Vec<Case> = cases().into_iter().filter(|c| c.query == query).collect();
    // Put the reference documents after a decoy, so indexes are not trivially 0 and 1.
    let mut docs = vec![Document::new("cats purr")];
    docs.extend(group.iter().map(|c| Document::new(c.document.as_str())));
    let all = reranker.rerank(query, &docs, 10).await.unwrap();
    assert_eq!(all.len(), 3);
    assert!(all.windows(2).all(|w| w[0].score >= w[1].score), "{all:?}");
    let expected_best = if group[0].logit > group[1].logit {
        1
    } else {
        2
    };
    assert_eq!(all.iter().filter(|r| r.index == expected_best).count(), 1);
    let best_two: Vec<usize> = all.iter().take(2).map(|r| r.index).collect();
    let top = reranker.rerank(query, &docs, 2).await.unwrap();
    assert_eq!(top.iter().map(|r| r.index).collect::<Vec<_>>(), best_two);
    for r in &all {
        if r.index > 0 {
            assert!(close(r.score, group[r.index - 1].logit, 1e-4));
        }
    }
    assert!(reranker.rerank(query, &[], 3).await.unwrap().is_empty());
    assert!(reranker.rerank(query, &docs, 0).await.unwrap().is_empty());
}

#[tokio::test]
async fn sigmoid_squashes_the_logits() {
    let reranker = CrossEncoderReranker::builder(tiny_dir())
        .sigmoid(true)
        .build()
        .unwrap();
    let c = &cases()[0];
    let s = reranker
        .score(&c.query, std::slice::from_ref(&c.document))
        .await
        .unwrap();
    let expected = 1.0 / (1.0 + (-c.logit).exp());
    assert!(close(s[0], expected, 1e-5), "{} vs {expected}", s[0]);
    assert!(format!("{reranker:?}").contains("sigmoid: true"));
}

/// A copy of the tiny model whose config.json is edited by `edit`.
fn edited_copy(dir: &Path, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let out = dir.join("model");
    std::fs::create_dir_all(&out).unwrap();
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::copy(tiny_dir().join(f), out.join(f)).unwrap();
    }
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(out.join("config.json"), config.to_string()).unwrap();
    out
}

#[test]
fn unsupported_or_incomplete_models_are_typed_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = edited_copy(tmp.path(), |c| c["model_type"] = "xlm-roberta".into());
    let e = CrossEncoderReranker::from_dir(&dir).unwrap_err();
    assert!(matches!(e, Error::InvalidConfig(_)), "{e:?}");
    assert!(e.to_string().contains("xlm-roberta"), "{e}");

    let dir = edited_copy(tmp.path(), |c| {
        c["model_type"] = "bert".into();
        c["id2label"] = serde_json::json!({"0": "no", "1": "yes"});
    });
    let e = CrossEncoderReranker::from_dir(&dir).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidConfig(m) if m.contains("2 labels")),
        "{e:?}"
    );

    // Weights of a different shape than the config says.
    let dir = edited_copy(tmp.path(), |c| {
        c["id2label"] = serde_json::json!({"0": "LABEL_0"});
        c["hidden_size"] = 32.into();
    });
    assert!(matches!(
        CrossEncoderReranker::from_dir(&dir),
        Err(Error::InvalidConfig(_))
    ));

    std::fs::remove_file(dir.join("tokenizer.json")).unwrap();
    assert!(matches!(
        CrossEncoderReranker::from_dir(&dir),
        Err(Error::Io { .. })
    ));
    assert!(matches!(
        CrossEncoderReranker::from_dir(tmp.path().join("missing")),
        Err(Error::Io { .. })
    ));
}

// ------------------------------------------------------------------------- a real model

/// The model named by `CATENA_RERANK_MODEL`, or `None` (the test is skipped) when unset.
fn real_model() -> Option<CrossEncoderReranker> {
    let Some(dir) = std::env::var_os("CATENA_RERANK_MODEL") else {
        eprintln!("skipped: CATENA_RERANK_MODEL names no cross-encoder directory");
        return None;
    };
    Some(
        CrossEncoderReranker::builder(PathBuf::from(dir))
            .sigmoid(false)
            .build()
            .unwrap(),
    )
}

#[tokio::test]
async fn real_model_ranks_relevant_passages_first() {
    let Some(reranker) = real_model() else {
        return;
    };
    let cases = [
        (
            "How many people live in Berlin?",
            "Berlin had a population of 3,520,031 registered inhabitants in an area of 891.82 square kilometers.",
            [
                "Berlin is well known for its museums.",
                "New York City is famous for the Metropolitan Museum of Art.",
            ],
        ),
        (
            "What is the capital of France?",
            "Paris is the capital and most populous city of France.",
            [
                "France borders Spain, Italy, Germany and Belgium.",
                "The Eiffel Tower was built for the 1889 World's Fair.",
            ],
        ),
        (
            "How does Rust manage memory without a garbage collector?",
            "Rust uses ownership and borrowing, checked at compile time, to free memory deterministically without a garbage collector.",
            [
                "Java runs a garbage collector to reclaim unused objects.",
                "Rust is a metal oxide formed by the reaction of iron and oxygen.",
            ],
        ),
    ];
    for (query, relevant, others) in cases {
        let docs = [
            Document::new(others[0]),
            Document::new(relevant),
            Document::new(others[1]),
        ];
        let ranked = reranker.rerank(query, &docs, 3).await.unwrap();
        assert_eq!(ranked[0].index, 1, "{query}: {ranked:?}");
    }
    // The model card's example for cross-encoder/ms-marco-MiniLM-L6-v2.
    if reranker.model_name().contains("MiniLM-L6") || reranker.model_name().contains("MiniLM-L-6") {
        let scores = reranker
            .score(
                "How many people live in Berlin?",
                &[
                    "Berlin had a population of 3,520,031 registered inhabitants in an area of 891.82 square kilometers.".to_owned(),
                    "Berlin is well known for its museums.".to_owned(),
                ],
            )
            .await
            .unwrap();
        assert!(close(scores[0], 8.607138, 1e-3), "{scores:?}");
        assert!(close(scores[1], -4.320078, 1e-3), "{scores:?}");
    }
}
