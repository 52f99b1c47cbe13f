//! Prompt templates: f-string style text templates, chat templates with history
//! placeholders, and few-shot templates.
//!
//! A [`PromptTemplate`] is parsed once, at construction, into literal text and `{variable}`
//! slots (`{{` and `}}` are literal braces). Formatting is a single pass over those slots:
//! a value is inserted as **data** and is never parsed again, so a user value such as
//! `"{system}"` or `"{{"` appears verbatim in the output and cannot reach another variable.
//! Variable names must be identifiers: attribute, index, conversion and format-spec access
//! (`{a.b}`, `{a[0]}`, `{a!r}`, `{a:>10}`) are rejected when the template is built, and
//! nothing in this module reads files.
//!
//! Formatting is strict: a variable the template needs but is not given is
//! [`PromptError::MissingVariable`], and a value the template does not know is
//! [`PromptError::UnknownVariable`] (usually a typo).
//!
//! ```
//! use catena_core::prompt::{ChatPromptTemplate, MessagesPlaceholder, PromptError, PromptTemplate};
//! use catena_core::{Message, Role};
//!
//! let greet = PromptTemplate::new("Hello {name}! {{braces}} stay literal.")?;
//! assert_eq!(greet.input_variables(), ["name"]);
//! assert_eq!(greet.format([("name", "{system}")])?, "Hello {system}! {braces} stay literal.");
//! assert_eq!(
//!     greet.format([("nmae", "Ada")]),
//!     Err(PromptError::UnknownVariable("nmae".into()))
//! );
//!
//! let chat = ChatPromptTemplate::builder()
//!     .system("You answer questions about {topic}.")
//!     .placeholder(MessagesPlaceholder::new("history").optional(true))
//!     .user("{question}")
//!     .build()?
//!     .partial("topic", "Rust")?;
//! let messages = chat.format_messages([("question", "What is a borrow?")])?;
//! assert_eq!(messages.len(), 2);
//! assert_eq!(messages[0].text(), "You answer questions about Rust.");
//! assert_eq!(messages[1].role, Role::User);
//! # Ok::<(), PromptError>(())
//! ```

mod chat;
mod few_shot;
mod template;
mod values;

use std::sync::Arc;

use crate::Message;

pub use chat::{
    ChatPromptTemplate, ChatPromptTemplateBuilder, MessageTemplate, MessagesPlaceholder,
};
pub use few_shot::{
    FewShotChatMessagePromptTemplate, FewShotPromptTemplate, FewShotPromptTemplateBuilder,
};
pub use template::PromptTemplate;
pub use values::{PromptValue, PromptValues};

/// Why a prompt template could not be built or formatted.
///
/// Positions are byte offsets into the template text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PromptError {
    /// A variable the template needs was not given.
    #[error("missing prompt variable `{0}`")]
    MissingVariable(String),
    /// A value was given for a variable the template does not use (often a typo).
    #[error("unknown prompt variable `{0}`: the template does not use it")]
    UnknownVariable(String),
    /// A `{` opens a variable that is never closed. Write `{{` for a literal brace.
    #[error("unclosed `{{` at byte {position}; write `{{{{` for a literal brace")]
    UnclosedBrace {
        /// Byte offset of the `{`.
        position: usize,
    },
    /// A `}` closes nothing. Write `}}` for a literal brace.
    #[error("unmatched `}}` at byte {position}; write `}}}}` for a literal brace")]
    UnmatchedClosingBrace {
        /// Byte offset of the `}`.
        position: usize,
    },
    /// `{}`: a variable slot without a name.
    #[error("empty variable `{{}}` at byte {position}; variables must be named")]
    EmptyVariable {
        /// Byte offset of the `{`.
        position: usize,
    },
    /// A variable name is not an identifier. Attribute (`{a.b}`), index (`{a[0]}`),
    /// conversion (`{a!r}`) and format-spec (`{a:>10}`) access are not supported.
    #[error(
        "invalid variable name `{name}` at byte {position}: names must be identifiers \
         (attribute, index, conversion and format-spec access are not supported)"
    )]
    InvalidVariableName {
        /// The text between the braces.
        name: String,
        /// Byte offset of the `{` (0 for names given outside a template).
        position: usize,
    },
    /// The declared input variables do not match the ones the template uses.
    #[error("declared input variables {declared:?} do not match the template's {found:?}")]
    InputVariablesMismatch {
        /// The declared variables, sorted.
        declared: Vec<String>,
        /// The variables the template uses (partials excluded), sorted.
        found: Vec<String>,
    },
    /// A value has the wrong kind: text where messages are expected, or the reverse.
    #[error("prompt variable `{name}` must be {expected}")]
    WrongValueType {
        /// The variable.
        name: String,
        /// What it must be: `"text"` or `"a list of messages"`.
        expected: &'static str,
    },
    /// The same name is used both as a text variable and as a messages placeholder.
    #[error("`{0}` is used both as a text variable and as a messages placeholder")]
    ConflictingVariable(String),
    /// One message template of a chat template is invalid.
    #[error("message template {index}: {source}")]
    InvalidMessageTemplate {
        /// Position of the message template (0-based).
        index: usize,
        /// What is wrong with it.
        #[source]
        source: Box<PromptError>,
    },
    /// One few-shot example could not be formatted with the example prompt.
    #[error("example {index}: {source}")]
    InvalidExample {
        /// Position of the example (0-based).
        index: usize,
        /// What is wrong with it.
        #[source]
        source: Box<PromptError>,
    },
}

/// Anything that turns [`PromptValues`] into chat messages: the object-safe view of every
/// template in this module, so chains can hold an `Arc<dyn Prompt>`.
///
/// A text template ([`PromptTemplate`], [`FewShotPromptTemplate`]) formats to a single
/// user message.
///
/// ```
/// use std::sync::Arc;
/// use catena_core::prompt::{Prompt, PromptTemplate, PromptValues};
///
/// let prompt: Arc<dyn Prompt> = Arc::new(PromptTemplate::new("Summarise: {text}")?);
/// let values = PromptValues::new().with("text", "a long story");
/// let messages = prompt.format_messages(&values)?;
/// assert_eq!(messages[0].text(), "Summarise: a long story");
/// # Ok::<(), catena_core::prompt::PromptError>(())
/// ```
pub trait Prompt: Send + Sync {
    /// The variables that must be given to [`format_messages`](Prompt::format_messages)
    /// (partial variables and optional placeholders excluded).
    fn input_variables(&self) -> Vec<String>;

    /// Formats `values` into messages.
    ///
    /// # Errors
    ///
    /// [`PromptError::MissingVariable`], [`PromptError::UnknownVariable`] or
    /// [`PromptError::WrongValueType`] when `values` do not fit the template.
    fn format_messages(&self, values: &PromptValues) -> Result<Vec<Message>, PromptError>;
}

impl<T: Prompt + ?Sized> Prompt for &T {
    fn input_variables(&self) -> Vec<String> {
        (**self).input_variables()
    }
    fn format_messages(&self, values: &PromptValues) -> Result<Vec<Message>, PromptError> {
        (**self).format_messages(values)
    }
}

impl<T: Prompt + ?Sized> Prompt for Box<T> {
    fn input_variables(&self) -> Vec<String> {
        (**self).input_variables()
    }
    fn format_messages(&self, values: &PromptValues) -> Result<Vec<Message>, PromptError> {
        (**self).format_messages(values)
    }
}

impl<T: Prompt + ?Sized> Prompt for Arc<T> {
    fn input_variables(&self) -> Vec<String> {
        (**self).input_variables()
    }
    fn format_messages(&self, values: &PromptValues) -> Result<Vec<Message>, PromptError> {
        (**self).format_messages(values)
    }
}

/// Whether `name` is a valid variable name: a letter or `_`, then letters, digits or `_`.
pub(crate) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert!(is_identifier("a"));
        assert!(is_identifier("_a1"));
        assert!(is_identifier("naïve"));
        assert!(!is_identifier(""));
        assert!(!is_identifier("1a"));
        assert!(!is_identifier("a.b"));
        assert!(!is_identifier("a b"));
        assert!(!is_identifier("a-b"));
    }

    #[test]
    fn prompt_is_object_safe() {
        fn _obj_safe(_: &dyn Prompt) {}
    }
}
