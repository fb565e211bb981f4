//! CloudEvents protocol bindings shared by the broker sinks: binary-mode headers, bodies and the
//! structured-mode JSON, so every broker carries the same attribute text.

use chrono::SecondsFormat;
use cloudevents::event::Data;
use cloudevents::{AttributesReader, Event};

/// `content-type` of a structured-mode message.
pub const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json; charset=utf-8";

/// Every attribute and extension except `datacontenttype` (which travels as the protocol's own
/// content type), as `(name, value)` with the binding's text form. `time` is RFC 3339 in UTC with
/// `Z`, exactly as in the JSON format.
pub fn attributes(event: &Event) -> Vec<(&str, String)> {
    event
        .iter()
        .filter(|(name, _)| *name != "datacontenttype")
        .map(|(name, value)| {
            let text = match (name, event.time()) {
                ("time", Some(t)) => t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                _ => value.to_string(),
            };
            (name, text)
        })
        .collect()
}

/// The event's `data` as message body bytes (binary mode).
pub fn data(event: &Event) -> Vec<u8> {
    match event.data() {
        Some(Data::Json(v)) => serde_json::to_vec(v).expect("JSON values serialize"),
        Some(Data::String(s)) => s.clone().into_bytes(),
        Some(Data::Binary(b)) => b.clone(),
        None => Vec::new(),
    }
}

/// The whole event in the JSON format (structured mode).
pub fn structured(event: &Event) -> Vec<u8> {
    serde_json::to_vec(event).expect("events serialize")
}

/// The body and content type for `mode`.
pub fn body(event: &Event, mode: super::ContentMode) -> (Vec<u8>, String) {
    match mode {
        super::ContentMode::Binary => {
            (data(event), event.datacontenttype().unwrap_or("application/json").to_owned())
        }
        super::ContentMode::Structured => (structured(event), STRUCTURED_CONTENT_TYPE.to_owned()),
    }
}

/// The `partitionkey` extension (the repository), the message key on brokers that have one.
pub fn partition_key(event: &Event) -> Option<String> {
    event.extension("partitionkey").map(|v| v.to_string())
}

/// W3C trace context for a message's own `traceparent`/`tracestate` headers, which consumers'
/// OpenTelemetry propagators read: the publish span when traces are exported, else the trace the
/// webhook entered (the event's extension).
pub fn trace_headers(event: &Event) -> Vec<(&'static str, String)> {
    let (parent, state) = match crate::telemetry::trace::current() {
        Some(t) => (Some(t.traceparent), t.tracestate),
        None => (
            event.extension("traceparent").map(|v| v.to_string()),
            event.extension("tracestate").map(|v| v.to_string()),
        ),
    };
    [("traceparent", parent), ("tracestate", state)].into_iter().filter_map(|(k, v)| Some((k, v?))).collect()
}
