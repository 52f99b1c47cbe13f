//! A deterministic embedder for tests.

use async_trait::async_trait;

use crate::embed::{Embedder, Embedding};
use crate::error::{Error, Result};

/// Embeds text by hashing its lower-cased words (and word bigrams) into a fixed number of
/// dimensions, then normalising to unit length.
///
/// Texts that share words get similar vectors, so retrieval in tests behaves sensibly; the
/// same text always gets the same vector, on every platform. It is **not** a language model:
/// synonyms are unrelated.
#[derive(Debug, Clone)]
pub struct DeterministicEmbedder {
    dimensions: usize,
}

impl DeterministicEmbedder {
    /// An embedder producing `dimensions`-long vectors (at least 1).
    pub fn new(dimensions: usize) -> Self {
        DeterministicEmbedder {
            dimensions: dimensions.max(1),
        }
    }

    /// Embeds one text, synchronously.
    pub fn embed(&self, text: &str) -> Embedding {
        let mut v = vec![0.0f32; self.dimensions];
        let lower = text.to_lowercase();
        let words: Vec<&str> = lower
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        let mut add = |token: &[u8], weight: f32| {
            let h = fnv1a(token);
            // Truncation is intended: the hash picks a bucket.
            let idx = (h % self.dimensions as u64) as usize;
            let sign = if (h >> 63) == 0 { 1.0 } else { -1.0 };
            v[idx] += sign * weight;
        };
        for w in &words {
            add(w.as_bytes(), 1.0);
        }
        for pair in words.windows(2) {
            let joined = format!("{} {}", pair[0], pair[1]);
            add(joined.as_bytes(), 0.5);
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|x| *x /= norm);
        }
        v
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[async_trait]
impl Embedder for DeterministicEmbedder {
    async fn embed_documents(&self, texts: &[String]) -> Result<Vec<Embedding>> {
        Ok(texts.iter().map(|t| self.embed(t)).collect())
    }

    async fn embed_query(&self, text: &str) -> Result<Embedding> {
        if text.len() > 1 << 20 {
            return Err(Error::invalid_input("query longer than 1 MiB"));
        }
        Ok(self.embed(text))
    }

    fn dimensions(&self) -> usize {
        self.dimensions
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embed::cosine_similarity;

    #[test]
    fn shared_words_are_closer_than_unrelated_ones() {
        let e = DeterministicEmbedder::new(256);
        let a = e.embed("the borrow checker in Rust");
        let b = e.embed("Rust borrow checker errors");
        let c = e.embed("baking sourdough bread");
        assert!(cosine_similarity(&a, &b) > cosine_similarity(&a, &c) + 0.2);
        assert_eq!(e.embed("Same text"), e.embed("same TEXT"));
        let n: f32 = a.iter().map(|x| x * x).sum();
        assert!((n - 1.0).abs() < 1e-5);
        assert!(e.embed("").iter().all(|x| *x == 0.0));
    }
}
