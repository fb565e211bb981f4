//! One test per error class of the contract (§1): status, problem+json body, nothing published.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use regbridge::app::App;
use regbridge::config::{Config, Env};
use regbridge::sinks::{self, Delivery, Sink, SinkError, Sinks};

use crate::helpers::*;

#[track_caller]
fn assert_problem(reply: &Reply, status: u16, class: &str, reason: &str) {
    assert_eq!(reply.status, status, "{:?}", reply.body);
    assert_eq!(reply.header("content-type"), Some("application/problem+json"));
    assert_eq!(reply.body["type"], format!("urn:regbridge:problem:{class}"));
    assert_eq!(reply.body["status"], status);
    assert_eq!(reply.body["reason"], reason, "{:?}", reply.body);
    assert!(reply.body["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(reply.body["detail"].as_str().is_some_and(|t| !t.is_empty()));
}

#[actix_rt::test]
async fn unauthorized_401() {
    let app = spawn_app().await;
    let body = fixture("root/image-created.e2e-rendered.json");
    let ts = chrono::Utc::now().timestamp().to_string();
    let ce = ("content-type", "application/cloudevents+json");

    let r = app.post("/webhooks/root", &[ce], body.clone()).await;
    assert_problem(&r, 401, "unauthorized", "missing_signature");

    let good = sign_standard(ROOT_SECRET, "m1", &ts, &body);
    let h =
        [ce, ("webhook-id", "m2"), ("webhook-timestamp", ts.as_str()), ("webhook-signature", good.as_str())];
    assert_problem(
        &app.post("/webhooks/root", &h, body.clone()).await,
        401,
        "unauthorized",
        "invalid_signature",
    );

    let old = (chrono::Utc::now().timestamp() - 600).to_string();
    let sig = sign_standard(ROOT_SECRET, "m1", &old, &body);
    let h =
        [ce, ("webhook-id", "m1"), ("webhook-timestamp", old.as_str()), ("webhook-signature", sig.as_str())];
    assert_problem(
        &app.post("/webhooks/root", &h, body.clone()).await,
        401,
        "unauthorized",
        "stale_timestamp",
    );

    let other = sign_standard("whsec_bm90LXRoZS1zZWNyZXQ=", "m1", &ts, &body);
    let h =
        [ce, ("webhook-id", "m1"), ("webhook-timestamp", ts.as_str()), ("webhook-signature", other.as_str())];
    let r = app.post("/webhooks/root", &h, body).await;
    assert_problem(&r, 401, "unauthorized", "invalid_signature");
    assert!(!r.body.to_string().contains("whsec_"), "problem bodies never echo secrets");

    let harbor = fixture("harbor/push_artifact.default.json");
    let json = ("content-type", "application/json");
    let r = app.post("/webhooks/harbor", &[json, ("authorization", "Bearer wrong")], harbor.clone()).await;
    assert_problem(&r, 401, "unauthorized", "invalid_credential");
    let r = app.post("/webhooks/harbor", &[json], harbor).await;
    assert_problem(&r, 401, "unauthorized", "missing_credential");

    let msr = fixture("msr/tag_push.dtr-2.4-docs.json");
    assert_problem(
        &app.post("/webhooks/msr", &[json], msr.clone()).await,
        401,
        "unauthorized",
        "missing_credential",
    );
    let r = app.post("/webhooks/msr?token=wrong", &[json], msr).await;
    assert_problem(&r, 401, "unauthorized", "invalid_credential");

    assert!(app.events().is_empty());
}

#[actix_rt::test]
async fn malformed_400() {
    let app = spawn_app().await;
    let r = app.post_harbor(b"{\"type\": \"PUSH_ARTIFACT\",", "application/json").await;
    assert_problem(&r, 400, "malformed-payload", "invalid_json");
    let r = app.post_harbor(br#"{"type":"PUSH_ARTIFACT","occur_at":1}"#, "application/json").await;
    assert_problem(&r, 400, "malformed-payload", "missing_field");
    let r = app.post_msr(br#"{"type":"TAG_PUSH","createdAt":"2024-05-01T10:00:00Z"}"#).await;
    assert_problem(&r, 400, "malformed-payload", "missing_field");
    // Harbor's own documentation sample with a missing comma: Harbor never sends it, and neither
    // may anyone else.
    let r = app
        .post_harbor(&fixture("harbor/pull_artifact.cloudevents.jsonc"), "application/cloudevents+json")
        .await;
    assert_problem(&r, 400, "malformed-payload", "invalid_json");
    let r = app
        .post_root(br#"{"type":"io.root.cr.image.created.v1","id":"x","data":{"image_tag":"1"}}"#, "m", false)
        .await;
    assert_problem(&r, 400, "malformed-payload", "missing_field");
    // A line break in a tag would become one in a `ce-subject` header, which the NATS binding
    // cannot carry and CloudEvents forbids.
    let tag = fixture("msr/tag_push.dtr-2.4-docs.json");
    let tag = String::from_utf8(tag).unwrap().replace(r#""tag": "latest""#, r#""tag": "latest\nx""#);
    let r = app.post_msr(tag.as_bytes()).await;
    assert_problem(&r, 400, "malformed-payload", "invalid_field");
    assert!(r.body["detail"].as_str().unwrap().contains("`tag`"), "{:?}", r.body);
    assert!(app.events().is_empty());
}

/// `fixture` with `bad` (raw bytes) in place of the text `marker`.
fn spoiled(fixture_path: &str, marker: &str, bad: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(fixture(fixture_path)).unwrap();
    let (head, tail) = text.split_once(marker).unwrap_or_else(|| panic!("{marker} not in {fixture_path}"));
    [head.as_bytes(), bad, tail.as_bytes()].concat()
}

/// A correctly signed (or authorized) body with a byte that is not UTF-8, in a field the dialect
/// does not even read, is refused before any dialect sees it: it would otherwise reach consumers
/// inside `data.original` and break every JSON parser.
#[actix_rt::test]
async fn bodies_that_are_not_utf8_are_refused_400_by_every_dialect_and_publish_nothing() {
    let app = spawn_app().await;
    let root = "root/image-created.e2e-rendered.json";
    let note = spoiled(root, r#""specversion""#, b"\"x-note\":\"caf\xe9 \xff\",\"specversion\"");
    let content_type = spoiled(root, "application/json", b"appl\xc4cation/json");
    for body in [note, content_type] {
        let r = app.post_root(&body, "msg-not-utf8", false).await;
        assert_problem(&r, 400, "malformed-payload", "invalid_json");
        let offset = std::str::from_utf8(&body).unwrap_err().valid_up_to();
        assert!(r.body["detail"].as_str().unwrap().contains(&format!("byte {offset}")), "{:?}", r.body);
    }
    let harbor =
        spoiled("harbor/push_artifact.default.json", r#""operator""#, b"\"note\":\"\xff\",\"operator\"");
    let r = app.post_harbor(&harbor, "application/json").await;
    assert_problem(&r, 400, "malformed-payload", "invalid_json");
    let msr = spoiled("msr/tag_push.dtr-2.4-docs.json", r#""type""#, b"\"note\":\"\xff\",\"type\"");
    let r = app.post_msr(&msr).await;
    assert_problem(&r, 400, "malformed-payload", "invalid_json");
    assert!(app.events().is_empty(), "nothing refused is published");
}

#[actix_rt::test]
async fn unknown_or_disabled_endpoint_404_and_wrong_method_405() {
    let app = spawn_app_with(Options::default().with("REGBRIDGE_HARBOR_AUTH", "")).await;
    let json = [("content-type", "application/json")];
    let r = app.post("/webhooks/quay", &json, "{}").await;
    assert_problem(&r, 404, "endpoint-not-found", "unknown_endpoint");
    // Harbor has no credentials and was not marked unauthenticated: disabled.
    let r = app.post("/webhooks/harbor", &json, fixture("harbor/push_artifact.default.json")).await;
    assert_problem(&r, 404, "endpoint-not-found", "unknown_endpoint");
    let (status, _) = app.get("/webhooks/root").await;
    assert_eq!(status, 405);
    let (status, body) = app.get("/nowhere").await;
    assert_eq!(status, 404);
    assert!(body.contains("urn:regbridge:problem:endpoint-not-found"));
    assert!(app.events().is_empty());
}

#[actix_rt::test]
async fn unauthenticated_endpoints_must_be_explicit() {
    let app = spawn_app_with(
        Options::default().with("REGBRIDGE_HARBOR_AUTH", "").with("REGBRIDGE_UNAUTHENTICATED", "harbor"),
    )
    .await;
    let r = app
        .post(
            "/webhooks/harbor",
            &[("content-type", "application/json")],
            fixture("harbor/push_artifact.default.json"),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(app.events().len(), 1);
}

#[actix_rt::test]
async fn too_large_413_declared_or_streamed() {
    let app = spawn_app_with(Options::default().with("REGBRIDGE_BODY_LIMIT", "1KiB")).await;
    let big = format!("{{\"type\":\"PUSH_ARTIFACT\",\"pad\":\"{}\"}}", "x".repeat(2048));
    let r = app.post_harbor(big.as_bytes(), "application/json").await;
    assert_problem(&r, 413, "payload-too-large", "body_too_large");

    // Without Content-Length (chunked) the limit holds while reading.
    let chunks: Vec<Result<Bytes, std::io::Error>> =
        (0..4).map(|_| Ok(Bytes::from(vec![b' '; 512]))).collect();
    let mut res = app
        .client
        .post(format!("{}/webhooks/harbor", app.base))
        .insert_header(("content-type", "application/json"))
        .insert_header(("authorization", HARBOR_AUTH))
        .send_stream(futures_util::stream::iter(chunks))
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 413);
    let body: serde_json::Value = serde_json::from_slice(&res.body().await.unwrap()).unwrap();
    assert_eq!(body["reason"], "body_too_large");
    assert!(app.events().is_empty());
}

#[actix_rt::test]
async fn unsupported_media_type_415() {
    let app = spawn_app().await;
    let body = fixture("harbor/push_artifact.default.json");
    let r = app.post_harbor(&body, "text/plain").await;
    assert_problem(&r, 415, "unsupported-media-type", "unsupported_media_type");
    let r = app.post("/webhooks/harbor", &[("authorization", HARBOR_AUTH)], body.clone()).await;
    assert_problem(&r, 415, "unsupported-media-type", "unsupported_media_type");
    // Parameters and case do not matter.
    assert_eq!(app.post_harbor(&body, "Application/JSON; charset=utf-8").await.status, 200);
    assert_eq!(app.events().len(), 1);
}

#[actix_rt::test]
async fn rate_limited_429_with_retry_after() {
    let app = spawn_app_with(
        Options::default().with("REGBRIDGE_RATE_LIMIT", "1").with("REGBRIDGE_RATE_BURST", "1"),
    )
    .await;
    let body = fixture("harbor/push_artifact.default.json");
    assert_eq!(app.post_harbor(&body, "application/json").await.status, 200);
    let r = app.post_harbor(&body, "application/json").await;
    assert_problem(&r, 429, "rate-limited", "rate_limited");
    assert_eq!(r.header("retry-after"), Some("1"));
    // The limit is per endpoint: MSR is unaffected.
    assert_eq!(app.post_msr(&fixture("msr/tag_push.dtr-2.4-docs.json")).await.status, 200);
    assert_eq!(app.events().len(), 2);
}

#[actix_rt::test]
async fn failing_sink_503_and_not_ready() {
    // Every write to /dev/full fails with ENOSPC.
    let app = spawn_app_with(Options::default().with("REGBRIDGE_FILE_SINK", "/dev/full")).await;
    let r = app.post_harbor(&fixture("harbor/push_artifact.default.json"), "application/json").await;
    assert_problem(&r, 503, "sink-unavailable", "sink_unavailable");
    assert_eq!(r.header("retry-after"), Some("2"));
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, 503);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["status"], "not_ready");
    assert!(body["sinks"]["file"].as_str().unwrap().contains("/dev/full"), "{body}");
}

/// A sink that never confirms.
struct Stuck;

impl Sink for Stuck {
    fn publish<'a>(&'a self, _: &'a [Delivery]) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(std::future::pending())
    }
    fn health(&self) -> Result<(), String> {
        Ok(())
    }
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

#[actix_rt::test]
async fn slow_sink_503_within_the_budget() {
    let env: Env = [
        ("REGBRIDGE_LISTEN", "127.0.0.1:0"),
        ("REGBRIDGE_HARBOR_AUTH", HARBOR_AUTH),
        ("REGBRIDGE_PUBLISH_TIMEOUT", "300ms"),
        ("REGBRIDGE_FILE_SINK", "/dev/null"),
    ]
    .into_iter()
    .collect();
    let config = Config::load(&env).unwrap();
    let sinks = Sinks::from_parts(vec![(sinks::by_name("file").unwrap(), Arc::new(Stuck) as Arc<dyn Sink>)]);
    let app = App::builder(config).sinks(sinks).workers(1).build().await.unwrap();
    let url = format!("http://127.0.0.1:{}/webhooks/harbor", app.port());
    let handle = app.handle();
    actix_rt::spawn(app.run_until_stopped());

    let started = std::time::Instant::now();
    let mut res = awc::Client::default()
        .post(url)
        .insert_header(("content-type", "application/json"))
        .insert_header(("authorization", HARBOR_AUTH))
        .send_body(fixture("harbor/push_artifact.default.json"))
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(res.status().as_u16(), 503);
    let body: serde_json::Value = serde_json::from_slice(&res.body().await.unwrap()).unwrap();
    assert_eq!(body["reason"], "sink_timeout");
    // Generous upper bound: this asserts the budget is enforced at all, not how fast.
    assert!(elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(10), "{elapsed:?}");
    handle.stop(false).await;
}

#[actix_rt::test]
async fn forbidden_403_for_a_sender_outside_the_endpoints_networks() {
    let app =
        spawn_app_with(Options::default().with("REGBRIDGE_HARBOR_ALLOW_FROM", "127.0.0.2/32, 10.0.0.0/8"))
            .await;
    let body = fixture("harbor/push_artifact.default.json");
    let harbor = [("content-type", "application/json"), ("authorization", HARBOR_AUTH)];
    let r = post_from(&app, [127, 0, 0, 3], "/webhooks/harbor", &harbor, &body).await;
    assert_problem(&r, 403, "forbidden", "address_not_allowed");
    assert!(r.body["detail"].as_str().unwrap().contains("127.0.0.3"), "{:?}", r.body);
    // Refused before the credential is looked at: a wrong one gets 403 too, not 401.
    let wrong = [("content-type", "application/json"), ("authorization", "Bearer nope")];
    let r = post_from(&app, [127, 0, 0, 3], "/webhooks/harbor", &wrong, &body).await;
    assert_problem(&r, 403, "forbidden", "address_not_allowed");
    assert!(app.events().is_empty(), "nothing published");
    let r = post_from(&app, [127, 0, 0, 2], "/webhooks/harbor", &harbor, &body).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // Other endpoints have no allowlist.
    let r = app.post_msr(&fixture("msr/tag_push.dtr-2.4-docs.json")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

#[actix_rt::test]
async fn behind_a_trusted_proxy_the_address_it_forwards_is_the_sender() {
    let app = spawn_app_with(
        Options::default()
            .with("REGBRIDGE_HARBOR_ALLOW_FROM", "203.0.113.0/24")
            .with("REGBRIDGE_TRUSTED_PROXIES", "127.0.0.1"),
    )
    .await;
    let body = fixture("harbor/push_artifact.default.json");
    let post = |from: [u8; 4], header: (&'static str, &'static str)| {
        let headers = [("content-type", "application/json"), ("authorization", HARBOR_AUTH), header];
        let body = body.clone();
        let app = &app;
        async move { post_from(app, from, "/webhooks/harbor", &headers, &body).await }
    };
    let proxy = [127, 0, 0, 1];
    assert_eq!(post(proxy, ("x-forwarded-for", "203.0.113.5")).await.status, 200);
    assert_eq!(post(proxy, ("forwarded", "for=203.0.113.6;proto=https")).await.status, 200);
    // The proxy appends the real sender on the right: an entry the sender wrote itself does not count.
    let r = post(proxy, ("x-forwarded-for", "203.0.113.5, 198.51.100.1")).await;
    assert_problem(&r, 403, "forbidden", "address_not_allowed");
    assert!(r.body["detail"].as_str().unwrap().contains("198.51.100.1"), "{:?}", r.body);
    let r = post(proxy, ("forwarded", "for=unknown")).await;
    assert_problem(&r, 403, "forbidden", "address_not_allowed");
    // From a peer that is not a trusted proxy the header means nothing.
    let r = post([127, 0, 0, 4], ("x-forwarded-for", "203.0.113.5")).await;
    assert_problem(&r, 403, "forbidden", "address_not_allowed");
    assert!(r.body["detail"].as_str().unwrap().contains("127.0.0.4"), "{:?}", r.body);
    assert_eq!(app.events().len(), 2);
}

/// A payload of another registry, correctly signed for the endpoint it was posted to, is no
/// unmapped type of that endpoint's dialect: 400, nothing published (the sender learns its
/// webhook is pointed at the wrong endpoint instead of being told all is well).
#[actix_rt::test]
async fn another_registrys_payload_signed_for_this_endpoint_is_400() {
    let app = spawn_app().await;
    let msr = fixture("msr/tag_push.dtr-2.4-docs.json");
    let r = app.post_root(&msr, "m-msr", false).await;
    assert_problem(&r, 400, "malformed-payload", "missing_field");
    assert!(r.body["detail"].as_str().unwrap().contains("specversion"), "{:?}", r.body);
    let harbor_ce = fixture("harbor/push_artifact.cloudevents.fixed.json");
    let r = app.post_root(&harbor_ce, "m-harbor", true).await;
    assert_problem(&r, 400, "malformed-payload", "invalid_field");
    let r = app
        .post_harbor(&fixture("root/image-created.e2e-rendered.json"), "application/cloudevents+json")
        .await;
    assert_problem(&r, 400, "malformed-payload", "invalid_field");
    let r = app.post_msr(&fixture("harbor/push_artifact.default.json")).await;
    assert_problem(&r, 400, "malformed-payload", "missing_field");
    assert!(app.events().is_empty(), "nothing published");
}
