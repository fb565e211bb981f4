//! Configuration: environment variables over an optional YAML file, parsed and validated once.
//!
//! Everything is checked before the listener binds: a bad value stops start-up with an error
//! naming the variable (or file key) and the problem. `regbridge check-config` runs the same
//! load and prints the result with secrets masked.

mod dedupe;
pub mod env;
mod file;
mod known;
mod networks;
mod outbox;
mod secret;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

pub use env::Env;
pub use known::UnknownVariable;
pub use networks::Networks;
pub use secret::Secret;

use crate::dialects::{self, DialectSpec};
use crate::route::Router;
use crate::sinks::{self, file as file_sink, ContentMode, SinkConfig};
use crate::verify::{
    AuthorizationHeader, BodyHmac, Keys, QueryToken, Scheme, SignatureMode, StandardWebhooks, Verifier,
};

/// A configuration problem, naming where the bad value came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var}: {problem}")]
    Invalid { var: String, problem: String },
}

impl ConfigError {
    pub fn invalid(var: impl Into<String>, problem: impl std::fmt::Display) -> Self {
        Self::Invalid { var: var.into(), problem: problem.to_string() }
    }
}

/// The whole validated configuration.
#[derive(Debug)]
pub struct Config {
    pub listen: SocketAddr,
    /// Largest accepted webhook body, in bytes.
    pub body_limit: usize,
    /// Deadlines: the body once the head is in; the head once the connection (or the previous
    /// request) is; an idle keep-alive connection.
    pub body_timeout: Duration,
    pub header_timeout: Duration,
    pub keep_alive: Duration,
    /// Events one request may fan out to; more is refused (413) before any is published.
    pub max_events_per_request: usize,
    /// Bodies being read at once, in total and per source address; connections per address.
    pub max_uploads: usize,
    pub max_uploads_per_address: u32,
    pub max_connections_per_address: u32,
    /// Requests processed at once across all endpoints; more get 503 at once.
    pub max_in_flight: usize,
    /// How long a webhook waits for every routed sink to confirm before answering 503.
    pub publish_timeout: Duration,
    /// How long in-flight requests may take to finish after SIGTERM/SIGINT.
    pub shutdown_timeout: Duration,
    pub endpoints: Vec<Arc<Endpoint>>,
    pub sinks: Vec<Arc<dyn SinkConfig>>,
    pub router: Router,
    /// Where the routes came from (`None`: the built-in defaults).
    pub routes_file: Option<PathBuf>,
    /// `None`: the outbox is off, and a sink that does not confirm in time means 503.
    pub outbox: Option<crate::outbox::Settings>,
    /// Replay suppression (`REGBRIDGE_DEDUPE`); `None`: off.
    pub dedupe: Option<crate::dedupe::Settings>,
    /// Peers whose forwarding headers name the sender (for allowlists and per-address caps).
    pub trusted_proxies: Networks,
    /// `None`: plain HTTP (the default, for a service behind an ingress that terminates TLS).
    pub tls: Option<crate::tls::TlsSettings>,
    /// `REGBRIDGE_` variables that nothing reads: likely typos, warned of at start-up and fatal
    /// to `check-config`.
    pub unknown_variables: Vec<UnknownVariable>,
}

/// One webhook endpoint (`/webhooks/{name}`).
#[derive(Debug)]
pub struct Endpoint {
    pub name: String,
    pub dialect: &'static DialectSpec,
    /// `None` when the endpoint has no credentials and was not marked unauthenticated: it is
    /// disabled and answers 404.
    pub verifier: Option<Verifier>,
    /// CloudEvents `source` for this endpoint's events, overriding what the payload reveals.
    pub source: Option<String>,
    /// Requests per second (sustained) and burst; `None`: unlimited.
    pub rate_limit: Option<(u32, u32)>,
    /// Keep the vendor payload in `data.original`.
    pub include_original: bool,
    /// Publish events of types the dialect does not know as they are (`cloudevents`).
    pub passthrough: bool,
    /// How many credentials are configured (for `check-config`; never the values).
    pub credential_count: usize,
    /// The source networks that may send; `None`: any (403 for others).
    pub allow_from: Option<Networks>,
    /// Whether a TLS client certificate is needed or may stand in for the credential, and whose.
    pub client_cert: Option<crate::verify::ClientCertRule>,
    /// The freshness window on the events' own time; `None`: any age.
    pub max_event_age: Option<Duration>,
}

pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;
pub const DEFAULT_PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(20);
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;
pub const DEFAULT_MAX_EVENTS_PER_REQUEST: usize = 1000;
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(15);
pub const DEFAULT_MAX_UPLOADS: usize = 1024;
pub const DEFAULT_MAX_UPLOADS_PER_ADDRESS: u32 = 64;
pub const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS: u32 = 256;
pub const DEFAULT_RATE: u32 = 1000;
pub const DEFAULT_TOLERANCE: u64 = 300;
/// The most a count may be that becomes a semaphore's permits (requests in flight, uploads):
/// tokio panics beyond it, which `REGBRIDGE_MAX_IN_FLIGHT=18446744073709551615` did at start-up
/// after `check-config` had passed it.
const MAX_PERMITS: usize = tokio::sync::Semaphore::MAX_PERMITS;

/// Built-in endpoint names and the variable holding each one's credentials: every dialect with
/// a variable of its own.
pub fn built_in() -> impl Iterator<Item = (&'static str, &'static str)> {
    dialects::REGISTRY.iter().filter_map(|d| Some((d.name, d.env?)))
}

impl Config {
    /// Loads from the process environment (and the file `REGBRIDGE_CONFIG` names).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::load(&Env::from_process())
    }

    pub fn load(env: &Env) -> Result<Self, ConfigError> {
        let file = match env.get("REGBRIDGE_CONFIG") {
            Some(path) => file::FileConfig::read(path.as_ref(), env)?,
            None => file::FileConfig::default(),
        };

        let listen = env
            .get("REGBRIDGE_LISTEN")
            .map(|v| ("REGBRIDGE_LISTEN", v))
            .or(file.listen.as_deref().map(|v| ("listen", v)))
            .unwrap_or(("REGBRIDGE_LISTEN", DEFAULT_LISTEN));
        let listen: SocketAddr = listen
            .1
            .parse()
            .map_err(|e| ConfigError::invalid(listen.0, format!("`{}` is not host:port ({e})", listen.1)))?;

        // Each setting: the variable if set, else the file's key, parsed the same way.
        let body_limit = layered(env, "REGBRIDGE_BODY_LIMIT", "body_limit", &file.body_limit, env::size)?
            .unwrap_or(DEFAULT_BODY_LIMIT);
        if body_limit == 0 {
            return Err(ConfigError::invalid("REGBRIDGE_BODY_LIMIT", "must be greater than 0"));
        }
        let max_in_flight =
            layered(env, "REGBRIDGE_MAX_IN_FLIGHT", "max_in_flight", &file.max_in_flight, env::number)?
                .unwrap_or(DEFAULT_MAX_IN_FLIGHT);
        if max_in_flight == 0 {
            return Err(ConfigError::invalid("REGBRIDGE_MAX_IN_FLIGHT", "must be greater than 0"));
        }
        if max_in_flight > MAX_PERMITS {
            return Err(ConfigError::invalid(
                "REGBRIDGE_MAX_IN_FLIGHT",
                format!("must be at most {MAX_PERMITS}"),
            ));
        }
        let limits = limits(env, &file)?;
        let publish_timeout = layered(
            env,
            "REGBRIDGE_PUBLISH_TIMEOUT",
            "publish_timeout",
            &file.publish_timeout,
            env::duration,
        )?
        .unwrap_or(DEFAULT_PUBLISH_TIMEOUT);
        if publish_timeout.is_zero() {
            return Err(ConfigError::invalid("REGBRIDGE_PUBLISH_TIMEOUT", "must be greater than 0"));
        }
        let shutdown_timeout = layered(
            env,
            "REGBRIDGE_SHUTDOWN_TIMEOUT",
            "shutdown_timeout",
            &file.shutdown_timeout,
            env::duration,
        )?
        .unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT);
        let include_original = layered(
            env,
            "REGBRIDGE_INCLUDE_ORIGINAL",
            "include_original",
            &file.include_original,
            env::boolean,
        )?
        .unwrap_or(true);
        let default_rate =
            layered(env, "REGBRIDGE_RATE_LIMIT", "rate_limit", &file.rate_limit, env::number::<u32>)?
                .unwrap_or(DEFAULT_RATE);
        let default_burst =
            layered(env, "REGBRIDGE_RATE_BURST", "rate_burst", &file.rate_burst, env::number::<u32>)?;
        let unauthenticated: Vec<String> =
            env.get("REGBRIDGE_UNAUTHENTICATED").map(env::list).unwrap_or_default();

        let defaults = EndpointDefaults { rate: default_rate, burst: default_burst, include_original };
        let endpoints = endpoints(env, &file, &unauthenticated, &defaults)?;

        let sinks = configure_sinks(env, &file)?;
        let routes_file =
            env.get("REGBRIDGE_ROUTES").map(PathBuf::from).or(file.routes.clone().map(PathBuf::from));
        let specs: Vec<_> = sinks.iter().map(|s| s.spec()).collect();
        let router = match &routes_file {
            Some(path) => Router::from_file(path, &specs)
                .map_err(|e| ConfigError::invalid("REGBRIDGE_ROUTES", format!("{}: {e}", path.display())))?,
            None => Router::defaults(&specs),
        };
        let content_mode =
            layered(env, "REGBRIDGE_CONTENT_MODE", "content_mode", &file.content_mode, |v| match v {
                "binary" => Ok(ContentMode::Binary),
                "structured" => Ok(ContentMode::Structured),
                other => Err(format!("unknown content mode `{other}` (valid: binary, structured)")),
            })?;
        let router = router.with_default_mode(content_mode.unwrap_or_default());
        let has_broker = sinks.iter().any(|s| s.spec().is_broker);
        let outbox = outbox::settings(env, &file, has_broker)?;
        let dedupe = dedupe::settings(env, &file)?;
        let trusted_proxies = match env.get("REGBRIDGE_TRUSTED_PROXIES") {
            Some(v) => Networks::parse(v.split(','))
                .map_err(|e| ConfigError::invalid("REGBRIDGE_TRUSTED_PROXIES", e))?,
            None => Networks::parse(file.trusted_proxies.iter().flatten().map(String::as_str))
                .map_err(|e| ConfigError::invalid("trusted_proxies", e))?,
        };
        let names: Vec<String> = endpoints.iter().map(|e| e.name.clone()).collect();
        let unknown_variables = known::unknown_variables(env, &names);
        let tls = tls::settings(env, file.tls.as_ref())?;
        tls::require_client_ca(&endpoints, tls.as_ref())?;

        Ok(Self {
            listen,
            body_limit,
            max_events_per_request: limits.max_events_per_request,
            body_timeout: limits.body_timeout,
            header_timeout: limits.header_timeout,
            keep_alive: limits.keep_alive,
            max_uploads: limits.max_uploads,
            max_uploads_per_address: limits.max_uploads_per_address,
            max_connections_per_address: limits.max_connections_per_address,
            max_in_flight,
            publish_timeout,
            shutdown_timeout,
            endpoints,
            sinks,
            router,
            routes_file,
            outbox,
            dedupe,
            trusted_proxies,
            tls,
            unknown_variables,
        })
    }

    /// The effective configuration as JSON, with every secret masked.
    pub fn describe(&self) -> Value {
        json!({
            "listen": self.listen.to_string(),
            "body_limit": self.body_limit,
            "max_events_per_request": self.max_events_per_request,
            "body_timeout_ms": self.body_timeout.as_millis() as u64,
            "header_timeout_ms": self.header_timeout.as_millis() as u64,
            "keep_alive_ms": self.keep_alive.as_millis() as u64,
            "max_uploads": self.max_uploads,
            "max_uploads_per_address": self.max_uploads_per_address,
            "max_connections_per_address": self.max_connections_per_address,
            "max_in_flight": self.max_in_flight,
            "publish_timeout_ms": self.publish_timeout.as_millis() as u64,
            "shutdown_timeout_ms": self.shutdown_timeout.as_millis() as u64,
            "endpoints": self.endpoints.iter().map(|e| json!({
                "name": e.name,
                "path": format!("/webhooks/{}", e.name),
                "dialect": e.dialect.name,
                "enabled": e.verifier.is_some(),
                "verify": e.verifier.as_ref().map(|v| format!("{:?}", v.scheme())),
                "credentials": format!("{} configured (redacted)", e.credential_count),
                "credential_labels": e.verifier.as_ref().and_then(Verifier::keys).map(|k| k.describe(e.credential_count)),
                "source": e.source,
                "rate_limit": e.rate_limit.map(|(r, b)| json!({"per_second": r, "burst": b})),
                "include_original": e.include_original,
                "passthrough": e.passthrough,
                "allow_from": e.allow_from.as_ref().map(Networks::describe),
                "max_event_age_s": e.max_event_age.map(|d| d.as_secs()),
                "client_cert": e.client_cert.as_ref().map(|r| json!({"mode": r.mode, "subjects": r.subjects})),
            })).collect::<Vec<_>>(),
            "tls": self.tls.as_ref().map(crate::tls::describe),
            "trusted_proxies": self.trusted_proxies.describe(),
            "sinks": self.sinks.iter().map(|s| json!({ "type": s.spec().name, "settings": s.describe() })).collect::<Vec<_>>(),
            "routes": { "file": self.routes_file, "rules": self.router.describe() },
            "outbox": self.outbox.as_ref().map(|o| json!({
                "dir": o.dir,
                "max_bytes": o.max_bytes,
                "max_attempts": o.max_attempts,
            })),
            "dedupe": self.dedupe.as_ref().map(crate::dedupe::Settings::describe),
        })
    }
}

/// A setting from the variable `var` if set, else from the file's `key`; errors name whichever
/// one the bad value came from.
pub(crate) fn layered<T>(
    env: &Env,
    var: &str,
    key: &str,
    from_file: &Option<String>,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, ConfigError> {
    let (name, value) = match (env.get(var), from_file) {
        (Some(v), _) => (var, v),
        (None, Some(v)) => (key, v.as_str()),
        (None, None) => return Ok(None),
    };
    parse(value.trim()).map(Some).map_err(|p| ConfigError::invalid(name, p))
}

/// The deadlines and caps that keep slow or stalled senders from holding the door.
struct Limits {
    max_events_per_request: usize,
    body_timeout: Duration,
    header_timeout: Duration,
    keep_alive: Duration,
    max_uploads: usize,
    max_uploads_per_address: u32,
    max_connections_per_address: u32,
}

fn limits(env: &Env, file: &file::FileConfig) -> Result<Limits, ConfigError> {
    let positive = |var: &str, d: Duration| {
        if d.is_zero() {
            Err(ConfigError::invalid(var, "must be greater than 0"))
        } else {
            Ok(d)
        }
    };
    let duration = |var: &str, key: &str, from: &Option<String>, default: Duration| {
        layered(env, var, key, from, env::duration)?.map_or(Ok(default), |d| positive(var, d))
    };
    let count = |var: &str, key: &str, from: &Option<String>, default: usize| match layered(
        env,
        var,
        key,
        from,
        env::number::<usize>,
    )?
    .unwrap_or(default)
    {
        0 => Err(ConfigError::invalid(var, "must be greater than 0")),
        n if n > MAX_PERMITS => Err(ConfigError::invalid(var, format!("must be at most {MAX_PERMITS}"))),
        n => Ok(n),
    };
    let per_address = |var: &str, key: &str, from: &Option<String>, default: u32| {
        count(var, key, from, default as usize)
            .and_then(|n| u32::try_from(n).map_err(|_| ConfigError::invalid(var, "is too large")))
    };
    Ok(Limits {
        max_events_per_request: count(
            "REGBRIDGE_MAX_EVENTS_PER_REQUEST",
            "max_events_per_request",
            &file.max_events_per_request,
            DEFAULT_MAX_EVENTS_PER_REQUEST,
        )?,
        body_timeout: duration(
            "REGBRIDGE_BODY_TIMEOUT",
            "body_timeout",
            &file.body_timeout,
            DEFAULT_BODY_TIMEOUT,
        )?,
        header_timeout: duration(
            "REGBRIDGE_HEADER_TIMEOUT",
            "header_timeout",
            &file.header_timeout,
            DEFAULT_HEADER_TIMEOUT,
        )?,
        keep_alive: duration("REGBRIDGE_KEEP_ALIVE", "keep_alive", &file.keep_alive, DEFAULT_KEEP_ALIVE)?,
        max_uploads: count("REGBRIDGE_MAX_UPLOADS", "max_uploads", &file.max_uploads, DEFAULT_MAX_UPLOADS)?,
        max_uploads_per_address: per_address(
            "REGBRIDGE_MAX_UPLOADS_PER_ADDRESS",
            "max_uploads_per_address",
            &file.max_uploads_per_address,
            DEFAULT_MAX_UPLOADS_PER_ADDRESS,
        )?,
        max_connections_per_address: per_address(
            "REGBRIDGE_MAX_CONNECTIONS_PER_ADDRESS",
            "max_connections_per_address",
            &file.max_connections_per_address,
            DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
        )?,
    })
}

struct EndpointDefaults {
    rate: u32,
    burst: Option<u32>,
    include_original: bool,
}

/// Built-in endpoints (from `REGBRIDGE_*` variables) plus the file's named ones. A variable
/// overrides the file's credentials of the same built-in endpoint.
fn endpoints(
    env: &Env,
    file: &file::FileConfig,
    unauthenticated: &[String],
    d: &EndpointDefaults,
) -> Result<Vec<Arc<Endpoint>>, ConfigError> {
    let mut names: Vec<String> = built_in().map(|(n, _)| n.to_owned()).collect();
    let named: Vec<String> = file.endpoints.keys().filter(|k| !names.contains(k)).cloned().collect();
    names.extend(named);

    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let f = file.endpoints.get(&name).cloned().unwrap_or_default();
        let key = |field: &str| format!("endpoints.{name}.{field}");
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(ConfigError::invalid(
                format!("endpoints.{name}"),
                "endpoint names may use letters, digits, `-` and `_`",
            ));
        }
        let built_in = built_in().find(|(n, _)| *n == name);
        let upper = name.to_ascii_uppercase().replace('-', "_");
        let dialect_name = f.dialect.clone().or_else(|| built_in.map(|(n, _)| (*n).to_owned()));
        let dialect_name = dialect_name
            .ok_or_else(|| ConfigError::invalid(key("dialect"), "is required for a named endpoint"))?;
        let dialect =
            dialects::by_name(&dialect_name).map_err(|e| ConfigError::invalid(key("dialect"), e))?;

        let (cred_var, credentials, keys): (String, Vec<Secret>, Keys) =
            match built_in.and_then(|(_, var)| env.get(var).map(|v| (var, v))) {
                Some((var, v)) => {
                    (var.to_owned(), env::list(v).into_iter().map(Secret::new).collect(), Keys::default())
                }
                None => {
                    let (values, keys) = secret::split(&f.credentials, &key("credentials"))?;
                    (key("credentials"), values, keys)
                }
            };
        let scheme = f.verify.unwrap_or(dialect.scheme);
        let marked_open = f.unauthenticated || unauthenticated.contains(&name) || scheme == Scheme::None;

        let mode_var = format!("REGBRIDGE_{upper}_SIGNATURE_MODE");
        let mode =
            env.parse(&mode_var, |v| v.parse::<SignatureMode>())?.or(f.signature_mode).unwrap_or_default();
        let tol_var = format!("REGBRIDGE_{upper}_TOLERANCE");
        let tolerance = env
            .parse(&tol_var, env::duration)?
            .map(|t| t.as_secs())
            .or(f.tolerance_secs()?)
            .unwrap_or(DEFAULT_TOLERANCE);
        if tolerance == 0 {
            return Err(ConfigError::invalid(tol_var, "must be at least 1 s"));
        }

        let client_cert = tls::endpoint_rule(&f, &name, !credentials.is_empty(), marked_open)?;
        // A required client certificate is a credential of its own: the endpoint is enabled.
        let certified =
            client_cert.as_ref().is_some_and(|r| r.mode == crate::verify::ClientCertMode::Required);
        let values = || credentials.iter().map(Secret::expose);
        let verifier = match (scheme, credentials.is_empty()) {
            (Scheme::None, _) => Some(Verifier::Unauthenticated),
            (_, true) if marked_open || certified => Some(Verifier::Unauthenticated),
            (_, true) => None,
            (Scheme::StandardWebhooks, false) => Some(Verifier::StandardWebhooks(
                StandardWebhooks::new(values(), mode, tolerance)
                    .map_err(|e| ConfigError::invalid(&cred_var, e))?
                    .with_keys(keys),
            )),
            (Scheme::Authorization, false) => {
                let name = f.header.as_deref().unwrap_or(dialect.auth_header);
                let header = actix_web::http::header::HeaderName::try_from(name)
                    .map_err(|e| ConfigError::invalid(key("header"), format!("`{name}`: {e}")))?;
                Some(Verifier::Authorization(AuthorizationHeader::named(header, values()).with_keys(keys)))
            }
            (Scheme::Token, false) => Some(Verifier::Token(QueryToken::new(values()).with_keys(keys))),
            (Scheme::Hmac, false) => {
                let spec = dialect.hmac.ok_or_else(|| {
                    ConfigError::invalid(
                        key("verify"),
                        format!("dialect `{}` has no signature scheme", dialect.name),
                    )
                })?;
                Some(Verifier::Hmac(BodyHmac::new(spec, values()).with_keys(keys)))
            }
        };
        if verifier.is_none() {
            tracing::info!(endpoint = %name, "endpoint disabled: no credentials configured and not marked unauthenticated");
        }

        let source = env.get(&format!("REGBRIDGE_{upper}_SOURCE")).map(str::to_owned).or(f.source.clone());
        let allow_var = format!("REGBRIDGE_{upper}_ALLOW_FROM");
        let allow_from = match (env.get(&allow_var), &f.allow_from) {
            (Some(v), _) => {
                Some(Networks::parse(v.split(',')).map_err(|e| ConfigError::invalid(&allow_var, e))?)
            }
            (None, Some(list)) => Some(
                Networks::parse(list.iter().map(String::as_str))
                    .map_err(|e| ConfigError::invalid(key("allow_from"), e))?,
            ),
            (None, None) => None,
        };
        let age_var = format!("REGBRIDGE_{upper}_MAX_EVENT_AGE");
        let max_event_age =
            layered(env, &age_var, &key("max_event_age"), &f.max_event_age, |v| match env::duration(v)? {
                d if d < Duration::from_secs(1) => Err("must be at least 1s".to_owned()),
                d => Ok(d),
            })?;
        let rate = f.rate_limit.unwrap_or(d.rate);
        let burst = f.rate_burst.or(d.burst).unwrap_or(rate);
        let rate_limit = (rate > 0).then_some((rate, burst.max(1)));
        out.push(Arc::new(Endpoint {
            name,
            dialect,
            verifier,
            source,
            rate_limit,
            include_original: f.include_original.unwrap_or(d.include_original),
            passthrough: f.passthrough,
            credential_count: credentials.len(),
            allow_from,
            client_cert,
            max_event_age,
        }));
    }
    Ok(out)
}

/// Every sink whose configuration is present; the file sink alone when none is.
fn configure_sinks(env: &Env, file: &file::FileConfig) -> Result<Vec<Arc<dyn SinkConfig>>, ConfigError> {
    for name in file.sinks.keys() {
        sinks::by_name(name).map_err(|e| ConfigError::invalid(format!("sinks.{name}"), e))?;
    }
    let mut out = Vec::new();
    for spec in sinks::REGISTRY {
        if let Some(c) = (spec.configure)(file.sinks.get(spec.name), env)? {
            out.push(c);
        }
    }
    if out.is_empty() {
        out.push(file_sink::FileConfig::shared(file_sink::DEFAULT_PATH));
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
