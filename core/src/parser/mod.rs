//! Output parsers. (Being written.)

/// Why a model's output could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The output is not valid JSON.
    #[error("output is not valid JSON: {0}")]
    InvalidJson(String),
}
