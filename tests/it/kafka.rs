//! Kafka sink against a real Kafka-compatible broker: binding, key, confirms, outages.

use std::time::Duration;

use serde_json::Value;

use crate::brokers::{self, Record};
use crate::helpers::*;

async fn read(brokers: &str, topic: &str, want: usize) -> Vec<Record> {
    let (b, t) = (brokers.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || brokers::read_topic(&b, &t, want, Duration::from_secs(20)))
        .await
        .unwrap()
}

/// A topic of its own and a regbridge routing every event to it (with `options` such as
/// `, mode: structured`) and to the file sink; `env` adds variables.
struct Setup {
    app: TestApp,
    kafka: String,
    topic: String,
    _dir: tempfile::TempDir,
}

async fn setup(prefix: &str, options: &str, env: &[(&str, &str)]) -> Setup {
    let kafka = brokers::kafka();
    let topic = brokers::unique(prefix);
    brokers::create_topic(&kafka, &topic).await;
    let dir = tempfile::tempdir().unwrap();
    let routes = brokers::routes_file(
        dir.path(),
        &format!(
            "routes:\n  - name: t\n    to: [{{ sink: kafka, topic: {topic}{options} }}, {{ sink: file }}]\n"
        ),
    );
    let mut opts =
        Options::default().with("REGBRIDGE_KAFKA_BROKERS", &kafka).with("REGBRIDGE_ROUTES", &routes);
    for (k, v) in env {
        opts = opts.with(k, v);
    }
    Setup { app: spawn_app_with(opts).await, kafka, topic, _dir: dir }
}

/// The exact binary-mode header set the CloudEvents Kafka binding prescribes for our events.
#[track_caller]
pub fn assert_binary_binding(rec: &Record, ev: &Value) {
    assert_eq!(rec.key.as_deref(), ev["partitionkey"].as_str(), "record key = partitionkey");
    assert_eq!(rec.header("content-type"), Some("application/json"));
    let payload: Value = serde_json::from_slice(&rec.payload).unwrap();
    assert_eq!(payload, ev["data"], "value = data");
    let mut names: Vec<&str> = rec.headers.iter().map(|(k, _)| k.as_str()).collect();
    names.sort_unstable();
    let mut want: Vec<String> = brokers::CE_ATTRIBUTES.iter().map(|a| format!("ce_{a}")).collect();
    want.push("content-type".into());
    // The message's own W3C header for consumers' propagators (here: the event's context).
    want.push("traceparent".into());
    want.sort_unstable();
    assert_eq!(names, want);
    assert_eq!(rec.header("traceparent"), ev["traceparent"].as_str());
    for attr in brokers::CE_ATTRIBUTES {
        assert_eq!(rec.header(&format!("ce_{attr}")), ev[attr].as_str(), "ce_{attr}");
    }
}

#[actix_rt::test]
async fn binary_mode_record_carries_the_binding_exactly() {
    let Setup { app, kafka, topic, _dir } = setup("it-kafka", "", &[]).await;

    let reply = app.post_root(&fixture("root/image-created.e2e-rendered.json"), "whmsg_k1", true).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let records = read(&kafka, &topic, 1).await;
    assert_eq!(records.len(), 1);
    // The file sink is configured too in tests (REGBRIDGE_FILE_SINK), and holds the same event.
    let ev = &app.events()[0];
    assert_eq!(ev["id"], "e2e_1234567890:amd64");
    assert_binary_binding(&records[0], ev);
    assert_eq!(records[0].key.as_deref(), Some("python"));

    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"kafka\":\"ok\""), "{body}");
}

#[actix_rt::test]
async fn structured_mode_and_fan_out_of_several_resources() {
    let Setup { app, kafka, topic, _dir } = setup("it-kafka-structured", ", mode: structured", &[]).await;
    let body = br#"{"type":"PUSH_ARTIFACT","occur_at":1680501893,"operator":"ci","event_data":{
        "resources":[{"digest":"sha256:a","tag":"v1","resource_url":"h.example.com/lib/app:v1"},
                     {"digest":"sha256:b","tag":"v2","resource_url":"h.example.com/lib/app:v2"}],
        "repository":{"name":"app","namespace":"lib","repo_full_name":"lib/app"}}}"#;
    assert_eq!(app.post_harbor(body, "application/json").await.status, 200);
    let records = read(&kafka, &topic, 2).await;
    assert_eq!(records.len(), 2);
    let events = app.events();
    for (rec, ev) in records.iter().zip(&events) {
        assert_eq!(rec.header("content-type"), Some("application/cloudevents+json; charset=utf-8"));
        assert!(rec.headers.iter().all(|(k, _)| !k.starts_with("ce_")), "structured mode has no ce_ headers");
        assert_eq!(rec.key.as_deref(), Some("lib/app"));
        let whole: Value = serde_json::from_slice(&rec.payload).unwrap();
        assert_eq!(&whole, ev);
    }
}

/// A Harbor push whose body carries `padding` bytes of filler; `n` makes its digest (and id) unique.
fn padded_push(n: usize, padding: usize) -> Vec<u8> {
    format!(
        r#"{{"type":"PUSH_ARTIFACT","occur_at":1700000000,"operator":"ci","padding":"{}","event_data":{{"resources":[{{"digest":"sha256:{n:064x}","tag":"v{n}","resource_url":"h.example.com/lib/app:v{n}"}}],"repository":{{"name":"app","namespace":"lib","repo_full_name":"lib/app"}}}}}}"#,
        "x".repeat(padding)
    )
    .into_bytes()
}

/// An event larger than the producer's `message.max.bytes` could never be delivered, and a 503
/// would have its sender retry it forever: it is refused with 413 before any sink has it (the
/// file sink is routed too). Smaller events still flow.
#[actix_rt::test]
async fn an_event_over_the_kafka_message_limit_is_refused_413_and_published_nowhere() {
    let Setup { app, kafka, topic, _dir } =
        setup("it-kafka-size", "", &[("REGBRIDGE_KAFKA_MESSAGE_MAX_BYTES", "4000")]).await;

    let reply = app.post_harbor(&padded_push(1, 5000), "application/json").await;
    assert_eq!(reply.status, 413, "{:?}", reply.body);
    assert_eq!(reply.header("content-type"), Some("application/problem+json"));
    assert_eq!(reply.body["type"], "urn:regbridge:problem:payload-too-large");
    assert_eq!(reply.body["reason"], "event_too_large");
    let detail = reply.body["detail"].as_str().unwrap();
    assert!(detail.contains("kafka message") && detail.contains("limit of 4000 bytes"), "{detail}");
    assert!(app.events().is_empty(), "the file sink got a refused event");

    let reply = app.post_harbor(&padded_push(2, 500), "application/json").await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(app.events().len(), 1);
    let small = app.events()[0]["id"].as_str().unwrap().to_owned();
    // Read up to the accepted event: a refused one published before it would come first.
    let (b, t) = (kafka.clone(), topic.clone());
    let records = tokio::task::spawn_blocking(move || {
        brokers::read_topic_until(&b, &t, Duration::from_secs(20), |r| {
            r.iter().any(|r| r.header("ce_id") == Some(small.as_str()))
        })
    })
    .await
    .unwrap();
    assert_eq!(records.len(), 1, "only the event within the limit is in Kafka");
}

/// A regbridge routing to `topic` of a fresh broker (which has no topics and does not create
/// them by itself).
async fn on_fresh_broker(
    kafka: &brokers::PrivateKafka,
    topic: &str,
    env: &[(&str, &str)],
) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let routes = brokers::routes_file(
        dir.path(),
        &format!("routes:\n  - name: t\n    to: [{{ sink: kafka, topic: {topic} }}]\n"),
    );
    let mut opts =
        Options::default().with("REGBRIDGE_KAFKA_BROKERS", &kafka.addr).with("REGBRIDGE_ROUTES", &routes);
    for (k, v) in env {
        opts = opts.with(k, v);
    }
    (spawn_app_with(opts).await, dir)
}

/// `/readyz` once its Kafka entry names `topic` as missing (the connection may still be coming up).
async fn readyz_naming(app: &TestApp, topic: &str) -> (u16, Value) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = app.get("/readyz").await;
        let ready: Value = serde_json::from_str(&body).unwrap();
        let kafka = ready["sinks"]["kafka"].as_str().unwrap_or("");
        if kafka.contains(&format!("topic `{topic}` does not exist")) {
            return (status, ready);
        }
        assert!(std::time::Instant::now() < deadline, "/readyz never named {topic}: {ready}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_rt::test]
async fn a_missing_topic_is_created_and_the_first_webhook_delivered() {
    let kafka = brokers::PrivateKafka::start();
    let topic = brokers::unique("it-create");
    let (app, _dir) = on_fresh_broker(&kafka, &topic, &[]).await;
    let r = app.post_harbor(&fixture("harbor/push_artifact.default.json"), "application/json").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let recs = read(&kafka.addr, &topic, 1).await;
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].header("ce_id"), r.body["events"][0]["id"].as_str());
}

#[actix_rt::test]
async fn with_creation_off_a_missing_topic_is_named_in_the_answer_and_readyz() {
    let kafka = brokers::PrivateKafka::start();
    let topic = brokers::unique("it-missing");
    let body = fixture("harbor/push_artifact.default.json");

    // Outbox off: the sender gets the cause, by name.
    let (app, _dir) = on_fresh_broker(
        &kafka,
        &topic,
        &[("REGBRIDGE_KAFKA_CREATE_TOPICS", "false"), ("REGBRIDGE_OUTBOX", "off")],
    )
    .await;
    let r = app.post_harbor(&body, "application/json").await;
    assert_eq!(r.status, 503, "{:?}", r.body);
    let detail = r.body["detail"].as_str().unwrap();
    assert!(detail.contains(&format!("topic `{topic}` does not exist")), "{detail}");
    let (status, ready) = readyz_naming(&app, &topic).await;
    assert_eq!(status, 503, "{ready}");
    let (_, metrics) = app.get("/metrics").await;
    // By name (the unlabelled total is shared with the other tests' sinks in this process).
    let named = format!("regbridge_kafka_topic_missing{{topic=\"{topic}\"}} 1");
    assert!(metrics.lines().any(|l| l == named), "{named} in {metrics}");

    // Outbox on: kept, with the cause named in the answer; the replica stays ready.
    let (app, _dir2) = on_fresh_broker(&kafka, &topic, &[("REGBRIDGE_KAFKA_CREATE_TOPICS", "false")]).await;
    let r = app.post_harbor(&body, "application/json").await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert!(r.body["queued"][0]["reason"].as_str().unwrap().contains(&topic), "{:?}", r.body);
    let (status, ready) = readyz_naming(&app, &topic).await;
    assert_eq!(status, 200, "{ready}");
}
