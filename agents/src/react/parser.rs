//! Parsing a ReAct model's text into an action or a final answer.
//!
//! Labels are found line by line: a line whose text (after whitespace, markdown emphasis
//! `*`/`_` and heading `#` marks) starts with a known label, case-insensitively, followed by
//! `:` (emphasis may sit on either side of the colon). Nothing here slices at a byte
//! offset that is not a char boundary: offsets only come from ASCII matches.

use serde_json::{Map, Value};

/// What one model turn asked for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Parsed {
    /// Run a tool.
    Action {
        /// The tool name as written (quotes, backticks and emphasis removed).
        tool: String,
        /// The action input text (code fences removed), not yet interpreted.
        input: String,
    },
    /// The model is done.
    Final(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Label {
    Thought,
    Action,
    ActionInput,
    Observation,
    FinalAnswer,
}

// Longer labels first so `action input` is not read as `action`.
const LABELS: [(&str, Label); 5] = [
    ("action input", Label::ActionInput),
    ("final answer", Label::FinalAnswer),
    ("observation", Label::Observation),
    ("thought", Label::Thought),
    ("action", Label::Action),
];

fn is_decoration(c: char) -> bool {
    c == '*' || c == '_' || c == '#' || c.is_whitespace()
}

/// If `line` starts with a label, the label and the text after its colon.
fn label_of(line: &str) -> Option<(Label, &str)> {
    let rest = line.trim_start_matches(is_decoration);
    for (word, label) in LABELS {
        let Some(head) = rest.get(..word.len()) else {
            continue;
        };
        if !head.eq_ignore_ascii_case(word) {
            continue;
        }
        let after = rest[word.len()..].trim_start_matches(['*', '_', ' ', '\t']);
        if let Some(value) = after.strip_prefix(':') {
            return Some((label, value.trim_start_matches(['*', '_'])));
        }
    }
    None
}

/// Splits `text` into labelled sections, stopping at the first `Observation:` (the stop
/// sequence should have cut the output there; a provider that ignores it would otherwise
/// feed us the model's invented observation).
fn sections(text: &str) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    for line in text.lines() {
        match label_of(line) {
            Some((Label::Observation, _)) => break,
            Some((label, value)) => out.push(Section {
                label,
                body: value.to_owned(),
                raw: line.to_owned(),
            }),
            None => {
                if let Some(s) = out.last_mut() {
                    for text in [&mut s.body, &mut s.raw] {
                        text.push('\n');
                        text.push_str(line);
                    }
                }
            }
        }
    }
    out
}

/// One labelled part of the output: the text after the label's colon (`body`) and the
/// whole part as written (`raw`), each with the unlabelled lines that follow.
struct Section {
    label: Label,
    body: String,
    raw: String,
}

/// `text` up to the first `Observation:` line: what the model wrote before it should have
/// been stopped. Kept in the scratchpad instead of an invented observation.
pub(crate) fn before_observation(text: &str) -> &str {
    let mut end = 0;
    for line in text.split_inclusive('\n') {
        if matches!(label_of(line), Some((Label::Observation, _))) {
            break;
        }
        end += line.len();
    }
    text.get(..end).unwrap_or(text)
}

/// Removes a surrounding markdown code fence (with or without a language tag) or inline
/// backticks.
fn strip_fence(s: &str) -> &str {
    let t = s.trim();
    if let Some(rest) = t.strip_prefix("```") {
        // Drop the language tag line, then everything from the closing fence on.
        let body = match rest.find('\n') {
            Some(i) => &rest[i + 1..],
            None => rest,
        };
        let body = match body.rfind("```") {
            Some(i) => &body[..i],
            None => body,
        };
        return body.trim();
    }
    if t.len() >= 2 && t.starts_with('`') && t.ends_with('`') {
        return t.trim_matches('`').trim();
    }
    t
}

fn clean_name(s: &str) -> String {
    let first = s.trim().lines().next().unwrap_or_default();
    first
        .trim_matches(|c: char| c.is_whitespace() || matches!(c, '`' | '"' | '\'' | '*' | '_'))
        .trim_end_matches(['.', ','])
        .to_owned()
}

/// Parses one model output.
///
/// Rule for an output with both an action and a final answer (LangChain's rule too): it is
/// a format error, because the model cannot know the final answer before it has seen the
/// action's observation. An invented observation between them is cut off first (see
/// [`sections`]), so `Action … Observation: … Final Answer: …` is read as the action.
pub(crate) fn parse(text: &str) -> Result<Parsed, String> {
    let sections = sections(text);
    let action = sections.iter().position(|s| s.label == Label::Action);
    let final_answer = sections.iter().position(|s| s.label == Label::FinalAnswer);
    match (action, final_answer) {
        (Some(_), Some(_)) => Err(
            "the output has both an Action and a Final Answer; give one of them, not both"
                .to_owned(),
        ),
        (None, Some(i)) => {
            // Later labelled lines (a stray `Thought:`) stay part of the answer, as written.
            let answer = std::iter::once(sections[i].body.as_str())
                .chain(sections[i + 1..].iter().map(|s| s.raw.as_str()))
                .collect::<Vec<_>>()
                .join("\n");
            let answer = answer.trim();
            if answer.is_empty() {
                return Err("the Final Answer is empty".to_owned());
            }
            Ok(Parsed::Final(answer.to_owned()))
        }
        (Some(i), None) => {
            let tool = clean_name(&sections[i].body);
            if tool.is_empty() {
                return Err("the Action names no tool".to_owned());
            }
            let input = sections[i + 1..]
                .iter()
                .find(|s| s.label == Label::ActionInput)
                .ok_or_else(|| "`Action Input:` is missing after `Action:`".to_owned())?;
            Ok(Parsed::Action {
                tool,
                input: strip_fence(&input.body).to_owned(),
            })
        }
        (None, None) => Err("no `Action:` or `Final Answer:` was found".to_owned()),
    }
}

/// The name of the schema's only property, when it has exactly one and it is a string.
fn single_string_property(schema: &Value) -> Option<&str> {
    let props = schema.get("properties")?.as_object()?;
    if props.len() != 1 {
        return None;
    }
    let (name, prop) = props.iter().next()?;
    let is_string = match prop.get("type") {
        Some(Value::String(t)) => t == "string",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "string"),
        _ => false,
    };
    is_string.then_some(name.as_str())
}

/// Interprets the action input for a tool with parameter schema `schema`.
///
/// A JSON object is used as is; empty input is `{}`. Anything else (plain text, a JSON
/// string, number or array) is wrapped as `{"<property>": "<text>"}` when the schema has a
/// single string property (for [`AgentTool`](crate::AgentTool) that is `{"input": …}`), and
/// is a format error otherwise.
pub(crate) fn arguments(tool: &str, input: &str, schema: &Value) -> Result<Value, String> {
    let input = input.trim();
    if input.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    let text = match serde_json::from_str::<Value>(input) {
        Ok(v @ Value::Object(_)) => return Ok(v),
        Ok(Value::String(s)) => s,
        _ => input
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .unwrap_or(input)
            .to_owned(),
    };
    match single_string_property(schema) {
        Some(name) => {
            let mut map = Map::new();
            map.insert(name.to_owned(), Value::String(text));
            Ok(Value::Object(map))
        }
        None => Err(format!(
            "the Action Input for `{tool}` must be a JSON object matching its arguments schema"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn action(tool: &str, input: &str) -> Parsed {
        Parsed::Action {
            tool: tool.into(),
            input: input.into(),
        }
    }

    #[test]
    fn plain_action() {
        let p = parse(" I should look.\nAction: search\nAction Input: {\"q\": \"rust\"}\n");
        assert_eq!(p, Ok(action("search", "{\"q\": \"rust\"}")));
    }

    #[test]
    fn bold_labels_case_and_fences() {
        let text = "**Thought:** look\n**action**: `search`\n**ACTION INPUT:**\n```json\n{\"q\": 1}\n```\n";
        assert_eq!(parse(text), Ok(action("search", "{\"q\": 1}")));
        let text = "Action:search\nAction Input:   `hello`  ";
        assert_eq!(parse(text), Ok(action("search", "hello")));
    }

    #[test]
    fn final_answer_multiline() {
        let p = parse("I know it.\nFinal Answer: line one\nline two\n");
        assert_eq!(p, Ok(Parsed::Final("line one\nline two".into())));
        assert_eq!(
            parse("  **Final Answer:**   42 "),
            Ok(Parsed::Final("42".into()))
        );
    }

    #[test]
    fn both_is_an_error_unless_an_observation_separates_them() {
        let both = "Action: search\nAction Input: x\nFinal Answer: y";
        assert!(parse(both).unwrap_err().contains("both"));
        let invented = "Action: search\nAction Input: x\nObservation: made up\nFinal Answer: y";
        assert_eq!(parse(invented), Ok(action("search", "x")));
    }

    #[test]
    fn log_is_cut_at_an_invented_observation() {
        let text = "Action: a\nAction Input: x\n**Observation:** fake\nFinal Answer: y";
        assert_eq!(before_observation(text), "Action: a\nAction Input: x\n");
        assert_eq!(before_observation("Final Answer: ü"), "Final Answer: ü");
    }

    #[test]
    fn errors() {
        assert!(parse("just chatting").is_err());
        assert!(parse("").is_err());
        assert!(parse("Action: search")
            .unwrap_err()
            .contains("Action Input"));
        assert!(parse("Final Answer:   ").is_err());
        assert!(parse("Action: \nAction Input: x").is_err());
    }

    #[test]
    fn never_panics_on_odd_text() {
        for s in [
            "é",
            "Actioné",
            "**",
            "Action Input",
            "```",
            "`",
            "Final Answerü:",
            "ÄÖ:\n:",
            "Action:\u{1F600}\nAction Input: ```",
        ] {
            let _ = parse(s);
            let _ = strip_fence(s);
        }
    }

    #[test]
    fn arguments_wrapping() {
        let single = json!({"type": "object", "properties": {"text": {"type": "string"}}});
        let two = json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}});
        assert_eq!(arguments("t", "{\"a\":1}", &two), Ok(json!({"a": 1})));
        assert_eq!(
            arguments("t", "hello", &single),
            Ok(json!({"text": "hello"}))
        );
        assert_eq!(arguments("t", "\"hi\"", &single), Ok(json!({"text": "hi"})));
        assert_eq!(arguments("t", "42", &single), Ok(json!({"text": "42"})));
        assert_eq!(arguments("t", "", &two), Ok(json!({})));
        assert!(arguments("t", "hello", &two).is_err());
    }
}
