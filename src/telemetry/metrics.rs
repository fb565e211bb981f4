//! Metric names, the Prometheus recorder behind `/metrics`, and a bridge that mirrors every
//! metric to OpenTelemetry (OTLP) when an endpoint is configured.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use metrics::{Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder};
use metrics::{SharedString, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::layers::FanoutBuilder;
use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::Resource;

/// Every metric the service exports; dashboards and alerts may rely on these names.
pub mod names {
    /// Counter `{endpoint, status, reason}`: webhooks by status class and reason.
    pub const REQUESTS: &str = "regbridge_requests_total";
    /// Histogram `{endpoint}`: seconds from request start to answer, publishing included.
    pub const REQUEST_DURATION: &str = "regbridge_request_duration_seconds";
    /// Gauge: webhooks being processed now.
    pub const IN_FLIGHT: &str = "regbridge_requests_in_flight";
    /// Counter `{registry, type, routed}`: normalized events.
    pub const EVENTS: &str = "regbridge_events_total";
    /// Counter `{registry}`: well-formed payloads of a type regbridge does not map.
    pub const UNMAPPED: &str = "regbridge_events_unmapped_total";
    /// Counter `{registry}`: entries acknowledged without an event, not being about an artifact a
    /// consumer can pull (Distribution's layer blobs).
    pub const SKIPPED: &str = "regbridge_events_skipped_total";
    /// Counter `{sink, outcome}`: batches published, outcome `ok`, `error` or `timeout`.
    pub const PUBLISHES: &str = "regbridge_publish_total";
    /// Histogram `{sink}`: seconds until the sink confirmed (or failed).
    pub const PUBLISH_DURATION: &str = "regbridge_publish_duration_seconds";
    /// Gauge `{sink}`: 1 when the sink is connected and usable, else 0.
    pub const SINK_READY: &str = "regbridge_sink_ready";
    /// Gauge `{sink}`: events in the outbox waiting for the sink.
    pub const OUTBOX_EVENTS: &str = "regbridge_outbox_events";
    /// Gauge `{sink}`: bytes of those events on disk.
    pub const OUTBOX_BYTES: &str = "regbridge_outbox_bytes";
    /// Gauge `{sink}`: seconds since the oldest of them was spooled (0 when there is none).
    pub const OUTBOX_OLDEST_AGE: &str = "regbridge_outbox_oldest_age_seconds";
    /// Gauge `{sink}`: dead letters (refused for good, kept until an operator acts).
    pub const OUTBOX_DEAD_LETTERS: &str = "regbridge_outbox_dead_letters";
    /// Counter `{sink}`: events spooled to the outbox.
    pub const OUTBOX_SPOOLED: &str = "regbridge_outbox_spooled_total";
    /// Counter `{sink}`: events the relay delivered from the outbox.
    pub const OUTBOX_REPLAYED: &str = "regbridge_outbox_replayed_total";
    /// Counter `{sink}`: events moved to the dead letters.
    pub const OUTBOX_DEAD_LETTERED: &str = "regbridge_outbox_dead_lettered_total";
    /// Gauge: bytes the outbox takes on disk, every sink's queue and dead letters together.
    pub const OUTBOX_DISK: &str = "regbridge_outbox_disk_bytes";
    /// Gauge: `REGBRIDGE_OUTBOX_MAX_BYTES`; spooling is refused (503) beyond it.
    pub const OUTBOX_CAPACITY: &str = "regbridge_outbox_capacity_bytes";
    /// Gauge: Kafka topics routed to that do not exist and could not be created.
    pub const KAFKA_TOPICS_MISSING: &str = "regbridge_kafka_topics_missing";
    /// Counter: requests whose credential matched, by `endpoint`, `credential` (its label or
    /// position, never the value) and `mode` (Root: `standard` or `hex`).
    pub const CREDENTIAL_MATCHES: &str = "regbridge_credential_matches_total";
    /// Gauge per `topic`: 1 while that topic is one of them, 0 once it is not.
    pub const KAFKA_TOPIC_MISSING: &str = "regbridge_kafka_topic_missing";
    /// Counter `{endpoint}`: deliveries answered `200 "duplicate"`, every event of them accepted
    /// before (replay suppression), publishing nothing.
    pub const DEDUPE_DUPLICATES: &str = "regbridge_dedupe_duplicates_total";
    /// Counter `{op}` (`check`, `record`): dedupe store calls that failed or timed out; each check
    /// let its webhook through unsuppressed, each record left ids unrecorded.
    pub const DEDUPE_ERRORS: &str = "regbridge_dedupe_errors_total";
    /// Gauge: 1 while the dedupe store answers (the last call succeeded), 0 while it fails.
    pub const DEDUPE_UP: &str = "regbridge_dedupe_store_up";
}

/// Latency buckets in seconds: fine below 10 ms where a healthy publish lands, coarse up to the
/// publish budget and beyond.
const BUCKETS: &[f64] = &[0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder (Prometheus, plus the OTLP bridge when `meter` is given)
/// on first call and returns the handle that renders `/metrics`. Later calls return the same.
pub fn install(meter: Option<&SdkMeterProvider>) -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let prometheus = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .ok()?;
            let prometheus = prometheus.build_recorder();
            let handle = prometheus.handle();
            spawn_upkeep(handle.clone());
            let installed = match meter {
                Some(m) => {
                    let bridge = OtelBridge { meter: m.meter("regbridge"), cache: Mutex::default() };
                    let fanout =
                        FanoutBuilder::default().add_recorder(prometheus).add_recorder(bridge).build();
                    metrics::set_global_recorder(fanout).is_ok()
                }
                None => metrics::set_global_recorder(prometheus).is_ok(),
            };
            installed.then_some(handle)
        })
        .clone()
}

/// Histogram samples queue up in the recorder until something drains them; a scrape does, but
/// a service nobody scrapes (OTLP only, or a forgotten ServiceMonitor) would grow without bound.
/// A background thread drains them every few seconds, as the exporter's own `install` would.
fn spawn_upkeep(handle: PrometheusHandle) {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(5);
    let spawned = std::thread::Builder::new().name("regbridge-metrics".into()).spawn(move || loop {
        std::thread::sleep(EVERY);
        handle.run_upkeep();
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "metrics upkeep thread not started; histograms drain on scrape only");
    }
}

/// The `/metrics` renderer; installs a Prometheus-only recorder if none is yet.
pub fn metrics_handle() -> Option<PrometheusHandle> {
    install(None)
}

/// An OTLP metric exporter on a periodic reader (`OTEL_METRIC_EXPORT_INTERVAL`, default 60 s).
pub fn otlp_provider(resource: Resource) -> Result<SdkMeterProvider, String> {
    let exporter =
        opentelemetry_otlp::MetricExporter::builder().with_http().build().map_err(|e| e.to_string())?;
    Ok(SdkMeterProvider::builder().with_periodic_exporter(exporter).with_resource(resource).build())
}

/// One OpenTelemetry instrument per metric name, created on first use.
#[derive(Clone)]
enum Instrument {
    Counter(opentelemetry::metrics::Counter<u64>),
    Gauge(opentelemetry::metrics::Gauge<f64>, opentelemetry::metrics::UpDownCounter<f64>),
    Histogram(opentelemetry::metrics::Histogram<f64>),
}

/// Forwards `metrics` facade calls to OpenTelemetry instruments with the labels as attributes.
struct OtelBridge {
    meter: Meter,
    cache: Mutex<HashMap<String, Instrument>>,
}

impl OtelBridge {
    fn instrument(&self, name: &str, make: impl FnOnce(&Meter, String) -> Instrument) -> Instrument {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.entry(name.to_owned()).or_insert_with(|| make(&self.meter, name.to_owned())).clone()
    }
}

fn attributes(key: &Key) -> Arc<[KeyValue]> {
    key.labels().map(|l| KeyValue::new(l.key().to_owned(), l.value().to_owned())).collect()
}

struct Bridged {
    instrument: Instrument,
    attributes: Arc<[KeyValue]>,
}

impl CounterFn for Bridged {
    fn increment(&self, value: u64) {
        if let Instrument::Counter(c) = &self.instrument {
            c.add(value, &self.attributes);
        }
    }
    // Cumulative totals are not set from outside in this service.
    fn absolute(&self, _value: u64) {}
}

impl GaugeFn for Bridged {
    fn increment(&self, value: f64) {
        if let Instrument::Gauge(_, up_down) = &self.instrument {
            up_down.add(value, &self.attributes);
        }
    }
    fn decrement(&self, value: f64) {
        if let Instrument::Gauge(_, up_down) = &self.instrument {
            up_down.add(-value, &self.attributes);
        }
    }
    fn set(&self, value: f64) {
        if let Instrument::Gauge(gauge, _) = &self.instrument {
            gauge.record(value, &self.attributes);
        }
    }
}

impl HistogramFn for Bridged {
    fn record(&self, value: f64) {
        if let Instrument::Histogram(h) = &self.instrument {
            h.record(value, &self.attributes);
        }
    }
}

impl Recorder for OtelBridge {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let instrument = self.instrument(key.name(), |m, n| Instrument::Counter(m.u64_counter(n).build()));
        Counter::from_arc(Arc::new(Bridged { instrument, attributes: attributes(key) }))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        let instrument = self.instrument(key.name(), |m, n| {
            Instrument::Gauge(m.f64_gauge(n.clone()).build(), m.f64_up_down_counter(n).build())
        });
        Gauge::from_arc(Arc::new(Bridged { instrument, attributes: attributes(key) }))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        let instrument = self.instrument(key.name(), |m, n| {
            Instrument::Histogram(m.f64_histogram(n).with_unit("s").with_boundaries(BUCKETS.to_vec()).build())
        });
        Histogram::from_arc(Arc::new(Bridged { instrument, attributes: attributes(key) }))
    }
}
