//! The environment as configuration sees it, plus the value parsers every setting shares.

use std::collections::HashMap;
use std::time::Duration;

use super::ConfigError;

/// A snapshot of the process environment (or a test's map). Empty values count as unset, so
/// `REGBRIDGE_KAFKA_BROKERS=` in a manifest turns a sink off instead of failing on "".
#[derive(Clone, Debug, Default)]
pub struct Env(HashMap<String, String>);

impl Env {
    pub fn from_process() -> Self {
        Self(std::env::vars().collect())
    }

    /// Every variable's name, set or empty.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str).filter(|v| !v.trim().is_empty())
    }

    /// Variables starting with `prefix`, as (suffix, value), sorted for stable output.
    pub fn prefixed<'a>(&'a self, prefix: &'a str) -> Vec<(&'a str, &'a str)> {
        let mut v: Vec<_> = self
            .0
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?, v.as_str())))
            .filter(|(k, v)| !k.is_empty() && !v.trim().is_empty())
            .collect();
        v.sort_unstable();
        v
    }

    /// Parse `name` if set, naming the variable in the error.
    pub fn parse<T>(
        &self,
        name: &str,
        f: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        self.get(name).map(|v| f(v.trim()).map_err(|p| ConfigError::invalid(name, p))).transpose()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Env {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self(iter.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }
}

/// Comma-separated list; blanks dropped.
pub fn list(v: &str) -> Vec<String> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// `250ms`, `2s`, `1m`, or a bare number of seconds.
pub fn duration(v: &str) -> Result<Duration, String> {
    let v = v.trim();
    let (num, unit) = v.find(|c: char| !c.is_ascii_digit() && c != '.').map_or((v, "s"), |i| v.split_at(i));
    let n: f64 = num.parse().map_err(|_| format!("`{v}` is not a duration (e.g. 500ms, 2s, 1m)"))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        other => return Err(format!("unknown duration unit `{other}` in `{v}` (ms, s, m, h)")),
    };
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| *d <= MAX_DURATION)
        .ok_or_else(|| format!("`{v}` is too long a duration (at most 100 years)"))
}

/// The longest duration a setting may take. Each one is added to a clock reading somewhere
/// (actix's header and keep-alive deadlines, tokio's timers, the shutdown deadline), which panics
/// once the sum passes 2^63 s: `REGBRIDGE_KEEP_ALIVE=9999999999999999999` passed `check-config`
/// and then every connection panicked its worker. A century is far below that and far above
/// anything a setting means; the `config` fuzz target checks every loaded duration against a clock.
const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Bytes, with an optional `KiB`/`MiB`/`GiB`/`KB`/`MB`/`GB` suffix.
pub fn size(v: &str) -> Result<usize, String> {
    let v = v.trim();
    let i = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let n: usize = v[..i].parse().map_err(|_| format!("`{v}` is not a size (e.g. 1048576, 512KiB, 1MiB)"))?;
    let mult = match v[i..].trim() {
        "" | "B" => 1,
        "KiB" => 1024,
        "MiB" => 1024 * 1024,
        "GiB" => 1024 * 1024 * 1024,
        "KB" => 1000,
        "MB" => 1000 * 1000,
        "GB" => 1000 * 1000 * 1000,
        other => return Err(format!("unknown size unit `{other}` in `{v}` (KiB, MiB, GiB, KB, MB, GB)")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("`{v}` is too large"))
}

pub fn boolean(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("`{v}` is not a boolean (true/false)")),
    }
}

pub fn number<T: std::str::FromStr>(v: &str) -> Result<T, String> {
    v.parse().map_err(|_| format!("`{v}` is not a valid number"))
}
