//! The one normalized schema: what a dialect extracts ([`Occurrence`]) and how it becomes a
//! [`CloudEvent`].

mod cloudevent;
mod original;
pub mod stored;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;

pub use cloudevent::{Attribute, CloudEvent, DATA_CONTENT_TYPE};
pub use original::{Original, OriginalError};

/// Every `type` regbridge emits starts with this.
pub const TYPE_PREFIX: &str = "dev.regbridge.";

/// The `<noun>.<verb>` pair of a normalized event type, e.g. `artifact.pushed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Kind {
    pub noun: &'static str,
    pub verb: &'static str,
    ty: &'static str,
}

impl Kind {
    /// The CloudEvents `type`: `dev.regbridge.<noun>.<verb>.v1`.
    pub fn type_name(&self) -> &'static str {
        self.ty
    }
}

/// A [`Kind`] with its type name spelled out at compile time (no formatting per event).
macro_rules! kind {
    ($noun:literal, $verb:literal) => {
        Kind { noun: $noun, verb: $verb, ty: concat!("dev.regbridge.", $noun, ".", $verb, ".v1") }
    };
}

/// The normalized kinds of the contract (§3), named once so dialect tables cannot misspell them.
pub mod kinds {
    use super::Kind;
    // `TYPE_PREFIX` spelled out: `concat!` takes literals only (a test checks they agree).
    pub const ARTIFACT_PUSHED: Kind = kind!("artifact", "pushed");
    pub const ARTIFACT_PULLED: Kind = kind!("artifact", "pulled");
    pub const ARTIFACT_DELETED: Kind = kind!("artifact", "deleted");
    pub const ARTIFACT_REPLICATED: Kind = kind!("artifact", "replicated");
    pub const ARTIFACT_PROMOTED: Kind = kind!("artifact", "promoted");
    pub const SCAN_COMPLETED: Kind = kind!("scan", "completed");
    pub const SCAN_FAILED: Kind = kind!("scan", "failed");
    pub const SCAN_STOPPED: Kind = kind!("scan", "stopped");
    pub const QUOTA_EXCEEDED: Kind = kind!("quota", "exceeded");
    pub const QUOTA_WARNING: Kind = kind!("quota", "warning");
    pub const RETENTION_COMPLETED: Kind = kind!("retention", "completed");
    pub const REPOSITORY_CREATED: Kind = kind!("repository", "created");
    pub const REPOSITORY_UPDATED: Kind = kind!("repository", "updated");
    pub const REPOSITORY_DELETED: Kind = kind!("repository", "deleted");
    pub const SCANNER_UPDATED: Kind = kind!("scanner", "updated");
    pub const CHART_UPLOADED: Kind = kind!("chart", "uploaded");
    pub const CHART_DOWNLOADED: Kind = kind!("chart", "downloaded");
    pub const CHART_DELETED: Kind = kind!("chart", "deleted");
    pub const BUILD_QUEUED: Kind = kind!("build", "queued");
    pub const BUILD_STARTED: Kind = kind!("build", "started");
    pub const BUILD_SUCCEEDED: Kind = kind!("build", "succeeded");
    pub const BUILD_FAILED: Kind = kind!("build", "failed");
    pub const BUILD_CANCELLED: Kind = kind!("build", "cancelled");
    pub const VULNERABILITY_FOUND: Kind = kind!("vulnerability", "found");
    /// A CloudEvent of a type regbridge does not know, forwarded as it came from an endpoint that
    /// asks for it (`passthrough: true`): its own type is `origtype`, the event `data.original`.
    pub const CLOUDEVENT_FORWARDED: Kind = kind!("cloudevent", "forwarded");
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
    /// The CloudEvents `subject` as the sender gave it, for events not about an image (a
    /// forwarded CloudEvent). `None`: derived from the image fields (see [`Self::subject`]).
    pub subject: Option<String>,
    /// This occurrence's own part of the payload, when one payload fans out to several (a batch
    /// entry; a Harbor payload with only this resource): its `data.original`. `None`: the whole
    /// payload is.
    pub part: Option<Original>,
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
            subject: None,
            part: None,
        }
    }

    /// The sender's own subject if it gave one; else `<repository>:<tag>`, else
    /// `<repository>@<digest>`, else the repository alone.
    pub fn subject(&self) -> Option<String> {
        if let Some(subject) = &self.subject {
            return Some(subject.clone());
        }
        let repo = self.repository.as_deref()?;
        Some(match (&self.tag, &self.digest) {
            (Some(tag), _) => [repo, ":", tag].concat(),
            (None, Some(digest)) => [repo, "@", digest].concat(),
            (None, None) => repo.to_owned(),
        })
    }

    /// A pullable reference, when host and repository are known.
    pub fn image(&self) -> Option<String> {
        image(self, self.subject().as_deref())
    }
}

/// `<host>/<subject>` when the subject names a tag or digest; `subject` is `occ.subject()`.
fn image(occ: &Occurrence, subject: Option<&str>) -> Option<String> {
    let (host, subject) = (occ.host.as_deref()?, subject?);
    (occ.tag.is_some() || occ.digest.is_some()).then(|| [host, "/", subject].concat())
}

/// What the ingress knows about the request that every event of it shares.
#[derive(Clone, Debug, Default)]
pub struct Envelope<'a> {
    /// Endpoint name (`root`, `harbor`, `msr` or a configured one).
    pub endpoint: &'a str,
    /// Dialect name, the `registry` extension.
    pub registry: &'static str,
    /// The endpoint's configured `source`, which wins over anything derived.
    pub source: Option<&'a str>,
    pub traceparent: Option<&'a str>,
    pub tracestate: Option<&'a str>,
}

/// The `data` object of the contract (§3), in its key order; `original` is appended after it.
#[derive(Serialize)]
struct Data<'a> {
    registry: &'a str,
    host: Option<&'a str>,
    repository: Option<&'a str>,
    tag: Option<&'a str>,
    digest: Option<&'a str>,
    image: Option<String>,
    platform: Platform<'a>,
    actor: Option<&'a str>,
    occurred_at: Option<&'a str>,
    scan: Option<&'a Value>,
}

#[derive(Serialize)]
struct Platform<'a> {
    os: Option<&'a str>,
    architecture: Option<&'a str>,
}

/// Assemble the contract's CloudEvent from one occurrence. `original` is the vendor payload for
/// `data.original` (`None` when switched off: `null`); an occurrence's own part wins over it.
pub fn build(occ: &Occurrence, env: &Envelope<'_>, original: Option<&Original>) -> CloudEvent {
    let original = original.map(|whole| occ.part.as_ref().unwrap_or(whole));
    let source = env
        .source
        .map(str::to_owned)
        .or_else(|| occ.source.clone())
        .or_else(|| occ.host.as_ref().map(|h| format!("https://{h}")))
        .unwrap_or_else(|| format!("urn:regbridge:endpoint:{}", env.endpoint));
    // One image's events share a partition/ordering key; events without a repository (quota,
    // replication, scanner) are keyed by their sender's subject, else their registry instance.
    let partitionkey =
        occ.repository.clone().or_else(|| occ.subject.clone()).unwrap_or_else(|| source.clone());
    let time_text = occ.time.map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true));
    let subject = occ.subject();

    let fields = Data {
        registry: env.registry,
        host: occ.host.as_deref(),
        repository: occ.repository.as_deref(),
        tag: occ.tag.as_deref(),
        digest: occ.digest.as_deref(),
        image: image(occ, subject.as_deref()),
        platform: Platform { os: occ.os.as_deref(), architecture: occ.architecture.as_deref() },
        actor: occ.actor.as_deref(),
        occurred_at: time_text.as_deref(),
        scan: occ.scan.as_ref(),
    };
    let original = original.map(Original::as_bytes);
    let mut data = Vec::with_capacity(320 + original.map_or(4, <[u8]>::len));
    serde_json::to_writer(&mut data, &fields).expect("strings and JSON values serialize");
    // `{...}` becomes `{...,"original":<payload>}`: the payload is already JSON text.
    data.pop();
    data.extend_from_slice(b",\"original\":");
    data.extend_from_slice(original.unwrap_or(b"null"));
    data.push(b'}');

    CloudEvent {
        id: occ.id.clone(),
        ty: occ.kind.type_name().into(),
        source,
        subject,
        time: occ.time,
        time_text,
        registry: env.registry.into(),
        origtype: occ.origtype.clone(),
        partitionkey,
        traceparent: env.traceparent.map(str::to_owned),
        tracestate: env.tracestate.map(str::to_owned),
        data: data.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_type_names_follow_the_prefix() {
        for kind in [kinds::ARTIFACT_PUSHED, kinds::SCAN_COMPLETED, kinds::CHART_DELETED] {
            assert_eq!(kind.type_name(), format!("{TYPE_PREFIX}{}.{}.v1", kind.noun, kind.verb));
        }
    }

    #[test]
    fn structured_json_has_every_attribute_and_data_verbatim() {
        let mut occ = Occurrence::new(kinds::ARTIFACT_PUSHED, "evt-1", "PUSH_ARTIFACT");
        occ.host = Some("harbor.example.com".into());
        occ.repository = Some("library/nginx".into());
        occ.tag = Some("1.27".into());
        occ.time = DateTime::from_timestamp(1_774_791_612, 0);
        let env = Envelope {
            endpoint: "harbor",
            registry: "harbor",
            traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ..Envelope::default()
        };
        let original = Original::compact(b"{ \"type\": \"PUSH_ARTIFACT\" }").unwrap();
        let ev = build(&occ, &env, Some(&original));
        let json: Value = serde_json::from_slice(&ev.to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "specversion": "1.0",
                "id": "evt-1",
                "source": "https://harbor.example.com",
                "type": "dev.regbridge.artifact.pushed.v1",
                "datacontenttype": "application/json",
                "subject": "library/nginx:1.27",
                "time": "2026-03-29T13:40:12Z",
                "registry": "harbor",
                "origtype": "PUSH_ARTIFACT",
                "partitionkey": "library/nginx",
                "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                "data": {
                    "registry": "harbor",
                    "host": "harbor.example.com",
                    "repository": "library/nginx",
                    "tag": "1.27",
                    "digest": null,
                    "image": "harbor.example.com/library/nginx:1.27",
                    "platform": { "os": null, "architecture": null },
                    "actor": null,
                    "occurred_at": "2026-03-29T13:40:12Z",
                    "scan": null,
                    "original": { "type": "PUSH_ARTIFACT" }
                }
            })
        );
        // Without the payload, `original` is null.
        let data: Value = serde_json::from_slice(build(&occ, &env, None).data()).unwrap();
        assert_eq!(data["original"], Value::Null);
    }
}
