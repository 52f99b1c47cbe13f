//! Document loaders. (Being written.)

/// Why documents could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The path is outside the loader's root.
    #[error("path escapes the loader root: {0}")]
    PathEscape(String),
}
