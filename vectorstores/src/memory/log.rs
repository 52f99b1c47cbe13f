//! The durable file format the file-backed stores share: an append-only log of
//! checksummed records, compacted by rewriting a snapshot.
//!
//! A file is the 8-byte [`MAGIC`] followed by records. Each record is a 12-byte header
//! (payload length, CRC-32 of the length bytes, CRC-32 of the payload; all little-endian
//! `u32`) and the payload. [`LogFile::append`] writes one record and syncs it before it
//! returns; [`LogFile::create`] writes a whole new file (snapshot) to a temporary sibling,
//! syncs it, renames it over the old one and syncs the directory, so a crash leaves the old
//! file or the new one.
//!
//! [`read`] tells a crash mid-append (a torn last record: a header or payload cut short, a
//! checksum that fails on the last record, a zero-filled tail) from damage in the middle
//! (a [`CorruptFile`] error): the torn tail is reported so the opener cuts it off, since its
//! write was never acknowledged.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use catena_core::{Error, Result};

/// The first bytes of every log file. An old-format snapshot starts with `{` instead.
pub(crate) const MAGIC: &[u8; 8] = b"CATENA\x00\x01";
/// Record header: length, CRC-32 of the length, CRC-32 of the payload.
const HEADER: usize = 12;
/// Larger lengths are damage, not data.
const MAX_RECORD: usize = 1 << 30;
/// Compaction waits until the file holds at least this much beyond twice the live data.
const COMPACT_SLACK: u64 = 1 << 20;

/// Makes temporary file names unique, so concurrent snapshots never share one.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A store file damaged somewhere other than its last record: the source of the
/// [`Error::Io`] (kind [`io::ErrorKind::InvalidData`]) that opening it returns.
///
/// A crash mid-write only ever damages the last record, which opening cuts off by itself;
/// this error means the disk or someone else changed the file, so nothing is guessed.
///
/// ```
/// use catena_vectorstores::CorruptFile;
///
/// fn damaged_file(err: &catena_core::Error) -> Option<&CorruptFile> {
///     match err {
///         catena_core::Error::Io { source, .. } => source.get_ref()?.downcast_ref(),
///         _ => None,
///     }
/// }
/// # let _ = damaged_file;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptFile {
    path: PathBuf,
    offset: u64,
    reason: String,
}

impl CorruptFile {
    /// The damaged file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The byte offset of the first damaged record.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

impl fmt::Display for CorruptFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is corrupt at byte {}: {}",
            self.path.display(),
            self.offset,
            self.reason
        )
    }
}

impl std::error::Error for CorruptFile {}

/// The [`Error::Io`] for a file damaged at `offset`.
pub(crate) fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> Error {
    let c = CorruptFile {
        path: path.to_owned(),
        offset,
        reason: reason.into(),
    };
    Error::io(c.to_string(), io::Error::new(io::ErrorKind::InvalidData, c))
}

/// What [`read`] found at a path.
#[derive(Debug)]
pub(crate) enum Contents {
    /// No file (or an empty one).
    Missing,
    /// An old-format file: the whole JSON snapshot.
    Legacy(Vec<u8>),
    /// A log.
    Log(Replay),
}

/// The intact records of a log.
#[derive(Debug)]
pub(crate) struct Replay {
    bytes: Vec<u8>,
    records: Vec<Range<usize>>,
    /// The length of the intact part; the file is cut to it before appending.
    pub(crate) valid_len: u64,
}

impl Replay {
    /// Each record's payload with its offset in the file.
    pub(crate) fn records(&self) -> impl Iterator<Item = (u64, &[u8])> {
        self.records
            .iter()
            .map(|r| ((r.start - HEADER) as u64, &self.bytes[r.clone()]))
    }
}

fn crc(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b)
}

/// Reads the file at `path`.
///
/// # Errors
/// [`Error::Io`] when it cannot be read, or (with a [`CorruptFile`] source) when it is
/// neither format or is damaged before its last record.
pub(crate) fn read(path: &Path) -> Result<Contents> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Contents::Missing),
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    };
    if bytes.len() < MAGIC.len() && MAGIC.starts_with(&bytes) {
        return Ok(Contents::Missing);
    }
    if !bytes.starts_with(MAGIC) {
        return match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => Ok(Contents::Legacy(bytes)),
            _ => Err(corrupt(path, 0, "not a Catena store file")),
        };
    }
    let mut records = Vec::new();
    let mut at = MAGIC.len();
    while at < bytes.len() {
        let rest = bytes.len() - at;
        if rest < HEADER {
            break; // a header cut short
        }
        let len = u32_at(&bytes, at) as usize;
        if crc(&bytes[at..at + 4]) != u32_at(&bytes, at + 4) || len > MAX_RECORD {
            if bytes[at..].iter().all(|&b| b == 0) {
                break; // the file was extended but the data never reached the disk
            }
            return Err(corrupt(
                path,
                at as u64,
                "a record header fails its checksum",
            ));
        }
        let end = at + HEADER + len;
        if end > bytes.len() {
            break; // a payload cut short
        }
        if crc(&bytes[at + HEADER..end]) != u32_at(&bytes, at + 8) {
            if end == bytes.len() {
                break; // the last record, partly written
            }
            return Err(corrupt(path, at as u64, "a record fails its checksum"));
        }
        records.push(at + HEADER..end);
        at = end;
    }
    Ok(Contents::Log(Replay {
        valid_len: at.min(bytes.len()) as u64,
        bytes,
        records,
    }))
}

/// One record, framed.
fn frame(payload: &[u8]) -> io::Result<Vec<u8>> {
    if payload.len() > MAX_RECORD {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a record of {} bytes is too large", payload.len()),
        ));
    }
    let len = (payload.len() as u32).to_le_bytes();
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(&len);
    out.extend_from_slice(&crc(&len).to_le_bytes());
    out.extend_from_slice(&crc(payload).to_le_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// Whether a log of `file_len` bytes holding `live_bytes` of live data should be compacted:
/// when it is more than twice the live data plus 1 MiB, so compaction's cost (rewriting the
/// live data) is paid for by at least as many bytes of appends since the last one.
pub(crate) fn should_compact(file_len: u64, live_bytes: u64) -> bool {
    file_len > live_bytes.saturating_mul(2).saturating_add(COMPACT_SLACK)
}

/// An open log, positioned for appending.
#[derive(Debug)]
pub(crate) struct LogFile {
    path: PathBuf,
    file: File,
    len: u64,
    /// Set when a failed append could not be undone: the file's end is then unknown.
    broken: bool,
}

impl LogFile {
    /// Opens an existing log for appending, first cutting off anything after `valid_len`
    /// (a torn last record) and syncing that.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be opened, cut or synced.
    pub(crate) fn append_to(path: &Path, valid_len: u64) -> Result<LogFile> {
        let io = |what: &str, e| Error::io(format!("{what} {}", path.display()), e);
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| io("opening", e))?;
        let len = file.metadata().map_err(|e| io("reading", e))?.len();
        if len > valid_len {
            tracing::warn!(
                path = %path.display(),
                bytes = len - valid_len,
                "cutting off a torn last record (a write interrupted by a crash, never acknowledged)"
            );
            file.set_len(valid_len)
                .and_then(|()| file.sync_all())
                .map_err(|e| io("cutting the torn tail off", e))?;
        }
        Ok(LogFile {
            path: path.to_owned(),
            file,
            len: valid_len,
            broken: false,
        })
    }

    /// Writes a new log holding `payloads` (a snapshot) over `path`, atomically: a temporary
    /// sibling (mode 0600) is written and synced, renamed over `path`, and the directory is
    /// synced. Missing parent directories are created (mode 0700).
    ///
    /// # Errors
    /// [`Error::Io`] when any step fails; the file at `path` is then untouched.
    pub(crate) fn create(path: &Path, payloads: &[Vec<u8>]) -> Result<LogFile> {
        let io = |what: &str, e| Error::io(format!("{what} {}", path.display()), e);
        let file_name = path.file_name().ok_or_else(|| {
            Error::invalid_input(format!("{} is not a file path", path.display()))
        })?;
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        create_dir_private(dir).map_err(|e| io("creating the directory of", e))?;
        let mut tmp_name = file_name.to_os_string();
        tmp_name.push(format!(
            ".{}.{}.tmp",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let tmp = path.with_file_name(tmp_name);
        let result = (|| {
            let file = open_private(&tmp).map_err(|e| io("creating a temporary file for", e))?;
            let mut len = MAGIC.len() as u64;
            let mut w = BufWriter::new(&file);
            w.write_all(MAGIC).map_err(|e| io("writing", e))?;
            for p in payloads {
                let framed = frame(p).map_err(|e| io("writing", e))?;
                w.write_all(&framed).map_err(|e| io("writing", e))?;
                len += framed.len() as u64;
            }
            w.flush().map_err(|e| io("writing", e))?;
            drop(w);
            file.sync_all().map_err(|e| io("syncing", e))?;
            fs::rename(&tmp, path).map_err(|e| io("replacing", e))?;
            sync_dir(dir).map_err(|e| io("syncing the directory of", e))?;
            Ok(LogFile {
                path: path.to_owned(),
                file,
                len,
                broken: false,
            })
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// The file's length.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Appends one record and syncs it. On failure the partial record is cut off again, so
    /// the file is as before; if even that fails, every later append fails too.
    ///
    /// # Errors
    /// [`Error::Io`] when the file was removed or replaced since it was opened (writes to
    /// it would be lost at the next start), or the write or sync fails.
    pub(crate) fn append(&mut self, payload: &[u8]) -> Result<()> {
        let path = self.path.display();
        if self.broken {
            return Err(Error::io(
                format!("{path}: an earlier failed write could not be undone; reopen the store"),
                io::Error::other("log in an unknown state"),
            ));
        }
        self.check_identity()?;
        let framed = frame(payload).map_err(|e| Error::io(format!("appending to {path}"), e))?;
        let written = self.file.write_all(&framed);
        let synced = written.and_then(|()| self.file.sync_data());
        match synced {
            Ok(()) => {
                self.len += framed.len() as u64;
                Ok(())
            }
            Err(e) => {
                if self
                    .file
                    .set_len(self.len)
                    .and_then(|()| self.file.sync_all())
                    .is_err()
                {
                    self.broken = true;
                }
                Err(Error::io(format!("appending to {path}"), e))
            }
        }
    }

    /// Checks that `path` still names the open file: an append to a removed or replaced
    /// file would be acknowledged and then lost.
    fn check_identity(&self) -> Result<()> {
        let path = self.path.display();
        let on_disk = fs::metadata(&self.path)
            .map_err(|e| Error::io(format!("{path} is gone; not writing to a removed file"), e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let ours = self
                .file
                .metadata()
                .map_err(|e| Error::io(format!("reading {path}"), e))?;
            if (on_disk.dev(), on_disk.ino()) != (ours.dev(), ours.ino()) {
                return Err(Error::io(
                    format!("{path} was replaced by another file; not writing to the old one"),
                    io::Error::other("file replaced"),
                ));
            }
        }
        #[cfg(not(unix))]
        let _ = on_disk;
        Ok(())
    }
}

/// Creates a new file for appending, readable by its owner only (0600 on unix).
fn open_private(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.append(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Creates `dir` and its missing parents, private to the owner (0700 on unix). Existing
/// directories keep their mode.
pub(crate) fn create_dir_private(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Makes a rename in `dir` durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Runs blocking file work off the async workers: on tokio's blocking pool inside a tokio
/// runtime, else (another executor) right here.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle
            .spawn_blocking(work)
            .await
            .map_err(|e| Error::other(format!("a storage task failed: {e}")))?,
        Err(_) => work(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_with(dir: &Path, payloads: &[&[u8]]) -> PathBuf {
        let path = dir.join("log");
        let mut log = LogFile::create(&path, &[]).unwrap();
        for p in payloads {
            log.append(p).unwrap();
        }
        path
    }

    fn payloads(path: &Path) -> Vec<Vec<u8>> {
        match read(path).unwrap() {
            Contents::Log(r) => r.records().map(|(_, p)| p.to_vec()).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_cut_of_the_last_record_reads_as_the_records_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_with(dir.path(), &[b"one", b"two", b"three"]);
        let full = fs::read(&path).unwrap();
        let last = full.len() - (HEADER + 5);
        for cut in last..full.len() {
            fs::write(&path, &full[..cut]).unwrap();
            assert_eq!(
                payloads(&path),
                vec![b"one".to_vec(), b"two".to_vec()],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_zero_filled_tail_is_torn_and_a_flipped_middle_byte_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = log_with(dir.path(), &[b"one", b"two"]);
        let mut bytes = fs::read(&path).unwrap();
        let mut zeros = bytes.clone();
        zeros.extend_from_slice(&[0; 100]);
        fs::write(&path, &zeros).unwrap();
        assert_eq!(payloads(&path).len(), 2);
        bytes[MAGIC.len() + HEADER] ^= 1;
        fs::write(&path, &bytes).unwrap();
        let err = read(&path).unwrap_err();
        let Error::Io { source, .. } = &err else {
            panic!("{err:?}")
        };
        let c = source
            .get_ref()
            .unwrap()
            .downcast_ref::<CorruptFile>()
            .unwrap();
        assert_eq!(c.offset(), MAGIC.len() as u64);
    }

    #[test]
    fn compaction_waits_for_garbage() {
        assert!(!should_compact(100, 100));
        assert!(!should_compact(3 << 20, 1 << 20));
        assert!(should_compact((3 << 20) + 1, 1 << 20));
    }
}
