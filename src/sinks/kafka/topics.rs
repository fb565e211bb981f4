//! Topics: looked up in the cluster's metadata before the first record to each, created when
//! missing (unless switched off), and remembered, so that a missing topic is a named cause
//! rather than a delivery that never confirms.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::ClientContext;

use crate::sinks::SinkError;
use crate::telemetry::names;

/// How regbridge treats topics it routes to but finds missing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicSettings {
    /// Create missing topics (off for clusters where regbridge has no such right).
    pub create: bool,
    /// Partitions and replication factor of created topics; -1: the broker's defaults.
    pub partitions: i32,
    pub replication_factor: i32,
}

impl Default for TopicSettings {
    fn default() -> Self {
        Self { create: true, partitions: -1, replication_factor: -1 }
    }
}

/// A missing topic is looked up again after this long (an operator may have created it).
const RECHECK: Duration = Duration::from_secs(5);
/// A missing topic nothing was routed to for this long no longer counts against readiness.
const FORGET: Duration = Duration::from_secs(60);
/// Bound on one metadata lookup or creation.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// The topics known to exist, and those known missing with why and since when.
pub struct Topics {
    settings: TopicSettings,
    config: ClientConfig,
    known: RwLock<HashSet<String>>,
    /// Why each is missing, when it was last looked up, and when last routed to.
    missing: Mutex<HashMap<String, Missing>>,
    admin: Mutex<Option<std::sync::Arc<AdminClient<DefaultClientContext>>>>,
    gauge: metrics::Gauge,
}

struct Missing {
    why: String,
    checked: Instant,
    wanted: Instant,
}

fn rejected(reason: String) -> SinkError {
    SinkError::Rejected { sink: "kafka", reason }
}

fn unavailable(reason: String) -> SinkError {
    SinkError::Unavailable { sink: "kafka", reason }
}

impl Topics {
    /// `config` is the producer's (the admin client, made on first need, connects alike).
    pub fn new(settings: TopicSettings, config: ClientConfig) -> Self {
        Self {
            settings,
            config,
            known: RwLock::default(),
            missing: Mutex::default(),
            admin: Mutex::default(),
            gauge: metrics::gauge!(names::KAFKA_TOPICS_MISSING),
        }
    }

    /// `Ok` once `topic` exists (looked up, or created); a topic that cannot be had is refused
    /// for good (`Rejected`, naming it), a lookup that cannot complete is `Unavailable`.
    pub async fn ensure<C: ClientContext + 'static>(
        &self,
        producer: &FutureProducer<C>,
        topic: &str,
    ) -> Result<(), SinkError> {
        if self.known.read().unwrap_or_else(PoisonError::into_inner).contains(topic) {
            return Ok(());
        }
        if let Some(m) = self.missing.lock().unwrap_or_else(PoisonError::into_inner).get_mut(topic) {
            m.wanted = Instant::now();
            if m.checked.elapsed() < RECHECK {
                // Not asked again yet: for now, not a fresh refusal (which the outbox counts).
                return Err(unavailable(m.why.clone()));
            }
        }
        let found = self.lookup(producer, topic).await?;
        let outcome = match (found, self.settings.create) {
            (true, _) => Ok(()),
            (false, true) => self.create(topic).await,
            (false, false) => Err(rejected(format!(
                "topic `{topic}` does not exist and creating topics is off (REGBRIDGE_KAFKA_CREATE_TOPICS)"
            ))),
        };
        let mut missing = self.missing.lock().unwrap_or_else(PoisonError::into_inner);
        match outcome {
            Ok(()) => {
                self.known.write().unwrap_or_else(PoisonError::into_inner).insert(topic.to_owned());
                if missing.remove(topic).is_some() {
                    tracing::info!(sink = "kafka", topic, "topic is available now");
                    topic_gauge(topic).set(0.0);
                }
                self.gauge.set(missing.len() as f64);
                Ok(())
            }
            // Another request found it meanwhile: it is there.
            Err(_) if self.known.read().unwrap_or_else(PoisonError::into_inner).contains(topic) => Ok(()),
            Err(e) => {
                let why = match &e {
                    SinkError::Rejected { reason, .. } | SinkError::Unavailable { reason, .. } => {
                        reason.clone()
                    }
                    other => other.to_string(),
                };
                let now = Instant::now();
                let seen = Missing { why: why.clone(), checked: now, wanted: now };
                if missing.insert(topic.to_owned(), seen).is_none() {
                    tracing::error!(sink = "kafka", topic, reason = %why, "topic missing: events routed to it are not delivered");
                    topic_gauge(topic).set(1.0);
                }
                self.gauge.set(missing.len() as f64);
                Err(e)
            }
        }
    }

    /// Whether the cluster's metadata lists `topic` (a blocking call, run aside).
    async fn lookup<C: ClientContext + 'static>(
        &self,
        producer: &FutureProducer<C>,
        topic: &str,
    ) -> Result<bool, SinkError> {
        let (producer, name) = (producer.clone(), topic.to_owned());
        let looked_up = tokio::task::spawn_blocking(move || {
            producer.client().fetch_metadata(Some(&name), LOOKUP_TIMEOUT)
        })
        .await
        .map_err(|e| unavailable(format!("topic lookup: {e}")))?;
        let metadata =
            looked_up.map_err(|e| unavailable(format!("looking up topic `{topic}` in the cluster: {e}")))?;
        let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else { return Ok(false) };
        match t.error().map(RDKafkaErrorCode::from) {
            None => Ok(!t.partitions().is_empty()),
            Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => Ok(false),
            Some(RDKafkaErrorCode::TopicAuthorizationFailed) => {
                Err(rejected(format!("topic `{topic}`: not authorized to describe it")))
            }
            Some(e @ RDKafkaErrorCode::InvalidTopic) => Err(rejected(format!("topic `{topic}`: {e}"))),
            Some(e) => Err(unavailable(format!("looking up topic `{topic}`: {e}"))),
        }
    }

    /// Creates `topic`: refused for good when the cluster says it may not be (policy, rights, an
    /// invalid name or count), unavailable when it could not be asked or did not answer.
    async fn create(&self, topic: &str) -> Result<(), SinkError> {
        let failed =
            |e: &dyn std::fmt::Display| format!("topic `{topic}` does not exist and creating it failed: {e}");
        let admin = {
            let mut slot = self.admin.lock().unwrap_or_else(PoisonError::into_inner);
            match &*slot {
                Some(a) => a.clone(),
                None => {
                    let a = self
                        .config
                        .create::<AdminClient<DefaultClientContext>>()
                        .map_err(|e| unavailable(failed(&e)))?;
                    let a = std::sync::Arc::new(a);
                    *slot = Some(a.clone());
                    a
                }
            }
        };
        let s = &self.settings;
        let new = NewTopic::new(topic, s.partitions, TopicReplication::Fixed(s.replication_factor));
        let options = AdminOptions::new().request_timeout(Some(LOOKUP_TIMEOUT));
        let results = admin.create_topics([&new], &options).await.map_err(|e| unavailable(failed(&e)))?;
        use RDKafkaErrorCode as C;
        match results.into_iter().next() {
            Some(Ok(_)) => {
                tracing::info!(
                    sink = "kafka",
                    topic,
                    partitions = s.partitions,
                    replication_factor = s.replication_factor,
                    "created Kafka topic"
                );
                Ok(())
            }
            // Created meanwhile by someone else: just as good.
            Some(Err((_, C::TopicAlreadyExists))) => Ok(()),
            Some(Err((
                _,
                e @ (C::TopicAuthorizationFailed
                | C::ClusterAuthorizationFailed
                | C::PolicyViolation
                | C::InvalidTopic
                | C::InvalidPartitions
                | C::InvalidReplicationFactor
                | C::InvalidConfig),
            ))) => Err(rejected(failed(&e))),
            Some(Err((_, e))) => Err(unavailable(failed(&e))),
            None => Err(unavailable(failed(&"the broker did not answer"))),
        }
    }

    /// `Err` naming the topics known to be missing that events were routed to lately, for
    /// `/readyz`; the others are forgotten.
    pub fn health(&self) -> Result<(), String> {
        let mut missing = self.missing.lock().unwrap_or_else(PoisonError::into_inner);
        missing.retain(|topic, m| {
            let keep = m.wanted.elapsed() < FORGET;
            if !keep {
                topic_gauge(topic).set(0.0);
            }
            keep
        });
        self.gauge.set(missing.len() as f64);
        if missing.is_empty() {
            return Ok(());
        }
        let mut reasons: Vec<&str> = missing.values().map(|m| m.why.as_str()).collect();
        reasons.sort_unstable();
        Err(reasons.join("; "))
    }
}

/// 1 while `topic` is missing (and routed to lately), else 0: the gauge that names it.
fn topic_gauge(topic: &str) -> metrics::Gauge {
    metrics::gauge!(names::KAFKA_TOPIC_MISSING, "topic" => topic.to_owned())
}
