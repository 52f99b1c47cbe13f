//! Embedders: text in, vectors out.
//!
//! ```
//! use catena_core::Embedder;
//! use catena_core::test_utils::DeterministicEmbedder;
//!
//! # futures::executor::block_on(async {
//! let embedder = DeterministicEmbedder::new(64);
//! let vectors = embedder
//!     .embed_documents(&["a cat".to_string(), "a dog".to_string()])
//!     .await
//!     .unwrap();
//! assert_eq!(vectors.len(), 2);
//! assert_eq!(vectors[0].len(), embedder.dimensions());
//! # });
//! ```

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::{Error, Result};

/// A dense embedding vector.
pub type Embedding = Vec<f32>;

/// Turns text into vectors. Batch limits of the backing API are handled inside: callers may
/// pass any number of texts and get one vector per text, in order.
#[async_trait]
pub trait Embedder: Send + Sync {
    /// Embeds documents, one vector per text, in order.
    ///
    /// # Errors
    /// Provider failures; [`Error::InvalidInput`] for texts the model cannot take.
    async fn embed_documents(&self, texts: &[String]) -> Result<Vec<Embedding>>;

    /// Embeds a search query. The default embeds it as a document; providers with distinct
    /// query embeddings override it.
    ///
    /// # Errors
    /// As for [`embed_documents`](Self::embed_documents).
    async fn embed_query(&self, text: &str) -> Result<Embedding> {
        let mut v = self.embed_documents(&[text.to_owned()]).await?;
        match v.pop() {
            Some(e) if v.is_empty() => Ok(e),
            _ => Err(Error::other("embedder returned a wrong number of vectors")),
        }
    }

    /// The length of every vector this embedder returns.
    fn dimensions(&self) -> usize;
}

#[async_trait]
impl<T: Embedder + ?Sized> Embedder for Arc<T> {
    async fn embed_documents(&self, texts: &[String]) -> Result<Vec<Embedding>> {
        (**self).embed_documents(texts).await
    }
    async fn embed_query(&self, text: &str) -> Result<Embedding> {
        (**self).embed_query(text).await
    }
    fn dimensions(&self) -> usize {
        (**self).dimensions()
    }
}

#[async_trait]
impl<T: Embedder + ?Sized> Embedder for Box<T> {
    async fn embed_documents(&self, texts: &[String]) -> Result<Vec<Embedding>> {
        (**self).embed_documents(texts).await
    }
    async fn embed_query(&self, text: &str) -> Result<Embedding> {
        (**self).embed_query(text).await
    }
    fn dimensions(&self) -> usize {
        (**self).dimensions()
    }
}

/// Cosine similarity of two vectors of equal length; 0 when either is all zeros.
pub fn cosine_similarity(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}
