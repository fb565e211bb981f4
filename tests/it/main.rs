//! One integration-test binary: the real HTTP stack on a loopback port, fixtures in, CloudEvents
//! out (read back from the sink).

mod acr;
mod amqp;
mod batches;
mod bounds;
mod brokers;
mod cli;
mod cloudevents;
mod dedupe;
mod distribution;
mod dockerhub;
mod ecr;
mod errors;
mod fanout;
mod gar;
mod github;
mod handshakes;
mod harbor;
mod helpers;
mod jfrog;
mod kafka;
mod metrics;
mod msr;
mod nats;
mod nexus;
mod otel;
mod outage;
mod outbox;
mod properties;
mod quay;
mod root;
mod stalled;
mod tls;

use serde_json::Value;

/// Asserts every member of `expected` (recursively for objects) equals the event's; members the
/// expectation leaves out are not checked, so each test names exactly what it asserts.
#[track_caller]
pub fn assert_matches(actual: &Value, expected: &Value) {
    fn walk(actual: &Value, expected: &Value, path: &str) {
        match expected {
            Value::Object(map) => {
                for (k, v) in map {
                    let at = format!("{path}.{k}");
                    let a = actual.get(k).unwrap_or_else(|| panic!("{at} is missing in {actual:#}"));
                    walk(a, v, &at);
                }
            }
            other => assert_eq!(actual, other, "at {path}"),
        }
    }
    walk(actual, expected, "$");
}

/// Asserts the event is exactly `expected`: the same top-level attributes and the same `data`
/// keys (an attribute the expectation leaves out must be absent from the event), each equal to the
/// expectation's (`data.original`, `data.platform` and `data.scan` as whole values). The one
/// exception is `traceparent`, which every event carries with a fresh trace when the request sent
/// none: unless the expectation names it, it must be present and well-formed, and `tracestate`
/// absent.
#[track_caller]
pub fn assert_event(actual: &Value, expected: &Value) {
    use std::collections::BTreeSet;
    let keys = |v: &Value, at: &str| -> BTreeSet<String> {
        v.as_object().unwrap_or_else(|| panic!("{at} is no object: {v:#}")).keys().cloned().collect()
    };
    let mut want = keys(expected, "the expectation");
    if !want.contains("traceparent") {
        let traceparent =
            actual["traceparent"].as_str().unwrap_or_else(|| panic!("no traceparent in {actual:#}"));
        let parts: Vec<&str> = traceparent.split('-').collect();
        let hex =
            |s: &str, n: usize| s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        assert!(
            parts.len() == 4
                && parts[0] == "00"
                && hex(parts[1], 32)
                && hex(parts[2], 16)
                && hex(parts[3], 2),
            "malformed traceparent {traceparent}"
        );
        want.insert("traceparent".into());
    }
    assert_eq!(keys(actual, "the event"), want, "top-level attributes of {actual:#}");
    assert_eq!(
        keys(&actual["data"], "data"),
        keys(&expected["data"], "expected data"),
        "data keys of {actual:#}"
    );
    for (k, v) in expected.as_object().unwrap() {
        if k == "data" {
            for (dk, dv) in v.as_object().unwrap() {
                assert_eq!(&actual["data"][dk], dv, "at $.data.{dk}");
            }
        } else {
            assert_eq!(&actual[k], v, "at $.{k}");
        }
    }
}

/// How a vendor's request carries its credential.
pub enum Credential<'a> {
    /// A header: name and value.
    Header(&'a str, String),
    /// A query parameter: name and value.
    Query(&'a str, String),
}

/// Posts `body` as the vendor would, first without its credential and then with `wrong` in its
/// place: each must be refused `401` as problem+json (`missing_*`, then `invalid_*`) and leave the
/// events file as it was. Then posts it with the credential and returns that reply.
pub async fn post_refused_then_accepted(
    app: &helpers::TestApp,
    what: &str,
    path: &str,
    headers: &[(&str, &str)],
    credential: &Credential<'_>,
    wrong: &str,
    body: &[u8],
) -> helpers::Reply {
    let size = || std::fs::metadata(&app.events_path).map_or(0, |m| m.len());
    let with = |value: Option<&str>| -> (String, Vec<(String, String)>) {
        let mut all: Vec<(String, String)> = headers.iter().map(|&(k, v)| (k.into(), v.into())).collect();
        let mut path = path.to_owned();
        match (credential, value) {
            (_, None) => {}
            (Credential::Header(name, _), Some(v)) => all.push(((*name).into(), v.into())),
            (Credential::Query(name, _), Some(v)) => {
                let sep = if path.contains('?') { '&' } else { '?' };
                path = format!("{path}{sep}{name}={v}");
            }
        }
        (path, all)
    };
    let before = size();
    for (attempt, value, reason) in [("missing", None, "missing_"), ("wrong", Some(wrong), "invalid_")] {
        let (path, all) = with(value);
        let all: Vec<(&str, &str)> = all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let reply = app.post(&path, &all, body.to_vec()).await;
        assert_eq!(reply.status, 401, "{what}, {attempt} credential: {:?}", reply.body);
        assert!(
            reply.header("content-type").is_some_and(|c| c.starts_with("application/problem+json")),
            "{what}, {attempt} credential: {:?}",
            reply.headers
        );
        assert_eq!(reply.body["type"], "urn:regbridge:problem:unauthorized", "{what}, {attempt} credential");
        let got = reply.body["reason"].as_str().unwrap_or_default();
        assert!(got.starts_with(reason), "{what}, {attempt} credential: reason {got}");
        assert_eq!(size(), before, "{what}, {attempt} credential: something was published");
    }
    let value = match credential {
        Credential::Header(_, v) | Credential::Query(_, v) => v.as_str(),
    };
    let (path, all) = with(Some(value));
    let all: Vec<(&str, &str)> = all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    app.post(&path, &all, body.to_vec()).await
}

/// A payload acknowledged without an event (a package that is no container image): `202
/// not_an_artifact`, and the events file still holds the `published` events before it.
#[track_caller]
pub fn assert_not_an_artifact(app: &helpers::TestApp, file: &str, reply: &helpers::Reply, published: usize) {
    assert_eq!(reply.status, 202, "{file}: {:?}", reply.body);
    let want = serde_json::json!({ "status": "ignored", "reason": "not_an_artifact", "skipped": 1 });
    assert_eq!(reply.body, want, "{file}");
    assert_eq!(app.events().len(), published, "{file}");
}

/// The `.json` files under `tests/fixtures/<dir>`, its subfolders included (`converted/x.json`),
/// sorted: what a vendor's case table must cover.
pub fn json_files(dir: &str) -> Vec<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(dir);
    let mut dirs = vec![root.clone()];
    let mut out = Vec::new();
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                out.push(path.strip_prefix(&root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

/// Every vendor payload in `tests/fixtures/other/` is posted by some test of this binary (each
/// vendor's own file asserts it attribute by attribute). Fragments (`event-fragment.*`) are not
/// payloads: the unit tests wrap them in an envelope.
#[test]
fn every_vendor_payload_has_a_test() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let sources: String = std::fs::read_dir(root.join("it"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    let mut dirs = vec![root.join("fixtures/other")];
    let mut payloads = 0;
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            if path.is_dir() {
                dirs.push(path);
            } else if name.ends_with(".json") && !name.starts_with("event-fragment.") {
                assert!(sources.contains(&name), "no integration test posts {}", path.display());
                payloads += 1;
            }
        }
    }
    assert!(payloads > 80, "only {payloads} payloads found");
}
