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
    assert_eq!(app.events().len(), 1000, "one event per resource in the events file");
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

/// The peak resident set the running binary (a debug build) must stay under after the worst
/// payloads, the densest JSON tree aside: 82–89 MiB measured (four runs), the CloudEvents batch
/// of 1,000 nested events the highest; about half again over it: a bound on the design, not a
/// benchmark.
const BOUND_MIB: u64 = 135;
/// The same after the densest JSON tree a body can make too (a megabyte of `[[…]]`, ~110 MiB of
/// `Value`s on its own): 194–214 MiB measured (six runs).
const DENSE_BOUND_MIB: u64 = 320;

const DISTRIBUTION_AUTH: &str = "Bearer bounds-distribution";
const ACR_AUTH: &str = "Bearer bounds-acr";
const CLOUDEVENTS_AUTH: &str = "Bearer bounds-cloudevents";

/// The body `make(pad)` builds with the largest `pad` that keeps it within `target` bytes
/// (`make` grows about linearly with `pad`).
fn near(target: usize, make: impl Fn(usize) -> Vec<u8>) -> Vec<u8> {
    let (bare, slope) = (make(0).len(), make(2).len() - make(1).len());
    let mut pad = target.saturating_sub(bare) / slope.max(1);
    loop {
        let body = make(pad);
        if body.len() <= target {
            assert!(body.len() > target - target / 50, "{} bytes, short of {target}", body.len());
            return body;
        }
        pad -= 1;
    }
}

/// A Distribution envelope of `n` manifest pushes, three fields of each `pad` bytes longer.
fn distribution(n: usize, pad: usize) -> Vec<u8> {
    let events: Vec<Value> = (0..n)
        .map(|i| {
            let repository = format!("team/app-{}", "r".repeat(pad));
            json!({
                "id": format!("0b6a1f3e-0000-4000-8000-{i:012x}"),
                "timestamp": "2026-01-01T00:00:00.123456789Z",
                "action": "push",
                "target": {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": format!("sha256:{i:064x}"),
                    "size": 1234,
                    "length": 1234,
                    "repository": repository,
                    "url": format!("https://registry.example.com/v2/{repository}/manifests/sha256:{i:064x}"),
                    "tag": format!("v{i}"),
                },
                "request": {
                    "id": format!("req-{i}"),
                    "addr": "10.0.0.1:4711",
                    "host": "registry.example.com",
                    "method": "PUT",
                    "useragent": format!("docker/27.0 {}", "u".repeat(pad)),
                },
                "actor": { "name": "ci" },
                "source": { "addr": "registry-0:5000", "instanceID": "c5f7d0a1" },
            })
        })
        .collect();
    json!({ "events": events }).to_string().into_bytes()
}

/// An Event Grid (Event Grid schema) array of `n` ACR image pushes, two fields of each `pad`
/// bytes longer.
fn event_grid(n: usize, pad: usize) -> Vec<u8> {
    let events: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "id": format!("831e1650-001e-001b-66ab-{i:012x}"),
                "topic": "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/myreg",
                "subject": format!("app:v{i}"),
                "eventType": "Microsoft.ContainerRegistry.ImagePushed",
                "eventTime": "2026-01-01T00:00:00.6549614Z",
                "data": {
                    "id": format!("31c51664-e5bd-416a-a5df-{i:012x}"),
                    "timestamp": "2026-01-01T00:00:00.276585742Z",
                    "action": "push",
                    "target": {
                        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                        "size": 3023,
                        "digest": format!("sha256:{i:064x}"),
                        "length": 3023,
                        "repository": format!("team/app-{}", "r".repeat(pad)),
                        "tag": format!("v{i}"),
                    },
                    "request": {
                        "id": format!("7c66f28b-de19-40a4-821c-{i:012x}"),
                        "host": "myreg.azurecr.io",
                        "method": "PUT",
                        "useragent": format!("docker/27.0 {}", "u".repeat(pad)),
                    }
                },
                "dataVersion": "1.0",
                "metadataVersion": "1",
            })
        })
        .collect();
    Value::Array(events).to_string().into_bytes()
}

/// A CloudEvents batch of `n` Zot image pushes, two fields of each `pad` bytes longer, with
/// `extra` (JSON text) as a member `x` of each event's data.
fn cloudevents(n: usize, pad: usize, extra: &str) -> Vec<u8> {
    let extra: Value = serde_json::from_str(extra).unwrap();
    let events: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "specversion": "1.0",
                "id": format!("0b6a1f3e-0000-4000-8000-{i:012x}"),
                "source": "https://zot.example.com",
                "type": "zotregistry.image.updated",
                "time": "2026-01-01T00:00:00.123456789Z",
                "datacontenttype": "application/json",
                "data": {
                    "name": format!("team/app-{}", "r".repeat(pad)),
                    "reference": format!("v{i}"),
                    "digest": format!("sha256:{i:064x}"),
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "manifest": format!("{{\"schemaVersion\":2,\"note\":\"{}\"}}", "m".repeat(pad)),
                    "x": extra,
                }
            })
        })
        .collect();
    Value::Array(events).to_string().into_bytes()
}

/// `[[[…0…]]]`, `depth` arrays deep.
fn nested(depth: usize) -> String {
    format!("{}0{}", "[".repeat(depth), "]".repeat(depth))
}

/// Sends `head` (a request head without its blank line) and `body` on a connection of its own,
/// and reads the status line of the answer.
fn raw_status(base: &str, head: &str, body: &[u8]) -> u16 {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(base.trim_start_matches("http://")).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let request =
        [head.as_bytes(), format!("content-length: {}\r\n\r\n", body.len()).as_bytes(), body].concat();
    conn.write_all(&request).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(2).any(|w| w == b"\r\n") {
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) => panic!("reading the answer: {e} (after {answer:?})"),
        }
    }
    let line = String::from_utf8_lossy(&answer).lines().next().unwrap_or_default().to_owned();
    line.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {line:?}"))
}

/// Posts `body` to `/webhooks/{endpoint}` with the endpoint's credential (the ones
/// `peak_memory_stays_bounded_whatever_the_payload` starts the binary with) and returns the status,
/// logging it with the process's peak resident set so far.
async fn post(
    client: &awc::Client,
    base: &str,
    endpoint: &str,
    content_type: &str,
    body: Vec<u8>,
    what: &str,
    pid: u32,
) -> u16 {
    assert!(body.len() <= 1 << 20, "{what}: {} bytes", body.len());
    let mut req =
        client.post(format!("{base}/webhooks/{endpoint}")).insert_header(("content-type", content_type));
    req = match endpoint {
        "msr" => client
            .post(format!("{base}/webhooks/msr?token={MSR_TOKEN}"))
            .insert_header(("content-type", content_type)),
        "root" => {
            let ts = chrono::Utc::now().timestamp().to_string();
            let sig = sign_standard(ROOT_SECRET, "whmsg_bounds", &ts, &body);
            req.insert_header(("webhook-id", "whmsg_bounds"))
                .insert_header(("webhook-timestamp", ts))
                .insert_header(("webhook-signature", sig))
        }
        "distribution" => req.insert_header(("authorization", DISTRIBUTION_AUTH)),
        "acr" => req.insert_header(("authorization", ACR_AUTH)),
        "cloudevents" => req.insert_header(("authorization", CLOUDEVENTS_AUTH)),
        _ => req.insert_header(("authorization", HARBOR_AUTH)),
    };
    let (size, started) = (body.len(), std::time::Instant::now());
    let mut res = req.send_body(body).await.unwrap();
    let status = res.status().as_u16();
    let answer = res.body().limit(1 << 20).await.unwrap_or_default();
    eprintln!(
        "{what}: {size} bytes, {status} in {:?}, peak RSS so far {} MiB: {}",
        started.elapsed(),
        peak_rss_kib(pid) / 1024,
        String::from_utf8_lossy(&answer[..answer.len().min(200)])
    );
    status
}

/// The worst payloads that fit the 1 MiB body limit, for every dialect that reads a batch, against
/// the real binary: its peak resident set stays within `BOUND_MIB`, and `DENSE_BOUND_MIB` after
/// the densest JSON tree. Many headers get the HTTP layer's 431, and the process serves on.
#[actix_rt::test]
async fn peak_memory_stays_bounded_whatever_the_payload() {
    /// "Near the limit": what a payload is filled up to.
    const NEAR: usize = 1_000_000;
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl").display().to_string();
    let (mut child, base) = start_binary(
        &[
            ("REGBRIDGE_ROOT_SECRETS", ROOT_SECRET),
            ("REGBRIDGE_HARBOR_AUTH", HARBOR_AUTH),
            ("REGBRIDGE_MSR_TOKENS", MSR_TOKEN),
            ("REGBRIDGE_DISTRIBUTION_AUTH", DISTRIBUTION_AUTH),
            ("REGBRIDGE_ACR_AUTH", ACR_AUTH),
            ("REGBRIDGE_CLOUDEVENTS_AUTH", CLOUDEVENTS_AUTH),
            ("REGBRIDGE_FILE_SINK", &events),
        ],
        dir.path(),
    )
    .await;
    let client = awc::Client::builder().timeout(Duration::from_secs(30)).finish();
    let deep = nested(500_000);
    let strings = format!(
        r#"{{"type":"TAG_PUSH","createdAt":"2026-01-01T00:00:00Z","contents":{{"namespace":"a","repository":"b","tag":"v1","note":"{}"}}}}"#,
        "s".repeat(1_000_000)
    );
    // Root reads its fixed shape straight from the body, skipping the members it does not know
    // (serde skips without a depth limit): the nesting check before any dialect refuses it, as
    // `data.original` would carry it deeper than consumers' parsers go (serde_json stops at 128).
    let root_deep = format!(
        r#"{{"specversion":"1.0","type":"io.root.cr.image.created.v1","source":"https://cr.root.io","id":"evt_deep","data":{{"image_repo":"python","image_tag":"3.13","x":{deep}}}}}"#
    );
    const HARBOR: &str = "harbor";
    const JSON: &str = "application/json";
    const BATCH: &str = "application/cloudevents-batch+json";
    // (what, endpoint, content type, body, the answers it may get, events it publishes)
    #[allow(clippy::type_complexity)]
    let cases: Vec<(&str, &str, &str, Vec<u8>, &[u16], usize)> = vec![
        ("1,000 resources near the limit", HARBOR, JSON, harbor(1000, 900, 10), &[200], 1000),
        ("3,000 resources", HARBOR, JSON, harbor(3000, 200, 10), &[413], 0),
        ("a heavy envelope around 1,000 resources", HARBOR, JSON, harbor(1000, 0, 900_000), &[413], 0),
        (
            "nesting half a million deep",
            HARBOR,
            JSON,
            format!("{{\"type\":\"PUSH_ARTIFACT\",\"x\":{deep}}}").into_bytes(),
            &[400],
            0,
        ),
        ("one string of a megabyte", "msr", JSON, strings.into_bytes(), &[200], 1),
        (
            "a Distribution envelope of 1,000 manifests near the limit",
            "distribution",
            "application/vnd.docker.distribution.events.v2+json",
            near(NEAR, |pad| distribution(1000, pad)),
            &[200],
            1000,
        ),
        (
            "a Distribution entry nesting half a million deep",
            "distribution",
            JSON,
            format!(r#"{{"events":[{{"action":"push","target":{{"x":{deep}}}}}]}}"#).into_bytes(),
            &[400],
            0,
        ),
        ("an Event Grid array of 1,000 ACR pushes near the limit", "acr", JSON, near(NEAR, |pad| event_grid(1000, pad)), &[200], 1000),
        (
            "an Event Grid event nesting half a million deep",
            "acr",
            JSON,
            format!(r#"[{{"id":"1","eventType":"Microsoft.ContainerRegistry.ImagePushed","data":{deep}}}]"#)
                .into_bytes(),
            &[400],
            0,
        ),
        ("a CloudEvents batch of 1,000 near the limit", "cloudevents", BATCH, near(NEAR, |pad| cloudevents(1000, pad, "0")), &[200], 1000),
        (
            // Within the nesting allowed (100; the batch and the event around it are 4).
            "a CloudEvents batch of 1,000, each nesting 95 deep",
            "cloudevents",
            BATCH,
            near(NEAR, |pad| cloudevents(1000, pad, &nested(95))),
            &[200],
            1000,
        ),
        (
            "a CloudEvents batch nesting half a million deep",
            "cloudevents",
            BATCH,
            format!(
                r#"[{{"specversion":"1.0","id":"1","source":"s","type":"zotregistry.image.updated","data":{{"name":"a","x":{deep}}}}}]"#
            )
            .into_bytes(),
            &[400],
            0,
        ),
        ("a Root event nesting half a million deep where Root does not read", "root", "application/cloudevents+json", root_deep.into_bytes(), &[400], 0),
    ];
    let mut published = 0;
    let pid = child.id();
    for (what, endpoint, content_type, body, want, events) in cases {
        let status = post(&client, &base, endpoint, content_type, body, what, pid).await;
        assert!(want.contains(&status), "{what}: {status}");
        if status == 200 {
            published += events;
        }
    }
    // Many headers: the HTTP layer (at most 96) refuses them before regbridge sees the request,
    // and goes on serving.
    let legitimate = harbor(1, 0, 0);
    let mut head = format!("POST /webhooks/harbor HTTP/1.1\r\nhost: x\r\ncontent-type: {JSON}\r\nauthorization: {HARBOR_AUTH}\r\n");
    for i in 0..200 {
        head += &format!("x-filler-{i}: {}\r\n", "f".repeat(100));
    }
    assert_eq!(raw_status(&base, &head, &legitimate), 431, "200 headers");
    let res = client
        .post(format!("{base}/webhooks/harbor"))
        .insert_header(("content-type", JSON))
        .insert_header(("authorization", HARBOR_AUTH))
        .send_body(legitimate)
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200, "a legitimate request after the refused one");
    published += 1;
    let peak = peak_rss_kib(pid) / 1024;
    eprintln!("peak RSS after the worst payloads but the densest tree: {peak} MiB");
    assert!(peak < BOUND_MIB, "peak RSS {peak} MiB over the bound of {BOUND_MIB} MiB");

    // The densest JSON tree within the nesting allowed, in a member no dialect reads:
    // `[[[…0…]]]` costs a 4-slot `Vec<Value>` (128 bytes and the allocator's own) per 2 bytes.
    let what = "a Distribution envelope around a megabyte of arrays nested 98 deep";
    let dense = near(NEAR, |n| {
        let mut envelope: Value = serde_json::from_slice(&distribution(1, 0)).unwrap();
        envelope["x"] = Value::Array(vec![serde_json::from_str(&nested(98)).unwrap(); n]);
        envelope.to_string().into_bytes()
    });
    assert_eq!(post(&client, &base, "distribution", JSON, dense, what, pid).await, 200, "{what}");
    published += 1;
    let peak = peak_rss_kib(pid) / 1024;
    eprintln!("peak RSS after the worst payloads: {peak} MiB");
    assert!(peak < DENSE_BOUND_MIB, "peak RSS {peak} MiB over the bound of {DENSE_BOUND_MIB} MiB");
    sigterm(&child);
    assert!(wait_exit(&mut child).await.success());
    let lines = std::fs::read_to_string(&events).unwrap().lines().count();
    assert_eq!(lines, published, "every accepted request's events, nothing of a refused one");
}

/// A CloudEvents batch of Harbor events, each fanning out to as many resources as the
/// request's bounds allow on its own: the bounds must hold for the batch as a whole before its
/// parts are built, not for each entry (on a 1 MB body, 140 entries of 1,000 resources each
/// took the process to 1.3 GB before the 413).
#[actix_rt::test]
async fn a_cloudevents_batch_of_harbor_fan_outs_is_bounded_as_a_whole() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl").display().to_string();
    let (mut child, base) = start_binary(
        &[("REGBRIDGE_CLOUDEVENTS_AUTH", CLOUDEVENTS_AUTH), ("REGBRIDGE_FILE_SINK", &events)],
        dir.path(),
    )
    .await;
    // Each entry's parts just under 4 MiB (1,000 × its ~3.9 KB around the resources).
    let entries: Vec<Value> = (0..140)
        .map(|e| {
            json!({
                "specversion": "1.0", "id": format!("e{e}"), "source": "/projects/1/webhook/policies/1",
                "type": "harbor.artifact.pushed", "time": "2026-01-01T00:00:00Z",
                "operator": "o".repeat(3900),
                "data": {
                    "resources": vec![json!({}); 1000],
                    "repository": { "name": "app", "namespace": "lib", "repo_full_name": "lib/app" }
                }
            })
        })
        .collect();
    let body = Value::Array(entries).to_string().into_bytes();
    assert!(body.len() <= 1 << 20, "{} bytes", body.len());
    let res = awc::Client::builder()
        .timeout(Duration::from_secs(60))
        .finish()
        .post(format!("{base}/webhooks/cloudevents"))
        .insert_header(("content-type", "application/cloudevents-batch+json"))
        .insert_header(("authorization", CLOUDEVENTS_AUTH))
        .send_body(body)
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 413);
    let peak = peak_rss_kib(child.id()) / 1024;
    sigterm(&child);
    assert!(wait_exit(&mut child).await.success());
    assert!(peak < BOUND_MIB, "peak RSS {peak} MiB over the bound of {BOUND_MIB} MiB");
}
