//! Telemetry: logs (text or JSON), metrics (Prometheus at `/metrics`, OTLP when configured) and
//! OpenTelemetry traces (OTLP when configured), set up once per process from the `OTEL_*`
//! variables.
//!
//! With no OTLP endpoint the tracing spans of the request path are disabled (no layer wants
//! them), so they cost next to nothing; W3C trace context is then still continued by hand.

pub mod metrics;
pub mod trace;

use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

pub use self::metrics::{metrics_handle, names};

/// The exporters this process started; [`Telemetry::shutdown`] flushes them.
#[derive(Default)]
pub struct Telemetry {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// An OTLP signal is on when its endpoint (or the shared one) is set and the SDK not disabled.
fn otlp_enabled(signal_var: &str) -> bool {
    let disabled = var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    !disabled && (var("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() || var(signal_var).is_some())
}

fn resource() -> Resource {
    let builder = Resource::builder();
    // OTEL_SERVICE_NAME (read by the SDK) wins; otherwise say who we are instead of
    // `unknown_service`.
    if var("OTEL_SERVICE_NAME").is_some() {
        builder.build()
    } else {
        builder.with_service_name("regbridge").build()
    }
}

impl Telemetry {
    /// Sets up logging, the metrics recorder and, when configured, OTLP traces and metrics.
    /// Call once, inside the runtime, before the service starts.
    pub fn init() -> Self {
        let mut t = Telemetry::default();
        let otel_layer = if otlp_enabled("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            match trace::provider(resource()) {
                Ok(provider) => {
                    let layer = trace::layer(&provider);
                    t.tracer = Some(provider);
                    // The request-path spans are at debug level so that, without this layer,
                    // nothing enables them; this layer wants them whatever RUST_LOG says.
                    Some(layer.with_filter(Targets::new().with_target("regbridge", LevelFilter::DEBUG)))
                }
                Err(e) => {
                    eprintln!("regbridge: OTLP traces disabled: {e}");
                    None
                }
            }
        } else {
            None
        };

        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
        let json = var("REGBRIDGE_LOG_FORMAT").is_some_and(|v| v.eq_ignore_ascii_case("json"));
        let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
        let fmt = if json { fmt.json().flatten_event(true).boxed() } else { fmt.boxed() };
        let _ = tracing_subscriber::registry().with(fmt.with_filter(filter)).with(otel_layer).try_init();
        trace::set_enabled(t.tracer.is_some());

        if otlp_enabled("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") {
            match metrics::otlp_provider(resource()) {
                Ok(provider) => t.meter = Some(provider),
                Err(e) => tracing::warn!(error = %e, "OTLP metrics disabled"),
            }
        }
        metrics::install(t.meter.as_ref());
        t
    }

    /// Logging only, for commands that do not serve (and for tests).
    pub fn init_logging() {
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    }

    /// Flushes and stops the exporters; spans and metrics recorded so far are sent.
    pub fn shutdown(self) {
        if let Some(p) = self.tracer {
            if let Err(e) = p.shutdown() {
                tracing::warn!(error = %e, "trace exporter shutdown");
            }
        }
        if let Some(p) = self.meter {
            if let Err(e) = p.shutdown() {
                tracing::warn!(error = %e, "metric exporter shutdown");
            }
        }
    }
}
