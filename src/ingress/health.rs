//! Liveness, readiness (every sink connected and usable) and the Prometheus exposition.

use actix_web::{web, HttpResponse};
use serde_json::{json, Map, Value};

use super::State;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// 200 only when every configured sink reports healthy; otherwise 503 naming the failing ones.
pub async fn readyz(state: web::Data<State>) -> HttpResponse {
    let mut sinks = Map::new();
    let mut ready = true;
    for (name, health) in state.sinks.health() {
        let v = match health {
            Ok(()) => Value::from("ok"),
            Err(e) => {
                ready = false;
                Value::from(e)
            }
        };
        sinks.insert(name.to_owned(), v);
    }
    let body = json!({ "status": if ready { "ready" } else { "not_ready" }, "sinks": sinks });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

pub async fn metrics(state: web::Data<State>) -> HttpResponse {
    // Refreshes the sink readiness gauges so a scrape sees the current state.
    state.sinks.health();
    let text = state.metrics.as_ref().map(|h| h.render()).unwrap_or_default();
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(text)
}
