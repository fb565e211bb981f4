//! CloudEvents protocol bindings shared by the broker sinks: binary-mode headers, bodies and the
//! structured-mode JSON, so every broker carries the same attribute text.

use std::borrow::Cow;

use bytes::Bytes;

use crate::event::{CloudEvent, DATA_CONTENT_TYPE};

/// `content-type` of a structured-mode message.
pub const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json; charset=utf-8";

/// The body and content type for `mode`. Binary mode shares the event's `data` bytes.
pub fn body(event: &CloudEvent, mode: super::ContentMode) -> (Bytes, &'static str) {
    match mode {
        super::ContentMode::Binary => (event.data().clone(), DATA_CONTENT_TYPE),
        super::ContentMode::Structured => (event.to_json().into(), STRUCTURED_CONTENT_TYPE),
    }
}

/// W3C trace context for a message's own `traceparent`/`tracestate` headers, which consumers'
/// OpenTelemetry propagators read: the publish span when traces are exported, else the trace the
/// webhook entered (the event's extension).
pub fn trace_headers(event: &CloudEvent) -> impl Iterator<Item = (&'static str, Cow<'_, str>)> {
    let (parent, state) = match crate::telemetry::trace::current() {
        Some(t) => (Some(Cow::Owned(t.traceparent)), t.tracestate.map(Cow::Owned)),
        None => (event.traceparent().map(Cow::Borrowed), event.tracestate().map(Cow::Borrowed)),
    };
    [("traceparent", parent), ("tracestate", state)].into_iter().filter_map(|(k, v)| Some((k, v?)))
}
