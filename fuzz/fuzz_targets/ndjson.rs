//! The NDJSON line decoder (Ollama streams): byte 0 picks the chunk size, byte 1 the line
//! bound. Oracle: the lines do not depend on how the body is cut, and respect the bound.
#![no_main]

use catena_fuzz::{chunk_size, response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [sel, bound, body @ ..] = data else {
        return;
    };
    let max_line = 16 + usize::from(*bound) * 8;
    let whole = catena_llms::fuzzing::ndjson_lines(response(body, body.len().max(1)), max_line);
    let cut =
        catena_llms::fuzzing::ndjson_lines(response(body, chunk_size(*sel, body.len())), max_line);
    assert_eq!(whole, cut, "NDJSON lines depend on chunk boundaries");
    for line in whole.iter().flatten() {
        assert!(line.len() <= max_line && !line.trim().is_empty() && !line.contains('\n'));
    }
});
