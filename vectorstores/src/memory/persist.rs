//! The in-memory store's file: a [log](super::log) of JSON records.
//!
//! The first record is a header (format, version, metric, dimension); each later one is a
//! batch: the documents an upsert wrote and/or the ids a delete removed, applied in order.
//! A snapshot (what compaction and `save` write) is the header and the live documents in
//! batches of [`SNAPSHOT_CHUNK`]. The old format, one JSON object (`version` 1), is still
//! read; the store rewrites it as a log when it opens it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use catena_core::backend::validate_vector;
use catena_core::{DocumentId, Error, Result};
use serde::{Deserialize, Serialize};

use super::filter_index::FilterIndex;
use super::log::{self, Contents};
use super::{norm, same_metadata, DistanceMetric, Entry, State};

const FORMAT: &str = "catena-in-memory-vector-store";
/// The old format: one JSON snapshot.
const LEGACY_VERSION: u32 = 1;
/// The log format.
const VERSION: u32 = 2;
/// Documents per record in a snapshot.
const SNAPSHOT_CHUNK: usize = 1024;

/// One write: documents to put (replacing equal ids) and ids to remove, in that order, and
/// the store's dimension when the write sets it.
#[derive(Debug, Default)]
pub(super) struct Batch {
    pub(super) dimensions: Option<usize>,
    pub(super) upsert: Vec<Entry>,
    pub(super) delete: Vec<DocumentId>,
}

impl Batch {
    pub(super) fn is_empty(&self) -> bool {
        self.dimensions.is_none() && self.upsert.is_empty() && self.delete.is_empty()
    }
}

#[derive(Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum OpRef<'a> {
    Header {
        format: &'a str,
        version: u32,
        metric: DistanceMetric,
        dimensions: Option<usize>,
    },
    Batch {
        #[serde(skip_serializing_if = "Option::is_none")]
        dimensions: Option<usize>,
        #[serde(skip_serializing_if = "<[Entry]>::is_empty")]
        upsert: &'a [Entry],
        #[serde(skip_serializing_if = "<[DocumentId]>::is_empty")]
        delete: &'a [DocumentId],
    },
}

#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Op {
    Header {
        format: String,
        version: u32,
        metric: DistanceMetric,
        dimensions: Option<usize>,
    },
    Batch {
        #[serde(default)]
        dimensions: Option<usize>,
        #[serde(default)]
        upsert: Vec<Entry>,
        #[serde(default)]
        delete: Vec<DocumentId>,
    },
}

fn encode(op: &OpRef<'_>) -> Result<Vec<u8>> {
    serde_json::to_vec(op).map_err(|e| Error::serialization("encoding a store record", e))
}

/// The record for one write.
pub(super) fn encode_batch(batch: &Batch) -> Result<Vec<u8>> {
    encode(&OpRef::Batch {
        dimensions: batch.dimensions,
        upsert: &batch.upsert,
        delete: &batch.delete,
    })
}

/// The records of a snapshot of `state`.
pub(super) fn snapshot(metric: DistanceMetric, state: &State) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::with_capacity(1 + state.entries.len() / SNAPSHOT_CHUNK + 1);
    out.push(encode(&OpRef::Header {
        format: FORMAT,
        version: VERSION,
        metric,
        dimensions: state.dimensions,
    })?);
    let n = state.entries.len();
    for start in (0..n).step_by(SNAPSHOT_CHUNK) {
        let chunk: Vec<Entry> = (start..n.min(start + SNAPSHOT_CHUNK))
            .map(|i| state.with_vector(i))
            .collect();
        out.push(encode(&OpRef::Batch {
            dimensions: None,
            upsert: &chunk,
            delete: &[],
        })?);
    }
    Ok(out)
}

/// A store read back from its file.
#[derive(Debug)]
pub(super) struct Loaded {
    pub(super) metric: DistanceMetric,
    pub(super) state: State,
    /// Where appending continues; `None` for an old-format file, which must be rewritten.
    pub(super) valid_len: Option<u64>,
}

/// Reads the store at `path`; `None` when there is no file.
///
/// # Errors
/// [`Error::Io`] when it cannot be read or is damaged before its last record (source
/// [`log::CorruptFile`]); [`Error::Serialization`] for an old-format file that is invalid.
pub(super) fn load(path: &Path) -> Result<Option<Loaded>> {
    match log::read(path)? {
        Contents::Missing => Ok(None),
        Contents::Legacy(bytes) => {
            let snap: Snapshot = serde_json::from_slice(&bytes)
                .map_err(|e| Error::serialization(format!("reading {}", path.display()), e))?;
            let metric = snap.metric;
            Ok(Some(Loaded {
                metric,
                state: snap.into_state()?,
                valid_len: None,
            }))
        }
        Contents::Log(replay) => {
            let mut records = replay.records();
            let Some((_, first)) = records.next() else {
                return Err(log::corrupt(path, 0, "no header record"));
            };
            let (metric, dimensions) = match serde_json::from_slice(first) {
                Ok(Op::Header {
                    format,
                    version,
                    metric,
                    dimensions,
                }) if format == FORMAT && version == VERSION => (metric, dimensions),
                Ok(Op::Header {
                    format, version, ..
                }) => {
                    return Err(Error::invalid_config(format!(
                    "{} holds `{format}` version {version}, not a vector store this version reads",
                    path.display()
                )))
                }
                _ => return Err(log::corrupt(path, 0, "no header record")),
            };
            let mut state = State {
                dimensions,
                ..State::default()
            };
            for (at, payload) in records {
                let bad = |m: String| log::corrupt(path, at, m);
                let Ok(Op::Batch {
                    dimensions,
                    upsert,
                    delete,
                }) = serde_json::from_slice(payload)
                else {
                    return Err(bad("not a batch record".into()));
                };
                let mut batch = Batch {
                    dimensions,
                    upsert,
                    delete,
                };
                if let (Some(have), Some(claimed)) = (state.dimensions, batch.dimensions) {
                    if have != claimed {
                        return Err(bad(format!(
                            "a batch of {claimed}-dimensional vectors in a file of {have}"
                        )));
                    }
                }
                let mut dims = batch.dimensions.or(state.dimensions);
                for e in &mut batch.upsert {
                    validate_vector(&e.vector).map_err(|err| bad(format!("`{}`: {err}", e.id)))?;
                    if dims.is_some_and(|d| d != e.vector.len()) {
                        return Err(bad(format!("`{}` has {} dimensions", e.id, e.vector.len())));
                    }
                    dims = Some(e.vector.len());
                    e.prepare();
                }
                batch.dimensions = dims.filter(|_| state.dimensions.is_none());
                state.apply(batch);
            }
            Ok(Some(Loaded {
                metric,
                state,
                valid_len: Some(replay.valid_len),
            }))
        }
    }
}

/// The old format: one JSON object.
#[derive(Deserialize)]
struct Snapshot {
    format: String,
    version: u32,
    metric: DistanceMetric,
    dimensions: Option<usize>,
    entries: Vec<Entry>,
}

impl Snapshot {
    /// Checks the snapshot and rebuilds the in-memory state.
    fn into_state(self) -> Result<State> {
        let bad = |m: String| Error::serialization(m, "invalid snapshot");
        if self.format != FORMAT {
            return Err(bad(format!(
                "not a Catena vector store file (format `{}`)",
                self.format
            )));
        }
        if self.version != LEGACY_VERSION {
            return Err(bad(format!(
                "unsupported snapshot version {}",
                self.version
            )));
        }
        let mut index = HashMap::with_capacity(self.entries.len());
        let mut entries = self.entries;
        let dimensions = self
            .dimensions
            .or_else(|| entries.first().map(|e| e.vector.len()));
        let mut live_bytes = 0;
        let mut arena = Vec::with_capacity(entries.len() * dimensions.unwrap_or(0));
        for (i, e) in entries.iter_mut().enumerate() {
            validate_vector(&e.vector).map_err(|err| bad(format!("entry {i}: {err}")))?;
            if dimensions.is_some_and(|d| d != e.vector.len()) {
                return Err(bad(format!("entry {i} has {} dimensions", e.vector.len())));
            }
            if index.insert(e.id.clone(), i).is_some() {
                return Err(bad(format!("duplicate id `{}`", e.id)));
            }
            e.norm = norm(&e.vector);
            e.prepare();
            live_bytes += e.weight;
            arena.extend_from_slice(&std::mem::take(&mut e.vector));
        }
        // A snapshot (the older file format) holds a map per entry: equal metadata of
        // consecutive entries is shared again, as writes share it (a log's replay shares
        // through `State::insert`).
        for i in 1..entries.len() {
            if let [before, e] = &mut entries[i - 1..=i] {
                if same_metadata(&before.metadata, &e.metadata) {
                    e.metadata = Arc::clone(&before.metadata);
                }
            }
        }
        Ok(State {
            dimensions,
            norms: entries.iter().map(|e| e.norm).collect(),
            entries,
            arena: super::arena::Arena::F32(arena),
            index,
            live_bytes,
            // Built by the first keyword search.
            keywords: OnceLock::new(),
            filters: FilterIndex::default(),
            // The graph is not saved: the builder builds it again.
            #[cfg(feature = "hnsw")]
            hnsw: None,
            // Nor are the int8 codes: the builder codes the loaded rows again.
            quant: None,
        })
    }
}
