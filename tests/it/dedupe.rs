//! Replay suppression: a delivery accepted before answers `200 "duplicate"` and publishes
//! nothing, across replicas sharing Redis or within one process (memory); a delivery that failed
//! is published when retried; a Redis outage suppresses nothing and refuses nothing; events
//! outside an endpoint's freshness window are refused.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use regbridge::app::App;
use regbridge::config::{Config, Env};
use regbridge::sinks::{self, Delivery, Sink, SinkError, Sinks};
use serde_json::{json, Value};

use crate::brokers;
use crate::helpers::*;

const PUSH: &str = "harbor/push_artifact.default.json";
const PUSH_CE: &str = "harbor/push_artifact.cloudevents.fixed.json";
const SCAN: &str = "harbor/scanning_completed.default.json";

/// The test Redis (`scripts/brokers up` starts it and prints `REGBRIDGE_TEST_REDIS`).
fn redis_url() -> String {
    let url = std::env::var("REGBRIDGE_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let addr = url.trim_start_matches("redis://").split('/').next().unwrap().to_owned();
    let addr: std::net::SocketAddr = addr.parse().expect("REGBRIDGE_TEST_REDIS is redis://ip:port");
    assert!(
        std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2)).is_ok(),
        "Redis is not reachable at {url} (REGBRIDGE_TEST_REDIS); start it with `scripts/brokers up`"
    );
    url
}

/// The value of the sample `name{labels…}` in a Prometheus exposition (labels in any order).
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut want: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    want.sort_unstable();
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, "}"));
        let mut have: Vec<&str> = rest.trim_end_matches('}').split(',').filter(|s| !s.is_empty()).collect();
        have.sort_unstable();
        (metric == name && have == want).then(|| value.parse().ok()).flatten()
    })
}

/// A regbridge process of its own (the binary), with its events file and log in `dir`.
struct Replica {
    child: std::process::Child,
    base: String,
    dir: tempfile::TempDir,
    client: awc::Client,
}

impl Replica {
    /// Harbor enabled, the file sink in its directory, and `env` (the dedupe settings).
    async fn start(env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let events = dir.path().join("events.jsonl").display().to_string();
        let mut all = vec![("REGBRIDGE_HARBOR_AUTH", HARBOR_AUTH), ("REGBRIDGE_FILE_SINK", events.as_str())];
        all.retain(|(k, _)| !env.iter().any(|(e, _)| e == k));
        all.extend_from_slice(env);
        let (child, base) = start_binary(&all, dir.path()).await;
        Self { child, base, dir, client: awc::Client::default() }
    }

    async fn post_harbor(&self, body: &[u8], content_type: &str) -> Reply {
        let mut res = self
            .client
            .post(format!("{}/webhooks/harbor", self.base))
            .insert_header(("content-type", content_type))
            .insert_header(("authorization", HARBOR_AUTH))
            .send_body(body.to_vec())
            .await
            .expect("request succeeds");
        let bytes = res.body().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply { status: res.status().as_u16(), headers: res.headers().clone(), body }
    }

    async fn metrics(&self) -> String {
        let mut res = self.client.get(format!("{}/metrics", self.base)).send().await.unwrap();
        String::from_utf8(res.body().limit(4 << 20).await.unwrap().to_vec()).unwrap()
    }

    fn events(&self) -> Vec<Value> {
        match std::fs::read_to_string(self.dir.path().join("events.jsonl")) {
            Ok(text) => text.lines().map(|l| serde_json::from_str(l).unwrap()).collect(),
            Err(_) => vec![],
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("regbridge.log")).unwrap_or_default()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        // Only the process this test started, by its id.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The dedupe settings of replicas sharing Redis under a prefix no other test (or run) uses.
fn shared_redis(prefix: &str, redis: &str) -> Vec<(String, String)> {
    vec![
        ("REGBRIDGE_DEDUPE".into(), "redis".into()),
        ("REGBRIDGE_REDIS_URL".into(), redis.into()),
        ("REGBRIDGE_DEDUPE_PREFIX".into(), prefix.into()),
        // A loaded test machine must not turn a slow answer into "no suppression".
        ("REGBRIDGE_DEDUPE_TIMEOUT".into(), "5s".into()),
    ]
}

fn borrowed(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn ids(reply: &Reply) -> Vec<&str> {
    reply.body["events"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect()
}

#[actix_rt::test]
async fn a_replayed_harbor_delivery_publishes_once_across_two_processes_sharing_redis() {
    let env = shared_redis(&brokers::unique("it-dedupe"), &redis_url());
    let (a, b) = (Replica::start(&borrowed(&env)).await, Replica::start(&borrowed(&env)).await);
    let push = fixture(PUSH);

    let first = a.post_harbor(&push, "application/json").await;
    assert_eq!((first.status, &first.body["status"]), (200, &json!("accepted")), "{:?}", first.body);
    // The same delivery, verbatim, at the other replica and again at the first.
    for (replica, which) in [(&b, "B"), (&a, "A")] {
        let again = replica.post_harbor(&push, "application/json").await;
        assert_eq!(again.status, 200, "{which}: {:?}", again.body);
        assert_eq!(again.body["status"], "duplicate", "{which}: {:?}", again.body);
        assert_eq!(ids(&again), ids(&first), "{which}: the answer names the events");
    }
    assert_eq!(a.events().len(), 1, "published once");
    assert!(b.events().is_empty(), "B published nothing");

    // Harbor's CloudEvents format (its own id), first at B this time; and another delivery is
    // not a duplicate of anything.
    let ce = fixture(PUSH_CE);
    assert_eq!(b.post_harbor(&ce, "application/cloudevents+json").await.body["status"], "accepted");
    assert_eq!(a.post_harbor(&ce, "application/cloudevents+json").await.body["status"], "duplicate");
    assert_eq!(b.post_harbor(&fixture(SCAN), "application/json").await.body["status"], "accepted");
    assert_eq!((a.events().len(), b.events().len()), (1, 2));

    let text = a.metrics().await;
    assert_eq!(sample(&text, "regbridge_dedupe_duplicates_total", &[("endpoint", "harbor")]), Some(2.0));
    assert_eq!(sample(&text, "regbridge_dedupe_store_up", &[]), Some(1.0), "{text}");
    assert_eq!(sample(&text, "regbridge_dedupe_errors_total", &[("op", "check")]), Some(0.0));
}

#[actix_rt::test]
async fn a_delivery_that_got_503_is_published_when_retried_at_another_replica() {
    let env = shared_redis(&brokers::unique("it-dedupe"), &redis_url());
    let mut failing = borrowed(&env);
    // Every write to /dev/full fails (ENOSPC); without a broker the outbox is off: 503.
    failing.push(("REGBRIDGE_FILE_SINK", "/dev/full"));
    let (a, b) = (Replica::start(&failing).await, Replica::start(&borrowed(&env)).await);
    let push = fixture(PUSH);

    let refused = a.post_harbor(&push, "application/json").await;
    assert_eq!(refused.status, 503, "{:?}", refused.body);
    let retried = b.post_harbor(&push, "application/json").await;
    assert_eq!((retried.status, &retried.body["status"]), (200, &json!("accepted")), "{:?}", retried.body);
    assert_eq!(b.events().len(), 1, "the retry is published");
    // Now it was accepted: a replay at the failing replica publishes nothing (and needs no sink).
    let replay = a.post_harbor(&push, "application/json").await;
    assert_eq!((replay.status, &replay.body["status"]), (200, &json!("duplicate")), "{:?}", replay.body);
}

/// A sink that refuses its first `failures` batches, then takes every one, keeping their ids.
struct Flaky {
    failures: AtomicUsize,
    published: Mutex<Vec<String>>,
}

impl Sink for Flaky {
    fn publish<'a>(&'a self, batch: &'a [Delivery]) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            if self.failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
                return Err(SinkError::Unavailable { sink: "file", reason: "scripted failure".into() });
            }
            let mut published = self.published.lock().unwrap();
            published.extend(batch.iter().map(|d| d.event.id().to_owned()));
            Ok(())
        })
    }
    fn health(&self) -> Result<(), String> {
        Ok(())
    }
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

#[actix_rt::test]
async fn in_memory_a_failed_delivery_is_published_when_retried_and_then_suppressed() {
    let env: Env = [
        ("REGBRIDGE_LISTEN", "127.0.0.1:0"),
        ("REGBRIDGE_HARBOR_AUTH", HARBOR_AUTH),
        ("REGBRIDGE_FILE_SINK", "/dev/null"),
        ("REGBRIDGE_DEDUPE", "memory"),
    ]
    .into_iter()
    .collect();
    let sink = Arc::new(Flaky { failures: AtomicUsize::new(1), published: Mutex::default() });
    let sinks = Sinks::from_parts(vec![(sinks::by_name("file").unwrap(), sink.clone() as Arc<dyn Sink>)]);
    let app = App::builder(Config::load(&env).unwrap()).sinks(sinks).workers(1).build().await.unwrap();
    let url = format!("http://127.0.0.1:{}/webhooks/harbor", app.port());
    let handle = app.handle();
    actix_rt::spawn(app.run_until_stopped());
    let post = |body: Vec<u8>| {
        let req = awc::Client::default()
            .post(&url)
            .insert_header(("content-type", "application/json"))
            .insert_header(("authorization", HARBOR_AUTH));
        async move {
            let mut res = req.send_body(body).await.unwrap();
            let body: Value = serde_json::from_slice(&res.body().await.unwrap()).unwrap();
            (res.status().as_u16(), body["status"].as_str().unwrap_or("").to_owned())
        }
    };

    let push = fixture(PUSH);
    assert_eq!(post(push.clone()).await.0, 503, "the sink refused");
    assert_eq!(post(push.clone()).await, (200, "accepted".into()), "the retry is published");
    assert_eq!(post(push.clone()).await, (200, "duplicate".into()));
    assert_eq!(post(fixture(SCAN)).await, (200, "accepted".into()), "another delivery");
    let published = sink.published.lock().unwrap().clone();
    assert_eq!(published.len(), 2, "{published:?}");
    assert_eq!(published[0], digest_id("harbor", &push));
    handle.stop(false).await;
}

#[actix_rt::test]
async fn in_memory_keys_are_per_endpoint_and_a_partly_new_delivery_is_published_whole() {
    let endpoint = brokers::unique("harbor-dedupe");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("regbridge.yaml");
    std::fs::write(
        &config,
        format!("endpoints:\n  {endpoint}:\n    dialect: harbor\n    auth: [\"{HARBOR_AUTH}\"]\ndedupe:\n  store: memory\n  ttl: 1h\n"),
    )
    .unwrap();
    let auth = zot_auth();
    let app = spawn_app_with(
        Options::default()
            .with("REGBRIDGE_CONFIG", config.to_str().unwrap())
            .with("REGBRIDGE_CLOUDEVENTS_AUTH", &auth),
    )
    .await;
    let ce = fixture(PUSH_CE);
    let headers = [("content-type", "application/cloudevents+json"), ("authorization", HARBOR_AUTH)];
    let named = format!("/webhooks/{endpoint}");
    // One event id at two endpoints: two deliveries.
    for path in ["/webhooks/harbor", named.as_str()] {
        assert_eq!(app.post(path, &headers, ce.clone()).await.body["status"], "accepted", "{path}");
        assert_eq!(app.post(path, &headers, ce.clone()).await.body["status"], "duplicate", "{path}");
    }
    assert_eq!(app.events().len(), 2);

    // A batch of one event, then one that repeats it beside a new one: published whole.
    let batch = [("content-type", "application/cloudevents-batch+json"), ("authorization", auth.as_str())];
    let zot = |ids: &[&str]| -> Vec<u8> {
        let template = fixture_json("other/synthetic/zot.image-updated.structured-ce.json");
        let events: Vec<Value> = ids
            .iter()
            .map(|id| {
                let mut e = template.clone();
                e["id"] = json!(format!("{endpoint}-{id}"));
                e
            })
            .collect();
        serde_json::to_vec(&events).unwrap()
    };
    let r = app.post("/webhooks/cloudevents", &batch, zot(&["1"])).await;
    assert_eq!(r.body["status"], "accepted", "{:?}", r.body);
    let r = app.post("/webhooks/cloudevents", &batch, zot(&["1", "2"])).await;
    assert_eq!(r.body["status"], "accepted", "{:?}", r.body);
    assert_eq!(ids(&r).len(), 2);
    assert_eq!(app.post("/webhooks/cloudevents", &batch, zot(&["2", "1"])).await.body["status"], "duplicate");
    assert_eq!(app.events().len(), 2 + 3);

    let (_, text) = app.get("/metrics").await;
    assert_eq!(sample(&text, "regbridge_dedupe_duplicates_total", &[("endpoint", &endpoint)]), Some(1.0));
}

/// Zot's HTTP sink with `username`/`password` set sends `Basic base64(user:pass)`.
fn zot_auth() -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("webhook-user:webhook-password"))
}

#[actix_rt::test]
async fn with_redis_down_webhooks_are_accepted_and_published_and_the_failures_counted() {
    // Bound, then released: nothing listens there.
    let port = brokers::free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let replica = Replica::start(&[("REGBRIDGE_DEDUPE", "redis"), ("REGBRIDGE_REDIS_URL", &url)]).await;
    let push = fixture(PUSH);
    for attempt in 0..3 {
        let r = replica.post_harbor(&push, "application/json").await;
        assert_eq!(
            (r.status, &r.body["status"]),
            (200, &json!("accepted")),
            "attempt {attempt}: {:?}",
            r.body
        );
    }
    assert_eq!(replica.events().len(), 3, "nothing suppressed");
    let text = replica.metrics().await;
    assert_eq!(sample(&text, "regbridge_dedupe_store_up", &[]), Some(0.0), "{text}");
    assert!(
        sample(&text, "regbridge_dedupe_errors_total", &[("op", "check")]).is_some_and(|n| n >= 3.0),
        "{text}"
    );
    assert!(
        sample(&text, "regbridge_dedupe_errors_total", &[("op", "record")]).is_some_and(|n| n >= 3.0),
        "{text}"
    );
    // Logged when it started failing, not per request.
    let log = replica.log();
    assert_eq!(log.matches("without replay suppression").count(), 1, "{log}");
}

#[actix_rt::test]
async fn events_outside_the_freshness_window_are_refused_and_never_published() {
    let push = fixture(PUSH);
    let occurred = fixture_json(PUSH)["occur_at"].as_i64().unwrap();
    let windowed = || Options::default().with("REGBRIDGE_HARBOR_MAX_EVENT_AGE", "1h");

    // Today, the 2023 event is years old (a verbatim replay).
    let app = spawn_app_with(windowed()).await;
    let r = app.post_harbor(&push, "application/json").await;
    assert_eq!(r.status, 401, "{:?}", r.body);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(r.body["type"], "urn:regbridge:problem:unauthorized");
    assert_eq!(r.body["reason"], "stale_event");
    assert!(r.body["detail"].as_str().unwrap().contains("at most 3600 s old"), "{:?}", r.body);
    assert!(app.events().is_empty());

    // A minute after it happened: fresh.
    let app = spawn_app_with(windowed().clock(occurred + 60)).await;
    assert_eq!(app.post_harbor(&push, "application/json").await.status, 200);
    assert_eq!(app.events().len(), 1);

    // Dated an hour ahead of this clock: refused too (5 minutes of skew allowed).
    let app = spawn_app_with(windowed().clock(occurred - 3600)).await;
    let r = app.post_harbor(&push, "application/json").await;
    assert_eq!((r.status, &r.body["reason"]), (401, &json!("stale_event")), "{:?}", r.body);
    assert!(r.body["detail"].as_str().unwrap().contains("ahead"), "{:?}", r.body);
    assert!(app.events().is_empty());

    // An event without a time of its own (Quay says none) passes; the file's key works alike.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("regbridge.yaml");
    std::fs::write(&config, "endpoints:\n  quay:\n    max_event_age: 10m\n").unwrap();
    let app = spawn_app_with(
        Options::default()
            .with("REGBRIDGE_QUAY_TOKENS", "quay-token")
            .with("REGBRIDGE_CONFIG", config.to_str().unwrap()),
    )
    .await;
    let quay = fixture("other/quay/repo_push.quay-docs.json");
    let r = app.post("/webhooks/quay?token=quay-token", &[("content-type", "application/json")], quay).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}
