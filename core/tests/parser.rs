#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Output parsers: JSON extraction, typed parsing with field-level errors, lists.

use std::sync::Arc;

use catena_core::parser::{
    CommaSeparatedListOutputParser, JsonOutputParser, LineListOutputParser, OutputParser,
    ParseError, StrOutputParser, TypedOutputParser,
};
use catena_core::{Error, Message};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

#[test]
fn str_parser_trims() {
    let p = StrOutputParser::new();
    assert_eq!(p.parse("\n\t hello world  \n").unwrap(), "hello world");
    assert_eq!(p.parse("   ").unwrap(), "");
    assert_eq!(p.format_instructions(), None);
    assert_eq!(p.parse_message(&Message::assistant(" hi ")).unwrap(), "hi");
}

#[test]
fn json_bare() {
    let p = JsonOutputParser::new();
    assert_eq!(
        p.parse(r#"  {"a": 1, "b": [true, null]} "#).unwrap(),
        json!({"a": 1, "b": [true, null]})
    );
    assert_eq!(p.parse("[1, 2]").unwrap(), json!([1, 2]));
}

#[test]
fn json_in_fenced_blocks() {
    let p = JsonOutputParser::new();
    let tagged = "Here is the data:\n```json\n{\"name\": \"Ada\"}\n```\nHope it helps!";
    assert_eq!(p.parse(tagged).unwrap(), json!({"name": "Ada"}));
    let bare = "```\n[\"a\", \"b\"]\n```";
    assert_eq!(p.parse(bare).unwrap(), json!(["a", "b"]));
    let upper = "```JSON\n{\"x\": 1}\n```";
    assert_eq!(p.parse(upper).unwrap(), json!({"x": 1}));
    // A code block in another language is not taken for JSON.
    let mixed = "```rust\nlet x = vec![1];\n```\nAnswer: {\"ok\": true}";
    assert_eq!(p.parse(mixed).unwrap(), json!({"ok": true}));
}

#[test]
fn json_surrounded_by_prose() {
    let p = JsonOutputParser::new();
    let text =
        "Sure! {not json} The result is {\"items\": [{\"id\": 1, \"s\": \"a } b\"}]} as requested.";
    assert_eq!(
        p.parse(text).unwrap(),
        json!({"items": [{"id": 1, "s": "a } b"}]})
    );
    let array = "The list: [1, 2, 3]. Done.";
    assert_eq!(p.parse(array).unwrap(), json!([1, 2, 3]));
}

#[test]
fn json_errors_are_typed() {
    let p = JsonOutputParser::new();
    assert_eq!(p.parse("  \n "), Err(ParseError::Empty));
    assert_eq!(p.parse("I don't know."), Err(ParseError::NoJsonFound));
    match p.parse(r#"{"a": 1,}"#) {
        Err(ParseError::InvalidJson(msg)) => assert!(msg.contains("line 1"), "{msg}"),
        other => panic!("expected InvalidJson, got {other:?}"),
    }
    match p.parse("```json\n{\"a\": \n```") {
        Err(ParseError::InvalidJson(_)) => {}
        other => panic!("expected InvalidJson, got {other:?}"),
    }
    // Truncated output.
    assert!(matches!(
        p.parse(r#"{"a": [1, 2"#),
        Err(ParseError::InvalidJson(_))
    ));
    let err: Error = ParseError::NoJsonFound.into();
    assert!(matches!(err, Error::Parse(ParseError::NoJsonFound)));
}

#[derive(Debug, PartialEq, Deserialize, JsonSchema)]
struct Address {
    city: String,
    zip: Option<String>,
}

#[derive(Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Person {
    /// Full name.
    name: String,
    age: u8,
    tags: Vec<String>,
    address: Address,
    #[serde(default)]
    nickname: Option<String>,
}

fn person_json() -> Value {
    json!({
        "name": "Ada",
        "age": 36,
        "tags": ["math", "code"],
        "address": {"city": "London", "zip": null}
    })
}

#[test]
fn typed_parse_success_from_fence() {
    let p = TypedOutputParser::<Person>::new();
    let text = format!("Result:\n```json\n{}\n```", person_json());
    let person = p.parse(&text).unwrap();
    assert_eq!(
        person,
        Person {
            name: "Ada".into(),
            age: 36,
            tags: vec!["math".into(), "code".into()],
            address: Address {
                city: "London".into(),
                zip: None
            },
            nickname: None,
        }
    );
}

fn mismatch(p: &TypedOutputParser<Person>, value: Value) -> (String, String) {
    match p.parse(&value.to_string()) {
        Err(ParseError::SchemaMismatch { path, message }) => (path, message),
        other => panic!("expected SchemaMismatch, got {other:?}"),
    }
}

#[test]
fn typed_errors_name_the_field() {
    let p = TypedOutputParser::<Person>::new();

    let mut v = person_json();
    v["age"] = json!("thirty");
    let (path, message) = mismatch(&p, v);
    assert_eq!(path, "age");
    assert!(message.contains("expected integer"), "{message}");
    assert!(message.contains("string"), "{message}");

    let mut v = person_json();
    v["address"]["city"] = json!(12);
    assert_eq!(mismatch(&p, v).0, "address.city");

    let mut v = person_json();
    v["tags"][1] = json!(false);
    assert_eq!(mismatch(&p, v).0, "tags[1]");

    let mut v = person_json();
    v["age"] = json!(300);
    assert_eq!(mismatch(&p, v).0, "age");

    let mut v = person_json();
    v.as_object_mut().unwrap().remove("name");
    let (path, message) = mismatch(&p, v);
    assert_eq!(path, "name");
    assert_eq!(message, "missing required field");

    let mut v = person_json();
    v["agee"] = json!(1);
    let (path, message) = mismatch(&p, v);
    assert_eq!((path.as_str(), message.as_str()), ("agee", "unknown field"));

    let err = p.parse("[1]").unwrap_err();
    assert!(matches!(err, ParseError::SchemaMismatch { ref path, .. } if path.is_empty()));
    assert!(err.to_string().contains("expected object"), "{err}");
}

#[test]
fn typed_schema_and_instructions() {
    let p = TypedOutputParser::<Person>::new();
    let schema = p.schema();
    assert_eq!(schema["type"], "object");
    assert_eq!(schema["properties"]["age"]["type"], "integer");
    let required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(required.contains(&"name") && !required.contains(&"nickname"));
    let instructions = p.format_instructions().unwrap();
    assert!(instructions.contains("JSON schema"));
    assert!(instructions.contains("\"Full name.\""), "{instructions}");
}

#[test]
fn typed_propagates_extraction_errors() {
    let p = TypedOutputParser::<Person>::new();
    assert_eq!(p.parse(""), Err(ParseError::Empty));
    assert_eq!(p.parse("nothing"), Err(ParseError::NoJsonFound));
}

#[test]
fn comma_separated_list() {
    let p = CommaSeparatedListOutputParser::new();
    assert_eq!(p.parse("a, b,c ,  d").unwrap(), ["a", "b", "c", "d"]);
    assert_eq!(p.parse("one").unwrap(), ["one"]);
    assert_eq!(p.parse("x,,y,").unwrap(), ["x", "y"]);
    assert_eq!(
        p.parse(r#""New York, NY", Paris"#).unwrap(),
        ["New York, NY", "Paris"]
    );
    assert!(p.parse("").unwrap().is_empty());
    assert!(p.format_instructions().unwrap().contains("comma separated"));
}

#[test]
fn line_list_strips_markers() {
    let p = LineListOutputParser::new();
    let text = "1. first\n2) second\n\n   - third\n* fourth\n+ fifth\n• sixth\n10. tenth\nplain line\n   \n";
    assert_eq!(
        p.parse(text).unwrap(),
        [
            "first",
            "second",
            "third",
            "fourth",
            "fifth",
            "sixth",
            "tenth",
            "plain line"
        ]
    );
    // Not markers: no space after them.
    assert_eq!(p.parse("-5 C\n3.14 pi").unwrap(), ["-5 C", "3.14 pi"]);
}

#[test]
fn parsers_are_usable_as_trait_objects() {
    let p: Arc<dyn OutputParser<Output = Value>> = Arc::new(JsonOutputParser::new());
    assert_eq!(p.parse("{\"a\":1}").unwrap(), json!({"a": 1}));
    let boxed: Box<dyn OutputParser<Output = Vec<String>>> = Box::new(LineListOutputParser::new());
    assert_eq!(boxed.parse("- a").unwrap(), ["a"]);
}

#[test]
fn json_broken_outer_value_does_not_yield_inner_object() {
    let p = JsonOutputParser::new();
    // Truncated: the outer value is never closed.
    for text in [
        r#"{"items": [{"a":1}, {"a""#,
        "```json\n{\"items\": [{\"a\":1}, {\"a\"\n```",
        r#"Here you go: {"items": [{"a":1}, {"a""#,
    ] {
        assert!(
            matches!(p.parse(text), Err(ParseError::InvalidJson(_))),
            "{text}: {:?}",
            p.parse(text)
        );
    }
    // Closed but invalid: the nested object is not the answer.
    for text in [
        r#"{"user": {"name":"Ada"}, "age": }"#,
        r#"Result: {"user": {"name":"Ada"}, "age": } done"#,
    ] {
        assert!(
            matches!(p.parse(text), Err(ParseError::InvalidJson(_))),
            "{text}: {:?}",
            p.parse(text)
        );
    }
    // JSON wrapped in prose still parses, also after a broken candidate.
    assert_eq!(
        p.parse(r#"Here you go: {"a": 1} hope it helps"#).unwrap(),
        json!({"a": 1})
    );
    assert_eq!(
        p.parse(r#"Draft: {"a": } Final: {"a": 2}"#).unwrap(),
        json!({"a": 2})
    );
    assert_eq!(
        p.parse(r#"I use { loosely. Result: {"ok": true}"#).unwrap(),
        json!({"ok": true})
    );
}

/// Internally tagged, so serde picks the variant by its tag, but the schema is a `oneOf`
/// whose `Branch` and `Twig` options both descend into `child`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(tag = "kind")]
#[allow(dead_code)]
enum Tree {
    Leaf {
        value: u8,
    },
    Branch {
        child: Box<Tree>,
    },
    Twig {
        child: Box<Tree>,
        #[serde(default)]
        extra: u8,
    },
}

#[test]
fn typed_mismatch_explanation_is_bounded_on_nested_alternatives() {
    let p = TypedOutputParser::<Tree>::new();
    let mut value = json!({"kind": "Leaf", "value": "not a number"});
    for _ in 0..40 {
        value = json!({"child": value, "kind": "Branch"});
    }
    match p.parse_value(&value) {
        Err(ParseError::SchemaMismatch { message, .. }) => assert!(!message.is_empty()),
        other => panic!("expected SchemaMismatch, got {other:?}"),
    }
    // Shallow mismatches are still explained with their path.
    let shallow = json!({"kind": "Branch", "child": {"kind": "Leaf", "value": "x"}});
    match p.parse_value(&shallow) {
        Err(ParseError::SchemaMismatch { path, .. }) => {
            assert!(path.starts_with("child"), "{path}")
        }
        other => panic!("expected SchemaMismatch, got {other:?}"),
    }
}
