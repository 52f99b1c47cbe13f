//! Ollama's response parsers: /api/chat NDJSON stream (a unary reply is its one-line case), error response.
//! Byte 0 picks the parser (and the stream's chunk size), byte 1 the HTTP status of an error;
//! the checks are in [`catena_fuzz::provider_input`].
#![no_main]

use catena_llms::fuzzing::{self, Provider};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    catena_fuzz::provider_input(data, Provider::Ollama, fuzzing::ollama_stream, |body| {
        let _ = fuzzing::ollama_stream(catena_fuzz::response(body, body.len().max(1)))
            .into_iter()
            .next()
            .transpose();
    });
});
