//! The SSE decoder (`text/event-stream`, OpenAI and Gemini streams): byte 0 picks the chunk
//! size, byte 1 the line bound. Oracle: the events do not depend on how the body is cut.
#![no_main]

use catena_fuzz::{chunk_size, response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [sel, bound, body @ ..] = data else {
        return;
    };
    let max_line = 16 + usize::from(*bound) * 8;
    let whole = catena_llms::fuzzing::sse_events(response(body, body.len().max(1)), max_line);
    let cut =
        catena_llms::fuzzing::sse_events(response(body, chunk_size(*sel, body.len())), max_line);
    assert_eq!(whole, cut, "SSE events depend on chunk boundaries");
    for item in &whole {
        if let Ok((_, data)) = item {
            assert!(
                data.len() <= max_line,
                "an SSE event exceeds the line bound"
            );
        }
    }
});
