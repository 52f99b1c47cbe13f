//! BM25-style sparse vectors for hybrid search.
//!
//! Catena computes the term-frequency half of BM25; Qdrant's IDF modifier supplies the
//! inverse document frequency from the collection at query time. Together the sparse score
//! of a document is `Σ idf(t) · tf(t)·(k1+1) / (tf(t) + k1·(1 − b + b·len/avg_len))` over
//! the query's terms.

use std::collections::BTreeMap;

use catena_core::{Error, Result};

/// A sparse vector: sorted, distinct indices and their weights.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct SparseEmbedding {
    /// Token indices, ascending and distinct.
    pub indices: Vec<u32>,
    /// The weight of each index.
    pub values: Vec<f32>,
}

impl SparseEmbedding {
    /// Whether the vector has no entries (the text had no words).
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }
}

/// BM25 term weighting: lower-cased word tokens (runs of letters and digits), each mapped
/// to an index by a stable hash (32-bit FNV-1a of its UTF-8 bytes), weighted with
/// term-frequency saturation.
///
/// ```
/// use catena_vectorstores::qdrant::Bm25;
/// let bm25 = Bm25::new();
/// let doc = bm25.document("Rust, rust and more RUST");
/// assert_eq!(doc.indices.len(), 3); // "rust", "and", "more"
/// assert_eq!(bm25.query("rust").indices, vec![Bm25::token_index("rust")]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bm25 {
    k1: f32,
    b: f32,
    avg_len: f32,
}

impl Default for Bm25 {
    fn default() -> Self {
        Bm25::new()
    }
}

impl Bm25 {
    /// `k1 = 1.2`, `b = 0.75`, average document length 256 tokens.
    pub fn new() -> Self {
        Bm25 {
            k1: 1.2,
            b: 0.75,
            avg_len: 256.0,
        }
    }

    /// Sets the term-frequency saturation `k1` (default 1.2; at least 0).
    #[must_use]
    pub fn with_k1(mut self, k1: f32) -> Self {
        self.k1 = k1;
        self
    }

    /// Sets the length normalisation `b` (default 0.75; within `0..=1`).
    #[must_use]
    pub fn with_b(mut self, b: f32) -> Self {
        self.b = b;
        self
    }

    /// Sets the average document length in tokens (default 256; above 0). Set it near the
    /// average of your chunks.
    #[must_use]
    pub fn with_avg_len(mut self, avg_len: f32) -> Self {
        self.avg_len = avg_len;
        self
    }

    /// Checks the parameters.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the bad parameter.
    pub fn validate(&self) -> Result<()> {
        if !(self.k1.is_finite() && self.k1 >= 0.0) {
            return Err(Error::invalid_config(format!(
                "bm25 k1 must be finite and at least 0, got {}",
                self.k1
            )));
        }
        if !(0.0..=1.0).contains(&self.b) {
            return Err(Error::invalid_config(format!(
                "bm25 b must be within 0..=1, got {}",
                self.b
            )));
        }
        if !(self.avg_len.is_finite() && self.avg_len > 0.0) {
            return Err(Error::invalid_config(format!(
                "bm25 average length must be above 0, got {}",
                self.avg_len
            )));
        }
        Ok(())
    }

    /// The lower-cased word tokens of `text`: maximal runs of alphanumeric characters.
    pub fn tokenize(text: &str) -> Vec<String> {
        text.split(|c: char| !c.is_alphanumeric())
            .filter(|t| !t.is_empty())
            .map(str::to_lowercase)
            .collect()
    }

    /// The sparse index of a (lower-cased) token: its 32-bit FNV-1a hash. Stable across
    /// releases and platforms, since stored vectors depend on it.
    pub fn token_index(token: &str) -> u32 {
        let mut h: u32 = 0x811c_9dc5;
        for b in token.bytes() {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
        h
    }

    fn counts(text: &str) -> (BTreeMap<u32, u32>, usize) {
        let tokens = Bm25::tokenize(text);
        let mut counts = BTreeMap::new();
        for t in &tokens {
            *counts.entry(Bm25::token_index(t)).or_insert(0) += 1;
        }
        (counts, tokens.len())
    }

    /// A document's vector: each distinct token weighted
    /// `tf·(k1+1) / (tf + k1·(1 − b + b·len/avg_len))`.
    pub fn document(&self, text: &str) -> SparseEmbedding {
        let (counts, len) = Bm25::counts(text);
        let norm = self.k1 * (1.0 - self.b + self.b * len as f32 / self.avg_len);
        let (indices, values) = counts
            .into_iter()
            .map(|(i, tf)| {
                let tf = tf as f32;
                (i, tf * (self.k1 + 1.0) / (tf + norm))
            })
            .unzip();
        SparseEmbedding { indices, values }
    }

    /// A query's vector: weight 1 for each distinct token (Qdrant's IDF modifier weighs
    /// them by rarity).
    pub fn query(&self, text: &str) -> SparseEmbedding {
        let (counts, _) = Bm25::counts(text);
        let indices: Vec<u32> = counts.into_keys().collect();
        let values = vec![1.0; indices.len()];
        SparseEmbedding { indices, values }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_hash() {
        assert_eq!(
            Bm25::tokenize("Hello, WORLD! it's 2024 — Ünïcode"),
            ["hello", "world", "it", "s", "2024", "ünïcode"]
        );
        // FNV-1a reference values.
        assert_eq!(Bm25::token_index(""), 0x811c_9dc5);
        assert_eq!(Bm25::token_index("a"), 0xe40c_292c);
        assert_eq!(Bm25::token_index("foobar"), 0xbf9c_f968);
    }

    #[test]
    fn document_weights_saturate_and_normalise_length() {
        let bm = Bm25::new().with_avg_len(4.0);
        let d = bm.document("rust rust go");
        assert_eq!(d.indices.len(), 2);
        assert!(d.indices.windows(2).all(|w| w[0] < w[1]));
        let norm = 1.2 * (1.0 - 0.75 + 0.75 * 3.0 / 4.0);
        let w = |tf: f32| tf * 2.2 / (tf + norm);
        let at = |tok: &str| {
            let i = d.indices.iter().position(|&x| x == Bm25::token_index(tok));
            d.values[i.unwrap()]
        };
        assert!((at("rust") - w(2.0)).abs() < 1e-6);
        assert!((at("go") - w(1.0)).abs() < 1e-6);
        // Saturation: twice the frequency is less than twice the weight.
        assert!(at("rust") < 2.0 * at("go"));
        // Longer documents weigh the same term less.
        let long = bm.document("go a b c d e f g");
        let i = long
            .indices
            .iter()
            .position(|&x| x == Bm25::token_index("go"));
        assert!(long.values[i.unwrap()] < at("go"));
        assert!(bm.document("  ... ").is_empty());
    }

    #[test]
    fn query_is_binary() {
        let q = Bm25::new().query("Rust rust GO");
        assert_eq!(q.values, vec![1.0, 1.0]);
        let mut want = vec![Bm25::token_index("rust"), Bm25::token_index("go")];
        want.sort_unstable();
        assert_eq!(q.indices, want);
    }

    #[test]
    fn validation() {
        assert!(Bm25::new().validate().is_ok());
        assert!(Bm25::new().with_b(1.5).validate().is_err());
        assert!(Bm25::new().with_k1(f32::NAN).validate().is_err());
        assert!(Bm25::new().with_avg_len(0.0).validate().is_err());
    }
}
