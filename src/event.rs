//! The one normalized schema: what a dialect extracts ([`Occurrence`]) and how it becomes a CloudEvent.

use chrono::{DateTime, SecondsFormat, Utc};
use cloudevents::{Event, EventBuilder, EventBuilderV10};
use serde_json::{json, Map, Value};

/// Every `type` regbridge emits starts with this.
pub const TYPE_PREFIX: &str = "dev.regbridge.";

/// The `<noun>.<verb>` pair of a normalized event type, e.g. `artifact.pushed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Kind {
    pub noun: &'static str,
    pub verb: &'static str,
}

impl Kind {
    pub const fn new(noun: &'static str, verb: &'static str) -> Self {
        Self { noun, verb }
    }

    /// The CloudEvents `type`: `dev.regbridge.<noun>.<verb>.v1`.
    pub fn type_name(&self) -> String {
        format!("{TYPE_PREFIX}{}.{}.v1", self.noun, self.verb)
    }
}

/// The normalized kinds of the contract (§3), named once so dialect tables cannot misspell them.
pub mod kinds {
    use super::Kind;
    pub const ARTIFACT_PUSHED: Kind = Kind::new("artifact", "pushed");
    pub const ARTIFACT_PULLED: Kind = Kind::new("artifact", "pulled");
    pub const ARTIFACT_DELETED: Kind = Kind::new("artifact", "deleted");
    pub const ARTIFACT_REPLICATED: Kind = Kind::new("artifact", "replicated");
    pub const ARTIFACT_PROMOTED: Kind = Kind::new("artifact", "promoted");
    pub const SCAN_COMPLETED: Kind = Kind::new("scan", "completed");
    pub const SCAN_FAILED: Kind = Kind::new("scan", "failed");
    pub const SCAN_STOPPED: Kind = Kind::new("scan", "stopped");
    pub const QUOTA_EXCEEDED: Kind = Kind::new("quota", "exceeded");
    pub const QUOTA_WARNING: Kind = Kind::new("quota", "warning");
    pub const RETENTION_COMPLETED: Kind = Kind::new("retention", "completed");
    pub const REPOSITORY_CREATED: Kind = Kind::new("repository", "created");
    pub const REPOSITORY_UPDATED: Kind = Kind::new("repository", "updated");
    pub const REPOSITORY_DELETED: Kind = Kind::new("repository", "deleted");
    pub const SCANNER_UPDATED: Kind = Kind::new("scanner", "updated");
    pub const CHART_UPLOADED: Kind = Kind::new("chart", "uploaded");
    pub const CHART_DOWNLOADED: Kind = Kind::new("chart", "downloaded");
    pub const CHART_DELETED: Kind = Kind::new("chart", "deleted");
}

/// What a dialect knows about one occurrence. Fields the vendor does not give stay `None` and
/// become `null` in `data`; empty strings from the vendor are normalized to `None` by the dialect.
#[derive(Clone, Debug, PartialEq)]
pub struct Occurrence {
    pub kind: Kind,
    /// Stable across the sender's retries of the same delivery (see the contract, §3).
    pub id: String,
    /// The vendor's own event type, kept in the `origtype` extension.
    pub origtype: String,
    /// An absolute registry URI the payload itself reveals (Root's `source`).
    pub source: Option<String>,
    /// Registry host (and port) as it appears in pull references, e.g. `harbor.example.com`.
    pub host: Option<String>,
    /// Repository path without the host, e.g. `library/nginx`.
    pub repository: Option<String>,
    pub tag: Option<String>,
    pub digest: Option<String>,
    pub os: Option<String>,
    pub architecture: Option<String>,
    /// Who caused it (user, robot account or trigger), as the vendor names it.
    pub actor: Option<String>,
    /// When the registry says it happened.
    pub time: Option<DateTime<Utc>>,
    /// Normalized scan summary on scan events.
    pub scan: Option<Value>,
}

impl Occurrence {
    pub fn new(kind: Kind, id: impl Into<String>, origtype: impl Into<String>) -> Self {
        Self {
            kind,
            id: id.into(),
            origtype: origtype.into(),
            source: None,
            host: None,
            repository: None,
            tag: None,
            digest: None,
            os: None,
            architecture: None,
            actor: None,
            time: None,
            scan: None,
        }
    }

    /// `<repository>:<tag>`, else `<repository>@<digest>`, else the repository alone.
    pub fn subject(&self) -> Option<String> {
        let repo = self.repository.as_deref()?;
        Some(match (&self.tag, &self.digest) {
            (Some(tag), _) => format!("{repo}:{tag}"),
            (None, Some(digest)) => format!("{repo}@{digest}"),
            (None, None) => repo.to_owned(),
        })
    }

    /// A pullable reference, when host and repository are known.
    pub fn image(&self) -> Option<String> {
        let host = self.host.as_deref()?;
        let subject = self.subject()?;
        (self.tag.is_some() || self.digest.is_some()).then(|| format!("{host}/{subject}"))
    }
}

/// What the ingress knows about the request that every event of it shares.
#[derive(Clone, Debug, Default)]
pub struct Envelope<'a> {
    /// Endpoint name (`root`, `harbor`, `msr` or a configured one).
    pub endpoint: &'a str,
    /// Dialect name, the `registry` extension.
    pub registry: &'a str,
    /// The endpoint's configured `source`, which wins over anything derived.
    pub source: Option<&'a str>,
    pub traceparent: Option<&'a str>,
    pub tracestate: Option<&'a str>,
}

/// Assemble the contract's CloudEvent from one occurrence. `original` is the vendor payload for
/// `data.original` (`None` when switched off); it is taken by value so the common one-event
/// payload moves it instead of copying the tree.
pub fn build(occ: &Occurrence, env: &Envelope<'_>, original: Option<Value>) -> Event {
    let source = env
        .source
        .map(str::to_owned)
        .or_else(|| occ.source.clone())
        .or_else(|| occ.host.as_ref().map(|h| format!("https://{h}")))
        .unwrap_or_else(|| format!("urn:regbridge:endpoint:{}", env.endpoint));
    // One image's events share a partition/ordering key; events without a repository (quota,
    // replication, scanner) are keyed by their registry instance instead.
    let partitionkey = occ.repository.clone().unwrap_or_else(|| source.clone());

    let mut data = Map::with_capacity(11);
    data.insert("registry".into(), env.registry.into());
    data.insert("host".into(), opt(&occ.host));
    data.insert("repository".into(), opt(&occ.repository));
    data.insert("tag".into(), opt(&occ.tag));
    data.insert("digest".into(), opt(&occ.digest));
    data.insert("image".into(), occ.image().map_or(Value::Null, Value::String));
    data.insert("platform".into(), json!({ "os": opt(&occ.os), "architecture": opt(&occ.architecture) }));
    data.insert("actor".into(), opt(&occ.actor));
    data.insert(
        "occurred_at".into(),
        occ.time.map_or(Value::Null, |t| Value::String(t.to_rfc3339_opts(SecondsFormat::AutoSi, true))),
    );
    data.insert("scan".into(), occ.scan.clone().unwrap_or(Value::Null));
    data.insert("original".into(), original.unwrap_or(Value::Null));

    let mut builder = EventBuilderV10::new()
        .id(occ.id.as_str())
        .ty(occ.kind.type_name())
        .source(source)
        .extension("registry", env.registry)
        .extension("origtype", occ.origtype.as_str())
        .extension("partitionkey", partitionkey)
        .data("application/json", Value::Object(data));
    if let Some(subject) = occ.subject() {
        builder = builder.subject(subject);
    }
    if let Some(time) = occ.time {
        builder = builder.time(time);
    }
    if let Some(tp) = env.traceparent {
        builder = builder.extension("traceparent", tp);
    }
    if let Some(ts) = env.tracestate {
        builder = builder.extension("tracestate", ts);
    }
    // The builder only fails when id, type or source is missing; all three are always set above.
    builder.build().expect("id, type and source are always set")
}

fn opt(v: &Option<String>) -> Value {
    v.as_ref().map_or(Value::Null, |s| Value::String(s.clone()))
}
