//! Loading every matching file under a root directory, without ever leaving it.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::fs;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use super::{
    CsvLoader, DocumentLoader, HtmlLoader, JsonLinesLoader, JsonLoader, LoadError, MarkdownLoader,
    TextLoader,
};
use crate::Document;

type LoaderFactory = Arc<dyn Fn(&Path) -> Box<dyn DocumentLoader> + Send + Sync>;

/// Why a path met while walking the root was not loaded; see [`LoadReport::skipped`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    /// A symbolic link whose target lies outside the root; it was not followed.
    SymlinkOutsideRoot,
    /// A symbolic link, not followed because of
    /// [`follow_symlinks(false)`](DirectoryLoaderBuilder::follow_symlinks).
    SymlinkNotFollowed,
    /// The path could not be resolved: a dangling symbolic link, a link loop, or an I/O
    /// error (the message says which).
    Unresolvable(String),
    /// A directory reached a second time through a symbolic link (a link loop or an alias
    /// of a directory already walked).
    AlreadyVisited,
    /// Reached through a symbolic link inside the root, but its real path (the link
    /// target's path relative to the root) is hidden or excluded by a pattern (itself or a
    /// directory on the way), so it was not loaded under the link's name either.
    SymlinkTargetExcluded,
    /// No loader is configured for the file's extension.
    NoLoader,
    /// The file name is not valid UTF-8, so it cannot be matched or reported exactly.
    NonUtf8Name,
    /// Loading the file failed and [`skip_failed`](DirectoryLoaderBuilder::skip_failed)
    /// is on; the message is the error.
    Failed(String),
}

/// A path that was not loaded, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SkippedPath {
    /// The path relative to the root, `/`-separated.
    pub path: String,
    /// Why it was skipped.
    pub reason: SkipReason,
}

/// The result of [`DirectoryLoader::load_with_report`]: the documents and the paths that
/// were skipped.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct LoadReport {
    /// The documents, ordered by path.
    pub documents: Vec<Document>,
    /// The paths met while walking that were not loaded, ordered by path. Files filtered
    /// out by the patterns or the hidden-file rule are not listed, unless only their real
    /// path (behind a link) is filtered ([`SkipReason::SymlinkTargetExcluded`]).
    pub skipped: Vec<SkippedPath>,
}

/// Loads every file under a root directory whose path matches the include patterns and
/// none of the exclude patterns, with a loader picked by extension.
///
/// Default loaders: `txt`/`text` → [`TextLoader`], `md`/`markdown` → [`MarkdownLoader`],
/// `json` → [`JsonLoader`], `jsonl`/`ndjson` → [`JsonLinesLoader`], `csv` →
/// [`CsvLoader`], `html`/`htm` → [`HtmlLoader`], and with their features `pdf` →
/// `PdfLoader` (one document per page) and `docx` → `DocxLoader`; override or add with
/// [`loader`](DirectoryLoaderBuilder::loader). Documents are ordered by path, and their
/// `source` metadata is the `/`-separated path relative to the root.
///
/// Patterns are globs matched against that relative path; `*` does not cross `/`, `**`
/// does (`*.md` matches only the top level, `**/*.md` everywhere).
///
/// # Staying inside the root
///
/// - A pattern, or a path given to [`load_path`](Self::load_path), with a `..` component,
///   or absolute and outside the root, is an error: [`LoadError::PathEscape`] (from
///   [`build`](DirectoryLoaderBuilder::build) for patterns).
/// - While walking, a symbolic link (to a file or a directory) whose canonical target lies
///   outside the canonical root is **not followed** and is reported in
///   [`LoadReport::skipped`] as [`SkipReason::SymlinkOutsideRoot`]; [`load`](DocumentLoader::load)
///   logs skipped paths with `tracing::warn!`. A path given to `load_path` that resolves
///   outside the root is an error.
/// - Links inside the root are followed (unless
///   [`follow_symlinks(false)`](DirectoryLoaderBuilder::follow_symlinks)); each directory is
///   walked once, by its canonical path, so link loops end
///   ([`SkipReason::AlreadyVisited`]). Real directories are walked before linked ones, so
///   files are reported under their real path where possible.
/// - A link cannot reach what the deny rules keep out: the hidden-file rule and the
///   exclude patterns apply both to the path a file is reached by and to its real path
///   (the canonical target's path relative to the root), directories on the way included.
///   So `env.txt -> .env` is not loaded unless [`hidden(true)`](DirectoryLoaderBuilder::hidden),
///   and with `exclude("private")` or `exclude("private/**")` neither is `docs/key.txt`
///   through `docs -> private`; such paths are reported as
///   [`SkipReason::SymlinkTargetExcluded`] (and are [`LoadError::Excluded`] for
///   `load_path`). Include patterns select by the path a file is reached by (the name it
///   is reported under), so `README.md -> docs/readme.md` matches `include("*.md")`.
///
/// Checks use canonical paths at the time of the walk; the files are then read through
/// those canonical paths.
///
/// ```no_run
/// use catena_core::loader::{DirectoryLoader, DocumentLoader, JsonLinesLoader};
///
/// let loader = DirectoryLoader::builder("data")
///     .include("**/*.{md,jsonl}")
///     .exclude("archive/**")
///     .loader("jsonl", |path| JsonLinesLoader::new(path).content_key("text"))
///     .build()?;
/// let report = loader.load_with_report()?;
/// for skipped in &report.skipped {
///     eprintln!("skipped {}: {:?}", skipped.path, skipped.reason);
/// }
/// // A user-supplied name is checked against the root.
/// assert!(loader.load_path("../secrets.txt").is_err());
/// # Ok::<(), catena_core::Error>(())
/// ```
#[derive(Clone)]
pub struct DirectoryLoader {
    root: PathBuf,
    include_patterns: Vec<String>,
    exclude_patterns: Vec<String>,
    include: GlobSet,
    exclude: GlobSet,
    loaders: BTreeMap<String, LoaderFactory>,
    recursive: bool,
    follow_symlinks: bool,
    hidden: bool,
    skip_failed: bool,
    max_file_bytes: u64,
    max_total_bytes: u64,
}

impl fmt::Debug for DirectoryLoader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirectoryLoader")
            .field("root", &self.root)
            .field("include", &self.include_patterns)
            .field("exclude", &self.exclude_patterns)
            .field("extensions", &self.loaders.keys().collect::<Vec<_>>())
            .field("recursive", &self.recursive)
            .field("follow_symlinks", &self.follow_symlinks)
            .field("hidden", &self.hidden)
            .field("skip_failed", &self.skip_failed)
            .field("max_file_bytes", &self.max_file_bytes)
            .field("max_total_bytes", &self.max_total_bytes)
            .finish()
    }
}

/// Builds a [`DirectoryLoader`]; see [`DirectoryLoader::builder`].
#[derive(Clone)]
pub struct DirectoryLoaderBuilder {
    root: PathBuf,
    include: Vec<String>,
    exclude: Vec<String>,
    loaders: BTreeMap<String, LoaderFactory>,
    recursive: bool,
    follow_symlinks: bool,
    hidden: bool,
    skip_failed: bool,
    max_file_bytes: u64,
    max_total_bytes: u64,
}

impl fmt::Debug for DirectoryLoaderBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirectoryLoaderBuilder")
            .field("root", &self.root)
            .field("include", &self.include)
            .field("exclude", &self.exclude)
            .field("extensions", &self.loaders.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn factory<L, F>(f: F) -> LoaderFactory
where
    L: DocumentLoader + 'static,
    F: Fn(&Path) -> L + Send + Sync + 'static,
{
    Arc::new(move |path: &Path| Box::new(f(path)) as Box<dyn DocumentLoader>)
}

fn default_loaders() -> BTreeMap<String, LoaderFactory> {
    let mut m = BTreeMap::new();
    for ext in ["txt", "text"] {
        m.insert(ext.to_owned(), factory(|p: &Path| TextLoader::new(p)));
    }
    for ext in ["md", "markdown"] {
        m.insert(ext.to_owned(), factory(|p: &Path| MarkdownLoader::new(p)));
    }
    m.insert("json".to_owned(), factory(|p: &Path| JsonLoader::new(p)));
    for ext in ["jsonl", "ndjson"] {
        m.insert(ext.to_owned(), factory(|p: &Path| JsonLinesLoader::new(p)));
    }
    m.insert("csv".to_owned(), factory(|p: &Path| CsvLoader::new(p)));
    for ext in ["html", "htm"] {
        m.insert(ext.to_owned(), factory(|p: &Path| HtmlLoader::new(p)));
    }
    #[cfg(feature = "pdf")]
    m.insert(
        "pdf".to_owned(),
        factory(|p: &Path| super::PdfLoader::new(p)),
    );
    #[cfg(feature = "docx")]
    m.insert(
        "docx".to_owned(),
        factory(|p: &Path| super::DocxLoader::new(p)),
    );
    m
}

impl DirectoryLoader {
    /// A builder for a loader rooted at `root`.
    pub fn builder(root: impl Into<PathBuf>) -> DirectoryLoaderBuilder {
        DirectoryLoaderBuilder {
            root: root.into(),
            include: Vec::new(),
            exclude: Vec::new(),
            loaders: default_loaders(),
            recursive: true,
            follow_symlinks: true,
            hidden: false,
            skip_failed: false,
            max_file_bytes: super::DEFAULT_MAX_FILE_BYTES,
            max_total_bytes: super::DEFAULT_MAX_TOTAL_BYTES,
        }
    }

    /// The root directory, as given.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Loads every matching file, and reports the paths skipped while walking.
    ///
    /// # Errors
    ///
    /// [`LoadError::Io`] when the root or a directory cannot be read,
    /// [`LoadError::NotADirectory`] when the root is not a directory, and the first
    /// error of a file's loader (unless [`skip_failed`](DirectoryLoaderBuilder::skip_failed)).
    pub fn load_with_report(&self) -> crate::Result<LoadReport> {
        let root = self.canonical_root()?;
        let (files, mut skipped) = self.walk(&root)?;
        let mut documents = Vec::new();
        let mut total: u64 = 0;
        for (rel, path) in files {
            let Some(factory) = self.loader_for(&path) else {
                skipped.push(SkippedPath {
                    path: rel,
                    reason: SkipReason::NoLoader,
                });
                continue;
            };
            let size = fs::metadata(&path).map(|m| m.len()).ok();
            if let Some(size) = size {
                if size > self.max_file_bytes {
                    let e = LoadError::TooLarge {
                        path: path.clone(),
                        size: Some(size),
                        max: self.max_file_bytes,
                    };
                    if self.skip_failed {
                        skipped.push(SkippedPath {
                            path: rel,
                            reason: SkipReason::Failed(e.to_string()),
                        });
                        continue;
                    }
                    return Err(e.into());
                }
                total = total.saturating_add(size);
                if total > self.max_total_bytes {
                    return Err(LoadError::TotalTooLarge {
                        root: self.root.clone(),
                        max: self.max_total_bytes,
                    }
                    .into());
                }
            }
            match factory(&path).load() {
                Ok(docs) => documents.extend(
                    docs.into_iter()
                        .map(|d| d.with_metadata("source", rel.clone())),
                ),
                Err(e) if self.skip_failed => skipped.push(SkippedPath {
                    path: rel,
                    reason: SkipReason::Failed(e.to_string()),
                }),
                Err(e) => return Err(e),
            }
        }
        skipped.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(LoadReport { documents, skipped })
    }

    /// Loads one file named relative to the root (an absolute path inside the root is
    /// accepted too), applying the same rules as a walk.
    ///
    /// # Errors
    ///
    /// [`LoadError::PathEscape`] when `path` has a `..` component, is absolute and outside
    /// the root, or resolves outside the root through a symbolic link;
    /// [`LoadError::Excluded`] when the patterns or the hidden-file rule exclude it (or it
    /// goes through a link and links are not followed); [`LoadError::NotAFile`],
    /// [`LoadError::UnsupportedFile`], [`LoadError::Io`], or the file loader's error.
    pub fn load_path(&self, path: impl AsRef<Path>) -> crate::Result<Vec<Document>> {
        let requested = path.as_ref();
        let root = self.canonical_root()?;
        let relative = self.relative_request(requested, &root)?;
        let mut parts: Vec<&str> = Vec::new();
        for component in relative.components() {
            match component {
                Component::CurDir => {}
                Component::Normal(part) => {
                    parts.push(part.to_str().ok_or_else(|| LoadError::Excluded {
                        path: relative.clone(),
                    })?)
                }
                Component::ParentDir => return Err(escape(requested, "has a `..` component")),
                Component::RootDir | Component::Prefix(_) => {
                    return Err(escape(requested, "is absolute and outside the root"))
                }
            }
        }
        let rel = parts.join("/");
        let lexical = parts.iter().fold(root.clone(), |p, part| p.join(part));
        let canonical = fs::canonicalize(&lexical).map_err(|source| LoadError::Io {
            path: requested.to_path_buf(),
            source,
        })?;
        if !canonical.starts_with(&root) {
            return Err(escape(
                requested,
                "resolves outside the root through a symbolic link",
            ));
        }
        let through_link = canonical != lexical;
        let excluded = !self.matches(&rel)
            || self.denied(&rel)
            || (through_link
                && (!self.follow_symlinks
                    || real_relative(&canonical, &root).is_none_or(|r| self.denied(&r))));
        if excluded {
            return Err(LoadError::Excluded { path: relative }.into());
        }
        let meta = fs::metadata(&canonical).map_err(|source| LoadError::Io {
            path: requested.to_path_buf(),
            source,
        })?;
        if !meta.is_file() {
            return Err(LoadError::NotAFile {
                path: requested.to_path_buf(),
            }
            .into());
        }
        let factory = self
            .loader_for(&canonical)
            .ok_or_else(|| LoadError::UnsupportedFile {
                path: requested.to_path_buf(),
            })?;
        Ok(factory(&canonical)
            .load()?
            .into_iter()
            .map(|d| d.with_metadata("source", rel.clone()))
            .collect())
    }

    fn canonical_root(&self) -> Result<PathBuf, LoadError> {
        let root = fs::canonicalize(&self.root).map_err(|source| LoadError::Io {
            path: self.root.clone(),
            source,
        })?;
        if !root.is_dir() {
            return Err(LoadError::NotADirectory {
                path: self.root.clone(),
            });
        }
        Ok(root)
    }

    /// `requested` relative to the root: absolute paths must lie (lexically) inside it.
    fn relative_request(&self, requested: &Path, root: &Path) -> Result<PathBuf, LoadError> {
        if !requested.has_root() {
            return Ok(requested.to_path_buf());
        }
        let given_root = std::path::absolute(&self.root).unwrap_or_else(|_| self.root.clone());
        requested
            .strip_prefix(root)
            .or_else(|_| requested.strip_prefix(&given_root))
            .map(Path::to_path_buf)
            .map_err(|_| LoadError::PathEscape {
                path: requested.to_path_buf(),
                reason: "is absolute and outside the root",
            })
    }

    fn matches(&self, rel: &str) -> bool {
        (self.include_patterns.is_empty() || self.include.is_match(rel))
            && !self.exclude.is_match(rel)
    }

    /// Whether the deny rules rule out `rel` (root-relative, `/`-separated): a hidden
    /// component (unless hidden files are on), or an exclude pattern matching it or a
    /// directory on the way to it (which a walk would not enter).
    fn denied(&self, rel: &str) -> bool {
        let parts: Vec<&str> = rel.split('/').collect();
        if !self.hidden && parts.iter().any(|p| p.starts_with('.')) {
            return true;
        }
        let mut prefix = String::new();
        parts.iter().any(|part| {
            prefix = join(&prefix, part);
            self.exclude.is_match(&prefix)
        })
    }

    fn loader_for(&self, path: &Path) -> Option<&LoaderFactory> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        self.loaders.get(&ext)
    }

    /// Walks the root: the matching files `(relative path, canonical path)` sorted by
    /// relative path, and the paths skipped on the way.
    #[allow(clippy::type_complexity)]
    fn walk(&self, root: &Path) -> crate::Result<(Vec<(String, PathBuf)>, Vec<SkippedPath>)> {
        let mut files: Vec<(String, PathBuf)> = Vec::new();
        let mut skipped = Vec::new();
        let mut visited: HashSet<PathBuf> = HashSet::new();
        visited.insert(root.to_path_buf());
        // Real directories first; directories reached through links afterwards, so the
        // real path of an aliased directory wins.
        let mut dirs: Vec<(String, PathBuf)> = vec![(String::new(), root.to_path_buf())];
        let mut linked_dirs: Vec<(String, PathBuf)> = Vec::new();

        loop {
            let (rel_dir, dir) = if let Some(next) = dirs.pop() {
                next
            } else if let Some((rel, dir)) = linked_dirs.pop() {
                if !visited.insert(dir.clone()) {
                    skipped.push(SkippedPath {
                        path: rel,
                        reason: SkipReason::AlreadyVisited,
                    });
                    continue;
                }
                (rel, dir)
            } else {
                break;
            };

            let read = match fs::read_dir(&dir) {
                Ok(read) => read,
                // An unreadable subdirectory is reported like a failed file.
                Err(e) if self.skip_failed && !rel_dir.is_empty() => {
                    skipped.push(SkippedPath {
                        path: rel_dir,
                        reason: SkipReason::Failed(e.to_string()),
                    });
                    continue;
                }
                Err(source) => {
                    return Err(LoadError::Io {
                        path: dir.clone(),
                        source,
                    }
                    .into())
                }
            };
            let mut entries = Vec::new();
            for entry in read {
                let entry = entry.map_err(|source| LoadError::Io {
                    path: dir.clone(),
                    source,
                })?;
                entries.push(entry);
            }
            entries.sort_by_key(fs::DirEntry::file_name);
            // Reverse so that popping visits directories in name order.
            for entry in entries.into_iter().rev() {
                let name = entry.file_name();
                let Some(name) = name.to_str() else {
                    skipped.push(SkippedPath {
                        path: join(&rel_dir, &name.to_string_lossy()),
                        reason: SkipReason::NonUtf8Name,
                    });
                    continue;
                };
                if !self.hidden && name.starts_with('.') {
                    continue;
                }
                let rel = join(&rel_dir, name);
                let path = dir.join(name);
                let file_type = match entry.file_type() {
                    Ok(t) => t,
                    Err(e) => {
                        skipped.push(unresolvable(rel, &e));
                        continue;
                    }
                };

                let (is_dir, target, linked) = if file_type.is_symlink() {
                    if !self.follow_symlinks {
                        skipped.push(SkippedPath {
                            path: rel,
                            reason: SkipReason::SymlinkNotFollowed,
                        });
                        continue;
                    }
                    let target = match fs::canonicalize(&path) {
                        Ok(t) => t,
                        Err(e) => {
                            skipped.push(unresolvable(rel, &e));
                            continue;
                        }
                    };
                    if !target.starts_with(root) {
                        skipped.push(SkippedPath {
                            path: rel,
                            reason: SkipReason::SymlinkOutsideRoot,
                        });
                        continue;
                    }
                    match fs::metadata(&target) {
                        Ok(m) if m.is_dir() => (true, target, true),
                        Ok(m) if m.is_file() => (false, target, true),
                        Ok(_) => continue,
                        Err(e) => {
                            skipped.push(unresolvable(rel, &e));
                            continue;
                        }
                    }
                } else if file_type.is_dir() {
                    (true, path, false)
                } else if file_type.is_file() {
                    (false, path, false)
                } else {
                    continue;
                };

                let wanted = if is_dir {
                    self.recursive && !self.exclude.is_match(&rel)
                } else {
                    self.matches(&rel)
                };
                if !wanted {
                    continue;
                }
                // Reached through a link (this entry, or a linked directory above it): its
                // real path must pass the same rules, or the link would bypass them.
                match real_relative(&target, root) {
                    Some(real) if real == rel || !self.denied(&real) => {}
                    Some(_) => {
                        skipped.push(SkippedPath {
                            path: rel,
                            reason: SkipReason::SymlinkTargetExcluded,
                        });
                        continue;
                    }
                    None => {
                        skipped.push(SkippedPath {
                            path: rel,
                            reason: SkipReason::NonUtf8Name,
                        });
                        continue;
                    }
                }
                if !is_dir {
                    files.push((rel, target));
                } else if linked {
                    linked_dirs.push((rel, target));
                } else if visited.insert(target.clone()) {
                    dirs.push((rel, target));
                } else {
                    // A real directory inside a linked one, already walked (for instance
                    // through another link to it).
                    skipped.push(SkippedPath {
                        path: rel,
                        reason: SkipReason::AlreadyVisited,
                    });
                }
            }
        }
        files.sort_by(|a, b| a.0.cmp(&b.0));
        Ok((files, skipped))
    }
}

impl DocumentLoader for DirectoryLoader {
    /// Loads every matching file; skipped paths are logged with `tracing::warn!` (use
    /// [`DirectoryLoader::load_with_report`] to get them).
    fn load(&self) -> crate::Result<Vec<Document>> {
        let report = self.load_with_report()?;
        for s in &report.skipped {
            tracing::warn!(path = %s.path, reason = ?s.reason, "directory loader skipped a path");
        }
        Ok(report.documents)
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

/// `path` (canonical, inside `root`) relative to `root`, `/`-separated; `None` when a
/// component is not valid UTF-8.
fn real_relative(path: &Path, root: &Path) -> Option<String> {
    let relative = path.strip_prefix(root).ok()?;
    let mut parts = Vec::new();
    for component in relative.components() {
        parts.push(component.as_os_str().to_str()?);
    }
    Some(parts.join("/"))
}

fn unresolvable(path: String, e: &std::io::Error) -> SkippedPath {
    SkippedPath {
        path,
        reason: SkipReason::Unresolvable(e.to_string()),
    }
}

fn escape(path: &Path, reason: &'static str) -> crate::Error {
    LoadError::PathEscape {
        path: path.to_path_buf(),
        reason,
    }
    .into()
}

impl DirectoryLoaderBuilder {
    /// Adds an include glob. Default: no include patterns, every file is included.
    #[must_use]
    pub fn include(mut self, pattern: impl Into<String>) -> Self {
        self.include.push(pattern.into());
        self
    }

    /// Adds an exclude glob; a file or directory matching one is not loaded (or walked).
    /// Default: no exclude patterns.
    #[must_use]
    pub fn exclude(mut self, pattern: impl Into<String>) -> Self {
        self.exclude.push(pattern.into());
        self
    }

    /// Uses `make` to build the loader for files with extension `ext` (case-insensitive,
    /// without the dot), replacing any default for it. `make` gets the file's canonical
    /// path. Default: see [`DirectoryLoader`].
    #[must_use]
    pub fn loader<L, F>(mut self, ext: &str, make: F) -> Self
    where
        L: DocumentLoader + 'static,
        F: Fn(&Path) -> L + Send + Sync + 'static,
    {
        let ext = ext.trim_start_matches('.').to_ascii_lowercase();
        self.loaders.insert(ext, factory(make));
        self
    }

    /// Drops the default loaders, so only extensions given to
    /// [`loader`](Self::loader) are loaded. Default: the defaults are kept.
    #[must_use]
    pub fn no_default_loaders(mut self) -> Self {
        self.loaders.clear();
        self
    }

    /// Whether subdirectories are walked. Default: `true`.
    #[must_use]
    pub fn recursive(mut self, recursive: bool) -> Self {
        self.recursive = recursive;
        self
    }

    /// Whether symbolic links whose target is inside the root are followed (links out of
    /// the root are never followed). Default: `true`.
    #[must_use]
    pub fn follow_symlinks(mut self, follow: bool) -> Self {
        self.follow_symlinks = follow;
        self
    }

    /// Whether files and directories whose name starts with `.` are loaded. Default:
    /// `false`.
    #[must_use]
    pub fn hidden(mut self, hidden: bool) -> Self {
        self.hidden = hidden;
        self
    }

    /// Whether a file whose loader fails (or a subdirectory that cannot be read) is
    /// skipped and reported as [`SkipReason::Failed`] instead of failing the whole load.
    /// Default: `false`.
    #[must_use]
    pub fn skip_failed(mut self, skip: bool) -> Self {
        self.skip_failed = skip;
        self
    }

    /// The largest file loaded, in bytes (default and upper bound
    /// [`DEFAULT_MAX_FILE_BYTES`](super::DEFAULT_MAX_FILE_BYTES), which every file loader
    /// enforces while reading). A larger file is [`LoadError::TooLarge`], or skipped and
    /// reported with [`skip_failed`](Self::skip_failed).
    #[must_use]
    pub fn max_file_bytes(mut self, bytes: u64) -> Self {
        self.max_file_bytes = bytes.min(super::DEFAULT_MAX_FILE_BYTES);
        self
    }

    /// The most bytes loaded in all (default
    /// [`DEFAULT_MAX_TOTAL_BYTES`](super::DEFAULT_MAX_TOTAL_BYTES)). Past it the whole load
    /// fails with [`LoadError::TotalTooLarge`] and returns nothing, whatever
    /// [`skip_failed`](Self::skip_failed) says: a load cut short is not a complete one.
    #[must_use]
    pub fn max_total_bytes(mut self, bytes: u64) -> Self {
        self.max_total_bytes = bytes;
        self
    }

    /// Validates and compiles the patterns.
    ///
    /// # Errors
    ///
    /// [`LoadError::PathEscape`] for a pattern with a `..` component or absolute and
    /// outside the root; [`LoadError::InvalidPattern`] for a pattern that does not parse.
    pub fn build(self) -> Result<DirectoryLoader, LoadError> {
        let include_patterns = self.normalise(self.include.clone())?;
        let exclude_patterns = self.normalise(self.exclude.clone())?;
        Ok(DirectoryLoader {
            include: compile(&include_patterns)?,
            exclude: compile(&exclude_patterns)?,
            include_patterns,
            exclude_patterns,
            root: self.root,
            loaders: self.loaders,
            recursive: self.recursive,
            follow_symlinks: self.follow_symlinks,
            hidden: self.hidden,
            skip_failed: self.skip_failed,
            max_file_bytes: self.max_file_bytes,
            max_total_bytes: self.max_total_bytes,
        })
    }

    /// Makes patterns relative to the root, refusing any that could reach outside it.
    fn normalise(&self, patterns: Vec<String>) -> Result<Vec<String>, LoadError> {
        let refuse = |pattern: &str, reason| LoadError::PathEscape {
            path: PathBuf::from(pattern),
            reason,
        };
        let mut out = Vec::with_capacity(patterns.len());
        for pattern in patterns {
            if pattern.split(['/', '\\']).any(|part| part == "..") {
                return Err(refuse(&pattern, "has a `..` component"));
            }
            let mut relative = pattern.clone();
            if Path::new(&pattern).has_root() {
                let candidates = [
                    Some(self.root.clone()),
                    std::path::absolute(&self.root).ok(),
                    fs::canonicalize(&self.root).ok(),
                ];
                let stripped = candidates.iter().flatten().find_map(|root| {
                    Path::new(&pattern)
                        .strip_prefix(root)
                        .ok()
                        .and_then(Path::to_str)
                        .map(str::to_owned)
                });
                relative =
                    stripped.ok_or_else(|| refuse(&pattern, "is absolute and outside the root"))?;
            }
            while let Some(rest) = relative.strip_prefix("./") {
                relative = rest.to_owned();
            }
            out.push(relative);
        }
        Ok(out)
    }
}

fn compile(patterns: &[String]) -> Result<GlobSet, LoadError> {
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        let glob = GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(|e| LoadError::InvalidPattern {
                pattern: pattern.clone(),
                message: e.kind().to_string(),
            })?;
        set.add(glob);
    }
    set.build().map_err(|e| LoadError::InvalidPattern {
        pattern: patterns.join(", "),
        message: e.to_string(),
    })
}
