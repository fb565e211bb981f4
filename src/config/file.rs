//! The optional YAML file (`REGBRIDGE_CONFIG`): named endpoints, sink sections and everything the
//! environment can set. `${VAR}` is replaced by the variable's value before parsing, so secrets
//! can stay in the environment (Kubernetes Secrets) while the file lives in a ConfigMap.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::secret::CredentialFile;
use super::{env, ConfigError, Env};
use crate::verify::{Scheme, SignatureMode};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default, deserialize_with = "scalar")]
    pub listen: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    pub body_limit: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    pub max_in_flight: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    pub max_events_per_request: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    pub body_timeout: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    pub header_timeout: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    pub keep_alive: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    pub max_uploads: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    pub max_uploads_per_address: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    pub max_connections_per_address: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    pub publish_timeout: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    pub shutdown_timeout: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    pub include_original: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    pub rate_limit: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    pub rate_burst: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    pub content_mode: Option<String>,
    #[serde(default)]
    pub routes: Option<String>,
    /// Peers whose `Forwarded` / `X-Forwarded-For` name the sender (CIDRs).
    pub trusted_proxies: Option<Vec<String>>,
    #[serde(default)]
    pub endpoints: BTreeMap<String, EndpointFile>,
    /// Sink sections by sink name; each sink validates its own.
    #[serde(default)]
    pub sinks: BTreeMap<String, Value>,
    #[serde(default)]
    pub outbox: Option<super::outbox::OutboxFile>,
    /// Replay suppression: `store`, `ttl`, `redis_url`, `prefix`, `timeout`, `max_entries`.
    #[serde(default)]
    pub dedupe: Option<super::dedupe::DedupeFile>,
    /// The listener's certificate, key and client CA (paths).
    #[serde(default)]
    pub tls: Option<super::tls::TlsFile>,
}

/// One endpoint in the file. `credentials` may also be spelled `secrets` (Root), `auth`
/// (Harbor) or `tokens` (MSR), matching the environment variables.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointFile {
    pub dialect: Option<String>,
    #[serde(default, alias = "secrets", alias = "auth", alias = "tokens")]
    pub credentials: Vec<CredentialFile>,
    pub verify: Option<Scheme>,
    /// The header the `authorization` scheme compares, when not the dialect's own (an
    /// EventBridge API destination's API-key header, say).
    pub header: Option<String>,
    pub signature_mode: Option<SignatureMode>,
    #[serde(default, deserialize_with = "scalar")]
    pub tolerance: Option<String>,
    pub source: Option<String>,
    pub rate_limit: Option<u32>,
    pub rate_burst: Option<u32>,
    #[serde(default)]
    pub unauthenticated: bool,
    pub include_original: Option<bool>,
    #[serde(default)]
    pub passthrough: bool,
    /// The source networks (CIDRs) that may send to this endpoint; any when absent.
    pub allow_from: Option<Vec<String>>,
    /// Events dated longer ago than this (or too far ahead) are refused: the freshness window.
    #[serde(default, deserialize_with = "scalar")]
    pub max_event_age: Option<String>,
    /// Whether a TLS client certificate (from the client CA) is `required` or `optional`.
    pub client_cert: Option<crate::verify::ClientCertMode>,
    /// The names (DNS SAN or subject CN) one of which the client certificate must carry.
    pub client_subjects: Option<Vec<String>>,
}

impl EndpointFile {
    pub fn tolerance_secs(&self) -> Result<Option<u64>, ConfigError> {
        self.tolerance
            .as_deref()
            .map(|t| {
                env::duration(t)
                    .map(|d| d.as_secs())
                    .map_err(|p| ConfigError::invalid("endpoints.*.tolerance", p))
            })
            .transpose()
    }
}

impl FileConfig {
    pub fn read(path: &Path, env: &Env) -> Result<Self, ConfigError> {
        let var = "REGBRIDGE_CONFIG";
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::invalid(var, format!("cannot read {}: {e}", path.display())))?;
        let text = substitute(&text, env)
            .map_err(|p| ConfigError::invalid(var, format!("{}: {p}", path.display())))?;
        serde_saphyr::from_str(&text)
            .map_err(|e| ConfigError::invalid(var, format!("{}: {e}", path.display())))
    }
}

/// Replaces `${NAME}` with the environment's value; an unset variable is an error, not "".
pub fn substitute(text: &str, env: &Env) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or("unterminated `${`")?;
        let name = &after[..end];
        out.push_str(env.get(name).ok_or_else(|| format!("`${{{name}}}` is used but {name} is not set"))?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Accepts a YAML string, number or boolean as text, so `body_limit: 1048576` and
/// `body_limit: 1MiB` both work and are parsed like the environment variable.
pub fn scalar<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::Bool(b)) => Some(b.to_string()),
        Some(other) => return Err(serde::de::Error::custom(format!("expected a scalar, got {other}"))),
    })
}
