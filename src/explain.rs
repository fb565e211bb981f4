//! `regbridge normalize`: what a payload would become at an endpoint, published nowhere: the
//! CloudEvents, where each would be routed, and the binding each sink would send it with. How a
//! user maps a new sender, and how a bug report is reproduced.

use std::sync::Arc;

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;
use rdkafka::message::Headers;
use serde_json::{json, Value};

use crate::config::Config;
use crate::dialects::{self, MediaType, Normalization, Normalized, Reading};
use crate::event::{self, Envelope};
use crate::route::RouteInput;
use crate::sinks::{amqp, kafka, nats, ContentMode, Delivery};
use crate::verify::{UnverifiedRequest, Verifier};

/// What the command was given.
pub struct Payload<'a> {
    pub endpoint: &'a str,
    pub body: Bytes,
    /// `Name: value` lines, as `curl -H` takes them.
    pub headers: &'a [String],
    /// The raw query string (`token=...`).
    pub query: &'a str,
    /// Check the credentials too (the headers and query must then carry them).
    pub verify: bool,
}

/// The explanation as JSON; `Err` for what stops it before the dialect (no such endpoint, bad
/// header syntax).
pub fn explain(config: &Config, p: &Payload<'_>) -> Result<Value, String> {
    let endpoint = config.endpoints.iter().find(|e| e.name == p.endpoint).ok_or_else(|| {
        let names: Vec<&str> = config.endpoints.iter().map(|e| e.name.as_str()).collect();
        format!("no endpoint `{}` (configured: {})", p.endpoint, names.join(", "))
    })?;
    let mut headers = HeaderMap::new();
    for line in p.headers {
        let (k, v) = line.split_once(':').ok_or_else(|| format!("`{line}` is not `Name: value`"))?;
        let name = HeaderName::try_from(k.trim()).map_err(|e| format!("`{k}`: {e}"))?;
        let value = HeaderValue::from_str(v.trim()).map_err(|e| format!("`{v}`: {e}"))?;
        headers.append(name, value);
    }
    let content_type =
        headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("application/json");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    let media = MediaType::of(essence)
        .ok_or_else(|| format!("content type `{essence}` is not one regbridge reads"))?;
    let req = UnverifiedRequest {
        headers: &headers,
        query: p.query,
        media,
        body: p.body.clone(),
        now: chrono::Utc::now().timestamp(),
    };
    let (verified, verification) = match (&endpoint.verifier, p.verify) {
        (Some(v), true) => match v.check_head(&headers, p.query, req.now).and_then(|()| v.verify(req)) {
            Ok(r) => (r, json!("passed")),
            Err(e) => {
                return Ok(
                    json!({ "endpoint": endpoint.name, "verification": e.to_string(), "reason": e.reason() }),
                )
            }
        },
        (None, true) => return Err(format!("endpoint `{}` has no credentials configured", endpoint.name)),
        // Not asked to check: read the body as a verified one would be.
        (_, false) => {
            (Verifier::Unauthenticated.verify(req).map_err(|e| e.to_string())?, json!("not checked"))
        }
    };
    let reading = Reading { passthrough: endpoint.passthrough, ..Reading::default() };
    let Normalization { normalized, original, skipped, unmapped } = match dialects::normalize(
        endpoint.dialect,
        &endpoint.name,
        &verified,
        endpoint.include_original,
        reading,
    ) {
        Ok(n) => n,
        Err(e) => {
            return Ok(json!({
                "endpoint": endpoint.name, "verification": verification,
                "outcome": "refused", "reason": e.reason(), "detail": e.to_string(),
            }))
        }
    };
    let base = json!({ "endpoint": endpoint.name, "dialect": endpoint.dialect.name, "verification": verification, "skipped": skipped, "unmapped": unmapped });
    let occurrences = match normalized {
        Normalized::Events(o) => o,
        Normalized::Unmapped { origtype } => {
            return Ok(merge(base, json!({ "outcome": "unmapped", "origtype": origtype })))
        }
        Normalized::Answer(h) => {
            return Ok(merge(base, json!({ "outcome": "handshake", "status": h.status, "answer": h.body })))
        }
    };
    let envelope = Envelope {
        endpoint: &endpoint.name,
        registry: endpoint.dialect.name,
        source: endpoint.source.as_deref(),
        traceparent: None,
        tracestate: None,
    };
    let events: Vec<Value> = occurrences
        .iter()
        .map(|occ| {
            let ev = Arc::new(event::build(occ, &envelope, original.as_ref()));
            let targets =
                config.router.route(&RouteInput::of(&endpoint.name, endpoint.dialect.name, ev.ty(), occ));
            let routes: Vec<Value> = targets
                .into_iter()
                .map(|(sink, target)| binding(sink, &Delivery { event: ev.clone(), target }))
                .collect();
            json!({ "event": serde_json::from_slice::<Value>(&ev.to_json()).unwrap_or(Value::Null), "routes": routes })
        })
        .collect();
    Ok(merge(base, json!({ "outcome": "events", "events": events })))
}

fn merge(mut a: Value, b: Value) -> Value {
    if let (Value::Object(a), Value::Object(b)) = (&mut a, b) {
        a.extend(b);
    }
    a
}

/// Where one delivery would go and the headers its sink's binding sends.
fn binding(sink: &str, d: &Delivery) -> Value {
    let mode = match d.target.mode {
        ContentMode::Binary => "binary",
        ContentMode::Structured => "structured",
    };
    let mut out = json!({ "sink": sink, "destination": d.target.name, "key": d.target.key, "mode": mode });
    let headers: Result<Vec<(String, String)>, String> = match sink {
        "kafka" => kafka::record(d).map_err(|e| e.to_string()).map(|r| {
            out["key"] = json!(r.key);
            r.headers
                .iter()
                .map(|h| {
                    (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned())
                })
                .collect()
        }),
        "nats" => Ok(nats::message(d)
            .0
            .iter()
            .flat_map(|(k, vs)| vs.iter().map(move |v| (k.to_string(), v.to_string())))
            .collect()),
        "amqp" => amqp::encode(d).map_err(|e| e.to_string()).map(|m| {
            out["key"] = json!(m.routing_key.as_str());
            m.properties
                .headers()
                .iter()
                .flat_map(|t| t.inner().iter())
                .map(|(k, v)| (k.to_string(), amqp_text(v)))
                .collect()
        }),
        _ => Ok(Vec::new()),
    };
    match headers {
        Ok(h) => {
            out["headers"] =
                h.into_iter().map(|(k, v)| (k, Value::from(v))).collect::<serde_json::Map<_, _>>().into()
        }
        Err(e) => out["error"] = json!(e),
    }
    out
}

fn amqp_text(v: &lapin::types::AMQPValue) -> String {
    match v {
        lapin::types::AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        lapin::types::AMQPValue::ShortString(s) => s.as_str().to_owned(),
        other => format!("{other:?}"),
    }
}
