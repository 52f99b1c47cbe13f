//! The ingest records of the embedded default (and of the Qdrant setup): a
//! [`FileRecordManager`] in `<data_dir>/records.json`, so re-ingesting after a restart still
//! writes only what changed.
//!
//! The manager lives in `catena_vectorstores` next to the in-memory store, whose durable
//! file format it shares: every change is one checksummed record appended to the file and
//! synced before the call returns, the file is compacted when it grows past twice the live
//! records, a record torn by a crash is cut off at the next start, and the file is private
//! to its owner (0600). An old-format `records.json` (one JSON object) is read and rewritten
//! in the new format on open. The name keeps its `.json` for existing data directories.
//!
//! ```
//! use catena_core::{Record, RecordManager};
//! use example_gateway::records::FileRecordManager;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("records.json");
//! let records = FileRecordManager::open(&path).unwrap();
//! records.update("ns", &[Record::new("k1", Some("a.md".into()))]).await.unwrap();
//! drop(records);
//! let reopened = FileRecordManager::open(&path).unwrap();
//! assert_eq!(reopened.exists("ns", &["k1".into()]).await.unwrap(), vec![true]);
//! # }
//! ```

pub use catena_vectorstores::FileRecordManager;
