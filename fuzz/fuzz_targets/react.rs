//! The ReAct output parser (catena-agents): a model's text turned into an action or a final
//! answer, the cut at an invented `Observation:`, and the action input turned into arguments.
#![no_main]

use catena_fuzz::text;
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let text = text(data);
    let kept = catena_agents::fuzzing::react_before_observation(&text);
    assert!(
        text.starts_with(kept),
        "the kept log is not a prefix of the output"
    );
    let _ = catena_agents::fuzzing::react_parse(&text);
    let _ = catena_agents::fuzzing::react_parse(kept);
    let one_string = json!({"type": "object", "properties": {"input": {"type": "string"}}});
    let _ = catena_agents::fuzzing::react_arguments("tool", &text, &one_string);
    let _ = catena_agents::fuzzing::react_arguments("tool", &text, &json!({}));
});
