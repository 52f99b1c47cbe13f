//! Fitting retrieved documents into a token budget.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use catena_core::{count_tokens, Document, Result, Retriever, TokenEncoding};

/// Keeps documents, in order, while their total token count stays within `budget`. The first
/// document that does not fit is cut at the largest character prefix that fits (marked with
/// metadata `truncated: true`) and nothing after it is kept, so the context never exceeds the
/// budget and the most relevant text comes first.
pub fn trim_to_token_budget(
    docs: Vec<Document>,
    budget: usize,
    encoding: TokenEncoding,
) -> Vec<Document> {
    let mut used = 0usize;
    let mut out = Vec::new();
    for mut doc in docs {
        let n = count_tokens(encoding, &doc.content);
        if used + n <= budget {
            used += n;
            out.push(doc);
            continue;
        }
        let room = budget - used;
        if room > 0 {
            // Binary search over character boundaries for the longest prefix that fits.
            let bounds: Vec<usize> = doc
                .content
                .char_indices()
                .map(|(i, _)| i)
                .chain(std::iter::once(doc.content.len()))
                .collect();
            let (mut lo, mut hi) = (0usize, bounds.len() - 1);
            while lo < hi {
                let mid = (lo + hi).div_ceil(2);
                if count_tokens(encoding, &doc.content[..bounds[mid]]) <= room {
                    lo = mid;
                } else {
                    hi = mid - 1;
                }
            }
            if lo > 0 {
                doc.content.truncate(bounds[lo]);
                doc.metadata.insert("truncated".into(), true.into());
                out.push(doc);
            }
        }
        break;
    }
    out
}

/// A retriever whose results are trimmed to a token budget with [`trim_to_token_budget`].
#[derive(Clone)]
pub struct BudgetedRetriever {
    inner: Arc<dyn Retriever>,
    budget: usize,
    encoding: TokenEncoding,
}

impl fmt::Debug for BudgetedRetriever {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BudgetedRetriever")
            .field("budget", &self.budget)
            .field("encoding", &self.encoding)
            .finish_non_exhaustive()
    }
}

impl BudgetedRetriever {
    /// At most `budget` tokens of `encoding` from `inner`'s results.
    pub fn new(inner: Arc<dyn Retriever>, budget: usize, encoding: TokenEncoding) -> Self {
        BudgetedRetriever {
            inner,
            budget,
            encoding,
        }
    }
}

#[async_trait]
impl Retriever for BudgetedRetriever {
    async fn retrieve(&self, query: &str) -> Result<Vec<Document>> {
        let docs = self.inner.retrieve(query).await?;
        Ok(trim_to_token_budget(docs, self.budget, self.encoding))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_whole_documents_then_cuts_one() {
        let e = TokenEncoding::Cl100kBase;
        let docs = vec![
            Document::new(" word".repeat(10)),
            Document::new(" word".repeat(10)),
            Document::new(" word".repeat(10)),
        ];
        let out = trim_to_token_budget(docs.clone(), 25, e);
        assert_eq!(out.len(), 3);
        assert_eq!(count_tokens(e, &out[2].content), 5);
        assert_eq!(out[2].metadata["truncated"], true);
        let total: usize = out.iter().map(|d| count_tokens(e, &d.content)).sum();
        assert!(total <= 25);
        assert_eq!(trim_to_token_budget(docs.clone(), 20, e).len(), 2);
        assert!(trim_to_token_budget(docs, 0, e).is_empty());
        let cjk = vec![Document::new("東京都は日本の首都です。")];
        let out = trim_to_token_budget(cjk, 3, e);
        assert!(
            count_tokens(e, &out[0].content) <= 3,
            "never splits a character"
        );
    }
}
