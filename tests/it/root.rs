//! Root deliveries: both signature modes, recorded vectors, every Root fixture.

use serde_json::json;

use crate::assert_matches;
use crate::helpers::*;

fn expected_e2e() -> serde_json::Value {
    json!({
        "specversion": "1.0",
        "id": "e2e_1234567890:amd64",
        "type": "dev.regbridge.artifact.pushed.v1",
        "source": "https://cr.root.io",
        "subject": "python:3.13",
        "time": "2026-03-29T13:40:12Z",
        "datacontenttype": "application/json",
        "registry": "root",
        "origtype": "io.root.cr.image.created.v1",
        "partitionkey": "python",
        "data": {
            "registry": "root",
            "host": "cr.root.io",
            "repository": "python",
            "tag": "3.13",
            "digest": "sha256:e2etest",
            "image": "cr.root.io/python:3.13",
            "platform": { "os": null, "architecture": "amd64" },
            "actor": null,
            "occurred_at": "2026-03-29T13:40:12Z",
            "scan": null,
            "original": fixture_json("root/image-created.e2e-rendered.json"),
        }
    })
}

#[actix_rt::test]
async fn signed_in_either_mode_becomes_one_cloudevent() {
    let app = spawn_app().await;
    let body = fixture("root/image-created.e2e-rendered.json");
    for hex in [false, true] {
        let reply = app.post_root(&body, "whmsg_1", hex).await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        assert_eq!(reply.body["events"][0]["id"], "e2e_1234567890:amd64");
    }
    let events = app.events();
    assert_eq!(events.len(), 2);
    let traceparent = regex::Regex::new("^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$").unwrap();
    for ev in &events {
        assert_matches(ev, &expected_e2e());
        let tp = ev["traceparent"].as_str().unwrap();
        assert!(traceparent.is_match(tp), "{tp}");
    }
}

#[actix_rt::test]
async fn recorded_vectors_verify_with_their_own_clock() {
    let vectors = fixture_json("root/signed-requests.json");
    let ts = vectors["webhook-timestamp"].as_str().unwrap();
    let now: i64 = ts.parse().unwrap();
    let body = fixture("root/image-created.e2e-rendered.json");
    for (offset, want) in [(0, 200), (300, 200), (-300, 200), (301, 401), (-301, 401)] {
        let app = spawn_app_with(Options::default().clock(now + offset)).await;
        for mode in ["root_reference_receiver", "standard_webhooks"] {
            let sig = vectors["modes"][mode]["webhook-signature"].as_str().unwrap();
            let headers = [
                ("content-type", "application/cloudevents+json"),
                ("webhook-id", vectors["webhook-id"].as_str().unwrap()),
                ("webhook-timestamp", ts),
                ("webhook-signature", sig),
            ];
            let reply = app.post("/webhooks/root", &headers, body.clone()).await;
            assert_eq!(reply.status, want, "{mode} at offset {offset}: {:?}", reply.body);
            if want == 401 {
                assert_eq!(reply.body["reason"], "stale_timestamp");
            }
        }
    }
}

#[actix_rt::test]
async fn signature_mode_can_be_pinned() {
    let app = spawn_app_with(Options::default().with("REGBRIDGE_ROOT_SIGNATURE_MODE", "standard")).await;
    let body = fixture("root/image-created.e2e-rendered.json");
    assert_eq!(app.post_root(&body, "m1", false).await.status, 200);
    let reply = app.post_root(&body, "m2", true).await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.body["reason"], "invalid_signature");
}

#[actix_rt::test]
async fn without_arch_and_per_arch_fixtures() {
    let app = spawn_app().await;
    let cases = [
        (
            "root/image-created.synthetic-no-arch.json",
            "evt_noarch_0001",
            "library/nginx:1.25.4-root",
            "cr.root.io",
            None,
        ),
        (
            "root/image-created.unit-test-rendered.amd64.json",
            "evt1:amd64",
            "library/nginx:v1",
            "127.0.0.1:5000",
            Some("amd64"),
        ),
        (
            "root/image-created.unit-test-rendered.arm64.json",
            "evt1:arm64",
            "library/nginx:v1",
            "127.0.0.1:5000",
            Some("arm64"),
        ),
    ];
    for (i, (file, id, subject, host, arch)) in cases.iter().enumerate() {
        let body = fixture(file);
        assert_eq!(app.post_root(&body, &format!("m{i}"), i % 2 == 0).await.status, 200);
        let ev = app.events().pop().unwrap();
        let original = fixture_json(file);
        assert_matches(
            &ev,
            &json!({
                "id": id,
                "type": "dev.regbridge.artifact.pushed.v1",
                "source": original["source"],
                "subject": subject,
                "time": original["time"],
                "registry": "root",
                "origtype": "io.root.cr.image.created.v1",
                "partitionkey": "library/nginx",
                "data": {
                    "host": host,
                    "repository": "library/nginx",
                    "tag": original["data"]["image_tag"],
                    "digest": original["data"]["image_digest"],
                    "image": format!("{host}/{subject}"),
                    "platform": { "os": null, "architecture": arch },
                    "original": original,
                }
            }),
        );
    }
}

#[actix_rt::test]
async fn redelivery_keeps_ids_and_trace_context_is_continued() {
    let app = spawn_app().await;
    let body = fixture("root/image-created.unit-test-rendered.amd64.json");
    let first = app.post_root(&body, "whmsg_same", false).await;
    let again = app.post_root(&body, "whmsg_same", false).await;
    assert_eq!(first.body["events"], again.body["events"]);

    let ts = chrono::Utc::now().timestamp().to_string();
    let sig = sign_standard(ROOT_SECRET, "whmsg_tp", &ts, &body);
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let headers = [
        ("content-type", "application/cloudevents+json"),
        ("webhook-id", "whmsg_tp"),
        ("webhook-timestamp", ts.as_str()),
        ("webhook-signature", sig.as_str()),
        ("traceparent", parent),
        ("tracestate", "vendor=abc"),
    ];
    assert_eq!(app.post("/webhooks/root", &headers, body.clone()).await.status, 200);
    let events = app.events();
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| e["id"] == "evt1:amd64"));
    let tp = events[2]["traceparent"].as_str().unwrap();
    assert!(tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"), "{tp}");
    assert_ne!(tp, parent, "regbridge's own span is the event's parent");
    assert_eq!(events[2]["tracestate"], "vendor=abc");
}

#[actix_rt::test]
async fn unmapped_root_type_is_acknowledged_not_published() {
    let app = spawn_app().await;
    let body = br#"{"specversion":"1.0","type":"io.root.cr.image.deleted.v1","source":"https://cr.root.io","id":"x1","data":{}}"#;
    let reply = app.post_root(body, "m-unmapped", false).await;
    assert_eq!(reply.status, 202);
    assert_eq!(reply.body["status"], "ignored");
    assert_eq!(reply.body["origtype"], "io.root.cr.image.deleted.v1");
    assert!(app.events().is_empty());
}
