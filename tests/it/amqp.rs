//! The AMQP sink against a real RabbitMQ (`scripts/brokers up`; `REGBRIDGE_TEST_AMQP` overrides
//! the URL): the CloudEvents RabbitMQ binding as a consumer sees it, unroutable events, and a
//! dropped connection coming back without a restart.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lapin::message::BasicGetMessage;
use lapin::options::{
    BasicGetOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::uri::AMQPUri;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use serde_json::Value;

use crate::brokers;
use crate::helpers::*;

const HARBOR_PUSH: &str = "harbor/push_artifact.default.json";

/// A rules file sending every event to `exchange` and to the file sink (which the assertions
/// compare against).
fn routes(dir: &std::path::Path, exchange: &str, structured: bool) -> String {
    let mode = if structured { ", mode: structured" } else { "" };
    brokers::routes_file(
        dir,
        &format!(
            "routes:\n  - name: t\n    to:\n      - {{ sink: file }}\n      - {{ sink: amqp, exchange: \"{exchange}\", \
             routing_key: \"{{registry}}.{{noun}}.{{verb}}\"{mode} }}\n"
        ),
    )
}

async fn spawn_with_amqp(url: &str, routes: &str) -> TestApp {
    spawn_app_with(Options::default().with("REGBRIDGE_AMQP_URL", url).with("REGBRIDGE_ROUTES", routes)).await
}

/// The test's own connection: it binds queues and reads what regbridge published.
pub struct Broker {
    _conn: Connection,
    channel: Channel,
}

impl Broker {
    /// Fails the test (never skips it) when RabbitMQ is not there.
    pub async fn connect() -> Self {
        let url = brokers::amqp();
        let conn = match tokio::time::timeout(
            Duration::from_secs(5),
            Connection::connect(&url, ConnectionProperties::default()),
        )
        .await
        {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => panic!("RabbitMQ at {url} is unreachable ({e}); run `scripts/brokers up`"),
            Err(_) => panic!("RabbitMQ at {url} did not answer within 5 s; run `scripts/brokers up`"),
        };
        let channel = conn.create_channel().await.unwrap();
        Self { _conn: conn, channel }
    }

    /// Declares `exchange` as regbridge does (topic, durable) and binds a private queue to all of it.
    pub async fn tap(&self, exchange: &str) -> ShortString {
        let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
        self.channel
            .exchange_declare(exchange.into(), ExchangeKind::Topic, durable, FieldTable::default())
            .await
            .unwrap();
        let private = QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() };
        let queue = self.channel.queue_declare("".into(), private, FieldTable::default()).await.unwrap();
        let name = queue.name().clone();
        self.channel
            .queue_bind(
                name.clone(),
                exchange.into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        name
    }

    /// The next message on `queue`; a confirmed publish is already enqueued, the wait is slack.
    pub async fn next(&self, queue: &ShortString) -> BasicGetMessage {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.channel.basic_get(queue.clone(), BasicGetOptions { no_ack: true }).await.unwrap();
            match got {
                Some(m) => return m,
                None if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
                None => panic!("nothing arrived on {queue}"),
            }
        }
    }

    pub async fn delete(&self, exchange: &str) {
        self.channel.exchange_delete(exchange.into(), ExchangeDeleteOptions::default()).await.unwrap();
    }
}

fn text(v: Option<&ShortString>) -> Option<&str> {
    v.map(ShortString::as_str)
}

/// The message headers as text; every one must be a long string, as the binding says.
fn ce_headers(m: &BasicGetMessage) -> Vec<(String, String)> {
    let headers = m.delivery.properties.headers().as_ref().expect("binary mode has headers");
    let mut out: Vec<_> = headers
        .inner()
        .iter()
        .map(|(k, v)| match v {
            AMQPValue::LongString(s) => (k.to_string(), s.to_string()),
            other => panic!("header {k} is not a string: {other:?}"),
        })
        .collect();
    out.sort();
    out
}

async fn ready_amqp(app: &TestApp) -> Value {
    let (_, body) = app.get("/readyz").await;
    let body: Value = serde_json::from_str(&body).unwrap();
    body["sinks"]["amqp"].clone()
}

#[actix_rt::test]
async fn binary_mode_carries_ce_headers_and_the_data() {
    let broker = Broker::connect().await;
    let exchange = brokers::unique("it-binary");
    let queue = broker.tap(&exchange).await;
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_with_amqp(&brokers::amqp(), &routes(dir.path(), &exchange, false)).await;

    let reply = app.post_harbor(&fixture(HARBOR_PUSH), "application/json").await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let events = app.events();
    assert_eq!(events.len(), 1);
    let ev = &events[0];

    let m = broker.next(&queue).await;
    let p = &m.delivery.properties;
    assert_eq!(m.delivery.exchange.as_str(), exchange);
    assert_eq!(m.delivery.routing_key.as_str(), "harbor.artifact.pushed");
    assert_eq!(m.delivery.data, serde_json::to_vec(&ev["data"]).unwrap());
    assert_eq!(text(p.content_type().as_ref()), Some("application/json"));
    assert_eq!(text(p.message_id().as_ref()), ev["id"].as_str());
    assert_eq!(*p.delivery_mode(), Some(2));

    // Every attribute but `data` and `datacontenttype` (that is the content_type property), each
    // exactly as the JSON format has it.
    let mut want: Vec<(String, String)> = ev
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "data" | "datacontenttype"))
        .map(|(k, v)| (format!("ce-{k}"), v.as_str().expect("attributes are strings").to_owned()))
        .collect();
    // Plus the message's own W3C header for consumers' propagators (here: the event's context).
    want.push(("traceparent".into(), ev["traceparent"].as_str().unwrap().to_owned()));
    want.sort();
    let got = ce_headers(&m);
    assert_eq!(got, want);
    for attr in brokers::CE_ATTRIBUTES {
        let name = format!("ce-{attr}");
        assert!(got.iter().any(|(k, _)| *k == name), "{name} missing in {got:?}");
    }
    assert!(!got.iter().any(|(k, _)| k == "ce-datacontenttype"));
    broker.delete(&exchange).await;
}

#[actix_rt::test]
async fn structured_mode_sends_the_event_json() {
    let broker = Broker::connect().await;
    let exchange = brokers::unique("it-structured");
    let queue = broker.tap(&exchange).await;
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_with_amqp(&brokers::amqp(), &routes(dir.path(), &exchange, true)).await;

    let reply = app.post_root(&fixture("root/image-created.e2e-rendered.json"), "whmsg_amqp", false).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let events = app.events();
    assert_eq!(events.len(), 1);

    let m = broker.next(&queue).await;
    let p = &m.delivery.properties;
    assert_eq!(m.delivery.routing_key.as_str(), "root.artifact.pushed");
    assert_eq!(text(p.content_type().as_ref()), Some("application/cloudevents+json; charset=utf-8"));
    assert_eq!(text(p.message_id().as_ref()), events[0]["id"].as_str());
    assert_eq!(*p.delivery_mode(), Some(2));
    assert!(p.headers().as_ref().is_none_or(|h| h.inner().keys().all(|k| !k.as_str().starts_with("ce-"))));
    let body: Value = serde_json::from_slice(&m.delivery.data).unwrap();
    assert_eq!(body, events[0]);
    broker.delete(&exchange).await;
}

/// regbridge proposes a 32 KiB `frame_max` (lapin buffers 32 frames each way); a bigger event
/// crosses as several body frames and arrives whole.
#[actix_rt::test]
async fn an_event_larger_than_a_frame_arrives_whole() {
    let broker = Broker::connect().await;
    let exchange = brokers::unique("it-large");
    let queue = broker.tap(&exchange).await;
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_with_amqp(&brokers::amqp(), &routes(dir.path(), &exchange, false)).await;

    let mut payload = fixture_json(HARBOR_PUSH);
    payload["padding"] = Value::String("x".repeat(200 * 1024));
    let reply = app.post_harbor(&serde_json::to_vec(&payload).unwrap(), "application/json").await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let m = broker.next(&queue).await;
    assert!(m.delivery.data.len() > 6 * 32 * 1024, "{} bytes", m.delivery.data.len());
    let data: Value = serde_json::from_slice(&m.delivery.data).unwrap();
    assert_eq!(data["original"], payload);
    broker.delete(&exchange).await;
}

#[actix_rt::test]
async fn an_unroutable_event_is_dead_lettered_and_requeued_once_a_queue_is_bound() {
    let broker = Broker::connect().await;
    // No queue is bound: regbridge declares the exchange itself and the broker returns the message.
    let exchange = brokers::unique("it-unroutable");
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(
        Options::default()
            .with("REGBRIDGE_AMQP_URL", &brokers::amqp())
            .with("REGBRIDGE_ROUTES", &routes(dir.path(), &exchange, false))
            .with("REGBRIDGE_OUTBOX_DIR", &dir.path().join("outbox").display().to_string())
            .with("REGBRIDGE_OUTBOX_MAX_ATTEMPTS", "2"),
    )
    .await;

    // Accepted into the outbox (nothing is lost), with the broker's reason in the answer.
    let reply = app.post_harbor(&fixture(HARBOR_PUSH), "application/json").await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    assert_eq!(reply.body["queued"][0]["sink"], "amqp");
    let reason = reply.body["queued"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("no queue is bound") && reason.contains(&exchange), "{reason}");
    let id = reply.body["events"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(ready_amqp(&app).await, "ok", "a refusal is not an outage");

    // Refused for good twice: a dead letter, with its last error.
    let outbox = dir.path().join("outbox");
    let deadline = Instant::now() + Duration::from_secs(30);
    let dead = loop {
        let dead = outbox_cli(&outbox, &["dead-letters"]).await;
        if dead.as_array().is_some_and(|d| !d.is_empty()) {
            break dead;
        }
        assert!(Instant::now() < deadline, "no dead letter within 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(dead[0]["id"], id.as_str());
    assert_eq!(dead[0]["sink"], "amqp");
    assert_eq!(dead[0]["attempts"], 2);
    assert!(dead[0]["last_error"].as_str().unwrap().contains("no queue is bound"), "{dead}");
    let status = outbox_cli(&outbox, &["status"]).await;
    assert_eq!(status["service_running"], true);
    assert_eq!(status["sinks"][0]["dead_letters"], 1, "{status}");

    // The cause is fixed; the CLI asks the running service to send it again.
    let queue = broker.tap(&exchange).await;
    let requeued = outbox_cli(&outbox, &["requeue", "--sink", "amqp"]).await;
    assert_eq!(requeued["by"], "running service", "{requeued}");
    assert_eq!(requeued["results"][0]["entries"], 1, "{requeued}");
    let m = broker.next(&queue).await;
    assert_eq!(m.properties.message_id().as_ref().map(|s| s.as_str()), Some(id.as_str()));
    assert_eq!(outbox_cli(&outbox, &["dead-letters"]).await, serde_json::json!([]));
    broker.delete(&exchange).await;
}

#[actix_rt::test]
async fn an_exchange_of_another_type_is_refused_with_the_brokers_words() {
    let broker = Broker::connect().await;
    let exchange = brokers::unique("it-fanout");
    let fanout = ExchangeDeclareOptions { durable: true, ..Default::default() };
    broker
        .channel
        .exchange_declare(exchange.as_str().into(), ExchangeKind::Fanout, fanout, FieldTable::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Without the outbox the sender gets the broker's refusal itself.
    let app = spawn_app_with(
        Options::default()
            .with("REGBRIDGE_AMQP_URL", &brokers::amqp())
            .with("REGBRIDGE_ROUTES", &routes(dir.path(), &exchange, false))
            .with("REGBRIDGE_OUTBOX", "off"),
    )
    .await;

    let reply = app.post_harbor(&fixture(HARBOR_PUSH), "application/json").await;
    assert_eq!(reply.status, 503, "{:?}", reply.body);
    assert_eq!(reply.body["reason"], "sink_unavailable");
    let detail = reply.body["detail"].as_str().unwrap();
    assert!(detail.contains("PRECONDITION_FAILED") && detail.contains("inequivalent arg 'type'"), "{detail}");
    // The declare failed on a channel of its own: the publishing channel, and readiness, are intact.
    assert_eq!(ready_amqp(&app).await, "ok");
    broker.delete(&exchange).await;
}

/// A TCP relay between regbridge and RabbitMQ that the test can cut, like a broker restart does.
struct Relay {
    port: u16,
    open: Arc<AtomicBool>,
    sockets: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn start(upstream: std::net::SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicBool::new(true));
        let sockets = Arc::new(Mutex::new(Vec::new()));
        let (o, s) = (open.clone(), sockets.clone());
        // Threads, not tasks: the relay must keep working whatever the runtimes under test do.
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if !o.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(upstream) else { continue };
                s.lock().unwrap().extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                pipe(server, client);
            }
        });
        Self { port, open, sockets }
    }

    /// Drops every relayed connection and refuses new ones until [`Relay::resume`].
    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for s in self.sockets.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn resume(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
        let _: io::Result<()> = from.shutdown(Shutdown::Both);
    });
}

/// Polls `/readyz` until the AMQP sink's entry satisfies `ok`, for at most `within`.
async fn wait_ready(app: &TestApp, within: Duration, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let state = ready_amqp(app).await;
        if ok(&state) || Instant::now() > deadline {
            return state;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_rt::test]
async fn a_dropped_connection_is_spooled_through_and_drained_in_order_once_restored() {
    let broker = Broker::connect().await;
    let exchange = brokers::unique("it-reconnect");
    let queue = broker.tap(&exchange).await;
    let mut uri: AMQPUri = brokers::amqp().parse().unwrap();
    let upstream =
        (uri.authority.host.as_str(), uri.authority.port).to_socket_addrs().unwrap().next().unwrap();
    let relay = Relay::start(upstream);
    uri.authority.host = "127.0.0.1".into();
    uri.authority.port = relay.port;
    let dir = tempfile::tempdir().unwrap();
    // A long budget, so that "spooled at once" below is told apart from "timed out" with room to
    // spare on a loaded machine.
    let app = spawn_app_with(
        Options::default()
            .with("REGBRIDGE_AMQP_URL", &uri.to_string())
            .with("REGBRIDGE_ROUTES", &routes(dir.path(), &exchange, false))
            .with("REGBRIDGE_PUBLISH_TIMEOUT", "20s"),
    )
    .await;

    assert_eq!(app.post_harbor(&crate::outbox::push(0, 0), "application/json").await.status, 200);
    broker.next(&queue).await;

    relay.cut();
    let state = wait_ready(&app, Duration::from_secs(5), |s| s != "ok").await;
    assert_ne!(state, "ok", "a cut connection must show in /readyz");
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, 200, "the outbox has room, so the replica stays ready: {body}");

    // While down, webhooks are spooled at once (the link is known down), not after the budget.
    let mut sent = Vec::new();
    for n in 1..=6 {
        let started = Instant::now();
        let reply = app.post_harbor(&crate::outbox::push(n, n % 2), "application/json").await;
        assert_eq!(reply.status, 202, "{:?}", reply.body);
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
        sent.push(reply.body["events"][0]["id"].as_str().unwrap().to_owned());
    }
    let (_, body) = app.get("/readyz").await;
    let ready: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["outbox"]["sinks"]["amqp"]["events"], 6, "{ready}");

    // Back without a restart: the relay delivers the backlog in order, then the direct path resumes.
    relay.resume();
    let mut got = Vec::new();
    while got.len() < sent.len() {
        let m = broker.next(&queue).await;
        got.push(m.properties.message_id().as_ref().map(|s| s.to_string()).unwrap());
    }
    assert_eq!(got, sent, "the relay keeps the order");
    let state = wait_ready(&app, Duration::from_secs(15), |s| s == "ok").await;
    assert_eq!(state, "ok");
    let deadline = Instant::now() + Duration::from_secs(15);
    while app.post_harbor(&crate::outbox::push(50, 0), "application/json").await.status != 200 {
        assert!(Instant::now() < deadline, "the direct path did not resume");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    broker.delete(&exchange).await;
}
