//! Chat templates: a list of message templates and history placeholders.

use super::{
    is_identifier, FewShotChatMessagePromptTemplate, Prompt, PromptError, PromptTemplate,
    PromptValue, PromptValues,
};
use crate::{Message, Role};

/// One message of a chat template: a role and a [`PromptTemplate`] for its text.
///
/// ```
/// use catena_core::prompt::MessageTemplate;
/// use catena_core::Role;
///
/// let t = MessageTemplate::new(Role::System, "You are {persona}.")?;
/// let m = t.format([("persona", "a pirate")])?;
/// assert_eq!(m.role, Role::System);
/// assert_eq!(m.text(), "You are a pirate.");
/// # Ok::<(), catena_core::prompt::PromptError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct MessageTemplate {
    role: Role,
    template: PromptTemplate,
}

impl MessageTemplate {
    /// Parses `template` as the text of a `role` message.
    ///
    /// # Errors
    ///
    /// As [`PromptTemplate::new`].
    pub fn new(role: Role, template: impl Into<String>) -> Result<Self, PromptError> {
        Ok(MessageTemplate {
            role,
            template: PromptTemplate::new(template)?,
        })
    }

    /// A message template from an already parsed text template.
    pub fn from_template(role: Role, template: PromptTemplate) -> Self {
        MessageTemplate { role, template }
    }

    /// The role of the formatted message.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The text template.
    pub fn template(&self) -> &PromptTemplate {
        &self.template
    }

    /// Formats the message (strictly, as [`PromptTemplate::format`]).
    ///
    /// # Errors
    ///
    /// As [`PromptTemplate::format`].
    pub fn format<I, K, V>(&self, values: I) -> Result<Message, PromptError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<PromptValue>,
    {
        Ok(Message::new(self.role, self.template.format(values)?))
    }
}

/// Inserts a list of messages (typically the chat history) given as the variable `name`.
///
/// ```
/// use catena_core::prompt::MessagesPlaceholder;
///
/// let history = MessagesPlaceholder::new("history").optional(true);
/// assert_eq!(history.name(), "history");
/// assert!(history.is_optional());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagesPlaceholder {
    name: String,
    optional: bool,
}

impl MessagesPlaceholder {
    /// A required placeholder for the variable `name`.
    pub fn new(name: impl Into<String>) -> Self {
        MessagesPlaceholder {
            name: name.into(),
            optional: false,
        }
    }

    /// Whether the variable may be left out (then nothing is inserted). Default: `false`,
    /// a missing value is [`PromptError::MissingVariable`].
    #[must_use]
    pub fn optional(mut self, optional: bool) -> Self {
        self.optional = optional;
        self
    }

    /// The variable name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the variable may be left out.
    pub fn is_optional(&self) -> bool {
        self.optional
    }
}

#[derive(Debug, Clone, PartialEq)]
enum ChatPart {
    Template(MessageTemplate),
    Placeholder(MessagesPlaceholder),
    Literal(Message),
}

/// A chat prompt: message templates, fixed messages and [`MessagesPlaceholder`]s, formatted
/// into a `Vec<Message>`.
///
/// Each message is formatted on its own, in a single pass: a value inserted into one
/// message is data and never becomes template syntax for it or any other message.
/// Variables are shared: `{topic}` in two messages takes the same value.
///
/// ```
/// use catena_core::prompt::{ChatPromptTemplate, MessagesPlaceholder, PromptValues};
/// use catena_core::{Message, Role};
///
/// let prompt = ChatPromptTemplate::builder()
///     .system("You are a helpful {role}.")
///     .placeholder(MessagesPlaceholder::new("history"))
///     .user("{question}")
///     .build()?;
/// assert_eq!(prompt.input_variables(), ["role", "history", "question"]);
///
/// let values = PromptValues::new()
///     .with("role", "librarian")
///     .with("history", vec![Message::user("Hi"), Message::assistant("Hello!")])
///     .with("question", "Any book about {role}?");
/// let messages = prompt.format_values(&values)?;
/// assert_eq!(messages.len(), 4);
/// assert_eq!(messages[3].text(), "Any book about {role}?");
/// # Ok::<(), catena_core::prompt::PromptError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ChatPromptTemplate {
    parts: Vec<ChatPart>,
    /// Every variable name (text variables and placeholders), in order of first appearance.
    variables: Vec<String>,
    /// Required variables: `variables` minus partials and optional placeholders.
    input_variables: Vec<String>,
    partials: PromptValues,
}

impl ChatPromptTemplate {
    /// A builder for a chat template.
    pub fn builder() -> ChatPromptTemplateBuilder {
        ChatPromptTemplateBuilder::default()
    }

    /// A chat template from `(role, template)` pairs.
    ///
    /// ```
    /// use catena_core::prompt::ChatPromptTemplate;
    /// use catena_core::Role;
    ///
    /// let prompt = ChatPromptTemplate::from_messages([
    ///     (Role::System, "Answer in {lang}."),
    ///     (Role::User, "{question}"),
    /// ])?;
    /// assert_eq!(prompt.input_variables(), ["lang", "question"]);
    /// # Ok::<(), catena_core::prompt::PromptError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`PromptError::InvalidMessageTemplate`] naming the first template that does not parse.
    pub fn from_messages<I, S>(messages: I) -> Result<Self, PromptError>
    where
        I: IntoIterator<Item = (Role, S)>,
        S: Into<String>,
    {
        messages
            .into_iter()
            .fold(ChatPromptTemplate::builder(), |b, (role, t)| {
                b.message(role, t)
            })
            .build()
    }

    /// A copy of this template with `name` fixed to `value` (text for a text variable,
    /// messages for a placeholder). A value given at format time still overrides it.
    ///
    /// # Errors
    ///
    /// [`PromptError::UnknownVariable`] when the template does not use `name`;
    /// [`PromptError::WrongValueType`] when `value` has the wrong kind.
    pub fn partial(
        &self,
        name: impl Into<String>,
        value: impl Into<PromptValue>,
    ) -> Result<Self, PromptError> {
        let mut out = self.clone();
        out.add_partial(name.into(), value.into())?;
        Ok(out)
    }

    /// The variables that must be given (partials and optional placeholders excluded), in
    /// order of first appearance.
    pub fn input_variables(&self) -> &[String] {
        &self.input_variables
    }

    /// Every variable the template knows: text variables and placeholder names.
    pub fn variables(&self) -> &[String] {
        &self.variables
    }

    /// The partial values.
    pub fn partials(&self) -> &PromptValues {
        &self.partials
    }

    /// Formats the messages with `values`: anything iterating over `(name, value)` pairs.
    ///
    /// # Errors
    ///
    /// [`PromptError::UnknownVariable`] for a value no message uses,
    /// [`PromptError::MissingVariable`] for a variable (or required placeholder) without a
    /// value, [`PromptError::WrongValueType`] for text given to a placeholder or messages
    /// given to a text variable.
    pub fn format_messages<I, K, V>(&self, values: I) -> Result<Vec<Message>, PromptError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<PromptValue>,
    {
        self.format_values(&PromptValues::collect_from(values))
    }

    /// [`format_messages`](Self::format_messages) for values already collected in a
    /// [`PromptValues`].
    ///
    /// # Errors
    ///
    /// As [`format_messages`](Self::format_messages).
    pub fn format_values(&self, values: &PromptValues) -> Result<Vec<Message>, PromptError> {
        if let Some(unknown) = values
            .names()
            .find(|n| !self.variables.iter().any(|v| v == n))
        {
            return Err(PromptError::UnknownVariable(unknown.to_owned()));
        }
        self.render(values)
    }

    /// Formats without the unknown-variable check (few-shot examples may carry extra keys).
    pub(crate) fn render(&self, values: &PromptValues) -> Result<Vec<Message>, PromptError> {
        let lookup = |name: &str| values.get(name).or_else(|| self.partials.get(name));
        let mut out = Vec::with_capacity(self.parts.len());
        for part in &self.parts {
            match part {
                ChatPart::Template(t) => {
                    out.push(Message::new(t.role, t.template.render(&lookup)?));
                }
                ChatPart::Literal(m) => out.push(m.clone()),
                ChatPart::Placeholder(p) => match lookup(&p.name) {
                    Some(PromptValue::Messages(m)) => out.extend(m.iter().cloned()),
                    Some(_) => return Err(wrong_type(&p.name, true)),
                    None if p.optional => {}
                    None => return Err(PromptError::MissingVariable(p.name.clone())),
                },
            }
        }
        Ok(out)
    }

    fn is_placeholder(&self, name: &str) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, ChatPart::Placeholder(p) if p.name == name))
    }

    fn add_partial(&mut self, name: String, value: PromptValue) -> Result<(), PromptError> {
        if !self.variables.contains(&name) {
            return Err(PromptError::UnknownVariable(name));
        }
        let is_placeholder = self.is_placeholder(&name);
        if matches!(value, PromptValue::Messages(_)) != is_placeholder {
            return Err(wrong_type(&name, is_placeholder));
        }
        self.input_variables.retain(|v| *v != name);
        self.partials.insert(name, value);
        Ok(())
    }
}

impl Prompt for ChatPromptTemplate {
    fn input_variables(&self) -> Vec<String> {
        self.input_variables.clone()
    }

    fn format_messages(&self, values: &PromptValues) -> Result<Vec<Message>, PromptError> {
        self.format_values(values)
    }
}

fn wrong_type(name: &str, messages: bool) -> PromptError {
    PromptError::WrongValueType {
        name: name.to_owned(),
        expected: if messages {
            "a list of messages"
        } else {
            "text"
        },
    }
}

/// Builds a [`ChatPromptTemplate`]; see [`ChatPromptTemplate::builder`].
///
/// Template errors are kept and reported by [`build`](Self::build).
#[derive(Debug, Clone, Default)]
pub struct ChatPromptTemplateBuilder {
    parts: Vec<Result<ChatPart, PromptError>>,
    partials: Vec<(String, PromptValue)>,
}

impl ChatPromptTemplateBuilder {
    /// Appends a `role` message whose text is the template `template`.
    #[must_use]
    pub fn message(mut self, role: Role, template: impl Into<String>) -> Self {
        self.parts
            .push(MessageTemplate::new(role, template).map(ChatPart::Template));
        self
    }

    /// Appends a system message template.
    #[must_use]
    pub fn system(self, template: impl Into<String>) -> Self {
        self.message(Role::System, template)
    }

    /// Appends a user message template.
    #[must_use]
    pub fn user(self, template: impl Into<String>) -> Self {
        self.message(Role::User, template)
    }

    /// Appends an assistant message template.
    #[must_use]
    pub fn assistant(self, template: impl Into<String>) -> Self {
        self.message(Role::Assistant, template)
    }

    /// Appends an already parsed message template.
    #[must_use]
    pub fn message_template(mut self, template: MessageTemplate) -> Self {
        self.parts.push(Ok(ChatPart::Template(template)));
        self
    }

    /// Appends a placeholder for a list of messages (e.g. the chat history).
    #[must_use]
    pub fn placeholder(mut self, placeholder: MessagesPlaceholder) -> Self {
        self.parts.push(Ok(ChatPart::Placeholder(placeholder)));
        self
    }

    /// Appends a fixed message, inserted as is: its text is not a template, so braces in
    /// it need no escaping.
    #[must_use]
    pub fn literal(mut self, message: Message) -> Self {
        self.parts.push(Ok(ChatPart::Literal(message)));
        self
    }

    /// Appends the formatted examples of a few-shot chat template.
    #[must_use]
    pub fn few_shot(mut self, examples: &FewShotChatMessagePromptTemplate) -> Self {
        for m in examples.messages() {
            self.parts.push(Ok(ChatPart::Literal(m.clone())));
        }
        self
    }

    /// Fixes the variable `name` to `value` (see [`ChatPromptTemplate::partial`]). Default:
    /// no partial values.
    #[must_use]
    pub fn partial(mut self, name: impl Into<String>, value: impl Into<PromptValue>) -> Self {
        self.partials.push((name.into(), value.into()));
        self
    }

    /// Builds the template.
    ///
    /// # Errors
    ///
    /// [`PromptError::InvalidMessageTemplate`] for a message template that does not parse,
    /// [`PromptError::InvalidVariableName`] for a placeholder name that is not an
    /// identifier, [`PromptError::ConflictingVariable`] when a name is both a text variable
    /// and a placeholder, and the errors of [`ChatPromptTemplate::partial`].
    pub fn build(self) -> Result<ChatPromptTemplate, PromptError> {
        let mut parts = Vec::with_capacity(self.parts.len());
        for (index, part) in self.parts.into_iter().enumerate() {
            parts.push(part.map_err(|e| PromptError::InvalidMessageTemplate {
                index,
                source: Box::new(e),
            })?);
        }

        let mut variables: Vec<String> = Vec::new();
        let mut input_variables: Vec<String> = Vec::new();
        let mut text_vars: Vec<&str> = Vec::new();
        let mut placeholders: Vec<&str> = Vec::new();
        for part in &parts {
            match part {
                ChatPart::Template(t) => {
                    for v in t.template.variables() {
                        text_vars.push(v);
                        if !variables.contains(v) {
                            variables.push(v.clone());
                        }
                    }
                    // A variable the message template already fixes with a partial is not
                    // required (unless another part needs it).
                    for v in t.template.input_variables() {
                        if !input_variables.contains(v) {
                            input_variables.push(v.clone());
                        }
                    }
                }
                ChatPart::Placeholder(p) => {
                    if !is_identifier(&p.name) {
                        return Err(PromptError::InvalidVariableName {
                            name: p.name.clone(),
                            position: 0,
                        });
                    }
                    placeholders.push(&p.name);
                    if !variables.contains(&p.name) {
                        variables.push(p.name.clone());
                    }
                    if !p.optional && !input_variables.contains(&p.name) {
                        input_variables.push(p.name.clone());
                    }
                }
                ChatPart::Literal(_) => {}
            }
        }
        if let Some(name) = placeholders.iter().find(|p| text_vars.contains(p)) {
            return Err(PromptError::ConflictingVariable((*name).to_owned()));
        }
        // Keep the order of first appearance; a placeholder that is optional everywhere
        // stays out of the required list.
        input_variables.sort_by_key(|v| variables.iter().position(|x| x == v));

        let mut template = ChatPromptTemplate {
            parts,
            variables,
            input_variables,
            partials: PromptValues::new(),
        };
        for (name, value) in self.partials {
            template.add_partial(name, value)?;
        }
        Ok(template)
    }
}
