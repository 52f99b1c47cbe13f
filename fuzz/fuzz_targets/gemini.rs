//! Gemini's response parsers: streamGenerateContent SSE stream, unary generateContent body, error response (google.rpc.Status, RetryInfo).
//! Byte 0 picks the parser (and the stream's chunk size), byte 1 the HTTP status of an error.
#![no_main]

use catena_core::{ChatChunk, StreamAccumulator};
use catena_fuzz::{chunk_size, response, split_ff};
use catena_llms::fuzzing::{self, Provider};
use libfuzzer_sys::fuzz_target;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

fuzz_target!(|data: &[u8]| {
    let [sel, status, body @ ..] = data else {
        return;
    };
    match sel % 4 {
        0 | 1 => {
            let chunks = fuzzing::gemini_stream(response(body, chunk_size(*sel / 4, body.len())));
            // What callers do with a stream: accumulate it into one response.
            let mut acc = StreamAccumulator::new();
            for chunk in chunks.iter().flatten() {
                acc.push(chunk);
            }
            let _ = acc.finish();
            // The stream never yields anything after an error.
            if let Some(i) = chunks.iter().position(Result::is_err) {
                assert_eq!(i + 1, chunks.len(), "the stream went on after an error");
            }
            let _ = chunks
                .iter()
                .filter(|c| matches!(c, Ok(ChatChunk::Finish(_))))
                .count();
        }
        2 => {
            let _ = catena_llms::fuzzing::gemini_reply(body);
        }
        _ => {
            // Body, then after a 0xFF byte a `Retry-After` header value.
            let (body, retry_after) = split_ff(body);
            let mut headers = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_bytes(retry_after) {
                headers.insert(HeaderName::from_static("retry-after"), v.clone());
                headers.insert(HeaderName::from_static("x-request-id"), v);
            }
            let status = 400 + u16::from(*status) % 200;
            let err = fuzzing::error_response(Provider::Gemini, status, &headers, body);
            let shown = err.to_string();
            assert!(
                !shown.contains(fuzzing::SECRET),
                "the API key leaked into an error"
            );
        }
    }
});
