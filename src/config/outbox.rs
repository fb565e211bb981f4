//! The outbox's settings: `REGBRIDGE_OUTBOX*` over the file's `outbox:` section.

use std::path::PathBuf;

use serde::Deserialize;

use super::file::{scalar, FileConfig};
use super::{env, layered, ConfigError, Env};
use crate::outbox::{self, Settings};

/// The file's `outbox:` section; every value may also be a string, as in the environment.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxFile {
    #[serde(default, deserialize_with = "scalar")]
    enabled: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    dir: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    max_bytes: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    max_attempts: Option<String>,
}

/// `None` when the outbox is off: on by default when `has_broker` (a broker sink is configured).
pub fn settings(env: &Env, file: &FileConfig, has_broker: bool) -> Result<Option<Settings>, ConfigError> {
    let f = file.outbox.as_ref();
    let from = |get: fn(&OutboxFile) -> &Option<String>| f.and_then(|f| get(f).clone());
    let enabled = layered(env, "REGBRIDGE_OUTBOX", "outbox.enabled", &from(|f| &f.enabled), env::boolean)?
        .unwrap_or(has_broker);
    let dir =
        layered(env, "REGBRIDGE_OUTBOX_DIR", "outbox.dir", &from(|f| &f.dir), |v| Ok(PathBuf::from(v)))?
            .unwrap_or_else(|| PathBuf::from(outbox::DEFAULT_DIR));
    let max_bytes =
        layered(env, "REGBRIDGE_OUTBOX_MAX_BYTES", "outbox.max_bytes", &from(|f| &f.max_bytes), env::size)?
            .map_or(outbox::DEFAULT_MAX_BYTES, |b| b as u64);
    let max_attempts = layered(
        env,
        "REGBRIDGE_OUTBOX_MAX_ATTEMPTS",
        "outbox.max_attempts",
        &from(|f| &f.max_attempts),
        env::number::<u32>,
    )?
    .unwrap_or(outbox::DEFAULT_MAX_ATTEMPTS);
    if max_bytes == 0 {
        return Err(ConfigError::invalid("REGBRIDGE_OUTBOX_MAX_BYTES", "must be greater than 0"));
    }
    if max_attempts == 0 {
        return Err(ConfigError::invalid("REGBRIDGE_OUTBOX_MAX_ATTEMPTS", "must be at least 1"));
    }
    if dir.as_os_str().is_empty() {
        return Err(ConfigError::invalid("REGBRIDGE_OUTBOX_DIR", "must name a directory"));
    }
    Ok(enabled.then_some(Settings { max_bytes, max_attempts, ..Settings::new(dir) }))
}
