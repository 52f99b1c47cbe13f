//! Prompt templates. (Being written.)

/// Why a prompt template could not be built or formatted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PromptError {
    /// A variable the template needs was not given.
    #[error("missing prompt variable `{0}`")]
    MissingVariable(String),
}
