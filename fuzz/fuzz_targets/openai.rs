//! OpenAi's response parsers: Chat Completions SSE stream, unary completion body, error response.
//! Byte 0 picks the parser (and the stream's chunk size), byte 1 the HTTP status of an error;
//! the checks are in [`catena_fuzz::provider_input`].
#![no_main]

use catena_llms::fuzzing::{self, Provider};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    catena_fuzz::provider_input(data, Provider::OpenAi, fuzzing::openai_stream, |body| {
        let _ = fuzzing::openai_completion(body);
    });
});
