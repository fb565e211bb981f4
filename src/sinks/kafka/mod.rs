//! Kafka sink (rdkafka): CloudEvents Kafka binding, idempotent producer, `acks=all`.
//!
//! Configured by `REGBRIDGE_KAFKA_BROKERS` (or `sinks.kafka.brokers`). Every other
//! `REGBRIDGE_KAFKA_<NAME>` variable is passed to librdkafka as `<name>` lower-cased with `_` → `.`
//! (`REGBRIDGE_KAFKA_SASL_MECHANISM` → `sasl.mechanism`), so SASL and TLS need no code here.

mod sink;
mod topics;

pub use sink::{record, Record};
pub use topics::TopicSettings;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use rdkafka::ClientConfig;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{Sink, SinkConfig, SinkError, SinkSpec};
use crate::config::{ConfigError, Env};

pub const SPEC: SinkSpec = SinkSpec {
    name: "kafka",
    is_broker: true,
    configure,
    name_field: "topic",
    key_field: None,
    default_name: "registry-events",
    default_key: None,
    // Kafka topic names allow only these.
    name_char_ok: |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'),
    key_char_ok: |_| true,
    // Every other `REGBRIDGE_KAFKA_*` is a librdkafka setting passed through.
    env: &[ENV_PREFIX],
};

const ENV_BROKERS: &str = "REGBRIDGE_KAFKA_BROKERS";
const ENV_PREFIX: &str = "REGBRIDGE_KAFKA_";

/// Settings regbridge chooses; any of them can be overridden by the user's own. (The load
/// harness's direct producer uses them too, so that its ceiling pays the same.)
pub const DEFAULTS: &[(&str, &str)] = &[
    // Exactly-once per partition from the producer's side, which requires acks=all.
    ("enable.idempotence", "true"),
    ("acks", "all"),
    // Webhooks arrive one by one and each waits for its delivery report: the linger is added to
    // every answer. 1 ms still batches concurrent webhooks; the README's performance section
    // compares 0, 0.5, 1, 2 and 5.
    ("linger.ms", "1"),
    ("compression.type", "lz4"),
    // Bounded: a message still undelivered after this fails its delivery future. The webhook
    // has long been answered 503 by then (publish budget), so the sender retries anyway.
    ("message.timeout.ms", "30000"),
    // Readiness follows the broker states these statistics report; 250 ms keeps `/readyz` prompt.
    ("statistics.interval.ms", "250"),
    ("client.id", "regbridge"),
];

/// regbridge's own `REGBRIDGE_KAFKA_*` variables; every other one is a librdkafka setting.
const ENV_CREATE_TOPICS: &str = "REGBRIDGE_KAFKA_CREATE_TOPICS";
const ENV_PARTITIONS: &str = "REGBRIDGE_KAFKA_TOPIC_PARTITIONS";
const ENV_REPLICATION: &str = "REGBRIDGE_KAFKA_TOPIC_REPLICATION_FACTOR";
const OWN: &[&str] = &["BROKERS", "CREATE_TOPICS", "TOPIC_PARTITIONS", "TOPIC_REPLICATION_FACTOR"];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSection {
    brokers: Option<String>,
    #[serde(default)]
    settings: BTreeMap<String, String>,
    create_topics: Option<bool>,
    topic_partitions: Option<i32>,
    topic_replication_factor: Option<i32>,
}

/// librdkafka settings, defaults first, then the file's, then the environment's; and how
/// missing topics are handled.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    settings: BTreeMap<String, String>,
    topics: TopicSettings,
}

fn configure(section: Option<&Value>, env: &Env) -> Result<Option<Arc<dyn SinkConfig>>, ConfigError> {
    let file: FileSection = section
        .map(|s| serde_json::from_value(s.clone()).map_err(|e| ConfigError::invalid("sinks.kafka", e)))
        .transpose()?
        .unwrap_or_default();
    let Some(brokers) = env.get(ENV_BROKERS).map(str::to_owned).or(file.brokers) else {
        return Ok(None);
    };
    let mut settings: BTreeMap<String, String> =
        DEFAULTS.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    settings.insert("bootstrap.servers".into(), brokers);
    settings.extend(file.settings);
    for (suffix, value) in env.prefixed(ENV_PREFIX) {
        if !OWN.contains(&suffix) {
            settings.insert(suffix.to_ascii_lowercase().replace('_', "."), value.to_owned());
        }
    }
    let count = |v: &str| match v.parse::<i32>() {
        Ok(n) if n == -1 || n > 0 => Ok(n),
        _ => Err(format!("`{v}` is not a positive number (or -1 for the broker's default)")),
    };
    let defaults = TopicSettings::default();
    let topics = TopicSettings {
        create: env
            .parse(ENV_CREATE_TOPICS, crate::config::env::boolean)?
            .or(file.create_topics)
            .unwrap_or(defaults.create),
        partitions: env
            .parse(ENV_PARTITIONS, count)?
            .or(file.topic_partitions)
            .unwrap_or(defaults.partitions),
        replication_factor: env
            .parse(ENV_REPLICATION, count)?
            .or(file.topic_replication_factor)
            .unwrap_or(defaults.replication_factor),
    };
    let config = KafkaConfig { settings, topics };
    // librdkafka checks names and values when a client is created; do it now so a typo stops
    // start-up (and check-config) instead of the first publish.
    config
        .client_config()
        .create::<rdkafka::producer::BaseProducer>()
        .map_err(|e| ConfigError::invalid("REGBRIDGE_KAFKA_*", e))?;
    Ok(Some(Arc::new(config)))
}

impl KafkaConfig {
    fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        for (k, v) in &self.settings {
            c.set(k, v);
        }
        c
    }
}

/// Settings whose values are credentials.
fn is_secret(key: &str) -> bool {
    ["password", "secret", "sasl.oauthbearer.config", "ssl.key.pem", "ssl_key"]
        .iter()
        .any(|s| key.contains(s))
}

impl SinkConfig for KafkaConfig {
    fn spec(&self) -> &'static SinkSpec {
        &SPEC
    }

    fn describe(&self) -> Value {
        let settings: serde_json::Map<String, Value> = self
            .settings
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(if is_secret(k) { "[redacted]" } else { v.as_str() })))
            .collect();
        json!({
            "librdkafka": settings,
            "create_topics": self.topics.create,
            "topic_partitions": self.topics.partitions,
            "topic_replication_factor": self.topics.replication_factor,
        })
    }

    fn build(&self) -> BoxFuture<'_, Result<Arc<dyn Sink>, SinkError>> {
        Box::pin(async move {
            sink::KafkaSink::connect(self.client_config(), self.topics.clone())
                .map(|s| Arc::new(s) as Arc<dyn Sink>)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_pass_through_and_secrets_are_masked() {
        let env: Env = [
            ("REGBRIDGE_KAFKA_BROKERS", "k1:9092,k2:9092"),
            ("REGBRIDGE_KAFKA_SECURITY_PROTOCOL", "sasl_ssl"),
            ("REGBRIDGE_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"),
            ("REGBRIDGE_KAFKA_SASL_USERNAME", "bridge"),
            ("REGBRIDGE_KAFKA_SASL_PASSWORD", "hunter2"),
            ("REGBRIDGE_KAFKA_LINGER_MS", "10"),
        ]
        .into_iter()
        .collect();
        let c = configure(None, &env).unwrap().unwrap();
        let d = c.describe();
        let s = &d["librdkafka"];
        assert_eq!(s["bootstrap.servers"], "k1:9092,k2:9092");
        assert_eq!(s["security.protocol"], "sasl_ssl");
        assert_eq!(s["sasl.mechanism"], "SCRAM-SHA-512");
        assert_eq!(s["linger.ms"], "10");
        assert_eq!(s["acks"], "all");
        assert_eq!(s["enable.idempotence"], "true");
        assert_eq!(s["sasl.password"], "[redacted]");
        assert!(!d.to_string().contains("hunter2"));
    }

    #[test]
    fn topic_settings_are_regbridge_s_own_and_not_passed_to_librdkafka() {
        let env: Env = [
            ("REGBRIDGE_KAFKA_BROKERS", "k:9092"),
            ("REGBRIDGE_KAFKA_CREATE_TOPICS", "false"),
            ("REGBRIDGE_KAFKA_TOPIC_PARTITIONS", "6"),
            ("REGBRIDGE_KAFKA_TOPIC_REPLICATION_FACTOR", "3"),
        ]
        .into_iter()
        .collect();
        let d = configure(None, &env).unwrap().unwrap().describe();
        assert_eq!(
            (&d["create_topics"], &d["topic_partitions"], &d["topic_replication_factor"]),
            (&json!(false), &json!(6), &json!(3))
        );
        assert!(d["librdkafka"].get("create.topics").is_none(), "{d}");
        let defaults =
            configure(None, &[("REGBRIDGE_KAFKA_BROKERS", "k:9092")].into_iter().collect()).unwrap().unwrap();
        let d = defaults.describe();
        assert_eq!(
            (&d["create_topics"], &d["topic_partitions"]),
            (&json!(true), &json!(-1)),
            "broker defaults"
        );
        let bad: Env = [("REGBRIDGE_KAFKA_BROKERS", "k:9092"), ("REGBRIDGE_KAFKA_TOPIC_PARTITIONS", "0")]
            .into_iter()
            .collect();
        assert!(configure(None, &bad)
            .unwrap_err()
            .to_string()
            .starts_with("REGBRIDGE_KAFKA_TOPIC_PARTITIONS"));
    }

    #[test]
    fn unknown_settings_fail_at_load_and_absent_brokers_mean_off() {
        let env: Env = [("REGBRIDGE_KAFKA_BROKERS", "k:9092"), ("REGBRIDGE_KAFKA_NOT_A_SETTING", "1")]
            .into_iter()
            .collect();
        let e = configure(None, &env).unwrap_err().to_string();
        assert!(e.contains("REGBRIDGE_KAFKA_") && e.contains("not.a.setting"), "{e}");
        assert!(configure(None, &Env::default()).unwrap().is_none());
    }
}
