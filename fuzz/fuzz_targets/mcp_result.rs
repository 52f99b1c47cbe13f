//! The conversion of an MCP server's `tools/call` result (content blocks, structured
//! content, `isError`) into a tool output or error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(out) = catena_tools::fuzzing::mcp_call_result(data) {
        let _ = format!("{out:?}");
    }
});
