//! The snapshot file of the in-memory store: versioned JSON, written atomically.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use catena_core::backend::validate_vector;
use catena_core::{Error, Result};
use serde::{Deserialize, Serialize};

use super::{norm, DistanceMetric, Entry, State};

const FORMAT: &str = "catena-in-memory-vector-store";
const VERSION: u32 = 1;

/// Makes temporary file names unique, so concurrent saves never share one.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

#[derive(Serialize)]
struct SnapshotRef<'a> {
    format: &'static str,
    version: u32,
    metric: DistanceMetric,
    dimensions: Option<usize>,
    entries: &'a [Entry],
}

#[derive(Deserialize)]
pub(super) struct Snapshot {
    format: String,
    version: u32,
    pub(super) metric: DistanceMetric,
    pub(super) dimensions: Option<usize>,
    entries: Vec<Entry>,
}

impl Snapshot {
    /// Checks the snapshot and rebuilds the in-memory state.
    pub(super) fn into_state(self) -> Result<State> {
        let bad = |m: String| Error::serialization(m, "invalid snapshot");
        if self.format != FORMAT {
            return Err(bad(format!(
                "not a Catena vector store file (format `{}`)",
                self.format
            )));
        }
        if self.version != VERSION {
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
        for (i, e) in entries.iter_mut().enumerate() {
            validate_vector(&e.vector).map_err(|err| bad(format!("entry {i}: {err}")))?;
            if dimensions.is_some_and(|d| d != e.vector.len()) {
                return Err(bad(format!("entry {i} has {} dimensions", e.vector.len())));
            }
            if index.insert(e.id.clone(), i).is_some() {
                return Err(bad(format!("duplicate id `{}`", e.id)));
            }
            e.norm = norm(&e.vector);
        }
        Ok(State {
            dimensions,
            entries,
            index,
        })
    }
}

pub(super) fn read(path: &Path) -> Result<Snapshot> {
    let file = File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    serde_json::from_reader(BufReader::new(file))
        .map_err(|e| Error::serialization(format!("reading {}", path.display()), e))
}

/// Writes to a sibling temporary file, syncs it, then renames it over `path`, so a crash
/// leaves either the old file or the new one, never half of one.
pub(super) fn write(path: &Path, metric: DistanceMetric, state: &State) -> Result<()> {
    let io = |what: &str, e| Error::io(format!("{what} {}", path.display()), e);
    let file_name = path
        .file_name()
        .ok_or_else(|| Error::invalid_input(format!("{} is not a file path", path.display())))?;
    let mut tmp_name = file_name.to_os_string();
    tmp_name.push(format!(
        ".{}.{}.tmp",
        std::process::id(),
        TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let permissions = fs::metadata(path).ok().map(|m| m.permissions());
    let tmp = path.with_file_name(tmp_name);
    let snap = SnapshotRef {
        format: FORMAT,
        version: VERSION,
        metric,
        dimensions: state.dimensions,
        entries: &state.entries,
    };
    let result = (|| {
        let file = File::create(&tmp).map_err(|e| io("creating a temporary file for", e))?;
        let mut w = BufWriter::new(file);
        serde_json::to_writer(&mut w, &snap)
            .map_err(|e| Error::serialization(format!("writing {}", path.display()), e))?;
        w.flush().map_err(|e| io("writing", e))?;
        if let Some(p) = permissions {
            fs::set_permissions(&tmp, p).map_err(|e| io("keeping the permissions of", e))?;
        }
        w.get_ref().sync_all().map_err(|e| io("syncing", e))?;
        fs::rename(&tmp, path).map_err(|e| io("replacing", e))?;
        // Make the rename itself durable.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
