//! Metrics over OTLP (feature `otlp`): a [`metrics`] recorder that forwards every counter,
//! gauge and histogram the process records — the GenAI client metrics of
//! [`catena_core::genai_metrics`] included — to an OpenTelemetry meter, exported over
//! OTLP/gRPC when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (every `OTEL_METRIC_EXPORT_INTERVAL`,
//! 60 s by default, and on [`OtlpMetrics::shutdown`]).
//!
//! Combine it with a Prometheus recorder with `metrics_util::layers::FanoutBuilder` to serve
//! both (the gateway does).
//!
//! ```no_run
//! # async fn run() -> Result<(), String> {
//! if let Some(otlp) = catena_agents::otel::otlp_metrics("my-service")? {
//!     metrics::set_global_recorder(otlp.recorder()).map_err(|e| e.to_string())?;
//!     // ... run; at the end:
//!     otlp.shutdown();
//! }
//! # Ok(()) }
//! ```

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::SdkMeterProvider;

/// Bucket boundaries the GenAI semantic conventions advise, by metric name.
fn advised_boundaries(name: &str) -> Option<Vec<f64>> {
    match name {
        catena_core::genai_metrics::TOKEN_USAGE => Some(vec![
            1.0,
            4.0,
            16.0,
            64.0,
            256.0,
            1024.0,
            4096.0,
            16384.0,
            65536.0,
            262_144.0,
            1_048_576.0,
            4_194_304.0,
            16_777_216.0,
            67_108_864.0,
        ]),
        catena_core::genai_metrics::OPERATION_DURATION => Some(vec![
            0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
        ]),
        _ => None,
    }
}

/// A [`metrics::Recorder`] that records into an OpenTelemetry [`Meter`].
///
/// Instruments are created on first use, one per metric name; labels become attributes.
/// Units and descriptions registered with `describe_*` before first use are kept.
#[derive(Clone)]
pub struct OtelRecorder {
    meter: Meter,
    inner: Arc<Mutex<Instruments>>,
}

impl std::fmt::Debug for OtelRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtelRecorder").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Instruments {
    described: HashMap<String, (Option<Unit>, String)>,
    counters: HashMap<String, opentelemetry::metrics::Counter<u64>>,
    gauges: HashMap<String, opentelemetry::metrics::Gauge<f64>>,
    histograms: HashMap<String, opentelemetry::metrics::Histogram<f64>>,
}

/// The UCUM unit OpenTelemetry expects.
fn ucum(unit: Unit) -> &'static str {
    match unit {
        Unit::Count => "{count}",
        Unit::Percent => "%",
        Unit::Seconds => "s",
        Unit::Milliseconds => "ms",
        Unit::Microseconds => "us",
        Unit::Nanoseconds => "ns",
        Unit::Bytes => "By",
        _ => "1",
    }
}

impl OtelRecorder {
    /// A recorder into `meter`.
    pub fn new(meter: Meter) -> Self {
        OtelRecorder {
            meter,
            inner: Arc::new(Mutex::new(Instruments::default())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Instruments> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn describe(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.lock()
            .described
            .insert(key.as_str().to_owned(), (unit, description.into_owned()));
    }

    fn unit_and_description(inner: &Instruments, name: &str) -> (Option<&'static str>, String) {
        match inner.described.get(name) {
            Some((unit, d)) => (unit.map(ucum), d.clone()),
            None => (None, String::new()),
        }
    }
}

fn attributes(key: &Key) -> Vec<KeyValue> {
    key.labels()
        .map(|l| KeyValue::new(l.key().to_owned(), l.value().to_owned()))
        .collect()
}

struct OtelCounter(opentelemetry::metrics::Counter<u64>, Vec<KeyValue>);

impl CounterFn for OtelCounter {
    fn increment(&self, value: u64) {
        self.0.add(value, &self.1);
    }
    fn absolute(&self, _value: u64) {
        // OpenTelemetry counters only add; an absolute value has no faithful mapping.
    }
}

struct OtelGauge(
    opentelemetry::metrics::Gauge<f64>,
    Vec<KeyValue>,
    Mutex<f64>,
);

impl OtelGauge {
    fn update(&self, f: impl FnOnce(f64) -> f64) {
        let mut v = self
            .2
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *v = f(*v);
        self.0.record(*v, &self.1);
    }
}

impl GaugeFn for OtelGauge {
    fn increment(&self, value: f64) {
        self.update(|v| v + value);
    }
    fn decrement(&self, value: f64) {
        self.update(|v| v - value);
    }
    fn set(&self, value: f64) {
        self.update(|_| value);
    }
}

struct OtelHistogram(opentelemetry::metrics::Histogram<f64>, Vec<KeyValue>);

impl HistogramFn for OtelHistogram {
    fn record(&self, value: f64) {
        self.0.record(value, &self.1);
    }
}

impl Recorder for OtelRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(key, unit, description);
    }

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let name = key.name().to_owned();
        let mut inner = self.lock();
        let (unit, description) = Self::unit_and_description(&inner, &name);
        let counter = inner
            .counters
            .entry(name.clone())
            .or_insert_with(|| {
                let mut b = self
                    .meter
                    .u64_counter(Cow::Owned(name))
                    .with_description(description);
                if let Some(u) = unit {
                    b = b.with_unit(u);
                }
                b.build()
            })
            .clone();
        Counter::from_arc(Arc::new(OtelCounter(counter, attributes(key))))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        let name = key.name().to_owned();
        let mut inner = self.lock();
        let (unit, description) = Self::unit_and_description(&inner, &name);
        let gauge = inner
            .gauges
            .entry(name.clone())
            .or_insert_with(|| {
                let mut b = self
                    .meter
                    .f64_gauge(Cow::Owned(name))
                    .with_description(description);
                if let Some(u) = unit {
                    b = b.with_unit(u);
                }
                b.build()
            })
            .clone();
        Gauge::from_arc(Arc::new(OtelGauge(gauge, attributes(key), Mutex::new(0.0))))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let name = key.name().to_owned();
        let mut inner = self.lock();
        let (unit, description) = Self::unit_and_description(&inner, &name);
        let histogram = inner
            .histograms
            .entry(name.clone())
            .or_insert_with(|| {
                let boundaries = advised_boundaries(&name);
                let mut b = self
                    .meter
                    .f64_histogram(Cow::Owned(name))
                    .with_description(description);
                if let Some(u) = unit {
                    b = b.with_unit(u);
                }
                if let Some(bounds) = boundaries {
                    b = b.with_boundaries(bounds);
                }
                b.build()
            })
            .clone();
        Histogram::from_arc(Arc::new(OtelHistogram(histogram, attributes(key))))
    }
}

/// An OTLP meter provider and a recorder into it ([`otlp_metrics`]).
#[derive(Debug)]
pub struct OtlpMetrics {
    provider: SdkMeterProvider,
    recorder: OtelRecorder,
}

impl OtlpMetrics {
    /// A recorder into this provider's meter (clone it as often as needed).
    pub fn recorder(&self) -> OtelRecorder {
        self.recorder.clone()
    }

    /// The meter provider.
    pub fn provider(&self) -> &SdkMeterProvider {
        &self.provider
    }

    /// Exports what was recorded now.
    pub fn flush(&self) {
        let _ = self.provider.force_flush();
    }

    /// Exports what is left and stops the exporter.
    pub fn shutdown(&self) {
        let _ = self.provider.force_flush();
        let _ = self.provider.shutdown();
    }
}

/// OTLP/gRPC metrics for service `service_name` (`OTEL_SERVICE_NAME` wins), when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`) is set; `None`
/// otherwise. Must run inside a Tokio runtime.
///
/// # Errors
/// The exporter could not be built (a bad endpoint).
pub fn otlp_metrics(service_name: &str) -> Result<Option<OtlpMetrics>, String> {
    let configured = [
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var(v).is_ok_and(|v| !v.trim().is_empty()));
    if !configured {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_tonic()
        .build()
        .map_err(|e| format!("OTLP metric exporter: {e}"))?;
    let name = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| service_name.to_owned());
    let provider = SdkMeterProvider::builder()
        .with_periodic_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(name.clone())
                .build(),
        )
        .build();
    let recorder = OtelRecorder::new(provider.meter("catena"));
    Ok(Some(OtlpMetrics { provider, recorder }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader};

    #[test]
    fn histograms_counters_and_gauges_reach_the_meter_with_their_labels() {
        let exporter = InMemoryMetricExporter::default();
        let provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(exporter.clone()).build())
            .build();
        let recorder = OtelRecorder::new(provider.meter("test"));
        metrics::with_local_recorder(&recorder, || {
            catena_core::genai_metrics::describe();
            metrics::histogram!(
                catena_core::genai_metrics::TOKEN_USAGE,
                "gen_ai.token.type" => "input",
                "gen_ai.request.model" => "m"
            )
            .record(120.0);
            metrics::counter!("requests_total", "route" => "/q").increment(3);
            metrics::gauge!("in_flight").set(2.0);
        });
        provider.force_flush().unwrap();
        let exported = exporter.get_finished_metrics().unwrap();
        let metrics: Vec<_> = exported
            .iter()
            .flat_map(|rm| rm.scope_metrics())
            .flat_map(|sm| sm.metrics())
            .collect();
        let usage = metrics
            .iter()
            .find(|m| m.name() == "gen_ai.client.token.usage")
            .expect("token usage exported");
        assert_eq!(usage.unit(), "{count}");
        let AggregatedMetrics::F64(MetricData::Histogram(h)) = usage.data() else {
            panic!("not an f64 histogram")
        };
        let point = h.data_points().next().unwrap();
        assert_eq!(point.sum(), 120.0);
        assert_eq!(point.bounds().next(), Some(1.0), "advised buckets");
        let attrs: Vec<String> = point
            .attributes()
            .map(|kv| format!("{}={}", kv.key, kv.value))
            .collect();
        assert!(
            attrs.contains(&"gen_ai.token.type=input".to_owned()),
            "{attrs:?}"
        );
        assert!(metrics.iter().any(|m| m.name() == "requests_total"));
        assert!(metrics.iter().any(|m| m.name() == "in_flight"));
    }
}
