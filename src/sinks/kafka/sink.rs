//! The producer: one per process, shared by all requests; deliveries confirmed per record.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::{join_all, BoxFuture};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::statistics::Statistics;
use rdkafka::ClientContext;

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

pub struct KafkaSink {
    producer: FutureProducer<Context>,
    health: Arc<Mutex<Result<(), String>>>,
}

impl KafkaSink {
    pub fn connect(config: ClientConfig) -> Result<Self, SinkError> {
        let health = Arc::new(Mutex::new(Err("connecting".to_owned())));
        let producer = config
            .create_with_context(Context { health: health.clone() })
            .map_err(|e| SinkError::Unavailable { sink: "kafka", reason: e.to_string() })?;
        Ok(Self { producer, health })
    }
}

/// One record's parts, owned so the enqueue loop can borrow them.
pub struct Record {
    pub topic: String,
    pub key: Option<String>,
    pub payload: Bytes,
    pub headers: OwnedHeaders,
}

/// The CloudEvents Kafka binding of one delivery.
pub fn record(d: &Delivery) -> Result<Record, SinkError> {
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
    Ok(Record { topic: d.target.name.clone(), key: Some(ev.partitionkey().to_owned()), payload, headers })
}

impl Sink for KafkaSink {
    fn publish(&self, batch: Vec<Delivery>) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move {
            let records = batch.iter().map(record).collect::<Result<Vec<_>, _>>()?;
            // The headers move into librdkafka; topic, key and payload are copied from borrows.
            let (parts, headers): (Vec<_>, Vec<_>) =
                records.into_iter().map(|r| ((r.topic, r.key, r.payload), r.headers)).unzip();
            let mut pending = Vec::with_capacity(parts.len());
            for ((topic, key, payload), headers) in parts.iter().zip(headers) {
                let mut fr = FutureRecord::to(topic).payload(payload.as_ref()).headers(headers);
                if let Some(k) = key {
                    fr = fr.key(k);
                }
                let delivery = self.producer.send_result(fr).map_err(|(e, _)| SinkError::Unavailable {
                    sink: "kafka",
                    reason: format!("enqueue failed: {e}"),
                })?;
                pending.push(delivery);
            }
            for result in join_all(pending).await {
                match result {
                    Ok(Ok(_)) => {}
                    Ok(Err((e, _))) => {
                        return Err(SinkError::Unavailable { sink: "kafka", reason: e.to_string() })
                    }
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

    fn health(&self) -> Result<(), String> {
        self.health.lock().unwrap_or_else(|p| p.into_inner()).clone()
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
