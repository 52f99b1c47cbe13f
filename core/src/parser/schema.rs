//! A small JSON-schema checker used only to explain *where* a typed parse failed.
//!
//! serde reports that a field has the wrong type but not which field; after serde has
//! rejected a value, this walks the value against the schema derived for the target type
//! and reports the first mismatch with its path. It covers what serde itself enforces
//! (types, required and unknown fields, enums, integer ranges, array items) and ignores the
//! rest of JSON Schema.

use serde_json::{Map, Value};

/// Recursion guard for `$ref` cycles and deep values.
const MAX_DEPTH: usize = 128;

/// How many (value, schema) pairs one explanation may visit. `anyOf`/`oneOf` re-check a
/// whole subtree per option, so nested alternatives are exponential in the nesting depth;
/// past this budget the checker gives up and the caller falls back to serde's message.
const MAX_STEPS: usize = 100_000;

/// What one walk shares: the root schema (`$ref` targets) and the remaining step budget.
struct Walk<'a> {
    root: &'a Value,
    steps_left: usize,
    exhausted: bool,
}

impl Walk<'_> {
    /// Takes one step; `false` once the budget is spent (and from then on).
    fn step(&mut self) -> bool {
        if self.steps_left == 0 {
            self.exhausted = true;
            return false;
        }
        self.steps_left -= 1;
        true
    }
}

/// Where a value does not match its schema, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mismatch {
    pub(crate) path: String,
    pub(crate) message: String,
}

#[derive(Debug, Clone)]
enum Segment {
    Key(String),
    Index(usize),
}

/// The first place `value` does not match `schema` (a root schema, whose `$ref`s point
/// into itself), or `None` when this checker finds nothing wrong or gives up (see
/// [`MAX_STEPS`]).
pub(crate) fn find_mismatch(value: &Value, schema: &Value) -> Option<Mismatch> {
    let mut path = Vec::new();
    let mut walk = Walk {
        root: schema,
        steps_left: MAX_STEPS,
        exhausted: false,
    };
    let found = check(value, schema, &mut walk, &mut path, 0);
    // Once the budget is spent every check answers `None` ("matches"), so an `anyOf` may
    // have been taken as matched and what was found is not trustworthy.
    if walk.exhausted {
        return None;
    }
    found
}

fn render_path(path: &[Segment]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Segment::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Segment::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    out
}

fn mismatch(path: &[Segment], message: impl Into<String>) -> Option<Mismatch> {
    Some(Mismatch {
        path: render_path(path),
        message: message.into(),
    })
}

fn with_segment<T>(
    path: &mut Vec<Segment>,
    seg: Segment,
    f: impl FnOnce(&mut Vec<Segment>) -> T,
) -> T {
    path.push(seg);
    let out = f(path);
    path.pop();
    out
}

fn check(
    value: &Value,
    schema: &Value,
    walk: &mut Walk<'_>,
    path: &mut Vec<Segment>,
    depth: usize,
) -> Option<Mismatch> {
    if depth > MAX_DEPTH || !walk.step() {
        return None;
    }
    let obj = match schema {
        Value::Bool(false) => return mismatch(path, "no value is allowed here"),
        Value::Object(o) => o,
        _ => return None,
    };

    if let Some(Value::String(reference)) = obj.get("$ref") {
        if let Some(target) = reference
            .strip_prefix('#')
            .and_then(|p| walk.root.pointer(p))
        {
            if let Some(m) = check(value, target, walk, path, depth + 1) {
                return Some(m);
            }
        }
    }
    if let Some(types) = obj.get("type") {
        if !type_matches(value, types) {
            return mismatch(
                path,
                format!(
                    "expected {}, found {}",
                    describe_types(types),
                    describe(value)
                ),
            );
        }
    }
    if let Some(Value::Array(allowed)) = obj.get("enum") {
        if !allowed.contains(value) {
            let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
            return mismatch(
                path,
                format!(
                    "expected one of {}, found {}",
                    list.join(", "),
                    describe(value)
                ),
            );
        }
    }
    if let Some(expected) = obj.get("const") {
        if expected != value {
            return mismatch(
                path,
                format!("expected {expected}, found {}", describe(value)),
            );
        }
    }
    if let Some(Value::Array(all)) = obj.get("allOf") {
        for sub in all {
            if let Some(m) = check(value, sub, walk, path, depth + 1) {
                return Some(m);
            }
        }
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(options)) = obj.get(key) {
            let mut best: Option<Mismatch> = None;
            let mut matched = options.is_empty();
            for sub in options {
                match check(value, sub, walk, path, depth + 1) {
                    None => {
                        matched = true;
                        break;
                    }
                    // The alternative that got furthest into the value explains best.
                    Some(m) => {
                        if best
                            .as_ref()
                            .is_none_or(|b| depth_of(&m.path) > depth_of(&b.path))
                        {
                            best = Some(m);
                        }
                    }
                }
            }
            if !matched {
                return best;
            }
        }
    }
    if let Some(n) = value.as_f64() {
        if let Some(m) = check_range(n, obj, path) {
            return Some(m);
        }
    }
    match value {
        Value::Object(fields) => check_object(fields, obj, walk, path, depth),
        Value::Array(items) => check_array(items, obj, walk, path, depth),
        _ => None,
    }
}

fn depth_of(path: &str) -> usize {
    if path.is_empty() {
        0
    } else {
        1 + path.matches(['.', '[']).count()
    }
}

fn check_range(n: f64, obj: &Map<String, Value>, path: &[Segment]) -> Option<Mismatch> {
    let bound = |k: &str| obj.get(k).and_then(Value::as_f64);
    if let Some(min) = bound("minimum") {
        if n < min {
            return mismatch(path, format!("{n} is less than the minimum {min}"));
        }
    }
    if let Some(max) = bound("maximum") {
        if n > max {
            return mismatch(path, format!("{n} is greater than the maximum {max}"));
        }
    }
    None
}

fn check_object(
    fields: &Map<String, Value>,
    obj: &Map<String, Value>,
    walk: &mut Walk<'_>,
    path: &mut Vec<Segment>,
    depth: usize,
) -> Option<Mismatch> {
    if let Some(Value::Array(required)) = obj.get("required") {
        for name in required.iter().filter_map(Value::as_str) {
            if !fields.contains_key(name) {
                return with_segment(path, Segment::Key(name.to_owned()), |p| {
                    mismatch(p, "missing required field")
                });
            }
        }
    }
    let properties = obj.get("properties").and_then(Value::as_object);
    for (name, field) in fields {
        let declared = properties.and_then(|p| p.get(name));
        let result = with_segment(path, Segment::Key(name.clone()), |p| match declared {
            Some(sub) => check(field, sub, walk, p, depth + 1),
            None => match obj.get("additionalProperties") {
                Some(Value::Bool(false)) => mismatch(p, "unknown field"),
                Some(sub @ Value::Object(_)) => check(field, sub, walk, p, depth + 1),
                _ => None,
            },
        });
        if result.is_some() {
            return result;
        }
    }
    None
}

fn check_array(
    items: &[Value],
    obj: &Map<String, Value>,
    walk: &mut Walk<'_>,
    path: &mut Vec<Segment>,
    depth: usize,
) -> Option<Mismatch> {
    let len = items.len() as u64;
    if let Some(min) = obj.get("minItems").and_then(Value::as_u64) {
        if len < min {
            return mismatch(path, format!("expected at least {min} items, found {len}"));
        }
    }
    if let Some(max) = obj.get("maxItems").and_then(Value::as_u64) {
        if len > max {
            return mismatch(path, format!("expected at most {max} items, found {len}"));
        }
    }
    let prefix = obj.get("prefixItems").and_then(Value::as_array);
    for (i, item) in items.iter().enumerate() {
        let sub = prefix.and_then(|p| p.get(i)).or_else(|| obj.get("items"));
        if let Some(sub) = sub {
            let result = with_segment(path, Segment::Index(i), |p| {
                check(item, sub, walk, p, depth + 1)
            });
            if result.is_some() {
                return result;
            }
        }
    }
    None
}

fn type_matches(value: &Value, types: &Value) -> bool {
    let one = |t: &str| match t {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        _ => true,
    };
    match types {
        Value::String(t) => one(t),
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).any(one),
        _ => true,
    }
}

fn describe_types(types: &Value) -> String {
    match types {
        Value::String(t) => t.clone(),
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" or "),
        other => other.to_string(),
    }
}

fn describe(value: &Value) -> String {
    let kind = match value {
        Value::Null => return "null".to_owned(),
        Value::Bool(b) => return format!("boolean {b}"),
        Value::Number(n) => return format!("number {n}"),
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    if let Value::String(s) = value {
        let mut shown: String = s.chars().take(40).collect();
        if shown.len() < s.len() {
            shown.push('…');
        }
        return format!("{kind} {shown:?}");
    }
    kind.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_paths() {
        let schema = json!({
            "type": "object",
            "properties": {
                "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}}
            },
            "required": ["items"],
            "$defs": {
                "Item": {
                    "type": "object",
                    "properties": {"n": {"type": "integer", "minimum": 0}},
                    "required": ["n"],
                    "additionalProperties": false
                }
            }
        });
        let m = find_mismatch(&json!({"items": [{"n": 1}, {"n": "x"}]}), &schema).unwrap();
        assert_eq!(m.path, "items[1].n");
        assert_eq!(m.message, r#"expected integer, found string "x""#);
        let m = find_mismatch(&json!({"items": [{}]}), &schema).unwrap();
        assert_eq!(m.path, "items[0].n");
        let m = find_mismatch(&json!({"items": [{"n": 1, "z": 0}]}), &schema).unwrap();
        assert_eq!(
            (m.path.as_str(), m.message.as_str()),
            ("items[0].z", "unknown field")
        );
        let m = find_mismatch(&json!({"items": [{"n": -1}]}), &schema).unwrap();
        assert_eq!(m.path, "items[0].n");
        assert!(find_mismatch(&json!({"items": []}), &schema).is_none());
    }

    #[test]
    fn any_of_reports_deepest() {
        let schema = json!({
            "anyOf": [
                {"type": "object", "properties": {"a": {"type": "string"}}},
                {"type": "null"}
            ]
        });
        let m = find_mismatch(&json!({"a": 1}), &schema).unwrap();
        assert_eq!(m.path, "a");
    }

    #[test]
    fn ref_cycles_terminate() {
        let schema = json!({"$ref": "#"});
        assert!(find_mismatch(&json!(1), &schema).is_none());
    }
}
