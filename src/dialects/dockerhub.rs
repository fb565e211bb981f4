//! Docker Hub repository webhooks: `{callback_url, push_data, repository}`, one push occurrence each.

use chrono::{DateTime, Utc};
use serde::de::Error as _;
use serde_json::{Map, Value};

use super::{digest_id, str_member, unexpected, DialectError, DialectSpec, Input, Normalized};
use crate::event::{kinds, Kind, Occurrence};
use crate::verify::Scheme;

pub const DIALECT: DialectSpec =
    DialectSpec::new("dockerhub", Scheme::Token, Some("REGBRIDGE_DOCKERHUB_TOKENS"), normalize);

/// Docker Hub sends pushes only, and names no type: `push` is regbridge's name for it (the
/// `origtype`). The README's mapping table mirrors this one.
pub const EVENT_TYPES: &[(&str, Kind)] = &[("push", kinds::ARTIFACT_PUSHED)];

/// Where Docker Hub's images are pulled from, and the instance that sends the webhooks.
const PULL_HOST: &str = "docker.io";
const SOURCE: &str = "https://hub.docker.com";

fn object<'a>(
    payload: &'a Map<String, Value>,
    key: &'static str,
) -> Result<&'a Map<String, Value>, DialectError> {
    match payload.get(key) {
        None | Some(Value::Null) => Err(DialectError::Missing(key)),
        Some(Value::Object(o)) => Ok(o),
        Some(other) => {
            Err(DialectError::InvalidJson(serde_json::Error::invalid_type(unexpected(other), &"an object")))
        }
    }
}

fn normalize(input: &Input<'_>) -> Result<Normalized, DialectError> {
    let json = input.json()?;
    let Value::Object(payload) = json else {
        let e = serde_json::Error::invalid_type(unexpected(json), &"a Docker Hub webhook object");
        return Err(DialectError::InvalidJson(e));
    };
    let push = object(payload, "push_data")?;
    let repo = object(payload, "repository")?;
    let repository = repository(repo).ok_or(DialectError::Missing("repository.repo_name"))?;

    // Docker Hub sends no id and no signature; a retry resends the same body.
    let (name, kind) = EVENT_TYPES[0];
    let mut occ = Occurrence::new(kind, digest_id(input.endpoint, input.body), name);
    occ.source = Some(SOURCE.to_owned());
    occ.host = Some(PULL_HOST.to_owned());
    occ.repository = Some(repository);
    // Absent on some captured payloads; `images` are legacy image ids, not digests.
    occ.tag = str_member(push, "tag").map(str::to_owned);
    occ.actor = str_member(push, "pusher").map(str::to_owned);
    occ.time = push.get("pushed_at").map(epoch).transpose()?;
    Ok(Normalized::Events(vec![occ]))
}

/// `<namespace>/<name>`; official images have namespace `library` and a `repo_name` without
/// one, and pull as `docker.io/library/<name>`.
fn repository(repo: &Map<String, Value>) -> Option<String> {
    if let (Some(namespace), Some(name)) = (str_member(repo, "namespace"), str_member(repo, "name")) {
        return Some(format!("{namespace}/{name}"));
    }
    let repo_name = str_member(repo, "repo_name")?;
    Some(match repo_name.contains('/') {
        true => repo_name.to_owned(),
        false => format!("library/{repo_name}"),
    })
}

/// `pushed_at`: Unix seconds, an integer in current payloads and a float with an exponent
/// (`1.417566161e+09`) in older ones.
fn epoch(v: &Value) -> Result<DateTime<Utc>, DialectError> {
    let invalid = |reason: String| DialectError::Invalid { field: "push_data.pushed_at", reason };
    let time = match (v.as_i64(), v.as_f64()) {
        (Some(secs), _) => DateTime::from_timestamp(secs, 0),
        (None, Some(f)) if f.is_finite() && f.abs() < 1e15 => {
            let secs = f.floor();
            // Rounded to microseconds: a float's last bits are noise, not nanoseconds.
            let micros = ((f - secs) * 1e6).round() as u32;
            DateTime::from_timestamp(secs as i64, micros.min(999_999) * 1000)
        }
        _ => return Err(invalid(format!("expected Unix seconds, got {v}"))),
    };
    time.ok_or_else(|| invalid(format!("{v} is out of range for a timestamp")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialects::testing::s;
    use crate::dialects::MediaType;

    const ENDPOINT: &str = "dockerhub";

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("../../tests/fixtures/other/", $name))
        };
    }

    fn run(body: &str) -> Result<Normalized, DialectError> {
        normalize(&Input::new(ENDPOINT, MediaType::Json, body.as_bytes()))
    }

    fn event(body: &str) -> Occurrence {
        match run(body) {
            Ok(Normalized::Events(events)) => <[_; 1]>::try_from(events).unwrap().into_iter().next().unwrap(),
            other => panic!("expected one event, got {other:?}"),
        }
    }

    /// A Docker Hub push: digest id, the fixed source and host, and the given fields.
    fn push(body: &str, repository: &str, tag: Option<&str>, actor: &str, secs: i64) -> Occurrence {
        Occurrence {
            source: s(SOURCE),
            host: s(PULL_HOST),
            repository: s(repository),
            tag: tag.map(str::to_owned),
            actor: s(actor),
            time: DateTime::from_timestamp(secs, 0),
            ..Occurrence::new(kinds::ARTIFACT_PUSHED, digest_id(ENDPOINT, body.as_bytes()), "push")
        }
    }

    #[test]
    fn docs_samples_with_integer_and_float_epochs() {
        let body = fixture!("dockerhub/push.docker-docs.json");
        assert_eq!(
            event(body),
            push(body, "svendowideit/testhook", Some("latest"), "trustedbuilder", 1417566161)
        );
        let body = fixture!("dockerhub/push.docker-docs-legacy-with-images.json");
        assert_eq!(
            event(body),
            push(body, "svendowideit/testhook", Some("latest"), "trustedbuilder", 1417566161)
        );
    }

    #[test]
    fn captured_payloads_without_a_tag() {
        let body = fixture!("dockerhub/push.own-repository.jenkins-dockerhub-notification-plugin.json");
        assert_eq!(event(body), push(body, "csanchez/jenkins-swarm-slave", None, "csanchez", 1429028158));
        let body = fixture!("keel-testdata/dockerhub.fakeRequest.json");
        assert_eq!(event(body), push(body, "karolisr/keel", Some("0.1.7"), "karolisr", 1497467660));
        let body = fixture!("synthetic/dockerhub.push.json");
        assert_eq!(event(body), push(body, "acme/app", Some("1.0"), "acme-ci", 1717243200));
    }

    #[test]
    fn official_images_are_in_library() {
        // The shape of the plugin's public-repository payload (busybox): no tag, no dockerfile.
        let body = r#"{"push_data":{"pushed_at":1429028158,"images":["imagehash1"],"pusher":"tianon"},
            "callback_url":"https://registry.hub.docker.com/_/busybox/hook/x/",
            "repository":{"status":"Active","is_official":true,"repo_name":"busybox","namespace":"library",
            "name":"busybox","repo_url":"https://registry.hub.docker.com/_/busybox/"}}"#;
        assert_eq!(event(body), push(body, "library/busybox", None, "tianon", 1429028158));
        let body = r#"{"push_data":{"tag":"1"},"repository":{"repo_name":"busybox"}}"#;
        let occ = event(body);
        assert_eq!(
            (occ.repository.as_deref(), occ.actor.as_deref(), occ.time),
            (Some("library/busybox"), None, None)
        );
        assert_eq!(occ.image().as_deref(), Some("docker.io/library/busybox:1"));
    }

    #[test]
    fn fractional_epochs_keep_microseconds() {
        let body = r#"{"push_data":{"pushed_at":1417566161.25},"repository":{"repo_name":"a/b"}}"#;
        assert_eq!(event(body).time, DateTime::from_timestamp(1417566161, 250_000_000));
        for bad in [r#""yesterday""#, "1e300", "true"] {
            let body = format!(r#"{{"push_data":{{"pushed_at":{bad}}},"repository":{{"repo_name":"a/b"}}}}"#);
            let e = run(&body).unwrap_err();
            assert!(matches!(e, DialectError::Invalid { field: "push_data.pushed_at", .. }), "{bad}: {e:?}");
        }
    }

    #[test]
    fn other_payloads_are_errors() {
        let err = |body: &str| run(body).unwrap_err();
        let harbor = r#"{"type":"PUSH_ARTIFACT","occur_at":1,"event_data":{"resources":[]}}"#;
        assert!(matches!(err(harbor), DialectError::Missing("push_data")));
        let quay = include_str!("../../tests/fixtures/other/quay/repo_push.quay-docs.json");
        assert!(matches!(err(quay), DialectError::Missing("push_data")));
        let quay_like = r#"{"push_data":{},"repository":"dgangaia/test"}"#;
        assert!(matches!(err(quay_like), DialectError::InvalidJson(_)));
        assert!(matches!(err(r#"{"events":[]}"#), DialectError::Missing("push_data")));
        assert!(matches!(err(r#"{"push_data":{}}"#), DialectError::Missing("repository")));
        assert!(matches!(
            err(r#"{"push_data":{},"repository":{}}"#),
            DialectError::Missing("repository.repo_name")
        ));
        assert!(matches!(err("[]"), DialectError::InvalidJson(_)));
    }
}
