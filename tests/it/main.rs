//! One integration-test binary: the real HTTP stack on a loopback port, fixtures in, CloudEvents
//! out (read back from the sink).

mod acr;
mod amqp;
mod batches;
mod bounds;
mod brokers;
mod cli;
mod cloudevents;
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
mod quay;
mod root;
mod stalled;

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
