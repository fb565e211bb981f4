//! The connection: one per process with one publisher-confirm channel shared by all requests, and
//! the reconnection that keeps them usable across broker restarts without restarting regbridge.
//!
//! lapin can recover connections by itself, but it replays topology and blocks callers in
//! `wait_for_recovery`; here a request must fail fast (the sender retries), so the link is simply
//! replaced: a publish that finds it broken reconnects at once, and a background task keeps
//! retrying while nobody publishes, so `/readyz` turns green again on its own.

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use futures_util::future::{join_all, BoxFuture};
use futures_util::{Stream, StreamExt};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::uri::AMQPUri;
use lapin::{Channel, Confirmation, Connection, ConnectionProperties, ErrorKind, Event, ExchangeKind};
use tokio::sync::{oneshot, Notify};

use super::message::{self, Message};
use crate::sinks::{Delivery, Sink, SinkError};

const SINK: &str = "amqp";

/// A publish that finds the link down reconnects itself only if nobody tried within this long;
/// otherwise it fails at once with the last reason, so a burst of webhooks during an outage does
/// not turn into a burst of connection attempts.
const RETRY_FLOOR: Duration = Duration::from_secs(1);
/// How long a publish may spend reconnecting: under the default 2 s publish budget, so the sender
/// gets the reason rather than a bare timeout.
const PUBLISH_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Start-up and the background task can wait longer (a TLS handshake over a slow link).
const BACKGROUND_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The background task retries every second at first, then backs off to this.
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// What the sink connects to and how it declares exchanges.
pub struct Settings {
    pub uri: AMQPUri,
    pub kind: ExchangeKind,
    pub durable: bool,
}

pub struct AmqpSink {
    shared: Arc<Shared>,
}

/// State shared with the background task and the connection's event watcher (both hold it weakly,
/// so dropping the sink ends them).
struct Shared {
    settings: Settings,
    /// `host:port (vhost /)`, for messages: the URI's `Display` would print the password.
    endpoint: String,
    /// The current connection and channel, replaced whole on reconnect. A std mutex: held only to
    /// clone or swap the handles, never across an await.
    link: Mutex<Option<Link>>,
    /// One (re)connect at a time; a publish that finds it taken fails fast instead of queueing.
    connecting: tokio::sync::Mutex<()>,
    /// Why the link last went down (cleared when it comes back), and when a reconnect last started.
    down: Mutex<(Option<String>, Option<Instant>)>,
    /// Wakes the background task when the link breaks, so it does not wait out its backoff.
    wake: Notify,
    stopping: AtomicBool,
}

/// Cheap handles to one connection and its publishing channel.
#[derive(Clone)]
struct Link {
    conn: Arc<Conn>,
    channel: Channel,
    /// Exchanges declared since this channel opened. A new channel starts empty: if the old one
    /// died because an exchange was deleted under us (404 on publish), it is declared again.
    declared: Arc<Mutex<HashSet<String>>>,
}

struct Conn {
    connection: Connection,
    /// Dropped with the connection; that ends its event watcher (lapin's event stream never ends).
    _watcher: oneshot::Sender<()>,
}

impl Link {
    /// What is wrong with the link, if it cannot publish at all.
    fn broken(&self) -> Option<&'static str> {
        if !self.conn.connection.status().connected() {
            Some("connection closed")
        } else if !self.channel.status().connected() {
            Some("channel closed")
        } else {
            None
        }
    }

    /// A resource alarm (disk or memory) on the broker: publishes would hang until it clears.
    fn blocked(&self) -> bool {
        self.conn.connection.status().blocked()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn unavailable(reason: impl Into<String>) -> SinkError {
    SinkError::Unavailable { sink: SINK, reason: reason.into() }
}

impl AmqpSink {
    /// Connects and starts the background reconnector. A broker that is down at start-up does not
    /// stop regbridge: `/readyz` says why until the connection comes up.
    pub async fn connect(settings: Settings) -> Self {
        let a = &settings.uri.authority;
        let endpoint = format!("{}:{} (vhost {})", a.host, a.port, settings.uri.vhost);
        let shared = Arc::new(Shared {
            settings,
            endpoint,
            link: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            down: Mutex::new((None, None)),
            wake: Notify::new(),
            stopping: AtomicBool::new(false),
        });
        {
            let _one = shared.connecting.lock().await;
            if let Err(e) = shared.restore(BACKGROUND_CONNECT_TIMEOUT).await {
                tracing::warn!(sink = SINK, error = %e, "starting without a broker connection; retrying");
            }
        }
        tokio::spawn(keep_alive(Arc::downgrade(&shared)));
        Self { shared }
    }
}

impl Shared {
    fn current(&self) -> Option<Link> {
        lock(&self.link).clone()
    }

    fn reason(&self) -> Option<String> {
        lock(&self.down).0.clone()
    }

    /// The link broke under a publish or the watcher: remember why and wake the reconnector.
    fn lost(&self, reason: String) -> SinkError {
        tracing::warn!(sink = SINK, endpoint = %self.endpoint, %reason, "broker link lost");
        lock(&self.down).0 = Some(reason.clone());
        self.wake.notify_one();
        unavailable(reason)
    }

    /// A link that can publish now, reconnecting first if it is down and nobody just tried.
    async fn ready(self: &Arc<Self>) -> Result<Link, SinkError> {
        if self.stopping.load(Ordering::Acquire) {
            return Err(unavailable("shutting down"));
        }
        if let Some(link) = self.current() {
            match link.broken() {
                None if link.blocked() => {
                    return Err(unavailable("the broker blocked publishing (resource alarm)"))
                }
                None => return Ok(link),
                Some(_) => {}
            }
        }
        let down = || unavailable(self.reason().unwrap_or_else(|| "not connected".into()));
        let Ok(_one) = self.connecting.try_lock() else { return Err(down()) };
        if lock(&self.down).1.is_some_and(|t| t.elapsed() < RETRY_FLOOR) {
            return Err(down());
        }
        self.restore(PUBLISH_CONNECT_TIMEOUT).await
    }

    /// Brings the link back within `timeout`: a new channel if the connection is still up (a
    /// channel error closes only the channel), else a new connection. The caller holds
    /// `connecting`.
    async fn restore(self: &Arc<Self>, timeout: Duration) -> Result<Link, SinkError> {
        if let Some(link) = self.current().filter(|l| l.broken().is_none()) {
            return Ok(link);
        }
        lock(&self.down).1 = Some(Instant::now());
        let alive = self.current().map(|l| l.conn).filter(|c| c.connection.status().connected());
        let attempt = async {
            let conn = match alive {
                Some(conn) => conn,
                None => Arc::new(self.open().await?),
            };
            let channel = conn.connection.create_channel().await?;
            channel.confirm_select(ConfirmSelectOptions::default()).await?;
            Ok::<_, lapin::Error>(Link { conn, channel, declared: Arc::default() })
        };
        let reason = match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(link)) if !self.stopping.load(Ordering::Acquire) => {
                *lock(&self.link) = Some(link.clone());
                lock(&self.down).0 = None;
                tracing::info!(sink = SINK, endpoint = %self.endpoint, "connected, publisher confirms on");
                return Ok(link);
            }
            Ok(Ok(_)) => "shutting down".to_owned(),
            Ok(Err(e)) => format!("cannot connect to {}: {e}", self.endpoint),
            Err(_) => format!("connecting to {} took longer than {timeout:?}", self.endpoint),
        };
        // Not `lost`: waking the reconnector here would make it skip its own backoff.
        lock(&self.down).0 = Some(reason.clone());
        Err(unavailable(reason))
    }

    async fn open(self: &Arc<Self>) -> Result<Conn, lapin::Error> {
        let properties = ConnectionProperties::default()
            .with_connection_name("regbridge".into())
            .with_client_property("product".into(), "regbridge".into())
            .with_client_property("version".into(), env!("CARGO_PKG_VERSION").into());
        let connection = Connection::connect_uri(self.settings.uri.clone(), properties).await?;
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(watch(Arc::downgrade(self), connection.events_listener(), stopped));
        Ok(Conn { connection, _watcher: stop })
    }

    /// Declares the batch's exchanges this channel has not declared yet.
    async fn declare(&self, link: &Link, messages: &[Message]) -> Result<(), SinkError> {
        let missing: BTreeSet<&str> = {
            let declared = lock(&link.declared);
            messages
                .iter()
                .map(|m| m.exchange.as_str())
                // The default exchange ("") and `amq.*` exist on every broker and may not be
                // declared by clients.
                .filter(|x| !x.is_empty() && !x.starts_with("amq.") && !declared.contains(*x))
                .collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        // A refused declare closes the channel it was made on. On the shared publishing channel
        // that would fail every other request's pending confirms, so declares get their own.
        let channel = link.conn.connection.create_channel().await.map_err(|e| self.lost(e.to_string()))?;
        let options = ExchangeDeclareOptions { durable: self.settings.durable, ..Default::default() };
        for name in missing {
            let declared = channel
                .exchange_declare(name.into(), self.settings.kind.clone(), options, FieldTable::default())
                .await;
            match declared {
                Ok(()) => {
                    lock(&link.declared).insert(name.to_owned());
                }
                // The broker's own words, e.g. "PRECONDITION_FAILED - inequivalent arg 'type' for
                // exchange 'x' in vhost '/': received 'topic' but current is 'fanout'".
                Err(e) if matches!(e.kind(), ErrorKind::ProtocolError(_)) => {
                    let reason = format!("cannot declare exchange `{name}`: {e}");
                    return Err(SinkError::Rejected { sink: SINK, reason });
                }
                Err(e) => return Err(self.lost(format!("declaring exchange `{name}`: {e}"))),
            }
        }
        // Dropping the last handle closes the channel without waiting for the broker's reply.
        drop(channel);
        Ok(())
    }
}

/// Follows one connection's events: an I/O error (the broker restarted, the network dropped)
/// wakes the reconnector at once. A close the broker announces changes only the status, which
/// `health()` and the reconnector read directly.
async fn watch(shared: Weak<Shared>, events: impl Stream<Item = Event>, mut stop: oneshot::Receiver<()>) {
    let mut events = std::pin::pin!(events);
    loop {
        let event = tokio::select! {
            event = events.next() => event,
            _ = &mut stop => return,
        };
        let (Some(event), Some(shared)) = (event, shared.upgrade()) else { return };
        match event {
            Event::Error(e) => {
                shared.lost(format!("connection lost: {e}"));
            }
            Event::ConnectionBlocked(reason) => {
                tracing::warn!(sink = SINK, %reason, "the broker blocked publishing");
            }
            Event::ConnectionUnblocked => tracing::info!(sink = SINK, "the broker unblocked publishing"),
            _ => {}
        }
    }
}

/// While the link is down, reconnects every second, backing off to [`BACKOFF_MAX`]; woken early
/// when the link breaks. Ends when the sink shuts down or is dropped.
async fn keep_alive(shared: Weak<Shared>) {
    let mut delay = Duration::from_secs(1);
    loop {
        let Some(s) = shared.upgrade() else { return };
        if s.stopping.load(Ordering::Acquire) {
            return;
        }
        if s.current().is_some_and(|l| l.broken().is_none()) {
            delay = Duration::from_secs(1);
        } else {
            let _one = s.connecting.lock().await;
            delay = match s.restore(BACKGROUND_CONNECT_TIMEOUT).await {
                Ok(_) => Duration::from_secs(1),
                Err(e) => {
                    tracing::warn!(sink = SINK, error = %e, retry_in = ?delay, "reconnect failed");
                    (delay * 2).min(BACKOFF_MAX)
                }
            };
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = s.wake.notified() => {}
        }
    }
}

impl Sink for AmqpSink {
    fn publish<'a>(&'a self, batch: &'a [Delivery]) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let shared = &self.shared;
            let messages = batch.iter().map(message::encode).collect::<Result<Vec<_>, _>>()?;
            let link = shared.ready().await?;
            shared.declare(&link, &messages).await?;
            // Everything goes out first and the confirms are awaited together: one round trip
            // for the batch, not one per message.
            let mut confirms = Vec::with_capacity(messages.len());
            for m in &messages {
                let options = BasicPublishOptions { mandatory: true, immediate: false };
                let confirm = link
                    .channel
                    .basic_publish(
                        m.exchange.clone(),
                        m.routing_key.clone(),
                        options,
                        &m.body,
                        m.properties.clone(),
                    )
                    .await
                    .map_err(|e| shared.lost(format!("publish failed: {e}")))?;
                confirms.push(confirm);
            }
            // Awaited in a task of its own: when the publish budget runs out the caller drops this
            // future, and lapin keeps every dropped, unresolved confirm until the channel closes
            // (a slow broker would make that list grow for good). The task lets them resolve.
            let confirmed = tokio::spawn(join_all(confirms))
                .await
                .map_err(|e| unavailable(format!("awaiting confirms: {e}")))?;
            for (m, confirmed) in messages.iter().zip(confirmed) {
                match confirmed {
                    Ok(Confirmation::Ack(None)) => {}
                    // With `mandatory`, an unroutable message comes back (basic.return) before
                    // its ack, and lapin hands it over with the confirmation.
                    Ok(Confirmation::Ack(Some(returned))) => {
                        let reason = format!(
                            "no queue is bound for exchange `{}` routing key `{}` ({} {})",
                            m.exchange, m.routing_key, returned.reply_code, returned.reply_text
                        );
                        return Err(SinkError::Rejected { sink: SINK, reason });
                    }
                    Ok(Confirmation::Nack(_)) => {
                        return Err(unavailable(format!(
                            "the broker could not take the message for exchange `{}` (nack)",
                            m.exchange
                        )))
                    }
                    // confirm_select runs on every channel before it is used.
                    Ok(Confirmation::NotRequested) => {
                        return Err(unavailable("publisher confirms are off on the channel"))
                    }
                    Err(e) => return Err(shared.lost(format!("no confirmation: {e}"))),
                }
            }
            Ok(())
        })
    }

    fn health(&self) -> Result<(), String> {
        let s = &self.shared;
        if s.stopping.load(Ordering::Acquire) {
            return Err("shut down".into());
        }
        match s.current() {
            Some(link) => match link.broken() {
                None if link.blocked() => Err("the broker blocked publishing (resource alarm)".into()),
                None => Ok(()),
                Some(what) => Err(s.reason().unwrap_or_else(|| what.to_owned())),
            },
            None => Err(s.reason().unwrap_or_else(|| "not connected yet".into())),
        }
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let s = &self.shared;
            s.stopping.store(true, Ordering::Release);
            s.wake.notify_one();
            // Requests have been drained by now, so every confirm was awaited; closing only ends
            // the session politely (the broker logs an abrupt close as an error).
            let Some(link) = lock(&s.link).take() else { return };
            if let Err(e) = link.channel.close(200, "shutting down".into()).await {
                tracing::debug!(sink = SINK, error = %e, "channel close");
            }
            if let Err(e) = link.conn.connection.close(200, "shutting down".into()).await {
                tracing::debug!(sink = SINK, error = %e, "connection close");
            }
        })
    }
}
