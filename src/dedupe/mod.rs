//! Replay suppression: the ids of events already accepted, per endpoint, kept for a TTL in memory
//! (one replica) or in Redis (shared by replicas), and the freshness window on an event's own time.
//!
//! Only acceptance is recorded (a `2xx`: confirmed, or queued in the outbox), after it: a
//! delivery that failed is never suppressed, and its retry is published. A store that fails
//! suppresses nothing: it never costs a webhook more than the store's timeout.

pub mod fresh;
pub mod memory;
pub mod redis;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub use fresh::Stale;
pub use redis::RedisUrl;

use crate::telemetry::names;
use redis::{Pipeline, RedisError, Reply};

/// Longer than any sender's own retries (Harbor's and Distribution's run for minutes, Quay's and
/// MSR's too, Standard Webhooks senders' for about a day), short enough that a Redis holding every
/// key of a busy day stays small. GitHub's manual redeliveries reach 3 days back: raise it there.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);
pub const DEFAULT_PREFIX: &str = "regbridge:dedupe";
/// A Redis call's whole wait, a few round trips even across zones; beyond it the webhook goes on
/// without suppression.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);
/// The memory store's cap (about 8 MB); the oldest entries are evicted beyond it.
pub const DEFAULT_MAX_ENTRIES: usize = 100_000;
/// Ids longer than this are keyed by their SHA-256, so no key grows with a sender's id.
const MAX_ID_IN_KEY: usize = 200;

/// Replay suppression's settings; `None` in the configuration when it is off.
#[derive(Clone, Debug)]
pub struct Settings {
    pub backend: Backend,
    /// How long an accepted id suppresses its re-deliveries.
    pub ttl: Duration,
    /// Keys are `<prefix>:<endpoint>:<id>`.
    pub prefix: String,
    /// The most a store call may take before the webhook goes on without it.
    pub timeout: Duration,
}

#[derive(Clone, Debug)]
pub enum Backend {
    Memory { max_entries: usize },
    Redis(RedisUrl),
}

impl Settings {
    pub fn describe(&self) -> Value {
        let mut v = json!({
            "ttl_ms": self.ttl.as_millis() as u64,
            "prefix": self.prefix,
            "timeout_ms": self.timeout.as_millis() as u64,
        });
        match &self.backend {
            Backend::Memory { max_entries } => {
                v["store"] = "memory".into();
                v["max_entries"] = (*max_entries).into();
            }
            Backend::Redis(url) => {
                v["store"] = "redis".into();
                v["redis_url"] = url.describe().into();
            }
        }
        v
    }
}

enum Store {
    Memory(memory::MemoryStore),
    Redis(redis::Client),
}

/// The running store, shared by every worker through the ingress state; the Redis connection
/// task ends when the last clone goes.
#[derive(Clone)]
pub struct Dedupe {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    settings: Settings,
    /// Whether the last store call succeeded: the log says when it changes, not per request.
    healthy: AtomicBool,
    up: metrics::Gauge,
    check_errors: metrics::Counter,
    record_errors: metrics::Counter,
}

impl Dedupe {
    /// Opens the store; for Redis, starts its connection task on the current Tokio runtime and
    /// a first `PING` in the background (start-up never waits on Redis).
    pub fn start(settings: Settings) -> Self {
        let store = match &settings.backend {
            Backend::Memory { max_entries } => {
                Store::Memory(memory::MemoryStore::new(settings.ttl, *max_entries))
            }
            Backend::Redis(url) => Store::Redis(redis::Client::spawn(url.clone())),
        };
        let errors = |op: &'static str| metrics::counter!(names::DEDUPE_ERRORS, "op" => op);
        let inner = Inner {
            store,
            healthy: AtomicBool::new(true),
            up: metrics::gauge!(names::DEDUPE_UP),
            check_errors: errors("check"),
            record_errors: errors("record"),
            settings,
        };
        inner.up.set(1.0);
        let dedupe = Self { inner: Arc::new(inner) };
        tracing::info!(settings = %dedupe.inner.settings.describe(), "replay suppression on");
        if matches!(dedupe.inner.store, Store::Redis(_)) {
            let probe = dedupe.clone();
            tokio::spawn(async move { probe.ping().await });
        }
        dedupe
    }

    /// Whether every one of `ids` was accepted at `endpoint` within the TTL. `false` when there
    /// is none, and when the store cannot tell (logged on the change, counted).
    pub async fn seen(&self, endpoint: &str, ids: &[&str]) -> bool {
        let keys = self.keys(endpoint, ids);
        if keys.is_empty() {
            return false;
        }
        match &self.inner.store {
            Store::Memory(m) => {
                let prints: Vec<_> = keys.iter().map(|k| memory::fingerprint(k)).collect();
                m.seen_all(&prints, Instant::now())
            }
            Store::Redis(client) => {
                let mut args: Vec<&[u8]> = Vec::with_capacity(keys.len() + 1);
                args.push(b"EXISTS");
                args.extend(keys.iter().map(|k| k.as_bytes()));
                let mut p = Pipeline::new();
                p.cmd(&args);
                let found = match client.run(p, self.inner.settings.timeout).await.as_deref() {
                    Ok([Reply::Integer(n)]) => Ok(*n),
                    Ok([Reply::Error(e)]) => Err(RedisError::Server(e.clone())),
                    Ok(other) => Err(RedisError::Protocol(format!("EXISTS answered {other:?}"))),
                    Err(e) => Err(e.clone()),
                };
                match found {
                    Ok(n) => {
                        self.succeeded();
                        usize::try_from(n).is_ok_and(|n| n == keys.len())
                    }
                    Err(e) => {
                        self.failed("check", &e);
                        false
                    }
                }
            }
        }
    }

    /// Records `ids` as accepted at `endpoint` for the TTL (from the first acceptance: a key
    /// already there keeps its expiry). A failure is logged on the change and counted; the
    /// webhook's answer stands.
    pub async fn record(&self, endpoint: &str, ids: &[&str]) {
        let keys = self.keys(endpoint, ids);
        if keys.is_empty() {
            return;
        }
        match &self.inner.store {
            Store::Memory(m) => {
                let prints: Vec<_> = keys.iter().map(|k| memory::fingerprint(k)).collect();
                m.record(&prints, Instant::now());
            }
            Store::Redis(client) => {
                // The value says when it was accepted, for whoever looks at the key.
                let at = chrono::Utc::now().timestamp().to_string();
                let ttl = self.inner.settings.ttl.as_millis().max(1).to_string();
                let mut p = Pipeline::new();
                for key in &keys {
                    p.cmd(&[b"SET", key.as_bytes(), at.as_bytes(), b"NX", b"PX", ttl.as_bytes()]);
                }
                let result = client.run(p, self.inner.settings.timeout).await.and_then(|replies| {
                    // `OK`, or nil where the key was there already.
                    match replies.into_iter().find(|r| !matches!(r, Reply::Simple(_) | Reply::Bulk(None))) {
                        None => Ok(()),
                        Some(Reply::Error(e)) => Err(RedisError::Server(e)),
                        Some(other) => Err(RedisError::Protocol(format!("SET answered {other:?}"))),
                    }
                });
                match result {
                    Ok(()) => self.succeeded(),
                    Err(e) => self.failed("record", &e),
                }
            }
        }
    }

    /// One `PING`, to learn (and log) early whether the store answers.
    pub async fn ping(&self) {
        if let Store::Redis(client) = &self.inner.store {
            let mut p = Pipeline::new();
            p.cmd(&[b"PING"]);
            match client.run(p, redis::CONNECT_TIMEOUT * 2).await.as_deref() {
                Ok([Reply::Simple(_)]) => self.succeeded(),
                Ok(other) => self.failed("check", &RedisError::Protocol(format!("PING answered {other:?}"))),
                Err(e) => self.failed("check", e),
            }
        }
    }

    /// `<prefix>:<endpoint>:<id>` for each distinct id.
    fn keys(&self, endpoint: &str, ids: &[&str]) -> Vec<String> {
        let prefix = &self.inner.settings.prefix;
        let mut keys: Vec<String> = ids
            .iter()
            .map(|id| {
                if id.len() > MAX_ID_IN_KEY {
                    use sha2::Digest;
                    format!("{prefix}:{endpoint}:sha256:{}", hex::encode(sha2::Sha256::digest(id.as_bytes())))
                } else {
                    format!("{prefix}:{endpoint}:{id}")
                }
            })
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    fn succeeded(&self) {
        if !self.inner.healthy.swap(true, Ordering::Relaxed) {
            self.inner.up.set(1.0);
            tracing::info!(store = %self.store_name(), "dedupe: the store answers again; replay suppression resumed");
        }
    }

    fn failed(&self, op: &'static str, error: &RedisError) {
        match op {
            "record" => self.inner.record_errors.increment(1),
            _ => self.inner.check_errors.increment(1),
        }
        if self.inner.healthy.swap(false, Ordering::Relaxed) {
            self.inner.up.set(0.0);
            tracing::warn!(
                store = %self.store_name(),
                op,
                %error,
                "dedupe: the store failed; webhooks are accepted without replay suppression until it answers again"
            );
        } else {
            tracing::debug!(op, %error, "dedupe: the store still fails");
        }
    }

    fn store_name(&self) -> String {
        match &self.inner.settings.backend {
            Backend::Memory { .. } => "memory".into(),
            Backend::Redis(url) => url.describe(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory() -> Dedupe {
        Dedupe::start(Settings {
            backend: Backend::Memory { max_entries: 100 },
            ttl: Duration::from_secs(60),
            prefix: "p".into(),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    #[tokio::test]
    async fn a_delivery_is_a_duplicate_only_when_every_id_was_accepted_at_that_endpoint() {
        let d = memory();
        assert!(!d.seen("harbor", &["a", "b"]).await);
        d.record("harbor", &["a"]).await;
        assert!(!d.seen("harbor", &["a", "b"]).await, "b is new");
        assert!(d.seen("harbor", &["a", "a"]).await);
        assert!(!d.seen("harbor-eu", &["a"]).await, "keys are per endpoint");
        assert!(!d.seen("harbor", &[]).await);
        d.record("harbor", &["a", "b"]).await;
        assert!(d.seen("harbor", &["b", "a"]).await);
    }

    #[test]
    fn keys_name_the_endpoint_and_bound_long_ids() {
        let d = Dedupe {
            inner: Arc::new(Inner {
                store: Store::Memory(memory::MemoryStore::new(Duration::from_secs(1), 1)),
                settings: Settings {
                    backend: Backend::Memory { max_entries: 1 },
                    ttl: Duration::from_secs(1),
                    prefix: "regbridge:dedupe".into(),
                    timeout: DEFAULT_TIMEOUT,
                },
                healthy: AtomicBool::new(true),
                up: metrics::Gauge::noop(),
                check_errors: metrics::Counter::noop(),
                record_errors: metrics::Counter::noop(),
            }),
        };
        let long = "x".repeat(MAX_ID_IN_KEY + 1);
        let keys = d.keys("harbor", &["b:1", "a", "b:1", &long]);
        assert_eq!(keys.len(), 3);
        assert_eq!(keys[0], "regbridge:dedupe:harbor:a");
        assert_eq!(keys[1], "regbridge:dedupe:harbor:b:1");
        assert!(keys[2].starts_with("regbridge:dedupe:harbor:sha256:") && keys[2].len() < 120, "{}", keys[2]);
    }
}
