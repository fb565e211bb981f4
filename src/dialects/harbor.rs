//! Harbor (and MSR 4, which is Harbor): Default and CloudEvents payloads, one occurrence per resource.

use chrono::{DateTime, Utc};
use serde::de::Error as _;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::scan::{Scan, Scanner};
use super::{
    digest_id, fan_out_id, non_empty, parse_reference, parse_time, unexpected, DialectError, DialectSpec,
    Input, MediaType, Normalized,
};
use crate::event::{kinds, Kind, Occurrence, Original};
use crate::verify::Scheme;

pub const DIALECT: DialectSpec =
    DialectSpec::new("harbor", Scheme::Authorization, Some("REGBRIDGE_HARBOR_AUTH"), normalize);

/// Harbor event types and their kinds: `(Default, legacy pre-2.0 Default, CloudEvents, kind)`.
///
/// A payload's `type` may be any of the three names, whatever its format. Charts were removed in
/// Harbor 2.8, the release that introduced the CloudEvents format, so they have no CloudEvents name.
/// The README's mapping table mirrors this one.
#[rustfmt::skip]
pub const EVENT_TYPES: &[(&str, &str, Option<&str>, Kind)] = &[
    ("PUSH_ARTIFACT",      "pushImage",         Some("harbor.artifact.pushed"),            kinds::ARTIFACT_PUSHED),
    ("PULL_ARTIFACT",      "pullImage",         Some("harbor.artifact.pulled"),            kinds::ARTIFACT_PULLED),
    ("DELETE_ARTIFACT",    "deleteImage",       Some("harbor.artifact.deleted"),           kinds::ARTIFACT_DELETED),
    ("REPLICATION",        "replication",       Some("harbor.replication.status.changed"), kinds::ARTIFACT_REPLICATED),
    ("SCANNING_COMPLETED", "scanningCompleted", Some("harbor.scan.completed"),             kinds::SCAN_COMPLETED),
    ("SCANNING_FAILED",    "scanningFailed",    Some("harbor.scan.failed"),                kinds::SCAN_FAILED),
    ("SCANNING_STOPPED",   "scanningStopped",   Some("harbor.scan.stopped"),               kinds::SCAN_STOPPED),
    ("QUOTA_EXCEED",       "quotaExceed",       Some("harbor.quota.exceeded"),             kinds::QUOTA_EXCEEDED),
    ("QUOTA_WARNING",      "quotaWarning",      Some("harbor.quota.warned"),               kinds::QUOTA_WARNING),
    ("TAG_RETENTION",      "tagRetention",      Some("harbor.tag_retention.finished"),     kinds::RETENTION_COMPLETED),
    ("UPLOAD_CHART",       "uploadChart",       None,                                      kinds::CHART_UPLOADED),
    ("DOWNLOAD_CHART",     "downloadChart",     None,                                      kinds::CHART_DOWNLOADED),
    ("DELETE_CHART",       "deleteChart",       None,                                      kinds::CHART_DELETED),
];

fn kind_of(ty: &str) -> Option<Kind> {
    EVENT_TYPES
        .iter()
        .find(|(default, legacy, ce, _)| ty == *default || ty == *legacy || Some(ty) == *ce)
        .map(|row| row.3)
}

/// The Default format (and its pre-2.0 form, which differs only in the `type` names).
#[derive(Deserialize)]
struct DefaultPayload {
    #[serde(rename = "type")]
    ty: Option<String>,
    occur_at: Option<i64>,
    operator: Option<String>,
    event_data: Option<EventData>,
}

/// The CloudEvents format (Harbor ≥ 2.8): a structured-mode CloudEvent whose `data` is the Default
/// format's `event_data`. `source` (a webhook policy path) is deliberately not read.
#[derive(Deserialize)]
struct CloudEventPayload {
    #[serde(rename = "type")]
    ty: Option<String>,
    id: Option<String>,
    time: Option<String>,
    operator: Option<String>,
    data: Option<EventData>,
}

#[derive(Deserialize)]
struct EventData {
    resources: Option<Vec<Resource>>,
    repository: Option<Repository>,
    replication: Option<HostOnly>,
    retention: Option<HostOnly>,
    scan: Option<ScanInfo>,
}

#[derive(Deserialize, Default)]
struct Resource {
    digest: Option<String>,
    tag: Option<String>,
    resource_url: Option<String>,
    /// Keyed by report MIME type, which changed across Harbor versions: read as a map and take the
    /// first entry rather than naming the keys.
    scan_overview: Option<Map<String, Value>>,
    sbom_overview: Option<SbomOverview>,
}

#[derive(Deserialize)]
struct Repository {
    name: Option<String>,
    namespace: Option<String>,
    repo_full_name: Option<String>,
}

impl Repository {
    fn path(&self) -> Option<String> {
        non_empty(self.repo_full_name.as_deref()).or_else(|| {
            let namespace = non_empty(self.namespace.as_deref())?;
            let name = non_empty(self.name.as_deref())?;
            Some(format!("{namespace}/{name}"))
        })
    }
}

/// Replication and retention payloads name no artifact, only the Harbor instance.
#[derive(Deserialize)]
struct HostOnly {
    harbor_hostname: Option<String>,
}

#[derive(Deserialize)]
struct ScanInfo {
    scan_type: Option<String>,
}

#[derive(Deserialize)]
struct VulnOverview {
    report_id: Option<String>,
    scan_status: Option<String>,
    severity: Option<String>,
    summary: Option<VulnSummary>,
    start_time: Option<String>,
    end_time: Option<String>,
    scanner: Option<Scanner>,
}

#[derive(Deserialize)]
struct VulnSummary {
    total: Option<u64>,
    fixable: Option<u64>,
    summary: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
struct SbomOverview {
    report_id: Option<String>,
    sbom_digest: Option<String>,
    scan_status: Option<String>,
    start_time: Option<String>,
    end_time: Option<String>,
    scanner: Option<Scanner>,
}

/// What every occurrence of one payload shares.
struct Shared {
    kind: Kind,
    base_id: String,
    origtype: String,
    actor: Option<String>,
    time: Option<DateTime<Utc>>,
}

fn normalize(input: &Input<'_>) -> Result<Normalized, DialectError> {
    // serde reads a struct from an array too (positionally), so rule non-objects out first.
    let json = input.json()?;
    let Value::Object(object) = json else {
        return Err(DialectError::InvalidJson(serde_json::Error::invalid_type(
            unexpected(json),
            &"a JSON object",
        )));
    };
    // Both formats arrive on one endpoint. A relay may strip the CloudEvents media type, but only
    // the CloudEvents format has `specversion`.
    if input.media == MediaType::CloudEvents || object.contains_key("specversion") {
        cloudevents_format(input)
    } else {
        default_format(input)
    }
}

fn default_format(input: &Input<'_>) -> Result<Normalized, DialectError> {
    let p = DefaultPayload::deserialize(input.json()?).map_err(DialectError::InvalidJson)?;
    let ty = non_empty(p.ty.as_deref()).ok_or(DialectError::Missing("type"))?;
    let data = p.event_data.ok_or(DialectError::Missing("event_data"))?;
    let Some(kind) = kind_of(&ty) else {
        return Ok(Normalized::Unmapped { origtype: ty });
    };
    let time = p
        .occur_at
        .map(|secs| {
            DateTime::from_timestamp(secs, 0).ok_or_else(|| DialectError::Invalid {
                field: "occur_at",
                reason: format!("{secs} is out of range for a timestamp"),
            })
        })
        .transpose()?;
    // The Default format carries no id, and Harbor's retries resend the same body.
    let base_id = digest_id(input.endpoint, input.body);
    let shared = Shared { kind, base_id, origtype: ty, actor: non_empty(p.operator.as_deref()), time };
    occurrences(input, "event_data", shared, data).map(Normalized::Events)
}

pub(super) fn cloudevents_format(input: &Input<'_>) -> Result<Normalized, DialectError> {
    let p = CloudEventPayload::deserialize(input.json()?).map_err(DialectError::InvalidJson)?;
    let ty = non_empty(p.ty.as_deref()).ok_or(DialectError::Missing("type"))?;
    // Harbor generates the id once per (event, policy) before queueing, so retries keep it.
    let base_id = non_empty(p.id.as_deref()).ok_or(DialectError::Missing("id"))?;
    let data = p.data.ok_or(DialectError::Missing("data"))?;
    // Harbor's CloudEvents types are all `harbor.…`: another sender's CloudEvent is not Harbor's.
    if !ty.starts_with("harbor.") {
        return Err(DialectError::Invalid {
            field: "type",
            reason: format!("`{ty}` is not a Harbor CloudEvents type (harbor.…)"),
        });
    }
    let Some(kind) = kind_of(&ty) else {
        return Ok(Normalized::Unmapped { origtype: ty });
    };
    let time = p.time.as_deref().map(|t| parse_time("time", t)).transpose()?;
    let shared = Shared { kind, base_id, origtype: ty, actor: non_empty(p.operator.as_deref()), time };
    occurrences(input, "data", shared, data).map(Normalized::Events)
}

/// One occurrence per resource, in order; payloads without resources still yield one. With
/// several, each gets its own part of the payload (`container` names the object holding
/// `resources`).
fn occurrences(
    input: &Input<'_>,
    container: &str,
    shared: Shared,
    data: EventData,
) -> Result<Vec<Occurrence>, DialectError> {
    let mut resources = data.resources.unwrap_or_default();
    let max = input.bounds.max_events;
    if resources.len() > max {
        return Err(DialectError::TooManyEvents { count: resources.len(), max });
    }
    if resources.is_empty() {
        resources.push(Resource::default());
    }
    let mut parts = parts(input, container)?.into_iter().flatten();
    let repository = data.repository.as_ref().and_then(Repository::path);
    // Replication and retention name the instance instead of a pullable reference.
    let instance = [&data.replication, &data.retention]
        .into_iter()
        .flatten()
        .find_map(|h| non_empty(h.harbor_hostname.as_deref()));
    let scan_type = data.scan.and_then(|s| non_empty(s.scan_type.as_deref()));

    let total = resources.len();
    let mut out = Vec::with_capacity(total);
    for (index, resource) in resources.iter().enumerate() {
        let id = fan_out_id(&shared.base_id, index, total);
        let mut occ = Occurrence::new(shared.kind, id, shared.origtype.as_str());
        let url = resource.resource_url.as_deref().map(parse_reference).unwrap_or_default();
        occ.host = url.host.or_else(|| instance.clone());
        occ.repository = repository.clone().or(url.repository);
        occ.digest = non_empty(resource.digest.as_deref()).or(url.digest);
        // For a pull by digest Harbor puts the digest in `tag` (and builds `resource_url` from
        // it). An OCI tag cannot contain `:`, so anything that does is a digest, not a tag.
        occ.tag = non_empty(resource.tag.as_deref())
            .or(url.tag)
            .filter(|t| !t.contains(':') && Some(t) != occ.digest.as_ref());
        occ.actor = shared.actor.clone();
        occ.time = shared.time;
        if matches!(shared.kind, kinds::SCAN_COMPLETED | kinds::SCAN_FAILED | kinds::SCAN_STOPPED) {
            occ.scan = Some(scan(resource, scan_type.as_deref())?.into_value());
        }
        occ.part = parts.next();
        out.push(occ);
    }
    Ok(out)
}

/// Each resource's own part of the payload when there are several: the payload with
/// `<container>.resources` holding that resource alone, so the events of one payload carry
/// about the payload once between them, not once each. Written from the parsed tree (key order
/// kept): the payload around the resources array once, then each resource inside it.
fn parts(input: &Input<'_>, container: &str) -> Result<Option<Vec<Original>>, DialectError> {
    let json = input.json()?;
    let Some(Value::Array(resources)) = json.get(container).and_then(|c| c.get("resources")) else {
        return Ok(None);
    };
    let (Value::Object(top), true) = (json, resources.len() > 1) else { return Ok(None) };
    let (head, tail) = around_resources(top, container);
    let rendered: Vec<Vec<u8>> =
        resources.iter().map(|r| serde_json::to_vec(r).expect("a JSON tree serializes")).collect();
    let size = resources.len() * (head.len() + tail.len()) + rendered.iter().map(Vec::len).sum::<usize>();
    let max = input.bounds.max_output;
    if size > max {
        return Err(DialectError::OutputTooLarge { size, max });
    }
    Ok(Some(rendered.iter().map(|r| Original::from_rendered([&head[..], r, &tail[..]].concat())).collect()))
}

/// The payload written as compact JSON up to the opening `[` of `<container>.resources`, and from
/// its closing `]` on.
fn around_resources(top: &Map<String, Value>, container: &str) -> (Vec<u8>, Vec<u8>) {
    struct Split {
        head: Vec<u8>,
        tail: Vec<u8>,
        in_tail: bool,
    }
    impl Split {
        fn out(&mut self) -> &mut Vec<u8> {
            if self.in_tail {
                &mut self.tail
            } else {
                &mut self.head
            }
        }
        fn member(&mut self, first: bool, key: &str) {
            let out = self.out();
            if !first {
                out.push(b',');
            }
            serde_json::to_writer(&mut *out, key).expect("a string serializes");
            out.push(b':');
        }
        fn value(&mut self, v: &Value) {
            serde_json::to_writer(self.out(), v).expect("a JSON tree serializes");
        }
    }
    let mut split = Split { head: vec![b'{'], tail: Vec::new(), in_tail: false };
    for (i, (key, value)) in top.iter().enumerate() {
        split.member(i == 0, key);
        match value {
            Value::Object(inner) if key == container => {
                split.out().push(b'{');
                for (j, (k, v)) in inner.iter().enumerate() {
                    split.member(j == 0, k);
                    if k == "resources" {
                        split.out().push(b'[');
                        split.in_tail = true;
                        split.out().push(b']');
                    } else {
                        split.value(v);
                    }
                }
                split.out().push(b'}');
            }
            other => split.value(other),
        }
    }
    split.out().push(b'}');
    (split.head, split.tail)
}

/// The resource's scan report overview, whichever kind it has. A scheduled scan may deliver
/// `"scan": {}` and no overview at all; it still gets the full (null) key set.
fn scan(resource: &Resource, scan_type: Option<&str>) -> Result<Scan, DialectError> {
    let first_report = resource.scan_overview.as_ref().and_then(|m| m.values().next());
    let vuln = match first_report {
        Some(v) => Option::<VulnOverview>::deserialize(v).map_err(DialectError::InvalidJson)?,
        None => None,
    };
    let sbom = resource.sbom_overview.as_ref();
    let mut scan = match (vuln, sbom) {
        // Should a resource carry both, the scan that just ran says which one this event is about.
        (_, Some(s)) if scan_type == Some("sbom") => sbom_scan(s),
        (Some(v), _) => vuln_scan(v),
        (None, Some(s)) => sbom_scan(s),
        (None, None) => Scan::default(),
    };
    if let Some(ty) = scan_type {
        scan.ty = Some(ty.to_owned());
    }
    Ok(scan)
}

fn vuln_scan(v: VulnOverview) -> Scan {
    let (total, fixable, summary) = match v.summary {
        Some(s) => {
            // Harbor names severities `Critical`, `High`, ...; lower-case them like the rest of
            // the normalized schema. A missing inner map is an empty one: the counts were given.
            let counts = s.summary.unwrap_or_default();
            let counts = counts.into_iter().map(|(k, n)| (k.to_lowercase(), n)).collect();
            (s.total, s.fixable, Some(counts))
        }
        None => (None, None, None),
    };
    Scan {
        ty: Some("vulnerability".into()),
        status: non_empty(v.scan_status.as_deref()),
        severity: non_empty(v.severity.as_deref()),
        total,
        fixable,
        summary,
        scanner: v.scanner,
        report_id: non_empty(v.report_id.as_deref()),
        started_at: non_empty(v.start_time.as_deref()),
        completed_at: non_empty(v.end_time.as_deref()),
        ..Scan::default()
    }
}

fn sbom_scan(s: &SbomOverview) -> Scan {
    Scan {
        ty: Some("sbom".into()),
        status: non_empty(s.scan_status.as_deref()),
        scanner: s.scanner.clone(),
        report_id: non_empty(s.report_id.as_deref()),
        started_at: non_empty(s.start_time.as_deref()),
        completed_at: non_empty(s.end_time.as_deref()),
        sbom_digest: non_empty(s.sbom_digest.as_deref()),
        ..Scan::default()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::dialects::testing::{at, s};

    const ENDPOINT: &str = "harbor";

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("../../tests/fixtures/harbor/", $name))
        };
    }

    const ALPINE_38: &str = "sha256:2bb501e6173d9d006e56de5bce2720eb06396803300fe1687b58a7ff32bf4c14";
    const ALPINE: &str = "sha256:954b378c375d852eb3c63ab88978f640b4348b01c1b3456a024a81536dafbbf4";
    const BUSYBOX: &str = "sha256:dde8e930c7b6a490f728e66292bc9bce42efc9bbb5278bae40e4f30f6e00fe8c";
    const DEBIAN: &str = "sha256:8a9e9863dbb6e10edb5adfe917c00da84e1700fa76e7ed02476aa6e6fb8ee0d8";

    fn run(body: &str, media: MediaType) -> Result<Normalized, DialectError> {
        normalize(&Input::new(ENDPOINT, media, body.as_bytes()))
    }

    fn events(body: &str, media: MediaType) -> Vec<Occurrence> {
        match run(body, media) {
            Ok(Normalized::Events(events)) => events,
            other => panic!("expected events, got {other:?}"),
        }
    }

    /// A CloudEvents payload must read the same whether or not the media type says so.
    fn assert_cloudevent(body: &str, want: &Occurrence) {
        assert_eq!(events(body, MediaType::CloudEvents), std::slice::from_ref(want));
        assert_eq!(events(body, MediaType::Json), std::slice::from_ref(want));
    }

    /// The Default twin of a CloudEvents sample: same fields, but a digest id, the Default type
    /// name and its own timestamp.
    fn assert_default(body: &str, origtype: &str, time: &str, like: &Occurrence) {
        let want = Occurrence {
            id: digest_id(ENDPOINT, body.as_bytes()),
            origtype: origtype.into(),
            time: at(time),
            ..like.clone()
        };
        assert_eq!(events(body, MediaType::Json), [want]);
    }

    fn sha(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn artifact_pushed() {
        let want = Occurrence {
            host: s("localhost"),
            repository: s("harbor/alpine"),
            // Harbor's sample carries the digest in `tag`: not a tag.
            digest: s(ALPINE),
            actor: s("harbor-jobservice"),
            time: at("2023-04-03T06:04:46Z"),
            ..Occurrence::new(
                kinds::ARTIFACT_PUSHED,
                "66e18103-09c1-41f6-982f-37df223f3eeb",
                "harbor.artifact.pushed",
            )
        };
        assert_cloudevent(fixture!("push_artifact.cloudevents.fixed.json"), &want);
        let body = fixture!("push_artifact.default.json");
        assert_default(body, "PUSH_ARTIFACT", "2023-04-03T06:04:53Z", &want);

        let body = fixture!("push_artifact.default.harbor-v2.0-docs.json");
        let want = Occurrence {
            host: s("hub.harbor.com"),
            repository: s("test-webhook/debian"),
            tag: s("latest"),
            digest: s(DEBIAN),
            actor: s("admin"),
            ..want
        };
        assert_default(body, "PUSH_ARTIFACT", "2020-04-15T03:45:08Z", &want);
    }

    #[test]
    fn artifact_pulled_by_digest() {
        let want = Occurrence {
            host: s("localhost"),
            repository: s("harbor/alpine"),
            digest: s(ALPINE),
            actor: s("robot$harbor+wHSYCuGD-Trivy-8e2e7505-d1e6-11ed-9e71-0242ac130009"),
            time: at("2023-04-03T06:12:52Z"),
            ..Occurrence::new(
                kinds::ARTIFACT_PULLED,
                "718eab63-2efa-4f88-8c27-8bcacc34929b",
                "harbor.artifact.pulled",
            )
        };
        assert_cloudevent(fixture!("pull_artifact.cloudevents.fixed.json"), &want);
        let body = fixture!("pull_artifact.default.json");
        assert_default(body, "PULL_ARTIFACT", "2023-04-03T06:12:52Z", &want);

        let want = Occurrence {
            id: "4b2f89a6-548d-4c12-9993-a1f5790b97d2".into(),
            host: s("harbor.dev"),
            repository: s("library/busybox"),
            digest: s(BUSYBOX),
            actor: s("robot$library+scanner-Trivy-51fe4548-bbe5-11ed-9217-0242ac14000d"),
            time: at("2023-03-06T06:08:43Z"),
            ..want
        };
        assert_cloudevent(fixture!("pull_artifact.cloudevents.from-harbor-src-cloudevents.go.json"), &want);
        let body = fixture!("pull_artifact.default.from-harbor-src-default.go.json");
        let want = Occurrence { actor: s("admin"), ..want };
        assert_default(body, "PULL_ARTIFACT", "2023-03-06T05:58:23Z", &want);
    }

    #[test]
    fn artifact_deleted() {
        let want = Occurrence {
            host: s("localhost"),
            repository: s("harbor/alpine"),
            tag: s("3.8"),
            digest: s(ALPINE_38),
            actor: s("harbor-jobservice"),
            time: at("2023-04-03T06:16:38Z"),
            ..Occurrence::new(
                kinds::ARTIFACT_DELETED,
                "343f1623-7cba-487c-88f1-c5ebf55e93aa",
                "harbor.artifact.deleted",
            )
        };
        assert_cloudevent(fixture!("delete_artifact.cloudevents.json"), &want);
        let body = fixture!("delete_artifact.default.json");
        assert_default(body, "DELETE_ARTIFACT", "2023-04-03T06:16:38Z", &want);
    }

    #[test]
    fn quota_events_have_no_url_and_no_operator() {
        let exceeded = Occurrence {
            repository: s("harbor/alpine"),
            digest: s("sha256:402d21757a03a114d273bbe372fa4b9eca567e8b6c332fa7ebf982b902207242"),
            time: at("2023-04-03T07:04:44Z"),
            ..Occurrence::new(
                kinds::QUOTA_EXCEEDED,
                "81f243ce-699c-44d6-9dbe-b2ee5f10237a",
                "harbor.quota.exceeded",
            )
        };
        assert_cloudevent(fixture!("quota_exceed.cloudevents.json"), &exceeded);
        let body = fixture!("quota_exceed.default.json");
        assert_default(body, "QUOTA_EXCEED", "2023-04-03T07:04:44Z", &exceeded);

        let warning = Occurrence {
            repository: s("harbor/alpine"),
            digest: s("sha256:514ec80ffbe1a2ab1d9a3d5e6082296296a1d8b6870246edf897228e5df2367d"),
            time: at("2023-04-03T07:07:33Z"),
            ..Occurrence::new(
                kinds::QUOTA_WARNING,
                "1267b437-ea5a-4e06-bbe5-75e6fde733d3",
                "harbor.quota.warned",
            )
        };
        assert_cloudevent(fixture!("quota_warning.cloudevents.json"), &warning);
        let body = fixture!("quota_warning.default.json");
        assert_default(body, "QUOTA_WARNING", "2023-04-03T07:07:33Z", &warning);
    }

    #[test]
    fn replication_and_retention_name_only_the_instance() {
        let replicated = Occurrence {
            host: s("localhost"),
            actor: s("MANUAL"),
            time: at("2023-04-03T06:05:04Z"),
            ..Occurrence::new(
                kinds::ARTIFACT_REPLICATED,
                "e3005250-ffa8-4a10-af92-91fe25cca22c",
                "harbor.replication.status.changed",
            )
        };
        assert_cloudevent(fixture!("replication.cloudevents.json"), &replicated);
        let body = fixture!("replication.default.json");
        assert_default(body, "REPLICATION", "2023-04-03T06:05:04Z", &replicated);

        let retention = Occurrence {
            host: s("localhost"),
            actor: s("MANUAL"),
            time: at("2023-04-03T06:16:38Z"),
            ..Occurrence::new(
                kinds::RETENTION_COMPLETED,
                "a8618595-6fa0-4cf4-afdc-870459b1d7f6",
                "harbor.tag_retention.finished",
            )
        };
        assert_cloudevent(fixture!("tag_retention.cloudevents.json"), &retention);
        let body = fixture!("tag_retention.default.json");
        assert_default(body, "TAG_RETENTION", "2023-04-03T06:16:38Z", &retention);
    }

    #[test]
    fn scan_completed_without_findings() {
        let want = Occurrence {
            host: s("localhost"),
            repository: s("harbor/alpine"),
            digest: s(ALPINE),
            actor: s("auto"),
            time: at("2023-04-03T06:12:55Z"),
            scan: Some(json!({
                "type": "vulnerability",
                "status": "Success",
                "severity": "None",
                "total": 0,
                "fixable": 0,
                "summary": {},
                "scanner": { "name": "Trivy", "vendor": "Aqua Security", "version": "v0.37.2" },
                "report_id": "af0546c1-67dc-4e9d-927e-372900ead0df",
                "started_at": "2023-04-03T06:12:47Z",
                "completed_at": "2023-04-03T06:12:55Z",
                "sbom_digest": null,
                "error": null,
            })),
            ..Occurrence::new(
                kinds::SCAN_COMPLETED,
                "64bce2fe-6159-454d-8389-852d01ef1e9d",
                "harbor.scan.completed",
            )
        };
        assert_cloudevent(fixture!("scanning_completed.cloudevents.json"), &want);
        let body = fixture!("scanning_completed.default.json");
        assert_default(body, "SCANNING_COMPLETED", "2023-04-03T06:12:55Z", &want);
    }

    #[test]
    fn scan_failed_and_stopped_have_null_summaries() {
        let failed = Occurrence {
            host: s("localhost"),
            repository: s("harbor/alpine"),
            digest: s("sha256:dabea2944dcc2b86482b4f0b0fb62da80e0673e900c46c0e03b45919881a5d84"),
            actor: s("auto"),
            time: at("2023-04-03T07:11:25Z"),
            scan: Some(json!({
                "type": "vulnerability",
                "status": "Error",
                "severity": null,
                "total": null,
                "fixable": null,
                "summary": null,
                "scanner": null,
                "report_id": "a2573415-c727-4723-bc92-376c1d978637",
                "started_at": "2023-04-03T07:11:15Z",
                "completed_at": "2023-04-03T07:11:25Z",
                "sbom_digest": null,
                "error": null,
            })),
            ..Occurrence::new(
                kinds::SCAN_FAILED,
                "bdfe1de3-c069-4efc-b4f4-1a75c9a148c4",
                "harbor.scan.failed",
            )
        };
        assert_cloudevent(fixture!("scanning_failed.cloudevents.json"), &failed);
        let body = fixture!("scanning_failed.default.json");
        assert_default(body, "SCANNING_FAILED", "2023-04-03T07:11:25Z", &failed);

        let stopped = Occurrence {
            host: s("localhost"),
            repository: s("harbor/alpine"),
            digest: s("sha256:e802987f152d7826cf929ad4999fb3bb956ce7a30966aeb46c749f9120eaf22c"),
            actor: s("auto"),
            time: at("2023-04-03T06:12:14Z"),
            scan: Some(json!({
                "type": "vulnerability",
                "status": "Stopped",
                "severity": null,
                "total": null,
                "fixable": null,
                "summary": null,
                "scanner": null,
                "report_id": "bf92700b-fa5e-4fe4-891c-42b730c81151",
                "started_at": "2023-04-03T06:12:09Z",
                "completed_at": "2023-04-03T06:12:14Z",
                "sbom_digest": null,
                "error": null,
            })),
            ..Occurrence::new(
                kinds::SCAN_STOPPED,
                "a8a03301-9e31-433f-ace3-240ac16f17b7",
                "harbor.scan.stopped",
            )
        };
        assert_cloudevent(fixture!("scanning_stopped.cloudevents.json"), &stopped);
        let body = fixture!("scanning_stopped.default.json");
        assert_default(body, "SCANNING_STOPPED", "2023-04-03T06:12:14Z", &stopped);
    }

    #[test]
    fn scan_completed_with_findings_lowercases_severities() {
        let want = Occurrence {
            host: s("harbor.example.test"),
            repository: s("library/nginx"),
            tag: s("1.25.4"),
            digest: Some(sha('1')),
            actor: s("auto"),
            time: at("2023-11-14T22:13:20Z"),
            scan: Some(json!({
                "type": "vulnerability",
                "status": "Success",
                "severity": "Critical",
                "total": 12,
                "fixable": 7,
                "summary": { "critical": 2, "high": 4, "medium": 5, "low": 1 },
                "scanner": { "name": "Trivy", "vendor": "Aqua Security", "version": "v0.50.1" },
                "report_id": "00000000-0000-4000-8000-000000000001",
                "started_at": "2023-11-14T22:13:11Z",
                "completed_at": "2023-11-14T22:13:20Z",
                "sbom_digest": null,
                "error": null,
            })),
            ..Occurrence::new(
                kinds::SCAN_COMPLETED,
                "00000000-0000-4000-8000-0000000000aa",
                "harbor.scan.completed",
            )
        };
        assert_cloudevent(fixture!("synthetic/scanning_completed.cloudevents.with-vulns.json"), &want);
        let body = fixture!("synthetic/scanning_completed.default.with-vulns.json");
        assert_default(body, "SCANNING_COMPLETED", "2023-11-14T22:13:20Z", &want);
    }

    #[test]
    fn scan_report_under_the_legacy_mime_key_and_an_empty_tag() {
        let body = fixture!("synthetic/scanning_completed.default.legacy-native-mime.json");
        let want = Occurrence {
            host: s("harbor.example.test"),
            repository: s("team/app"),
            digest: Some(sha('2')),
            actor: s("auto"),
            time: at("2023-11-14T22:13:20Z"),
            scan: Some(json!({
                "type": "vulnerability",
                "status": "Success",
                "severity": "High",
                "total": 4,
                "fixable": 4,
                "summary": { "high": 3, "medium": 1 },
                "scanner": { "name": "Trivy", "vendor": "Aqua Security", "version": "v0.16.0" },
                "report_id": "00000000-0000-4000-8000-000000000002",
                "started_at": "2021-03-16T07:42:43.132206Z",
                "completed_at": "2021-03-16T07:42:52.265765Z",
                "sbom_digest": null,
                "error": null,
            })),
            ..Occurrence::new(
                kinds::SCAN_COMPLETED,
                digest_id(ENDPOINT, body.as_bytes()),
                "SCANNING_COMPLETED",
            )
        };
        assert_eq!(events(body, MediaType::Json), [want]);
    }

    #[test]
    fn sbom_scan() {
        let body = fixture!("synthetic/scanning_completed.default.sbom.json");
        let want = Occurrence {
            host: s("harbor.example.test"),
            repository: s("library/nginx"),
            tag: s("1.25.4"),
            digest: Some(sha('1')),
            actor: s("admin"),
            time: at("2023-11-14T22:15:00Z"),
            scan: Some(json!({
                "type": "sbom",
                "status": "Success",
                "severity": null,
                "total": null,
                "fixable": null,
                "summary": null,
                "scanner": null,
                "report_id": null,
                "started_at": "2023-11-14T22:15:00Z",
                "completed_at": "2023-11-14T22:15:03Z",
                "sbom_digest": sha('4'),
                "error": null,
            })),
            ..Occurrence::new(
                kinds::SCAN_COMPLETED,
                digest_id(ENDPOINT, body.as_bytes()),
                "SCANNING_COMPLETED",
            )
        };
        assert_eq!(events(body, MediaType::Json), [want]);
    }

    #[test]
    fn scheduled_scan_with_empty_scan_object_still_gets_the_full_key_set() {
        let want = Occurrence {
            host: s("harbor.example.test"),
            repository: s("library/app"),
            tag: s("latest"),
            digest: Some(sha('3')),
            actor: s("harbor-jobservice"),
            time: at("2025-07-29T03:00:23Z"),
            scan: Some(json!({
                "type": null,
                "status": null,
                "severity": null,
                "total": null,
                "fixable": null,
                "summary": null,
                "scanner": null,
                "report_id": null,
                "started_at": null,
                "completed_at": null,
                "sbom_digest": null,
                "error": null,
            })),
            ..Occurrence::new(
                kinds::SCAN_COMPLETED,
                "00000000-0000-4000-8000-0000000000cc",
                "harbor.scan.completed",
            )
        };
        let body = fixture!("synthetic/scanning_completed.cloudevents.scheduled-empty-scan.json");
        assert_cloudevent(body, &want);
    }

    #[test]
    fn chart_uploaded_before_harbor_2_8() {
        let body = fixture!("synthetic/upload_chart.default.pre-v2.8.json");
        let want = Occurrence {
            host: s("harbor.example.test"),
            repository: s("library/mychart"),
            tag: s("0.1.0"),
            actor: s("admin"),
            time: at("2022-04-15T05:20:00Z"),
            ..Occurrence::new(kinds::CHART_UPLOADED, digest_id(ENDPOINT, body.as_bytes()), "UPLOAD_CHART")
        };
        assert_eq!(events(body, MediaType::Json), [want]);
    }

    #[test]
    fn legacy_camel_case_push() {
        let body = r#"{"type":"pushImage","occur_at":1582640688,"operator":"admin","event_data":{
            "resources":[{"digest":"sha256:abc","tag":"latest",
                          "resource_url":"hub.harbor.com/test-webhook/debian:latest"}],
            "repository":{"name":"debian","namespace":"test-webhook",
                          "repo_full_name":"test-webhook/debian","repo_type":"private"}}}"#;
        let want = Occurrence {
            host: s("hub.harbor.com"),
            repository: s("test-webhook/debian"),
            tag: s("latest"),
            digest: s("sha256:abc"),
            actor: s("admin"),
            time: at("2020-02-25T14:24:48Z"),
            ..Occurrence::new(kinds::ARTIFACT_PUSHED, digest_id(ENDPOINT, body.as_bytes()), "pushImage")
        };
        assert_eq!(events(body, MediaType::Json), [want]);
    }

    #[test]
    fn every_type_name_maps_and_no_name_is_listed_twice() {
        let mut seen = std::collections::HashSet::new();
        for &(default, legacy, ce, kind) in EVENT_TYPES {
            for name in [Some(default), Some(legacy), ce].into_iter().flatten() {
                assert!(seen.insert(name), "{name} listed twice");
                assert_eq!(kind_of(name), Some(kind), "{name}");
            }
        }
        assert_eq!(seen.len(), 13 * 3 - 3);
    }

    #[test]
    fn empty_tag_and_digest_only_in_the_url() {
        let body = r#"{"type":"PUSH_ARTIFACT","occur_at":0,"event_data":{"resources":[
            {"tag":"","resource_url":"h.example:5000/p/r@sha256:abc"}]}}"#;
        let [occ] = <[_; 1]>::try_from(events(body, MediaType::Json)).unwrap();
        assert_eq!(occ.host.as_deref(), Some("h.example:5000"));
        // No `repository` object: the path comes from the URL.
        assert_eq!(occ.repository.as_deref(), Some("p/r"));
        assert_eq!(occ.tag, None);
        assert_eq!(occ.digest.as_deref(), Some("sha256:abc"));
        assert_eq!(occ.actor, None);
        assert_eq!(occ.time, at("1970-01-01T00:00:00Z"));
        assert_eq!(occ.scan, None);
    }

    #[test]
    fn repository_falls_back_to_namespace_and_name() {
        let body = r#"{"type":"DELETE_ARTIFACT","event_data":{"resources":[{"digest":"sha256:abc"}],
            "repository":{"name":"app","namespace":"team","repo_full_name":""}}}"#;
        let [occ] = <[_; 1]>::try_from(events(body, MediaType::Json)).unwrap();
        assert_eq!(occ.repository.as_deref(), Some("team/app"));
        assert_eq!(occ.time, None);
    }

    #[test]
    fn several_resources_fan_out_in_order() {
        let ce = r#"{"specversion":"1.0","id":"x","type":"harbor.artifact.pushed",
            "time":"2024-01-01T00:00:00Z","operator":"ci","data":{
            "resources":[
                {"digest":"sha256:a","tag":"1.0","resource_url":"reg.example/team/app:1.0"},
                {"digest":"sha256:b","tag":"latest","resource_url":"reg.example/team/app:latest"}],
            "repository":{"repo_full_name":"team/app"}}}"#;
        let evs = events(ce, MediaType::CloudEvents);
        let ids: Vec<_> = evs.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(ids, ["x#0", "x#1"]);
        let tags: Vec<_> = evs.iter().map(|o| o.tag.as_deref()).collect();
        assert_eq!(tags, [Some("1.0"), Some("latest")]);
        let digests: Vec<_> = evs.iter().map(|o| o.digest.as_deref()).collect();
        assert_eq!(digests, [Some("sha256:a"), Some("sha256:b")]);
        assert!(evs.iter().all(|o| o.repository.as_deref() == Some("team/app")
            && o.host.as_deref() == Some("reg.example")
            && o.actor.as_deref() == Some("ci")));

        let default = r#"{"type":"PULL_ARTIFACT","event_data":{"resources":[
            {"digest":"sha256:a"},{"digest":"sha256:b"},{"digest":"sha256:c"}]}}"#;
        let base = digest_id(ENDPOINT, default.as_bytes());
        let ids: Vec<_> = events(default, MediaType::Json).into_iter().map(|o| o.id).collect();
        assert_eq!(ids, [format!("{base}#0"), format!("{base}#1"), format!("{base}#2")]);
    }

    #[test]
    fn an_empty_resource_list_still_gives_one_occurrence() {
        let body = r#"{"type":"SCANNING_FAILED","event_data":{"resources":[],
            "repository":{"repo_full_name":"team/app"}}}"#;
        let [occ] = <[_; 1]>::try_from(events(body, MediaType::Json)).unwrap();
        assert_eq!(occ.id, digest_id(ENDPOINT, body.as_bytes()));
        assert_eq!(occ.repository.as_deref(), Some("team/app"));
        assert_eq!(occ.scan.unwrap()["status"], Value::Null);
    }

    #[test]
    fn scan_type_picks_the_sbom_overview_when_both_exist() {
        let body = r#"{"type":"SCANNING_COMPLETED","event_data":{"scan":{"scan_type":"sbom"},
            "resources":[{"digest":"sha256:a",
                "scan_overview":{"m":{"scan_status":"Success","summary":null}},
                "sbom_overview":{"scan_status":"Success","sbom_digest":"sha256:s"}}]}}"#;
        let [occ] = <[_; 1]>::try_from(events(body, MediaType::Json)).unwrap();
        let scan = occ.scan.unwrap();
        assert_eq!((&scan["type"], &scan["sbom_digest"]), (&json!("sbom"), &json!("sha256:s")));
    }

    #[test]
    fn unknown_types_are_unmapped() {
        let r = run(r#"{"type":"PUSH_SBOM","occur_at":1,"event_data":{}}"#, MediaType::Json);
        assert_eq!(r.unwrap(), Normalized::Unmapped { origtype: "PUSH_SBOM".into() });
        let body = r#"{"specversion":"1.0","id":"x","type":"harbor.sbom.pushed","data":{}}"#;
        let r = run(body, MediaType::Json);
        assert_eq!(r.unwrap(), Normalized::Unmapped { origtype: "harbor.sbom.pushed".into() });
    }

    #[test]
    fn required_fields_are_enforced() {
        let missing = |body: &str, media| match run(body, media) {
            Err(DialectError::Missing(field)) => field,
            other => panic!("expected a missing field, got {other:?}"),
        };
        assert_eq!(missing(r#"{"type":"PUSH_ARTIFACT","occur_at":1}"#, MediaType::Json), "event_data");
        assert_eq!(missing(r#"{"type":"PUSH_ARTIFACT","event_data":null}"#, MediaType::Json), "event_data");
        assert_eq!(missing(r#"{"event_data":{}}"#, MediaType::Json), "type");
        assert_eq!(missing(r#"{"type":"","event_data":{}}"#, MediaType::Json), "type");
        let ce = r#"{"specversion":"1.0","type":"harbor.artifact.pushed","data":{}}"#;
        assert_eq!(missing(ce, MediaType::Json), "id");
        let ce = r#"{"specversion":"1.0","id":"x","type":"harbor.artifact.pushed"}"#;
        assert_eq!(missing(ce, MediaType::Json), "data");
        // The media type alone selects the CloudEvents format.
        let default = r#"{"type":"PUSH_ARTIFACT","event_data":{}}"#;
        assert_eq!(missing(default, MediaType::CloudEvents), "id");
    }

    #[test]
    fn malformed_values_are_rejected() {
        let body =
            r#"{"specversion":"1.0","id":"x","type":"harbor.artifact.pushed","time":"yesterday","data":{}}"#;
        let e = run(body, MediaType::CloudEvents).unwrap_err();
        assert!(matches!(e, DialectError::Invalid { field: "time", .. }), "{e:?}");
        let e = run(r#"{"type":"PUSH_ARTIFACT","occur_at":"1","event_data":{}}"#, MediaType::Json);
        assert!(matches!(e, Err(DialectError::InvalidJson(_))), "{e:?}");
        let e = run(r#"["PUSH_ARTIFACT",1,"admin",{}]"#, MediaType::Json);
        assert!(matches!(e, Err(DialectError::InvalidJson(_))), "{e:?}");
        let e = run(
            r#"{"type":"PUSH_ARTIFACT","occur_at":9223372036854775807,"event_data":{}}"#,
            MediaType::Json,
        );
        assert!(matches!(e, Err(DialectError::Invalid { field: "occur_at", .. })), "{e:?}");
    }
}

#[cfg(test)]
mod fan_out {
    use serde_json::{json, Value};

    use super::super::Bounds;
    use super::*;

    fn payload(resources: usize, operator: &str) -> String {
        let resources: Vec<Value> = (0..resources)
            .map(|i| json!({ "digest": format!("sha256:{i:064x}"), "tag": format!("v{i}"), "resource_url": format!("h.example/lib/app:v{i}") }))
            .collect();
        json!({
            "type": "PUSH_ARTIFACT",
            "occur_at": 1_700_000_000,
            "operator": operator,
            "event_data": { "resources": resources, "repository": { "name": "app", "namespace": "lib", "repo_full_name": "lib/app" } }
        })
        .to_string()
    }

    fn run(body: &str, bounds: Bounds) -> Result<Normalized, DialectError> {
        normalize(&Input { bounds, ..Input::new("harbor", MediaType::Json, body.as_bytes()) })
    }

    #[test]
    fn each_fanned_out_event_carries_the_payload_with_its_own_resource_alone() {
        let body = payload(3, "ci");
        let Ok(Normalized::Events(events)) = run(&body, Bounds::default()) else { panic!() };
        let whole: Value = serde_json::from_str(&body).unwrap();
        for (i, occ) in events.iter().enumerate() {
            let part: Value =
                serde_json::from_slice(occ.part.as_ref().expect("a part of its own").as_bytes()).unwrap();
            let mut want = whole.clone();
            want["event_data"]["resources"] = json!([whole["event_data"]["resources"][i]]);
            assert_eq!(part, want, "event {i}");
        }
        // One resource: the whole payload is the event's, as it came.
        let Ok(Normalized::Events(one)) = run(&payload(1, "ci"), Bounds::default()) else { panic!() };
        assert!(one[0].part.is_none());
    }

    #[test]
    fn more_events_or_more_bytes_than_the_bounds_are_refused_before_parts_are_built() {
        let bounds = Bounds { max_events: 10, max_output: 50_000 };
        match run(&payload(11, "ci"), bounds) {
            Err(e @ DialectError::TooManyEvents { count: 11, max: 10 }) => assert!(e.too_large()),
            other => panic!("{other:?}"),
        }
        assert!(matches!(run(&payload(10, "ci"), bounds), Ok(Normalized::Events(e)) if e.len() == 10));
        // A payload heavy around its resources would repeat that weight in every part.
        match run(&payload(10, &"x".repeat(6_000)), bounds) {
            Err(e @ DialectError::OutputTooLarge { .. }) => assert_eq!(e.reason(), "event_too_large"),
            other => panic!("{other:?}"),
        }
    }
}
