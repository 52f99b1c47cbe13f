//! The backend-neutral metadata filter: deserialising a `Filter` from JSON, validating it,
//! and evaluating it against metadata read from JSON (dotted-key lookup included).
//! Input: `{"filter": …, "metadata": {…}}`, or any JSON (then filter and metadata both).
#![no_main]

use catena_core::{Filter, Metadata};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let (filter, metadata) = match &value {
        Value::Object(o) if o.contains_key("filter") => (
            o.get("filter").cloned().unwrap_or(Value::Null),
            o.get("metadata").cloned(),
        ),
        other => (other.clone(), Some(other.clone())),
    };
    let metadata: Metadata = metadata
        .and_then(|m| serde_json::from_value(m).ok())
        .unwrap_or_default();
    if let Ok(filter) = serde_json::from_value::<Filter>(filter) {
        let _ = filter.validate();
        let matched = filter.matches(&metadata);
        assert_eq!(
            filter.clone().not().matches(&metadata),
            !matched,
            "NOT is not the negation"
        );
        let _ = serde_json::to_string(&filter);
    }
    for key in metadata.keys() {
        let _ = catena_core::backend::validate_key(key);
        let _ = catena_core::backend::lookup(&metadata, key);
    }
});
