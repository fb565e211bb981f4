//! OpenTelemetry traces: the OTLP tracer, and W3C trace context for requests and messages.

use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::http::header::{HeaderMap, HeaderName};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, Tracer};
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::{OpenTelemetryLayer, OpenTelemetrySpanExt};

static ENABLED: AtomicBool = AtomicBool::new(false);

pub(super) fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether spans are exported (an OTLP endpoint is configured).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// A batch OTLP span exporter; endpoint, protocol, headers and timeout come from `OTEL_*`.
pub(super) fn provider(resource: Resource) -> Result<SdkTracerProvider, String> {
    let exporter =
        opentelemetry_otlp::SpanExporter::builder().with_http().build().map_err(|e| e.to_string())?;
    Ok(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build())
}

pub(super) fn layer<S>(provider: &SdkTracerProvider) -> OpenTelemetryLayer<S, Tracer>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer("regbridge"))
}

/// The trace a request belongs to, as stamped on its events.
#[derive(Clone, Debug)]
pub struct TraceContext {
    pub traceparent: String,
    pub tracestate: Option<String>,
    /// 32 hex digits, for log correlation.
    pub trace_id: String,
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

fn from_span_context(sc: &SpanContext) -> TraceContext {
    let state = sc.trace_state().header();
    TraceContext {
        traceparent: format!("00-{}-{}-{:02x}", sc.trace_id(), sc.span_id(), sc.trace_flags().to_u8()),
        tracestate: (!state.is_empty()).then_some(state),
        trace_id: sc.trace_id().to_string(),
    }
}

/// Continues the caller's trace (W3C `traceparent`/`tracestate`) in `span`, the request's server
/// span, and returns the context its events carry. Without OTLP the same W3C semantics are kept
/// by hand: the caller's trace id continues under a new span id, or a new trace starts.
pub fn start_request(span: &tracing::Span, headers: &HeaderMap) -> TraceContext {
    if enabled() {
        let parent = TraceContextPropagator::new().extract(&Headers(headers));
        let _ = span.set_parent(parent);
        let sc = span.context().span().span_context().clone();
        if sc.is_valid() {
            return from_span_context(&sc);
        }
    }
    manual(headers)
}

/// The current span's context, when spans are exported: what a message's own `traceparent`
/// header carries, so a consumer's span is the child of the publish span.
pub fn current() -> Option<TraceContext> {
    if !enabled() {
        return None;
    }
    let sc = tracing::Span::current().context().span().span_context().clone();
    sc.is_valid().then(|| from_span_context(&sc))
}

fn manual(headers: &HeaderMap) -> TraceContext {
    // Fixed names: a `&str` would be parsed into a header name on every request.
    const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
    const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
    let header = |name: HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let incoming = header(TRACEPARENT).and_then(parse_traceparent);
    // `tracestate` belongs to the trace it came with; without a valid parent it is dropped.
    // A tab is optional whitespace there; as a space it stays so in a CloudEvents attribute, which
    // may hold no control character.
    let tracestate =
        incoming.as_ref().and(header(TRACESTATE)).filter(|s| !s.is_empty()).map(|s| s.replace('\t', " "));
    // `00-<trace id>-<span id>-<flags>`, written in place: `format!` with `{:x}` costs more
    // than everything else here.
    let mut tp = *b"00-00000000000000000000000000000000-0000000000000000-01";
    match &incoming {
        Some((trace_id, flags)) => {
            tp[3..35].copy_from_slice(trace_id.as_bytes());
            tp[53..].copy_from_slice(flags.as_bytes());
        }
        None => {
            hex_into(random_id(), &mut tp[3..19]);
            hex_into(random_id(), &mut tp[19..35]);
        }
    }
    hex_into(random_id(), &mut tp[36..52]);
    let traceparent = String::from_utf8(tp.to_vec()).expect("ASCII hex and dashes");
    TraceContext { trace_id: traceparent[3..35].to_owned(), traceparent, tracestate }
}

/// `id` as 16 lowercase hex digits into `out`.
fn hex_into(id: u64, out: &mut [u8]) {
    hex::encode_to_slice(id.to_be_bytes(), out).expect("16 hex digits fit");
}

/// A non-zero random 64-bit id from a per-thread generator (SplitMix64) seeded once from the OS.
/// Trace and span ids need uniqueness, not secrecy; a `getrandom` system call per id cost more
/// than the rest of the trace handling together.
fn random_id() -> u64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let mut seed = [0u8; 8];
            if getrandom::fill(&mut seed).is_err() {
                // No OS entropy: time and thread differ between threads and restarts.
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
                seed = (nanos ^ (&seed as *const _ as u64)).to_le_bytes();
            }
            u64::from_le_bytes(seed)
        });
    }
    STATE.with(|state| loop {
        let next = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        state.set(next);
        let mut z = next;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        if z != 0 {
            return z;
        }
    })
}

fn parse_traceparent(v: &str) -> Option<(String, String)> {
    let mut parts = v.trim().split('-');
    let (version, trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let valid = version == "00"
        && parts.next().is_none()
        && hex(trace, 32)
        && hex(parent, 16)
        && hex(flags, 2)
        && trace.bytes().any(|b| b != b'0')
        && parent.bytes().any(|b| b != b'0');
    valid.then(|| (trace.to_owned(), flags.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_traces_are_valid_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let t = manual(&HeaderMap::new());
            assert!(parse_traceparent(&t.traceparent).is_some(), "{}", t.traceparent);
            assert!(t.traceparent.contains(&t.trace_id));
            assert!(seen.insert(t.trace_id));
        }
    }

    #[test]
    fn an_incoming_trace_continues_under_a_new_span() {
        let mut headers = HeaderMap::new();
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        headers.insert("traceparent".parse().unwrap(), parent.parse().unwrap());
        headers.insert("tracestate".parse().unwrap(), "a=1,\tb=2".parse().unwrap());
        let t = manual(&headers);
        assert_eq!(t.tracestate.as_deref(), Some("a=1, b=2"));
        assert_eq!(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(t.traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(!t.traceparent.contains("00f067aa0ba902b7"));
    }
}
