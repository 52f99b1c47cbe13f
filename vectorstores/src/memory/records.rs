//! [`FileRecordManager`]: ingest records (a [`RecordManager`]) kept in memory and in an
//! append-only file, so re-ingesting after a restart still writes only what changed.
//!
//! ```
//! use catena_core::{Record, RecordManager};
//! use catena_vectorstores::FileRecordManager;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("records.log");
//! let records = FileRecordManager::open(&path).unwrap();
//! records.update("ns", &[Record::new("k1", Some("a.md".into()))]).await.unwrap();
//! drop(records);
//! let reopened = FileRecordManager::open(&path).unwrap();
//! assert_eq!(reopened.exists("ns", &["k1".into()]).await.unwrap(), vec![true]);
//! # }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};

use async_trait::async_trait;
use catena_core::{Error, Record, RecordManager, Result};
use serde::{Deserialize, Serialize};

use super::log::{self, Contents, LogFile};

const FORMAT: &str = "catena-file-records";
const VERSION: u32 = 2;
/// Records per record-file record in a snapshot.
const SNAPSHOT_CHUNK: usize = 4096;

type Namespace = BTreeMap<String, Option<String>>;
type Namespaces = BTreeMap<String, Namespace>;

#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Op {
    Header {
        format: String,
        version: u32,
    },
    /// Puts `(key, group)` pairs into a namespace.
    Update {
        namespace: String,
        records: Vec<(String, Option<String>)>,
    },
    /// Removes keys from a namespace.
    Delete {
        namespace: String,
        keys: Vec<String>,
    },
}

fn encode(op: &Op) -> Result<Vec<u8>> {
    serde_json::to_vec(op).map_err(|e| Error::serialization("encoding a records entry", e))
}

/// About how many bytes a record takes in the file, for the compaction trigger.
fn weight(namespace: &str, key: &str, group: Option<&String>) -> usize {
    16 + namespace.len() + key.len() + group.map_or(4, String::len)
}

#[derive(Debug, Default)]
struct State {
    namespaces: Namespaces,
    live_bytes: usize,
}

impl State {
    fn apply(&mut self, op: Op) {
        match op {
            Op::Header { .. } => {}
            Op::Update { namespace, records } => {
                let ns = self.namespaces.entry(namespace.clone()).or_default();
                for (key, group) in records {
                    self.live_bytes += weight(&namespace, &key, group.as_ref());
                    if let Some(old) = ns.insert(key.clone(), group) {
                        self.live_bytes -= weight(&namespace, &key, old.as_ref());
                    }
                }
            }
            Op::Delete { namespace, keys } => {
                if let Some(ns) = self.namespaces.get_mut(&namespace) {
                    for key in keys {
                        if let Some(old) = ns.remove(&key) {
                            self.live_bytes -= weight(&namespace, &key, old.as_ref());
                        }
                    }
                    if ns.is_empty() {
                        self.namespaces.remove(&namespace);
                    }
                }
            }
        }
    }

    fn snapshot(&self) -> Result<Vec<Vec<u8>>> {
        let mut out = vec![encode(&Op::Header {
            format: FORMAT.into(),
            version: VERSION,
        })?];
        for (namespace, ns) in &self.namespaces {
            let all: Vec<(String, Option<String>)> =
                ns.iter().map(|(k, g)| (k.clone(), g.clone())).collect();
            for chunk in all.chunks(SNAPSHOT_CHUNK) {
                out.push(encode(&Op::Update {
                    namespace: namespace.clone(),
                    records: chunk.to_vec(),
                })?);
            }
        }
        Ok(out)
    }
}

/// Ingest records kept in memory and in an append-only file: the file-backed
/// [`RecordManager`] of the embedded setup (no database).
///
/// Each change appends **one record** to the file (with a length and CRC-32) and syncs it
/// before the call returns, so an acknowledged change survives a crash at any point and
/// costs the size of the change, not of the file. When the file grows past twice the live
/// records (plus 1 MiB), the next change rewrites it as a snapshot (temporary file, sync,
/// rename, directory sync). The file work runs on tokio's blocking pool (inline under other
/// executors); lookups only take the in-memory lock briefly and never wait for the disk.
///
/// A crash mid-append leaves a torn last record, which [`open`](Self::open) cuts off;
/// damage anywhere else is an [`Error::Io`] whose source is a
/// [`CorruptFile`](super::CorruptFile) naming the file. The file is created with mode 0600,
/// missing parent directories with 0700 (unix). An old-format file (one JSON object, as
/// written before) is read and rewritten in the new format by `open`.
#[derive(Debug)]
pub struct FileRecordManager {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    state: RwLock<State>,
    /// The open file; its lock orders the writers.
    log: Mutex<LogFile>,
}

impl FileRecordManager {
    /// Opens the records at `path`, creating the file when there is none. This blocks on
    /// file I/O.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read or written, or is damaged before its last
    /// record (source [`CorruptFile`](super::CorruptFile)); [`Error::Serialization`] for an
    /// invalid old-format file.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let mut state = State::default();
        let log = match log::read(&path)? {
            Contents::Missing => LogFile::create(&path, &state.snapshot()?)?,
            Contents::Legacy(bytes) => {
                let namespaces: Namespaces = serde_json::from_slice(&bytes).map_err(|e| {
                    Error::serialization(format!("{} is corrupt", path.display()), e)
                })?;
                for (namespace, ns) in namespaces {
                    state.apply(Op::Update {
                        namespace,
                        records: ns.into_iter().collect(),
                    });
                }
                LogFile::create(&path, &state.snapshot()?)?
            }
            Contents::Log(replay) => {
                let mut records = replay.records();
                match records.next().map(|(_, p)| serde_json::from_slice(p)) {
                    Some(Ok(Op::Header { format, version }))
                        if format == FORMAT && version == VERSION => {}
                    _ => return Err(log::corrupt(&path, 0, "no records header")),
                }
                for (at, payload) in records {
                    let op: Op = serde_json::from_slice(payload)
                        .map_err(|e| log::corrupt(&path, at, e.to_string()))?;
                    state.apply(op);
                }
                LogFile::append_to(&path, replay.valid_len)?
            }
        };
        Ok(FileRecordManager {
            inner: Arc::new(Inner {
                path,
                state: RwLock::new(state),
                log: Mutex::new(log),
            }),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Rewrites the file now as a snapshot of the live records (changes do this by
    /// themselves when the file grows past twice the live data).
    ///
    /// # Errors
    /// [`Error::Io`] when the snapshot cannot be written; the old file is then kept.
    pub async fn compact(&self) -> Result<()> {
        let inner = Arc::clone(&self.inner);
        log::blocking(move || {
            let mut log = inner.log.lock().unwrap_or_else(PoisonError::into_inner);
            inner.compact(&mut log)
        })
        .await
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.inner
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `plan` against the state; logs and applies the change it returns, if any.
    async fn change<T: Send + 'static>(
        &self,
        plan: impl FnOnce(&State) -> (Option<Op>, T) + Send + 'static,
    ) -> Result<T> {
        let inner = Arc::clone(&self.inner);
        log::blocking(move || inner.change(plan)).await
    }
}

impl Inner {
    fn change<T>(&self, plan: impl FnOnce(&State) -> (Option<Op>, T)) -> Result<T> {
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let (op, out) = plan(&self.state.read().unwrap_or_else(PoisonError::into_inner));
        let Some(op) = op else {
            return Ok(out);
        };
        log.append(&encode(&op)?)?;
        let live_bytes = {
            let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
            state.apply(op);
            state.live_bytes
        };
        if log::should_compact(log.len(), live_bytes as u64) {
            if let Err(e) = self.compact(&mut log) {
                tracing::warn!(error = %e, "file records: compaction failed");
            }
        }
        Ok(out)
    }

    fn compact(&self, log: &mut LogFile) -> Result<()> {
        let records = self
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .snapshot()?;
        *log = LogFile::create(&self.path, &records)?;
        Ok(())
    }
}

#[async_trait]
impl RecordManager for FileRecordManager {
    async fn exists(&self, namespace: &str, keys: &[String]) -> Result<Vec<bool>> {
        let state = self.read();
        let ns = state.namespaces.get(namespace);
        Ok(keys
            .iter()
            .map(|k| ns.is_some_and(|ns| ns.contains_key(k)))
            .collect())
    }

    async fn update(&self, namespace: &str, records: &[Record]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let op = Op::Update {
            namespace: namespace.to_owned(),
            records: records
                .iter()
                .map(|r| (r.key.clone(), r.group.clone()))
                .collect(),
        };
        self.change(move |_| (Some(op), ())).await
    }

    async fn list_keys(&self, namespace: &str, groups: Option<&[String]>) -> Result<Vec<String>> {
        let state = self.read();
        Ok(state
            .namespaces
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
        let (namespace, keys) = (namespace.to_owned(), keys.to_vec());
        self.change(move |state| {
            let Some(ns) = state.namespaces.get(&namespace) else {
                return (None, 0);
            };
            let mut seen = std::collections::HashSet::new();
            let keys: Vec<String> = keys
                .into_iter()
                .filter(|k| ns.contains_key(k) && seen.insert(k.clone()))
                .collect();
            let n = keys.len();
            let op = (n > 0).then_some(Op::Delete { namespace, keys });
            (op, n)
        })
        .await
    }
}
