//! The read-only SQL tool's single-statement check (quotes, dollar quotes, nested comments).
//! Oracle: the statement returned is a slice of the input.
#![no_main]

use catena_fuzz::text;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let sql = text(data);
    if let Ok(stmt) = catena_vectorstores::fuzzing::single_statement(&sql) {
        assert!(sql.contains(stmt), "the statement is not part of the input");
        assert!(!stmt.trim().is_empty(), "an empty statement was accepted");
    }
});
