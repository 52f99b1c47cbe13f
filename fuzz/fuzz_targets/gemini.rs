//! Gemini's response parsers: streamGenerateContent SSE stream, unary generateContent body, error response (google.rpc.Status, RetryInfo).
//! Byte 0 picks the parser (and the stream's chunk size), byte 1 the HTTP status of an error;
//! the checks are in [`catena_fuzz::provider_input`].
#![no_main]

use catena_llms::fuzzing::{self, Provider};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    catena_fuzz::provider_input(data, Provider::Gemini, fuzzing::gemini_stream, |body| {
        let _ = fuzzing::gemini_reply(body);
    });
});
