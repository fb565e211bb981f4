//! CNCF Distribution (`registry:2`) and GitLab's fork: `{"events":[...]}`, one occurrence per manifest entry.

use std::collections::HashMap;

use serde::de::Error as _;
use serde_json::{Map, Value};

use super::{
    digest_id, fan_out_id, is_digest, kind_in, non_empty, object_member, parse_time, str_member, unexpected,
    DialectError, DialectSpec, Input, Normalized,
};
use crate::event::{kinds, Kind, Occurrence, Original};
use crate::verify::Scheme;

pub const DIALECT: DialectSpec =
    DialectSpec::new("distribution", Scheme::Authorization, Some("REGBRIDGE_DISTRIBUTION_AUTH"), normalize);

/// GitLab's container registry: Distribution's notifications with GitLab's fields.
pub const GITLAB: DialectSpec = DialectSpec::new("gitlab", Scheme::Authorization, None, normalize);

/// Event actions and their kinds. A `delete` whose target names neither a digest nor a tag is the
/// repository's (Distribution's `RepoDeleted`): the second `delete` row, which the lookup never
/// reaches by name. `mount` is a cross-repository blob mount: always a blob, never published.
/// `rename` is GitLab's (a repository's name or namespace changed). The README's mapping table
/// mirrors this one.
#[rustfmt::skip]
pub const EVENT_TYPES: &[(&str, Kind)] = &[
    ("push",   kinds::ARTIFACT_PUSHED),
    ("pull",   kinds::ARTIFACT_PULLED),
    ("delete", kinds::ARTIFACT_DELETED),
    ("delete", kinds::REPOSITORY_DELETED),
    ("rename", kinds::REPOSITORY_UPDATED),
];

/// What a target's `url` (`<scheme>://<authority>/v2/<repository>/{manifests,blobs}/<reference>`)
/// says.
#[derive(Default)]
struct Url<'a> {
    /// `<scheme>://<authority>`
    base: Option<&'a str>,
    authority: Option<&'a str>,
    repository: Option<&'a str>,
    /// `/blobs/` (or `/blob/`, as registry 2.1 wrote it) rather than `/manifests/`.
    blob: bool,
    reference: Option<&'a str>,
}

fn parse_url(url: &str) -> Url<'_> {
    let Some(scheme_end) = url.find("://") else { return Url::default() };
    let rest = &url[scheme_end + 3..];
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let authority = non_empty_str(authority);
    let base = authority.map(|a| &url[..scheme_end + 3 + a.len()]);
    let mut parsed = Url { base, authority, ..Url::default() };
    let path = path.strip_prefix("v2/").unwrap_or(path);
    for (marker, blob) in [("/manifests/", false), ("/blobs/", true), ("/blob/", true)] {
        if let Some(i) = path.rfind(marker) {
            parsed.repository = non_empty_str(&path[..i]);
            parsed.reference = non_empty_str(&path[i + marker.len()..]);
            parsed.blob = blob;
            break;
        }
    }
    parsed
}

fn non_empty_str(s: &str) -> Option<&str> {
    Some(s).filter(|s| !s.is_empty())
}

/// Whether an entry is about a blob (a layer or config) rather than a manifest a consumer can
/// pull. The media type decides when it names a manifest or a blob, but registry 2.1/2.2 sent
/// `application/octet-stream` for manifests and blobs alike: then the URL path does.
fn is_blob(action: &str, target: &Map<String, Value>, url: &Url<'_>) -> bool {
    if action == "mount" {
        return true;
    }
    let media = str_member(target, "mediaType").unwrap_or("");
    let media = media.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match media.as_str() {
        m if m.contains("manifest") || m.contains("image.index") => false,
        "" | "application/octet-stream" => url.blob,
        _ => true,
    }
}

/// One entry that becomes an event: its position and what was read to classify it.
struct Publish<'a> {
    index: usize,
    entry: &'a Map<String, Value>,
    target: &'a Map<String, Value>,
    url: Url<'a>,
    action: &'a str,
    kind: Kind,
}

fn normalize(input: &Input<'_>) -> Result<Normalized, DialectError> {
    let json = input.json()?;
    let Value::Object(envelope) = json else {
        let e = serde_json::Error::invalid_type(unexpected(json), &"a Distribution envelope object");
        return Err(DialectError::InvalidJson(e));
    };
    let events = match envelope.get("events") {
        None | Some(Value::Null) => return Err(DialectError::Missing("events")),
        Some(Value::Array(events)) if events.is_empty() => {
            return Err(DialectError::Invalid { field: "events", reason: "an empty array".into() })
        }
        Some(Value::Array(events)) => events,
        Some(other) => {
            let e = serde_json::Error::invalid_type(unexpected(other), &"an array of events");
            return Err(DialectError::InvalidJson(e));
        }
    };

    // First pass: classify every entry (all must be well-formed), so the bound is checked
    // before any occurrence is built.
    let mut publish = Vec::new();
    let mut first_unmapped = None;
    for (index, entry) in events.iter().enumerate() {
        let Value::Object(entry) = entry else {
            let e = serde_json::Error::invalid_type(unexpected(entry), &"a Distribution event object");
            return Err(DialectError::InvalidJson(e));
        };
        let action = str_member(entry, "action").ok_or(DialectError::Missing("events[].action"))?;
        let target = object_member(entry, "target").ok_or(DialectError::Missing("events[].target"))?;
        let url = str_member(target, "url").map(parse_url).unwrap_or_default();
        if is_blob(action, target, &url) {
            input.skip();
            continue;
        }
        let Some(mut kind) = kind_in(EVENT_TYPES, action) else {
            input.unmapped_entry();
            first_unmapped.get_or_insert(action);
            continue;
        };
        if kind == kinds::ARTIFACT_DELETED
            && str_member(target, "digest").is_none()
            && str_member(target, "tag").is_none()
        {
            kind = kinds::REPOSITORY_DELETED;
        }
        publish.push(Publish { index, entry, target, url, action, kind });
    }
    let max = input.bounds.max_events;
    if publish.len() > max {
        return Err(DialectError::TooManyEvents { count: publish.len(), max });
    }
    if publish.is_empty() {
        if let Some(action) = first_unmapped {
            return Ok(Normalized::Unmapped { origtype: action.to_owned() });
        }
    }

    // Each event's own entry is its `data.original` when the envelope holds several.
    let parts = if events.len() > 1 {
        let rendered: Vec<Vec<u8>> =
            publish.iter().map(|p| serde_json::to_vec(p.entry).expect("a JSON tree serializes")).collect();
        let size = rendered.iter().map(Vec::len).sum::<usize>();
        if size > input.bounds.max_output {
            return Err(DialectError::OutputTooLarge { size, max: input.bounds.max_output });
        }
        rendered.into_iter().map(Original::from_rendered).map(Some).collect()
    } else {
        vec![None; publish.len()]
    };

    let ids = Ids::new(input, events);
    let mut out = Vec::with_capacity(publish.len());
    for (p, part) in publish.into_iter().zip(parts) {
        let mut occ = occurrence(&p, ids.of(p.index, p.entry))?;
        occ.part = part;
        out.push(occ);
    }
    Ok(Normalized::Events(out))
}

/// Event ids: the registry's own `id` (a UUID per event, resent unchanged with the envelope),
/// unless it is absent or not unique in the envelope — published envelopes repeat one id over a
/// blob and a manifest entry — in which case the entry's position is appended. Entries without
/// an id fall back to the digest of the body, also indexed.
struct Ids<'a> {
    base: String,
    total: usize,
    seen: HashMap<&'a str, usize>,
}

impl<'a> Ids<'a> {
    fn new(input: &Input<'_>, events: &'a [Value]) -> Self {
        let mut seen = HashMap::new();
        for id in events.iter().filter_map(|e| e.get("id").and_then(Value::as_str)).filter(|s| !s.is_empty())
        {
            *seen.entry(id).or_insert(0) += 1;
        }
        Self { base: digest_id(input.endpoint, input.body), total: events.len(), seen }
    }

    fn of(&self, index: usize, entry: &Map<String, Value>) -> String {
        match str_member(entry, "id") {
            Some(id) if self.seen.get(id) == Some(&1) => id.to_owned(),
            Some(id) => format!("{id}#{index}"),
            None => fan_out_id(&self.base, index, self.total),
        }
    }
}

fn occurrence(p: &Publish<'_>, id: String) -> Result<Occurrence, DialectError> {
    let mut occ = Occurrence::new(p.kind, id, p.action);
    let url = &p.url;
    // The URL is the one the registry hands out for the content; deletes carry none, but the
    // request's `Host` is what the client pulled from.
    occ.source = url.base.map(str::to_owned);
    occ.host = url
        .authority
        .or_else(|| object_member(p.entry, "request").and_then(|r| str_member(r, "host")))
        .map(str::to_owned);
    occ.repository = str_member(p.target, "repository").or(url.repository).map(str::to_owned);
    let reference = url.reference.filter(|_| !url.blob);
    occ.digest = str_member(p.target, "digest")
        .filter(|d| is_digest(d))
        .or(reference.filter(|r| is_digest(r)))
        .map(str::to_owned);
    // A manifest pushed by tag has its URL built from the tag (no `:` can be in a tag).
    occ.tag = str_member(p.target, "tag").or(reference.filter(|r| !r.contains(':'))).map(str::to_owned);
    occ.actor = non_empty(object_member(p.entry, "actor").and_then(|a| str_member(a, "name")));
    occ.time = str_member(p.entry, "timestamp").map(|t| parse_time("events[].timestamp", t)).transpose()?;
    Ok(occ)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::dialects::testing::{at, s};
    use crate::dialects::{Bounds, MediaType};

    const ENDPOINT: &str = "distribution";
    const FEA8: &str = "sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf";
    const ZK: &str = "sha256:55d2be3e073109b6dfa68aa6ffbce9f5441ab8dd451834eaf0e81874a0b1b720";
    const UBUNTU: &str = "sha256:2dbe4abf311d67ec224f926d4b21b9be6f96dfba9be139e6936156a67b75a1ad";

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("../../tests/fixtures/other/", $name))
        };
    }

    struct Run {
        normalized: Result<Normalized, DialectError>,
        skipped: usize,
    }

    fn run_with(endpoint: &str, body: &str, bounds: Bounds) -> Run {
        let input = Input { bounds, ..Input::new(endpoint, MediaType::Json, body.as_bytes()) };
        let normalized = normalize(&input);
        Run { normalized, skipped: input.skipped.get() }
    }

    fn run(body: &str) -> Run {
        run_with(ENDPOINT, body, Bounds::default())
    }

    /// The events and how many entries were skipped.
    fn events(body: &str) -> (Vec<Occurrence>, usize) {
        let r = run(body);
        match r.normalized {
            Ok(Normalized::Events(events)) => (events, r.skipped),
            other => panic!("expected events, got {other:?}"),
        }
    }

    /// The JSON entry `index` of an envelope, as its `data.original` part.
    fn part(body: &str, index: usize) -> Option<Original> {
        let v: Value = serde_json::from_str(body).unwrap();
        Some(Original::from_rendered(serde_json::to_vec(&v["events"][index]).unwrap()))
    }

    fn test_manifest(body: &str, media_note: &str) -> Occurrence {
        // event_test.go: one manifest and two layers, all pointing at `/manifests/latest`; the
        // layers are told apart by their media type, and the manifest digest is truncated.
        let (evs, skipped) = events(body);
        assert_eq!(skipped, 2, "{media_note}");
        let [occ] = <[_; 1]>::try_from(evs).unwrap();
        occ
    }

    #[test]
    fn manifest_pull_from_the_docs() {
        for body in [
            fixture!("distribution/envelope.manifest-pull.json"),
            fixture!("distribution/pull.notifications-md-2020-3space.json"),
        ] {
            let want = Occurrence {
                source: s("http://192.168.100.227:5000"),
                host: s("192.168.100.227:5000"),
                repository: s("hello-world"),
                tag: s("latest"),
                digest: s(FEA8),
                time: at("2016-03-09T14:44:26.402973972-08:00"),
                ..Occurrence::new(kinds::ARTIFACT_PULLED, "320678d8-ca14-430f-8bb6-4ca139cd83f7", "pull")
            };
            // `actor` is `{}`: unknown.
            assert_eq!(events(body), (vec![want], 0));
        }
    }

    #[test]
    fn push_with_layers_publishes_the_manifest_only() {
        let body = fixture!("distribution/envelope.push-manifest-and-layers.json");
        let want = Occurrence {
            source: s("https://example.com"),
            host: s("example.com"),
            repository: s("library/test"),
            digest: s(FEA8),
            actor: s("test-actor"),
            time: at("2006-01-02T15:04:05Z"),
            part: part(body, 0),
            ..Occurrence::new(kinds::ARTIFACT_PUSHED, "asdf-asdf-asdf-asdf-0", "push")
        };
        assert_eq!(events(body), (vec![want.clone()], 2));

        // The same body inside the doc's HTTP request sample.
        let request = fixture!("distribution/envelope.push.http-request.txt");
        assert!(request.contains("Content-Type: application/vnd.docker.distribution.events.v2+json"));
        let (_, http_body) = request.split_once("\n\n").unwrap();
        assert_eq!(events(http_body), (vec![Occurrence { part: part(http_body, 0), ..want }], 2));
    }

    #[test]
    fn event_test_go_envelopes_drop_the_truncated_digest() {
        for (body, note) in [
            (fixture!("distribution/push.event-test-go.json"), "v2"),
            (fixture!("distribution/push.event-test-go-schema1-prettyjws.json"), "schema1"),
            (fixture!("gitlab/push.gitlab-event-test-go.json"), "gitlab"),
        ] {
            let want = Occurrence {
                source: s("http://example.com"),
                host: s("example.com"),
                repository: s("library/test"),
                // From the URL `/manifests/latest`.
                tag: s("latest"),
                digest: None,
                actor: s("test-actor"),
                time: at("2006-01-02T15:04:05Z"),
                part: part(body, 0),
                ..Occurrence::new(kinds::ARTIFACT_PUSHED, "asdf-asdf-asdf-asdf-0", "push")
            };
            assert_eq!(test_manifest(body, note), want, "{note}");
        }
    }

    #[test]
    fn octet_stream_manifests_are_told_from_blobs_by_url() {
        let zk = Occurrence {
            source: s("http://registry:5000"),
            host: s("registry:5000"),
            repository: s("jplock/zookeeper"),
            digest: s(ZK),
            time: at("2015-10-06T13:00:54.450615408Z"),
            ..Occurrence::new(kinds::ARTIFACT_PUSHED, "9d9e2ab1-d38e-4f71-8091-2ed699e7a6a5", "push")
        };
        let body =
            fixture!("distribution/push.manifest-octet-stream.jenkins-dockerhub-notification-plugin.json");
        assert_eq!(events(body), (vec![zk.clone()], 0));

        let body = fixture!("distribution/push.two-repositories.jenkins-dockerhub-notification-plugin.json");
        let ubuntu = Occurrence {
            repository: s("ubuntu"),
            digest: s(UBUNTU),
            time: at("2015-10-09T13:25:04.102522145Z"),
            id: "154beacd-cd29-4989-bc5e-1a353a776337".into(),
            part: part(body, 1),
            ..zk.clone()
        };
        let first = Occurrence { part: part(body, 0), ..zk.clone() };
        assert_eq!(events(body), (vec![first, ubuntu], 0));

        // Both entries carry one id: the blob (`/blob/`) is skipped, the manifest's id is indexed.
        let body = fixture!("distribution/push.blob-and-manifest.jenkins-dockerhub-notification-plugin.json");
        let want =
            Occurrence { id: "9d9e2ab1-d38e-4f71-8091-2ed699e7a6a5#1".into(), part: part(body, 1), ..zk };
        assert_eq!(events(body), (vec![want], 1));
    }

    #[test]
    fn keel_registry_notification() {
        let body = fixture!("keel-testdata/distribution.fakeRegistryNotificationWebhook.json");
        let want = Occurrence {
            source: s("https://registry.git.erxes.io"),
            host: s("registry.git.erxes.io"),
            repository: s("foo/bar"),
            tag: s("1.6.1"),
            digest: s("sha256:4afff550708506c5b8b7384ad10d401a02b29ed587cb2730cb02753095b5178d"),
            actor: s("foo"),
            time: at("2018-10-11T13:53:21.859222576Z"),
            ..Occurrence::new(kinds::ARTIFACT_PUSHED, "d83e8796-7ba5-46ad-b239-d88473e21b2b", "push")
        };
        assert_eq!(events(body), (vec![want], 0));
    }

    #[test]
    fn gitlab_spec_sample() {
        let body = fixture!("gitlab/push.gitlab-container-registry-notifications-spec.json");
        let want = Occurrence {
            source: s("http://registry.test:5000"),
            host: s("registry.test:5000"),
            repository: s("root/test"),
            tag: s("latest"),
            digest: s("sha256:af06af3514c44a964d3b905b498cf6493db8f1cde7c10e078213a89c87308ba0"),
            actor: s("root"),
            time: at("2023-01-25T14:45:54.17327+11:00"),
            ..Occurrence::new(kinds::ARTIFACT_PUSHED, "a582a0f3-e620-43e6-8e98-ff850fc9d984", "push")
        };
        assert_eq!(events(body), (vec![want.clone()], 0));
        // The `gitlab` dialect is the same reader.
        let input = Input::new("gl", MediaType::Json, body.as_bytes());
        assert_eq!((GITLAB.normalize)(&input).unwrap(), Normalized::Events(vec![want]));
    }

    #[test]
    fn deletes_name_a_digest_a_tag_or_the_repository() {
        let fragment: Value =
            serde_json::from_str(fixture!("distribution/event-fragment.delete-target.json")).unwrap();
        let mut entry = json!({
            "id": "del-1", "timestamp": "2024-05-01T10:00:00Z", "action": "delete",
            "request": {"host": "registry.example.test", "method": "DELETE"}, "actor": {"name": "ops"}
        });
        entry["target"] = fragment["target"].clone();
        let body = json!({ "events": [entry] }).to_string();
        let want = Occurrence {
            host: s("registry.example.test"),
            repository: s("library/test"),
            digest: s("sha256:d89e1bee20d9cb344674e213b581f14fbd8e70274ecf9d10c514bab78a307845"),
            actor: s("ops"),
            time: at("2024-05-01T10:00:00Z"),
            ..Occurrence::new(kinds::ARTIFACT_DELETED, "del-1", "delete")
        };
        assert_eq!(events(&body), (vec![want.clone()], 0));

        let body = r#"{"events":[{"id":"t","action":"delete","target":{"repository":"a/b","tag":"v1"}},
            {"id":"r","action":"delete","target":{"repository":"a/b"}}]}"#;
        let (evs, _) = events(body);
        let got: Vec<_> = evs.iter().map(|o| (o.id.as_str(), o.kind, o.tag.as_deref())).collect();
        assert_eq!(got, [("t", kinds::ARTIFACT_DELETED, Some("v1")), ("r", kinds::REPOSITORY_DELETED, None)]);
    }

    #[test]
    fn mixed_pull_and_push_fan_out_with_stable_distinct_ids() {
        let body = r#"{"events":[
            {"id":"e","action":"pull","target":{"mediaType":"application/vnd.oci.image.index.v1+json",
             "repository":"a/b","url":"https://r.example/v2/a/b/manifests/v1"}},
            {"id":"e","action":"push","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json",
             "repository":"a/b","url":"https://r.example/v2/a/b/manifests/v2"}},
            {"action":"pull","target":{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","repository":"a/b"}},
            {"action":"pull","target":{"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","repository":"a/b"}},
            {"action":"mount","target":{"repository":"a/b","fromRepository":"c/d"}}]}"#;
        let base = digest_id(ENDPOINT, body.as_bytes());
        let (evs, skipped) = events(body);
        let got: Vec<_> = evs.iter().map(|o| (o.id.clone(), o.kind, o.tag.clone())).collect();
        assert_eq!(
            got,
            [
                ("e#0".to_owned(), kinds::ARTIFACT_PULLED, s("v1")),
                ("e#1".to_owned(), kinds::ARTIFACT_PUSHED, s("v2")),
                (format!("{base}#3"), kinds::ARTIFACT_PULLED, None),
            ]
        );
        assert_eq!(skipped, 2);
        assert_eq!(events(body).0, evs, "a retry yields the same ids");
    }

    #[test]
    fn gitlab_rename_updates_the_repository_and_unknown_actions_are_unmapped() {
        let body = r#"{"events":[{"id":"r1","action":"rename","timestamp":"2024-10-31T00:00:00Z",
            "target":{"repository":"group/old","rename":{"type":"name","from":"old","to":"new"}},
            "actor":{"name":"root","user_type":"personal_access_token"}}]}"#;
        let (evs, _) = events(body);
        assert_eq!(
            (evs[0].kind, evs[0].repository.as_deref()),
            (kinds::REPOSITORY_UPDATED, Some("group/old"))
        );

        let body = r#"{"events":[{"id":"x","action":"quarantine","target":{"repository":"a/b","digest":"sha256:x"}}]}"#;
        assert_eq!(run(body).normalized.unwrap(), Normalized::Unmapped { origtype: "quarantine".into() });
        // Only blobs: acknowledged, nothing published.
        let body =
            r#"{"events":[{"id":"x","action":"push","target":{"url":"http://r/v2/a/blobs/sha256:1"}}]}"#;
        assert_eq!(events(body), (vec![], 1));
    }

    #[test]
    fn other_payloads_are_errors() {
        let err = |body: &str| run(body).normalized.unwrap_err();
        let harbor = r#"{"type":"PUSH_ARTIFACT","occur_at":1,"event_data":{"resources":[]}}"#;
        assert!(matches!(err(harbor), DialectError::Missing("events")));
        let msr = r#"{"type":"TAG_PUSH","contents":{}}"#;
        assert!(matches!(err(msr), DialectError::Missing("events")));
        assert!(matches!(err(r#"[{"action":"push"}]"#), DialectError::InvalidJson(_)));
        assert!(matches!(err(r#"{"events":{}}"#), DialectError::InvalidJson(_)));
        assert!(matches!(err(r#"{"events":[]}"#), DialectError::Invalid { field: "events", .. }));
        assert!(matches!(err(r#"{"events":["push"]}"#), DialectError::InvalidJson(_)));
        assert!(matches!(err(r#"{"events":[{"target":{}}]}"#), DialectError::Missing("events[].action")));
        assert!(matches!(err(r#"{"events":[{"action":"push"}]}"#), DialectError::Missing("events[].target")));
        let bad_time = r#"{"events":[{"action":"push","timestamp":"now","target":{"repository":"a"}}]}"#;
        assert!(matches!(err(bad_time), DialectError::Invalid { field: "events[].timestamp", .. }));
    }

    #[test]
    fn the_event_bound_counts_manifests_before_building() {
        let entry = r#"{"action":"push","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","repository":"a"}}"#;
        let layer = r#"{"action":"push","target":{"mediaType":"application/vnd.oci.image.layer.v1.tar","repository":"a"}}"#;
        let body = format!(r#"{{"events":[{entry},{entry},{entry},{layer},{layer}]}}"#);
        let bounds = Bounds { max_events: 2, ..Bounds::default() };
        let r = run_with(ENDPOINT, &body, bounds);
        assert!(matches!(r.normalized, Err(DialectError::TooManyEvents { count: 3, max: 2 })));
        let body = format!(r#"{{"events":[{entry},{entry},{layer},{layer},{layer}]}}"#);
        assert!(
            matches!(run_with(ENDPOINT, &body, bounds).normalized, Ok(Normalized::Events(e)) if e.len() == 2)
        );
    }

    #[test]
    fn digests_are_validated() {
        assert!(is_digest(FEA8));
        assert!(is_digest(&format!("sha512:{}", "a".repeat(128))));
        for bad in ["sha256:0123456789abcdef0", "sha256:", "md5:abc", &FEA8.to_uppercase(), "latest"] {
            assert!(!is_digest(bad), "{bad}");
        }
    }
}
