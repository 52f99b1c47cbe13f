//! Catena's splitters give the same chunks as LangChain's `langchain_text_splitters`.
//!
//! The inputs in `tests/data/splitter/` are real files (see `SOURCES.md` there): a crate
//! README and a Node.js maintainer guide (Markdown), a Rust source file from tiktoken-rs, the
//! CPython `textwrap.py`, the Python "Unicode HOWTO" (reST prose with non-ASCII text), and
//! Japanese, Chinese and Korean prose from CPython's test suite. `expected.json` holds
//! LangChain's output for them, produced by `tests/data/splitter/generate.py`:
//!
//! ```text
//! python3 -m venv /tmp/lc-venv
//! /tmp/lc-venv/bin/pip install langchain-text-splitters tiktoken
//! /tmp/lc-venv/bin/python core/tests/data/splitter/generate.py
//! ```
//!
//! The JSON records the LangChain, tiktoken and Python versions used. Cases cover the
//! recursive splitter (default separators at several sizes, `keep_separator` variants,
//! `from_language` for Rust, Python and Markdown, tiktoken lengths), `CharacterTextSplitter`
//! (literal and regex separators), `MarkdownHeaderTextSplitter`, `TokenTextSplitter` and
//! `start_index` metadata.
//!
//! The only tolerated difference: where LangChain's `TokenTextSplitter` cuts a character
//! between two token windows it decodes the pieces as U+FFFD, while Catena moves the cut to
//! the next character boundary. For such chunks the test checks that Catena's chunk is
//! LangChain's with the replacement characters resolved into the real character.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use catena_core::splitter::{
    CharacterTextSplitter, KeepSeparator, Language, MarkdownHeaderTextSplitter,
    RecursiveCharacterTextSplitter, TextSplitter, TokenEncoding, TokenTextSplitter,
    START_INDEX_KEY,
};
use catena_core::Document;
use serde_json::Value;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/splitter")
}

struct Case {
    name: String,
    args: Value,
    input: String,
    text: String,
    expected: Value,
}

fn cases(kind: &str) -> Vec<Case> {
    let raw = std::fs::read_to_string(data_dir().join("expected.json")).unwrap();
    let json: Value = serde_json::from_str(&raw).unwrap();
    let cases: Vec<Case> = json["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == kind)
        .map(|c| {
            let input = c["input"].as_str().unwrap().to_owned();
            Case {
                name: c["name"].as_str().unwrap().to_owned(),
                args: c["args"].clone(),
                text: std::fs::read_to_string(data_dir().join(&input)).unwrap(),
                input,
                expected: c["expected"].clone(),
            }
        })
        .collect();
    assert!(!cases.is_empty(), "no {kind} cases in expected.json");
    cases
}

fn usize_arg(args: &Value, key: &str) -> Option<usize> {
    args.get(key).and_then(Value::as_u64).map(|v| v as usize)
}

fn keep_arg(args: &Value) -> Option<KeepSeparator> {
    match args.get("keep_separator")? {
        Value::Bool(b) => Some((*b).into()),
        Value::String(s) if s == "start" => Some(KeepSeparator::Start),
        Value::String(s) if s == "end" => Some(KeepSeparator::End),
        other => panic!("unexpected keep_separator {other}"),
    }
}

fn recursive(args: &Value) -> RecursiveCharacterTextSplitter {
    let mut builder = match args.get("language").and_then(Value::as_str) {
        Some(name) => {
            RecursiveCharacterTextSplitter::from_language(name.parse::<Language>().unwrap())
        }
        None => RecursiveCharacterTextSplitter::builder(),
    };
    if let Some(size) = usize_arg(args, "chunk_size") {
        builder = builder.chunk_size(size);
    }
    if let Some(overlap) = usize_arg(args, "chunk_overlap") {
        builder = builder.chunk_overlap(overlap);
    }
    if let Some(keep) = keep_arg(args) {
        builder = builder.keep_separator(keep);
    }
    if let Some(strip) = args.get("strip_whitespace").and_then(Value::as_bool) {
        builder = builder.strip_whitespace(strip);
    }
    if let Some(add) = args.get("add_start_index").and_then(Value::as_bool) {
        builder = builder.add_start_index(add);
    }
    if let Some(name) = args.get("encoding_name").and_then(Value::as_str) {
        builder = builder.token_length(TokenEncoding::from_name(name).unwrap());
    }
    builder.build().unwrap()
}

fn character(args: &Value) -> CharacterTextSplitter {
    let mut builder = CharacterTextSplitter::builder();
    if let Some(size) = usize_arg(args, "chunk_size") {
        builder = builder.chunk_size(size);
    }
    if let Some(overlap) = usize_arg(args, "chunk_overlap") {
        builder = builder.chunk_overlap(overlap);
    }
    if let Some(separator) = args.get("separator").and_then(Value::as_str) {
        builder = builder.separator(separator);
    }
    if let Some(is_regex) = args.get("is_separator_regex").and_then(Value::as_bool) {
        builder = builder.is_separator_regex(is_regex);
    }
    if let Some(keep) = keep_arg(args) {
        builder = builder.keep_separator(keep);
    }
    builder.build().unwrap()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// Panics with the first differing chunk, which says more than a whole-vector diff.
fn assert_same_chunks(case: &Case, actual: &[String], expected: &[String]) {
    let label = format!("{} on {}", case.name, case.input);
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert_eq!(a, e, "{label}: chunk {i} differs");
    }
    assert_eq!(actual.len(), expected.len(), "{label}: chunk count differs");
}

#[test]
fn recursive_matches_langchain() {
    for case in cases("recursive") {
        let actual = recursive(&case.args).split_text(&case.text);
        assert_same_chunks(&case, &actual, &strings(&case.expected));
    }
}

#[test]
fn recursive_with_tiktoken_length_matches_langchain() {
    for case in cases("recursive_tiktoken") {
        let actual = recursive(&case.args).split_text(&case.text);
        assert_same_chunks(&case, &actual, &strings(&case.expected));
    }
}

#[test]
fn character_matches_langchain() {
    for case in cases("character") {
        let actual = character(&case.args).split_text(&case.text);
        assert_same_chunks(&case, &actual, &strings(&case.expected));
    }
}

#[test]
fn start_index_matches_langchain() {
    for case in cases("start_index") {
        let docs = recursive(&case.args).create_documents(&[case.text.as_str()], &[]);
        let expected = case.expected.as_array().unwrap();
        assert_eq!(docs.len(), expected.len(), "{}", case.input);
        for (doc, want) in docs.iter().zip(expected) {
            assert_eq!(doc.content, want["content"].as_str().unwrap());
            assert_eq!(
                doc.metadata[START_INDEX_KEY], want["start_index"],
                "{}",
                case.input
            );
        }
    }
}

#[test]
fn markdown_headers_match_langchain() {
    for case in cases("markdown_headers") {
        let headers: Vec<(String, String)> = case.args["headers_to_split_on"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h[0].as_str().unwrap().to_owned(),
                    h[1].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let mut splitter = MarkdownHeaderTextSplitter::new(headers);
        if let Some(strip) = case.args.get("strip_headers").and_then(Value::as_bool) {
            splitter = splitter.with_strip_headers(strip);
        }
        if let Some(each) = case.args.get("return_each_line").and_then(Value::as_bool) {
            splitter = splitter.with_return_each_line(each);
        }
        let actual: Vec<Document> = splitter.split_text(&case.text);
        let expected = case.expected.as_array().unwrap();
        for (i, (doc, want)) in actual.iter().zip(expected).enumerate() {
            let label = format!("{} on {}: document {i}", case.name, case.input);
            assert_eq!(doc.content, want["content"].as_str().unwrap(), "{label}");
            assert_eq!(
                Value::Object(doc.metadata.clone()),
                want["metadata"],
                "{label}"
            );
        }
        assert_eq!(
            actual.len(),
            expected.len(),
            "{} on {}",
            case.name,
            case.input
        );
    }
}

#[test]
fn token_splitter_matches_langchain() {
    let mut replaced = 0;
    for case in cases("token") {
        let args = &case.args;
        let splitter = TokenTextSplitter::builder()
            .encoding_name(args["encoding_name"].as_str().unwrap())
            .chunk_size(usize_arg(args, "chunk_size").unwrap())
            .chunk_overlap(usize_arg(args, "chunk_overlap").unwrap())
            .build()
            .unwrap();
        let actual = splitter.split_text(&case.text);
        let expected = strings(&case.expected);
        assert_eq!(
            actual.len(),
            expected.len(),
            "{} on {}",
            case.name,
            case.input
        );
        for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
            if e.contains('\u{FFFD}') && !case.text.contains('\u{FFFD}') {
                replaced += 1;
                assert!(
                    matches_with_replacements(a, e),
                    "{} on {}: chunk {i}: {a:?} does not resolve {e:?}",
                    case.name,
                    case.input
                );
            } else {
                assert_eq!(a, e, "{} on {}: chunk {i}", case.name, case.input);
            }
        }
    }
    // The CJK input does cut characters between windows, so the tolerance is exercised.
    assert!(replaced > 0);
}

/// Whether `actual` is `expected` with its leading U+FFFD run dropped (the character belongs to
/// the previous chunk) and its trailing U+FFFD run replaced by one whole character.
fn matches_with_replacements(actual: &str, expected: &str) -> bool {
    let core = expected.trim_start_matches('\u{FFFD}');
    let body = core.trim_end_matches('\u{FFFD}');
    let Some(rest) = actual.strip_prefix(body) else {
        return false;
    };
    let trailing = core.len() > body.len();
    if trailing {
        rest.chars().count() == 1
    } else {
        rest.is_empty()
    }
}

#[test]
fn versions_are_recorded() {
    let raw = std::fs::read_to_string(data_dir().join("expected.json")).unwrap();
    let json: Value = serde_json::from_str(&raw).unwrap();
    assert!(json["langchain_text_splitters"]
        .as_str()
        .is_some_and(|v| !v.is_empty()));
    assert!(json["tiktoken"].as_str().is_some_and(|v| !v.is_empty()));
}
