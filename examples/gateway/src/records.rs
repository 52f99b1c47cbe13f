//! A file-backed [`RecordManager`] for the embedded default, so re-ingesting after a restart
//! still writes only what changed.
//!
//! ```
//! use catena_core::{Record, RecordManager};
//! use example_gateway::records::FileRecordManager;
//!
//! # futures::executor::block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("records.json");
//! let records = FileRecordManager::open(&path).unwrap();
//! records.update("ns", &[Record::new("k1", Some("a.md".into()))]).await.unwrap();
//! let reopened = FileRecordManager::open(&path).unwrap();
//! assert_eq!(reopened.exists("ns", &["k1".into()]).await.unwrap(), vec![true]);
//! # });
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use catena_core::{Error, Result};
use catena_core::{Record, RecordManager};

type Namespaces = BTreeMap<String, BTreeMap<String, Option<String>>>;

/// Records kept in memory and written to a JSON file (atomically: temp file, then rename)
/// after every change. A failed write rolls the change back.
#[derive(Debug)]
pub struct FileRecordManager {
    path: PathBuf,
    state: Mutex<Namespaces>,
}

impl FileRecordManager {
    /// Opens (or starts) the records at `path`.
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Serialization`] when the file exists but cannot be read.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let state = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| Error::serialization(format!("{} is corrupt", path.display()), e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Namespaces::new(),
            Err(e) => return Err(Error::io(format!("cannot read {}", path.display()), e)),
        };
        Ok(FileRecordManager {
            path,
            state: Mutex::new(state),
        })
    }

    fn write(path: &Path, state: &Namespaces) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
        }
        let bytes = serde_json::to_vec(state)
            .map_err(|e| Error::serialization("cannot encode the records", e))?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
    }

    fn change<T>(&self, f: impl FnOnce(&mut Namespaces) -> T) -> Result<T> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let before = state.clone();
        let out = f(&mut state);
        if let Err(e) = Self::write(&self.path, &state) {
            *state = before;
            return Err(e);
        }
        Ok(out)
    }
}

#[async_trait]
impl RecordManager for FileRecordManager {
    async fn exists(&self, namespace: &str, keys: &[String]) -> Result<Vec<bool>> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let ns = state.get(namespace);
        Ok(keys
            .iter()
            .map(|k| ns.is_some_and(|ns| ns.contains_key(k)))
            .collect())
    }

    async fn update(&self, namespace: &str, records: &[Record]) -> Result<()> {
        self.change(|state| {
            let ns = state.entry(namespace.to_owned()).or_default();
            for r in records {
                ns.insert(r.key.clone(), r.group.clone());
            }
        })
    }

    async fn list_keys(&self, namespace: &str, groups: Option<&[String]>) -> Result<Vec<String>> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        Ok(state
            .get(namespace)
            .map(|ns| {
                ns.iter()
                    .filter(|(_, g)| match groups {
                        None => true,
                        Some(groups) => g.as_ref().is_some_and(|g| groups.contains(g)),
                    })
                    .map(|(k, _)| k.clone())
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn delete_keys(&self, namespace: &str, keys: &[String]) -> Result<usize> {
        self.change(|state| match state.get_mut(namespace) {
            Some(ns) => keys.iter().filter(|k| ns.remove(*k).is_some()).count(),
            None => 0,
        })
    }
}
