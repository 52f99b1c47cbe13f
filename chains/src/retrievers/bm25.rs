//! Okapi BM25 keyword retrieval, in process.

use std::collections::HashMap;

use async_trait::async_trait;
use catena_core::{Document, Result, Retriever};

/// Lower-cased alphanumeric words.
pub(crate) fn tokenize(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// BM25 (Okapi) over a fixed set of documents, as `rank_bm25.BM25Okapi` (which LangChain's
/// `BM25Retriever` uses): `k1 = 1.5`, `b = 0.75`, and negative IDFs replaced by
/// `epsilon · mean IDF` with `epsilon = 0.25`. Documents scoring 0 are not returned.
#[derive(Debug, Clone)]
pub struct Bm25Retriever {
    docs: Vec<Document>,
    term_freqs: Vec<HashMap<String, usize>>,
    lengths: Vec<usize>,
    avg_len: f64,
    idf: HashMap<String, f64>,
    k: usize,
    k1: f64,
    b: f64,
}

impl Bm25Retriever {
    /// Indexes `docs`; returns the best 4 by default.
    pub fn new(docs: Vec<Document>) -> Self {
        Self::with_params(docs, 1.5, 0.75, 0.25)
    }

    /// Indexes `docs` with explicit BM25 parameters.
    pub fn with_params(docs: Vec<Document>, k1: f64, b: f64, epsilon: f64) -> Self {
        let term_freqs: Vec<HashMap<String, usize>> = docs
            .iter()
            .map(|d| {
                let mut tf = HashMap::new();
                for t in tokenize(&d.content) {
                    *tf.entry(t).or_insert(0) += 1;
                }
                tf
            })
            .collect();
        let lengths: Vec<usize> = term_freqs.iter().map(|tf| tf.values().sum()).collect();
        let n = docs.len().max(1) as f64;
        let avg_len = lengths.iter().sum::<usize>() as f64 / n;
        let mut df: HashMap<&str, usize> = HashMap::new();
        for tf in &term_freqs {
            for t in tf.keys() {
                *df.entry(t.as_str()).or_insert(0) += 1;
            }
        }
        let mut idf: HashMap<String, f64> = df
            .iter()
            .map(|(t, &f)| {
                let f = f as f64;
                ((*t).to_owned(), ((n - f + 0.5) / (f + 0.5)).ln())
            })
            .collect();
        let mean = if idf.is_empty() {
            0.0
        } else {
            idf.values().sum::<f64>() / idf.len() as f64
        };
        for v in idf.values_mut() {
            if *v < 0.0 {
                *v = epsilon * mean;
            }
        }
        Bm25Retriever {
            docs,
            term_freqs,
            lengths,
            avg_len,
            idf,
            k: 4,
            k1,
            b,
        }
    }

    /// How many documents to return. Default 4.
    #[must_use]
    pub fn with_k(mut self, k: usize) -> Self {
        self.k = k;
        self
    }

    /// The BM25 score of every document for `query`, in document order.
    pub fn scores(&self, query: &str) -> Vec<f64> {
        let terms = tokenize(query);
        self.term_freqs
            .iter()
            .zip(&self.lengths)
            .map(|(tf, &len)| {
                terms
                    .iter()
                    .map(|t| {
                        let f = tf.get(t).copied().unwrap_or(0) as f64;
                        if f == 0.0 {
                            return 0.0;
                        }
                        let idf = self.idf.get(t).copied().unwrap_or(0.0);
                        let norm = if self.avg_len > 0.0 {
                            len as f64 / self.avg_len
                        } else {
                            0.0
                        };
                        idf * f * (self.k1 + 1.0) / (f + self.k1 * (1.0 - self.b + self.b * norm))
                    })
                    .sum()
            })
            .collect()
    }
}

#[async_trait]
impl Retriever for Bm25Retriever {
    async fn retrieve(&self, query: &str) -> Result<Vec<Document>> {
        let scores = self.scores(query);
        let mut order: Vec<usize> = (0..self.docs.len()).filter(|&i| scores[i] > 0.0).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        Ok(order
            .into_iter()
            .take(self.k)
            .map(|i| self.docs[i].clone())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_match_rank_bm25() {
        // The example of rank_bm25's README. Tokens: doc 0 has 4, doc 1 has 6, doc 2 has 5
        // (average 5); 14 distinct terms, "is" in two documents (negative IDF, replaced by
        // epsilon · mean IDF), every other term in one.
        let docs = [
            "Hello there good man!",
            "It is quite windy in London",
            "How is the weather today?",
        ]
        .map(Document::new)
        .to_vec();
        let r = Bm25Retriever::new(docs);
        let once = (2.5f64 / 1.5).ln();
        let twice = (1.5f64 / 2.5).ln();
        let mean_idf = (13.0 * once + twice) / 14.0;
        let tf_part = |len: f64| 2.5 / (1.0 + 1.5 * (0.25 + 0.75 * len / 5.0));
        let s = r.scores("windy London");
        assert_eq!((s[0], s[2]), (0.0, 0.0));
        assert!((s[1] - 2.0 * once * tf_part(6.0)).abs() < 1e-9, "{s:?}");
        let s = r.scores("is");
        assert!(
            (s[1] - 0.25 * mean_idf * tf_part(6.0)).abs() < 1e-9,
            "{s:?}"
        );
        assert!(
            (s[2] - 0.25 * mean_idf * tf_part(5.0)).abs() < 1e-9,
            "{s:?}"
        );
        assert_eq!(s[0], 0.0);
    }

    #[test]
    fn retrieves_in_score_order_and_skips_zero_scores() {
        let docs = ["apple banana", "banana banana cherry", "durian"]
            .map(Document::new)
            .to_vec();
        let hits =
            futures::executor::block_on(Bm25Retriever::new(docs).with_k(5).retrieve("banana"))
                .unwrap();
        let texts: Vec<_> = hits.iter().map(|d| d.content.as_str()).collect();
        assert_eq!(texts, ["banana banana cherry", "apple banana"]);
    }
}
