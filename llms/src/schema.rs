//! JSON-schema rewrites the providers' strict structured outputs need.

use serde_json::Value;

/// Sets `"additionalProperties": false` on every object schema that does not say otherwise
/// (both OpenAI's strict mode and Anthropic's structured outputs require it), and, with
/// `require_all`, lists every property in `required` (OpenAI's strict mode: optional fields
/// are expressed by admitting `null`). Walks properties, definitions, items and the
/// combinators.
pub(crate) fn close_objects(schema: &mut Value, require_all: bool) {
    match schema {
        Value::Object(map) => {
            let is_object = map.get("type").is_some_and(|t| {
                t == "object"
                    || t.as_array()
                        .is_some_and(|a| a.iter().any(|x| x == "object"))
            }) || map.contains_key("properties");
            if is_object && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            if require_all {
                if let Some(Value::Object(props)) = map.get("properties") {
                    let all: Vec<Value> = props.keys().cloned().map(Value::String).collect();
                    map.insert("required".into(), Value::Array(all));
                }
            }
            for (key, value) in map.iter_mut() {
                match key.as_str() {
                    // Maps of schemas.
                    "properties" | "$defs" | "definitions" => {
                        if let Value::Object(children) = value {
                            children
                                .values_mut()
                                .for_each(|c| close_objects(c, require_all));
                        }
                    }
                    // A schema, or arrays of schemas.
                    "items" | "anyOf" | "allOf" | "oneOf" | "prefixItems" | "not" => {
                        close_objects(value, require_all)
                    }
                    _ => {}
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|c| close_objects(c, require_all)),
        _ => {}
    }
}
