//! NATS sink against the real NATS server with JetStream: binding, PubAck, dedup by id.

use async_nats::jetstream;
use serde_json::Value;

use crate::brokers;
use crate::helpers::*;

struct Setup {
    app: TestApp,
    js: jetstream::Context,
    stream: String,
    _dir: tempfile::TempDir,
}

/// A stream and subjects of the test's own, routed to NATS in `mode` and to the file sink, and
/// the app on them with `options` besides.
async fn setup(mode: &str, options: Options) -> Setup {
    let url = brokers::nats();
    let (id, stream) = brokers::nats_names();
    let dir = tempfile::tempdir().unwrap();
    let routes = brokers::routes_file(
        dir.path(),
        &format!("routes:\n  - name: t\n    to: [{{ sink: nats, subject: \"{id}.{{registry}}.{{noun}}.{{verb}}\", mode: {mode} }}, {{ sink: file }}]\n"),
    );
    let app = spawn_app_with(
        options
            .with("REGBRIDGE_NATS_URL", &url)
            .with("REGBRIDGE_NATS_STREAM", &stream)
            .with("REGBRIDGE_NATS_SUBJECTS", &format!("{id}.>"))
            .with("REGBRIDGE_ROUTES", &routes),
    )
    .await;
    let client = async_nats::connect(&url).await.unwrap();
    Setup { app, js: jetstream::new(client), stream, _dir: dir }
}

impl Setup {
    async fn message(&self, seq: u64) -> jetstream::message::StreamMessage {
        let stream = self.js.get_stream(&self.stream).await.expect("regbridge created the stream");
        stream.get_raw_message(seq).await.expect("message is in the stream")
    }

    async fn count(&self) -> u64 {
        let mut stream = self.js.get_stream(&self.stream).await.unwrap();
        stream.info().await.unwrap().state.messages
    }

    async fn cleanup(&self) {
        let _ = self.js.delete_stream(&self.stream).await;
    }
}

#[actix_rt::test]
async fn jetstream_message_carries_the_binding_and_duplicates_are_dropped() {
    let s = setup("binary", Options::default()).await;
    let body = fixture("harbor/synthetic/scanning_completed.cloudevents.with-vulns.json");
    let first = s.app.post_harbor(&body, "application/cloudevents+json").await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    // Harbor retries the same delivery: same id, and JetStream drops the copy.
    assert_eq!(s.app.post_harbor(&body, "application/cloudevents+json").await.status, 200);
    assert_eq!(s.count().await, 1);

    let ev = &s.app.events()[0];
    let msg = s.message(1).await;
    assert!(msg.subject.ends_with(".harbor.scan.completed"), "{}", msg.subject);
    let payload: Value = serde_json::from_slice(&msg.payload).unwrap();
    assert_eq!(payload, ev["data"]);
    let h = &msg.headers;
    let get = |k: &str| h.get(k).map(|v| v.as_str().to_owned());
    assert_eq!(get("Nats-Msg-Id").as_deref(), ev["id"].as_str());
    assert_eq!(get("content-type").as_deref(), Some("application/json"));
    for attr in brokers::CE_ATTRIBUTES {
        assert_eq!(get(&format!("ce-{attr}")).as_deref(), ev[attr].as_str(), "ce-{attr}");
    }
    let mut names: Vec<String> = h.iter().map(|(k, _)| k.to_string()).collect();
    names.sort_unstable();
    assert_eq!(names.len(), 13, "{names:?}");
    assert_eq!(get("traceparent").as_deref(), ev["traceparent"].as_str());
    assert!(get("ce-datacontenttype").is_none());
    s.cleanup().await;
}

#[actix_rt::test]
async fn structured_mode_body_is_the_whole_event() {
    let s = setup("structured", Options::default()).await;
    let reply = s.app.post_msr(&fixture("msr/synthetic/tag_delete.json")).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let msg = s.message(1).await;
    let whole: Value = serde_json::from_slice(&msg.payload).unwrap();
    assert_eq!(&whole, &s.app.events()[0]);
    assert_eq!(
        msg.headers.get("content-type").unwrap().as_str(),
        "application/cloudevents+json; charset=utf-8"
    );
    assert_eq!(msg.headers.get("Nats-Msg-Id").unwrap().as_str(), whole["id"].as_str().unwrap());
    s.cleanup().await;
}

/// An event larger than the server's `max_payload` (1 MiB by default) is refused with 413
/// before any sink has it; a 503 would have its sender retry it forever.
#[actix_rt::test]
async fn an_event_over_the_servers_max_payload_is_refused_413_and_published_nowhere() {
    let s = setup("binary", Options::default().with("REGBRIDGE_BODY_LIMIT", "2MiB")).await;
    let padding = "x".repeat(1_100_000);
    let body = format!(
        r#"{{"type":"PUSH_ARTIFACT","occur_at":1700000000,"operator":"ci","padding":"{padding}","event_data":{{"resources":[{{"digest":"sha256:{:064x}","tag":"v1"}}],"repository":{{"name":"app","namespace":"lib","repo_full_name":"lib/app"}}}}}}"#,
        1
    );
    let reply = s.app.post_harbor(body.as_bytes(), "application/json").await;
    assert_eq!(reply.status, 413, "{:?}", reply.body);
    assert_eq!(reply.body["reason"], "event_too_large");
    let detail = reply.body["detail"].as_str().unwrap();
    assert!(detail.contains("nats message") && detail.contains("limit of 1048576 bytes"), "{detail}");
    assert!(s.app.events().is_empty(), "the file sink got a refused event");
    assert_eq!(s.count().await, 0);
    s.cleanup().await;
}
