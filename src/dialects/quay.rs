//! Quay (quay.io, Red Hat Quay) repository notifications: the event is inferred from the payload's fields.

use serde::de::Error as _;
use serde_json::{Map, Value};

use super::scan::Scan;
use super::{
    digest_id, fan_out_id, is_digest, kind_in, parse_reference, str_member, unexpected, DialectError,
    DialectSpec, Input, Normalized,
};
use crate::event::{kinds, Kind, Occurrence, Original};
use crate::verify::Scheme;

pub const DIALECT: DialectSpec =
    DialectSpec::new("quay", Scheme::Token, Some("REGBRIDGE_QUAY_TOKENS"), normalize);

/// Quay event names and their kinds. Quay's other events (`repo_mirror_sync_started`,
/// `repo_mirror_sync_failed`, `repo_image_expiry`) are acknowledged as unmapped. The README's
/// mapping table mirrors this one.
#[rustfmt::skip]
pub const EVENT_TYPES: &[(&str, Kind)] = &[
    ("repo_push",                kinds::ARTIFACT_PUSHED),
    ("build_queued",             kinds::BUILD_QUEUED),
    ("build_start",              kinds::BUILD_STARTED),
    ("build_success",            kinds::BUILD_SUCCEEDED),
    ("build_failure",            kinds::BUILD_FAILED),
    ("build_cancelled",          kinds::BUILD_CANCELLED),
    ("vulnerability_found",      kinds::VULNERABILITY_FOUND),
    ("quota_warning",            kinds::QUOTA_WARNING),
    ("quota_error",              kinds::QUOTA_EXCEEDED),
    ("repo_mirror_sync_success", kinds::ARTIFACT_REPLICATED),
];

/// Every event Quay can notify about (`externalnotificationevent`), as `?event=` may declare.
const EVENTS: &[&str] = &[
    "repo_push",
    "build_queued",
    "build_start",
    "build_success",
    "build_failure",
    "build_cancelled",
    "vulnerability_found",
    "quota_warning",
    "quota_error",
    "repo_mirror_sync_started",
    "repo_mirror_sync_success",
    "repo_mirror_sync_failed",
    "repo_image_expiry",
];

/// The name given to mirror notifications when the URL does not declare which one it is: the three carry the same single `message` field.
const MIRROR_SYNC: &str = "repo_mirror_sync";

/// Events whose payloads look alike, so that only a declaration can tell them apart.
fn family(event: &str) -> &str {
    ["build_", "quota_", MIRROR_SYNC].into_iter().find(|p| event.starts_with(p)).unwrap_or(event)
}

/// `<scheme>://<authority>` of an absolute URL.
fn origin(url: &str) -> Option<&str> {
    let start = url.find("://")? + 3;
    let end = url[start..].find(['/', '?', '#']).map_or(url.len(), |i| start + i);
    (end > start).then(|| &url[..end])
}

/// A list of strings (`updated_tags`, `docker_tags`, `tags`); anything else there is an error.
fn strings<'a>(payload: &'a Map<String, Value>, key: &'static str) -> Result<Vec<&'a str>, DialectError> {
    let invalid = |v: &Value| {
        DialectError::InvalidJson(serde_json::Error::invalid_type(unexpected(v), &"a list of strings"))
    };
    match payload.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().ok_or_else(|| invalid(v)))
            .filter(|s| !matches!(s, Ok("")))
            .collect(),
        Some(other) => Err(invalid(other)),
    }
}

/// Which event a payload is. Quay's webhook body is the event data alone, with no event name,
/// and Quay's docs leave it to the receiver to know what a URL was registered for: a
/// notification URL ending in `?event=<name>` declares it (`/webhooks/quay?event=build_cancelled`).
/// Otherwise the event is inferred from the fields present, which cannot tell `build_cancelled`
/// from `build_start` (Quay sends the same fields) nor the three mirror events apart.
fn event_of(declared: Option<&str>, payload: &Map<String, Value>) -> Result<String, DialectError> {
    let has = |key: &str| payload.get(key).is_some_and(|v| !v.is_null());
    let inferred = if has("updated_tags") {
        "repo_push"
    } else if has("vulnerability") || has("vulnerabilities") {
        "vulnerability_found"
    } else if has("expiring_in") {
        "repo_image_expiry"
    } else if has("build_id") {
        if has("error_message") {
            "build_failure"
        } else if payload.contains_key("is_manual") || payload.contains_key("manual_user") {
            "build_queued"
        } else if has("manifest_digests") || has("image_id") {
            "build_success"
        } else {
            "build_start"
        }
    } else if has("usage_bytes") && has("limit_bytes") {
        let over = payload["usage_bytes"].as_f64() >= payload["limit_bytes"].as_f64();
        if over {
            "quota_error"
        } else {
            "quota_warning"
        }
    } else if payload.get("message").is_some_and(Value::is_string) {
        MIRROR_SYNC
    } else {
        return Err(DialectError::Missing(
            "a Quay event's fields (updated_tags, build_id, vulnerability, ...)",
        ));
    };
    let Some(declared) = declared else {
        return Ok(inferred.to_owned());
    };
    if !EVENTS.contains(&declared) {
        return Err(DialectError::Invalid {
            field: "event",
            reason: format!("`{declared}` is not a Quay notification event ({})", EVENTS.join(", ")),
        });
    }
    // A declaration refines what the fields say; it never turns a push into a build.
    if family(declared) != family(inferred) {
        return Err(DialectError::Invalid {
            field: "event",
            reason: format!("the URL declares `{declared}` notifications, but this is `{inferred}`"),
        });
    }
    Ok(declared.to_owned())
}

fn normalize(input: &Input<'_>) -> Result<Normalized, DialectError> {
    let json = input.json()?;
    let Value::Object(payload) = json else {
        let e = serde_json::Error::invalid_type(unexpected(json), &"a Quay notification object");
        return Err(DialectError::InvalidJson(e));
    };
    if let Some(v) = payload.get("repository").filter(|v| !v.is_string() && !v.is_null()) {
        let e = serde_json::Error::invalid_type(unexpected(v), &"a `namespace/name` string");
        return Err(DialectError::InvalidJson(e));
    }
    let declared = input.query_param("event");
    let event = event_of(declared.as_deref(), payload)?;
    let Some(kind) = kind_in(EVENT_TYPES, &event) else {
        return Ok(Normalized::Unmapped { origtype: event });
    };
    // Quay sends no id and retries the same body. A start and a cancellation of one build can
    // carry the same body, so a declared event is part of the id.
    let base_id = match &declared {
        None => digest_id(input.endpoint, input.body),
        Some(event) => digest_id(&format!("{}?event={event}", input.endpoint), input.body),
    };
    let mut occ = Occurrence::new(kind, base_id.as_str(), event.as_str());
    let docker_url = str_member(payload, "docker_url").map(parse_reference).unwrap_or_default();
    occ.host = docker_url.host;
    occ.repository = str_member(payload, "repository").map(str::to_owned).or(docker_url.repository);
    // `homepage` is `<PREFERRED_URL_SCHEME>://<SERVER_HOSTNAME>/repository/...`.
    occ.source = str_member(payload, "homepage").and_then(origin).map(str::to_owned);

    match kind {
        kinds::ARTIFACT_PUSHED => return repo_push(input, payload, occ, &base_id),
        kinds::VULNERABILITY_FOUND => {
            occ.tag = strings(payload, "tags")?.first().map(|t| (*t).to_owned());
            occ.digest = str_member(payload, "image").filter(|d| is_digest(d)).map(str::to_owned);
            occ.scan = Some(vulnerabilities(payload).into_value());
        }
        _ if event.starts_with("build_") => {
            // A build tags one image with every `docker_tags` entry: the first names it.
            occ.tag = strings(payload, "docker_tags")?.first().map(|t| (*t).to_owned());
            occ.digest = built_digest(payload)?;
            occ.actor = str_member(payload, "manual_user").map(str::to_owned).or_else(|| {
                let author = payload.get("trigger_metadata")?.get("commit_info")?.get("author")?;
                author.get("username")?.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
            });
        }
        _ => {}
    }
    Ok(Normalized::Events(vec![occ]))
}

/// One occurrence per updated tag (one without a tag if none is named), each carrying the
/// payload with `updated_tags` holding its tag alone when there are several.
fn repo_push(
    input: &Input<'_>,
    payload: &Map<String, Value>,
    like: Occurrence,
    base_id: &str,
) -> Result<Normalized, DialectError> {
    let tags = strings(payload, "updated_tags")?;
    let max = input.bounds.max_events;
    if tags.len() > max {
        return Err(DialectError::TooManyEvents { count: tags.len(), max });
    }
    if tags.len() <= 1 {
        return Ok(Normalized::Events(vec![Occurrence {
            tag: tags.first().map(|t| (*t).to_owned()),
            ..like
        }]));
    }
    let mut rest = payload.clone();
    rest.insert("updated_tags".into(), Value::Array(Vec::new()));
    let rest_len = serde_json::to_vec(&rest).expect("a JSON tree serializes").len();
    let size = tags.len() * rest_len + tags.iter().map(|t| t.len() + 2).sum::<usize>();
    if size > input.bounds.max_output {
        return Err(DialectError::OutputTooLarge { size, max: input.bounds.max_output });
    }
    let total = tags.len();
    let events = tags
        .into_iter()
        .enumerate()
        .map(|(index, tag)| {
            rest.insert("updated_tags".into(), Value::Array(vec![tag.into()]));
            Occurrence {
                id: fan_out_id(base_id, index, total),
                tag: Some(tag.to_owned()),
                part: Some(Original::from_rendered(
                    serde_json::to_vec(&rest).expect("a JSON tree serializes"),
                )),
                ..like.clone()
            }
        })
        .collect();
    Ok(Normalized::Events(events))
}

/// `manifest_digests` (`<host>/<repo>@<digest>` each): the digest when the build pushed one.
fn built_digest(payload: &Map<String, Value>) -> Result<Option<String>, DialectError> {
    let mut digests: Vec<String> = strings(payload, "manifest_digests")?
        .into_iter()
        .filter_map(|r| parse_reference(r).digest)
        .filter(|d| is_digest(d))
        .collect();
    digests.sort_unstable();
    digests.dedup();
    Ok(match digests.len() {
        1 => digests.pop(),
        _ => None,
    })
}

/// The scan summary of a `vulnerability_found` notification: one `vulnerability` (Quay's
/// documented payload) or several (`vulnerabilities`, most severe first, as newer Quay sends).
/// Priorities are Quay's words (`Critical`, `High`, ...); the CVE itself stays in `original`.
fn vulnerabilities(payload: &Map<String, Value>) -> Scan {
    let found: Vec<&Map<String, Value>> = match (payload.get("vulnerability"), payload.get("vulnerabilities"))
    {
        (Some(Value::Object(one)), _) => vec![one],
        (_, Some(Value::Array(many))) => many.iter().filter_map(Value::as_object).collect(),
        _ => Vec::new(),
    };
    let mut summary = Map::new();
    for v in &found {
        let priority = str_member(v, "priority").unwrap_or("Unknown").to_lowercase();
        let n = summary.get(&priority).and_then(Value::as_u64).unwrap_or(0);
        summary.insert(priority, (n + 1).into());
    }
    let fixes: Vec<bool> = found.iter().filter_map(|v| v.get("has_fix").and_then(Value::as_bool)).collect();
    Scan {
        ty: Some("vulnerability".into()),
        severity: found.first().and_then(|v| str_member(v, "priority")).map(str::to_owned),
        total: Some(found.len() as u64),
        fixable: (!fixes.is_empty()).then(|| fixes.iter().filter(|f| **f).count() as u64),
        summary: Some(summary),
        ..Scan::default()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::dialects::testing::s;
    use crate::dialects::{Bounds, MediaType};

    const ENDPOINT: &str = "quay";

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("../../tests/fixtures/other/", $name))
        };
    }

    /// `body` as posted to a URL with `query`.
    fn run_at(query: &str, body: &str) -> Result<Normalized, DialectError> {
        normalize(&Input { query, ..Input::new(ENDPOINT, MediaType::Json, body.as_bytes()) })
    }

    fn run(body: &str) -> Result<Normalized, DialectError> {
        run_at("", body)
    }

    fn events(body: &str) -> Vec<Occurrence> {
        match run(body) {
            Ok(Normalized::Events(events)) => events,
            other => panic!("expected events, got {other:?}"),
        }
    }

    /// The occurrence of a quay.io payload about `repository`.
    fn quay_io(body: &str, kind: Kind, event: &str, repository: &str) -> Occurrence {
        Occurrence {
            source: s("https://quay.io"),
            host: s("quay.io"),
            repository: s(repository),
            ..Occurrence::new(kind, digest_id(ENDPOINT, body.as_bytes()), event)
        }
    }

    /// A `get_sample_data` extra-data file as Quay's "Test Notification" sends it: with the
    /// repository fields `build_repository_event_data` adds (quay.io, `acme/app`).
    fn with_repository(extra: &str, subpage: &str) -> String {
        let mut v = json!({
            "repository": "acme/app", "namespace": "acme", "name": "app", "docker_url": "quay.io/acme/app",
            "homepage": format!("https://quay.io/repository/acme/app{subpage}"),
        });
        for (k, x) in serde_json::from_str::<Map<String, Value>>(extra).unwrap() {
            v[k] = x;
        }
        v.to_string()
    }

    #[test]
    fn repo_push_one_event_per_tag() {
        for (body, repository, tag) in [
            (fixture!("quay/repo_push.quay-docs.json"), "dgangaia/test", "latest"),
            (fixture!("quay/repo_push.coreos-quay-docs.json"), "mynamespace/repository", "latest"),
            (fixture!("keel-testdata/quay.fakeQuayWebhook.json"), "mynamespace/repository", "1.2.3"),
            (fixture!("synthetic/quay.repo-push.json"), "acme/app", "1.0"),
        ] {
            let want =
                Occurrence { tag: s(tag), ..quay_io(body, kinds::ARTIFACT_PUSHED, "repo_push", repository) };
            assert_eq!(events(body), [want]);
        }

        let body =
            with_repository(fixture!("quay/converted/repo_push.quay-get_sample_data-extra_data.json"), "");
        let like = quay_io(&body, kinds::ARTIFACT_PUSHED, "repo_push", "acme/app");
        let evs = events(&body);
        let got: Vec<_> = evs.iter().map(|o| (o.id.clone(), o.tag.clone())).collect();
        assert_eq!(got, [(format!("{}#0", like.id), s("latest")), (format!("{}#1", like.id), s("foo"))]);
        // Each carries the payload with its own tag alone.
        let part: Value = serde_json::from_slice(evs[1].part.as_ref().unwrap().as_bytes()).unwrap();
        assert_eq!(
            (part["updated_tags"].clone(), part["pruned_image_count"].clone()),
            (json!(["foo"]), json!(3))
        );
        assert_eq!(Occurrence { id: like.id.clone(), tag: None, part: None, ..evs[1].clone() }, like);

        // The bare extra data (no repository fields) still reads.
        let bare = fixture!("quay/converted/repo_push.quay-get_sample_data-extra_data.json");
        assert_eq!(events(bare).len(), 2);
        assert_eq!(events(r#"{"repository":"a/b","updated_tags":[]}"#)[0].tag, None);
        let bounds = Bounds { max_events: 1, ..Bounds::default() };
        let input = Input { bounds, ..Input::new(ENDPOINT, MediaType::Json, body.as_bytes()) };
        assert!(matches!(normalize(&input), Err(DialectError::TooManyEvents { count: 2, max: 1 })));
    }

    #[test]
    fn build_events_from_the_docs() {
        let dg = |body: &str, kind, event: &str, tag: &str, actor: Option<&str>| Occurrence {
            tag: s(tag),
            actor: actor.map(str::to_owned),
            ..quay_io(body, kind, event, "dgangaia/test")
        };
        let body = fixture!("quay/converted/build_queued.quay-docs.json");
        assert_eq!(events(body), [dg(body, kinds::BUILD_QUEUED, "build_queued", "master", Some("dgangaia"))]);
        let body = fixture!("quay/converted/build_start.quay-docs.json");
        assert_eq!(events(body), [dg(body, kinds::BUILD_STARTED, "build_start", "master", Some("dgangaia"))]);
        let body = fixture!("quay/converted/build_failure.quay-docs.json");
        assert_eq!(
            events(body),
            [dg(body, kinds::BUILD_FAILED, "build_failure", "master", Some("dgangaia"))]
        );
        let body = fixture!("quay/converted/build_success.quay-docs.json");
        // Two manifest digests (one per architecture): no single digest names the image.
        assert_eq!(
            events(body),
            [dg(body, kinds::BUILD_SUCCEEDED, "build_success", "master", Some("dgangaia"))]
        );

        // Quay sends a cancellation with a start's fields: only the URL's declaration tells them apart.
        let body = fixture!("quay/build_cancelled.quay-docs.json");
        assert_eq!(events(body)[0].kind, kinds::BUILD_STARTED);
        let Ok(Normalized::Events(evs)) = run_at("token=x&event=build_cancelled", body) else { panic!() };
        let want = Occurrence {
            id: digest_id("quay?event=build_cancelled", body.as_bytes()),
            ..dg(body, kinds::BUILD_CANCELLED, "build_cancelled", "master", Some("dgangaia"))
        };
        assert_eq!(evs, [want]);
    }

    #[test]
    fn build_events_from_the_old_docs_and_test_notifications() {
        let mine = |body: &str, kind, event: &str| Occurrence {
            tag: s("latest"),
            actor: s("fakeauthor"),
            ..quay_io(body, kind, event, "mynamespace/repository")
        };
        for (body, kind, event) in [
            (
                fixture!("quay/converted/build_queued.coreos-quay-docs.json"),
                kinds::BUILD_QUEUED,
                "build_queued",
            ),
            (
                fixture!("quay/converted/build_start.coreos-quay-docs.json"),
                kinds::BUILD_STARTED,
                "build_start",
            ),
            (
                fixture!("quay/converted/build_failure.coreos-quay-docs.json"),
                kinds::BUILD_FAILED,
                "build_failure",
            ),
            // Without `image_id` or `manifest_digests` a success reads as a start.
            (
                fixture!("quay/converted/build_success.coreos-quay-docs.json"),
                kinds::BUILD_STARTED,
                "build_start",
            ),
        ] {
            assert_eq!(events(body), [mine(body, kind, event)], "{event}");
        }
        let body = fixture!("quay/converted/build_success.coreos-quay-docs.json");
        let Ok(Normalized::Events(evs)) = run_at("event=build_success", body) else { panic!() };
        assert_eq!((evs[0].kind, evs[0].origtype.as_str()), (kinds::BUILD_SUCCEEDED, "build_success"));

        let acme = |body: &str, kind, event: &str| Occurrence {
            tag: s("latest"),
            ..quay_io(body, kind, event, "acme/app")
        };
        let sample = |extra: &str| with_repository(extra, "/build/fake-build-id");
        let body = sample(fixture!("quay/converted/build_start.quay-get_sample_data-extra_data.json"));
        assert_eq!(events(&body), [acme(&body, kinds::BUILD_STARTED, "build_start")]);
        let body = sample(fixture!("quay/converted/build_success.quay-get_sample_data-extra_data.json"));
        assert_eq!(events(&body), [acme(&body, kinds::BUILD_SUCCEEDED, "build_success")]);
        // Quay's sample cancellation carries an `image_id`, like a success.
        let body = sample(fixture!("quay/converted/build_cancelled.quay-get_sample_data-extra_data.json"));
        assert_eq!(events(&body)[0].kind, kinds::BUILD_SUCCEEDED);
        let Ok(Normalized::Events(evs)) = run_at("event=build_cancelled", &body) else { panic!() };
        assert_eq!(evs[0].kind, kinds::BUILD_CANCELLED);
    }

    #[test]
    fn one_manifest_digest_names_the_built_image() {
        let d = format!("sha256:{}", "2a".repeat(32));
        let body = json!({"build_id": "b", "docker_tags": ["v1"], "repository": "a/b",
            "manifest_digests": [format!("quay.io/a/b@{d}"), format!("quay.io/a/b@{d}")]});
        let occ = &events(&body.to_string())[0];
        assert_eq!(
            (occ.kind, occ.digest.as_deref(), occ.tag.as_deref()),
            (kinds::BUILD_SUCCEEDED, Some(&*d), Some("v1"))
        );
    }

    #[test]
    fn vulnerability_found() {
        let scan = json!({
            "type": "vulnerability", "status": null, "severity": "Critical", "total": 1, "fixable": 1,
            "summary": {"critical": 1}, "scanner": null, "report_id": null, "started_at": null,
            "completed_at": null, "sbom_digest": null, "error": null,
        });
        for (body, repository) in [
            (fixture!("quay/vulnerability_found.quay-docs.json"), "dgangaia/repository"),
            (fixture!("quay/vulnerability_found.coreos-quay-docs.json"), "mynamespace/repository"),
        ] {
            let want = Occurrence {
                tag: s("latest"),
                scan: Some(scan.clone()),
                ..quay_io(body, kinds::VULNERABILITY_FOUND, "vulnerability_found", repository)
            };
            assert_eq!(events(body), [want]);
        }
        let body = r#"{"repository":"a/b","tags":["v1"],"vulnerabilities":[
            {"id":"CVE-1","priority":"High","has_fix":false},{"id":"CVE-2","priority":"High"},
            {"id":"CVE-3","priority":"Low","has_fix":true}]}"#;
        let scan = events(body)[0].scan.clone().unwrap();
        assert_eq!(
            (&scan["severity"], &scan["total"], &scan["fixable"], &scan["summary"]),
            (&json!("High"), &json!(3), &json!(1), &json!({"high": 2, "low": 1}))
        );
    }

    #[test]
    fn quota_events_are_namespace_wide() {
        let ns = |extra: &str| {
            let mut v: Value = serde_json::from_str(extra).unwrap();
            v["namespace"] = "acme".into();
            v["homepage"] = "https://quay.example.test/organization/acme".into();
            v.to_string()
        };
        for (body, kind, event) in [
            (
                ns(fixture!("quay/converted/quota_warning.quay-get_sample_data-extra_data.json")),
                kinds::QUOTA_WARNING,
                "quota_warning",
            ),
            (
                ns(fixture!("quay/converted/quota_error.quay-get_sample_data-extra_data.json")),
                kinds::QUOTA_EXCEEDED,
                "quota_error",
            ),
        ] {
            let want = Occurrence {
                source: s("https://quay.example.test"),
                ..Occurrence::new(kind, digest_id(ENDPOINT, body.as_bytes()), event)
            };
            assert_eq!(events(&body), [want]);
        }
    }

    #[test]
    fn mirror_and_expiry_events_are_unmapped_unless_declared() {
        for file in [
            fixture!("quay/converted/repo_mirror_sync_started.quay-get_sample_data-extra_data.json"),
            fixture!("quay/converted/repo_mirror_sync_success.quay-get_sample_data-extra_data.json"),
            fixture!("quay/converted/repo_mirror_sync_failed.quay-get_sample_data-extra_data.json"),
        ] {
            let body = with_repository(file, "");
            assert_eq!(run(&body).unwrap(), Normalized::Unmapped { origtype: "repo_mirror_sync".into() });
            let failed = run_at("event=repo_mirror_sync_failed", &body).unwrap();
            assert_eq!(failed, Normalized::Unmapped { origtype: "repo_mirror_sync_failed".into() });
            let Ok(Normalized::Events(evs)) = run_at("event=repo_mirror_sync_success", &body) else {
                panic!()
            };
            assert_eq!(
                (evs[0].kind, evs[0].repository.as_deref()),
                (kinds::ARTIFACT_REPLICATED, Some("acme/app"))
            );
        }
        // The image-expiry notification of Quay's docs.
        let body = r#"{"repository":"acme/app","namespace":"acme","name":"app","docker_url":"quay.io/acme/app",
            "homepage":"https://quay.io/repository/acme/app","tags":["v1","v2"],"expiring_in":"1 days"}"#;
        assert_eq!(run(body).unwrap(), Normalized::Unmapped { origtype: "repo_image_expiry".into() });
    }

    #[test]
    fn other_payloads_and_wrong_declarations_are_errors() {
        let err = |body: &str| run(body).unwrap_err();
        let harbor = r#"{"type":"PUSH_ARTIFACT","occur_at":1,"event_data":{"resources":[]}}"#;
        assert!(matches!(err(harbor), DialectError::Missing(_)));
        let dockerhub = fixture!("dockerhub/push.docker-docs.json");
        assert!(matches!(err(dockerhub), DialectError::InvalidJson(_)));
        let distribution = fixture!("distribution/envelope.manifest-pull.json");
        assert!(matches!(err(distribution), DialectError::Missing(_)));
        let pubsub = r#"{"message":{"data":"e30=","messageId":"1"},"subscription":"s"}"#;
        assert!(matches!(err(pubsub), DialectError::Missing(_)));
        assert!(matches!(err(r#"["repo_push"]"#), DialectError::InvalidJson(_)));
        assert!(matches!(err(r#"{"updated_tags":"latest"}"#), DialectError::InvalidJson(_)));
        assert!(matches!(err(r#"{"updated_tags":[1]}"#), DialectError::InvalidJson(_)));

        let push = fixture!("quay/repo_push.quay-docs.json");
        let e = run_at("event=build_start", push).unwrap_err();
        assert!(matches!(e, DialectError::Invalid { field: "event", .. }), "{e:?}");
        let e = run_at("event=build_stopped", push).unwrap_err();
        assert!(matches!(e, DialectError::Invalid { field: "event", .. }), "{e:?}");
        // Other parameters, and an empty declaration, declare nothing.
        assert!(run_at("token=build_start&event=", push).is_ok());
        assert!(run_at("event=repo_push", push).is_ok());
    }
}
