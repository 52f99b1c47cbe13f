//! Reciprocal rank fusion of several retrievers.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use catena_core::{Document, DocumentId, Error, Result, Retriever};

use super::dedup_key;

/// Fuses ranked lists: each document scores `Σ weightᵢ / (c + rankᵢ)` over the lists it
/// appears in (rank from 1), as LangChain's `EnsembleRetriever` (`c = 60`). Documents are
/// identified by id (or derived id); the result is sorted by fused score, ties by first
/// appearance.
pub fn reciprocal_rank_fusion(
    lists: &[Vec<Document>],
    weights: &[f32],
    c: f32,
) -> Vec<(Document, f32)> {
    let mut scores: HashMap<DocumentId, (usize, f32, Document)> = HashMap::new();
    let mut seen = 0usize;
    for (list, &w) in lists.iter().zip(weights) {
        for (rank, doc) in list.iter().enumerate() {
            let key = dedup_key(doc);
            let add = w / (c + rank as f32 + 1.0);
            scores
                .entry(key)
                .and_modify(|e| e.1 += add)
                .or_insert_with(|| {
                    seen += 1;
                    (seen, add, doc.clone())
                });
        }
    }
    let mut fused: Vec<(usize, f32, Document)> = scores.into_values().collect();
    fused.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    fused.into_iter().map(|(_, s, d)| (d, s)).collect()
}

/// Runs several retrievers concurrently and fuses their results with
/// [`reciprocal_rank_fusion`].
#[derive(Clone)]
pub struct EnsembleRetriever {
    retrievers: Vec<Arc<dyn Retriever>>,
    weights: Vec<f32>,
    c: f32,
    k: Option<usize>,
}

impl fmt::Debug for EnsembleRetriever {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnsembleRetriever")
            .field("retrievers", &self.retrievers.len())
            .field("weights", &self.weights)
            .field("c", &self.c)
            .field("k", &self.k)
            .finish()
    }
}

impl EnsembleRetriever {
    /// Equal weights, `c = 60`, every fused document returned.
    pub fn new(retrievers: Vec<Arc<dyn Retriever>>) -> Self {
        let n = retrievers.len();
        EnsembleRetriever {
            retrievers,
            weights: vec![1.0; n],
            c: 60.0,
            k: None,
        }
    }

    /// Per-retriever weights, in order. Default all 1.
    #[must_use]
    pub fn with_weights(mut self, weights: Vec<f32>) -> Self {
        self.weights = weights;
        self
    }

    /// The RRF constant. Default 60.
    #[must_use]
    pub fn with_c(mut self, c: f32) -> Self {
        self.c = c;
        self
    }

    /// Keep only the best `k`. Default: all.
    #[must_use]
    pub fn with_k(mut self, k: usize) -> Self {
        self.k = Some(k);
        self
    }
}

#[async_trait]
impl Retriever for EnsembleRetriever {
    async fn retrieve(&self, query: &str) -> Result<Vec<Document>> {
        if self.weights.len() != self.retrievers.len() {
            return Err(Error::invalid_config(format!(
                "{} weights for {} retrievers",
                self.weights.len(),
                self.retrievers.len()
            )));
        }
        let lists =
            futures::future::try_join_all(self.retrievers.iter().map(|r| r.retrieve(query)))
                .await?;
        let fused = reciprocal_rank_fusion(&lists, &self.weights, self.c);
        let k = self.k.unwrap_or(fused.len());
        Ok(fused.into_iter().take(k).map(|(d, _)| d).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(ids: &[&str]) -> Vec<Document> {
        ids.iter().map(|i| Document::new(*i).with_id(*i)).collect()
    }

    #[test]
    fn rrf_scores_and_order() {
        let fused = reciprocal_rank_fusion(
            &[docs(&["a", "b", "c"]), docs(&["c", "d"])],
            &[1.0, 1.0],
            60.0,
        );
        let ids: Vec<_> = fused.iter().map(|(d, _)| d.content.as_str()).collect();
        assert_eq!(ids, ["c", "a", "b", "d"]);
        assert!((fused[0].1 - (1.0 / 63.0 + 1.0 / 61.0)).abs() < 1e-6);
        let weighted = reciprocal_rank_fusion(&[docs(&["a"]), docs(&["b"])], &[1.0, 2.0], 60.0);
        assert_eq!(weighted[0].0.content, "b");
    }
}
