//! The webhook handler: endpoint → limits → verify → normalize → route → deliver, in that order.

use std::cell::Cell;
use std::sync::Arc;

use actix_web::http::{header, ConnectionType};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::BytesMut;
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::json;
use tracing::field::Empty;
use tracing::Instrument;

use super::client::client_address;
use super::limits::{ConnectionSlot, Sender};
use super::{EndpointEntry, IngressError, State};
use crate::dedupe;
use crate::deliver::{Delivered, Queued};
use crate::dialects::{self, Handshake, MediaType, Normalization, Normalized};
use crate::event::{self, CloudEvent, Envelope};
use crate::route::RouteInput;
use crate::sinks::Delivery;
use crate::telemetry::names;
use crate::telemetry::trace::{self, TraceContext};
use crate::verify::{ClientCertificate, UnverifiedRequest, Verifier};

pub async fn webhook(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<State>,
) -> Result<HttpResponse, IngressError> {
    let started = std::time::Instant::now();
    // Configured endpoints have static routes (no `{endpoint}` segment to extract); any other name
    // comes through the pattern and is refused below.
    let name = match req.match_info().get("endpoint") {
        Some(n) => n,
        None => req.path().strip_prefix("/webhooks/").unwrap_or_default(),
    };
    // Unknown names are not used as labels: a scanner probing random paths must not grow the
    // metric series without bound.
    let entry = state.endpoints.get(name);
    let (label, registry) = match entry {
        Some(e) => (name, e.endpoint.dialect.name),
        None => ("unknown", "unknown"),
    };
    let span = tracing::debug_span!(
        "webhook",
        otel.name = "POST /webhooks/{endpoint}",
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = "POST",
        http.route = "/webhooks/{endpoint}",
        url.path = req.path(),
        http.response.status_code = Empty,
        error.type = Empty,
        regbridge.endpoint = label,
        regbridge.registry = registry,
        regbridge.outcome = Empty,
    );
    let trace = trace::start_request(&span, req.headers());
    state.in_flight_gauge.increment(1.0);
    let body_read = Cell::new(false);
    let result = handle(&req, name, payload, &state, &trace, &body_read).instrument(span.clone()).await;
    state.in_flight_gauge.decrement(1.0);

    let (status, reason) = match &result {
        Ok(res) => (res.status(), "accepted"),
        Err(e) => (actix_web::ResponseError::status_code(e), e.reason()),
    };
    span.record("http.response.status_code", status.as_u16());
    span.record("regbridge.outcome", reason);
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
        span.record("error.type", reason);
    }
    match entry {
        Some(e) if result.is_ok() && status.is_success() => {
            e.accepted.increment(1);
            e.duration.record(started.elapsed());
        }
        _ => {
            metrics::counter!(
                names::REQUESTS,
                "endpoint" => label.to_owned(),
                "status" => format!("{}xx", status.as_u16() / 100),
                "reason" => reason,
            )
            .increment(1);
            metrics::histogram!(names::REQUEST_DURATION, "endpoint" => label.to_owned())
                .record(started.elapsed());
        }
    }
    if let Err(e) = &result {
        // The query string is never logged: MSR's token rides in it.
        tracing::warn!(
            endpoint = label,
            status = status.as_u16(),
            reason,
            trace_id = %trace.trace_id,
            error = %e,
            "webhook rejected"
        );
    }
    match result {
        // Refused before its body was read: what follows on the connection is the rest of that
        // body, not a next request, so the connection goes with the answer. A stalled or hostile
        // sender holds nothing after its refusal.
        Err(e) if !body_read.get() && declared_length(&req) != Some(0) => {
            let mut res = actix_web::ResponseError::error_response(&e);
            res.head_mut().set_connection_type(ConnectionType::Close);
            Ok(res)
        }
        other => other,
    }
}

async fn handle(
    req: &HttpRequest,
    name: &str,
    payload: web::Payload,
    state: &State,
    trace: &TraceContext,
    body_read: &Cell<bool>,
) -> Result<HttpResponse, IngressError> {
    let unknown = || IngressError::UnknownEndpoint(name.to_owned());
    let entry = state.endpoints.get(name).ok_or_else(unknown)?;
    // An endpoint without credentials (and not marked unauthenticated) is disabled: 404.
    let verifier = entry.endpoint.verifier.as_ref().ok_or_else(unknown)?;
    if req.conn_data::<ConnectionSlot>().is_some_and(|c| c.over) {
        return Err(IngressError::TooManyConnections);
    }
    // Who may send comes first: a refused network learns nothing about credentials.
    let client = client_address(req.peer_addr(), req.headers(), &state.trusted_proxies);
    if let Some(allowed) = &entry.endpoint.allow_from {
        if !client.is_some_and(|ip| allowed.contains(ip)) {
            return Err(IngressError::Forbidden { client, endpoint: name.to_owned() });
        }
    }
    // The connection's client certificate, where the endpoint has a rule for one: the TLS layer
    // verified it against the client CA; here it is held to the endpoint's subjects, and with
    // `optional` it may stand in for the endpoint's other credential.
    let (verifier, certified) = match &entry.endpoint.client_cert {
        Some(rule) => rule.admit(req.conn_data::<ClientCertificate>(), verifier)?,
        None => (verifier, false),
    };
    let media = media_type(req)?;
    let declared = declared_length(req);
    if declared.is_some_and(|n| n > state.body_limit) {
        return Err(IngressError::TooLarge { limit: state.body_limit });
    }
    // Everything the head can prove, before a byte of the body is waited for: a sender without a
    // credential (or with a stale or malformed signature header) holds nothing.
    verifier.check_head(req.headers(), req.query_string(), (state.clock)())?;
    let body = {
        // Behind a trusted proxy, the sender it names: otherwise every sender would share the
        // proxy's share of uploads.
        let ip = client.unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
        let sender = if certified || verifier.proven_by_head() { Sender::Proven } else { Sender::Unproven };
        let _upload = state.uploads.start(ip, sender)?;
        let read = read_body(payload, declared, state.body_limit);
        tokio::time::timeout(state.body_timeout, read)
            .await
            .map_err(|_| IngressError::BodyTimeout(state.body_timeout))??
    };
    body_read.set(true);
    // The processing slot only now, with the body in: stalled uploads cannot take them.
    let _permit = state.in_flight.try_acquire().map_err(|_| IngressError::Overloaded)?;
    let (deliveries, accepted) = match prepare(req, entry, verifier, media, body, state, trace)? {
        Prepared::Answered(response) => return Ok(response),
        Prepared::Deliver { deliveries, accepted } => (deliveries, accepted),
    };
    // Replay suppression: a delivery every event of which was accepted before is answered
    // without publishing. Ids are recorded only once accepted (confirmed or queued), so a
    // delivery that failed is never suppressed; a store that fails suppresses nothing.
    let Some(dedupe) = &state.dedupe else {
        return answer(state.deliver.deliver(deliveries, state.publish_timeout).await?, accepted);
    };
    let ids: Vec<&str> = accepted.iter().map(|a| a.event.id()).collect();
    if dedupe.seen(name, &ids).await {
        metrics::counter!(names::DEDUPE_DUPLICATES, "endpoint" => name.to_owned()).increment(1);
        tracing::debug!(endpoint = name, events = ids.len(), "every event accepted before: duplicate");
        return Ok(HttpResponse::Ok().json(Answer { status: "duplicate", events: accepted, queued: None }));
    }
    let delivered = state.deliver.deliver(deliveries, state.publish_timeout).await?;
    dedupe.record(name, &ids).await;
    answer(delivered, accepted)
}

/// The 2xx answer for deliveries that ended `delivered`.
fn answer(delivered: Delivered, accepted: Vec<Accepted>) -> Result<HttpResponse, IngressError> {
    match delivered {
        Delivered::Confirmed => {
            Ok(HttpResponse::Ok().json(Answer { status: "accepted", events: accepted, queued: None }))
        }
        Delivered::Queued(queued) => Ok(HttpResponse::Accepted().json(Answer {
            status: "queued",
            events: accepted,
            queued: Some(queued),
        })),
    }
}

/// What the synchronous stages made of a request.
enum Prepared {
    /// Nothing to publish (unmapped type, or no route matched): answered 202 now.
    Answered(HttpResponse),
    Deliver {
        deliveries: Vec<(&'static str, Delivery)>,
        accepted: Vec<Accepted>,
    },
}

/// Verify → normalize → build → route, with no await in between. Kept out of the async `handle`
/// so that the request, the occurrences and the spans are gone before the deliveries are awaited:
/// the future actix boxes per request holds only what the await needs.
fn prepare(
    req: &HttpRequest,
    entry: &EndpointEntry,
    verifier: &Verifier,
    media: MediaType,
    body: BytesMut,
    state: &State,
    trace: &TraceContext,
) -> Result<Prepared, IngressError> {
    let endpoint = &entry.endpoint;
    let verified =
        tracing::debug_span!("verify", regbridge.verify.scheme = ?verifier.scheme()).in_scope(|| {
            verifier.verify(UnverifiedRequest {
                headers: req.headers(),
                query: req.query_string(),
                media,
                body: body.freeze(),
                now: (state.clock)(),
            })
        })?;
    if let Some(m) = verified.credential() {
        entry.credential_matched(m);
    }
    // The endpoint's rate limit counts verified requests only: forged ones (refused above) must
    // not use up the tokens of the real sender.
    if let Some(limiter) = &entry.limiter {
        limiter.check().map_err(|retry_after| IngressError::RateLimited {
            endpoint: endpoint.name.clone(),
            retry_after,
        })?;
    }

    let span = tracing::debug_span!("normalize", regbridge.origtype = Empty, regbridge.event.count = Empty);
    let Normalization { normalized, original, skipped, unmapped } = span.in_scope(|| {
        dialects::normalize(
            endpoint.dialect,
            &endpoint.name,
            &verified,
            endpoint.include_original,
            dialects::Reading { bounds: state.bounds, passthrough: endpoint.passthrough },
        )
    })?;
    if skipped > 0 {
        metrics::counter!(names::SKIPPED, "registry" => endpoint.dialect.name).increment(skipped as u64);
    }
    if unmapped > 0 {
        metrics::counter!(names::UNMAPPED, "registry" => endpoint.dialect.name).increment(unmapped as u64);
    }
    let occurrences = match normalized {
        Normalized::Events(occurrences) if occurrences.is_empty() => {
            return Ok(Prepared::Answered(
                HttpResponse::Accepted()
                    .json(json!({ "status": "ignored", "reason": "not_an_artifact", "skipped": skipped })),
            ));
        }
        Normalized::Events(occurrences) => occurrences,
        Normalized::Answer(Handshake { status, body }) => {
            let status =
                actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::OK);
            return Ok(Prepared::Answered(HttpResponse::build(status).json(body)));
        }
        Normalized::Unmapped { origtype } => {
            span.record("regbridge.origtype", origtype.as_str());
            tracing::info!(endpoint = %endpoint.name, origtype, "event type not mapped; acknowledged");
            return Ok(Prepared::Answered(
                HttpResponse::Accepted()
                    .json(json!({ "status": "ignored", "reason": "unmapped_type", "origtype": origtype })),
            ));
        }
    };
    span.record("regbridge.event.count", occurrences.len());
    if let Some(first) = occurrences.first() {
        span.record("regbridge.origtype", first.origtype.as_str());
    }
    // The freshness window: a verbatim replay of an unsigned sender's old delivery (or a sender
    // whose clock is off) is refused whole, before anything is built or published.
    if let Some(max_age) = endpoint.max_event_age {
        dedupe::fresh::check(occurrences.iter().map(|o| o.time), max_age, (state.clock)())?;
    }

    let envelope = Envelope {
        endpoint: &endpoint.name,
        registry: endpoint.dialect.name,
        source: endpoint.source.as_deref(),
        traceparent: Some(&trace.traceparent),
        tracestate: trace.tracestate.as_deref(),
    };
    let span = tracing::debug_span!("route", regbridge.target.count = Empty);
    let (deliveries, accepted) = span.in_scope(|| {
        // All events first, so a request whose events come to more than the bound is refused
        // before anything is counted or routed (dialects bound their parts themselves; this holds
        // for every one).
        let mut events = Vec::with_capacity(occurrences.len());
        let mut size = 0;
        for occ in &occurrences {
            let ev = event::build(occ, &envelope, original.as_ref());
            size += ev.data().len();
            if size > state.bounds.max_output {
                let max = state.bounds.max_output;
                return Err(IngressError::Malformed(dialects::DialectError::OutputTooLarge { size, max }));
            }
            events.push(Arc::new(ev));
        }
        let mut deliveries = Vec::new();
        let mut accepted = Vec::with_capacity(occurrences.len());
        for (occ, ev) in occurrences.iter().zip(events) {
            let targets =
                state.router.route(&RouteInput::of(&endpoint.name, endpoint.dialect.name, ev.ty(), occ));
            entry.events(occ.kind, !targets.is_empty()).increment(1);
            accepted.push(Accepted { event: ev.clone(), targets: targets.len() });
            deliveries.extend(
                targets.into_iter().map(|(sink, target)| (sink, Delivery { event: ev.clone(), target })),
            );
        }
        Ok((deliveries, accepted))
    })?;
    span.record("regbridge.target.count", deliveries.len());
    if deliveries.is_empty() {
        return Ok(Prepared::Answered(HttpResponse::Accepted().json(Answer {
            status: "unrouted",
            events: accepted,
            queued: None,
        })));
    }
    state.sinks().admit(&deliveries)?;
    Ok(Prepared::Deliver { deliveries, accepted })
}

/// The body of a 200/202 answer: `{"status": …, "events": [{"id", "type", "targets"}, …]}`,
/// plus the sinks whose deliveries were spooled (`"queued": [{"sink", "reason"}, …]`).
#[derive(Serialize)]
struct Answer {
    status: &'static str,
    events: Vec<Accepted>,
    #[serde(skip_serializing_if = "Option::is_none")]
    queued: Option<Vec<Queued>>,
}

/// One event of the answer; it shares the event rather than copying its id.
struct Accepted {
    event: Arc<CloudEvent>,
    targets: usize,
}

impl Serialize for Accepted {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Accepted", 3)?;
        s.serialize_field("id", self.event.id())?;
        s.serialize_field("type", self.event.ty())?;
        s.serialize_field("targets", &self.targets)?;
        s.end()
    }
}

fn media_type(req: &HttpRequest) -> Result<MediaType, IngressError> {
    let raw = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = raw.split(';').next().unwrap_or("").trim();
    match MediaType::of(essence) {
        Some(media) => Ok(media),
        None if essence.is_empty() => Err(IngressError::UnsupportedMediaType("(none)".into())),
        None => Err(IngressError::UnsupportedMediaType(essence.to_ascii_lowercase())),
    }
}

/// The `Content-Length` the sender declared, if any.
fn declared_length(req: &HttpRequest) -> Option<usize> {
    req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok())
}

/// Reads at most `limit` bytes (the caller refused a declared length over it already).
async fn read_body(
    mut payload: web::Payload,
    declared: Option<usize>,
    limit: usize,
) -> Result<BytesMut, IngressError> {
    let mut body = BytesMut::with_capacity(declared.unwrap_or(8192).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| IngressError::BodyRead(e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(IngressError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
