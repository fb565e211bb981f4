//! One integration-test binary: the real HTTP stack on a loopback port, fixtures in, CloudEvents
//! out (read back from the sink).

mod amqp;
mod bounds;
mod brokers;
mod cli;
mod errors;
mod fanout;
mod harbor;
mod helpers;
mod kafka;
mod metrics;
mod msr;
mod nats;
mod otel;
mod outage;
mod outbox;
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
