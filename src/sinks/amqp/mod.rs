//! AMQP 0-9-1 sink (RabbitMQ, lapin): CloudEvents RabbitMQ binding, publisher confirms, persistent
//! messages, `mandatory` so an event no queue would receive is refused instead of dropped.
//!
//! Configured by `REGBRIDGE_AMQP_URL` (or `sinks.amqp.url`), plus `REGBRIDGE_AMQP_EXCHANGE_TYPE`
//! (`exchange_type`, default `topic`) and `REGBRIDGE_AMQP_EXCHANGE_DURABLE` (`durable`, default
//! true): the type and durability every exchange a route names is declared with on first use.

mod message;
mod sink;

pub use message::{encode, Message};

use std::sync::Arc;

use futures_util::future::BoxFuture;
use lapin::uri::AMQPUri;
use lapin::ExchangeKind;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{Sink, SinkConfig, SinkError, SinkSpec};
use crate::config::{ConfigError, Env, Secret};

pub const SPEC: SinkSpec = SinkSpec {
    name: "amqp",
    is_broker: true,
    configure,
    name_field: "exchange",
    key_field: Some("routing_key"),
    default_name: "registry-events",
    default_key: Some("{registry}.{noun}.{verb}"),
    // What RabbitMQ accepts in an exchange name.
    name_char_ok: |c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'),
    // `.` separates the words a topic exchange matches on and `*`/`#` are its wildcards: a
    // repository `library/nginx.io` must stay one word, not become two or a pattern.
    key_char_ok: |c| !matches!(c, '.' | '*' | '#') && !c.is_whitespace(),
    env: &[ENV_URL, ENV_EXCHANGE_TYPE, ENV_DURABLE],
};

const ENV_URL: &str = "REGBRIDGE_AMQP_URL";
const ENV_EXCHANGE_TYPE: &str = "REGBRIDGE_AMQP_EXCHANGE_TYPE";
const ENV_DURABLE: &str = "REGBRIDGE_AMQP_EXCHANGE_DURABLE";

const EXCHANGE_TYPES: &[(&str, ExchangeKind)] = &[
    ("direct", ExchangeKind::Direct),
    ("fanout", ExchangeKind::Fanout),
    ("topic", ExchangeKind::Topic),
    ("headers", ExchangeKind::Headers),
];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSection {
    url: Option<Secret>,
    exchange_type: Option<String>,
    durable: Option<bool>,
}

/// The broker URL (it carries the password, hence `Secret`) and how exchanges are declared.
#[derive(Debug, Clone)]
pub struct AmqpConfig {
    url: Secret,
    exchange_type: ExchangeKind,
    durable: bool,
}

fn configure(section: Option<&Value>, env: &Env) -> Result<Option<Arc<dyn SinkConfig>>, ConfigError> {
    let file: FileSection = section
        .map(|s| serde_json::from_value(s.clone()).map_err(|e| ConfigError::invalid("sinks.amqp", e)))
        .transpose()?
        .unwrap_or_default();
    let (url_var, url) = match (env.get(ENV_URL), &file.url) {
        (Some(v), _) => (ENV_URL, v.trim().to_owned()),
        (None, Some(v)) => ("sinks.amqp.url", v.expose().trim().to_owned()),
        (None, None) => return Ok(None),
    };
    // Parsed here, with the parser lapin connects with, so a typo stops start-up (and
    // check-config) instead of surfacing as a sink that never becomes ready.
    parse_url(&url).map_err(|e| ConfigError::invalid(url_var, e))?;

    let exchange_type = match (env.get(ENV_EXCHANGE_TYPE), &file.exchange_type) {
        (Some(v), _) => exchange_kind(v).map_err(|e| ConfigError::invalid(ENV_EXCHANGE_TYPE, e))?,
        (None, Some(v)) => {
            exchange_kind(v).map_err(|e| ConfigError::invalid("sinks.amqp.exchange_type", e))?
        }
        (None, None) => ExchangeKind::Topic,
    };
    let durable = env.parse(ENV_DURABLE, crate::config::env::boolean)?.or(file.durable).unwrap_or(true);
    Ok(Some(Arc::new(AmqpConfig { url: Secret::new(url), exchange_type, durable })))
}

/// The `frame_max` regbridge proposes unless the URL sets one. lapin keeps 32 frames of buffer
/// in each direction, zero-filled; with RabbitMQ's default of 128 KiB that is 8 MiB resident for
/// messages of a few KiB. Larger messages still go through, split into more frames.
const DEFAULT_FRAME_MAX: u32 = 32 * 1024;

fn parse_url(url: &str) -> Result<AMQPUri, String> {
    let mut uri = url.parse::<AMQPUri>().map_err(|e| {
        // Some of the parser's messages quote the whole URL, password included; an unparseable
        // URL cannot be masked reliably, so it is left out altogether.
        let e = e.replace(url, "<the URL>");
        format!("not an AMQP URL ({e}); expected amqp[s]://user:password@host[:port]/vhost")
    })?;
    uri.query.frame_max.get_or_insert(DEFAULT_FRAME_MAX);
    Ok(uri)
}

fn exchange_kind(v: &str) -> Result<ExchangeKind, String> {
    let v = v.trim();
    EXCHANGE_TYPES.iter().find(|(name, _)| name.eq_ignore_ascii_case(v)).map(|(_, k)| k.clone()).ok_or_else(
        || {
            let names: Vec<_> = EXCHANGE_TYPES.iter().map(|(n, _)| *n).collect();
            format!("unknown exchange type `{v}` (valid: {})", names.join(", "))
        },
    )
}

fn exchange_kind_name(kind: &ExchangeKind) -> &'static str {
    EXCHANGE_TYPES.iter().find(|(_, k)| k == kind).map_or("custom", |(n, _)| n)
}

/// The URL with its password replaced: `amqp://user:[redacted]@host/vhost`. Works on the text
/// rather than the parsed form so the user sees their own spelling (and no percent-encoding).
fn mask_url(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else { return url.to_owned() };
    let rest = &url[start..];
    // The authority ends where the URL parser ends it: at the path, query or fragment.
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let Some(at) = authority.rfind('@') else { return url.to_owned() };
    let Some(colon) = authority[..at].find(':') else { return url.to_owned() };
    format!("{}{}:[redacted]{}", &url[..start], &authority[..colon], &rest[at..])
}

impl SinkConfig for AmqpConfig {
    fn spec(&self) -> &'static SinkSpec {
        &SPEC
    }

    fn describe(&self) -> Value {
        json!({
            "url": mask_url(self.url.expose()),
            "exchange_type": exchange_kind_name(&self.exchange_type),
            "durable": self.durable,
        })
    }

    fn build(&self) -> BoxFuture<'_, Result<Arc<dyn Sink>, SinkError>> {
        Box::pin(async move {
            // Validated by `configure`; parsed again because `AMQPUri`'s `Debug` prints the
            // password, so the config keeps only the `Secret`.
            let uri = parse_url(self.url.expose())
                .map_err(|reason| SinkError::Unavailable { sink: SPEC.name, reason })?;
            let settings = sink::Settings { uri, kind: self.exchange_type.clone(), durable: self.durable };
            Ok(Arc::new(sink::AmqpSink::connect(settings).await) as Arc<dyn Sink>)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(env: &[(&str, &str)], section: Option<Value>) -> Result<Option<Value>, String> {
        let env: Env = env.iter().copied().collect();
        configure(section.as_ref(), &env).map(|c| c.map(|c| c.describe())).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_masked_password() {
        let d =
            load(&[(ENV_URL, "amqps://bridge:hunter2@mq.example.com:5671/events")], None).unwrap().unwrap();
        assert_eq!(
            d,
            json!({
                "url": "amqps://bridge:[redacted]@mq.example.com:5671/events",
                "exchange_type": "topic",
                "durable": true,
            })
        );
        assert!(load(&[], None).unwrap().is_none(), "no URL: the sink is off");
    }

    #[test]
    fn variables_override_the_file_section() {
        let section =
            json!({ "url": "amqp://a:b@file-host/%2f", "exchange_type": "fanout", "durable": true });
        let d = load(&[], Some(section.clone())).unwrap().unwrap();
        assert_eq!(d["url"], "amqp://a:[redacted]@file-host/%2f");
        assert_eq!(d["exchange_type"], "fanout");
        let env = [(ENV_URL, "amqp://env-host"), (ENV_EXCHANGE_TYPE, "Headers"), (ENV_DURABLE, "no")];
        let d = load(&env, Some(section)).unwrap().unwrap();
        assert_eq!(d, json!({ "url": "amqp://env-host", "exchange_type": "headers", "durable": false }));
    }

    #[test]
    fn bad_values_name_their_variable_or_key() {
        let e = load(&[(ENV_URL, "http://u:hunter2@host")], None).unwrap_err();
        assert!(e.starts_with("REGBRIDGE_AMQP_URL: ") && e.contains("scheme"), "{e}");
        // The parser quotes unparseable URLs whole; the password must not come with it.
        let e = load(&[(ENV_URL, "amqp:u:hunter2@host")], None).unwrap_err();
        assert!(e.starts_with("REGBRIDGE_AMQP_URL: ") && !e.contains("hunter2"), "{e}");
        let e = load(&[], Some(json!({ "url": "not a url" }))).unwrap_err();
        assert!(e.starts_with("sinks.amqp.url: "), "{e}");
        let e = load(&[(ENV_URL, "amqp://h"), (ENV_EXCHANGE_TYPE, "x-delayed")], None).unwrap_err();
        assert_eq!(
            e,
            "REGBRIDGE_AMQP_EXCHANGE_TYPE: unknown exchange type `x-delayed` (valid: direct, fanout, topic, headers)"
        );
        let e = load(&[(ENV_URL, "amqp://h"), (ENV_DURABLE, "maybe")], None).unwrap_err();
        assert!(e.starts_with("REGBRIDGE_AMQP_EXCHANGE_DURABLE: "), "{e}");
        let e = load(&[], Some(json!({ "url": "amqp://h", "exchange": "x" }))).unwrap_err();
        assert!(e.starts_with("sinks.amqp: ") && e.contains("unknown field `exchange`"), "{e}");
    }

    #[test]
    fn masking_touches_only_the_password() {
        assert_eq!(
            mask_url("amqp://guest:guest@127.0.0.1:5672/%2f"),
            "amqp://guest:[redacted]@127.0.0.1:5672/%2f"
        );
        assert_eq!(mask_url("amqp://u:p%40ss@h/v?heartbeat=10"), "amqp://u:[redacted]@h/v?heartbeat=10");
        // An `@` in the path is not userinfo.
        assert_eq!(mask_url("amqp://host/v@x"), "amqp://host/v@x");
        assert_eq!(mask_url("amqp://user@host"), "amqp://user@host");
        assert_eq!(mask_url("amqp://host"), "amqp://host");
    }

    #[test]
    fn routing_keys_keep_one_word_per_value() {
        assert!("library_nginx-1:2".chars().all(SPEC.name_char_ok));
        assert!(!"a/b".chars().all(SPEC.name_char_ok));
        for c in ['.', '*', '#', ' ', '\t'] {
            assert!(!(SPEC.key_char_ok)(c), "{c:?}");
        }
        assert!("library/nginx:1-2_x".chars().all(SPEC.key_char_ok));
    }
}
