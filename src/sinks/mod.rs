//! Sinks: where normalized events go. A sink confirms each batch before the webhook is answered.
//!
//! Each sink is a [`SinkSpec`] in its own module; [`REGISTRY`] lists them, so adding a broker is
//! one module plus one line there. A spec reads its own configuration (file section and
//! environment) and builds a [`Sink`]; [`Sinks`] fans a request's deliveries out to them.

pub mod amqp;
pub mod encode;
pub mod file;
pub mod kafka;
pub mod nats;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{join_all, BoxFuture};
use serde::Deserialize;
use serde_json::Value;
use tracing::field::Empty;
use tracing::Instrument;

use crate::config::{ConfigError, Env};
use crate::event::CloudEvent;
use crate::telemetry::names;

/// Every sink regbridge can publish to.
pub const REGISTRY: &[&SinkSpec] = &[&file::SPEC, &kafka::SPEC, &nats::SPEC, &amqp::SPEC];

/// Reads a sink's config-file section and environment; `Ok(None)` when it is not configured.
pub type Configure = fn(Option<&Value>, &Env) -> Result<Option<Arc<dyn SinkConfig>>, ConfigError>;

/// A kind of sink: how it is configured and what its destinations look like.
pub struct SinkSpec {
    pub name: &'static str,
    /// A remote broker (as opposed to a local file): the outbox is on by default when one is
    /// configured.
    pub is_broker: bool,
    /// Reads the sink's section of the config file and its environment variables; `Ok(None)` when
    /// the sink is not configured.
    pub configure: Configure,
    /// The rules-file key naming the destination (`topic`, `subject`, `exchange`; `""`: none).
    pub name_field: &'static str,
    /// The rules-file key of the secondary key (`routing_key`), if the sink has one.
    pub key_field: Option<&'static str>,
    /// Destination name template used when no rules file is given (topic, subject, exchange).
    pub default_name: &'static str,
    /// Secondary key template (AMQP routing key), if the sink has one.
    pub default_key: Option<&'static str>,
    /// Characters a value substituted into a destination name may keep; others become `_`.
    pub name_char_ok: fn(char) -> bool,
    /// The same for the secondary key.
    pub key_char_ok: fn(char) -> bool,
    /// The variables it reads (a name ending in `_` stands for every variable it starts), so
    /// that one it does not read is named as a likely typo.
    pub env: &'static [&'static str],
}

impl std::fmt::Debug for SinkSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// Look a sink kind up by name; the error lists the valid names.
pub fn by_name(name: &str) -> Result<&'static SinkSpec, String> {
    REGISTRY.iter().copied().find(|s| s.name == name).ok_or_else(|| {
        let names: Vec<_> = REGISTRY.iter().map(|s| s.name).collect();
        format!("unknown sink `{name}` (valid: {})", names.join(", "))
    })
}

/// A validated sink configuration, ready to connect.
pub trait SinkConfig: std::fmt::Debug + Send + Sync {
    fn spec(&self) -> &'static SinkSpec;
    /// The effective settings with secrets masked, for `check-config`.
    fn describe(&self) -> Value;
    /// Connects (or opens) the sink. Called once at start-up.
    fn build(&self) -> BoxFuture<'_, Result<Arc<dyn Sink>, SinkError>>;
}

/// How long a publish may stay unresolved unless a sink says otherwise (see
/// [`Sink::confirm_deadline`]).
pub const DEFAULT_CONFIRM_DEADLINE: Duration = Duration::from_secs(30);

/// A connected sink. Implementations share one connection and reconnect by themselves.
pub trait Sink: Send + Sync {
    /// Publishes the batch and resolves once the broker (or disk) confirmed every message of it.
    fn publish<'a>(&'a self, batch: &'a [Delivery]) -> BoxFuture<'a, Result<(), SinkError>>;
    /// By when a publish has certainly resolved by itself (confirmed or failed), so that a retry
    /// does not put a second copy next to one still in flight. The outbox's relay waits this
    /// long; the webhook's own budget is shorter.
    fn confirm_deadline(&self) -> Duration {
        DEFAULT_CONFIRM_DEADLINE
    }
    /// `Some((size, limit))` when `d`, as this sink's message, would be larger than the largest
    /// message the sink accepts: no retry could deliver it. Checked for every delivery of a
    /// request before any is published. Sinks without such a limit keep this default.
    fn oversized(&self, _d: &Delivery) -> Option<(usize, usize)> {
        None
    }
    /// Whether the sink can take events now; `Err` says why not.
    fn health(&self) -> Result<(), String>;
    /// Flushes what is in flight and closes; the caller bounds it with a deadline.
    fn shutdown(&self) -> BoxFuture<'_, ()>;
}

/// CloudEvents content mode of a protocol binding.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContentMode {
    /// Attributes in message headers, `data` as the body.
    #[default]
    Binary,
    /// The whole event as `application/cloudevents+json` in the body.
    Structured,
}

/// Where one event goes within a sink: rendered from a route's templates.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    /// Topic, subject or exchange (empty for the file sink).
    pub name: String,
    /// Routing key, where the sink has one.
    pub key: Option<String>,
    pub mode: ContentMode,
}

/// One event bound for one target of one sink.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub event: Arc<CloudEvent>,
    pub target: Target,
}

/// Why a sink did not confirm: for now (`Unavailable`, `Timeout`: retrying will do) or for good
/// (`Rejected`: the broker refuses this message until someone changes something).
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("{sink} is unavailable: {reason}")]
    Unavailable { sink: &'static str, reason: String },
    #[error("{sink} rejected the event: {reason}")]
    Rejected { sink: &'static str, reason: String },
    #[error("{sink} did not confirm within {budget:?}")]
    Timeout { sink: &'static str, budget: Duration },
}

impl SinkError {
    /// A refusal that retrying alone cannot change (the outbox dead-letters such entries after
    /// bounded attempts).
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Rejected { .. })
    }
}

/// An event larger, as one sink's message, than that sink ever accepts. Retrying cannot help, so
/// the webhook is refused with a 4xx before anything is published.
#[derive(Debug, thiserror::Error)]
#[error("the event is {size} bytes as a {sink} message, over that sink's limit of {limit} bytes")]
pub struct Oversized {
    pub sink: &'static str,
    pub size: usize,
    pub limit: usize,
}

/// Publishes one sink's batch within `budget`, recording the outcome on its span and metrics.
async fn publish(
    name: &'static str,
    entry: &Entry,
    batch: &[Delivery],
    budget: Duration,
) -> Result<(), SinkError> {
    let span = publish_span(name, batch);
    async move {
        let started = std::time::Instant::now();
        let result = match tokio::time::timeout(budget, entry.sink.publish(batch)).await {
            Ok(r) => r,
            Err(_) => Err(SinkError::Timeout { sink: name, budget }),
        };
        let outcome = match &result {
            Ok(()) => "ok",
            Err(SinkError::Timeout { .. }) => "timeout",
            Err(e) => {
                tracing::warn!(sink = name, error = %e, "publish failed");
                "error"
            }
        };
        let span = tracing::Span::current();
        span.record("regbridge.outcome", outcome);
        if outcome != "ok" {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", outcome);
        }
        if result.is_ok() {
            entry.ok.increment(1);
        } else {
            metrics::counter!(names::PUBLISHES, "sink" => name, "outcome" => outcome).increment(1);
        }
        entry.duration.record(started.elapsed());
        result
    }
    .instrument(span)
    .await
}

/// A producer span per sink and request, with the OpenTelemetry messaging attributes.
fn publish_span(sink: &'static str, batch: &[Delivery]) -> tracing::Span {
    let system = match sink {
        "amqp" => "rabbitmq",
        other => other,
    };
    let span = tracing::debug_span!(
        "publish",
        otel.name = %format_args!("publish {sink}"),
        otel.kind = "producer",
        otel.status_code = Empty,
        error.type = Empty,
        messaging.system = system,
        messaging.operation.type = "send",
        messaging.destination.name = batch.first().map_or("", |d| d.target.name.as_str()),
        messaging.batch.message_count = batch.len(),
        messaging.message.id = Empty,
        regbridge.sink = sink,
        regbridge.outcome = Empty,
    );
    if let [one] = batch {
        span.record("messaging.message.id", one.event.id());
    }
    span
}

/// A connected sink with the metric handles of its successful publishes, resolved once.
#[derive(Clone)]
struct Entry {
    spec: &'static SinkSpec,
    sink: Arc<dyn Sink>,
    ok: metrics::Counter,
    duration: metrics::Histogram,
}

impl Entry {
    fn new(spec: &'static SinkSpec, sink: Arc<dyn Sink>) -> Self {
        // Handles taken before a recorder exists would stay no-ops; install one if none is yet.
        crate::telemetry::metrics_handle();
        Self {
            ok: metrics::counter!(names::PUBLISHES, "sink" => spec.name, "outcome" => "ok"),
            duration: metrics::histogram!(names::PUBLISH_DURATION, "sink" => spec.name),
            spec,
            sink,
        }
    }
}

/// The connected sinks, by kind.
#[derive(Clone, Default)]
pub struct Sinks {
    sinks: Vec<Entry>,
}

impl Sinks {
    pub async fn build(configs: &[Arc<dyn SinkConfig>]) -> Result<Self, SinkError> {
        let mut sinks = Vec::with_capacity(configs.len());
        for c in configs {
            sinks.push(Entry::new(c.spec(), c.build().await?));
        }
        Ok(Self { sinks })
    }

    /// A set made of already-built sinks (tests use in-memory ones).
    pub fn from_parts(sinks: Vec<(&'static SinkSpec, Arc<dyn Sink>)>) -> Self {
        Self { sinks: sinks.into_iter().map(|(spec, sink)| Entry::new(spec, sink)).collect() }
    }

    pub fn specs(&self) -> impl Iterator<Item = &'static SinkSpec> + '_ {
        self.sinks.iter().map(|e| e.spec)
    }

    /// Each sink's readiness, in configuration order; also kept in the readiness gauge.
    pub fn health(&self) -> Vec<(&'static str, Result<(), String>)> {
        self.sinks
            .iter()
            .map(|Entry { spec: s, sink, .. }| {
                let health = sink.health();
                metrics::gauge!(names::SINK_READY, "sink" => s.name).set(if health.is_ok() {
                    1.0
                } else {
                    0.0
                });
                (s.name, health)
            })
            .collect()
    }

    /// Refuses the request when any delivery is larger than its sink accepts; called before
    /// [`Sinks::deliver`], so an event is published to all its sinks or to none.
    pub fn admit(&self, deliveries: &[(&'static str, Delivery)]) -> Result<(), Oversized> {
        for (name, d) in deliveries {
            if let Some(entry) = self.sinks.iter().find(|e| e.spec.name == *name) {
                if let Some((size, limit)) = entry.sink.oversized(d) {
                    return Err(Oversized { sink: name, size, limit });
                }
            }
        }
        Ok(())
    }

    fn entry(&self, name: &str) -> Result<&Entry, SinkError> {
        // The router is compiled against the configured sinks, so a miss is a bug.
        self.sinks.iter().find(|e| e.spec.name == name).ok_or_else(|| SinkError::Unavailable {
            sink: "unknown",
            reason: format!("sink `{name}` is not configured"),
        })
    }

    /// Publishes `batch` to the sink `name` and succeeds once it confirmed, within `budget`;
    /// recorded on a producer span and the publish metrics.
    pub async fn publish(
        &self,
        name: &'static str,
        batch: &[Delivery],
        budget: Duration,
    ) -> Result<(), SinkError> {
        publish(name, self.entry(name)?, batch, budget).await
    }

    /// One sink's readiness (see [`Sinks::health`]).
    pub fn health_of(&self, name: &str) -> Result<(), String> {
        self.entry(name).map_err(|e| e.to_string())?.sink.health()
    }

    /// See [`Sink::confirm_deadline`].
    pub fn confirm_deadline(&self, name: &str) -> Duration {
        self.entry(name).map_or(DEFAULT_CONFIRM_DEADLINE, |e| e.sink.confirm_deadline())
    }

    /// Shuts every sink down, each within `deadline`.
    pub async fn shutdown(&self, deadline: Duration) {
        let all = self.sinks.iter().map(|Entry { spec, sink, .. }| async move {
            if tokio::time::timeout(deadline, sink.shutdown()).await.is_err() {
                tracing::warn!(sink = spec.name, ?deadline, "sink did not shut down in time");
            }
        });
        join_all(all).await;
    }
}
