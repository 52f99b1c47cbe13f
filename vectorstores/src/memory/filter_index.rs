//! Equality indexes over metadata, built on demand: the rows a filter selects without
//! evaluating it against every entry's metadata.
//!
//! A filtered search first needs the rows its filter selects. Evaluated entry by entry, that
//! walk touches every entry's metadata map (a cache miss or two each) and costs more than
//! scoring the vectors: at 10,000 chunks it was most of a gateway request's CPU, which
//! filters every retrieval by tenant. For `Eq` and `In` on string values — the tenant,
//! source, kind filters — an index from value to rows answers exactly, and `And` narrows to
//! the smallest indexed conjunct and checks the rest on those rows only.
//!
//! An index over one key is built the first time a filter on that key runs (one pass over
//! the entries) and kept until the next write changes the entries; a store that is written
//! between every search pays no more than the entry-by-entry walk it replaces.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use catena_core::backend::lookup;
use catena_core::Filter;
use serde_json::Value;

use super::Entry;

/// The rows (sorted) whose field is each string value, or an array holding it.
type Postings = HashMap<String, Vec<usize>>;

/// The equality indexes of one state of the entries, by metadata key.
#[derive(Debug, Default)]
pub(super) struct FilterIndex {
    by_key: Mutex<HashMap<String, Arc<Postings>>>,
}

impl FilterIndex {
    /// Forgets every index: the entries changed.
    pub(super) fn clear(&mut self) {
        self.by_key
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// The rows of `entries` that `filter` selects, in ascending order.
    pub(super) fn rows(&self, entries: &[Entry], filter: &Filter) -> Vec<usize> {
        match self.candidates(entries, filter) {
            Some((rows, true)) => rows,
            Some((rows, false)) => rows
                .into_iter()
                .filter(|&i| filter.matches(&entries[i].metadata))
                .collect(),
            None => (0..entries.len())
                .filter(|&i| filter.matches(&entries[i].metadata))
                .collect(),
        }
    }

    /// How many rows `filter` selects, when an index answers it exactly without listing the
    /// rows (`Eq` on a string value); `None` otherwise. (Only the HNSW search asks.)
    #[cfg(feature = "hnsw")]
    pub(super) fn count(&self, entries: &[Entry], filter: &Filter) -> Option<usize> {
        match filter {
            Filter::Eq(key, Value::String(value)) => {
                Some(self.postings(entries, key).get(value).map_or(0, Vec::len))
            }
            _ => None,
        }
    }

    /// A sorted superset of the rows `filter` selects, and whether it is exactly them; `None`
    /// when no index applies.
    fn candidates(&self, entries: &[Entry], filter: &Filter) -> Option<(Vec<usize>, bool)> {
        match filter {
            Filter::Eq(key, Value::String(value)) => {
                let postings = self.postings(entries, key);
                Some((postings.get(value).cloned().unwrap_or_default(), true))
            }
            Filter::In(key, values) if values.iter().all(Value::is_string) => {
                let postings = self.postings(entries, key);
                let mut rows: Vec<usize> = values
                    .iter()
                    .filter_map(|v| v.as_str().and_then(|v| postings.get(v)))
                    .flatten()
                    .copied()
                    .collect();
                rows.sort_unstable();
                rows.dedup();
                Some((rows, true))
            }
            Filter::And(parts) => {
                // The smallest indexed conjunct; every other conjunct is checked on its rows.
                let mut best: Option<(usize, Vec<usize>, bool)> = None;
                for (n, part) in parts.iter().enumerate() {
                    if let Some((rows, exact)) = self.candidates(entries, part) {
                        if best.as_ref().is_none_or(|(_, b, _)| rows.len() < b.len()) {
                            best = Some((n, rows, exact));
                        }
                    }
                }
                let (n, rows, exact) = best?;
                let rest: Vec<&Filter> = parts
                    .iter()
                    .enumerate()
                    .filter(|&(m, _)| m != n)
                    .map(|(_, f)| f)
                    .collect();
                if rest.is_empty() && exact {
                    return Some((rows, true));
                }
                let chosen = &parts[n];
                let rows = rows
                    .into_iter()
                    .filter(|&i| {
                        let metadata = &entries[i].metadata;
                        (exact || chosen.matches(metadata))
                            && rest.iter().all(|f| f.matches(metadata))
                    })
                    .collect();
                Some((rows, true))
            }
            _ => None,
        }
    }

    /// The postings of `key`, built now if this state has not built them yet.
    fn postings(&self, entries: &[Entry], key: &str) -> Arc<Postings> {
        let mut by_key = self.by_key.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(postings) = by_key.get(key) {
            return Arc::clone(postings);
        }
        let mut postings = Postings::new();
        for (i, entry) in entries.iter().enumerate() {
            match lookup(&entry.metadata, key) {
                Some(Value::String(s)) => postings.entry(s.clone()).or_default().push(i),
                Some(Value::Array(items)) => {
                    for item in items {
                        if let Value::String(s) = item {
                            let rows = postings.entry(s.clone()).or_default();
                            // An array may repeat a value: the row is listed once.
                            if rows.last() != Some(&i) {
                                rows.push(i);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        let postings = Arc::new(postings);
        by_key.insert(key.to_owned(), Arc::clone(&postings));
        postings
    }
}
