//! Any CloudEvents 1.0 sender (Zot, Knative sources, …): known vendor types normalized, others unmapped or forwarded.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::acr::{self, GridEvent, Mapped};
use super::ce::{self, Event};
use super::real_digest;
use super::scan::Scan;
use super::{harbor, non_empty, Bounds, DialectError, DialectSpec, Input, MediaType, Normalized};
use crate::event::{kinds, Kind, Occurrence};
use crate::verify::Scheme;

/// Knative and Event Grid (CloudEvents schema) validate the endpoint with `OPTIONS` first.
pub const DIALECT: DialectSpec =
    DialectSpec::new("cloudevents", Scheme::Authorization, Some("REGBRIDGE_CLOUDEVENTS_AUTH"), normalize)
        .with_webhook_validation();

/// Zot's event types and their kinds, under Zot's default `typePrefix`. Harbor's `harbor.*` and
/// ACR's `Microsoft.ContainerRegistry.*` types are read as those dialects read them (their
/// tables). `zotregistry.image.lint_failed` (a push the linter refused) has no kind.
#[rustfmt::skip]
pub const EVENT_TYPES: &[(&str, Kind)] = &[
    ("zotregistry.image.updated",      kinds::ARTIFACT_PUSHED),
    ("zotregistry.image.deleted",      kinds::ARTIFACT_DELETED),
    ("zotregistry.image.scanned",      kinds::SCAN_COMPLETED),
    ("zotregistry.repository.created", kinds::REPOSITORY_CREATED),
];

/// Zot's default `typePrefix`. A deployment may set its own (`com.example.registry`), so the
/// rest of the type (`.image.updated`) is what names the event.
const ZOT_PREFIX: &str = "zotregistry";

/// The `data` of Zot's events (`pkg/extensions/events`): every type has `name`; image events
/// `reference` (tag or digest, as requested), `digest`; `image.scanned` a `summary`; requests
/// with a context `actor`.
#[derive(Deserialize)]
struct ZotData {
    name: Option<String>,
    reference: Option<String>,
    digest: Option<String>,
    actor: Option<ZotActor>,
    summary: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
struct ZotActor {
    name: Option<String>,
}

fn normalize(input: &Input<'_>) -> Result<Normalized, DialectError> {
    let events = ce::read(input)?;
    let mut out = Vec::with_capacity(events.len());
    let mut first_unmapped = None;
    // What the entries read so far left of the request's bounds: a Harbor entry fans out on its
    // own, and a batch of them must not build many times the bounds before the totals are seen.
    let mut left = input.bounds;
    for ev in events {
        let known = known(input, &ev, left).map_err(|e| match e {
            DialectError::TooManyEvents { count, .. } => {
                DialectError::TooManyEvents { count: out.len() + count, max: input.bounds.max_events }
            }
            DialectError::OutputTooLarge { size, .. } => DialectError::OutputTooLarge {
                size: input.bounds.max_output - left.max_output + size,
                max: input.bounds.max_output,
            },
            other => other,
        })?;
        match known {
            Some(mut occurrences) => {
                for occ in &mut occurrences {
                    // Harbor's fan-out gives each resource a part of its own already.
                    if occ.part.is_none() {
                        occ.part = ev.part.clone();
                    }
                }
                let size: usize =
                    occurrences.iter().filter_map(|o| o.part.as_ref()).map(|p| p.as_bytes().len()).sum();
                left.max_events = left.max_events.saturating_sub(occurrences.len());
                left.max_output = left.max_output.saturating_sub(size);
                out.append(&mut occurrences);
            }
            None if input.passthrough => out.push(forwarded(ev)?),
            None => {
                input.unmapped_entry();
                first_unmapped.get_or_insert_with(|| ev.ty.into_owned());
            }
        }
    }
    // A mixed batch publishes its mapped events; the others are counted as unmapped.
    Ok(match first_unmapped {
        Some(origtype) if out.is_empty() => Normalized::Unmapped { origtype },
        _ => Normalized::Events(out),
    })
}

/// The occurrences of an event of a vendor type regbridge knows; `None` for any other type.
fn known(input: &Input<'_>, ev: &Event<'_>, left: Bounds) -> Result<Option<Vec<Occurrence>>, DialectError> {
    if ev.ty.starts_with("harbor.") {
        return harbor_event(input, ev, left);
    }
    if ev.ty.starts_with(acr::GRID_PREFIX) {
        let grid = GridEvent {
            id: &ev.id,
            ty: &ev.ty,
            topic: Some(&ev.source),
            time: ev.time.as_deref(),
            data: ev.data.as_deref(),
            type_field: "type",
            time_field: "time",
        };
        return Ok(match acr::grid_event(&grid)? {
            Mapped::Event(occ) => Some(vec![*occ]),
            Mapped::Validation(_) | Mapped::Unmapped(_) => None,
        });
    }
    Ok(zot(ev)?.map(|occ| vec![occ]))
}

/// Harbor's CloudEvents format, read by the harbor dialect from this event alone (a batch entry,
/// or a binary-mode event written out in structured mode).
fn harbor_event(
    input: &Input<'_>,
    ev: &Event<'_>,
    left: Bounds,
) -> Result<Option<Vec<Occurrence>>, DialectError> {
    let event = match (&ev.part, ev.entry) {
        (Some(part), _) => part.as_bytes().to_vec(),
        (None, Some(entry)) => serde_json::to_vec(entry).expect("a JSON tree serializes"),
        (None, None) => input.body.to_vec(),
    };
    let own = Input { bounds: left, ..Input::new(input.endpoint, MediaType::CloudEvents, &event) };
    let mut occurrences = match harbor::cloudevents_format(&own)? {
        Normalized::Events(occurrences) => occurrences,
        Normalized::Unmapped { .. } | Normalized::Answer(_) => return Ok(None),
    };
    // A batch that repeats this event's id made it `<id>#<index>` (ce::read); Harbor's own ids
    // (`<id>`, or `<id>#<resource>` when it fans out) take that in place of `<id>`.
    let sent = ev.entry.and_then(|e| e.get("id")).and_then(Value::as_str);
    if let Some(sent) = sent.filter(|s| *s != ev.id) {
        for occ in &mut occurrences {
            if let Some(rest) = occ.id.strip_prefix(sent) {
                occ.id = format!("{}{rest}", ev.id);
            }
        }
    }
    Ok(Some(occurrences))
}

/// The kind of a Zot type, and whether it has Zot's default prefix.
fn zot_kind(ty: &str) -> Option<(Kind, bool)> {
    EVENT_TYPES.iter().find_map(|&(name, kind)| {
        let suffix = &name[ZOT_PREFIX.len()..];
        match ty.strip_suffix(suffix) {
            Some(prefix) => Some((kind, prefix == ZOT_PREFIX)).filter(|_| !prefix.is_empty()),
            None => None,
        }
    })
}

/// A Zot event. Under another `typePrefix` the type alone could be anyone's, so only data of
/// Zot's shape (a `name`) makes it Zot's; under Zot's own prefix, data without one is an error.
fn zot(ev: &Event<'_>) -> Result<Option<Occurrence>, DialectError> {
    let Some((kind, own_prefix)) = zot_kind(&ev.ty) else { return Ok(None) };
    let name = ev.data.as_deref().and_then(|d| d.get("name")).and_then(Value::as_str);
    let data = match (ev.data.as_deref(), name) {
        (Some(data), Some(_)) => data,
        _ if !own_prefix => return Ok(None),
        (None, _) => return Err(DialectError::Missing("data")),
        (Some(_), None) => return Err(DialectError::Missing("data.name")),
    };
    let d = ZotData::deserialize(data).map_err(DialectError::InvalidJson)?;
    let mut occ = Occurrence::new(kind, ev.id.as_ref(), ev.ty.as_ref());
    (occ.source, occ.host) = instance(&ev.source);
    occ.repository = non_empty(d.name.as_deref());
    // `reference` is what the client asked for: a tag, or a digest when it pushed or deleted by
    // one (a tag cannot contain `:`).
    let reference = non_empty(d.reference.as_deref());
    let by_digest = reference.as_deref().is_some_and(|r| r.contains(':'));
    occ.digest =
        real_digest(d.digest.as_deref()).or_else(|| real_digest(reference.as_deref().filter(|_| by_digest)));
    occ.tag = reference.filter(|_| !by_digest);
    occ.actor = d.actor.and_then(|a| non_empty(a.name.as_deref()));
    occ.time = ev.time()?;
    if kind == kinds::SCAN_COMPLETED {
        occ.scan = Some(zot_scan(d.summary.as_ref()).into_value());
    }
    Ok(Some(occ))
}

/// Zot's `source` is `zotregistry.dev` unless configured; a deployment that sets an absolute
/// `http(s)` URI (as Zot's docs show, `https://registry.example.com`) names its instance, and
/// one without a path names the host images are pulled from.
fn instance(source: &str) -> (Option<String>, Option<String>) {
    let Some(rest) = source.strip_prefix("https://").or_else(|| source.strip_prefix("http://")) else {
        return (None, None);
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.is_empty() {
        return (None, None);
    }
    let host = (path.is_empty()).then(|| authority.to_owned());
    (Some(source.to_owned()), host)
}

/// `summary` of `image.scanned`: `count`, `fixableCount`, `maxSeverity` and one `<severity>Count`
/// per severity, the names lower-cased for `summary`.
fn zot_scan(summary: Option<&Map<String, Value>>) -> Scan {
    let mut scan = Scan { ty: Some("vulnerability".into()), ..Scan::default() };
    let Some(s) = summary else { return scan };
    scan.total = s.get("count").and_then(Value::as_u64);
    scan.fixable = s.get("fixableCount").and_then(Value::as_u64);
    scan.severity = non_empty(s.get("maxSeverity").and_then(Value::as_str));
    let counts = s.iter().filter_map(|(key, n)| {
        let severity = key.strip_suffix("Count").filter(|k| !k.is_empty() && *k != "fixable")?;
        Some((severity.to_lowercase(), n.as_u64()?.into()))
    });
    scan.summary = Some(counts.collect());
    scan
}

/// An event of a type regbridge does not know, published as it came (`passthrough: true`): its
/// id, source, subject and time, its own type as `origtype`, the event as `data.original`.
/// Its subject is not taken for a repository: it can name anything (a ping source, a branch).
fn forwarded(ev: Event<'_>) -> Result<Occurrence, DialectError> {
    let mut occ = Occurrence::new(kinds::CLOUDEVENT_FORWARDED, ev.id.as_ref(), ev.ty.as_ref());
    occ.time = ev.time()?;
    occ.source = Some(ev.source.into_owned());
    occ.subject = non_empty(ev.subject.as_deref());
    occ.part = ev.part;
    Ok(occ)
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
    use serde_json::json;

    use super::super::Bounds;
    use super::*;
    use crate::dialects::testing::{at, s};

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("../../tests/fixtures/", $name))
        };
    }

    const ALPINE: &str = "sha256:954b378c375d852eb3c63ab88978f640b4348b01c1b3456a024a81536dafbbf4";
    const ZOT_ID: &str = "0b6a1f3e-0000-4000-8000-000000000002";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        map
    }

    /// Zot's binary mode: the attributes sdk-go writes, `data` the body.
    fn zot_headers(ty: &str, source: &str) -> HeaderMap {
        headers(&[
            ("ce-specversion", "1.0"),
            ("ce-id", ZOT_ID),
            ("ce-source", source),
            ("ce-type", ty),
            ("ce-time", "2025-06-01T12:00:00.123456789Z"),
            ("content-type", "application/json"),
        ])
    }

    fn run_with(
        body: &str,
        media: MediaType,
        headers: &HeaderMap,
        passthrough: bool,
    ) -> Result<Normalized, DialectError> {
        normalize(&Input { headers, passthrough, ..Input::new("cloudevents", media, body.as_bytes()) })
    }

    fn run(body: &str, media: MediaType) -> Result<Normalized, DialectError> {
        run_with(body, media, &HeaderMap::new(), false)
    }

    fn events_with(body: &str, media: MediaType, headers: &HeaderMap, passthrough: bool) -> Vec<Occurrence> {
        match run_with(body, media, headers, passthrough) {
            Ok(Normalized::Events(events)) => events,
            other => panic!("expected events, got {other:?}"),
        }
    }

    fn one(body: &str, media: MediaType, headers: &HeaderMap) -> Occurrence {
        let [occ] = <[_; 1]>::try_from(events_with(body, media, headers, false)).unwrap();
        occ
    }

    fn part(occ: &Occurrence) -> Value {
        serde_json::from_slice(occ.part.as_ref().expect("a part of its own").as_bytes()).unwrap()
    }

    #[test]
    fn harbor_events_repeating_an_id_in_a_batch_get_one_each() {
        let push = fixture!("harbor/push_artifact.cloudevents.fixed.json");
        let pull = fixture!("harbor/pull_artifact.cloudevents.fixed.json");
        let id = |body: &str| serde_json::from_str::<Value>(body).unwrap()["id"].as_str().unwrap().to_owned();
        let (push_id, pull_id) = (id(push), id(pull));
        let body = format!("[{push},{pull},{push}]");
        let ids: Vec<String> = events_with(&body, MediaType::CloudEventsBatch, &HeaderMap::new(), false)
            .into_iter()
            .map(|o| o.id)
            .collect();
        assert_eq!(ids, [format!("{push_id}#0"), pull_id, format!("{push_id}#2")]);
    }

    #[test]
    fn zot_image_updated_in_structured_mode() {
        let body = fixture!("other/synthetic/zot.image-updated.structured-ce.json");
        let want = Occurrence {
            // `source` is Zot's default `zotregistry.dev`, which names no instance.
            repository: s("golang"),
            tag: s("latest"),
            digest: Some(format!("sha256:{}", "b".repeat(64))),
            time: at("2025-06-01T12:00:00Z"),
            ..Occurrence::new(
                kinds::ARTIFACT_PUSHED,
                "0b6a1f3e-0000-4000-8000-000000000001",
                "zotregistry.image.updated",
            )
        };
        let none = HeaderMap::new();
        assert_eq!(one(body, MediaType::CloudEvents, &none), want);
        // A relay that rewrote the media type, and a batch of one.
        assert_eq!(one(body, MediaType::Json, &none), want);
        assert_eq!(one(&format!("[{body}]"), MediaType::CloudEventsBatch, &none), want);
    }

    #[test]
    fn zot_binary_mode_with_actor_and_a_placeholder_digest() {
        let body = fixture!("other/zot/payload-metadata.data-fragment.zot-docs.json");
        let h = zot_headers("zotregistry.image.updated", "zotregistry.dev");
        let occ = one(body, MediaType::Json, &h);
        let want = Occurrence {
            repository: s("space/my-image"),
            tag: s("latest"),
            // `sha256:abc...` is the docs' placeholder.
            digest: None,
            actor: s("john"),
            time: at("2025-06-01T12:00:00.123456789Z"),
            part: occ.part.clone(),
            ..Occurrence::new(kinds::ARTIFACT_PUSHED, ZOT_ID, "zotregistry.image.updated")
        };
        assert_eq!(occ, want);
        // `data.original` is the event in structured mode: the headers' attributes, the body as data.
        let data: Value = serde_json::from_str(body).unwrap();
        let structured = json!({
            "specversion": "1.0", "id": ZOT_ID, "source": "zotregistry.dev", "type": "zotregistry.image.updated",
            "time": "2025-06-01T12:00:00.123456789Z", "datacontenttype": "application/json", "data": data,
        });
        assert_eq!(part(&occ), structured);
    }

    #[test]
    fn zot_image_scanned_under_a_deployment_prefix_and_source() {
        let body = fixture!("other/zot/image.scanned.data-fragment.zot-docs.json");
        let scan = json!({
            "type": "vulnerability",
            "status": null,
            "severity": "HIGH",
            "total": 4,
            "fixable": 2,
            "summary": { "unknown": 0, "low": 1, "medium": 1, "high": 2, "critical": 0 },
            "scanner": null,
            "report_id": null,
            "started_at": null,
            "completed_at": null,
            "sbom_digest": null,
            "error": null,
        });
        let h = zot_headers("zotregistry.image.scanned", "zotregistry.dev");
        let occ = one(body, MediaType::Json, &h);
        let want = Occurrence {
            repository: s("space/my-image"),
            tag: s("latest"),
            time: at("2025-06-01T12:00:00.123456789Z"),
            scan: Some(scan),
            part: occ.part.clone(),
            ..Occurrence::new(kinds::SCAN_COMPLETED, ZOT_ID, "zotregistry.image.scanned")
        };
        assert_eq!(occ, want);

        // Zot's docs configure `typePrefix: com.example.registry`, `source: https://registry.example.com`.
        let h = zot_headers("com.example.registry.image.scanned", "https://registry.example.com");
        let occ = one(body, MediaType::Json, &h);
        let want = Occurrence {
            origtype: "com.example.registry.image.scanned".into(),
            source: s("https://registry.example.com"),
            host: s("registry.example.com"),
            part: occ.part.clone(),
            ..want
        };
        assert_eq!(occ, want);
    }

    #[test]
    fn zot_deletes_by_digest_and_creates_repositories() {
        let d = format!("sha256:{}", "c".repeat(64));
        let body = json!({"name": "team/app", "reference": d, "digest": d, "mediaType": "application/vnd.oci.image.manifest.v1+json"});
        let occ = one(
            &body.to_string(),
            MediaType::Json,
            &zot_headers("zotregistry.image.deleted", "zotregistry.dev"),
        );
        assert_eq!((occ.kind, occ.tag, occ.digest), (kinds::ARTIFACT_DELETED, None, Some(d.clone())));
        let body = json!({"name": "team/app", "reference": d});
        let occ = one(
            &body.to_string(),
            MediaType::Json,
            &zot_headers("zotregistry.image.deleted", "zotregistry.dev"),
        );
        assert_eq!(occ.digest, Some(d));

        let body = r#"{"name":"team/new"}"#;
        let occ =
            one(body, MediaType::Json, &zot_headers("zotregistry.repository.created", "zotregistry.dev"));
        assert_eq!(
            (occ.kind, occ.repository.as_deref(), occ.tag),
            (kinds::REPOSITORY_CREATED, Some("team/new"), None)
        );

        // A push the linter refused has no kind.
        let body = r#"{"name":"team/app","reference":"1.0"}"#;
        let r = run_with(
            body,
            MediaType::Json,
            &zot_headers("zotregistry.image.lint_failed", "zotregistry.dev"),
            false,
        );
        assert_eq!(r.unwrap(), Normalized::Unmapped { origtype: "zotregistry.image.lint_failed".into() });
        for (ty, kind) in EVENT_TYPES {
            let occ = one(r#"{"name":"a"}"#, MediaType::Json, &zot_headers(ty, "zotregistry.dev"));
            assert_eq!(occ.kind, *kind);
        }
    }

    #[test]
    fn zot_shapes_are_enforced_under_zot_prefix_only() {
        let h = zot_headers("zotregistry.image.updated", "zotregistry.dev");
        let e = run_with(r#"{"reference":"1.0"}"#, MediaType::Json, &h, false).unwrap_err();
        assert!(matches!(e, DialectError::Missing("data.name")), "{e:?}");
        assert!(matches!(run_with("", MediaType::Json, &h, false), Err(DialectError::Missing("data"))));
        let e = run_with(r#"{"name":"a","reference":7}"#, MediaType::Json, &h, false).unwrap_err();
        assert!(matches!(e, DialectError::InvalidJson(_)), "{e:?}");
        // Someone else's `….image.updated` without Zot's data is just a type regbridge does not know.
        let h = zot_headers("com.example.image.updated", "https://example.com/builds");
        let r = run_with(r#"{"image":"x"}"#, MediaType::Json, &h, false).unwrap();
        assert_eq!(r, Normalized::Unmapped { origtype: "com.example.image.updated".into() });
    }

    #[test]
    fn harbor_cloudevents_read_as_the_harbor_dialect_does() {
        let want = Occurrence {
            host: s("localhost"),
            repository: s("harbor/alpine"),
            digest: s(ALPINE),
            actor: s("harbor-jobservice"),
            time: at("2023-04-03T06:04:46Z"),
            ..Occurrence::new(
                kinds::ARTIFACT_PUSHED,
                "66e18103-09c1-41f6-982f-37df223f3eeb",
                "harbor.artifact.pushed",
            )
        };
        let body = fixture!("harbor/push_artifact.cloudevents.fixed.json");
        let none = HeaderMap::new();
        assert_eq!(one(body, MediaType::CloudEvents, &none), want);

        // In a batch, each event carries its own entry.
        let scanned = fixture!("harbor/scanning_completed.cloudevents.json");
        let batch = format!("[{body},{scanned}]");
        let evs = events_with(&batch, MediaType::CloudEventsBatch, &none, false);
        let got: Vec<_> = evs.iter().map(|o| (o.id.as_str(), o.kind)).collect();
        let scan_id = "64bce2fe-6159-454d-8389-852d01ef1e9d";
        assert_eq!(got, [(want.id.as_str(), kinds::ARTIFACT_PUSHED), (scan_id, kinds::SCAN_COMPLETED)]);
        assert_eq!(part(&evs[1]), serde_json::from_str::<Value>(scanned).unwrap());
        assert_eq!(evs[1].scan.as_ref().unwrap()["scanner"]["name"], "Trivy");

        // Harbor types it does not map are unmapped here too.
        let body = r#"{"specversion":"1.0","id":"x","source":"/p","type":"harbor.sbom.pushed","data":{}}"#;
        assert_eq!(
            run(body, MediaType::CloudEvents).unwrap(),
            Normalized::Unmapped { origtype: "harbor.sbom.pushed".into() }
        );
        // Harbor's own requirements hold.
        let body = r#"{"specversion":"1.0","id":"x","source":"/p","type":"harbor.artifact.pushed"}"#;
        assert!(matches!(run(body, MediaType::CloudEvents), Err(DialectError::Missing("data"))));
    }

    #[test]
    fn harbor_in_binary_mode_keeps_its_operator_extension() {
        let h = headers(&[
            ("ce-specversion", "1.0"),
            ("ce-id", "h1"),
            ("ce-source", "/projects/1/webhook/policies/1"),
            ("ce-type", "harbor.artifact.pulled"),
            ("ce-time", "2024-01-01T00:00:00Z"),
            ("ce-operator", "robot%24ci"),
            ("content-type", "application/json"),
        ]);
        let body = r#"{"resources":[{"digest":"sha256:a","tag":"1.0","resource_url":"reg.example/team/app:1.0"}],
            "repository":{"repo_full_name":"team/app"}}"#;
        let occ = one(body, MediaType::Json, &h);
        assert_eq!((occ.kind, occ.id.as_str()), (kinds::ARTIFACT_PULLED, "h1"));
        assert_eq!(occ.actor.as_deref(), Some("robot$ci"));
        assert_eq!(occ.image().as_deref(), Some("reg.example/team/app:1.0"));
        assert_eq!(part(&occ)["operator"], "robot$ci");
    }

    #[test]
    fn acr_events_read_as_the_acr_dialect_does() {
        let body = fixture!("other/synthetic/acr.eventgrid-cloudevents.image-pushed.json");
        let want = Occurrence {
            host: s("myreg.azurecr.io"),
            repository: s("app"),
            tag: s("1.0"),
            digest: Some(format!("sha256:{}", "b".repeat(64))),
            time: at("2025-06-01T12:00:00Z"),
            ..Occurrence::new(
                kinds::ARTIFACT_PUSHED,
                "00000000-0000-4000-8000-00000000aaaa",
                "Microsoft.ContainerRegistry.ImagePushed",
            )
        };
        assert_eq!(one(body, MediaType::CloudEventsBatch, &HeaderMap::new()), want);
        // Event Grid's schema is not CloudEvents.
        let body = fixture!("other/acr/ImagePushed.eventgrid-schema.azure-docs.json");
        assert!(matches!(run(body, MediaType::Json), Err(DialectError::Missing("specversion"))));
    }

    #[test]
    fn unknown_types_are_unmapped_or_forwarded() {
        let body = r#"{"specversion":"1.0","id":"p-1","source":"/apis/v1/namespaces/default/pingsources/ping",
            "type":"dev.knative.sources.ping","subject":"ping-1","time":"2025-01-01T00:00:00Z",
            "datacontenttype":"application/json","data":{"message":"hello"}}"#;
        let r = run(body, MediaType::CloudEvents).unwrap();
        assert_eq!(r, Normalized::Unmapped { origtype: "dev.knative.sources.ping".into() });
        let occ = one_forwarded(body, MediaType::CloudEvents, &HeaderMap::new());
        let want = Occurrence {
            source: s("/apis/v1/namespaces/default/pingsources/ping"),
            subject: s("ping-1"),
            time: at("2025-01-01T00:00:00Z"),
            ..Occurrence::new(kinds::CLOUDEVENT_FORWARDED, "p-1", "dev.knative.sources.ping")
        };
        assert_eq!(occ, want);
        assert_eq!(occ.subject().as_deref(), Some("ping-1"));

        // Binary mode: the event in structured mode, extensions included, is its original.
        let h = headers(&[
            ("ce-specversion", "1.0"),
            ("ce-id", "k-2"),
            ("ce-source", "https://github.com/acme/app"),
            ("ce-type", "dev.knative.source.github.push"),
            ("ce-subject", "caf%C3%A9"),
            ("ce-channel", "alerts"),
            ("content-type", "application/json; charset=utf-8"),
        ]);
        let occ = one_forwarded("{ \"ref\" : \"main\" }", MediaType::Json, &h);
        assert_eq!((occ.id.as_str(), occ.subject().as_deref(), occ.time), ("k-2", Some("café"), None));
        assert_eq!(occ.repository, None);
        let want = json!({"specversion": "1.0", "id": "k-2", "source": "https://github.com/acme/app",
            "type": "dev.knative.source.github.push", "subject": "café", "channel": "alerts",
            "datacontenttype": "application/json; charset=utf-8", "data": {"ref": "main"}});
        assert_eq!(part(&occ), want);
        // Without data at all.
        let occ = one_forwarded("", MediaType::Json, &h);
        assert_eq!(part(&occ).get("data"), None);
    }

    fn one_forwarded(body: &str, media: MediaType, headers: &HeaderMap) -> Occurrence {
        let [occ] = <[_; 1]>::try_from(events_with(body, media, headers, true)).unwrap();
        occ
    }

    #[test]
    fn mixed_batches_keep_order_and_parts() {
        let zot = json!({"specversion": "1.0", "id": "z1", "source": "zotregistry.dev", "type": "zotregistry.image.updated",
            "data": {"name": "app", "reference": "1.0"}});
        let other = json!({"specversion": "1.0", "id": "o1", "source": "/x", "type": "com.example.other"});
        let body = json!([other, zot]).to_string();
        let mapped = events_with(&body, MediaType::CloudEventsBatch, &HeaderMap::new(), false);
        assert_eq!(mapped.iter().map(|o| o.id.as_str()).collect::<Vec<_>>(), ["z1"]);
        assert_eq!(part(&mapped[0]), zot);
        let all = events_with(&body, MediaType::CloudEventsBatch, &HeaderMap::new(), true);
        let got: Vec<_> = all.iter().map(|o| (o.id.as_str(), o.kind)).collect();
        assert_eq!(got, [("o1", kinds::CLOUDEVENT_FORWARDED), ("z1", kinds::ARTIFACT_PUSHED)]);
        assert_eq!(part(&all[0]), other);

        let body = json!([zot, zot, zot]).to_string();
        let bounds = Bounds { max_events: 2, ..Bounds::default() };
        let r = normalize(&Input {
            bounds,
            ..Input::new("cloudevents", MediaType::CloudEventsBatch, body.as_bytes())
        });
        assert!(matches!(r, Err(DialectError::TooManyEvents { count: 3, max: 2 })), "{r:?}");
    }

    #[test]
    fn data_base64_is_read_when_it_is_json() {
        use base64::Engine;
        let data = base64::engine::general_purpose::STANDARD.encode(r#"{"name":"app","reference":"2.0"}"#);
        let body = json!({"specversion": "1.0", "id": "z2", "source": "zotregistry.dev",
            "type": "zotregistry.image.updated", "datacontenttype": "application/json", "data_base64": data});
        let occ = one(&body.to_string(), MediaType::CloudEvents, &HeaderMap::new());
        assert_eq!((occ.repository.as_deref(), occ.tag.as_deref()), (Some("app"), Some("2.0")));
        let body = json!({"specversion": "1.0", "id": "z2", "source": "s", "type": "zotregistry.image.updated",
            "data_base64": "not base64!"});
        let e = run(&body.to_string(), MediaType::CloudEvents).unwrap_err();
        assert!(matches!(e, DialectError::Invalid { field: "data_base64", .. }), "{e:?}");
        // Data that is not JSON is none a vendor mapping can read.
        let body = json!({"specversion": "1.0", "id": "z2", "source": "s", "type": "zotregistry.image.updated",
            "datacontenttype": "text/plain", "data_base64": "aGk="});
        assert!(matches!(run(&body.to_string(), MediaType::CloudEvents), Err(DialectError::Missing("data"))));
    }

    #[test]
    fn what_is_not_a_cloudevent_is_an_error() {
        let missing = |body: &str, media| match run(body, media) {
            Err(DialectError::Missing(field)) => field,
            other => panic!("expected a missing field, got {other:?}"),
        };
        assert_eq!(
            missing(fixture!("other/zot/payload-metadata.data-fragment.zot-docs.json"), MediaType::Json),
            "specversion"
        );
        assert_eq!(missing(fixture!("harbor/push_artifact.default.json"), MediaType::Json), "specversion");
        assert_eq!(missing(fixture!("other/synthetic/dockerhub.push.json"), MediaType::Json), "specversion");
        assert_eq!(missing(r#"{"specversion":"1.0","source":"s","type":"t"}"#, MediaType::CloudEvents), "id");
        assert_eq!(
            missing(r#"{"specversion":"1.0","id":"","source":"s","type":"t"}"#, MediaType::CloudEvents),
            "id"
        );
        assert_eq!(missing(r#"{"specversion":"1.0","id":"1","type":"t"}"#, MediaType::CloudEvents), "source");
        assert_eq!(missing(r#"{"specversion":"1.0","id":"1","source":"s"}"#, MediaType::CloudEvents), "type");
        assert_eq!(
            missing(
                r#"[{"specversion":"1.0","id":"1","source":"s","type":"t"},{"id":"2"}]"#,
                MediaType::Json
            ),
            "specversion"
        );
        let h = headers(&[("ce-specversion", "1.0"), ("ce-source", "s"), ("ce-type", "t")]);
        assert!(matches!(run_with("{}", MediaType::Json, &h, true), Err(DialectError::Missing("ce-id"))));

        let invalid = |body: &str| match run(body, MediaType::CloudEvents) {
            Err(DialectError::Invalid { field, .. }) => field,
            other => panic!("expected an invalid field, got {other:?}"),
        };
        assert_eq!(invalid(r#"{"specversion":"0.3","id":"1","source":"s","type":"t"}"#), "specversion");
        assert_eq!(invalid(r#"{"specversion":"1.0","id":1,"source":"s","type":"t"}"#), "id");
        assert_eq!(
            invalid(
                r#"{"specversion":"1.0","id":"1","source":"s","type":"zotregistry.image.updated","time":"noon","data":{"name":"a"}}"#
            ),
            "time"
        );
        assert_eq!(invalid("[]"), "body");
        let h = headers(&[
            ("ce-specversion", "1.0"),
            ("ce-id", "1"),
            ("ce-source", "s"),
            ("ce-type", "t"),
            ("ce-time", "noon"),
        ]);
        let e = run_with("{}", MediaType::Json, &h, true).unwrap_err();
        assert!(matches!(e, DialectError::Invalid { field: "time", .. }), "{e:?}");
        assert!(matches!(run("42", MediaType::CloudEvents), Err(DialectError::InvalidJson(_))));
        assert!(matches!(run("[42]", MediaType::CloudEventsBatch), Err(DialectError::InvalidJson(_))));
    }
}
