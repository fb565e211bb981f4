//! One event routed to all three brokers (and the file) is found in all of them.

use std::time::Duration;

use async_nats::jetstream;
use serde_json::Value;

use crate::amqp::Broker;
use crate::brokers;
use crate::helpers::*;

#[actix_rt::test]
async fn one_event_reaches_kafka_nats_rabbitmq_and_the_file() {
    let (kafka, nats) = (brokers::kafka(), brokers::nats());
    let topic = brokers::unique("it-fanout");
    brokers::create_topic(&kafka, &topic).await;
    let subject_prefix = brokers::unique("fanout").replace('-', "_");
    let stream = subject_prefix.to_uppercase();
    let exchange = brokers::unique("it-fanout");
    let rabbit = Broker::connect().await;
    let queue = rabbit.tap(&exchange).await;

    let dir = tempfile::tempdir().unwrap();
    let routes = brokers::routes_file(
        dir.path(),
        &format!(
            "routes:\n  - name: everywhere\n    to:\n      - {{ sink: kafka, topic: {topic} }}\n      - {{ sink: nats, subject: \"{subject_prefix}.{{registry}}.{{noun}}.{{verb}}\" }}\n      - {{ sink: amqp, exchange: {exchange} }}\n      - {{ sink: file }}\n"
        ),
    );
    let app = spawn_app_with(
        Options::default()
            .with("REGBRIDGE_KAFKA_BROKERS", &kafka)
            .with("REGBRIDGE_NATS_URL", &nats)
            .with("REGBRIDGE_NATS_STREAM", &stream)
            .with("REGBRIDGE_NATS_SUBJECTS", &format!("{subject_prefix}.>"))
            .with("REGBRIDGE_AMQP_URL", &brokers::amqp())
            .with("REGBRIDGE_ROUTES", &routes),
    )
    .await;

    let reply =
        app.post_root(&fixture("root/image-created.unit-test-rendered.arm64.json"), "whmsg_fan", false).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["events"][0]["targets"], 4);
    let id = "evt1:arm64";

    let events = app.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["id"], id);

    let (k, t) = (kafka.clone(), topic.clone());
    let records =
        tokio::task::spawn_blocking(move || brokers::read_topic(&k, &t, 1, Duration::from_secs(20)))
            .await
            .unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].header("ce_id"), Some(id));

    let js = jetstream::new(async_nats::connect(&nats).await.unwrap());
    let msg = js.get_stream(&stream).await.unwrap().get_raw_message(1).await.unwrap();
    assert_eq!(msg.subject.as_str(), format!("{subject_prefix}.root.artifact.pushed"));
    assert_eq!(msg.headers.get("ce-id").unwrap().as_str(), id);
    let _ = js.delete_stream(&stream).await;

    let m = rabbit.next(&queue).await;
    assert_eq!(m.delivery.routing_key.as_str(), "root.artifact.pushed");
    assert_eq!(m.delivery.properties.message_id().as_ref().map(|s| s.as_str()), Some(id));
    let body: Value = serde_json::from_slice(&m.delivery.data).unwrap();
    assert_eq!(body, events[0]["data"]);
    rabbit.delete(&exchange).await;

    let (status, ready) = app.get("/readyz").await;
    assert_eq!(status, 200, "{ready}");
    for sink in ["kafka", "nats", "amqp", "file"] {
        assert!(ready.contains(&format!("\"{sink}\":\"ok\"")), "{ready}");
    }
}
