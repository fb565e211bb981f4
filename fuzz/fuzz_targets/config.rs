//! Configuration: the YAML file (`REGBRIDGE_CONFIG`, with `${VAR}` substitution) under the
//! environment, through `Config::load` as start-up and `check-config` run it, then `describe`.
//!
//! Input: the file's text, a NUL byte, then `NAME=value` lines for the environment. The file is
//! written to one temporary path per process; `REGBRIDGE_CONFIG` and `REGBRIDGE_ROUTES` always
//! name this target's own files (routes: an empty rules list), so no input makes it read
//! elsewhere. Seeds: `fuzz/seed`.
//!
//! Beyond "never panics", what start-up does with a configuration that loads must not panic
//! either: every duration can be added to now (actix, tokio and the shutdown add them to an
//! `Instant`, which panics on overflow), and the counts that become semaphores are within tokio's
//! `Semaphore::MAX_PERMITS`.
//!
//! Skipped: inputs naming Kafka, whose validation creates a librdkafka client (threads, DNS,
//! connections to the brokers named: not ours to fuzz, and slow); inputs naming TLS, whose
//! validation reads the files named (`/dev/stdin` would block); and inputs with a backslash, as a
//! YAML escape could spell either name.
#![no_main]

use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use regbridge::config::{Config, Env};
use tokio::sync::Semaphore;

static FILES: LazyLock<(PathBuf, PathBuf)> = LazyLock::new(|| {
    let dir = std::env::temp_dir();
    let id = std::process::id();
    let routes = dir.join(format!("regbridge-fuzz-routes-{id}.yaml"));
    std::fs::write(&routes, "routes: []\n").expect("temp dir is writable");
    (dir.join(format!("regbridge-fuzz-config-{id}.yaml")), routes)
});

fuzz_target!(|data: &[u8]| {
    let has = |needle: &[u8]| data.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle));
    if has(b"kafka") || has(b"tls") || data.contains(&b'\\') {
        return;
    }
    let text = String::from_utf8_lossy(data);
    let (file, vars) = text.split_once('\0').unwrap_or((&text, ""));
    let (config_path, routes_path) = &*FILES;
    let mut env: Vec<(String, String)> = vars
        .lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| *k != "REGBRIDGE_CONFIG" && *k != "REGBRIDGE_ROUTES")
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    env.push(("REGBRIDGE_ROUTES".into(), routes_path.display().to_string()));
    if !file.is_empty() {
        std::fs::write(config_path, file).expect("temp dir is writable");
        env.push(("REGBRIDGE_CONFIG".into(), config_path.display().to_string()));
    }
    let Ok(config) = Config::load(&env.into_iter().collect::<Env>()) else { return };
    config.describe();
    let mut durations = vec![
        config.body_timeout,
        config.header_timeout,
        config.keep_alive,
        config.publish_timeout,
        config.shutdown_timeout,
    ];
    durations.extend(config.endpoints.iter().filter_map(|e| e.max_event_age));
    durations.extend(config.dedupe.iter().flat_map(|d| [d.ttl, d.timeout]));
    for d in durations {
        assert!(Instant::now().checked_add(d).is_some(), "{d:?} passed validation but overflows a deadline");
    }
    for permits in [config.max_in_flight, config.max_uploads] {
        assert!(permits <= Semaphore::MAX_PERMITS, "{permits} passed validation but is too many permits");
    }
});
