//! GitHub Packages / GHCR: `package` and `registry_package` webhooks, one occurrence each; `ping` answered.

use serde::de::Error as _;
use serde_json::{json, Map, Value};

use super::{
    digest_id, is_digest, kind_in, non_empty_str, parse_time, unexpected, DialectError, DialectSpec,
    Handshake, Input, Normalized,
};
use crate::event::{kinds, Kind, Occurrence};
use crate::verify::{Algorithm, HmacForm, HmacSpec, Scheme};

/// `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`. GitHub sends the SHA-1
/// `X-Hub-Signature` beside it only for old integrations; it is not read.
pub const SIGNATURE: HmacSpec = HmacSpec {
    header: "x-hub-signature-256",
    forms: &[HmacForm { algorithm: Algorithm::Sha256, prefix: "sha256=" }],
    token_too: false,
};

pub const DIALECT: DialectSpec =
    DialectSpec::new("github", Scheme::Hmac, Some("REGBRIDGE_GITHUB_SECRETS"), normalize)
        .with_hmac(&SIGNATURE);

/// `<X-GitHub-Event>.<action>` and its kind. `package_v2` is what GHCR sent during its beta (the
/// payload under `package`). `updated` is a new tag or manifest of a package that exists, which a
/// consumer pulls like a push. The README's mapping table mirrors this one.
#[rustfmt::skip]
pub const EVENT_TYPES: &[(&str, Kind)] = &[
    ("package.published",          kinds::ARTIFACT_PUSHED),
    ("package.updated",            kinds::ARTIFACT_PUSHED),
    ("registry_package.published", kinds::ARTIFACT_PUSHED),
    ("registry_package.updated",   kinds::ARTIFACT_PUSHED),
    ("package_v2.create",          kinds::ARTIFACT_PUSHED),
];

/// Where every GitHub container package is pulled from (`docker.pkg.github.com` moved there).
const HOST: &str = "ghcr.io";

fn normalize(input: &Input<'_>) -> Result<Normalized, DialectError> {
    let json = input.json()?;
    let Value::Object(body) = json else {
        let e = serde_json::Error::invalid_type(unexpected(json), &"a GitHub webhook object");
        return Err(DialectError::InvalidJson(e));
    };
    // The header names the event. A relay that drops it leaves the body's own top-level key.
    let event = match input.header("x-github-event") {
        Some(event) => event,
        None if body.contains_key("package") => "package",
        None if body.contains_key("registry_package") => "registry_package",
        None if body.contains_key("zen") && body.contains_key("hook_id") => "ping",
        None => return Err(DialectError::Missing("X-GitHub-Event")),
    };
    match event {
        "ping" => ping(body),
        "package" | "package_v2" => package(input, event, body, PACKAGE),
        "registry_package" => package(input, event, body, REGISTRY_PACKAGE),
        // Any other event the hook subscribes to (push, issues, ...) is GitHub's, just not ours.
        other => Ok(Normalized::Unmapped { origtype: typed(other, non_empty_str(body.get("action"))) }),
    }
}

fn typed(event: &str, action: Option<&str>) -> String {
    match action {
        Some(action) => format!("{event}.{action}"),
        None => event.to_owned(),
    }
}

/// GitHub pings a hook when it is created and when asked to; it expects a 2xx answer.
fn ping(body: &Map<String, Value>) -> Result<Normalized, DialectError> {
    let zen = non_empty_str(body.get("zen"));
    let hook_id = body.get("hook_id").filter(|v| v.is_number());
    if zen.is_none() && hook_id.is_none() {
        return Err(DialectError::Missing("zen"));
    }
    let answer = json!({ "status": "pong", "zen": zen, "hook_id": hook_id });
    Ok(Normalized::Answer(Handshake { status: 200, body: answer }))
}

/// The payload key holding the package, with the names its required fields go by in errors.
struct Key {
    key: &'static str,
    name: &'static str,
    owner: &'static str,
}

const PACKAGE: Key = Key { key: "package", name: "package.name", owner: "package.owner" };
const REGISTRY_PACKAGE: Key =
    Key { key: "registry_package", name: "registry_package.name", owner: "registry_package.owner" };

fn package(
    input: &Input<'_>,
    event: &str,
    body: &Map<String, Value>,
    key: Key,
) -> Result<Normalized, DialectError> {
    let action = non_empty_str(body.get("action")).ok_or(DialectError::Missing("action"))?;
    let pkg = match body.get(key.key) {
        Some(Value::Object(pkg)) => pkg,
        None | Some(Value::Null) => return Err(DialectError::Missing(key.key)),
        Some(other) => {
            return Err(DialectError::Invalid { field: key.key, reason: format!("not an object: {other}") })
        }
    };
    let origtype = typed(event, Some(action));
    let Some(kind) = kind_in(EVENT_TYPES, &origtype) else {
        return Ok(Normalized::Unmapped { origtype });
    };
    let version = pkg.get("package_version").and_then(Value::as_object);
    if !is_container(pkg, version) {
        // An npm, Maven, RubyGems, NuGet package: nothing a container consumer pulls.
        input.skip();
        return Ok(Normalized::Events(Vec::new()));
    }
    let name = non_empty_str(pkg.get("name")).ok_or(DialectError::Missing(key.name))?;
    // `namespace` is `<owner>` (GHCR) or `<owner>/<repository>` (the Packages examples).
    let owner = non_empty_str(pkg.get("owner").and_then(|o| o.get("login")))
        .or_else(|| non_empty_str(pkg.get("namespace")).and_then(|n| n.split('/').next()))
        .filter(|o| !o.is_empty())
        .ok_or(DialectError::Missing(key.owner))?;

    // GitHub retries and redeliveries keep the delivery GUID; without it, the body is the id.
    let id = input
        .header("x-github-delivery")
        .map_or_else(|| digest_id(input.endpoint, input.body), str::to_owned);
    let mut occ = Occurrence::new(kind, id, origtype);
    occ.source = Some(format!("https://{HOST}"));
    occ.host = Some(HOST.to_owned());
    // GHCR names are lowercase and Docker refuses anything else in a reference; GitHub spells the
    // owner as its login is shown (`Codertocat`), which no client could pull.
    occ.repository = Some(format!("{owner}/{name}").to_lowercase());
    let meta = version.and_then(|v| v.get("container_metadata"));
    let field = |k: &str| version.and_then(|v| v.get(k));
    // `package_version.version` is the tag for `registry_package`, but the manifest digest for
    // `package`: only something shaped like a tag is one.
    occ.tag = non_empty_str(at(meta, &["tag", "name"]))
        .or(non_empty_str(field("version")).filter(|v| is_tag(v)))
        .map(str::to_owned);
    // The published examples carry 40-hex "digests" (git SHAs) in the container metadata; the
    // first candidate that is a real digest wins.
    occ.digest =
        [at(meta, &["tag", "digest"]), at(meta, &["manifest", "digest"]), field("name"), field("version")]
            .into_iter()
            .filter_map(non_empty_str)
            .find(|d| is_digest(d))
            .map(str::to_owned);
    occ.actor = non_empty_str(at(body.get("sender"), &["login"]))
        .or_else(|| non_empty_str(at(field("author"), &["login"])))
        .map(str::to_owned);
    occ.time = [field("updated_at"), field("created_at"), pkg.get("updated_at"), pkg.get("created_at")]
        .into_iter()
        .filter_map(non_empty_str)
        .map(|t| parse_time("updated_at", t))
        // Go's zero time (`0001-01-01T00:00:00Z`) is what GitHub sends for "unknown".
        .find(|t| !matches!(t, Ok(t) if chrono::Datelike::year(t) <= 1))
        .transpose()?;
    Ok(Normalized::Events(vec![occ]))
}

/// Whether the package is a container image. The published examples contradict themselves (an
/// image declared `package_type: "npm"`, an npm package declared `ecosystem: "docker"`), so the
/// most specific signal wins: the registry holding it, then container metadata, then the declared
/// types.
fn is_container(pkg: &Map<String, Value>, version: Option<&Map<String, Value>>) -> bool {
    let container = |s: &str| s.eq_ignore_ascii_case("docker") || s.eq_ignore_ascii_case("container");
    if let Some(registry) = non_empty_str(pkg.get("registry").and_then(|r| r.get("type"))) {
        return container(registry);
    }
    let meta = version.and_then(|v| v.get("container_metadata")).and_then(Value::as_object);
    if meta.is_some_and(|m| !m.is_empty()) {
        return true;
    }
    [pkg.get("package_type"), pkg.get("ecosystem")].into_iter().find_map(non_empty_str).is_some_and(container)
}

/// The value at `path` under `v`.
fn at<'v>(v: Option<&'v Value>, path: &[&str]) -> Option<&'v Value> {
    path.iter().try_fold(v?, |v, k| v.get(k))
}

/// An OCI tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
fn is_tag(s: &str) -> bool {
    let mut chars = s.chars();
    s.len() <= 128
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};

    use super::*;
    use crate::dialects::testing::{at, s};
    use crate::dialects::MediaType;

    const ENDPOINT: &str = "github";
    const DELIVERY: &str = "72d3162e-cc78-11e3-81ab-4c9367dc0958";

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("../../tests/fixtures/other/", $name))
        };
    }

    fn headers(event: Option<&str>, delivery: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in [("x-github-event", event), ("x-github-delivery", delivery)] {
            if let Some(v) = value {
                h.insert(HeaderName::from_static(name), HeaderValue::from_str(v).unwrap());
            }
        }
        h
    }

    /// The answer and how many entries were skipped.
    fn run_with(body: &str, headers: &HeaderMap) -> (Result<Normalized, DialectError>, usize) {
        let input = Input { headers, ..Input::new(ENDPOINT, MediaType::Json, body.as_bytes()) };
        let r = normalize(&input);
        (r, input.skipped.get())
    }

    fn run(body: &str, event: Option<&str>) -> Result<Normalized, DialectError> {
        run_with(body, &headers(event, None)).0
    }

    fn one(body: &str, event: Option<&str>) -> Occurrence {
        match run(body, event) {
            Ok(Normalized::Events(events)) if events.len() == 1 => events.into_iter().next().unwrap(),
            other => panic!("expected one event, got {other:?}"),
        }
    }

    fn pushed(body: &str, origtype: &str) -> Occurrence {
        Occurrence {
            source: s("https://ghcr.io"),
            host: s("ghcr.io"),
            ..Occurrence::new(kinds::ARTIFACT_PUSHED, digest_id(ENDPOINT, body.as_bytes()), origtype)
        }
    }

    #[test]
    fn octokit_docker_package_takes_the_real_digest_and_no_empty_tag() {
        let body = fixture!("github/package.published.docker.octokit-webhooks.json");
        let want = Occurrence {
            repository: s("codertocat/hello-world-npm"),
            tag: None,
            // Not the 40-hex `container_metadata` "digests": `package_version.name`.
            digest: s("sha256:3da1996a8115d7616457760d9920b815241d0a03b34cf5f04e9a0e9d8de37498"),
            actor: s("Codertocat"),
            // The version's own times are Go's zero time: the package's.
            time: at("2019-05-09T23:28:29Z"),
            ..pushed(body, "package.published")
        };
        assert_eq!(one(body, Some("package")), want);
        // Without the header the body's key names the event.
        assert_eq!(one(body, None), want);
        // The same package as a `registry_package` event (the hidden octokit variant's shape).
        let legacy = body.replacen("\"package\":", "\"registry_package\":", 1);
        let want = Occurrence {
            id: digest_id(ENDPOINT, legacy.as_bytes()),
            origtype: "registry_package.published".into(),
            ..want
        };
        assert_eq!(one(&legacy, Some("registry_package")), want);
        assert_eq!(one(&legacy, None), want);
    }

    #[test]
    fn npm_packages_are_skipped_though_they_claim_the_docker_ecosystem() {
        let body = fixture!("github/package.published.npm.octokit-webhooks.json");
        let (r, skipped) = run_with(body, &headers(Some("package"), Some(DELIVERY)));
        assert_eq!(r.unwrap(), Normalized::Events(vec![]));
        assert_eq!(skipped, 1);
        let (r, skipped) = run_with(body, &HeaderMap::new());
        assert_eq!((r.unwrap(), skipped), (Normalized::Events(vec![]), 1));
    }

    #[test]
    fn keel_samples() {
        let body = fixture!("keel-testdata/github.fakeGithubPackageWebhook.json");
        let want = Occurrence {
            repository: s("dingggu/server"),
            tag: s("1.2.3"),
            actor: s("DingGGu"),
            time: at("2019-11-01T05:30:31Z"),
            ..pushed(body, "registry_package.published")
        };
        assert_eq!(one(body, Some("registry_package")), want);

        // GHCR's beta event: no owner object, `namespace` is the owner, every time is zero.
        let body = fixture!("keel-testdata/github.fakeGithubContainerRegistryWebhook.json");
        let want = Occurrence {
            repository: s("utaitebox/utaitebox-server"),
            tag: s("3.2.1"),
            digest: s("sha256:7d3848ba2f2e7f69bebb4b576e5fad0379b64a0b1512aee6ad0ec9e7c6319fed"),
            actor: s("DingGGu"),
            time: None,
            ..pushed(body, "package_v2.create")
        };
        assert_eq!(one(body, Some("package_v2")), want);
        // As a `package` event, `create` is not an action GitHub names.
        assert_eq!(
            run(body, Some("package")).unwrap(),
            Normalized::Unmapped { origtype: "package.create".into() }
        );
    }

    #[test]
    fn the_delivery_guid_is_the_id() {
        let body = fixture!("keel-testdata/github.fakeGithubPackageWebhook.json");
        let (r, _) = run_with(body, &headers(Some("registry_package"), Some(DELIVERY)));
        let Ok(Normalized::Events(events)) = r else { panic!("{r:?}") };
        assert_eq!(events[0].id, DELIVERY);
        // A redelivery carries the same GUID.
        let (again, _) = run_with(body, &headers(Some("registry_package"), Some(DELIVERY)));
        assert_eq!(again.unwrap(), Normalized::Events(events));
    }

    #[test]
    fn every_type_maps_and_tags_and_digests_are_checked() {
        for &(ty, kind) in EVENT_TYPES {
            let (event, action) = ty.split_once('.').unwrap();
            let key = if event == "registry_package" { event } else { "package" };
            let body = json!({ "action": action, key: {
                "name": "App", "namespace": "Acme", "package_type": "CONTAINER",
                "package_version": { "version": "v1.0", "name": "sha256:abc" } } });
            let occ = one(&body.to_string(), Some(event));
            assert_eq!((occ.kind, occ.origtype.as_str()), (kind, ty));
            assert_eq!(
                (occ.repository.as_deref(), occ.tag.as_deref(), occ.digest),
                (Some("acme/app"), Some("v1.0"), None)
            );
        }
    }

    #[test]
    fn ping_is_answered() {
        let body = r#"{"zen":"Design for failure.","hook_id":42,"hook":{"type":"Organization","events":["package"]}}"#;
        let want = Handshake {
            status: 200,
            body: json!({"status": "pong", "zen": "Design for failure.", "hook_id": 42}),
        };
        assert_eq!(run(body, Some("ping")).unwrap(), Normalized::Answer(want));
        assert!(matches!(run(body, None), Ok(Normalized::Answer(_))));
        assert!(matches!(run("{}", Some("ping")), Err(DialectError::Missing("zen"))));
    }

    #[test]
    fn other_events_are_unmapped() {
        let body = r#"{"ref":"refs/heads/main","sender":{"login":"octocat"}}"#;
        assert_eq!(run(body, Some("push")).unwrap(), Normalized::Unmapped { origtype: "push".into() });
        let body = r#"{"action":"opened","issue":{}}"#;
        assert_eq!(
            run(body, Some("issues")).unwrap(),
            Normalized::Unmapped { origtype: "issues.opened".into() }
        );
        let body = r#"{"action":"deleted","package":{"name":"x"}}"#;
        assert_eq!(
            run(body, Some("package")).unwrap(),
            Normalized::Unmapped { origtype: "package.deleted".into() }
        );
    }

    #[test]
    fn other_dialects_and_wrong_shapes_are_errors() {
        let harbor = r#"{"type":"PUSH_ARTIFACT","occur_at":1,"operator":"a","event_data":{"resources":[]}}"#;
        assert!(matches!(run(harbor, None), Err(DialectError::Missing("X-GitHub-Event"))));
        assert!(matches!(run(harbor, Some("package")), Err(DialectError::Missing("action"))));
        let msr =
            r#"{"type":"TAG_PUSH","createdAt":"2024-05-01T10:00:00Z","contents":{},"action":"published"}"#;
        assert!(matches!(run(msr, Some("package")), Err(DialectError::Missing("package"))));
        assert!(matches!(run("[]", Some("package")), Err(DialectError::InvalidJson(_))));
        let e = run(r#"{"action":"published","package":"x"}"#, None).unwrap_err();
        assert!(matches!(e, DialectError::Invalid { field: "package", .. }), "{e:?}");
        let e = run(r#"{"action":"published","package":{"package_type":"docker"}}"#, None).unwrap_err();
        assert!(matches!(e, DialectError::Missing("package.name")), "{e:?}");
        let e =
            run(r#"{"action":"published","registry_package":{"name":"a","package_type":"docker"}}"#, None);
        assert!(matches!(e, Err(DialectError::Missing("registry_package.owner"))), "{e:?}");
        let body = r#"{"action":"published","package":{"name":"a","namespace":"o","package_type":"docker","updated_at":"soon"}}"#;
        assert!(matches!(run(body, None), Err(DialectError::Invalid { .. })));
    }
}
