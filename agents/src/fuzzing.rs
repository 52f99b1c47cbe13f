//! Entry points for the cargo-fuzz targets in `fuzz/` (feature `fuzzing`): the ReAct output
//! parser, which reads whatever text a model returns. Not a stable API.

use serde_json::Value;

/// The ReAct parser's reading of `text` (`Debug` of the parsed turn), or its format error.
///
/// # Errors
/// The format error the agent would send back to the model.
pub fn react_parse(text: &str) -> Result<String, String> {
    super::react::parse(text).map(|p| format!("{p:?}"))
}

/// The text the ReAct agent keeps of a turn: everything before an invented `Observation:`.
pub fn react_before_observation(text: &str) -> &str {
    super::react::before_observation(text)
}

/// The tool arguments the ReAct agent builds from an action input, for a tool whose
/// parameter schema is `schema`.
///
/// # Errors
/// The format error the agent would send back to the model.
pub fn react_arguments(tool: &str, input: &str, schema: &Value) -> Result<Value, String> {
    super::react::arguments(tool, input, schema)
}
