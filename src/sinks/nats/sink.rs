//! JetStream publishes confirmed by their PubAck, from a NATS client on the request's own thread.
//!
//! A shared client, connected at start-up, sets the stream up and answers for health and
//! shutdown. Each HTTP worker thread also connects a client of its own, on its first publish and
//! on its own runtime, so a publish and its PubAck never leave the thread serving the request:
//! through the shared client, each crossed to that client's connection task on another thread
//! and back (two thread wake-ups per webhook). Until the thread's client is up, and whenever it
//! is not connected, the shared client publishes.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use async_nats::connection::State;
use async_nats::header::HeaderName;
use async_nats::jetstream::{self, context::GetStreamErrorKind, stream};
use async_nats::HeaderMap;
use bytes::Bytes;
use futures_util::future::{join_all, BoxFuture};
use tokio::runtime::{Handle, RuntimeFlavor};

use super::{Mode, NatsConfig};
use crate::sinks::{encode, ContentMode, Delivery, Sink, SinkError};

/// A thread's client whose connection failed is tried again after this long.
const THREAD_CLIENT_RETRY: Duration = Duration::from_secs(5);

/// One connection and its JetStream context.
struct Conn {
    client: async_nats::Client,
    js: jetstream::Context,
}

impl Conn {
    /// `retry`: start even when NATS is down (the shared client, so that the service starts and
    /// `/readyz` reports it); a thread's client fails instead, and the shared one stands in.
    async fn open(config: &NatsConfig, retry: bool) -> Result<Self, SinkError> {
        let mut options =
            async_nats::ConnectOptions::new().name("regbridge").connection_timeout(Duration::from_secs(5));
        if retry {
            options = options.retry_on_initial_connect();
        }
        if let Some(path) = &config.creds_file {
            options =
                options.credentials_file(path).await.map_err(|e| unavailable(format!("{path}: {e}")))?;
        }
        let servers: Vec<async_nats::ServerAddr> =
            config.url.split(',').filter_map(|s| s.trim().parse().ok()).collect();
        let client = options.connect(servers).await.map_err(unavailable)?;
        let js = jetstream::new(client.clone());
        Ok(Self { client, js })
    }

    fn connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }
}

/// A sink's client on the current thread. The table holds it weakly: a task on the thread's
/// runtime owns it, so it is dropped with that runtime's tasks, while the runtime can still
/// take the connection task's last wake-up (thread-local destructors run too late for that).
enum ThreadClient {
    Connecting,
    Ready(Weak<Conn>),
    Failed(Instant),
}

thread_local! {
    /// By sink instance: a process may hold several sinks (the integration tests do).
    static THREAD_CLIENTS: RefCell<Vec<(u64, ThreadClient)>> = const { RefCell::new(Vec::new()) };
}

static NEXT_SINK_ID: AtomicU64 = AtomicU64::new(0);

pub struct NatsSink {
    shared: Arc<Conn>,
    config: NatsConfig,
    id: u64,
    /// Set once the stream is known to exist and cover our subjects; until then every publish
    /// tries to ensure it (NATS may have been down at start-up).
    stream_ready: AtomicBool,
    /// The server's `max_payload` (headers and body) as last read; 0 while unknown.
    max_payload: AtomicUsize,
}

fn unavailable(reason: impl ToString) -> SinkError {
    SinkError::Unavailable { sink: "nats", reason: reason.to_string() }
}

impl NatsSink {
    pub async fn connect(config: NatsConfig) -> Result<Self, SinkError> {
        let shared = Arc::new(Conn::open(&config, true).await?);
        let id = NEXT_SINK_ID.fetch_add(1, Ordering::Relaxed);
        let sink = Self {
            shared,
            config,
            id,
            stream_ready: AtomicBool::new(false),
            max_payload: AtomicUsize::new(0),
        };
        if sink.config.mode == Mode::Jetstream {
            if let Err(e) = sink.ensure_stream().await {
                tracing::warn!(sink = "nats", error = %e, "stream not ready yet; retrying on publish");
            }
        }
        Ok(sink)
    }

    /// The connection to publish on: this thread's own when it is connected, else the shared.
    fn conn(&self) -> Arc<Conn> {
        match self.thread_client() {
            Some(own) if own.connected() => own,
            _ => self.shared.clone(),
        }
    }

    /// This thread's client, starting its connection on the first call. Only a single-threaded
    /// runtime (an HTTP worker's) gets one: there, the connection task runs on this very thread;
    /// on a multi-threaded runtime requests move between threads and the shared client is used.
    fn thread_client(&self) -> Option<Arc<Conn>> {
        THREAD_CLIENTS.with_borrow_mut(|clients| {
            let slot = clients.iter_mut().find(|(id, _)| *id == self.id).map(|(_, c)| c);
            match slot {
                Some(ThreadClient::Ready(conn)) => {
                    if let Some(conn) = conn.upgrade() {
                        return Some(conn);
                    }
                }
                Some(ThreadClient::Connecting) => return None,
                Some(ThreadClient::Failed(at)) if at.elapsed() < THREAD_CLIENT_RETRY => return None,
                _ => {}
            }
            let single_threaded =
                Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::CurrentThread);
            if !single_threaded || !self.shared.connected() {
                return None;
            }
            match slot {
                Some(state) => *state = ThreadClient::Connecting,
                None => clients.push((self.id, ThreadClient::Connecting)),
            }
            let (config, id) = (self.config.clone(), self.id);
            // A current-thread runtime polls its tasks on this thread, so the result lands in
            // this thread's table.
            tokio::spawn(async move {
                let (state, owned) = match Conn::open(&config, false).await {
                    Ok(conn) => {
                        let conn = Arc::new(conn);
                        (ThreadClient::Ready(Arc::downgrade(&conn)), Some(conn))
                    }
                    Err(e) => {
                        tracing::warn!(sink = "nats", error = %e, "worker thread's NATS client failed to connect");
                        (ThreadClient::Failed(Instant::now()), None)
                    }
                };
                THREAD_CLIENTS.with_borrow_mut(|clients| {
                    if let Some((_, slot)) = clients.iter_mut().find(|(i, _)| *i == id) {
                        *slot = state;
                    }
                });
                if owned.is_some() {
                    // Keeps the client until the runtime drops its tasks (the worker stops).
                    std::future::pending::<()>().await;
                }
                drop(owned);
            });
            None
        })
    }

    /// Creates the stream when absent; adds our subjects when an existing stream lacks them.
    async fn ensure_stream(&self) -> Result<(), SinkError> {
        if self.stream_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let name = &self.config.stream;
        let js = &self.shared.js;
        match js.get_stream(name).await {
            Ok(existing) => {
                let mut cfg = existing.cached_info().config.clone();
                let missing: Vec<String> =
                    self.config.subjects.iter().filter(|s| !cfg.subjects.contains(s)).cloned().collect();
                if !missing.is_empty() {
                    cfg.subjects.extend(missing);
                    js.update_stream(cfg)
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
                js.create_stream(cfg)
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

/// The size async-nats holds a message to against the server's `max_payload`: the header block
/// as it is written (`NATS/1.0` line, a `name: value` line per header, blank line) and the body.
pub fn wire_size(d: &Delivery, limit: usize) -> usize {
    let line = |name: &str, len: usize| name.len() + 2 + len + 2;
    let framing = "NATS/1.0\r\n\r\n".len() + line("Nats-Msg-Id", d.event.id().len());
    encode::message_size(d, framing, |a| a.dashed, line, limit)
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
    fn publish<'a>(&'a self, batch: &'a [Delivery]) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let conn = self.conn();
            if !conn.connected() {
                return Err(unavailable("not connected"));
            }
            match self.config.mode {
                Mode::Jetstream => {
                    self.ensure_stream().await?;
                    let mut acks = Vec::with_capacity(batch.len());
                    for d in batch {
                        let (headers, body) = message(d);
                        let ack = conn
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
                    for d in batch {
                        let (headers, body) = message(d);
                        conn.client
                            .publish_with_headers(d.target.name.clone(), headers, body)
                            .await
                            .map_err(unavailable)?;
                    }
                    // Core NATS has no acknowledgement: the flush confirms the server has the bytes.
                    conn.client.flush().await.map_err(unavailable)?;
                }
            }
            Ok(())
        })
    }

    fn oversized(&self, d: &Delivery) -> Option<(usize, usize)> {
        let known = self.max_payload.load(Ordering::Relaxed);
        let size = wire_size(d, known);
        if known != 0 && size <= known {
            return None;
        }
        // Rare: read the limit again (reading clones the server's INFO); the server may have
        // been unknown until now, or replaced by one with another limit.
        let limit = self.shared.client.server_info().max_payload;
        self.max_payload.store(limit, Ordering::Relaxed);
        (limit != 0 && size > limit).then_some((size, limit))
    }

    fn health(&self) -> Result<(), String> {
        match self.shared.client.connection_state() {
            State::Connected => Ok(()),
            other => Err(format!("NATS connection {other:?}").to_lowercase()),
        }
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        // The threads' clients need nothing here: every publish on them was confirmed (PubAck or
        // flush) before its webhook was answered, and they close with their threads.
        Box::pin(async move {
            if let Err(e) = self.shared.client.flush().await {
                tracing::debug!(sink = "nats", error = %e, "flush on shutdown");
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;

    use super::*;
    use crate::event::{self, kinds, Envelope, Occurrence};
    use crate::sinks::Target;

    /// Needs the NATS server with JetStream that `scripts/brokers up` provides.
    fn config() -> NatsConfig {
        let url = std::env::var("REGBRIDGE_TEST_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
        let mut b = [0u8; 6];
        getrandom::fill(&mut b).unwrap();
        let id = format!("unit_{}", hex::encode(b));
        NatsConfig {
            url,
            mode: Mode::Jetstream,
            stream: id.to_uppercase(),
            subjects: vec![format!("{id}.>")],
            creds_file: None,
        }
    }

    fn delivery(config: &NatsConfig, n: u32) -> Vec<Delivery> {
        let occ = Occurrence::new(kinds::ARTIFACT_PUSHED, format!("evt-{n}"), "PUSH_ARTIFACT");
        let env = Envelope {
            endpoint: "harbor",
            registry: "harbor",
            traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            tracestate: Some("vendor=opaque"),
            ..Envelope::default()
        };
        let subject = config.subjects[0].replace('>', "pushed");
        let target = Target { name: subject, key: None, mode: ContentMode::Binary };
        vec![Delivery { event: Arc::new(event::build(&occ, &env, None)), target }]
    }

    fn sent(conn: &Conn) -> u64 {
        conn.client.statistics().out_messages.load(Relaxed)
    }

    async fn connected(config: NatsConfig) -> NatsSink {
        let url = config.url.clone();
        let sink = NatsSink::connect(config).await.unwrap();
        for _ in 0..50 {
            if sink.health().is_ok() {
                return sink;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("NATS is not reachable at {url}; start the test brokers with `scripts/brokers up`");
    }

    #[test]
    fn wire_size_counts_the_header_block_and_body_as_they_are_sent() {
        let config = NatsConfig { url: String::new(), ..config() };
        for mode in [ContentMode::Binary, ContentMode::Structured] {
            let mut d = delivery(&config, 1).remove(0);
            d.target.mode = mode;
            let (headers, body) = message(&d);
            // async-nats writes `NATS/1.0\r\n`, `name: value\r\n` per header, then `\r\n`.
            let lines: usize = headers
                .iter()
                .flat_map(|(k, vs)| vs.iter().map(move |v| k.to_string().len() + v.as_str().len() + 4))
                .sum();
            assert_eq!(wire_size(&d, 0), 12 + lines + body.len(), "{mode:?}");
            assert!(wire_size(&d, usize::MAX) >= wire_size(&d, 0), "{mode:?}");
        }
    }

    #[test]
    fn a_single_threaded_runtime_publishes_on_a_client_of_its_own() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let config = config();
            let sink = connected(config.clone()).await;
            // The first publish goes through the shared client and starts this thread's own.
            sink.publish(&delivery(&config, 1)).await.unwrap();
            let mut own = None;
            for _ in 0..50 {
                own = sink.thread_client().filter(|c| c.connected());
                if own.is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let own = own.expect("the thread's client connects");
            let (shared_before, own_before) = (sent(&sink.shared), sent(&own));
            sink.publish(&delivery(&config, 2)).await.unwrap();
            assert_eq!(sent(&sink.shared), shared_before, "the shared client stays idle");
            assert_eq!(sent(&own), own_before + 1, "the thread's client publishes");
            let mut stream = sink.shared.js.get_stream(&config.stream).await.unwrap();
            assert_eq!(stream.info().await.unwrap().state.messages, 2, "both events were stored");
            sink.shared.js.delete_stream(&config.stream).await.unwrap();
        });
    }

    #[test]
    fn a_multi_threaded_runtime_keeps_to_the_shared_client() {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            let config = config();
            let sink = connected(config.clone()).await;
            for n in 0..3 {
                sink.publish(&delivery(&config, n)).await.unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(sink.thread_client().is_none());
            assert!(THREAD_CLIENTS.with_borrow(|c| c.iter().all(|(id, _)| *id != sink.id)));
            sink.shared.js.delete_stream(&config.stream).await.unwrap();
        });
    }
}
