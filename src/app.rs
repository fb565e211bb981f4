//! `App`: binds the listener, connects the sinks, opens the outbox and starts its relays, runs
//! the server and shuts down in order (server, relays, sinks, outbox).

use std::net::TcpListener;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, HttpServer};
use anyhow::Context;

use crate::config::Config;
use crate::dedupe::Dedupe;
use crate::deliver::Deliver;
use crate::dialects::Bounds;
use crate::ingress::{self, Clock, Connections, State, StateParts, Uploads};
use crate::outbox::relay::Relays;
use crate::outbox::Outbox;
use crate::sinks::Sinks;
use crate::telemetry;
use crate::tls;

/// A bound, ready-to-run service. Owns the server and, through its state, the sinks and the
/// outbox; the relays run from `build` until the shutdown drains them.
pub struct App {
    port: u16,
    server: Server,
    state: web::Data<State>,
    relays: Option<Relays>,
    shutdown_timeout: Duration,
    /// Re-reads the certificate files while the server runs (TLS only); dropped once it stops.
    tls: Option<tls::Reloader>,
}

/// Options beyond the configuration; tests inject a clock or prebuilt sinks here.
pub struct AppBuilder {
    config: Config,
    clock: Option<Clock>,
    sinks: Option<Sinks>,
    workers: Option<usize>,
}

impl AppBuilder {
    /// Use this clock instead of the system's (replays recorded signatures).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Use these sinks instead of building the configured ones.
    pub fn sinks(mut self, sinks: Sinks) -> Self {
        self.sinks = Some(sinks);
        self
    }

    /// HTTP worker threads (default: one per physical core).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = Some(n);
        self
    }

    /// Connects the sinks and binds the listener; nothing is served until `run_until_stopped`.
    pub async fn build(self) -> anyhow::Result<App> {
        let c = self.config;
        let metrics = telemetry::metrics_handle();
        let sinks = match self.sinks {
            Some(s) => s,
            None => Sinks::build(&c.sinks).await.context("connecting sinks")?,
        };
        let outbox = match c.outbox {
            Some(settings) => {
                let names: Vec<&'static str> = sinks.specs().map(|s| s.name).collect();
                let dir = settings.dir.display().to_string();
                Some(Outbox::open(settings, &names).with_context(|| format!("opening the outbox in {dir}"))?)
            }
            None => None,
        };
        let relays = outbox.as_ref().map(|o| Relays::spawn(o, &sinks));
        let state = web::Data::new(State::new(StateParts {
            endpoints: c.endpoints,
            router: c.router,
            deliver: Deliver::new(sinks, outbox),
            body_limit: c.body_limit,
            body_timeout: c.body_timeout,
            publish_timeout: c.publish_timeout,
            uploads: Uploads::new(c.max_uploads, c.max_uploads_per_address),
            bounds: Bounds {
                max_events: c.max_events_per_request,
                max_output: c.body_limit.saturating_mul(4),
            },
            max_in_flight: c.max_in_flight,
            trusted_proxies: c.trusted_proxies,
            clock: self.clock.unwrap_or_else(ingress::system_clock),
            metrics,
            // Redis: its connection task runs on this runtime, and nothing waits for it here.
            dedupe: c.dedupe.map(Dedupe::start),
        }));

        let listener = TcpListener::bind(c.listen).with_context(|| format!("binding {}", c.listen))?;
        let port = listener.local_addr()?.port();
        let data = state.clone();
        let names = state.endpoint_names();
        let connections = Connections::new(c.max_connections_per_address);
        let server = HttpServer::new(move || {
            actix_web::App::new().app_data(data.clone()).configure(ingress::routes(&names))
        })
        // Each connection takes its place in the per-address table; its data, and with it the
        // place, goes when the connection closes.
        // On a TLS listener the handshake is done by now, and the client certificate it verified
        // (if any) stays with the connection for the endpoints' `client_cert` rules.
        .on_connect(move |io, data| {
            if let Some(tcp) = tls::tcp_stream(io) {
                if let Ok(peer) = tcp.peer_addr() {
                    data.insert(connections.open(peer.ip()));
                }
            }
            if let Some(cert) = tls::client_certificate(io) {
                data.insert(cert);
            }
        })
        // The head of a request must arrive within this (actix answers 408 itself); an idle
        // keep-alive connection is closed after the other.
        .client_request_timeout(c.header_timeout)
        .keep_alive(c.keep_alive)
        // actix stops accepting on SIGTERM/SIGINT and lets in-flight requests finish for this long.
        .shutdown_timeout(c.shutdown_timeout.as_secs().max(1));
        let (mut server, tls) = match &c.tls {
            Some(settings) => {
                let (rustls, reloader) = tls::server_config(settings).context("TLS")?;
                (server.listen_rustls_0_23(listener, rustls)?, Some(reloader))
            }
            None => (server.listen(listener)?, None),
        };
        if let Some(n) = self.workers {
            server = server.workers(n);
        }
        Ok(App { port, server: server.run(), state, relays, shutdown_timeout: c.shutdown_timeout, tls })
    }
}

impl App {
    pub fn builder(config: Config) -> AppBuilder {
        AppBuilder { config, clock: None, sinks: None, workers: None }
    }

    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::builder(config).build().await
    }

    /// The bound port (useful with `:0`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server programmatically (what a signal does).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until a signal or `handle().stop()`, drains in-flight requests, lets the relays
    /// deliver the outbox for what is left of the shutdown deadline (counted from the signal),
    /// then flushes and closes the sinks and the outbox.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        tracing::info!(port = self.port, tls = self.tls.is_some(), "regbridge listening");
        let signalled = signal_time();
        self.server.await.context("http server")?;
        // No handshakes any more: the certificate files need no watching.
        drop(self.tls);
        let since =
            signalled.lock().unwrap_or_else(PoisonError::into_inner).take().unwrap_or_else(Instant::now);
        let deadline = since + self.shutdown_timeout;
        if let Some(relays) = self.relays {
            tracing::info!(left = ?deadline.saturating_duration_since(Instant::now()), "http server stopped; relaying the outbox");
            relays.drain(deadline).await;
        }
        tracing::info!("closing sinks");
        self.state.sinks().shutdown(self.shutdown_timeout).await;
        if let Some(outbox) = self.state.deliver().outbox() {
            if let Some(writer) = outbox.close() {
                let _ = tokio::task::spawn_blocking(move || writer.join()).await;
            }
            let left: u64 = outbox.status().sinks.iter().map(|q| q.events).sum();
            if left > 0 {
                tracing::warn!(events = left, "outbox: undelivered events stay on disk for the next start");
            }
        }
        tracing::info!("shutdown complete");
        Ok(())
    }
}

/// When SIGTERM or SIGINT arrived (actix stops the server on them; this only notes the time), so
/// the relays' share of the shutdown deadline is counted from the signal.
fn signal_time() -> Arc<Mutex<Option<Instant>>> {
    let at = Arc::new(Mutex::new(None));
    let noted = at.clone();
    actix_web::rt::spawn(async move {
        #[cfg(unix)]
        let received = {
            use tokio::signal::unix::{signal, SignalKind};
            match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! { _ = term.recv() => true, _ = int.recv() => true }
                }
                _ => false,
            }
        };
        #[cfg(not(unix))]
        let received = tokio::signal::ctrl_c().await.is_ok();
        if received {
            *noted.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        }
    });
    at
}
