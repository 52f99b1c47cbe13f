//! The embedder conformance suite.

use crate::embed::{cosine_similarity, Embedder};

/// Checks the rules every [`Embedder`] must follow:
/// - `dimensions()` is positive and every vector has that length, with finite values;
/// - an empty batch gives an empty result without failing;
/// - one vector per text, **in order**: each text of a batch embeds as it does alone;
/// - the same text in one batch gets the same vector;
/// - a batch of 300 texts (past most providers' per-request limits) comes back whole and in
///   order;
/// - `embed_query` returns a vector of the same length.
///
/// It sends at most about 310 short texts.
///
/// # Panics
/// When the embedder breaks a rule; the message names it.
pub async fn embedder_conformance(embedder: &dyn Embedder) {
    let dims = embedder.dimensions();
    assert!(dims > 0, "conformance: dimensions() must be positive");

    let empty = embedder
        .embed_documents(&[])
        .await
        .expect("conformance: an empty batch must not fail");
    assert!(
        empty.is_empty(),
        "conformance: an empty batch gives no vectors"
    );

    let texts: Vec<String> = [
        "The cat sat on the mat.",
        "Rust guarantees memory safety without a garbage collector.",
        "Photosynthesis turns light into chemical energy.",
        "The cat sat on the mat.",
        "Überraschung: naïve café — 東京",
    ]
    .map(String::from)
    .to_vec();
    let batch = embedder
        .embed_documents(&texts)
        .await
        .expect("conformance: embed_documents failed");
    assert_eq!(batch.len(), texts.len(), "conformance: one vector per text");
    for (i, v) in batch.iter().enumerate() {
        assert_eq!(
            v.len(),
            dims,
            "conformance: vector {i} has the wrong length"
        );
        assert!(
            v.iter().all(|x| x.is_finite()),
            "conformance: vector {i} is not finite"
        );
        assert!(
            v.iter().any(|x| *x != 0.0),
            "conformance: vector {i} is all zeros"
        );
    }
    assert!(
        cosine_similarity(&batch[0], &batch[3]) > 0.999,
        "conformance: the same text must embed the same within a batch"
    );
    for (i, text) in texts.iter().enumerate() {
        let alone = embedder
            .embed_documents(std::slice::from_ref(text))
            .await
            .expect("conformance: single embed failed");
        assert!(
            cosine_similarity(&alone[0], &batch[i]) > 0.999,
            "conformance: text {i} embeds differently in a batch: order not preserved?"
        );
    }

    let many: Vec<String> = (0..300)
        .map(|i| format!("document number {i} about topic {}", i % 7))
        .collect();
    let vectors = embedder
        .embed_documents(&many)
        .await
        .expect("conformance: a batch of 300 failed");
    assert_eq!(
        vectors.len(),
        300,
        "conformance: a large batch must come back whole"
    );
    for i in [0usize, 99, 100, 101, 255, 299] {
        let alone = embedder
            .embed_documents(std::slice::from_ref(&many[i]))
            .await
            .expect("conformance: single embed failed");
        assert!(
            cosine_similarity(&alone[0], &vectors[i]) > 0.999,
            "conformance: text {i} of a large batch is out of order"
        );
    }

    let q = embedder
        .embed_query("where did the cat sit?")
        .await
        .expect("conformance: embed_query failed");
    assert_eq!(q.len(), dims, "conformance: query vector length");
}
