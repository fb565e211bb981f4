//! Liveness, readiness (every sink usable, or able to spool) and the Prometheus exposition.

use actix_web::{web, HttpResponse};
use serde_json::{json, Map, Value};

use super::State;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// 200 when webhooks can be accepted safely: each sink is healthy, or the outbox can take its
/// deliveries (so a replica that spools through a broker outage stays in service). Otherwise 503.
/// The body names each sink's state and, with the outbox on, its backlog.
pub async fn readyz(state: web::Data<State>) -> HttpResponse {
    let outbox = state.deliver.outbox();
    let can_spool = outbox.is_some_and(|o| o.can_take());
    let mut sinks = Map::new();
    let mut ready = true;
    for (name, health) in state.sinks().health() {
        let v = match health {
            Ok(()) => Value::from("ok"),
            Err(e) => {
                ready &= can_spool;
                Value::from(e)
            }
        };
        sinks.insert(name.to_owned(), v);
    }
    let mut body = json!({ "status": if ready { "ready" } else { "not_ready" }, "sinks": sinks });
    if let Some(o) = outbox {
        let status = o.status();
        let queues: Map<String, Value> = status
            .sinks
            .iter()
            .map(|q| (q.sink.clone(), serde_json::to_value(q).expect("plain data serializes")))
            .collect();
        body["outbox"] = json!({
            "state": match o.health() { Ok(()) => "ok".to_owned(), Err(e) => e },
            "used_bytes": status.used_bytes,
            "max_bytes": status.max_bytes,
            "sinks": queues,
        });
    }
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

pub async fn metrics(state: web::Data<State>) -> HttpResponse {
    // Refreshes the readiness and outbox gauges so a scrape sees the current state.
    state.sinks().health();
    if let Some(o) = state.deliver.outbox() {
        o.refresh_gauges();
    }
    let text = state.metrics.as_ref().map(|h| h.render()).unwrap_or_default();
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(text)
}
