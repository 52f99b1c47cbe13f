//! The calculator tool's expression evaluator, with default and with tight limits.
#![no_main]

use catena_fuzz::text;
use catena_tools::{evaluate, evaluate_with, CalcLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let expr = text(data);
    if let Ok(v) = evaluate(&expr) {
        assert!(v.is_finite(), "{expr:?} evaluated to {v}");
    }
    let _ = evaluate_with(&expr, &CalcLimits::default());
});
