//! Broker outages and shutdown: nothing is acknowledged that is not in a broker.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::brokers::{self, PrivateKafka};
use crate::helpers::*;

/// A Harbor delivery with its own digest id (the body differs by `n`).
fn delivery(n: usize) -> Vec<u8> {
    format!(
        r#"{{"type":"PUSH_ARTIFACT","occur_at":{},"operator":"ci","event_data":{{"resources":[{{"digest":"sha256:{n:064x}","tag":"v{n}","resource_url":"h.example.com/lib/app:v{n}"}}],"repository":{{"name":"app","namespace":"lib","repo_full_name":"lib/app"}}}}}}"#,
        1_700_000_000 + n
    )
    .into_bytes()
}

/// The ids found in `topic`, read until every one of `expected` is there (or 20 s passed). The
/// topic may hold more: a record whose webhook got 503 can still be delivered later.
async fn ids_in(brokers: &str, topic: &str, expected: &HashSet<String>) -> HashSet<String> {
    let (b, t, want) = (brokers.to_owned(), topic.to_owned(), expected.clone());
    let ids = |records: &[brokers::Record]| -> HashSet<String> {
        records.iter().filter_map(|r| r.header("ce_id").map(str::to_owned)).collect()
    };
    let records = tokio::task::spawn_blocking(move || {
        brokers::read_topic_until(&b, &t, Duration::from_secs(20), |r| ids(r).is_superset(&want))
    })
    .await
    .unwrap();
    ids(&records)
}

/// A private Kafka with a topic of its own, and a regbridge routing every event to it with a 1 s
/// publish budget and `options`.
pub struct KafkaApp {
    pub kafka: PrivateKafka,
    pub topic: String,
    pub app: TestApp,
    _dir: tempfile::TempDir,
}

pub async fn kafka_app(prefix: &str, options: Options) -> KafkaApp {
    let kafka = PrivateKafka::start();
    let topic = brokers::unique(prefix);
    brokers::create_topic(&kafka.addr, &topic).await;
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_with(
        options
            .with("REGBRIDGE_KAFKA_BROKERS", &kafka.addr)
            .with("REGBRIDGE_ROUTES", &brokers::kafka_routes(dir.path(), &topic))
            .with("REGBRIDGE_PUBLISH_TIMEOUT", "1s"),
    )
    .await;
    KafkaApp { kafka, topic, app, _dir: dir }
}

/// With the outbox off, a sink that does not confirm is the sender's to retry: 503 within the
/// budget (the outbox's own tests are in `outbox.rs`).
#[actix_rt::test]
async fn without_the_outbox_a_paused_broker_gets_503_within_the_budget_and_recovers() {
    let KafkaApp { kafka, topic, app, .. } =
        kafka_app("it-outage", Options::default().with("REGBRIDGE_OUTBOX", "off")).await;
    let mut acknowledged = HashSet::new();
    let mut ack = |r: &Reply| {
        if r.status == 200 {
            acknowledged.insert(r.body["events"][0]["id"].as_str().unwrap().to_owned());
        }
    };

    // A fresh producer spends its first second(s) on metadata and the idempotent producer id; on a
    // loaded machine that can exceed the 1 s budget, so warm it up as a sender's retry would.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = app.post_harbor(&delivery(0), "application/json").await;
        ack(&r);
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 503, "{:?}", r.body);
        assert!(Instant::now() < deadline, "no 200 within 30 s from a healthy broker: {:?}", r.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    kafka.process.pause();
    for n in 1..=3 {
        let started = Instant::now();
        let r = app.post_harbor(&delivery(n), "application/json").await;
        assert_eq!(r.status, 503, "{:?}", r.body);
        assert_eq!(r.body["reason"], "sink_timeout");
        assert!(r.header("retry-after").is_some());
        // Within the 1 s budget plus scheduling slack; never an unbounded wait.
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    }

    kafka.process.resume();
    // Same process, same producer: it reconnects by itself. Retry as a sender would.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut recovered = false;
    for n in 4.. {
        let r = app.post_harbor(&delivery(n), "application/json").await;
        ack(&r);
        if r.status == 200 {
            recovered = true;
            break;
        }
        assert!(Instant::now() < deadline, "no 200 within 30 s after the broker came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(recovered);

    let found = ids_in(&kafka.addr, &topic, &acknowledged).await;
    for id in &acknowledged {
        assert!(found.contains(id), "acknowledged {id} is not in Kafka");
    }
}

#[actix_rt::test]
async fn sigterm_lets_in_flight_requests_finish_and_every_2xx_is_in_the_broker() {
    let kafka = PrivateKafka::start();
    let topic = brokers::unique("it-sigterm");
    brokers::create_topic(&kafka.addr, &topic).await;
    let dir = tempfile::tempdir().unwrap();
    let routes = brokers::kafka_routes(dir.path(), &topic);
    let (mut child, base) = start_binary(
        &[
            ("REGBRIDGE_HARBOR_AUTH", HARBOR_AUTH),
            ("REGBRIDGE_KAFKA_BROKERS", &kafka.addr),
            ("REGBRIDGE_ROUTES", &routes),
            ("REGBRIDGE_PUBLISH_TIMEOUT", "10s"),
            ("REGBRIDGE_SHUTDOWN_TIMEOUT", "15s"),
        ],
        dir.path(),
    )
    .await;
    let client = awc::Client::builder().timeout(Duration::from_secs(30)).finish();

    // Freeze the broker so the requests are certainly in flight when the signal arrives.
    kafka.process.pause();
    let requests: Vec<_> = (0..20)
        .map(|n| {
            let req = client
                .post(format!("{base}/webhooks/harbor"))
                .insert_header(("content-type", "application/json"))
                .insert_header(("authorization", HARBOR_AUTH))
                .send_body(delivery(1000 + n));
            actix_rt::spawn(async move {
                let mut res = req.await.ok()?;
                let body: serde_json::Value = serde_json::from_slice(&res.body().await.ok()?).ok()?;
                Some((res.status().as_u16(), body))
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    sigterm(&child);
    tokio::time::sleep(Duration::from_millis(300)).await;
    kafka.process.resume();

    let mut acknowledged = HashSet::new();
    for r in requests {
        if let Some((status, body)) = r.await.unwrap() {
            if (200..300).contains(&status) {
                acknowledged.insert(body["events"][0]["id"].as_str().unwrap().to_owned());
            }
        }
    }
    let status = wait_exit(&mut child).await;
    assert!(status.success(), "exit status {status}");
    assert_eq!(acknowledged.len(), 20, "every in-flight request finished with 2xx");
    let found = ids_in(&kafka.addr, &topic, &acknowledged).await;
    for id in &acknowledged {
        assert!(found.contains(id), "acknowledged {id} is not in Kafka");
    }
}

/// Each HTTP worker publishes to NATS on a client of its own, which ends with the worker: a
/// SIGTERM after those clients have published still exits cleanly, with every 2xx in the stream.
#[actix_rt::test]
async fn sigterm_after_the_workers_published_to_nats_exits_cleanly() {
    let url = brokers::nats();
    let (id, stream) = brokers::nats_names();
    let dir = tempfile::tempdir().unwrap();
    let routes = brokers::routes_file(
        dir.path(),
        &format!("routes:\n  - name: t\n    to: [{{ sink: nats, subject: \"{id}.{{noun}}.{{verb}}\" }}]\n"),
    );
    let subjects = format!("{id}.>");
    let (mut child, base) = start_binary(
        &[
            ("REGBRIDGE_HARBOR_AUTH", HARBOR_AUTH),
            ("REGBRIDGE_NATS_URL", &url),
            ("REGBRIDGE_NATS_STREAM", &stream),
            ("REGBRIDGE_NATS_SUBJECTS", &subjects),
            ("REGBRIDGE_ROUTES", &routes),
        ],
        dir.path(),
    )
    .await;

    // Spread over a second, on fresh connections, so every worker serves some after its own
    // client has connected (it connects on the worker's first publish).
    for n in 0..20 {
        let res = awc::Client::default()
            .post(format!("{base}/webhooks/harbor"))
            .insert_header(("content-type", "application/json"))
            .insert_header(("authorization", HARBOR_AUTH))
            .send_body(delivery(n))
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    sigterm(&child);
    let status = wait_exit(&mut child).await;
    assert!(status.success(), "exit status {status}");

    let js = async_nats::jetstream::new(async_nats::connect(&url).await.unwrap());
    let mut s = js.get_stream(&stream).await.unwrap();
    assert_eq!(s.info().await.unwrap().state.messages, 20);
    js.delete_stream(&stream).await.unwrap();
}
