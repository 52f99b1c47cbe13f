//! The f-string style text template.

use std::collections::BTreeSet;

use super::{is_identifier, Prompt, PromptError, PromptValue, PromptValues};
use crate::Message;

/// One parsed piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// Text copied as is (escapes already resolved).
    Literal(String),
    /// A `{name}` slot.
    Variable(String),
}

/// A text template with `{variable}` slots, f-string style.
///
/// `{{` and `}}` are literal braces. The template is parsed once, by [`new`](Self::new);
/// [`format`](Self::format) then inserts each value verbatim in a single pass, so values
/// are never interpreted as template syntax.
///
/// ```
/// use catena_core::prompt::{PromptError, PromptTemplate};
///
/// let t = PromptTemplate::new("Translate {text} into {lang}. Use {{ and }} as is.")?;
/// assert_eq!(t.input_variables(), ["text", "lang"]);
///
/// let french = t.partial("lang", "French")?;
/// assert_eq!(french.input_variables(), ["text"]);
/// assert_eq!(
///     french.format([("text", "{lang}")])?,
///     "Translate {lang} into French. Use { and } as is."
/// );
///
/// assert_eq!(
///     PromptTemplate::new("Hi {user.name}").unwrap_err(),
///     PromptError::InvalidVariableName { name: "user.name".into(), position: 3 }
/// );
/// # Ok::<(), PromptError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PromptTemplate {
    template: String,
    segments: Vec<Segment>,
    /// Every variable used, in order of first appearance.
    variables: Vec<String>,
    /// `variables` minus the partial ones.
    input_variables: Vec<String>,
    partials: PromptValues,
}

impl PromptTemplate {
    /// Parses `template`.
    ///
    /// # Errors
    ///
    /// [`PromptError::UnclosedBrace`], [`PromptError::UnmatchedClosingBrace`],
    /// [`PromptError::EmptyVariable`] or [`PromptError::InvalidVariableName`] (which
    /// includes attribute, index, conversion and format-spec access such as `{a.b}`,
    /// `{a[0]}`, `{a!r}` and `{a:>10}`).
    pub fn new(template: impl Into<String>) -> Result<Self, PromptError> {
        let template = template.into();
        let segments = parse(&template)?;
        let mut variables: Vec<String> = Vec::new();
        for s in &segments {
            if let Segment::Variable(name) = s {
                if !variables.contains(name) {
                    variables.push(name.clone());
                }
            }
        }
        Ok(PromptTemplate {
            template,
            segments,
            input_variables: variables.clone(),
            variables,
            partials: PromptValues::new(),
        })
    }

    /// Checks that `declared` names exactly the variables the template still needs
    /// (in any order), and returns the template unchanged.
    ///
    /// # Errors
    ///
    /// [`PromptError::InputVariablesMismatch`] when the two sets differ.
    pub fn with_input_variables<I, S>(self, declared: I) -> Result<Self, PromptError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let declared: BTreeSet<String> = declared.into_iter().map(Into::into).collect();
        let found: BTreeSet<String> = self.input_variables.iter().cloned().collect();
        if declared == found {
            Ok(self)
        } else {
            Err(PromptError::InputVariablesMismatch {
                declared: declared.into_iter().collect(),
                found: found.into_iter().collect(),
            })
        }
    }

    /// A copy of this template with `name` fixed to `value`; `name` is no longer an input
    /// variable (a value given at format time still overrides it).
    ///
    /// # Errors
    ///
    /// [`PromptError::UnknownVariable`] when the template does not use `name`;
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
        if value.as_text().is_none() {
            return Err(wrong_type(&name));
        }
        let mut out = self.clone();
        out.input_variables.retain(|v| *v != name);
        out.partials.insert(name, value);
        Ok(out)
    }

    /// The template text, as given.
    pub fn template(&self) -> &str {
        &self.template
    }

    /// The variables that must be given to [`format`](Self::format), in order of first
    /// appearance (partial variables excluded).
    pub fn input_variables(&self) -> &[String] {
        &self.input_variables
    }

    /// Every variable the template uses, partial ones included.
    pub fn variables(&self) -> &[String] {
        &self.variables
    }

    /// The partial values set with [`partial`](Self::partial).
    pub fn partials(&self) -> &PromptValues {
        &self.partials
    }

    /// Formats the template with `values`: anything iterating over `(name, value)` pairs,
    /// such as `[("name", "Ada")]`, `&HashMap<String, String>`, a `serde_json::Map` or
    /// [`&PromptValues`](PromptValues).
    ///
    /// # Errors
    ///
    /// [`PromptError::UnknownVariable`] for a value the template does not use,
    /// [`PromptError::MissingVariable`] for a variable without a value,
    /// [`PromptError::WrongValueType`] for messages given to a text variable.
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
        self.render(&|name| values.get(name))
    }

    /// Renders with `lookup` (values the caller gives, checked for unknown names by the
    /// caller); partials fill what `lookup` lacks. Single pass: values are never parsed.
    pub(crate) fn render<'v, F>(&'v self, lookup: &F) -> Result<String, PromptError>
    where
        F: Fn(&str) -> Option<&'v PromptValue>,
    {
        let mut out = String::with_capacity(self.template.len());
        for segment in &self.segments {
            match segment {
                Segment::Literal(text) => out.push_str(text),
                Segment::Variable(name) => {
                    let value = lookup(name)
                        .or_else(|| self.partials.get(name))
                        .ok_or_else(|| PromptError::MissingVariable(name.clone()))?;
                    let text = value.as_text().ok_or_else(|| wrong_type(name))?;
                    out.push_str(text);
                }
            }
        }
        Ok(out)
    }
}

impl Prompt for PromptTemplate {
    fn input_variables(&self) -> Vec<String> {
        self.input_variables.clone()
    }

    fn format_messages(&self, values: &PromptValues) -> Result<Vec<Message>, PromptError> {
        Ok(vec![Message::user(self.format_values(values)?)])
    }
}

fn wrong_type(name: &str) -> PromptError {
    PromptError::WrongValueType {
        name: name.to_owned(),
        expected: "text",
    }
}

/// Parses f-string syntax into segments.
fn parse(template: &str) -> Result<Vec<Segment>, PromptError> {
    let mut segments = Vec::new();
    let mut literal = String::new();
    let mut rest = template;
    let mut offset = 0;
    while let Some(i) = rest.find(['{', '}']) {
        literal.push_str(&rest[..i]);
        let position = offset + i;
        let after = &rest[i + 1..];
        let consumed = if rest[i..].starts_with('{') {
            if after.starts_with('{') {
                literal.push('{');
                2
            } else {
                let end = after
                    .find('}')
                    .ok_or(PromptError::UnclosedBrace { position })?;
                let name = &after[..end];
                if name.is_empty() {
                    return Err(PromptError::EmptyVariable { position });
                }
                if !is_identifier(name) {
                    return Err(PromptError::InvalidVariableName {
                        name: name.to_owned(),
                        position,
                    });
                }
                if !literal.is_empty() {
                    segments.push(Segment::Literal(std::mem::take(&mut literal)));
                }
                segments.push(Segment::Variable(name.to_owned()));
                end + 2
            }
        } else if after.starts_with('}') {
            literal.push('}');
            2
        } else {
            return Err(PromptError::UnmatchedClosingBrace { position });
        };
        rest = &rest[i + consumed..];
        offset += i + consumed;
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        segments.push(Segment::Literal(literal));
    }
    Ok(segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_segments() {
        assert_eq!(
            parse("a{b}c{{d}}").unwrap(),
            vec![
                Segment::Literal("a".into()),
                Segment::Variable("b".into()),
                Segment::Literal("c{d}".into()),
            ]
        );
        assert_eq!(parse("").unwrap(), vec![]);
        assert_eq!(parse("é{x}").unwrap()[1], Segment::Variable("x".into()));
    }

    #[test]
    fn positions_are_byte_offsets() {
        assert_eq!(
            parse("é{").unwrap_err(),
            PromptError::UnclosedBrace { position: 2 }
        );
        assert_eq!(
            parse("ab}").unwrap_err(),
            PromptError::UnmatchedClosingBrace { position: 2 }
        );
        assert_eq!(
            parse("{{{}").unwrap_err(),
            PromptError::EmptyVariable { position: 2 }
        );
    }
}
