//! `App`: binds the listener, connects the sinks, runs the server and shuts down in order.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, HttpServer};
use anyhow::Context;

use crate::config::Config;
use crate::ingress::{self, Clock, State, StateParts};
use crate::sinks::Sinks;
use crate::telemetry;

/// A bound, ready-to-run service. Owns the server and, through its state, the sinks.
pub struct App {
    port: u16,
    server: Server,
    state: web::Data<State>,
    shutdown_timeout: Duration,
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
        let state = web::Data::new(State::new(StateParts {
            endpoints: c.endpoints,
            router: c.router,
            sinks,
            body_limit: c.body_limit,
            publish_timeout: c.publish_timeout,
            max_in_flight: c.max_in_flight,
            clock: self.clock.unwrap_or_else(ingress::system_clock),
            metrics,
        }));

        let listener = TcpListener::bind(c.listen).with_context(|| format!("binding {}", c.listen))?;
        let port = listener.local_addr()?.port();
        let data = state.clone();
        let names = state.endpoint_names();
        let mut server = HttpServer::new(move || {
            actix_web::App::new().app_data(data.clone()).configure(ingress::routes(&names))
        })
        // actix stops accepting on SIGTERM/SIGINT and lets in-flight requests finish for this long.
        .shutdown_timeout(c.shutdown_timeout.as_secs().max(1))
        .listen(listener)?;
        if let Some(n) = self.workers {
            server = server.workers(n);
        }
        Ok(App { port, server: server.run(), state, shutdown_timeout: c.shutdown_timeout })
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

    /// Serves until a signal or `handle().stop()`, drains in-flight requests, then flushes and
    /// closes the sinks within the shutdown deadline.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        tracing::info!(port = self.port, "regbridge listening");
        self.server.await.context("http server")?;
        tracing::info!("http server stopped; closing sinks");
        self.state.sinks().shutdown(self.shutdown_timeout).await;
        tracing::info!("shutdown complete");
        Ok(())
    }
}
