//! NATS sink (async-nats): JetStream publish awaiting the PubAck, or core NATS with a flush.
//!
//! Configured by `REGBRIDGE_NATS_URL` (credentials may ride in the URL, or in a `.creds` file).
//! In JetStream mode the stream is created when absent, and its subjects are extended when they
//! do not cover ours; nothing else of an operator-managed stream is changed.

mod sink;

pub use sink::message;

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{Sink, SinkConfig, SinkError, SinkSpec};
use crate::config::{ConfigError, Env};

pub const SPEC: SinkSpec = SinkSpec {
    name: "nats",
    is_broker: true,
    configure,
    name_field: "subject",
    key_field: None,
    default_name: "registry.{registry}.{noun}.{verb}",
    default_key: None,
    // A substituted value must stay one subject token: no separator, no wildcards, no spaces.
    name_char_ok: |c| !matches!(c, '.' | '*' | '>') && !c.is_whitespace() && !c.is_control(),
    key_char_ok: |_| true,
    env: &[
        "REGBRIDGE_NATS_URL",
        "REGBRIDGE_NATS_MODE",
        "REGBRIDGE_NATS_STREAM",
        "REGBRIDGE_NATS_SUBJECTS",
        "REGBRIDGE_NATS_CREDS_FILE",
    ],
};

pub const DEFAULT_STREAM: &str = "REGISTRY_EVENTS";
pub const DEFAULT_SUBJECTS: &str = "registry.>";

/// JetStream (acknowledged, deduplicated by `Nats-Msg-Id`) or core NATS (fire and flush).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Jetstream,
    Core,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSection {
    url: Option<String>,
    mode: Option<Mode>,
    stream: Option<String>,
    subjects: Option<Vec<String>>,
    creds_file: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NatsConfig {
    url: String,
    mode: Mode,
    stream: String,
    subjects: Vec<String>,
    creds_file: Option<String>,
}

fn configure(section: Option<&Value>, env: &Env) -> Result<Option<Arc<dyn SinkConfig>>, ConfigError> {
    let file: FileSection = section
        .map(|s| serde_json::from_value(s.clone()).map_err(|e| ConfigError::invalid("sinks.nats", e)))
        .transpose()?
        .unwrap_or_default();
    let Some(url) = env.get("REGBRIDGE_NATS_URL").map(str::to_owned).or(file.url) else {
        return Ok(None);
    };
    for server in url.split(',') {
        server
            .trim()
            .parse::<async_nats::ServerAddr>()
            .map_err(|e| ConfigError::invalid("REGBRIDGE_NATS_URL", format!("`{}`: {e}", mask(server))))?;
    }
    let mode = env
        .parse("REGBRIDGE_NATS_MODE", |v| match v {
            "jetstream" => Ok(Mode::Jetstream),
            "core" => Ok(Mode::Core),
            other => Err(format!("unknown mode `{other}` (valid: jetstream, core)")),
        })?
        .or(file.mode)
        .unwrap_or(Mode::Jetstream);
    let stream = env.get("REGBRIDGE_NATS_STREAM").map(str::to_owned).or(file.stream);
    let stream = stream.unwrap_or_else(|| DEFAULT_STREAM.to_owned());
    if stream.is_empty() || stream.contains(['.', '*', '>', ' ', '/', '\\']) {
        return Err(ConfigError::invalid(
            "REGBRIDGE_NATS_STREAM",
            format!("`{stream}` is not a valid stream name"),
        ));
    }
    let subjects = env
        .get("REGBRIDGE_NATS_SUBJECTS")
        .map(crate::config::env::list)
        .or(file.subjects)
        .unwrap_or_else(|| vec![DEFAULT_SUBJECTS.to_owned()]);
    let creds_file = env.get("REGBRIDGE_NATS_CREDS_FILE").map(str::to_owned).or(file.creds_file);
    Ok(Some(Arc::new(NatsConfig { url, mode, stream, subjects, creds_file })))
}

/// The URL with any user info replaced, for logs and `check-config`.
fn mask(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}[redacted]{}", &url[..s + 3], &url[at..]),
        _ => url.to_owned(),
    }
}

impl SinkConfig for NatsConfig {
    fn spec(&self) -> &'static SinkSpec {
        &SPEC
    }

    fn describe(&self) -> Value {
        json!({
            "url": self.url.split(',').map(mask).collect::<Vec<_>>().join(","),
            "mode": format!("{:?}", self.mode).to_lowercase(),
            "stream": (self.mode == Mode::Jetstream).then_some(&self.stream),
            "subjects": (self.mode == Mode::Jetstream).then_some(&self.subjects),
            "creds_file": self.creds_file,
        })
    }

    fn build(&self) -> BoxFuture<'_, Result<Arc<dyn Sink>, SinkError>> {
        Box::pin(
            async move { sink::NatsSink::connect(self.clone()).await.map(|s| Arc::new(s) as Arc<dyn Sink>) },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs.iter().map(|(k, v)| (*k, *v)).collect()
    }

    #[test]
    fn defaults_cover_the_default_subjects() {
        let c =
            configure(None, &env(&[("REGBRIDGE_NATS_URL", "nats://u:p@127.0.0.1:4222")])).unwrap().unwrap();
        let d = c.describe();
        assert_eq!(d["mode"], "jetstream");
        assert_eq!(d["stream"], DEFAULT_STREAM);
        assert_eq!(d["subjects"], json!(["registry.>"]));
        assert_eq!(d["url"], "nats://[redacted]@127.0.0.1:4222");
        assert!(SPEC.default_name.starts_with("registry."));
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [("REGBRIDGE_NATS_MODE", "fast"), ("REGBRIDGE_NATS_STREAM", "a.b")] {
            let e = configure(None, &env(&[("REGBRIDGE_NATS_URL", "nats://127.0.0.1:4222"), (var, value)]))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(var), "{e}");
        }
        let e = configure(None, &env(&[("REGBRIDGE_NATS_URL", "http://x:4222")])).unwrap_err().to_string();
        assert!(e.starts_with("REGBRIDGE_NATS_URL"), "{e}");
        assert!(configure(None, &Env::default()).unwrap().is_none());
    }
}
