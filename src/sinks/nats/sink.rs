//! One client per process; JetStream publishes are confirmed by their PubAck.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::connection::State;
use async_nats::header::HeaderName;
use async_nats::jetstream::{self, context::GetStreamErrorKind, stream};
use async_nats::HeaderMap;
use bytes::Bytes;
use futures_util::future::{join_all, BoxFuture};

use super::{Mode, NatsConfig};
use crate::sinks::{encode, ContentMode, Delivery, Sink, SinkError};

pub struct NatsSink {
    client: async_nats::Client,
    js: jetstream::Context,
    config: NatsConfig,
    /// Set once the stream is known to exist and cover our subjects; until then every publish
    /// tries to ensure it (NATS may have been down at start-up).
    stream_ready: AtomicBool,
}

fn unavailable(reason: impl ToString) -> SinkError {
    SinkError::Unavailable { sink: "nats", reason: reason.to_string() }
}

impl NatsSink {
    pub async fn connect(config: NatsConfig) -> Result<Self, SinkError> {
        let mut options = async_nats::ConnectOptions::new()
            .name("regbridge")
            // Start even when NATS is down; the client reconnects by itself and /readyz says so.
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5));
        if let Some(path) = &config.creds_file {
            options =
                options.credentials_file(path).await.map_err(|e| unavailable(format!("{path}: {e}")))?;
        }
        let servers: Vec<async_nats::ServerAddr> =
            config.url.split(',').filter_map(|s| s.trim().parse().ok()).collect();
        let client = options.connect(servers).await.map_err(unavailable)?;
        let js = jetstream::new(client.clone());
        let sink = Self { client, js, config, stream_ready: AtomicBool::new(false) };
        if sink.config.mode == Mode::Jetstream {
            if let Err(e) = sink.ensure_stream().await {
                tracing::warn!(sink = "nats", error = %e, "stream not ready yet; retrying on publish");
            }
        }
        Ok(sink)
    }

    /// Creates the stream when absent; adds our subjects when an existing stream lacks them.
    async fn ensure_stream(&self) -> Result<(), SinkError> {
        if self.stream_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let name = &self.config.stream;
        match self.js.get_stream(name).await {
            Ok(existing) => {
                let mut cfg = existing.cached_info().config.clone();
                let missing: Vec<String> =
                    self.config.subjects.iter().filter(|s| !cfg.subjects.contains(s)).cloned().collect();
                if !missing.is_empty() {
                    cfg.subjects.extend(missing);
                    self.js
                        .update_stream(cfg)
                        .await
                        .map_err(|e| unavailable(format!("updating stream {name}: {e}")))?;
                }
            }
            Err(e) if matches!(e.kind(), GetStreamErrorKind::JetStream(j) if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND) =>
            {
                let cfg = stream::Config {
                    name: name.clone(),
                    subjects: self.config.subjects.clone(),
                    storage: stream::StorageType::File,
                    // The broker drops a redelivered event whose id it saw within this window.
                    duplicate_window: Duration::from_secs(120),
                    ..Default::default()
                };
                self.js
                    .create_stream(cfg)
                    .await
                    .map_err(|e| unavailable(format!("creating stream {name}: {e}")))?;
                tracing::info!(sink = "nats", stream = %name, "created JetStream stream");
            }
            Err(e) => return Err(unavailable(format!("looking up stream {name}: {e}"))),
        }
        self.stream_ready.store(true, Ordering::Release);
        Ok(())
    }
}

/// Headers of the CloudEvents NATS binding (`ce-` attributes in binary mode) plus
/// `Nats-Msg-Id`, which JetStream uses to drop redeliveries of the same event.
pub fn message(d: &Delivery) -> (HeaderMap, Bytes) {
    let ev = &d.event;
    let (body, content_type) = encode::body(ev, d.target.mode);
    // Static names: a `&str` name is validated and copied into the map on every insert.
    let mut headers = HeaderMap::new();
    headers.insert(HeaderName::from_static("Nats-Msg-Id"), ev.id());
    headers.insert(HeaderName::from_static("content-type"), content_type);
    for (name, value) in encode::trace_headers(ev) {
        headers.insert(HeaderName::from_static(name), value.as_ref());
    }
    if d.target.mode == ContentMode::Binary {
        for (attribute, value) in ev.attributes() {
            headers.insert(HeaderName::from_static(attribute.dashed), value);
        }
    }
    (headers, body)
}

impl Sink for NatsSink {
    fn publish(&self, batch: Vec<Delivery>) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move {
            if self.client.connection_state() != State::Connected {
                return Err(unavailable("not connected"));
            }
            match self.config.mode {
                Mode::Jetstream => {
                    self.ensure_stream().await?;
                    let mut acks = Vec::with_capacity(batch.len());
                    for d in &batch {
                        let (headers, body) = message(d);
                        let ack = self
                            .js
                            .publish_with_headers(d.target.name.clone(), headers, body)
                            .await
                            .map_err(|e| unavailable(format!("publish to {}: {e}", d.target.name)))?;
                        acks.push(std::future::IntoFuture::into_future(ack));
                    }
                    for ack in join_all(acks).await {
                        ack.map_err(|e| unavailable(format!("no PubAck: {e}")))?;
                    }
                }
                Mode::Core => {
                    for d in &batch {
                        let (headers, body) = message(d);
                        self.client
                            .publish_with_headers(d.target.name.clone(), headers, body)
                            .await
                            .map_err(unavailable)?;
                    }
                    // Core NATS has no acknowledgement: the flush confirms the server has the bytes.
                    self.client.flush().await.map_err(unavailable)?;
                }
            }
            Ok(())
        })
    }

    fn health(&self) -> Result<(), String> {
        match self.client.connection_state() {
            State::Connected => Ok(()),
            other => Err(format!("NATS connection {other:?}").to_lowercase()),
        }
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Err(e) = self.client.flush().await {
                tracing::debug!(sink = "nats", error = %e, "flush on shutdown");
            }
        })
    }
}
