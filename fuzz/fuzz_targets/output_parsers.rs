//! The output parsers of catena-core: JSON (fenced or embedded in prose), typed JSON,
//! comma-separated and line lists, and the string parser.
#![no_main]

use catena_core::parser::{
    CommaSeparatedListOutputParser, JsonOutputParser, LineListOutputParser, StrOutputParser,
    TypedOutputParser,
};
use catena_core::OutputParser;
use catena_fuzz::text;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[allow(dead_code)]
struct Answer {
    answer: String,
    confidence: Option<f64>,
    sources: Vec<String>,
}

fuzz_target!(|data: &[u8]| {
    let text = text(data);
    let _ = JsonOutputParser::new().parse(&text);
    let _ = TypedOutputParser::<Answer>::new().parse(&text);
    if let Ok(items) = CommaSeparatedListOutputParser::new().parse(&text) {
        let _ = items.len();
    }
    let _ = LineListOutputParser::new().parse(&text);
    let _ = StrOutputParser.parse(&text);
});
