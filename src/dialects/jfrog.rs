//! JFrog Artifactory: docker-domain webhooks (pushed, deleted, promoted), every envelope generation.

use serde::de::Error as _;
use serde_json::Value;

use super::{
    digest_id, is_digest, kind_in, non_empty_str, unexpected, DialectError, DialectSpec, Input, Normalized,
};
use crate::event::{kinds, Kind, Occurrence};
use crate::verify::{Algorithm, HmacForm, HmacSpec, Scheme};

/// `X-JFrog-Event-Auth` carries the secret itself, or (with "use secret for signing") a signature
/// of the body whose form JFrog does not document: receivers in the wild check hex HMAC-SHA256
/// without a prefix (Kargo) and `sha1=` + hex HMAC-SHA1 (Telegraf). All three are accepted.
pub const SIGNATURE: HmacSpec = HmacSpec {
    header: "x-jfrog-event-auth",
    forms: &[
        HmacForm { algorithm: Algorithm::Sha256, prefix: "" },
        HmacForm { algorithm: Algorithm::Sha1, prefix: "sha1=" },
    ],
    token_too: true,
};

pub const DIALECT: DialectSpec =
    DialectSpec::new("jfrog", Scheme::Hmac, Some("REGBRIDGE_JFROG_SECRETS"), normalize).with_hmac(&SIGNATURE);

/// `<domain>.<event_type>` and its kind. Other domains (artifact, build, release_bundle, ...) are
/// JFrog's, but not about images: unmapped. The README's mapping table mirrors this one.
#[rustfmt::skip]
pub const EVENT_TYPES: &[(&str, Kind)] = &[
    ("docker.pushed",   kinds::ARTIFACT_PUSHED),
    ("docker.deleted",  kinds::ARTIFACT_DELETED),
    ("docker.promoted", kinds::ARTIFACT_PROMOTED),
];

fn normalize(input: &Input<'_>) -> Result<Normalized, DialectError> {
    let json = input.json()?;
    let Value::Object(top) = json else {
        let e = serde_json::Error::invalid_type(unexpected(json), &"a JFrog webhook object");
        return Err(DialectError::InvalidJson(e));
    };
    // Current payloads wrap the event: `{domain, event_type, data, subscription_key, jpd_origin,
    // source}`. The first generation was the docker event's `data` alone, flat, without a domain.
    let domain = non_empty_str(top.get("domain"));
    let data = match top.get("data") {
        Some(Value::Object(data)) => data,
        None | Some(Value::Null) if domain.is_some() => return Err(DialectError::Missing("data")),
        None | Some(Value::Null) => top,
        Some(other) => {
            return Err(DialectError::Invalid { field: "data", reason: format!("not an object: {other}") })
        }
    };
    if domain.is_none() && !data.contains_key("repo_key") {
        return Err(DialectError::Missing("domain"));
    }
    let event_type = non_empty_str(top.get("event_type"))
        .or_else(|| non_empty_str(data.get("event_type")))
        .ok_or(DialectError::Missing("event_type"))?;
    // Only docker events name an image; a flat payload that does not is another domain's.
    let domain = domain.or_else(|| data.contains_key("image_name").then_some("docker"));
    let origtype = match domain {
        Some(domain) => format!("{domain}.{event_type}"),
        None => event_type.to_owned(),
    };
    let Some(kind) = kind_in(EVENT_TYPES, &origtype) else {
        return Ok(Normalized::Unmapped { origtype });
    };
    let image = non_empty_str(data.get("image_name")).ok_or(DialectError::Missing("data.image_name"))?;

    // JFrog sends no event id, and retries the same body.
    let mut occ = Occurrence::new(kind, digest_id(input.endpoint, input.body), origtype);
    let origin = non_empty_str(top.get("jpd_origin")).and_then(origin);
    occ.source = origin.map(|(uri, _)| uri.to_owned());
    occ.host = origin.map(|(_, host)| host.to_owned());
    // Artifactory serves each repository under its key (`<host>/<repo_key>/<image>`, the
    // "repository path" method JFrog Cloud uses), so that is the pullable path.
    occ.repository = Some(match non_empty_str(data.get("repo_key")) {
        Some(repo_key) => format!("{repo_key}/{image}"),
        None => image.to_owned(),
    });
    occ.tag = non_empty_str(data.get("tag")).map(str::to_owned);
    // `sha256` is the checksum of the manifest file, which is the manifest's digest; JFrog's
    // samples say "sample_checksum" there.
    occ.digest = non_empty_str(data.get("sha256")).map(|h| format!("sha256:{h}")).filter(|d| is_digest(d));
    // One platform is the image's; a list (a multi-arch index) names no single one. Read as
    // named, though JFrog's own sample has the values swapped.
    if let Some([platform]) = data.get("platforms").and_then(Value::as_array).map(Vec::as_slice) {
        occ.os = non_empty_str(platform.get("os")).map(str::to_owned);
        occ.architecture = non_empty_str(platform.get("architecture")).map(str::to_owned);
    }
    // `source` is the identity that triggered the event, `jfrog/<user>`.
    occ.actor = non_empty_str(top.get("source"))
        .map(|s| s.strip_prefix("jfrog/").unwrap_or(s))
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    Ok(Normalized::Events(vec![occ]))
}

/// `jpd_origin` (`https://acme.jfrog.io`, or with the `/artifactory` path of a self-hosted JPD)
/// and its host. JFrog's documented placeholder `https://<your_origin>` is no URI and is ignored.
fn origin(uri: &str) -> Option<(&str, &str)> {
    let rest = uri.strip_prefix("https://").or_else(|| uri.strip_prefix("http://"))?;
    let host = rest.split(['/', '?', '#']).next()?;
    let valid = !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b));
    valid.then_some((uri.trim_end_matches('/'), host))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::dialects::testing::s;
    use crate::dialects::MediaType;

    const ENDPOINT: &str = "jfrog";
    const UBUNTU: &str = "sha256:35c4a2c15539c6c1e4e5fa4e554dac323ad0107d8eb5c582d6ff386b383b7dce";

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("../../tests/fixtures/other/", $name))
        };
    }

    fn run(body: &str) -> Result<Normalized, DialectError> {
        normalize(&Input::new(ENDPOINT, MediaType::Json, body.as_bytes()))
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

    /// JFrog's documented placeholders, as Telegraf's mocks and the flattened docs carry them.
    fn placeholders(body: &str, kind: Kind, origtype: &str) -> Occurrence {
        Occurrence {
            repository: s("sample_repo/sample_arch"),
            tag: s("sample_image"),
            // "sample_checksum" is no digest.
            digest: None,
            os: s("sample_tag"),
            architecture: s("sample_os"),
            ..new(body, kind, origtype)
        }
    }

    #[test]
    fn telegraf_mocks_of_the_wrapped_envelope() {
        let body = fixture!("jfrog/docker.pushed.telegraf-mock.json");
        assert_eq!(one(body), placeholders(body, kinds::ARTIFACT_PUSHED, "docker.pushed"));
        let body = fixture!("jfrog/docker.deleted.telegraf-mock.json");
        assert_eq!(one(body), placeholders(body, kinds::ARTIFACT_DELETED, "docker.deleted"));
        // The hidden promoted mock differs only in its event type.
        let body = body.replace("\"deleted\"", "\"promoted\"");
        assert_eq!(one(&body), placeholders(&body, kinds::ARTIFACT_PROMOTED, "docker.promoted"));
    }

    #[test]
    fn the_flat_first_generation() {
        let body = fixture!("jfrog/converted/docker.deleted.jfrog-docs-domain-docker-flattened.json");
        assert_eq!(one(body), placeholders(body, kinds::ARTIFACT_DELETED, "docker.deleted"));
        let body = fixture!("jfrog/converted/docker.pushed.jfrog-docs-domain-docker-flattened.json");
        let want = Occurrence {
            repository: s("docker-remote-cache/library/ubuntu"),
            tag: s("latest"),
            digest: s(UBUNTU),
            // Five platforms: a multi-arch index, no single one.
            ..new(body, kinds::ARTIFACT_PUSHED, "docker.pushed")
        };
        assert_eq!(one(body), want);
    }

    #[test]
    fn the_full_current_envelope_names_the_instance_and_the_user() {
        let body = fixture!("keel-testdata/jfrog.fakeJfrogWebhook.json");
        let want = Occurrence {
            source: s("https://example.jfrog.io"),
            host: s("example.jfrog.io"),
            repository: s("docker-remote-cache/library/ubuntu"),
            tag: s("latest"),
            digest: s(UBUNTU),
            actor: s("user@example.com"),
            ..new(body, kinds::ARTIFACT_PUSHED, "docker.pushed")
        };
        assert_eq!(one(body), want);
        let body = fixture!("synthetic/jfrog.docker-pushed.json");
        let want = Occurrence {
            source: s("https://acme.jfrog.io"),
            host: s("acme.jfrog.io"),
            repository: s("docker-local/acme/app"),
            tag: s("1.0"),
            digest: Some(format!("sha256:{}", "b".repeat(64))),
            os: s("linux"),
            architecture: s("amd64"),
            actor: s("acme"),
            ..new(body, kinds::ARTIFACT_PUSHED, "docker.pushed")
        };
        assert_eq!(one(body), want);
    }

    #[test]
    fn origins_and_absent_fields() {
        let body = json!({"domain": "docker", "event_type": "pushed", "jpd_origin": "https://art.example.com/artifactory/",
            "data": {"image_name": "team/app", "sha256": "B".repeat(64)}}).to_string();
        let occ = one(&body);
        assert_eq!(occ.source.as_deref(), Some("https://art.example.com/artifactory"));
        assert_eq!(occ.host.as_deref(), Some("art.example.com"));
        assert_eq!((occ.repository.as_deref(), occ.tag, occ.digest), (Some("team/app"), None, None));
        let body = r#"{"domain":"docker","event_type":"pushed","jpd_origin":"https://<your_origin>","source":"jfrog/<your_source>","data":{"image_name":"a"}}"#;
        let occ = one(body);
        assert_eq!((occ.source, occ.host, occ.actor.as_deref()), (None, None, Some("<your_source>")));
    }

    #[test]
    fn other_domains_and_types_are_unmapped() {
        let unmapped = |body: &str| match run(body) {
            Ok(Normalized::Unmapped { origtype }) => origtype,
            other => panic!("expected unmapped, got {other:?}"),
        };
        let artifact = r#"{"domain":"artifact","event_type":"deployed","data":{"repo_key":"r","path":"a/b.txt","name":"b.txt","sha256":"x","size":0}}"#;
        assert_eq!(unmapped(artifact), "artifact.deployed");
        let build =
            r#"{"domain":"build","event_type":"promoted","data":{"build_name":"b","build_number":"1"}}"#;
        assert_eq!(unmapped(build), "build.promoted");
        assert_eq!(unmapped(r#"{"domain":"docker","event_type":"scanned","data":{}}"#), "docker.scanned");
        // The flat generation of another domain names no image.
        assert_eq!(unmapped(r#"{"repo_key":"r","event_type":"deployed","path":"a","name":"a"}"#), "deployed");
    }

    #[test]
    fn other_dialects_and_wrong_shapes_are_errors() {
        let missing = |body: &str| match run(body) {
            Err(DialectError::Missing(field)) => field,
            other => panic!("expected a missing field, got {other:?}"),
        };
        let harbor = r#"{"type":"PUSH_ARTIFACT","occur_at":1,"operator":"a","event_data":{"resources":[]}}"#;
        assert_eq!(missing(harbor), "domain");
        assert_eq!(
            missing(r#"{"type":"TAG_PUSH","createdAt":"2024-05-01T10:00:00Z","contents":{}}"#),
            "domain"
        );
        assert_eq!(missing(fixture!("nexus/component.CREATED.docker.flux-recv.json")), "domain");
        assert_eq!(missing(r#"{"domain":"docker","event_type":"pushed"}"#), "data");
        assert_eq!(missing(r#"{"domain":"docker","data":{"image_name":"a"}}"#), "event_type");
        assert_eq!(
            missing(r#"{"domain":"docker","event_type":"pushed","data":{"tag":"1"}}"#),
            "data.image_name"
        );
        assert!(matches!(run("[]"), Err(DialectError::InvalidJson(_))));
        let e = run(r#"{"domain":"docker","event_type":"pushed","data":[1]}"#).unwrap_err();
        assert!(matches!(e, DialectError::Invalid { field: "data", .. }), "{e:?}");
    }
}
