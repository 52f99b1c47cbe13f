//! Checkpoints: the saved state of a long-running run (an agent's conversation, its finished
//! and in-flight tool calls, what it has spent), so another process can resume it.
//!
//! A [`Checkpointer`] keeps, per run id, a sequence of numbered checkpoints. Writes are
//! **compare-and-set on the step number**: [`Checkpointer::put`] with step `n` succeeds only
//! when the run's latest step is `n - 1` (or the run is new and `n` is 0), so two processes
//! resuming the same run cannot both advance it — the second gets
//! [`CheckpointError::Conflict`]. State is JSON, so any run shape can be kept.
//!
//! Implementations: [`InMemoryCheckpointer`] (tests, one process), [`FileCheckpointer`] (one
//! JSON-lines file per run, survives restarts of one machine), and the PostgreSQL
//! checkpointer of `catena-vectorstores` (feature `postgres`, shared by replicas).
//!
//! ```
//! use catena_core::{Checkpointer, InMemoryCheckpointer};
//! use serde_json::json;
//!
//! # futures::executor::block_on(async {
//! let saver = InMemoryCheckpointer::new();
//! saver.put("run-1", 0, &json!({"messages": 1})).await.unwrap();
//! saver.put("run-1", 1, &json!({"messages": 3})).await.unwrap();
//! // A second writer that read step 0 cannot overwrite step 1.
//! assert!(saver.put("run-1", 1, &json!({"messages": 2})).await.is_err());
//! let latest = saver.latest("run-1").await.unwrap().unwrap();
//! assert_eq!((latest.step, latest.state["messages"].as_u64()), (1, Some(3)));
//! # });
//! ```

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// One saved step of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Checkpoint {
    /// The run it belongs to.
    pub run_id: String,
    /// Its number: 0 for the first, then one more each time.
    pub step: u64,
    /// The run's state after that step.
    pub state: Value,
}

impl Checkpoint {
    /// Step `step` of `run_id` with `state` (for checkpointers outside this crate).
    pub fn new(run_id: impl Into<String>, step: u64, state: Value) -> Self {
        Checkpoint {
            run_id: run_id.into(),
            step,
            state,
        }
    }
}

/// Why a checkpoint was not written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// Another writer advanced the run first: its latest step is `latest`, not `step - 1`.
    #[error("run `{run_id}`: checkpoint {step} conflicts with the saved step {latest:?} (another process advanced the run)")]
    Conflict {
        /// The run.
        run_id: String,
        /// The step that was to be written.
        step: u64,
        /// The latest saved step, if any.
        latest: Option<u64>,
    },
}

impl From<CheckpointError> for Error {
    fn from(e: CheckpointError) -> Self {
        Error::Other {
            message: e.to_string(),
            source: Some(Box::new(e)),
        }
    }
}

impl Error {
    /// The checkpoint conflict inside this error, if it is one.
    pub fn as_checkpoint_conflict(&self) -> Option<&CheckpointError> {
        match self {
            Error::Other {
                source: Some(s), ..
            } => s.downcast_ref::<CheckpointError>(),
            _ => None,
        }
    }
}

/// Checks a run id: 1 to 200 characters of `[A-Za-z0-9._:-]` (they end up in file names,
/// SQL rows and URLs).
///
/// # Errors
/// [`Error::InvalidInput`] naming the problem.
pub fn validate_run_id(run_id: &str) -> Result<()> {
    if run_id.is_empty() || run_id.len() > 200 {
        return Err(Error::invalid_input("a run id has 1 to 200 characters"));
    }
    if !run_id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
        || run_id.starts_with('.')
    {
        return Err(Error::invalid_input(
            "a run id may only contain letters, digits, '.', '_', ':' and '-' (not first '.')",
        ));
    }
    Ok(())
}

/// Where runs keep their checkpoints ([`InMemoryCheckpointer`], [`FileCheckpointer`], and
/// PostgreSQL in `catena-vectorstores`); writes are compare-and-set on the step number.
#[async_trait]
pub trait Checkpointer: Send + Sync {
    /// Saves `state` as step `step` of `run_id`: `step` must be 0 for a new run and one more
    /// than the latest step otherwise.
    ///
    /// # Errors
    /// [`CheckpointError::Conflict`] (inside [`Error::Other`]) when `step` is not the next
    /// one; [`Error::InvalidInput`] for a bad run id; the store's own errors.
    async fn put(&self, run_id: &str, step: u64, state: &Value) -> Result<()>;

    /// The latest checkpoint of `run_id`, or `None` for an unknown run.
    ///
    /// # Errors
    /// The store's errors.
    async fn latest(&self, run_id: &str) -> Result<Option<Checkpoint>>;

    /// Every checkpoint of `run_id` from step `from` on, oldest first.
    ///
    /// # Errors
    /// The store's errors.
    async fn history(&self, run_id: &str, from: u64) -> Result<Vec<Checkpoint>>;

    /// Forgets `run_id` (nothing happens for an unknown run).
    ///
    /// # Errors
    /// The store's errors.
    async fn delete(&self, run_id: &str) -> Result<()>;
}

/// Checkpoints in memory, for tests and single-process programs.
#[derive(Debug, Default)]
pub struct InMemoryCheckpointer {
    runs: Mutex<HashMap<String, Vec<Checkpoint>>>,
}

impl InMemoryCheckpointer {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Checkpoint>>> {
        self.runs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn check_next(run_id: &str, step: u64, latest: Option<u64>) -> Result<()> {
    let expected = latest.map_or(0, |l| l + 1);
    if step != expected {
        return Err(CheckpointError::Conflict {
            run_id: run_id.to_owned(),
            step,
            latest,
        }
        .into());
    }
    Ok(())
}

#[async_trait]
impl Checkpointer for InMemoryCheckpointer {
    async fn put(&self, run_id: &str, step: u64, state: &Value) -> Result<()> {
        validate_run_id(run_id)?;
        let mut runs = self.lock();
        let run = runs.entry(run_id.to_owned()).or_default();
        check_next(run_id, step, run.last().map(|c| c.step))?;
        run.push(Checkpoint {
            run_id: run_id.to_owned(),
            step,
            state: state.clone(),
        });
        Ok(())
    }

    async fn latest(&self, run_id: &str) -> Result<Option<Checkpoint>> {
        Ok(self.lock().get(run_id).and_then(|r| r.last().cloned()))
    }

    async fn history(&self, run_id: &str, from: u64) -> Result<Vec<Checkpoint>> {
        Ok(self
            .lock()
            .get(run_id)
            .map(|r| r.iter().filter(|c| c.step >= from).cloned().collect())
            .unwrap_or_default())
    }

    async fn delete(&self, run_id: &str) -> Result<()> {
        self.lock().remove(run_id);
        Ok(())
    }
}

/// Checkpoints as files: one JSON-lines file per run in a directory, each line one
/// checkpoint, appended and flushed to disk (`fsync`) before [`put`](Checkpointer::put)
/// returns. Survives a crash of the process (a torn last line is ignored on reading). The
/// file work is blocking and each `put` reads the run's file to find its latest step: fine
/// for runs of hundreds of steps on one machine. Writers are serialised by a lock of this
/// instance only — two instances (or processes) on one directory can both write a step, so
/// use one instance per directory, and the PostgreSQL checkpointer for replicas.
#[derive(Debug)]
pub struct FileCheckpointer {
    dir: PathBuf,
    /// Serialises writers of this process (the file work is synchronous: never held across
    /// an await).
    lock: Mutex<()>,
}

impl FileCheckpointer {
    /// Keeps checkpoints in `dir` (created if missing).
    ///
    /// # Errors
    /// [`Error::Io`] when the directory cannot be created.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| {
            Error::io(
                format!("creating checkpoint directory {}", dir.display()),
                e,
            )
        })?;
        Ok(FileCheckpointer {
            dir,
            lock: Mutex::new(()),
        })
    }

    fn path(&self, run_id: &str) -> PathBuf {
        self.dir.join(format!("{run_id}.jsonl"))
    }

    fn read(path: &Path, run_id: &str) -> Result<Vec<Checkpoint>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
        };
        let mut out: Vec<Checkpoint> = Vec::new();
        for line in text.lines() {
            // A line cut by a crash mid-write does not parse: it was never acknowledged.
            let Ok(c) = serde_json::from_str::<Checkpoint>(line) else {
                continue;
            };
            if c.run_id == run_id && out.last().is_none_or(|l| c.step == l.step + 1) {
                out.push(c);
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl Checkpointer for FileCheckpointer {
    async fn put(&self, run_id: &str, step: u64, state: &Value) -> Result<()> {
        validate_run_id(run_id)?;
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let path = self.path(run_id);
        let existing = Self::read(&path, run_id)?;
        check_next(run_id, step, existing.last().map(|c| c.step))?;
        let mut line = serde_json::to_string(&Checkpoint {
            run_id: run_id.to_owned(),
            step,
            state: state.clone(),
        })
        .map_err(|e| Error::serialization("encoding a checkpoint", e))?;
        line.push('\n');
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            // A torn line left by an earlier crash must not swallow this one.
            let len = f.metadata()?.len();
            if len > 0 {
                use std::io::{Read, Seek, SeekFrom};
                let mut last = [0u8; 1];
                let mut r = std::fs::File::open(&path)?;
                r.seek(SeekFrom::Start(len - 1))?;
                r.read_exact(&mut last)?;
                if last[0] != b'\n' {
                    f.write_all(b"\n")?;
                }
            }
            f.write_all(line.as_bytes())?;
            f.sync_data()
        };
        write().map_err(|e| Error::io(format!("writing {}", path.display()), e))
    }

    async fn latest(&self, run_id: &str) -> Result<Option<Checkpoint>> {
        validate_run_id(run_id)?;
        Ok(Self::read(&self.path(run_id), run_id)?.pop())
    }

    async fn history(&self, run_id: &str, from: u64) -> Result<Vec<Checkpoint>> {
        validate_run_id(run_id)?;
        let mut all = Self::read(&self.path(run_id), run_id)?;
        all.retain(|c| c.step >= from);
        Ok(all)
    }

    async fn delete(&self, run_id: &str) -> Result<()> {
        validate_run_id(run_id)?;
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match std::fs::remove_file(self.path(run_id)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("deleting a checkpoint file", e)),
        }
    }
}

#[async_trait]
impl<T: Checkpointer + ?Sized> Checkpointer for std::sync::Arc<T> {
    async fn put(&self, run_id: &str, step: u64, state: &Value) -> Result<()> {
        (**self).put(run_id, step, state).await
    }
    async fn latest(&self, run_id: &str) -> Result<Option<Checkpoint>> {
        (**self).latest(run_id).await
    }
    async fn history(&self, run_id: &str, from: u64) -> Result<Vec<Checkpoint>> {
        (**self).history(run_id, from).await
    }
    async fn delete(&self, run_id: &str) -> Result<()> {
        (**self).delete(run_id).await
    }
}

#[cfg(all(test, feature = "test-utils"))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_in_memory_and_file_checkpointers_conform() {
        crate::test_utils::checkpointer_conformance(&InMemoryCheckpointer::new()).await;
        let dir = tempfile::tempdir().unwrap();
        crate::test_utils::checkpointer_conformance(&FileCheckpointer::new(dir.path()).unwrap())
            .await;
    }

    #[tokio::test]
    async fn a_torn_last_line_is_ignored_and_the_next_write_lands() {
        let dir = tempfile::tempdir().unwrap();
        let saver = FileCheckpointer::new(dir.path()).unwrap();
        saver
            .put("r", 0, &serde_json::json!({"a": 1}))
            .await
            .unwrap();
        // A crash in the middle of writing step 1.
        let path = dir.path().join("r.jsonl");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(br#"{"run_id":"r","step":1,"sta"#).unwrap();
        drop(f);
        assert_eq!(saver.latest("r").await.unwrap().unwrap().step, 0);
        saver
            .put("r", 1, &serde_json::json!({"a": 2}))
            .await
            .unwrap();
        let again = FileCheckpointer::new(dir.path()).unwrap();
        assert_eq!(again.latest("r").await.unwrap().unwrap().state["a"], 2);
        assert_eq!(again.history("r", 0).await.unwrap().len(), 2);
    }
}
