//! Ingress: the HTTP surface (actix-web). Routes are registered here; the webhook handler is a
//! straight line through the stages in `handler.rs`; refusals map to problems in `error.rs`.

mod client;
mod error;
mod handler;
mod health;
mod limits;
mod ratelimit;
mod validation;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use actix_web::web;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::Semaphore;

pub use error::{IngressError, PROBLEM_PREFIX};
pub use limits::{ConnectionSlot, Connections, Sender, Uploads};
pub use ratelimit::RateLimiter;

use crate::config::{Endpoint, Networks};
use crate::dedupe::Dedupe;
use crate::deliver::Deliver;
use crate::dialects::Bounds;
use crate::event::Kind;
use crate::route::Router;
use crate::sinks::Sinks;
use crate::telemetry::names;

/// The application clock in Unix seconds. Injectable so recorded signature vectors can be replayed.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(|| chrono::Utc::now().timestamp())
}

/// A configured endpoint with what its requests share: the rate limiter and the metric handles
/// of the accepted path (resolved once, so a request does not look its series up again).
struct EndpointEntry {
    endpoint: Arc<Endpoint>,
    limiter: Option<RateLimiter>,
    accepted: metrics::Counter,
    duration: metrics::Histogram,
    /// `regbridge_events_total` by kind and whether it was routed, looked up once each.
    events: Mutex<Vec<(Kind, bool, metrics::Counter)>>,
    /// `regbridge_credential_matches_total` per credential and way it matched (row-major),
    /// registered up front so every credential shows, also the one nobody uses any more.
    credentials: Vec<metrics::Counter>,
}

impl EndpointEntry {
    /// Counts a request that matched `m`.
    fn credential_matched(&self, m: crate::verify::Matched) {
        let Some(verifier) = &self.endpoint.verifier else { return };
        let modes = verifier.modes();
        let way = modes.iter().position(|w| *w == m.mode).unwrap_or(0);
        if let Some(counter) = self.credentials.get(m.index * modes.len() + way) {
            counter.increment(1);
        }
    }

    fn events(&self, kind: Kind, routed: bool) -> metrics::Counter {
        // Held only for a short scan of at most a few dozen entries; never across an await.
        let mut cache = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, _, counter)) = cache.iter().find(|(k, r, _)| *k == kind && *r == routed) {
            return counter.clone();
        }
        let counter = metrics::counter!(
            names::EVENTS,
            "registry" => self.endpoint.dialect.name,
            "type" => kind.type_name(),
            "routed" => if routed { "true" } else { "false" },
        );
        cache.push((kind, routed, counter.clone()));
        counter
    }
}

/// One counter per credential of `e` and way it can match (see `EndpointEntry::credentials`).
fn credential_counters(e: &Endpoint) -> Vec<metrics::Counter> {
    let Some(verifier) = &e.verifier else { return Vec::new() };
    let Some(keys) = verifier.keys() else { return Vec::new() };
    (0..e.credential_count)
        .flat_map(|i| {
            verifier.modes().iter().map(move |mode| {
                metrics::counter!(
                    names::CREDENTIAL_MATCHES,
                    "endpoint" => e.name.clone(),
                    "credential" => keys.label(i),
                    "mode" => *mode,
                )
            })
        })
        .collect()
}

/// Everything a request needs, shared by all workers. Built once by `App::build`.
pub struct State {
    endpoints: HashMap<String, EndpointEntry>,
    in_flight_gauge: metrics::Gauge,
    router: Router,
    deliver: Deliver,
    body_limit: usize,
    /// How long a body may take to arrive once the head is in.
    body_timeout: Duration,
    publish_timeout: Duration,
    /// Bodies being read, per source address and in total; apart from `in_flight`.
    uploads: Uploads,
    /// What one request may become (events, and bytes of them).
    bounds: Bounds,
    /// Peers whose forwarding headers name the sender.
    trusted_proxies: Networks,
    in_flight: Semaphore,
    clock: Clock,
    metrics: Option<PrometheusHandle>,
    /// Replay suppression; `None`: off.
    dedupe: Option<Dedupe>,
}

/// What `State::new` takes; grouped so the call site reads like configuration.
pub struct StateParts {
    pub endpoints: Vec<Arc<Endpoint>>,
    pub router: Router,
    pub deliver: Deliver,
    pub body_limit: usize,
    pub body_timeout: Duration,
    pub publish_timeout: Duration,
    pub max_in_flight: usize,
    pub uploads: Uploads,
    pub bounds: Bounds,
    pub trusted_proxies: Networks,
    pub clock: Clock,
    pub metrics: Option<PrometheusHandle>,
    pub dedupe: Option<Dedupe>,
}

impl State {
    /// `p.metrics` comes from `telemetry::metrics_handle()`, which installed the recorder, so
    /// the handles taken here are live.
    pub fn new(p: StateParts) -> Self {
        let endpoints = p
            .endpoints
            .into_iter()
            .map(|e| {
                let entry = EndpointEntry {
                    limiter: e.rate_limit.map(|(rate, burst)| RateLimiter::new(rate, burst)),
                    accepted: metrics::counter!(
                        names::REQUESTS,
                        "endpoint" => e.name.clone(),
                        "status" => "2xx",
                        "reason" => "accepted",
                    ),
                    duration: metrics::histogram!(names::REQUEST_DURATION, "endpoint" => e.name.clone()),
                    events: Mutex::new(Vec::new()),
                    credentials: credential_counters(&e),
                    endpoint: e,
                };
                (entry.endpoint.name.clone(), entry)
            })
            .collect();
        Self {
            endpoints,
            in_flight_gauge: metrics::gauge!(names::IN_FLIGHT),
            router: p.router,
            deliver: p.deliver,
            body_limit: p.body_limit,
            body_timeout: p.body_timeout,
            publish_timeout: p.publish_timeout,
            uploads: p.uploads,
            bounds: p.bounds,
            trusted_proxies: p.trusted_proxies,
            in_flight: Semaphore::new(p.max_in_flight),
            clock: p.clock,
            metrics: p.metrics,
            dedupe: p.dedupe,
        }
    }

    pub fn sinks(&self) -> &Sinks {
        self.deliver.sinks()
    }

    pub fn deliver(&self) -> &Deliver {
        &self.deliver
    }

    /// The configured endpoint names, which get static routes.
    pub fn endpoint_names(&self) -> Vec<String> {
        self.endpoints.keys().cloned().collect()
    }
}

/// Registers every route of the contract (§1) for the configured `endpoints`. Anything else is a
/// problem+json 404.
///
/// Each configured endpoint gets a static `/webhooks/<name>` resource: actix matches those by
/// comparing strings, whereas a `{endpoint}` pattern runs a regex on every request. The pattern
/// stays behind them so that unknown names still get their precise 404 (and other methods 405).
pub fn routes(endpoints: &[String]) -> impl FnOnce(&mut web::ServiceConfig) + '_ {
    move |cfg| {
        cfg.route("/healthz", web::get().to(health::healthz))
            .route("/readyz", web::get().to(health::readyz))
            .route("/metrics", web::get().to(health::metrics));
        for name in endpoints {
            cfg.service(webhook_resource(&format!("/webhooks/{name}")));
        }
        cfg.service(webhook_resource("/webhooks/{endpoint}")).default_service(web::to(
            |req: actix_web::HttpRequest| async move {
                Err::<(), _>(IngressError::UnknownEndpoint(req.path().to_owned()))
            },
        ));
    }
}

fn webhook_resource(path: &str) -> actix_web::Resource {
    web::resource(path)
        .route(web::post().to(handler::webhook))
        .route(web::method(actix_web::http::Method::OPTIONS).to(validation::options))
        .default_service(web::to(|| async { Err::<(), _>(IngressError::MethodNotAllowed) }))
}
