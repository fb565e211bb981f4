//! The outbox against real brokers: a paused, cut or refusing broker costs no acknowledged event;
//! a regbridge killed with events queued loses none of them; a torn last entry is cut off; a full
//! outbox answers 503; a dead letter is requeued once its cause is fixed.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use regbridge::event::{self, kinds, Envelope, Occurrence};
use regbridge::outbox::{Outbox, Settings};
use regbridge::sinks::{ContentMode, Delivery, Target};

use crate::brokers::{self, PrivateKafka};
use crate::helpers::*;
use crate::outage::{kafka_app, KafkaApp};

/// A Harbor push of `lib/app<repo>:v<n>`, with its own digest (so its own id).
pub fn push(n: usize, repo: usize) -> Vec<u8> {
    format!(
        r#"{{"type":"PUSH_ARTIFACT","occur_at":{},"operator":"ci","event_data":{{"resources":[{{"digest":"sha256:{n:064x}","tag":"v{n}","resource_url":"h.example.com/lib/app{repo}:v{n}"}}],"repository":{{"name":"app{repo}","namespace":"lib","repo_full_name":"lib/app{repo}"}}}}}}"#,
        1_700_000_000 + n
    )
    .into_bytes()
}

/// Posts `body` as a Harbor sender that gives up after three attempts a second apart; returns
/// the 2xx answer, or fails the test.
async fn send_as_harbor(app: &TestApp, body: &[u8]) -> Reply {
    let mut last = None;
    for _ in 0..3 {
        let r = app.post_harbor(body, "application/json").await;
        if (200..300).contains(&r.status) {
            return r;
        }
        last = Some(r);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!("no 2xx within three attempts: {last:?}");
}

/// Retries until a webhook is confirmed directly (200): the sink is warm and has no backlog.
async fn warm_up(app: &TestApp, body: &[u8]) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = app.post_harbor(body, "application/json").await;
        if r.status == 200 {
            return r.body["events"][0]["id"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "no 200 within 30 s from a healthy broker: {r:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Record ids in `topic` (partition 0) in log order, read until all of `want` are there.
async fn kafka_ids(addr: &str, topic: &str, want: &HashSet<String>) -> Vec<(String, String)> {
    let (a, t, w) = (addr.to_owned(), topic.to_owned(), want.clone());
    tokio::task::spawn_blocking(move || {
        let ids = |r: &[brokers::Record]| {
            r.iter().filter_map(|r| r.header("ce_id").map(str::to_owned)).collect::<HashSet<_>>()
        };
        let records = brokers::read_topic_until(&a, &t, Duration::from_secs(60), |r| ids(r).is_superset(&w));
        records
            .iter()
            .map(|r| (r.header("ce_id").unwrap_or("").to_owned(), r.key.clone().unwrap_or_default()))
            .collect()
    })
    .await
    .unwrap()
}

/// Asserts every id of `sent` (in sending order, with its key) is in `log`, and that per key the
/// first copies arrived in sending order (later copies are redeliveries).
fn assert_all_in_order(sent: &[(String, String)], log: &[(String, String)]) {
    let mut first: HashMap<&str, usize> = HashMap::new();
    for (i, (id, _)) in log.iter().enumerate() {
        first.entry(id.as_str()).or_insert(i);
    }
    let mut last_by_key: HashMap<&str, usize> = HashMap::new();
    for (id, key) in sent {
        let at = *first.get(id.as_str()).unwrap_or_else(|| panic!("acknowledged {id} is not in the broker"));
        if let Some(prev) = last_by_key.insert(key, at) {
            assert!(prev < at, "{id} overtook an earlier event of {key}");
        }
    }
}

#[actix_rt::test]
async fn a_paused_kafka_costs_no_event_of_a_sender_that_tries_three_times() {
    let KafkaApp { kafka, topic, app, .. } = kafka_app("it-outbox-pause", Options::default()).await;
    let mut sent = vec![(warm_up(&app, &push(0, 0)).await, "lib/app0".to_owned())];

    kafka.process.pause();
    let paused = Instant::now();
    for n in 1..=24 {
        let started = Instant::now();
        let r = send_as_harbor(&app, &push(n, n % 3)).await;
        assert_eq!(r.status, 202, "{:?}", r.body);
        assert_eq!(r.body["status"], "queued");
        assert_eq!(r.body["queued"][0]["sink"], "kafka");
        // The answer, spool included, within the 1 s budget (plus scheduling slack).
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
        sent.push((r.body["events"][0]["id"].as_str().unwrap().to_owned(), format!("lib/app{}", n % 3)));
    }
    // Longer than the three attempts a sender would have made for the first of them.
    tokio::time::sleep(Duration::from_secs(8).saturating_sub(paused.elapsed())).await;
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, 200, "a spooling replica stays ready: {body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(ready["outbox"]["sinks"]["kafka"]["events"].as_u64().unwrap() > 0, "{ready}");
    kafka.process.resume();

    let want: HashSet<String> = sent.iter().map(|(id, _)| id.clone()).collect();
    let log = kafka_ids(&kafka.addr, &topic, &want).await;
    assert_all_in_order(&sent, &log);
    // Drained: the fast path is back.
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.post_harbor(&push(100, 0), "application/json").await.status != 200 {
        assert!(Instant::now() < deadline, "no direct 200 after the backlog drained");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The regbridge binary on a Kafka of its own, routing Harbor pushes to a fresh topic.
struct BinaryOnKafka {
    kafka: PrivateKafka,
    topic: String,
    dir: tempfile::TempDir,
    env: Vec<(&'static str, String)>,
    child: std::process::Child,
    base: String,
    client: awc::Client,
}

impl BinaryOnKafka {
    /// Started with `extra` variables, once a first webhook was confirmed directly (warm).
    async fn start(prefix: &str, extra: &[(&'static str, &str)]) -> Self {
        let kafka = PrivateKafka::start();
        let topic = brokers::unique(prefix);
        brokers::create_topic(&kafka.addr, &topic).await;
        let dir = tempfile::tempdir().unwrap();
        let routes = brokers::kafka_routes(dir.path(), &topic);
        let mut env: Vec<(&'static str, String)> = vec![
            ("REGBRIDGE_HARBOR_AUTH", HARBOR_AUTH.into()),
            ("REGBRIDGE_KAFKA_BROKERS", kafka.addr.clone()),
            ("REGBRIDGE_ROUTES", routes),
            ("REGBRIDGE_PUBLISH_TIMEOUT", "1s".into()),
        ];
        env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        let (child, base) = Self::spawn(&env, dir.path()).await;
        let client = awc::Client::builder().timeout(Duration::from_secs(10)).finish();
        let app = Self { kafka, topic, dir, env, child, base, client };
        let deadline = Instant::now() + Duration::from_secs(30);
        while app.post(0).await.0 != 200 {
            assert!(Instant::now() < deadline, "no 200 from a healthy broker");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        app
    }

    async fn spawn(env: &[(&'static str, String)], dir: &std::path::Path) -> (std::process::Child, String) {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        start_binary(&env, dir).await
    }

    /// Posts push `n` (of `lib/app<n % 2>`); the status and the event's id.
    async fn post(&self, n: usize) -> (u16, String) {
        let mut res = self
            .client
            .post(format!("{}/webhooks/harbor", self.base))
            .insert_header(("content-type", "application/json"))
            .insert_header(("authorization", HARBOR_AUTH))
            .send_body(push(n, n % 2))
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&res.body().await.unwrap()).unwrap_or_default();
        (res.status().as_u16(), body["events"][0]["id"].as_str().unwrap_or_default().to_owned())
    }

    /// With Kafka paused, posts `1..=n`, each answered 202; (id, key) in sending order.
    async fn queue(&self, n: usize) -> Vec<(String, String)> {
        self.kafka.process.pause();
        let mut sent = Vec::new();
        for n in 1..=n {
            let (status, id) = self.post(n).await;
            assert_eq!(status, 202);
            sent.push((id, format!("lib/app{}", n % 2)));
        }
        sent
    }

    /// Asserts every event of `sent` is in the topic, in order per key.
    async fn assert_delivered(&self, sent: &[(String, String)]) {
        let want: HashSet<String> = sent.iter().map(|(id, _)| id.clone()).collect();
        let log = kafka_ids(&self.kafka.addr, &self.topic, &want).await;
        assert_all_in_order(sent, &log);
    }
}

#[actix_rt::test]
async fn events_queued_when_regbridge_is_killed_are_delivered_after_a_restart() {
    let mut app = BinaryOnKafka::start("it-outbox-kill", &[]).await;
    let sent = app.queue(15).await;
    app.child.kill().unwrap();
    app.child.wait().unwrap();
    app.kafka.process.resume();

    let (mut child, _) = BinaryOnKafka::spawn(&app.env, app.dir.path()).await;
    app.assert_delivered(&sent).await;
    sigterm(&child);
    assert!(wait_exit(&mut child).await.success());
}

#[actix_rt::test]
async fn a_torn_last_entry_is_cut_off_at_start_up_and_the_ones_before_it_are_delivered() {
    let kafka = brokers::kafka();
    let topic = brokers::unique("it-outbox-torn");
    brokers::create_topic(&kafka, &topic).await;
    let dir = tempfile::tempdir().unwrap();
    // What a crashed regbridge leaves: five spooled entries, the last one half written.
    let outbox = Outbox::open(Settings::new(dir.path().join("outbox")), &["kafka"]).unwrap();
    let batch: Vec<Delivery> = (0..5)
        .map(|n| {
            let mut occ = Occurrence::new(kinds::ARTIFACT_PUSHED, format!("torn-{n}"), "PUSH_ARTIFACT");
            occ.repository = Some("lib/torn".into());
            let env = Envelope { endpoint: "harbor", registry: "harbor", ..Envelope::default() };
            let target = Target { name: topic.clone(), key: None, mode: ContentMode::Binary };
            Delivery { event: Arc::new(event::build(&occ, &env, None)), target }
        })
        .collect();
    outbox.spool(outbox.enter("kafka", "test").unwrap(), &batch, Duration::from_secs(10)).await.unwrap();
    outbox.close().unwrap().join().unwrap();
    drop(outbox);
    let seg = std::fs::read_dir(dir.path().join("outbox/kafka"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .unwrap();
    let len = std::fs::metadata(&seg).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&seg).unwrap().set_len(len - 10).unwrap();

    let (mut child, base) = start_binary(&[("REGBRIDGE_KAFKA_BROKERS", &kafka)], dir.path()).await;
    let want: HashSet<String> = (0..4).map(|n| format!("torn-{n}")).collect();
    let log = kafka_ids(&kafka, &topic, &want).await;
    let sent: Vec<(String, String)> = (0..4).map(|n| (format!("torn-{n}"), "lib/torn".to_owned())).collect();
    assert_all_in_order(&sent, &log);
    assert!(!log.iter().any(|(id, _)| id == "torn-4"), "the torn entry was never acknowledged");
    let (_, ready) = awc_get(&base, "/readyz").await;
    assert_eq!(ready["outbox"]["sinks"]["kafka"]["events"], 0, "{ready}");
    sigterm(&child);
    assert!(wait_exit(&mut child).await.success());
    let log = std::fs::read_to_string(dir.path().join("regbridge.log")).unwrap();
    assert!(log.contains("cut off a torn entry"), "{log}");
}

async fn awc_get(base: &str, path: &str) -> (u16, serde_json::Value) {
    let mut res = awc::Client::default().get(format!("{base}{path}")).send().await.unwrap();
    let body = res.body().await.unwrap();
    (res.status().as_u16(), serde_json::from_slice(&body).unwrap_or_default())
}

#[actix_rt::test]
async fn only_the_sink_that_did_not_confirm_is_queued_the_other_keeps_its_copy() {
    // Two sinks routed: the file sink confirms, RabbitMQ is down.
    let down = format!("amqp://guest:guest@127.0.0.1:{}/%2f", brokers::free_port());
    let dir = tempfile::tempdir().unwrap();
    let routes = brokers::routes_file(
        dir.path(),
        "routes:\n  - name: t\n    to: [{ sink: amqp, exchange: x }, { sink: file }]\n",
    );
    let app = spawn_app_with(
        Options::default()
            .with("REGBRIDGE_AMQP_URL", &down)
            .with("REGBRIDGE_ROUTES", &routes)
            .with("REGBRIDGE_PUBLISH_TIMEOUT", "1s"),
    )
    .await;
    let started = Instant::now();
    let r = app.post_harbor(&push(1, 0), "application/json").await;
    assert!(started.elapsed() < Duration::from_millis(1500), "within the budget: {:?}", started.elapsed());
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(r.body["status"], "queued");
    let queued = r.body["queued"].as_array().unwrap();
    assert_eq!(queued.len(), 1, "{:?}", r.body);
    assert_eq!(queued[0]["sink"], "amqp");
    let id = r.body["events"][0]["id"].as_str().unwrap();
    let events = app.events();
    assert_eq!(events.len(), 1, "the file sink has it once, directly");
    assert_eq!(events[0]["id"], id);
    let (_, ready) = app.get("/readyz").await;
    let ready: serde_json::Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(ready["outbox"]["sinks"]["amqp"]["events"], 1, "{ready}");
    assert!(ready["outbox"]["sinks"]["file"]["events"].as_u64().unwrap_or(0) == 0, "{ready}");
}

#[actix_rt::test]
async fn on_sigterm_the_relay_drains_the_backlog_and_leaves_nothing_on_disk() {
    let mut app = BinaryOnKafka::start("it-outbox-term", &[("REGBRIDGE_SHUTDOWN_TIMEOUT", "25s")]).await;
    let sent = app.queue(10).await;
    // What operators see of it meanwhile: counted as spooled, waiting.
    let mut res = app.client.get(format!("{}/metrics", app.base)).send().await.unwrap();
    let metrics = String::from_utf8(res.body().limit(4 << 20).await.unwrap().to_vec()).unwrap();
    let value = |series: &str| {
        metrics.lines().find_map(|l| l.strip_prefix(series)?.trim().parse::<f64>().ok()).unwrap_or(0.0)
    };
    assert_eq!(value("regbridge_outbox_spooled_total{sink=\"kafka\"}"), 10.0, "{metrics}");
    assert_eq!(value("regbridge_outbox_events{sink=\"kafka\"}"), 10.0, "{metrics}");

    // The broker is back and the pod is told to stop at once: the relay gets the rest of the
    // shutdown deadline to deliver the backlog.
    app.kafka.process.resume();
    sigterm(&app.child);
    assert!(wait_exit(&mut app.child).await.success());
    app.assert_delivered(&sent).await;
    let status = outbox_cli(&app.dir.path().join("outbox"), &["status"]).await;
    assert_eq!(status["service_running"], false, "{status}");
    assert_eq!(status["sinks"][0]["sink"], "kafka", "{status}");
    assert_eq!(status["sinks"][0]["events"], 0, "nothing left for the next start: {status}");
    let log = std::fs::read_to_string(app.dir.path().join("regbridge.log")).unwrap();
    assert!(log.contains("sink entered the backlog"), "{log}");
}

#[actix_rt::test]
async fn a_full_outbox_answers_503_and_not_ready() {
    // A broker that refuses connections, and room for about two events.
    let down = format!("amqp://guest:guest@127.0.0.1:{}/%2f", brokers::free_port());
    let dir = tempfile::tempdir().unwrap();
    let routes =
        brokers::routes_file(dir.path(), "routes:\n  - name: t\n    to: [{ sink: amqp, exchange: x }]\n");
    let app = spawn_app_with(
        Options::default()
            .with("REGBRIDGE_AMQP_URL", &down)
            .with("REGBRIDGE_ROUTES", &routes)
            .with("REGBRIDGE_OUTBOX_MAX_BYTES", "4KiB"),
    )
    .await;
    let mut statuses = Vec::new();
    let mut last = None;
    for n in 0..10 {
        let r = app.post_harbor(&push(n, 0), "application/json").await;
        statuses.push(r.status);
        if r.status == 503 {
            last = Some(r);
            break;
        }
        assert_eq!(r.status, 202, "{:?}", r.body);
    }
    assert!(statuses.len() > 1, "a first event fits: {statuses:?}");
    let r = last.expect("the outbox filled up");
    assert_eq!(r.body["reason"], "outbox_full", "{:?}", r.body);
    assert_eq!(r.body["type"], "urn:regbridge:problem:sink-unavailable");
    assert_eq!(r.header("retry-after"), Some("30"));
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, 503, "full and the sink down: not ready. {body}");
    assert!(body.contains("full"), "{body}");
}

#[actix_rt::test]
async fn a_paused_nats_server_costs_no_event_and_the_stream_gets_each_once() {
    let nats = brokers::PrivateNats::start();
    let (id, stream) = brokers::nats_names();
    let dir = tempfile::tempdir().unwrap();
    let routes = brokers::routes_file(
        dir.path(),
        &format!("routes:\n  - name: t\n    to: [{{ sink: nats, subject: \"{id}.{{noun}}.{{verb}}\" }}]\n"),
    );
    let app = spawn_app_with(
        Options::default()
            .with("REGBRIDGE_NATS_URL", &nats.url)
            .with("REGBRIDGE_NATS_STREAM", &stream)
            .with("REGBRIDGE_NATS_SUBJECTS", &format!("{id}.>"))
            .with("REGBRIDGE_ROUTES", &routes)
            .with("REGBRIDGE_PUBLISH_TIMEOUT", "1s"),
    )
    .await;
    let mut sent = vec![warm_up(&app, &push(0, 0)).await];

    nats.process.pause();
    for n in 1..=10 {
        let r = send_as_harbor(&app, &push(n, n % 2)).await;
        assert_eq!(r.status, 202, "{:?}", r.body);
        sent.push(r.body["events"][0]["id"].as_str().unwrap().to_owned());
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    nats.process.resume();

    // JetStream drops redelivered copies by `Nats-Msg-Id`: each event is stored exactly once,
    // in the order it was accepted (one repository per parity, and across them too).
    let js = async_nats::jetstream::new(async_nats::connect(&nats.url).await.unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    let count = loop {
        let n = match js.get_stream(&stream).await {
            Ok(mut s) => s.info().await.map_or(0, |i| i.state.messages),
            Err(_) => 0,
        };
        if n >= sent.len() as u64 {
            break n;
        }
        assert!(Instant::now() < deadline, "{n} of {} events in the stream after 60 s", sent.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(count, sent.len() as u64);
    let s = js.get_stream(&stream).await.unwrap();
    let mut stored = Vec::new();
    for seq in 1..=count {
        let m = s.get_raw_message(seq).await.unwrap();
        stored.push(m.headers.get("ce-id").unwrap().to_string());
    }
    assert_eq!(stored, sent);
}
