//! What one request may become: at most REGBRIDGE_MAX_EVENTS_PER_REQUEST events, output in
//! proportion to its body (each fanned-out event carries its own part of the payload), and
//! bounded memory on the running process whatever the payload.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

/// A Harbor push listing `n` resources (each about `pad` bytes larger than bare), and an
/// `operator` of `operator` bytes around them.
fn harbor(n: usize, pad: usize, operator: usize) -> Vec<u8> {
    let resources: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "digest": format!("sha256:{i:064x}"),
                "tag": format!("v{i}-{}", "t".repeat(pad)),
                "resource_url": format!("harbor.example.com/lib/app:v{i}"),
            })
        })
        .collect();
    json!({
        "type": "PUSH_ARTIFACT",
        "occur_at": 1_700_000_000,
        "operator": "o".repeat(operator),
        "event_data": {
            "resources": resources,
            "repository": { "name": "app", "namespace": "lib", "repo_full_name": "lib/app" }
        }
    })
    .to_string()
    .into_bytes()
}

#[actix_rt::test]
async fn a_3000_resource_payload_is_refused_413_and_publishes_nothing() {
    let app = spawn_app().await;
    let body = harbor(3000, 120, 10);
    assert!(body.len() > 600_000 && body.len() < 1 << 20, "{}", body.len());
    let r = app.post_harbor(&body, "application/json").await;
    assert_eq!(r.status, 413, "{:?}", r.body);
    assert_eq!(r.body["type"], "urn:regbridge:problem:payload-too-large");
    assert_eq!(r.body["reason"], "too_many_events");
    assert!(r.body["detail"].as_str().unwrap().contains("3000 events"), "{:?}", r.body);
    assert!(app.events().is_empty(), "nothing of a refused request is published");
}

#[actix_rt::test]
async fn a_1000_resource_payload_writes_about_its_body_once_each_event_with_its_own_resource() {
    let app = spawn_app().await;
    let body = harbor(1000, 120, 10);
    let r = app.post_harbor(&body, "application/json").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["events"].as_array().unwrap().len(), 1000);
    // The body about once, plus what every event carries of its own (attributes and normalized
    // fields, about 1.2 KB here): not the body a thousand times over.
    let written = std::fs::metadata(&app.events_path).unwrap().len() as usize;
    assert!(written < body.len() + 1000 * 1600, "{written} bytes written for a body of {}", body.len());
    let sent: Value = serde_json::from_slice(&body).unwrap();
    for (i, ev) in app.events().iter().enumerate() {
        let original = &ev["data"]["original"];
        assert_eq!(
            original["event_data"]["resources"],
            json!([sent["event_data"]["resources"][i]]),
            "event {i}"
        );
        assert_eq!(original["operator"], sent["operator"]);
        assert_eq!(ev["data"]["tag"], sent["event_data"]["resources"][i]["tag"]);
    }
}

#[actix_rt::test]
async fn events_that_would_carry_the_payload_many_times_over_are_refused_413() {
    let app = spawn_app().await;
    // 600 KB around 10 resources: 6 MB of parts, over 4 × the 1 MiB body limit.
    let r = app.post_harbor(&harbor(10, 0, 600_000), "application/json").await;
    assert_eq!(r.status, 413, "{:?}", r.body);
    assert_eq!(r.body["reason"], "event_too_large");
    assert!(app.events().is_empty());
    // The same weight around one resource is one event and goes through.
    assert_eq!(app.post_harbor(&harbor(1, 0, 600_000), "application/json").await.status, 200);
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The worst payloads that fit the 1 MiB body limit, against the real binary: its peak resident
/// set stays within tens of MB.
#[actix_rt::test]
async fn peak_memory_stays_bounded_whatever_the_payload() {
    /// Generous over the ~50 MB measured: a bound on the design, not a benchmark.
    const BOUND_MIB: u64 = 120;
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl").display().to_string();
    let (mut child, base) = start_binary(
        &[
            ("REGBRIDGE_HARBOR_AUTH", HARBOR_AUTH),
            ("REGBRIDGE_MSR_TOKENS", MSR_TOKEN),
            ("REGBRIDGE_FILE_SINK", &events),
        ],
        dir.path(),
    )
    .await;
    let client = awc::Client::builder().timeout(Duration::from_secs(30)).finish();
    let nested =
        format!("{{\"type\":\"PUSH_ARTIFACT\",\"x\":{}{}}}", "[".repeat(500_000), "]".repeat(500_000));
    let strings = format!(
        r#"{{"type":"TAG_PUSH","createdAt":"2026-01-01T00:00:00Z","contents":{{"namespace":"a","repository":"b","tag":"v1","note":"{}"}}}}"#,
        "s".repeat(1_000_000)
    );
    let cases: Vec<(&str, Vec<u8>, &[u16])> = vec![
        ("1,000 resources near the limit", harbor(1000, 900, 10), &[200]),
        ("3,000 resources", harbor(3000, 200, 10), &[413]),
        ("a heavy envelope around 1,000 resources", harbor(1000, 0, 900_000), &[413]),
        ("nesting half a million deep", nested.into_bytes(), &[400]),
        ("one string of a megabyte", strings.into_bytes(), &[200]),
    ];
    for (what, body, want) in cases {
        assert!(body.len() <= 1 << 20, "{what}: {} bytes", body.len());
        let path = if what.contains("string") {
            format!("/webhooks/msr?token={MSR_TOKEN}")
        } else {
            "/webhooks/harbor".into()
        };
        let res = client
            .post(format!("{base}{path}"))
            .insert_header(("content-type", "application/json"))
            .insert_header(("authorization", HARBOR_AUTH))
            .send_body(body)
            .await
            .unwrap();
        assert!(want.contains(&res.status().as_u16()), "{what}: {}", res.status());
    }
    // Many headers: the HTTP layer refuses them before regbridge sees the request.
    let mut req =
        client.post(format!("{base}/webhooks/harbor")).insert_header(("authorization", HARBOR_AUTH));
    for i in 0..200 {
        req = req.insert_header((format!("x-filler-{i}"), "f".repeat(100)));
    }
    let status = req.send_body(harbor(1, 0, 0)).await.map(|r| r.status().as_u16()).unwrap_or(0);
    assert!(status == 0 || status == 431 || status == 400, "{status}");

    let peak = peak_rss_kib(child.id()) / 1024;
    assert!(peak < BOUND_MIB, "peak RSS {peak} MiB over the bound of {BOUND_MIB} MiB");
    eprintln!("peak RSS after the worst payloads: {peak} MiB");
    sigterm(&child);
    assert!(wait_exit(&mut child).await.success());
}
