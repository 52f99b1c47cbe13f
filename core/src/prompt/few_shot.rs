//! Few-shot templates: examples formatted with an example prompt.

use super::{ChatPromptTemplate, Prompt, PromptError, PromptTemplate, PromptValue, PromptValues};
use crate::{Message, Role};

fn invalid_example(index: usize, source: PromptError) -> PromptError {
    PromptError::InvalidExample {
        index,
        source: Box::new(source),
    }
}

/// A text prompt made of a prefix, examples and a suffix, joined by a separator
/// (LangChain's `FewShotPromptTemplate`).
///
/// Each example is formatted with the example prompt when the template is built; keys of
/// an example the example prompt does not use are ignored (they may hold metadata). At
/// format time the prefix and the suffix are formatted with the values, each on its own,
/// and the non-empty pieces are joined: example text and values are never parsed as
/// template syntax. A prefix or suffix that formats to an empty string (an empty template,
/// or `"{intro}"` with `intro` empty) is left out, as is an example that formats to an
/// empty string.
///
/// ```
/// use catena_core::prompt::{FewShotPromptTemplate, PromptTemplate};
///
/// let example = PromptTemplate::new("Q: {question}\nA: {answer}")?;
/// let prompt = FewShotPromptTemplate::builder(example)
///     .prefix("Answer like the examples.")
///     .example([("question", "2 + 2"), ("answer", "4")])
///     .example([("question", "3 + 3"), ("answer", "6")])
///     .suffix("Q: {input}\nA:")
///     .build()?;
/// assert_eq!(prompt.input_variables(), ["input"]);
/// assert_eq!(
///     prompt.format([("input", "5 + 5")])?,
///     "Answer like the examples.\n\nQ: 2 + 2\nA: 4\n\nQ: 3 + 3\nA: 6\n\nQ: 5 + 5\nA:"
/// );
/// # Ok::<(), catena_core::prompt::PromptError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct FewShotPromptTemplate {
    examples: Vec<PromptValues>,
    formatted_examples: Vec<String>,
    example_prompt: PromptTemplate,
    prefix: PromptTemplate,
    suffix: PromptTemplate,
    separator: String,
    variables: Vec<String>,
    input_variables: Vec<String>,
}

impl FewShotPromptTemplate {
    /// A builder whose examples are formatted with `example_prompt`.
    pub fn builder(example_prompt: PromptTemplate) -> FewShotPromptTemplateBuilder {
        FewShotPromptTemplateBuilder {
            example_prompt,
            examples: Vec::new(),
            prefix: String::new(),
            suffix: String::new(),
            separator: "\n\n".to_owned(),
            partials: Vec::new(),
        }
    }

    /// The variables that must be given: those of the prefix and the suffix, partials
    /// excluded.
    pub fn input_variables(&self) -> &[String] {
        &self.input_variables
    }

    /// The examples, as given.
    pub fn examples(&self) -> &[PromptValues] {
        &self.examples
    }

    /// The examples, formatted with the example prompt.
    pub fn formatted_examples(&self) -> &[String] {
        &self.formatted_examples
    }

    /// The example prompt.
    pub fn example_prompt(&self) -> &PromptTemplate {
        &self.example_prompt
    }

    /// The separator between pieces.
    pub fn separator(&self) -> &str {
        &self.separator
    }

    /// A copy with `name` (a prefix or suffix variable) fixed to `value`.
    ///
    /// # Errors
    ///
    /// [`PromptError::UnknownVariable`] when neither the prefix nor the suffix uses `name`;
    /// [`PromptError::WrongValueType`] when `value` is not text.
    pub fn partial(
        &self,
        name: impl Into<String>,
        value: impl Into<PromptValue>,
    ) -> Result<Self, PromptError> {
        let name = name.into();
        let value = value.into();
        if !self.variables.contains(&name) {
            return Err(PromptError::UnknownVariable(name));
        }
        let mut out = self.clone();
        if out.prefix.variables().contains(&name) {
            out.prefix = out.prefix.partial(name.clone(), value.clone())?;
        }
        if out.suffix.variables().contains(&name) {
            out.suffix = out.suffix.partial(name.clone(), value)?;
        }
        out.input_variables.retain(|v| *v != name);
        Ok(out)
    }

    /// Formats the prompt with `values` (anything iterating over `(name, value)` pairs).
    ///
    /// # Errors
    ///
    /// [`PromptError::UnknownVariable`] for a value neither the prefix nor the suffix uses;
    /// otherwise as [`PromptTemplate::format`].
    pub fn format<I, K, V>(&self, values: I) -> Result<String, PromptError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<PromptValue>,
    {
        self.format_values(&PromptValues::collect_from(values))
    }

    /// [`format`](Self::format) for values already collected in a [`PromptValues`].
    ///
    /// # Errors
    ///
    /// As [`format`](Self::format).
    pub fn format_values(&self, values: &PromptValues) -> Result<String, PromptError> {
        if let Some(unknown) = values
            .names()
            .find(|n| !self.variables.iter().any(|v| v == n))
        {
            return Err(PromptError::UnknownVariable(unknown.to_owned()));
        }
        let lookup = |name: &str| values.get(name);
        let mut pieces: Vec<String> = Vec::with_capacity(self.formatted_examples.len() + 2);
        // As LangChain, only non-empty pieces are joined: a prefix or suffix that renders to
        // nothing (an empty template, or one whose values are empty) is left out.
        let prefix = self.prefix.render(&lookup)?;
        if !prefix.is_empty() {
            pieces.push(prefix);
        }
        pieces.extend(
            self.formatted_examples
                .iter()
                .filter(|e| !e.is_empty())
                .cloned(),
        );
        let suffix = self.suffix.render(&lookup)?;
        if !suffix.is_empty() {
            pieces.push(suffix);
        }
        Ok(pieces.join(&self.separator))
    }
}

impl Prompt for FewShotPromptTemplate {
    fn input_variables(&self) -> Vec<String> {
        self.input_variables.clone()
    }

    fn format_messages(&self, values: &PromptValues) -> Result<Vec<Message>, PromptError> {
        Ok(vec![Message::user(self.format_values(values)?)])
    }
}

/// Builds a [`FewShotPromptTemplate`]; see [`FewShotPromptTemplate::builder`].
#[derive(Debug, Clone)]
pub struct FewShotPromptTemplateBuilder {
    example_prompt: PromptTemplate,
    examples: Vec<PromptValues>,
    prefix: String,
    suffix: String,
    separator: String,
    partials: Vec<(String, PromptValue)>,
}

impl FewShotPromptTemplateBuilder {
    /// Appends one example given as `(name, value)` pairs. Default: no examples.
    #[must_use]
    pub fn example<I, K, V>(mut self, example: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<PromptValue>,
    {
        self.examples.push(PromptValues::collect_from(example));
        self
    }

    /// Appends examples. Default: no examples.
    #[must_use]
    pub fn examples<I, E>(mut self, examples: I) -> Self
    where
        I: IntoIterator<Item = E>,
        E: Into<PromptValues>,
    {
        self.examples.extend(examples.into_iter().map(Into::into));
        self
    }

    /// The template before the examples. Default: empty (left out).
    #[must_use]
    pub fn prefix(mut self, template: impl Into<String>) -> Self {
        self.prefix = template.into();
        self
    }

    /// The template after the examples, usually holding the input. Default: empty (left
    /// out).
    #[must_use]
    pub fn suffix(mut self, template: impl Into<String>) -> Self {
        self.suffix = template.into();
        self
    }

    /// The text between prefix, examples and suffix. Default: `"\n\n"`.
    #[must_use]
    pub fn separator(mut self, separator: impl Into<String>) -> Self {
        self.separator = separator.into();
        self
    }

    /// Fixes a prefix or suffix variable. Default: no partial values.
    #[must_use]
    pub fn partial(mut self, name: impl Into<String>, value: impl Into<PromptValue>) -> Self {
        self.partials.push((name.into(), value.into()));
        self
    }

    /// Parses the prefix and suffix and formats the examples.
    ///
    /// # Errors
    ///
    /// A parse error of the prefix or suffix; [`PromptError::InvalidExample`] when an
    /// example lacks a variable of the example prompt; the errors of
    /// [`FewShotPromptTemplate::partial`].
    pub fn build(self) -> Result<FewShotPromptTemplate, PromptError> {
        let prefix = PromptTemplate::new(self.prefix)?;
        let suffix = PromptTemplate::new(self.suffix)?;
        let formatted_examples = self
            .examples
            .iter()
            .enumerate()
            .map(|(i, ex)| {
                self.example_prompt
                    .render(&|name| ex.get(name))
                    .map_err(|e| invalid_example(i, e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut variables: Vec<String> = prefix.variables().to_vec();
        for v in suffix.variables() {
            if !variables.contains(v) {
                variables.push(v.clone());
            }
        }
        let mut template = FewShotPromptTemplate {
            examples: self.examples,
            formatted_examples,
            example_prompt: self.example_prompt,
            prefix,
            suffix,
            separator: self.separator,
            input_variables: variables.clone(),
            variables,
        };
        for (name, value) in self.partials {
            template = template.partial(name, value)?;
        }
        Ok(template)
    }
}

/// Few-shot examples as chat messages (LangChain's `FewShotChatMessagePromptTemplate`):
/// each example is formatted with a chat example prompt, typically a user message and an
/// assistant answer, and the messages are concatenated.
///
/// The examples are formatted once, when the template is built. Insert them into a larger
/// chat prompt with [`ChatPromptTemplateBuilder::few_shot`](super::ChatPromptTemplateBuilder::few_shot).
///
/// ```
/// use catena_core::prompt::{ChatPromptTemplate, FewShotChatMessagePromptTemplate, PromptValues};
/// use catena_core::Message;
///
/// let examples = FewShotChatMessagePromptTemplate::from_examples(
///     "input",
///     "output",
///     [
///         PromptValues::from([("input", "2 + 2"), ("output", "4")]),
///         PromptValues::from([("input", "2 + 3"), ("output", "5")]),
///     ],
/// )?;
/// assert_eq!(
///     examples.messages(),
///     [
///         Message::user("2 + 2"),
///         Message::assistant("4"),
///         Message::user("2 + 3"),
///         Message::assistant("5"),
///     ]
/// );
///
/// let prompt = ChatPromptTemplate::builder()
///     .system("You are a calculator.")
///     .few_shot(&examples)
///     .user("{input}")
///     .build()?;
/// assert_eq!(prompt.format_messages([("input", "3 + 3")])?.len(), 6);
/// # Ok::<(), catena_core::prompt::PromptError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct FewShotChatMessagePromptTemplate {
    examples: Vec<PromptValues>,
    example_prompt: ChatPromptTemplate,
    messages: Vec<Message>,
}

impl FewShotChatMessagePromptTemplate {
    /// Formats each example with `example_prompt`. Keys of an example the example prompt
    /// does not use are ignored.
    ///
    /// # Errors
    ///
    /// [`PromptError::InvalidExample`] when an example lacks a variable of the example
    /// prompt or gives a value of the wrong kind.
    pub fn new<I, E>(example_prompt: ChatPromptTemplate, examples: I) -> Result<Self, PromptError>
    where
        I: IntoIterator<Item = E>,
        E: Into<PromptValues>,
    {
        let examples: Vec<PromptValues> = examples.into_iter().map(Into::into).collect();
        let mut messages = Vec::new();
        for (i, ex) in examples.iter().enumerate() {
            messages.extend(
                example_prompt
                    .render(ex)
                    .map_err(|e| invalid_example(i, e))?,
            );
        }
        Ok(FewShotChatMessagePromptTemplate {
            examples,
            example_prompt,
            messages,
        })
    }

    /// Each example becomes a user message with the value of `input_key` and an assistant
    /// message with the value of `output_key`.
    ///
    /// # Errors
    ///
    /// [`PromptError::InvalidVariableName`] when a key is not an identifier;
    /// [`PromptError::InvalidExample`] when an example lacks one of the keys.
    pub fn from_examples<I, E>(
        input_key: &str,
        output_key: &str,
        examples: I,
    ) -> Result<Self, PromptError>
    where
        I: IntoIterator<Item = E>,
        E: Into<PromptValues>,
    {
        for key in [input_key, output_key] {
            if !super::is_identifier(key) {
                return Err(PromptError::InvalidVariableName {
                    name: key.to_owned(),
                    position: 0,
                });
            }
        }
        let prompt = ChatPromptTemplate::from_messages([
            (Role::User, format!("{{{input_key}}}")),
            (Role::Assistant, format!("{{{output_key}}}")),
        ])?;
        Self::new(prompt, examples)
    }

    /// The formatted example messages.
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// The examples, as given.
    pub fn examples(&self) -> &[PromptValues] {
        &self.examples
    }

    /// The chat prompt each example is formatted with.
    pub fn example_prompt(&self) -> &ChatPromptTemplate {
        &self.example_prompt
    }
}

impl Prompt for FewShotChatMessagePromptTemplate {
    fn input_variables(&self) -> Vec<String> {
        Vec::new()
    }

    fn format_messages(&self, values: &PromptValues) -> Result<Vec<Message>, PromptError> {
        if let Some(unknown) = values.names().next() {
            return Err(PromptError::UnknownVariable(unknown.to_owned()));
        }
        Ok(self.messages.clone())
    }
}
