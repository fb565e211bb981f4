//! MSR / DTR 2.x–3.x: `{type, createdAt, contents}` envelopes, one occurrence each (MSR 4 is Harbor).

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use super::scan::Scan;
use super::{
    digest_id, fan_out_id, kind_in, non_empty, parse_reference, parse_time, unexpected, DialectError,
    DialectSpec, Input, Normalized,
};
use crate::event::{kinds, Kind, Occurrence};
use crate::verify::Scheme;

pub const DIALECT: DialectSpec =
    DialectSpec::new("msr", Scheme::Token, Some("REGBRIDGE_MSR_TOKENS"), normalize);

/// MSR event types and their kinds. The README's mapping table mirrors this one.
#[rustfmt::skip]
pub const EVENT_TYPES: &[(&str, Kind)] = &[
    ("TAG_PUSH",                 kinds::ARTIFACT_PUSHED),
    ("MANIFEST_PUSH",            kinds::ARTIFACT_PUSHED),
    ("TAG_PULL",                 kinds::ARTIFACT_PULLED),
    ("MANIFEST_PULL",            kinds::ARTIFACT_PULLED),
    ("TAG_DELETE",               kinds::ARTIFACT_DELETED),
    ("MANIFEST_DELETE",          kinds::ARTIFACT_DELETED),
    ("PUSH_MIRRORING",           kinds::ARTIFACT_REPLICATED),
    ("POLL_MIRRORING",           kinds::ARTIFACT_REPLICATED),
    ("PROMOTION",                kinds::ARTIFACT_PROMOTED),
    ("SCAN_COMPLETED",           kinds::SCAN_COMPLETED),
    ("SCAN_FAILED",              kinds::SCAN_FAILED),
    ("REPO_CREATED",             kinds::REPOSITORY_CREATED),
    ("REPO_UPDATED",             kinds::REPOSITORY_UPDATED),
    ("REPO_DELETED",             kinds::REPOSITORY_DELETED),
    ("SCANNER_UPDATE_COMPLETED", kinds::SCANNER_UPDATED),
    ("CHART_PUSH",               kinds::CHART_UPLOADED),
    ("CHART_PULL",               kinds::CHART_DOWNLOADED),
    ("CHART_DELETE",             kinds::CHART_DELETED),
];

/// `last_scan_status` codes, by value (MSR docs, "Security scan status codes").
const SCAN_STATUSES: [&str; 7] =
    ["failed", "unscanned", "scanning", "pending", "scanned", "checking", "completed"];

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    ty: Option<String>,
    #[serde(rename = "createdAt")]
    created_at: Option<String>,
    contents: Option<Contents>,
}

/// The union of the documented `contents` shapes. Each event type fills a different subset, and
/// promotion, mirroring and chart contents are not documented at all: a field that is absent or
/// has a shape other than a string is `None` rather than a reason to reject the event.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Contents {
    #[serde(default, deserialize_with = "string_or_none")]
    namespace: Option<String>,
    #[serde(default, deserialize_with = "string_or_none")]
    repository: Option<String>,
    #[serde(default, deserialize_with = "string_or_none")]
    tag: Option<String>,
    #[serde(default, deserialize_with = "string_or_none")]
    digest: Option<String>,
    #[serde(default, deserialize_with = "string_or_none")]
    image_name: Option<String>,
    #[serde(default, deserialize_with = "string_or_none")]
    os: Option<String>,
    #[serde(default, deserialize_with = "string_or_none")]
    architecture: Option<String>,
    #[serde(default, deserialize_with = "string_or_none")]
    author: Option<String>,
    #[serde(default, deserialize_with = "string_or_none")]
    error: Option<String>,
    /// Only read (strictly) on `SCAN_COMPLETED`, where it is documented.
    scan_summary: Option<Value>,
}

#[derive(Deserialize)]
struct ScanSummary {
    critical: Option<u64>,
    major: Option<u64>,
    minor: Option<u64>,
    last_scan_status: Option<u64>,
    check_completed_at: Option<String>,
}

fn string_or_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        _ => None,
    })
}

fn normalize(input: &Input<'_>) -> Result<Normalized, DialectError> {
    // MSR sends no id and retries the same body, so the body is the id.
    let base_id = digest_id(input.endpoint, input.body);
    let json = input.json()?;
    let Value::Array(batch) = json else {
        return envelope(json, base_id);
    };
    if batch.is_empty() {
        return Err(DialectError::Invalid { field: "body", reason: "empty array of envelopes".into() });
    }
    let mut events = Vec::with_capacity(batch.len());
    let mut first_unmapped = None;
    for (index, item) in batch.iter().enumerate() {
        // Ids follow the array position, so skipping an unmapped entry does not shift the rest.
        match envelope(item, fan_out_id(&base_id, index, batch.len()))? {
            Normalized::Events(mut occ) => events.append(&mut occ),
            Normalized::Unmapped { origtype } => {
                input.unmapped_entry();
                first_unmapped.get_or_insert(origtype);
            }
            // An envelope is never a handshake.
            Normalized::Answer(_) => {}
        }
    }
    // A mixed batch publishes its mapped events; the others are counted as unmapped.
    Ok(match first_unmapped {
        Some(origtype) if events.is_empty() => Normalized::Unmapped { origtype },
        _ => Normalized::Events(events),
    })
}

/// One envelope: one occurrence, or its unmapped type.
fn envelope(json: &Value, id: String) -> Result<Normalized, DialectError> {
    // serde reads a struct from an array too (positionally), so rule non-objects out first.
    if !json.is_object() {
        let e = serde_json::Error::invalid_type(unexpected(json), &"an MSR envelope object");
        return Err(DialectError::InvalidJson(e));
    }
    let env = Envelope::deserialize(json).map_err(DialectError::InvalidJson)?;
    let ty = non_empty(env.ty.as_deref()).ok_or(DialectError::Missing("type"))?;
    let c = env.contents.ok_or(DialectError::Missing("contents"))?;
    let Some(kind) = kind_in(EVENT_TYPES, &ty) else {
        return Ok(Normalized::Unmapped { origtype: ty });
    };

    let mut occ = Occurrence::new(kind, id, ty);
    // `imageName` is the pull reference, with the MSR host when MSR knows its own address.
    let image = c.image_name.as_deref().map(parse_reference).unwrap_or_default();
    occ.host = image.host;
    occ.repository = match (non_empty(c.namespace.as_deref()), non_empty(c.repository.as_deref())) {
        (Some(namespace), Some(repository)) => Some(format!("{namespace}/{repository}")),
        _ => image.repository,
    };
    occ.tag = non_empty(c.tag.as_deref()).or(image.tag);
    occ.digest = non_empty(c.digest.as_deref()).or(image.digest);
    occ.os = non_empty(c.os.as_deref());
    occ.architecture = non_empty(c.architecture.as_deref());
    occ.actor = non_empty(c.author.as_deref());
    occ.time = env.created_at.as_deref().map(|t| parse_time("createdAt", t)).transpose()?;
    occ.scan = match kind {
        kinds::SCAN_COMPLETED => Some(completed_scan(c.scan_summary)?.into_value()),
        kinds::SCAN_FAILED => Some(failed_scan(c.error).into_value()),
        _ => None,
    };
    Ok(Normalized::Events(vec![occ]))
}

fn completed_scan(summary: Option<Value>) -> Result<Scan, DialectError> {
    let mut scan = Scan { ty: Some("vulnerability".into()), ..Scan::default() };
    let Some(summary) = summary else {
        return Ok(scan);
    };
    let s = ScanSummary::deserialize(summary).map_err(DialectError::InvalidJson)?;
    // The counts are plain Go ints in MSR: absent means zero, as it would in MSR itself.
    let counts = [("critical", s.critical), ("major", s.major), ("minor", s.minor)]
        .map(|(name, n)| (name, n.unwrap_or(0)));
    scan.total = Some(counts.iter().map(|(_, n)| n).sum());
    scan.summary = Some(counts.iter().map(|&(name, n)| (name.to_owned(), n.into())).collect::<Map<_, _>>());
    // A code this table does not know (a newer MSR) is left null rather than guessed.
    scan.status = s
        .last_scan_status
        .and_then(|code| SCAN_STATUSES.get(usize::try_from(code).ok()?))
        .map(|name| (*name).to_owned());
    scan.completed_at = non_empty(s.check_completed_at.as_deref());
    Ok(scan)
}

fn failed_scan(error: Option<String>) -> Scan {
    Scan {
        ty: Some("vulnerability".into()),
        status: Some("failed".into()),
        error: non_empty(error.as_deref()),
        ..Scan::default()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::dialects::testing::{at, s};
    use crate::dialects::MediaType;

    const ENDPOINT: &str = "msr";
    const FOO_BAR: &str = "sha256:b5bb9d8014a0f9b1d61e21e796d78dccdf1352f23cd32812f4850b878ae4944c";

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("../../tests/fixtures/msr/", $name))
        };
    }

    fn run(body: &str) -> Result<Normalized, DialectError> {
        normalize(&Input::new(ENDPOINT, MediaType::Json, body.as_bytes()))
    }

    fn events(body: &str) -> Vec<Occurrence> {
        match run(body) {
            Ok(Normalized::Events(events)) => events,
            other => panic!("expected events, got {other:?}"),
        }
    }

    /// The occurrence a fixture must yield: its digest id, plus the given fields.
    fn new(body: &str, kind: Kind, origtype: &str) -> Occurrence {
        Occurrence::new(kind, digest_id(ENDPOINT, body.as_bytes()), origtype)
    }

    fn a64() -> Option<String> {
        Some(format!("sha256:{}", "a".repeat(64)))
    }

    #[test]
    fn tag_push_from_the_docs() {
        let body = fixture!("tag_push.dtr-2.4-docs.json");
        let want = Occurrence {
            host: s("example.com"),
            repository: s("foo/bar"),
            tag: s("latest"),
            digest: s(FOO_BAR),
            os: s("linux"),
            architecture: s("amd64"),
            // `author` is "" in the sample: unknown.
            time: at("2017-06-20T01:29:53.046620425Z"),
            ..new(body, kinds::ARTIFACT_PUSHED, "TAG_PUSH")
        };
        assert_eq!(events(body), std::slice::from_ref(&want));

        // This sample's `imageName` has no host, so the registry host stays unknown.
        let body = fixture!("tag_push.dtr-docs-use-the-web-ui.json");
        let want = Occurrence {
            id: digest_id(ENDPOINT, body.as_bytes()),
            host: None,
            time: at("2019-05-15T19:39:40.607337713Z"),
            ..want
        };
        assert_eq!(events(body), [want]);
    }

    #[test]
    fn tag_pull_and_delete_and_manifest_push() {
        let body = fixture!("synthetic/tag_pull.json");
        let pulled = Occurrence {
            host: s("msr.example.test"),
            repository: s("acme/api"),
            tag: s("1.2.3"),
            digest: a64(),
            os: s("linux"),
            architecture: s("amd64"),
            actor: s("ci-bot"),
            time: at("2024-05-01T10:02:00Z"),
            ..new(body, kinds::ARTIFACT_PULLED, "TAG_PULL")
        };
        assert_eq!(events(body), std::slice::from_ref(&pulled));

        let body = fixture!("synthetic/tag_delete.json");
        let deleted = Occurrence {
            kind: kinds::ARTIFACT_DELETED,
            id: digest_id(ENDPOINT, body.as_bytes()),
            origtype: "TAG_DELETE".into(),
            time: at("2024-05-01T10:00:00.123456789Z"),
            ..pulled
        };
        assert_eq!(events(body), [deleted]);

        let body = fixture!("synthetic/manifest_push.json");
        let want = Occurrence {
            host: s("msr.example.test"),
            repository: s("acme/api"),
            digest: a64(),
            os: s("linux"),
            architecture: s("amd64"),
            actor: s("ci-bot"),
            time: at("2024-05-01T10:01:00.5Z"),
            ..new(body, kinds::ARTIFACT_PUSHED, "MANIFEST_PUSH")
        };
        assert_eq!(events(body), [want]);
    }

    #[test]
    fn scan_completed_counts_and_status() {
        let body = fixture!("synthetic/scan_completed.json");
        let want = Occurrence {
            host: s("msr.example.test"),
            repository: s("acme/api"),
            tag: s("1.2.3"),
            time: at("2024-05-01T10:05:00Z"),
            scan: Some(json!({
                "type": "vulnerability",
                "status": "completed",
                "severity": null,
                "total": 18,
                "fixable": null,
                "summary": { "critical": 2, "major": 5, "minor": 11 },
                "scanner": null,
                "report_id": null,
                "started_at": null,
                "completed_at": "2024-05-01T10:04:59Z",
                "sbom_digest": null,
                "error": null,
            })),
            ..new(body, kinds::SCAN_COMPLETED, "SCAN_COMPLETED")
        };
        assert_eq!(events(body), [want]);
    }

    #[test]
    fn scan_failed_carries_the_error() {
        let body = fixture!("synthetic/scan_failed.json");
        let want = Occurrence {
            host: s("msr.example.test"),
            repository: s("acme/api"),
            tag: s("1.2.4"),
            // Only in `imageName`.
            digest: a64(),
            time: at("2024-05-01T10:06:00Z"),
            scan: Some(json!({
                "type": "vulnerability",
                "status": "failed",
                "severity": null,
                "total": null,
                "fixable": null,
                "summary": null,
                "scanner": null,
                "report_id": null,
                "started_at": null,
                "completed_at": null,
                "sbom_digest": null,
                "error": "layer extraction failed",
            })),
            ..new(body, kinds::SCAN_FAILED, "SCAN_FAILED")
        };
        assert_eq!(events(body), [want]);
    }

    #[test]
    fn repository_and_scanner_events() {
        let body = fixture!("synthetic/repo_created.json");
        let want = Occurrence {
            repository: s("acme/api"),
            actor: s("admin"),
            time: at("2024-05-01T09:00:00Z"),
            ..new(body, kinds::REPOSITORY_CREATED, "REPO_CREATED")
        };
        assert_eq!(events(body), [want]);

        let body = fixture!("synthetic/scanner_update_completed.json");
        let want = Occurrence {
            time: at("2024-05-01T03:00:00Z"),
            ..new(body, kinds::SCANNER_UPDATED, "SCANNER_UPDATE_COMPLETED")
        };
        assert_eq!(events(body), [want]);
    }

    #[test]
    fn every_type_maps_and_undocumented_contents_are_read_when_present() {
        for &(ty, kind) in EVENT_TYPES {
            let body = json!({ "type": ty, "contents": {} }).to_string();
            let [occ] = <[_; 1]>::try_from(events(&body)).unwrap();
            assert_eq!((occ.kind, occ.origtype.as_str()), (kind, ty));
            assert_eq!((occ.repository, occ.tag, occ.time), (None, None, None), "{ty}");
        }
        let body = r#"{"type":"PROMOTION","createdAt":"2024-05-01T10:00:00Z","contents":{
            "namespace":"prod","repository":"api","tag":"1.2.3","author":"release-bot",
            "imageName":"msr.example.test/prod/api:1.2.3","promotionPolicy":{"id":"p1"}}}"#;
        let want = Occurrence {
            host: s("msr.example.test"),
            repository: s("prod/api"),
            tag: s("1.2.3"),
            actor: s("release-bot"),
            time: at("2024-05-01T10:00:00Z"),
            ..new(body, kinds::ARTIFACT_PROMOTED, "PROMOTION")
        };
        assert_eq!(events(body), [want]);
        // A field of an unexpected shape in undocumented contents is ignored, not fatal.
        let [occ] = <[_; 1]>::try_from(events(
            r#"{"type":"PUSH_MIRRORING","contents":{
            "tag":{"src":"1.0"},"imageName":"reg.example/team/app:1.0"}}"#,
        ))
        .unwrap();
        assert_eq!(occ.tag.as_deref(), Some("1.0"));
        assert_eq!(occ.repository.as_deref(), Some("team/app"));
    }

    #[test]
    fn scan_status_codes_are_named() {
        let status = |code: Value| {
            let body = json!({"type": "SCAN_COMPLETED", "contents": {"scanSummary": {
                "critical": 0, "major": 0, "minor": 0, "last_scan_status": code }}});
            events(&body.to_string())[0].scan.as_ref().unwrap()["status"].clone()
        };
        let names: Vec<_> = (0..7).map(|code| status(json!(code))).collect();
        assert_eq!(names, SCAN_STATUSES.map(Value::from));
        assert_eq!(status(json!(7)), Value::Null);
        assert_eq!(status(Value::Null), Value::Null);
        // Documented as an int: anything else is the sender's error.
        let body = r#"{"type":"SCAN_COMPLETED","contents":{"scanSummary":{"critical":"2"}}}"#;
        assert!(matches!(run(body), Err(DialectError::InvalidJson(_))));
    }

    #[test]
    fn batches_fan_out_by_array_index() {
        let body = r#"[
            {"type":"TAG_PUSH","contents":{"namespace":"a","repository":"b","tag":"1"}},
            {"type":"SOMETHING_NEW","contents":{}},
            {"type":"TAG_PULL","contents":{"namespace":"a","repository":"b","tag":"1"}}]"#;
        let base = digest_id(ENDPOINT, body.as_bytes());
        let evs = events(body);
        let got: Vec<_> = evs.iter().map(|o| (o.id.clone(), o.kind)).collect();
        let want =
            [(format!("{base}#0"), kinds::ARTIFACT_PUSHED), (format!("{base}#2"), kinds::ARTIFACT_PULLED)];
        assert_eq!(got, want);

        // A batch of one keeps the plain id.
        let body = r#"[{"type":"TAG_PUSH","contents":{}}]"#;
        assert_eq!(events(body)[0].id, digest_id(ENDPOINT, body.as_bytes()));

        let body = r#"[{"type":"NEW_A","contents":{}},{"type":"NEW_B","contents":{}}]"#;
        assert_eq!(run(body).unwrap(), Normalized::Unmapped { origtype: "NEW_A".into() });
        let e = run("[]").unwrap_err();
        assert!(matches!(e, DialectError::Invalid { field: "body", .. }), "{e:?}");
        // One bad entry rejects the whole batch: the sender must fix and resend it.
        let e = run(r#"[{"type":"TAG_PUSH","contents":{}},{"type":"TAG_PUSH"}]"#).unwrap_err();
        assert!(matches!(e, DialectError::Missing("contents")), "{e:?}");
    }

    #[test]
    fn unknown_types_are_unmapped() {
        let r = run(r#"{"type":"WEBHOOK_TEST","createdAt":"2024-05-01T10:00:00Z","contents":{}}"#);
        assert_eq!(r.unwrap(), Normalized::Unmapped { origtype: "WEBHOOK_TEST".into() });
    }

    #[test]
    fn required_fields_and_malformed_values() {
        let missing = |body: &str| match run(body) {
            Err(DialectError::Missing(field)) => field,
            other => panic!("expected a missing field, got {other:?}"),
        };
        assert_eq!(missing(r#"{"type":"TAG_PUSH","createdAt":"2024-05-01T10:00:00Z"}"#), "contents");
        assert_eq!(missing(r#"{"type":"TAG_PUSH","contents":null}"#), "contents");
        assert_eq!(missing(r#"{"contents":{}}"#), "type");
        assert_eq!(missing(r#"{"type":"","contents":{}}"#), "type");

        let e = run(r#"{"type":"TAG_PUSH","createdAt":"yesterday","contents":{}}"#).unwrap_err();
        assert!(matches!(e, DialectError::Invalid { field: "createdAt", .. }), "{e:?}");
        let e = run(r#"{"type":"TAG_PUSH","contents":"tag pushed"}"#).unwrap_err();
        assert!(matches!(e, DialectError::InvalidJson(_)), "{e:?}");
        let e = run(r#""TAG_PUSH""#).unwrap_err();
        assert!(matches!(e, DialectError::InvalidJson(_)), "{e:?}");
        let e = run(r#"[["TAG_PUSH", null, {}]]"#).unwrap_err();
        assert!(matches!(e, DialectError::InvalidJson(_)), "{e:?}");
    }
}
