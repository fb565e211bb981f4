//! The producer: one per process, shared by all requests; deliveries confirmed per record.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::statistics::Statistics;
use rdkafka::ClientContext;

use super::topics::{TopicSettings, Topics};
use crate::sinks::{encode, ContentMode, Delivery, Sink, SinkError};

/// Follows broker connectivity from librdkafka's statistics and error callbacks, for `/readyz`.
struct Context {
    health: Arc<Mutex<Result<(), String>>>,
}

impl ClientContext for Context {
    fn stats(&self, stats: Statistics) {
        // `UP` on any broker connection means records can flow (librdkafka reconnects on its own).
        let up = stats.brokers.values().any(|b| b.state == "UP");
        *self.health.lock().unwrap_or_else(|p| p.into_inner()) =
            if up { Ok(()) } else { Err("no Kafka broker connection is up".into()) };
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            *self.health.lock().unwrap_or_else(|p| p.into_inner()) =
                Err(format!("all brokers down: {reason}"));
        }
        tracing::warn!(sink = "kafka", error = %error, reason, "kafka client error");
    }
}

/// librdkafka's `message.max.bytes` when not set.
const DEFAULT_MESSAGE_MAX_BYTES: usize = 1_000_000;

/// librdkafka's `message.timeout.ms` when not set.
const DEFAULT_MESSAGE_TIMEOUT_MS: u64 = 300_000;

pub struct KafkaSink {
    producer: FutureProducer<Context>,
    health: Arc<Mutex<Result<(), String>>>,
    topics: Topics,
    /// `message.max.bytes`: librdkafka refuses a larger record when it is produced.
    message_max_bytes: usize,
    /// `message.timeout.ms`: every delivery report arrives within it.
    message_timeout: Duration,
}

impl KafkaSink {
    pub fn connect(config: ClientConfig, topics: TopicSettings) -> Result<Self, SinkError> {
        let health = Arc::new(Mutex::new(Err("connecting".to_owned())));
        let setting = |name: &str| config.get(name).and_then(|v| v.trim().parse::<u64>().ok());
        let message_max_bytes =
            setting("message.max.bytes").map_or(DEFAULT_MESSAGE_MAX_BYTES, |n| n as usize);
        // 0 is librdkafka's "no timeout": a day stands for it.
        let message_timeout = match setting("message.timeout.ms").unwrap_or(DEFAULT_MESSAGE_TIMEOUT_MS) {
            0 => Duration::from_secs(24 * 3600),
            ms => Duration::from_millis(ms),
        };
        let producer = config
            .create_with_context(Context { health: health.clone() })
            .map_err(|e| SinkError::Unavailable { sink: "kafka", reason: e.to_string() })?;
        let topics = Topics::new(topics, config);
        Ok(Self { producer, health, topics, message_max_bytes, message_timeout })
    }
}

/// A delivery failure as the outbox must treat it: refused for good when no retry of the same
/// record can succeed (too large, not authorized, a topic that cannot be), else for now.
fn delivery_error(e: &KafkaError) -> SinkError {
    use RDKafkaErrorCode as C;
    let reason = e.to_string();
    match e.rdkafka_error_code() {
        Some(
            C::MessageSizeTooLarge
            | C::InvalidTopic
            | C::TopicAuthorizationFailed
            | C::ClusterAuthorizationFailed
            | C::InvalidRecord
            | C::InvalidRequiredAcks
            | C::PolicyViolation,
        ) => SinkError::Rejected { sink: "kafka", reason },
        _ => SinkError::Unavailable { sink: "kafka", reason },
    }
}

/// The size librdkafka holds a record to when it is produced (`rd_kafka_msg_new0`): the largest
/// record framing (length, attributes, timestamp and offset deltas, key and value lengths and
/// header count, as varints of their widest), the key, the value, and each header's name and
/// value with their zigzag-varint lengths.
pub fn wire_size(d: &Delivery, limit: usize) -> usize {
    const RECORD_MAX_OVERHEAD: usize = 5 + 1 + 10 + 5 + 5 + 5 + 5;
    let varint = |n: usize| (64 - ((n as u64) << 1 | 1).leading_zeros() as usize).div_ceil(7);
    let header = |name: &str, len: usize| name.len() + len + varint(name.len()) + varint(len);
    let framing = RECORD_MAX_OVERHEAD + d.event.partitionkey().len();
    encode::message_size(d, framing, |a| a.underscored, header, limit)
}

/// One record's parts: topic and key borrowed from the delivery, the headers owned (librdkafka
/// takes them over when the record is produced).
pub struct Record<'a> {
    pub topic: &'a str,
    pub key: &'a str,
    pub payload: Bytes,
    pub headers: OwnedHeaders,
}

/// The CloudEvents Kafka binding of one delivery.
pub fn record(d: &Delivery) -> Result<Record<'_>, SinkError> {
    let ev = &d.event;
    let (payload, content_type) = encode::body(ev, d.target.mode);
    if payload.is_empty() {
        // An empty value is a tombstone on compacted topics; an event must never become one.
        return Err(SinkError::Rejected { sink: "kafka", reason: "event has no data".into() });
    }
    let mut headers = OwnedHeaders::new_with_capacity(12);
    headers = headers.insert(Header { key: "content-type", value: Some(content_type) });
    for (name, value) in encode::trace_headers(ev) {
        headers = headers.insert(Header { key: name, value: Some(value.as_ref()) });
    }
    if d.target.mode == ContentMode::Binary {
        for (attribute, value) in ev.attributes() {
            headers = headers.insert(Header { key: attribute.underscored, value: Some(value) });
        }
    }
    Ok(Record { topic: &d.target.name, key: ev.partitionkey(), payload, headers })
}

impl Sink for KafkaSink {
    fn publish<'a>(&'a self, batch: &'a [Delivery]) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            // All records are built before any is enqueued: one that cannot be sent fails the
            // batch with nothing published. Every record is enqueued before the first report is
            // awaited, so they travel in the same produce requests; the reports are then taken in
            // order (a webhook carries one event, rarely a few: nothing to gain from polling them
            // jointly).
            let records = batch.iter().map(record).collect::<Result<Vec<_>, _>>()?;
            let mut checked: Option<&str> = None;
            for r in &records {
                if checked != Some(r.topic) {
                    self.topics.ensure(&self.producer, r.topic).await?;
                    checked = Some(r.topic);
                }
            }
            let mut pending = Vec::with_capacity(records.len());
            for r in records {
                let fr = FutureRecord::to(r.topic).payload(r.payload.as_ref()).key(r.key).headers(r.headers);
                let delivery = self.producer.send_result(fr).map_err(|(e, _)| match delivery_error(&e) {
                    permanent @ SinkError::Rejected { .. } => permanent,
                    _ => SinkError::Unavailable { sink: "kafka", reason: format!("enqueue failed: {e}") },
                })?;
                pending.push(delivery);
            }
            for delivery in pending {
                match delivery.await {
                    Ok(Ok(_)) => {}
                    Ok(Err((e, _))) => return Err(delivery_error(&e)),
                    Err(_) => {
                        return Err(SinkError::Unavailable {
                            sink: "kafka",
                            reason: "producer closed".into(),
                        })
                    }
                }
            }
            Ok(())
        })
    }

    fn oversized(&self, d: &Delivery) -> Option<(usize, usize)> {
        let size = wire_size(d, self.message_max_bytes);
        (size > self.message_max_bytes).then_some((size, self.message_max_bytes))
    }

    fn confirm_deadline(&self) -> Duration {
        // librdkafka reports every record by `message.timeout.ms`; a retry before that could
        // queue a second copy behind one still in flight.
        self.message_timeout + Duration::from_secs(5)
    }

    fn health(&self) -> Result<(), String> {
        let connection = self.health.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match (connection, self.topics.health()) {
            (Ok(()), topics) => topics,
            (Err(c), Ok(())) => Err(c),
            (Err(c), Err(t)) => Err(format!("{c}; {t}")),
        }
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        let producer = self.producer.clone();
        Box::pin(async move {
            // flush blocks its thread; the caller bounds the whole shutdown with a deadline.
            let flushed = tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(10))).await;
            if let Ok(Err(e)) = flushed {
                tracing::warn!(sink = "kafka", error = %e, "flush on shutdown incomplete");
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::producer::{BaseProducer, BaseRecord};

    use super::*;
    use crate::event::{self, kinds, Envelope, Occurrence, Original};
    use crate::sinks::Target;

    fn delivery(mode: ContentMode) -> Delivery {
        let mut occ = Occurrence::new(kinds::ARTIFACT_PUSHED, "evt-1", "PUSH_ARTIFACT");
        occ.repository = Some("library/nginx".into());
        occ.tag = Some("1.27".into());
        let env = Envelope {
            endpoint: "harbor",
            registry: "harbor",
            traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            tracestate: Some("vendor=opaque"),
            ..Envelope::default()
        };
        let body = format!(r#"{{"padding":"{}"}}"#, "x".repeat(3000));
        let original = Original::compact(body.as_bytes()).unwrap();
        let event = Arc::new(event::build(&occ, &env, Some(&original)));
        Delivery { event, target: Target { name: "t".into(), key: None, mode } }
    }

    /// Whether librdkafka, holding records to `limit`, takes this one. No broker is needed: the
    /// size is checked when the record is produced.
    fn accepted(d: &Delivery, limit: usize) -> bool {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:1")
            .set("message.max.bytes", limit.to_string())
            .create()
            .unwrap();
        let r = record(d).unwrap();
        let br = BaseRecord::to(r.topic).payload(r.payload.as_ref()).key(r.key).headers(r.headers);
        match producer.send(br) {
            Ok(()) => true,
            Err((e, _)) => {
                assert_eq!(e.rdkafka_error_code(), Some(RDKafkaErrorCode::MessageSizeTooLarge), "{e}");
                false
            }
        }
    }

    #[test]
    fn wire_size_is_the_size_librdkafka_holds_a_record_to() {
        for mode in [ContentMode::Binary, ContentMode::Structured] {
            let d = delivery(mode);
            // A limit of 0 forces the exact size; a far one may give a bound instead.
            let size = wire_size(&d, 0);
            assert!(size > 3000, "{mode:?}: {size}");
            assert!(wire_size(&d, usize::MAX) >= size, "{mode:?}: a bound is never below the size");
            assert!(accepted(&d, size), "{mode:?}: {size} bytes refused at a limit of {size}");
            assert!(!accepted(&d, size - 1), "{mode:?}: {size} bytes taken at a limit of {}", size - 1);
        }
    }
}
