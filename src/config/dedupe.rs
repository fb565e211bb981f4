//! Replay suppression's settings: `REGBRIDGE_DEDUPE*` and `REGBRIDGE_REDIS_URL` over the file's
//! `dedupe:` section.

use std::time::Duration;

use serde::Deserialize;

use super::file::{scalar, FileConfig};
use super::{env, layered, ConfigError, Env};
use crate::dedupe::{self, Backend, RedisUrl, Settings};

/// The file's `dedupe:` section; every value may also be a string, as in the environment.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupeFile {
    /// `off`, `memory` or `redis`.
    #[serde(default, deserialize_with = "scalar")]
    store: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    ttl: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    redis_url: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    prefix: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    timeout: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    max_entries: Option<String>,
}

/// `None` when replay suppression is off (the default).
pub fn settings(env: &Env, file: &FileConfig) -> Result<Option<Settings>, ConfigError> {
    let f = file.dedupe.as_ref();
    let from = |get: fn(&DedupeFile) -> &Option<String>| f.and_then(|f| get(f).clone());
    let store = layered(env, "REGBRIDGE_DEDUPE", "dedupe.store", &from(|f| &f.store), |v| {
        match v.to_ascii_lowercase().as_str() {
            "off" => Ok(None),
            "memory" => Ok(Some(false)),
            "redis" => Ok(Some(true)),
            other => Err(format!("unknown dedupe store `{other}` (valid: off, memory, redis)")),
        }
    })?
    .flatten();
    let Some(redis) = store else { return Ok(None) };

    let positive = |var: &str, key: &str, from: Option<String>, default: Duration| match layered(
        env,
        var,
        key,
        &from,
        env::duration,
    )? {
        None => Ok(default),
        Some(d) if d.is_zero() => Err(ConfigError::invalid(var, "must be greater than 0")),
        Some(d) => Ok(d),
    };
    let ttl = positive("REGBRIDGE_DEDUPE_TTL", "dedupe.ttl", from(|f| &f.ttl), dedupe::DEFAULT_TTL)?;
    if ttl < Duration::from_secs(1) {
        return Err(ConfigError::invalid("REGBRIDGE_DEDUPE_TTL", "must be at least 1s"));
    }
    let timeout = positive(
        "REGBRIDGE_DEDUPE_TIMEOUT",
        "dedupe.timeout",
        from(|f| &f.timeout),
        dedupe::DEFAULT_TIMEOUT,
    )?;
    let prefix = layered(env, "REGBRIDGE_DEDUPE_PREFIX", "dedupe.prefix", &from(|f| &f.prefix), |v| {
        if v.is_empty() || v.chars().any(char::is_whitespace) {
            Err("must be a non-empty name without spaces".to_owned())
        } else {
            Ok(v.to_owned())
        }
    })?
    .unwrap_or_else(|| dedupe::DEFAULT_PREFIX.to_owned());
    let backend = if redis {
        let url = layered(
            env,
            "REGBRIDGE_REDIS_URL",
            "dedupe.redis_url",
            &from(|f| &f.redis_url),
            RedisUrl::parse,
        )?
        .ok_or_else(|| {
            ConfigError::invalid("REGBRIDGE_DEDUPE", "`redis` needs REGBRIDGE_REDIS_URL (redis://host:6379)")
        })?;
        Backend::Redis(url)
    } else {
        let max_entries = layered(
            env,
            "REGBRIDGE_DEDUPE_MAX_ENTRIES",
            "dedupe.max_entries",
            &from(|f| &f.max_entries),
            env::number::<usize>,
        )?
        .unwrap_or(dedupe::DEFAULT_MAX_ENTRIES);
        if max_entries == 0 {
            return Err(ConfigError::invalid("REGBRIDGE_DEDUPE_MAX_ENTRIES", "must be greater than 0"));
        }
        Backend::Memory { max_entries }
    };
    Ok(Some(Settings { backend, ttl, prefix, timeout }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<Option<Settings>, ConfigError> {
        let env: Env = vars.iter().copied().collect();
        settings(&env, &FileConfig::default())
    }

    #[test]
    fn off_unless_asked_for() {
        assert!(load(&[]).unwrap().is_none());
        assert!(load(&[("REGBRIDGE_DEDUPE", "off"), ("REGBRIDGE_REDIS_URL", "redis://h")])
            .unwrap()
            .is_none());
    }

    #[test]
    fn memory_and_redis_with_their_defaults() {
        let m = load(&[("REGBRIDGE_DEDUPE", "memory")]).unwrap().unwrap();
        assert!(matches!(m.backend, Backend::Memory { max_entries: dedupe::DEFAULT_MAX_ENTRIES }));
        assert_eq!(
            (m.ttl, m.prefix.as_str(), m.timeout),
            (dedupe::DEFAULT_TTL, "regbridge:dedupe", dedupe::DEFAULT_TIMEOUT)
        );
        let r = load(&[
            ("REGBRIDGE_DEDUPE", "redis"),
            ("REGBRIDGE_REDIS_URL", "redis://:pw@redis:6380/1"),
            ("REGBRIDGE_DEDUPE_TTL", "48h"),
            ("REGBRIDGE_DEDUPE_PREFIX", "rb:prod"),
            ("REGBRIDGE_DEDUPE_TIMEOUT", "20ms"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(r.ttl, Duration::from_secs(48 * 3600));
        assert_eq!(r.timeout, Duration::from_millis(20));
        assert_eq!(r.describe()["redis_url"], "redis://:[redacted]@redis:6380/1");
        assert_eq!(r.describe()["prefix"], "rb:prod");
    }

    #[test]
    fn bad_values_name_their_variable() {
        let err = |vars: &[(&str, &str)]| load(vars).unwrap_err().to_string();
        assert!(err(&[("REGBRIDGE_DEDUPE", "yes")]).starts_with("REGBRIDGE_DEDUPE: unknown dedupe store"));
        assert!(err(&[("REGBRIDGE_DEDUPE", "redis")]).contains("needs REGBRIDGE_REDIS_URL"));
        let redis = ("REGBRIDGE_DEDUPE", "redis");
        assert!(err(&[redis, ("REGBRIDGE_REDIS_URL", "rediss://h")]).starts_with("REGBRIDGE_REDIS_URL: TLS"));
        let memory = ("REGBRIDGE_DEDUPE", "memory");
        assert!(err(&[memory, ("REGBRIDGE_DEDUPE_TTL", "0")]).starts_with("REGBRIDGE_DEDUPE_TTL"));
        assert!(err(&[memory, ("REGBRIDGE_DEDUPE_TTL", "500ms")]).contains("at least 1s"));
        assert!(
            err(&[memory, ("REGBRIDGE_DEDUPE_MAX_ENTRIES", "0")]).starts_with("REGBRIDGE_DEDUPE_MAX_ENTRIES")
        );
        assert!(err(&[memory, ("REGBRIDGE_DEDUPE_PREFIX", "a b")]).starts_with("REGBRIDGE_DEDUPE_PREFIX"));
    }
}
