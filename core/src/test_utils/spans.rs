//! A `tracing` subscriber for tests that keeps every span's name and fields.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// One span's fields, by name, as their `Debug` text without surrounding quotes.
pub type SpanFields = BTreeMap<String, String>;

/// A subscriber that records every span (name and fields, including fields recorded after
/// the span was created), for tests that check what instrumented code reports. Install it
/// with `tracing::subscriber::with_default(recorder.clone(), ...)` and read
/// [`SpanRecorder::spans`] afterwards. Events are ignored.
///
/// ```
/// use catena_core::test_utils::SpanRecorder;
///
/// let recorder = SpanRecorder::default();
/// tracing::subscriber::with_default(recorder.clone(), || {
///     let span = tracing::info_span!("work", step = 1, outcome = tracing::field::Empty);
///     span.record("outcome", "ok");
/// });
/// let spans = recorder.named("work");
/// assert_eq!(spans[0]["step"], "1");
/// assert_eq!(spans[0]["outcome"], "ok");
/// ```
#[derive(Debug, Clone, Default)]
pub struct SpanRecorder(Arc<Mutex<Vec<(String, SpanFields)>>>);

impl SpanRecorder {
    /// Every span recorded so far, in creation order: its name and fields.
    pub fn spans(&self) -> Vec<(String, SpanFields)> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The fields of the spans called `name`, in creation order.
    pub fn named(&self, name: &str) -> Vec<SpanFields> {
        self.spans()
            .into_iter()
            .filter(|(n, _)| n == name)
            .map(|(_, fields)| fields)
            .collect()
    }
}

struct Fields<'a>(&'a mut SpanFields);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_owned(),
            format!("{value:?}").trim_matches('"').to_owned(),
        );
    }
}

impl Subscriber for SpanRecorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut fields = BTreeMap::new();
        span.record(&mut Fields(&mut fields));
        let mut spans = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        spans.push((span.metadata().name().to_owned(), fields));
        Id::from_u64(spans.len() as u64)
    }
    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut spans = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = usize::try_from(span.into_u64())
            .ok()
            .and_then(|i| i.checked_sub(1));
        if let Some((_, fields)) = slot.and_then(|i| spans.get_mut(i)) {
            values.record(&mut Fields(fields));
        }
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}
