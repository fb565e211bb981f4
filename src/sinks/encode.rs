//! CloudEvents protocol bindings shared by the broker sinks: binary-mode headers, bodies and the
//! structured-mode JSON, so every broker carries the same attribute text.

use std::borrow::Cow;

use bytes::Bytes;

use super::{ContentMode, Delivery};
use crate::event::{Attribute, CloudEvent, DATA_CONTENT_TYPE};

/// `content-type` of a structured-mode message.
pub const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents+json; charset=utf-8";

/// The body and content type for `mode`. Binary mode shares the event's `data` bytes.
pub fn body(event: &CloudEvent, mode: ContentMode) -> (Bytes, &'static str) {
    match mode {
        ContentMode::Binary => (event.data().clone(), DATA_CONTENT_TYPE),
        ContentMode::Structured => (event.to_json().into(), STRUCTURED_CONTENT_TYPE),
    }
}

/// The message `content-type` of `mode`.
pub fn content_type(mode: ContentMode) -> &'static str {
    match mode {
        ContentMode::Binary => DATA_CONTENT_TYPE,
        ContentMode::Structured => STRUCTURED_CONTENT_TYPE,
    }
}

/// The size of `d` as a binding's message, for the sinks' limit checks: `framing` bytes, then a
/// header per binding header, each costing `header(name, value length)`, attribute headers being
/// named by `name`; then the body. The event's own trace context stands for the message's
/// trace headers, which have the same lengths (a W3C `traceparent` is fixed). `limit` only
/// spares rendering a structured body far below it.
pub fn message_size(
    d: &Delivery,
    framing: usize,
    name: fn(&Attribute) -> &'static str,
    header: impl Fn(&str, usize) -> usize,
    limit: usize,
) -> usize {
    let ev = &d.event;
    let mut size = framing + header("content-type", content_type(d.target.mode).len());
    size += ev.traceparent().map_or(0, |v| header("traceparent", v.len()));
    size += ev.tracestate().map_or(0, |v| header("tracestate", v.len()));
    if d.target.mode == ContentMode::Binary {
        size += ev.attributes().map(|(a, v)| header(name(a), v.len())).sum::<usize>();
    }
    size + body_len(ev, d.target.mode, limit.saturating_sub(size))
}

/// The length of [`body`] for size checks: exact, or an upper bound when that bound is at most
/// `within`, so a structured event is rendered only when it may come near a limit.
pub fn body_len(event: &CloudEvent, mode: ContentMode, within: usize) -> usize {
    match mode {
        ContentMode::Binary => event.data().len(),
        ContentMode::Structured => {
            // JSON escaping at most doubles an attribute value (control characters were refused
            // at normalization); a member's name, quotes and separators take under 64 bytes.
            let attributes: usize = event.attributes().map(|(_, v)| 2 * v.len() + 64).sum();
            let bound = event.data().len() + attributes + 256;
            if bound <= within {
                bound
            } else {
                event.to_json().len()
            }
        }
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
