//! Keyword search: an English analyzer and an incremental BM25 index.
//!
//! [`analyze`] turns text into index terms (lower-cased words of letters and digits, English
//! stop words dropped, Snowball-stemmed, so "Running runs" gives `["run", "run"]`).
//! [`KeywordIndex`] keeps the corpus statistics BM25 needs (document frequencies, the
//! average length) as documents come and go; each document's [`TermCounts`] is kept by the
//! caller beside the document, and a [`KeywordQuery`] scores it:
//! `Σ idf(t) · tf·(k1+1) / (tf + k1·(1 − b + b·len/avg_len))` with
//! `idf(t) = ln(1 + (N − df + 0.5) / (df + 0.5))` (Lucene's BM25; never negative).
//!
//! ```
//! use catena_core::keyword::{analyze, KeywordIndex};
//!
//! assert_eq!(analyze("The cats are running!"), vec!["cat", "run"]);
//!
//! let mut index = KeywordIndex::new();
//! let a = index.add("Rust has no garbage collector.");
//! let b = index.add("Go has a garbage collector and goroutines.");
//! let q = index.query("goroutines");
//! assert!(q.score(&b) > 0.0);
//! assert_eq!(q.score(&a), 0.0);
//! ```

use std::collections::HashMap;
use std::sync::OnceLock;

use rust_stemmers::{Algorithm, Stemmer};

/// BM25's term-frequency saturation (Lucene's default).
pub const DEFAULT_K1: f32 = 1.2;
/// BM25's length normalisation (Lucene's default).
pub const DEFAULT_B: f32 = 0.75;

/// Common English words that carry no meaning for search (Lucene's English stop set plus a
/// few pronouns and auxiliaries).
const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
    "they", "this", "to", "was", "will", "with", "i", "you", "he", "she", "we", "its", "do",
    "does", "did", "has", "have", "had", "can", "so", "than", "from", "what", "which", "who",
    "how", "when", "where", "why", "been", "were", "would", "should", "could", "may", "also",
    "all", "any", "our", "your", "his", "her", "them", "those", "my", "me", "us",
];

fn stemmer() -> &'static Stemmer {
    static STEMMER: OnceLock<Stemmer> = OnceLock::new();
    STEMMER.get_or_init(|| Stemmer::create(Algorithm::English))
}

fn is_stop_word(word: &str) -> bool {
    STOP_WORDS.contains(&word)
}

/// The index terms of `text`: lower-cased runs of letters and digits, English stop words
/// dropped, each stemmed with the English Snowball stemmer. Words longer than 64 bytes are
/// dropped (they are not words).
pub fn analyze(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && w.len() <= 64)
        .map(str::to_lowercase)
        .filter(|w| !is_stop_word(w))
        .map(|w| stemmer().stem(&w).into_owned())
        .collect()
}

/// One document's terms as a [`KeywordIndex`] knows them: term ids with their counts
/// (sorted by id) and the document's length in terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TermCounts {
    terms: Vec<(u32, u32)>,
    len: u32,
}

impl TermCounts {
    /// The document's length in terms.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Whether the document had no terms.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn count(&self, term: u32) -> u32 {
        self.terms
            .binary_search_by_key(&term, |&(t, _)| t)
            .map_or(0, |i| self.terms[i].1)
    }
}

/// Corpus statistics for BM25, updated as documents are added and removed.
#[derive(Debug, Clone)]
pub struct KeywordIndex {
    vocabulary: HashMap<String, u32>,
    /// The term of each id (`None`: free), so a term no document has any more is dropped.
    terms: Vec<Option<String>>,
    /// Ids of dropped terms, reused before new ones.
    free: Vec<u32>,
    document_frequency: Vec<u32>,
    documents: u64,
    total_len: u64,
    k1: f32,
    b: f32,
}

impl Default for KeywordIndex {
    fn default() -> Self {
        Self::new()
    }
}

impl KeywordIndex {
    /// An empty index with Lucene's parameters (`k1 = 1.2`, `b = 0.75`).
    pub fn new() -> Self {
        KeywordIndex {
            vocabulary: HashMap::new(),
            terms: Vec::new(),
            free: Vec::new(),
            document_frequency: Vec::new(),
            documents: 0,
            total_len: 0,
            k1: DEFAULT_K1,
            b: DEFAULT_B,
        }
    }

    /// How many documents are indexed.
    pub fn len(&self) -> u64 {
        self.documents
    }

    /// Whether no document is indexed.
    pub fn is_empty(&self) -> bool {
        self.documents == 0
    }

    /// How many distinct terms the indexed documents have (a term no document has any more
    /// is forgotten, so the index does not grow with documents that came and went).
    pub fn vocabulary_len(&self) -> usize {
        self.vocabulary.len()
    }

    /// The id of `term`, assigned (a freed one first) when it is new.
    fn term_id(&mut self, term: String) -> u32 {
        if let Some(&id) = self.vocabulary.get(&term) {
            return id;
        }
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.document_frequency.push(0);
                self.terms.push(None);
                u32::try_from(self.terms.len() - 1).unwrap_or(u32::MAX)
            }
        };
        if let Some(slot) = self.terms.get_mut(id as usize) {
            *slot = Some(term.clone());
        }
        self.vocabulary.insert(term, id);
        id
    }

    /// Indexes a document's text; keep the returned counts to score it and to remove it.
    pub fn add(&mut self, text: &str) -> TermCounts {
        let mut counts: HashMap<u32, u32> = HashMap::new();
        let mut len = 0u32;
        for term in analyze(text) {
            let id = self.term_id(term);
            *counts.entry(id).or_insert(0) += 1;
            len = len.saturating_add(1);
        }
        for &id in counts.keys() {
            if let Some(df) = self.document_frequency.get_mut(id as usize) {
                *df += 1;
            }
        }
        let mut terms: Vec<(u32, u32)> = counts.into_iter().collect();
        terms.sort_unstable();
        self.documents += 1;
        self.total_len += u64::from(len);
        TermCounts { terms, len }
    }

    /// Removes a document added with [`add`](Self::add) (its counts as returned then).
    pub fn remove(&mut self, counts: &TermCounts) {
        for &(id, _) in &counts.terms {
            let Some(df) = self.document_frequency.get_mut(id as usize) else {
                continue;
            };
            *df = df.saturating_sub(1);
            if *df == 0 {
                if let Some(term) = self.terms.get_mut(id as usize).and_then(Option::take) {
                    self.vocabulary.remove(&term);
                    self.free.push(id);
                }
            }
        }
        self.documents = self.documents.saturating_sub(1);
        self.total_len = self.total_len.saturating_sub(u64::from(counts.len));
    }

    /// A query over the index as it is now: the analyzed terms of `text` with their IDFs
    /// (terms the index has never seen are dropped).
    pub fn query(&self, text: &str) -> KeywordQuery {
        let n = self.documents as f32;
        let mut terms: Vec<(u32, f32)> = Vec::new();
        for term in analyze(text) {
            let Some(&id) = self.vocabulary.get(&term) else {
                continue;
            };
            if terms.iter().any(|&(t, _)| t == id) {
                continue;
            }
            let df = self
                .document_frequency
                .get(id as usize)
                .copied()
                .unwrap_or(0) as f32;
            if df == 0.0 {
                continue;
            }
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            terms.push((id, idf));
        }
        let avg_len = if self.documents == 0 {
            1.0
        } else {
            (self.total_len as f32 / n).max(1.0)
        };
        KeywordQuery {
            terms,
            avg_len,
            k1: self.k1,
            b: self.b,
        }
    }
}

/// A keyword query bound to an index's statistics; see [`KeywordIndex::query`].
#[derive(Debug, Clone)]
pub struct KeywordQuery {
    terms: Vec<(u32, f32)>,
    avg_len: f32,
    k1: f32,
    b: f32,
}

impl KeywordQuery {
    /// Whether no query term is in the index (every score is 0).
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The BM25 score of a document; 0 when it has none of the query's terms.
    pub fn score(&self, doc: &TermCounts) -> f32 {
        let norm = self.k1 * (1.0 - self.b + self.b * doc.len as f32 / self.avg_len);
        self.terms
            .iter()
            .map(|&(id, idf)| {
                let tf = doc.count(id) as f32;
                if tf == 0.0 {
                    0.0
                } else {
                    idf * tf * (self.k1 + 1.0) / (tf + norm)
                }
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_and_stop_words() {
        assert_eq!(
            analyze("Connections connected; the CONNECTING of it"),
            vec!["connect", "connect", "connect"]
        );
        assert!(analyze("  ...  ").is_empty());
        assert_eq!(analyze("x".repeat(65).as_str()), Vec::<String>::new());
    }

    #[test]
    fn rarer_terms_weigh_more_and_removal_restores_the_statistics() {
        let mut index = KeywordIndex::new();
        let docs: Vec<TermCounts> = ["apple banana", "apple cherry", "apple banana cherry durian"]
            .iter()
            .map(|t| index.add(t))
            .collect();
        let q = index.query("apple durian");
        assert!(q.score(&docs[2]) > q.score(&docs[0]));
        let before = index.query("banana").score(&docs[0]);
        let extra = index.add("banana banana");
        index.remove(&extra);
        assert_eq!(index.query("banana").score(&docs[0]), before);
        assert!(index.query("unknownword").is_empty());
    }

    #[test]
    fn terms_of_removed_documents_are_forgotten_and_their_ids_reused_safely() {
        let mut index = KeywordIndex::new();
        let kept = index.add("postgres vacuum");
        let base = index.vocabulary_len();
        for i in 0..1000 {
            let counts = index.add(&format!("token{i}x ephemeral{i}y"));
            index.remove(&counts);
        }
        assert_eq!(
            index.vocabulary_len(),
            base,
            "the vocabulary grew with gone documents"
        );
        assert!(index.terms.len() <= base + 2, "{} ids", index.terms.len());
        // A new document reusing freed ids does not match the kept one's terms, and the kept
        // one still scores.
        let fresh = index.add("replication slot");
        let q = index.query("replication");
        assert!(q.score(&fresh) > 0.0);
        assert_eq!(q.score(&kept), 0.0);
        assert!(index.query("vacuum").score(&kept) > 0.0);
        assert!(index.query("ephemeral5y").is_empty());
    }
}
