//! Sonatype Nexus Repository 3: component and asset webhooks, one occurrence per docker image event.

use chrono::{DateTime, Utc};
use serde::de::Error as _;
use serde_json::{Map, Value};

use super::{
    digest_id, is_digest, kind_in, non_empty_str, parse_time, unexpected, DialectError, DialectSpec, Input,
    Normalized,
};
use crate::event::{kinds, Kind, Occurrence};
use crate::verify::{Algorithm, HmacForm, HmacSpec, Scheme};

/// `X-Nexus-Webhook-Signature: <hex HMAC-SHA1 of the body>`, no prefix ("currently only HmacSHA1").
pub const SIGNATURE: HmacSpec = HmacSpec {
    header: "x-nexus-webhook-signature",
    forms: &[HmacForm { algorithm: Algorithm::Sha1, prefix: "" }],
    token_too: false,
};

pub const DIALECT: DialectSpec =
    DialectSpec::new("nexus", Scheme::Hmac, Some("REGBRIDGE_NEXUS_SECRETS"), normalize).with_hmac(&SIGNATURE);

const COMPONENT: &str = "rm:repository:component";
const ASSET: &str = "rm:repository:asset";

/// `<X-Nexus-Webhook-Id>.<action>` and its kind. A docker component is an image tag (`name`,
/// `version`); `UPDATED` is a tag pushed again with new content. The README's mapping table
/// mirrors this one.
#[rustfmt::skip]
pub const EVENT_TYPES: &[(&str, Kind)] = &[
    ("rm:repository:component.CREATED", kinds::ARTIFACT_PUSHED),
    ("rm:repository:component.UPDATED", kinds::ARTIFACT_PUSHED),
    ("rm:repository:component.DELETED", kinds::ARTIFACT_DELETED),
    ("rm:repository:asset.CREATED",     kinds::ARTIFACT_PUSHED),
    ("rm:repository:asset.UPDATED",     kinds::ARTIFACT_PUSHED),
    ("rm:repository:asset.DELETED",     kinds::ARTIFACT_DELETED),
];

fn normalize(input: &Input<'_>) -> Result<Normalized, DialectError> {
    let json = input.json()?;
    let Value::Object(body) = json else {
        let e = serde_json::Error::invalid_type(unexpected(json), &"a Nexus webhook object");
        return Err(DialectError::InvalidJson(e));
    };
    // The header names the webhook; a relay that drops it leaves the body's own key.
    let webhook = match input.header("x-nexus-webhook-id") {
        Some(id) => id,
        None if body.contains_key("component") => COMPONENT,
        None if body.contains_key("asset") => ASSET,
        None => global(body).ok_or(DialectError::Missing("component"))?,
    };
    let (key, missing) = match webhook {
        COMPONENT => ("component", DialectError::Missing("component")),
        ASSET => ("asset", DialectError::Missing("asset")),
        // The global audit and repository webhooks are Nexus's, but not about images.
        other => {
            return match global(body) {
                Some(_) => {
                    Ok(Normalized::Unmapped { origtype: typed(other, non_empty_str(body.get("action"))) })
                }
                None => Err(DialectError::Invalid {
                    field: "X-Nexus-Webhook-Id",
                    reason: format!("`{other}` with a body that is no Nexus event"),
                }),
            };
        }
    };
    let entity = match body.get(key) {
        Some(Value::Object(entity)) => entity,
        None | Some(Value::Null) => return Err(missing),
        Some(other) => {
            return Err(DialectError::Invalid {
                field: "body",
                reason: format!("`{key}` is not an object: {other}"),
            })
        }
    };
    let action = non_empty_str(body.get("action")).ok_or(DialectError::Missing("action"))?;
    let origtype = typed(webhook, Some(action));
    let Some(kind) = kind_in(EVENT_TYPES, &origtype) else {
        return Ok(Normalized::Unmapped { origtype });
    };
    let format = non_empty_str(entity.get("format")).ok_or(DialectError::Missing("format"))?;
    let name = non_empty_str(entity.get("name")).ok_or(DialectError::Missing("name"))?;
    let image = match (format, key) {
        ("docker", "component") => {
            Some(Image { repository: name, reference: non_empty_str(entity.get("version")) })
        }
        ("docker", _) => manifest(name),
        _ => None,
    };
    // A Maven, npm, raw... component, or a docker blob: nothing an image consumer pulls.
    let Some(image) = image else {
        input.skip();
        return Ok(Normalized::Events(Vec::new()));
    };

    // "A unique UUID identifying the event"; without it, the body is the id.
    let id = input
        .header("x-nexus-webhook-delivery")
        .map_or_else(|| digest_id(input.endpoint, input.body), str::to_owned);
    let mut occ = Occurrence::new(kind, id, origtype);
    // The docker path, not the Nexus repository (`repositoryName`): a connector port or host
    // serves that one, and the payload names neither, so the host stays unknown.
    occ.repository = Some(image.repository.to_owned());
    match image.reference {
        Some(r) if r.contains(':') => occ.digest = is_digest(r).then(|| r.to_owned()),
        r => occ.tag = r.map(str::to_owned),
    }
    // `initiator` is `<user id>/<remote address>`: the user is who did it.
    occ.actor = non_empty_str(body.get("initiator"))
        .and_then(|i| i.split('/').next())
        .filter(|u| !u.is_empty())
        .map(str::to_owned);
    occ.time = non_empty_str(body.get("timestamp")).map(timestamp).transpose()?;
    Ok(Normalized::Events(vec![occ]))
}

fn typed(webhook: &str, action: Option<&str>) -> String {
    match action {
        Some(action) => format!("{webhook}.{action}"),
        None => webhook.to_owned(),
    }
}

/// The id of a global webhook's payload: audit (`{nodeId, initiator, audit}`) or repository
/// (`{nodeId, action, repository: {format, type, name}}`), which other senders' `repository`
/// objects are not.
fn global(body: &Map<String, Value>) -> Option<&'static str> {
    non_empty_str(body.get("nodeId"))?;
    if body.get("audit").is_some_and(Value::is_object) {
        Some("rm:global:audit")
    } else {
        let repository = body.get("repository")?.as_object()?;
        (non_empty_str(repository.get("format")).is_some() && non_empty_str(repository.get("type")).is_some())
            .then_some("rm:global:repository")
    }
}

struct Image<'a> {
    repository: &'a str,
    reference: Option<&'a str>,
}

/// A docker asset is a manifest (`v2/<name>/manifests/<tag or digest>`) or a blob (`v2/-/blobs/...`,
/// which is not an image and yields `None`).
fn manifest(path: &str) -> Option<Image<'_>> {
    let path = path.trim_start_matches('/');
    let path = path.strip_prefix("v2/").unwrap_or(path);
    let (repository, reference) = path.rsplit_once("/manifests/")?;
    (!repository.is_empty())
        .then_some(Image { repository, reference: Some(reference).filter(|r| !r.is_empty()) })
}

/// Nexus writes `2020-04-05T21:49:44.219+0000` (Java's `Z` pattern, no colon in the offset), and
/// some senders RFC 3339.
fn timestamp(s: &str) -> Result<DateTime<Utc>, DialectError> {
    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z")
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| parse_time("timestamp", s))
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
    use serde_json::json;

    use super::*;
    use crate::dialects::testing::{at, s};
    use crate::dialects::MediaType;

    const ENDPOINT: &str = "nexus";
    const DELIVERY: &str = "bd9e6aef-0e27-4570-980d-f639c49ab5ed";

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("../../tests/fixtures/other/", $name))
        };
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.insert(HeaderName::from_static(name), HeaderValue::from_str(value).unwrap());
        }
        h
    }

    fn run_with(body: &str, headers: &HeaderMap) -> (Result<Normalized, DialectError>, usize) {
        let input = Input { headers, ..Input::new(ENDPOINT, MediaType::Json, body.as_bytes()) };
        let r = normalize(&input);
        (r, input.skipped.get())
    }

    fn run(body: &str) -> Result<Normalized, DialectError> {
        run_with(body, &HeaderMap::new()).0
    }

    fn one(body: &str) -> Occurrence {
        match run(body) {
            Ok(Normalized::Events(events)) if events.len() == 1 => events.into_iter().next().unwrap(),
            other => panic!("expected one event, got {other:?}"),
        }
    }

    fn new(body: &str, kind: Kind, origtype: &str) -> Occurrence {
        Occurrence::new(kind, digest_id(ENDPOINT, body.as_bytes()), origtype)
    }

    #[test]
    fn a_real_docker_component_delivery() {
        let body = fixture!("nexus/component.CREATED.docker.flux-recv.json");
        let want = Occurrence {
            repository: s("app1/alpine"),
            tag: s("3.4"),
            actor: s("admin"),
            time: at("2020-04-05T21:49:44.219Z"),
            ..new(body, kinds::ARTIFACT_PUSHED, "rm:repository:component.CREATED")
        };
        assert_eq!(one(body), want);
        // With the delivery's headers, the delivery UUID is the id.
        let h = headers(&[("x-nexus-webhook-id", COMPONENT), ("x-nexus-webhook-delivery", DELIVERY)]);
        let (r, _) = run_with(body, &h);
        assert_eq!(r.unwrap(), Normalized::Events(vec![Occurrence { id: DELIVERY.into(), ..want }]));
    }

    #[test]
    fn updated_and_deleted_components() {
        let body = fixture!("nexus/component.UPDATED.docker.ibdm-test.json");
        let want = Occurrence {
            repository: s("my-image"),
            tag: s("1.0.0"),
            time: at("2025-03-01T12:00:00Z"),
            ..new(body, kinds::ARTIFACT_PUSHED, "rm:repository:component.UPDATED")
        };
        assert_eq!(one(body), want);
        // The hidden ibdm DELETED body.
        let body = r#"{"timestamp":"2025-03-01T12:00:00Z","action":"DELETED","repositoryName":"docker-hosted","component":{"id":"08909bf0","componentId":"comp-del-id","format":"docker","name":"my-image","group":"","version":"1.0.0"}}"#;
        let want = Occurrence {
            repository: s("my-image"),
            tag: s("1.0.0"),
            time: at("2025-03-01T12:00:00Z"),
            ..new(body, kinds::ARTIFACT_DELETED, "rm:repository:component.DELETED")
        };
        assert_eq!(one(body), want);
    }

    #[test]
    fn other_formats_and_blobs_are_skipped() {
        let body = fixture!("nexus/asset.CREATED.npm.sonatype-docs.json");
        let h = headers(&[("x-nexus-webhook-id", ASSET)]);
        let (r, skipped) = run_with(body, &h);
        assert_eq!((r.unwrap(), skipped), (Normalized::Events(vec![]), 1));
        let blob = r#"{"timestamp":"2020-04-05T21:49:44.219+0000","nodeId":"N","initiator":"admin/127.0.0.1","repositoryName":"docker-hosted","action":"CREATED","asset":{"id":"1","assetId":"a","format":"docker","name":"v2/-/blobs/sha256:0123"}}"#;
        let (r, skipped) = run_with(blob, &HeaderMap::new());
        assert_eq!((r.unwrap(), skipped), (Normalized::Events(vec![]), 1));
        let maven = r#"{"action":"CREATED","component":{"format":"maven2","name":"commons-io","group":"commons-io","version":"2.6"}}"#;
        let (r, skipped) = run_with(maven, &HeaderMap::new());
        assert_eq!((r.unwrap(), skipped), (Normalized::Events(vec![]), 1));
    }

    #[test]
    fn docker_manifest_assets_name_a_tag_or_a_digest() {
        let digest = format!("sha256:{}", "c".repeat(64));
        let asset = |name: &str, action: &str| {
            json!({"timestamp": "2020-04-05T21:49:44.219+0000", "nodeId": "N", "initiator": "ci/10.0.0.1",
                   "repositoryName": "docker-hosted", "action": action,
                   "asset": {"id": "1", "assetId": "a", "format": "docker", "name": name}})
            .to_string()
        };
        let body = asset("v2/team/app/manifests/1.2", "CREATED");
        let want = Occurrence {
            repository: s("team/app"),
            tag: s("1.2"),
            actor: s("ci"),
            time: at("2020-04-05T21:49:44.219Z"),
            ..new(&body, kinds::ARTIFACT_PUSHED, "rm:repository:asset.CREATED")
        };
        assert_eq!(one(&body), want);
        let body = asset(&format!("/v2/team/app/manifests/{digest}"), "DELETED");
        let want = Occurrence {
            digest: Some(digest),
            tag: None,
            ..Occurrence {
                kind: kinds::ARTIFACT_DELETED,
                id: digest_id(ENDPOINT, body.as_bytes()),
                origtype: "rm:repository:asset.DELETED".into(),
                ..want
            }
        };
        assert_eq!(one(&body), want);
    }

    #[test]
    fn global_webhooks_and_unknown_actions_are_unmapped() {
        let unmapped = |body: &str, h: &HeaderMap| match run_with(body, h).0 {
            Ok(Normalized::Unmapped { origtype }) => origtype,
            other => panic!("expected unmapped, got {other:?}"),
        };
        let none = HeaderMap::new();
        let repo = r#"{"timestamp":"2016-11-14T19:32:13.515+0000","nodeId":"7FFA7361","initiator":"admin/127.0.0.1","action":"UPDATED","repository":{"format":"npm","type":"proxy","name":"npm-proxy"}}"#;
        assert_eq!(unmapped(repo, &none), "rm:global:repository.UPDATED");
        assert_eq!(
            unmapped(repo, &headers(&[("x-nexus-webhook-id", "rm:global:repository")])),
            "rm:global:repository.UPDATED"
        );
        let audit = r#"{"nodeId":"7FFA7361","initiator":"admin/127.0.0.1","audit":{"domain":"security.user","type":"created","context":"testuser"}}"#;
        assert_eq!(unmapped(audit, &none), "rm:global:audit");
        let purged = r#"{"action":"PURGED","component":{"format":"docker","name":"a","version":"1"}}"#;
        assert_eq!(unmapped(purged, &none), "rm:repository:component.PURGED");
    }

    #[test]
    fn other_dialects_and_wrong_shapes_are_errors() {
        let missing = |body: &str, h: &HeaderMap| match run_with(body, h).0 {
            Err(DialectError::Missing(field)) => field,
            other => panic!("expected a missing field, got {other:?}"),
        };
        let none = HeaderMap::new();
        let harbor = r#"{"type":"PUSH_ARTIFACT","occur_at":1,"operator":"a","event_data":{"resources":[]}}"#;
        assert_eq!(missing(harbor, &none), "component");
        let github = r#"{"action":"published","repository":{"name":"r","full_name":"o/r"},"package":{}}"#;
        assert_eq!(missing(github, &none), "component");
        assert_eq!(missing(fixture!("keel-testdata/jfrog.fakeJfrogWebhook.json"), &none), "component");
        let component = headers(&[("x-nexus-webhook-id", COMPONENT)]);
        assert_eq!(missing(fixture!("nexus/asset.CREATED.npm.sonatype-docs.json"), &component), "component");
        assert_eq!(missing(r#"{"component":{"format":"docker","name":"a"}}"#, &none), "action");
        assert_eq!(missing(r#"{"action":"CREATED","component":{"name":"a"}}"#, &none), "format");
        assert_eq!(missing(r#"{"action":"CREATED","component":{"format":"docker"}}"#, &none), "name");
        let e = run_with(harbor, &headers(&[("x-nexus-webhook-id", "rm:global:audit")])).0.unwrap_err();
        assert!(matches!(e, DialectError::Invalid { field: "X-Nexus-Webhook-Id", .. }), "{e:?}");
        let e =
            run(r#"{"action":"CREATED","timestamp":"yesterday","component":{"format":"docker","name":"a"}}"#)
                .unwrap_err();
        assert!(matches!(e, DialectError::Invalid { field: "timestamp", .. }), "{e:?}");
        assert!(matches!(run(r#"{"action":"CREATED","component":[]}"#), Err(DialectError::Invalid { .. })));
        assert!(matches!(run("[]"), Err(DialectError::InvalidJson(_))));
    }
}
