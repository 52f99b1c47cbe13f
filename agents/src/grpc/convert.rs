//! Conversions between the wire types and `catena_core`'s.

use std::time::Duration;

use catena_core::{Document, Message, Metadata, Role, ScoredDocument, Usage};
use prost_types::value::Kind;
use serde_json::Value;

use super::pb;

/// JSON object → `google.protobuf.Struct`.
pub(crate) fn metadata_to_struct(map: &Metadata) -> prost_types::Struct {
    prost_types::Struct {
        fields: map
            .iter()
            .map(|(k, v)| (k.clone(), json_to_value(v)))
            .collect(),
    }
}

/// `google.protobuf.Struct` → JSON object.
pub(crate) fn struct_to_metadata(s: prost_types::Struct) -> Metadata {
    s.fields
        .into_iter()
        .map(|(k, v)| (k, value_to_json(v)))
        .collect()
}

fn json_to_value(v: &Value) -> prost_types::Value {
    let kind = match v {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        // Struct numbers are doubles; large integers lose precision, as in any JSON
        // mapping of protobuf.
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(a) => Kind::ListValue(prost_types::ListValue {
            values: a.iter().map(json_to_value).collect(),
        }),
        Value::Object(o) => Kind::StructValue(metadata_to_struct(o)),
    };
    prost_types::Value { kind: Some(kind) }
}

fn value_to_json(v: prost_types::Value) -> Value {
    match v.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(b),
        Some(Kind::NumberValue(n)) => number_to_json(n),
        Some(Kind::StringValue(s)) => Value::String(s),
        Some(Kind::ListValue(l)) => Value::Array(l.values.into_iter().map(value_to_json).collect()),
        Some(Kind::StructValue(s)) => Value::Object(struct_to_metadata(s)),
    }
}

/// Whole numbers come back as JSON integers (`3`, not `3.0`); NaN and infinities, which
/// JSON cannot hold, as `null`.
fn number_to_json(n: f64) -> Value {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if n.fract() == 0.0 && n.abs() <= EXACT {
        // In range and whole, so the cast is exact.
        #[allow(clippy::cast_possible_truncation)]
        return Value::from(n as i64);
    }
    serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
}

pub(crate) fn duration_to_proto(d: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        // Always below 10^9, so it fits.
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// `None` for a negative or malformed duration.
pub(crate) fn duration_from_proto(d: prost_types::Duration) -> Option<Duration> {
    let secs = u64::try_from(d.seconds).ok()?;
    let nanos = u32::try_from(d.nanos).ok()?;
    (nanos < 1_000_000_000).then(|| Duration::new(secs, nanos))
}

impl From<Document> for pb::ContextDocument {
    /// A document with score 0; `source` is copied from its `source` metadata.
    fn from(doc: Document) -> Self {
        ScoredDocument::new(doc, 0.0).into()
    }
}

impl From<ScoredDocument> for pb::ContextDocument {
    fn from(hit: ScoredDocument) -> Self {
        let doc = hit.document;
        pb::ContextDocument {
            source: doc.source().unwrap_or_default().to_owned(),
            metadata: (!doc.metadata.is_empty()).then(|| metadata_to_struct(&doc.metadata)),
            id: doc.id.map(|id| id.into_inner()).unwrap_or_default(),
            content: doc.content,
            score: hit.score,
        }
    }
}

impl From<pb::ContextDocument> for ScoredDocument {
    /// `source`, when set, becomes the `source` metadata entry (unless the metadata has one).
    fn from(doc: pb::ContextDocument) -> Self {
        let mut metadata = doc.metadata.map(struct_to_metadata).unwrap_or_default();
        if !doc.source.is_empty() && !metadata.contains_key("source") {
            metadata.insert("source".into(), Value::String(doc.source));
        }
        let mut document = Document::new(doc.content).with_metadata_map(metadata);
        if !doc.id.is_empty() {
            document = document.with_id(doc.id);
        }
        ScoredDocument::new(document, doc.score)
    }
}

impl From<pb::ContextDocument> for Document {
    fn from(doc: pb::ContextDocument) -> Self {
        ScoredDocument::from(doc).document
    }
}

impl TryFrom<&Message> for pb::ChatMessage {
    type Error = String;

    /// Fails for tool messages and tool calls, which the contract does not carry.
    fn try_from(m: &Message) -> Result<Self, String> {
        let role = match m.role {
            Role::System => pb::Role::System,
            Role::User => pb::Role::User,
            Role::Assistant if m.tool_calls.is_empty() => pb::Role::Assistant,
            Role::Assistant => {
                return Err("history cannot carry an assistant message's tool calls".into())
            }
            Role::Tool => return Err("history cannot carry tool messages".into()),
        };
        Ok(pb::ChatMessage {
            role: role.into(),
            content: m.text(),
        })
    }
}

impl TryFrom<pb::ChatMessage> for Message {
    type Error = String;

    /// Fails for a role that is unset or unknown to this version.
    fn try_from(m: pb::ChatMessage) -> Result<Self, String> {
        let role = match pb::Role::try_from(m.role) {
            Ok(pb::Role::System) => Role::System,
            Ok(pb::Role::User) => Role::User,
            Ok(pb::Role::Assistant) => Role::Assistant,
            Ok(pb::Role::Unspecified) => return Err("message role is not set".into()),
            Err(_) => return Err(format!("unknown message role {}", m.role)),
        };
        Ok(Message::new(role, m.content))
    }
}

impl From<Usage> for pb::Usage {
    fn from(u: Usage) -> Self {
        pb::Usage {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            total_tokens: u.total_tokens,
        }
    }
}

impl From<pb::Usage> for Usage {
    fn from(u: pb::Usage) -> Self {
        Usage::new(u.input_tokens, u.output_tokens).with_total_tokens(u.total_tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metadata_round_trips_through_struct() {
        let meta = json!({"source": "a.md", "page": 3, "ratio": 0.5, "tags": ["x", null], "nested": {"ok": true}});
        let Value::Object(map) = meta.clone() else {
            unreachable!()
        };
        assert_eq!(
            Value::Object(struct_to_metadata(metadata_to_struct(&map))),
            meta
        );
    }

    #[test]
    fn documents_round_trip_with_id_source_and_score() {
        let doc = Document::new("text")
            .with_id("d1")
            .with_metadata("source", "a.md");
        let wire = pb::ContextDocument::from(ScoredDocument::new(doc.clone(), 0.75));
        assert_eq!(wire.source, "a.md");
        assert_eq!(wire.id, "d1");
        let back = ScoredDocument::from(wire);
        assert_eq!(back.document, doc);
        assert_eq!(back.score, 0.75);
    }

    #[test]
    fn wire_source_fills_metadata() {
        let doc = Document::from(pb::ContextDocument {
            content: "c".into(),
            source: "s.md".into(),
            ..Default::default()
        });
        assert_eq!(doc.source(), Some("s.md"));
        assert_eq!(doc.id, None);
    }

    #[test]
    fn messages_and_roles() {
        let wire = pb::ChatMessage::try_from(&Message::assistant("hi")).unwrap();
        assert_eq!(wire.role, pb::Role::Assistant as i32);
        assert_eq!(Message::try_from(wire).unwrap(), Message::assistant("hi"));
        assert!(pb::ChatMessage::try_from(&Message::tool_result("c", "x")).is_err());
        let unset = pb::ChatMessage {
            role: 0,
            content: "x".into(),
        };
        assert_eq!(
            Message::try_from(unset).unwrap_err(),
            "message role is not set"
        );
        let unknown = pb::ChatMessage {
            role: 42,
            content: "x".into(),
        };
        assert!(Message::try_from(unknown).is_err());
    }

    #[test]
    fn usage_and_durations() {
        let u = Usage::new(3, 4);
        assert_eq!(Usage::from(pb::Usage::from(u)), u);
        let d = Duration::from_millis(1500);
        assert_eq!(duration_from_proto(duration_to_proto(d)), Some(d));
        assert_eq!(
            duration_from_proto(prost_types::Duration {
                seconds: -1,
                nanos: 0
            }),
            None
        );
    }
}
