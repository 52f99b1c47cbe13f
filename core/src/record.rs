//! Ingest records: which documents were written to a vector store, per namespace, so an
//! incremental indexer (`catena_chains::index`) re-writes only what changed.
//!
//! A [`RecordManager`] keeps one [`Record`] per written document: its key (the document's
//! id in the store) and its group (the source it came from). [`InMemoryRecordManager`]
//! keeps them in process memory; `catena_vectorstores::PostgresRecordManager` (feature
//! `postgres`) in a PostgreSQL table.
//!
//! ```
//! use catena_core::{InMemoryRecordManager, Record, RecordManager};
//!
//! # futures::executor::block_on(async {
//! let records = InMemoryRecordManager::new();
//! records
//!     .update("faq", &[Record::new("k1", Some("faq.md".into())), Record::new("k2", None)])
//!     .await
//!     .unwrap();
//! let keys = ["k1".to_owned(), "k3".to_owned()];
//! assert_eq!(records.exists("faq", &keys).await.unwrap(), [true, false]);
//! assert_eq!(records.list_keys("faq", Some(&["faq.md".to_owned()])).await.unwrap(), ["k1"]);
//! assert_eq!(records.delete_keys("faq", &keys).await.unwrap(), 1);
//! # });
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// One record: a written document's key and the source (group) it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Record {
    /// The document's key (its id in the vector store).
    pub key: String,
    /// The source it came from, when it has one.
    pub group: Option<String>,
}

impl Record {
    /// A record of `key` from `group`.
    pub fn new(key: impl Into<String>, group: Option<String>) -> Self {
        Record {
            key: key.into(),
            group,
        }
    }
}

/// Remembers which documents were written to a vector store, per namespace (use one
/// namespace per store or collection). Each record also carries the time it was last
/// written, stamped by the manager.
#[async_trait]
pub trait RecordManager: Send + Sync {
    /// Which of `keys` are recorded, in order.
    ///
    /// # Errors
    /// Backend failures.
    async fn exists(&self, namespace: &str, keys: &[String]) -> Result<Vec<bool>>;

    /// Inserts or refreshes records (their group and `updated_at`, set to now).
    ///
    /// # Errors
    /// Backend failures; nothing is recorded then.
    async fn update(&self, namespace: &str, records: &[Record]) -> Result<()>;

    /// The recorded keys of the namespace, only those of `groups` when given.
    ///
    /// # Errors
    /// Backend failures.
    async fn list_keys(&self, namespace: &str, groups: Option<&[String]>) -> Result<Vec<String>>;

    /// Deletes records; returns how many existed.
    ///
    /// # Errors
    /// Backend failures.
    async fn delete_keys(&self, namespace: &str, keys: &[String]) -> Result<usize>;
}

#[async_trait]
impl<T: RecordManager + ?Sized> RecordManager for Arc<T> {
    async fn exists(&self, namespace: &str, keys: &[String]) -> Result<Vec<bool>> {
        (**self).exists(namespace, keys).await
    }
    async fn update(&self, namespace: &str, records: &[Record]) -> Result<()> {
        (**self).update(namespace, records).await
    }
    async fn list_keys(&self, namespace: &str, groups: Option<&[String]>) -> Result<Vec<String>> {
        (**self).list_keys(namespace, groups).await
    }
    async fn delete_keys(&self, namespace: &str, keys: &[String]) -> Result<usize> {
        (**self).delete_keys(namespace, keys).await
    }
}

#[async_trait]
impl<T: RecordManager + ?Sized> RecordManager for Box<T> {
    async fn exists(&self, namespace: &str, keys: &[String]) -> Result<Vec<bool>> {
        (**self).exists(namespace, keys).await
    }
    async fn update(&self, namespace: &str, records: &[Record]) -> Result<()> {
        (**self).update(namespace, records).await
    }
    async fn list_keys(&self, namespace: &str, groups: Option<&[String]>) -> Result<Vec<String>> {
        (**self).list_keys(namespace, groups).await
    }
    async fn delete_keys(&self, namespace: &str, keys: &[String]) -> Result<usize> {
        (**self).delete_keys(namespace, keys).await
    }
}

/// The records of one namespace: key → (group, updated_at).
type Namespace = BTreeMap<String, (Option<String>, SystemTime)>;

/// A [`RecordManager`] in process memory; lost when the process exits.
#[derive(Debug, Default)]
pub struct InMemoryRecordManager {
    records: Mutex<HashMap<String, Namespace>>,
}

impl InMemoryRecordManager {
    /// An empty manager.
    pub fn new() -> Self {
        Self::default()
    }

    /// When `key` was last written, if it is recorded.
    pub fn updated_at(&self, namespace: &str, key: &str) -> Option<SystemTime> {
        let records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        records.get(namespace)?.get(key).map(|(_, t)| *t)
    }
}

#[async_trait]
impl RecordManager for InMemoryRecordManager {
    async fn exists(&self, namespace: &str, keys: &[String]) -> Result<Vec<bool>> {
        let records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        let ns = records.get(namespace);
        Ok(keys
            .iter()
            .map(|k| ns.is_some_and(|ns| ns.contains_key(k)))
            .collect())
    }

    async fn update(&self, namespace: &str, new: &[Record]) -> Result<()> {
        let now = SystemTime::now();
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        let ns = records.entry(namespace.to_owned()).or_default();
        for r in new {
            ns.insert(r.key.clone(), (r.group.clone(), now));
        }
        Ok(())
    }

    async fn list_keys(&self, namespace: &str, groups: Option<&[String]>) -> Result<Vec<String>> {
        let records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(ns) = records.get(namespace) else {
            return Ok(Vec::new());
        };
        Ok(ns
            .iter()
            .filter(|(_, (g, _))| match groups {
                None => true,
                Some(groups) => g.as_ref().is_some_and(|g| groups.contains(g)),
            })
            .map(|(k, _)| k.clone())
            .collect())
    }

    async fn delete_keys(&self, namespace: &str, keys: &[String]) -> Result<usize> {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(ns) = records.get_mut(namespace) else {
            return Ok(0);
        };
        Ok(keys.iter().filter(|k| ns.remove(*k).is_some()).count())
    }
}
