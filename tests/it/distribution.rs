//! Every Distribution (and GitLab registry) fixture through the real HTTP stack, with the static
//! `Authorization` header the registry is configured to send.

use serde_json::{json, Value};

use crate::helpers::*;
use crate::{assert_event, assert_matches, json_files, post_refused_then_accepted, Credential};

const AUTH: &str = "Bearer distribution-test-token";
/// GitLab's documented form: a bare secret, no `Bearer`.
const GITLAB_AUTH: &str = "AUTHORIZATIONEXAMPLETOKEN";
const V2: &str = "application/vnd.docker.distribution.events.v2+json";
const V1: &str = "application/vnd.docker.distribution.events.v1+json";

const FEA8: &str = "sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf";
const ZK: &str = "sha256:55d2be3e073109b6dfa68aa6ffbce9f5441ab8dd451834eaf0e81874a0b1b720";

/// What one published event must carry; `entry` is the envelope index of its own entry (its
/// `data.original` when the envelope holds several).
struct Want {
    id: &'static str,
    kind: &'static str,
    origtype: &'static str,
    source: &'static str,
    host: &'static str,
    repository: &'static str,
    tag: Option<&'static str>,
    digest: Option<&'static str>,
    actor: Option<&'static str>,
    time: &'static str,
    entry: usize,
}

fn expected(registry: &str, w: &Want, original: &Value) -> Value {
    let subject = match (w.tag, w.digest) {
        (Some(t), _) => format!("{}:{t}", w.repository),
        (None, Some(d)) => format!("{}@{d}", w.repository),
        (None, None) => w.repository.to_owned(),
    };
    let events = original["events"].as_array().unwrap();
    let original = if events.len() > 1 { events[w.entry].clone() } else { original.clone() };
    json!({
        "specversion": "1.0",
        "id": w.id,
        "type": format!("dev.regbridge.{}.v1", w.kind),
        "source": w.source,
        "subject": subject,
        "time": w.time,
        "datacontenttype": "application/json",
        "registry": registry,
        "origtype": w.origtype,
        "partitionkey": w.repository,
        "data": {
            "registry": registry,
            "host": w.host,
            "repository": w.repository,
            "tag": w.tag,
            "digest": w.digest,
            "image": format!("{}/{subject}", w.host),
            "platform": { "os": null, "architecture": null },
            "actor": w.actor,
            "occurred_at": w.time,
            "scan": null,
            "original": original,
        }
    })
}

fn push(id: &'static str, host: &'static str, repository: &'static str) -> Want {
    Want {
        id,
        kind: "artifact.pushed",
        origtype: "push",
        source: "",
        host,
        repository,
        tag: None,
        digest: None,
        actor: None,
        time: "",
        entry: 0,
    }
}

#[rustfmt::skip]
fn cases() -> Vec<(&'static str, Vec<Want>)> {
    let test_go = || Want {
        source: "http://example.com", tag: Some("latest"), actor: Some("test-actor"), time: "2006-01-02T15:04:05Z",
        ..push("asdf-asdf-asdf-asdf-0", "example.com", "library/test")
    };
    let zk = || Want {
        source: "http://registry:5000", digest: Some(ZK), time: "2015-10-06T13:00:54.450615408Z",
        ..push("9d9e2ab1-d38e-4f71-8091-2ed699e7a6a5", "registry:5000", "jplock/zookeeper")
    };
    let pull = || Want {
        kind: "artifact.pulled", origtype: "pull", source: "http://192.168.100.227:5000", tag: Some("latest"),
        digest: Some(FEA8), time: "2016-03-09T22:44:26.402973972Z",
        ..push("320678d8-ca14-430f-8bb6-4ca139cd83f7", "192.168.100.227:5000", "hello-world")
    };
    vec![
        ("distribution/envelope.manifest-pull.json", vec![pull()]),
        ("distribution/pull.notifications-md-2020-3space.json", vec![pull()]),
        ("distribution/envelope.push-manifest-and-layers.json", vec![Want {
            source: "https://example.com", digest: Some(FEA8), actor: Some("test-actor"), time: "2006-01-02T15:04:05Z",
            ..push("asdf-asdf-asdf-asdf-0", "example.com", "library/test")
        }]),
        ("distribution/push.event-test-go.json", vec![test_go()]),
        ("distribution/push.event-test-go-schema1-prettyjws.json", vec![test_go()]),
        ("distribution/push.manifest-octet-stream.jenkins-dockerhub-notification-plugin.json", vec![zk()]),
        ("distribution/push.two-repositories.jenkins-dockerhub-notification-plugin.json", vec![zk(), Want {
            id: "154beacd-cd29-4989-bc5e-1a353a776337", repository: "ubuntu", entry: 1,
            digest: Some("sha256:2dbe4abf311d67ec224f926d4b21b9be6f96dfba9be139e6936156a67b75a1ad"),
            time: "2015-10-09T13:25:04.102522145Z", ..zk()
        }]),
        ("distribution/push.blob-and-manifest.jenkins-dockerhub-notification-plugin.json", vec![Want {
            id: "9d9e2ab1-d38e-4f71-8091-2ed699e7a6a5#1", entry: 1, ..zk()
        }]),
        ("keel-testdata/distribution.fakeRegistryNotificationWebhook.json", vec![Want {
            source: "https://registry.git.erxes.io", tag: Some("1.6.1"), actor: Some("foo"),
            digest: Some("sha256:4afff550708506c5b8b7384ad10d401a02b29ed587cb2730cb02753095b5178d"),
            time: "2018-10-11T13:53:21.859222576Z",
            ..push("d83e8796-7ba5-46ad-b239-d88473e21b2b", "registry.git.erxes.io", "foo/bar")
        }]),
    ]
}

#[rustfmt::skip]
fn gitlab_cases() -> Vec<(&'static str, Vec<Want>)> {
    vec![
        ("gitlab/push.gitlab-container-registry-notifications-spec.json", vec![Want {
            source: "http://registry.test:5000", tag: Some("latest"), actor: Some("root"),
            digest: Some("sha256:af06af3514c44a964d3b905b498cf6493db8f1cde7c10e078213a89c87308ba0"),
            time: "2023-01-25T03:45:54.173270Z",
            ..push("a582a0f3-e620-43e6-8e98-ff850fc9d984", "registry.test:5000", "root/test")
        }]),
        ("gitlab/push.gitlab-event-test-go.json", vec![Want {
            source: "http://example.com", tag: Some("latest"), actor: Some("test-actor"), time: "2006-01-02T15:04:05Z",
            ..push("asdf-asdf-asdf-asdf-0", "example.com", "library/test")
        }]),
    ]
}

/// Posts each case (refused first without `auth` and with a wrong one) and checks its events,
/// attribute by attribute.
async fn post_cases(
    app: &TestApp,
    path: &str,
    content_type: &str,
    auth: &str,
    registry: &str,
    cases: &[(&str, Vec<Want>)],
) {
    let auth = Credential::Header("authorization", auth.into());
    for (file, wants) in cases {
        let before = app.events().len();
        let body = fixture(&format!("other/{file}"));
        let headers = [("content-type", content_type)];
        let reply = post_refused_then_accepted(app, file, path, &headers, &auth, "Bearer nope", &body).await;
        assert_eq!(reply.status, 200, "{file}: {:?}", reply.body);
        let events = app.events();
        assert_eq!(events.len(), before + wants.len(), "{file}");
        let original: Value = serde_json::from_slice(&body).unwrap();
        for (actual, want) in events[before..].iter().zip(wants) {
            let want = expected(registry, want, &original);
            std::panic::catch_unwind(|| assert_event(actual, &want))
                .unwrap_or_else(|_| panic!("{file} does not normalize as expected:\n{actual:#}"));
        }
    }
}

#[actix_rt::test]
async fn every_fixture_normalizes_attribute_by_attribute() {
    let app = spawn_app_with(Options::default().with("REGBRIDGE_DISTRIBUTION_AUTH", AUTH)).await;
    let cases = cases();
    post_cases(&app, "/webhooks/distribution", V2, AUTH, "distribution", &cases).await;
    // Every payload fixture of the folder has its case (the delete fragment is not an envelope).
    for name in json_files("other/distribution").into_iter().filter(|n| !n.contains("fragment")) {
        let name = format!("distribution/{name}");
        assert!(cases.iter().any(|(f, _)| *f == name), "fixture {name} has no test case");
    }
}

#[actix_rt::test]
async fn the_docs_http_request_is_accepted_with_its_own_headers() {
    let app = spawn_app_with(Options::default().with("REGBRIDGE_DISTRIBUTION_AUTH", AUTH)).await;
    let request = String::from_utf8(fixture("other/distribution/envelope.push.http-request.txt")).unwrap();
    let (head, body) = request.split_once("\n\n").unwrap();
    // The doc's `Host` repeats the media type (a doc bug) and its token is a placeholder.
    let headers: Vec<(&str, &str)> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(": "))
        .filter(|(k, _)| !k.eq_ignore_ascii_case("host"))
        .map(|(k, v)| if k.eq_ignore_ascii_case("authorization") { (k, AUTH) } else { (k, v) })
        .collect();
    assert_eq!(headers, [("Authorization", AUTH), ("Content-Type", V2)]);
    let reply = app.post("/webhooks/distribution", &headers, body).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let events = app.events();
    assert_eq!(events.len(), 1, "the two layer entries are not published");
    let entry: Value = serde_json::from_str::<Value>(body).unwrap()["events"][0].clone();
    assert_matches(
        &events[0],
        &json!({
            "id": "asdf-asdf-asdf-asdf-0", "type": "dev.regbridge.artifact.pushed.v1", "subject": format!("library/test@{FEA8}"),
            "data": { "image": format!("example.com/library/test@{FEA8}"), "original": entry },
        }),
    );
    let metrics = app.get("/metrics").await.1;
    assert!(
        metrics.lines().any(|l| l.starts_with("regbridge_events_skipped_total{registry=\"distribution\"}")),
        "skipped layers are counted:\n{metrics}"
    );
}

#[actix_rt::test]
async fn wrong_or_missing_credentials_are_refused() {
    let app = spawn_app_with(Options::default().with("REGBRIDGE_DISTRIBUTION_AUTH", AUTH)).await;
    let body = fixture("other/distribution/envelope.manifest-pull.json");
    for headers in [vec![("content-type", V2), ("authorization", "Bearer nope")], vec![("content-type", V2)]]
    {
        let reply = app.post("/webhooks/distribution", &headers, body.clone()).await;
        assert_eq!(reply.status, 401, "{headers:?}: {:?}", reply.body);
    }
    // The static header must match exactly: the bare token is not the configured value.
    let bare = [("content-type", V2), ("authorization", "distribution-test-token")];
    assert_eq!(app.post("/webhooks/distribution", &bare, body).await.status, 401);
    assert!(app.events().is_empty(), "nothing refused is published");
}

#[actix_rt::test]
async fn blob_only_envelopes_are_acknowledged_and_other_payloads_refused() {
    let app = spawn_app_with(Options::default().with("REGBRIDGE_DISTRIBUTION_AUTH", AUTH)).await;
    let headers = [("content-type", V2), ("authorization", AUTH)];
    let blobs = r#"{"events":[{"id":"b1","action":"pull","target":{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip",
        "repository":"a/b","url":"https://r.example/v2/a/b/blobs/sha256:1"}},
        {"id":"b2","action":"mount","target":{"repository":"a/b","fromRepository":"c/d"}}]}"#;
    let reply = app.post("/webhooks/distribution", &headers, blobs).await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    assert_eq!(reply.body["reason"], "not_an_artifact");
    assert_eq!(reply.body["skipped"], 2);
    let unknown = r#"{"events":[{"id":"q","action":"quarantine","target":{"repository":"a/b"}}]}"#;
    let reply = app.post("/webhooks/distribution", &headers, unknown).await;
    assert_eq!((reply.status, &reply.body["reason"]), (202, &json!("unmapped_type")));
    for other in
        [fixture("harbor/push_artifact.default.json"), fixture("other/dockerhub/push.docker-docs.json")]
    {
        let reply = app.post("/webhooks/distribution", &headers, other).await;
        assert_eq!(reply.status, 400, "{:?}", reply.body);
    }
    assert!(app.events().is_empty());

    // A repository delete and a tag delete, as Distribution sends them (no URL, no media type).
    let deletes = r#"{"events":[
        {"id":"d1","timestamp":"2024-05-01T10:00:00Z","action":"delete","target":{"repository":"a/b","tag":"v1"},
         "request":{"host":"registry.example.test","method":"DELETE"},"actor":{"name":"ops"}},
        {"id":"d2","timestamp":"2024-05-01T10:00:01Z","action":"delete","target":{"repository":"a/b"},
         "request":{"host":"registry.example.test","method":"DELETE"},"actor":{"name":"ops"}}]}"#;
    let reply = app.post("/webhooks/distribution", &headers, deletes).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let events = app.events();
    assert_matches(
        &events[0],
        &json!({
            "id": "d1", "type": "dev.regbridge.artifact.deleted.v1", "source": "https://registry.example.test",
            "subject": "a/b:v1", "data": { "host": "registry.example.test", "actor": "ops", "image": "registry.example.test/a/b:v1" },
        }),
    );
    assert_matches(
        &events[1],
        &json!({
            "id": "d2", "type": "dev.regbridge.repository.deleted.v1", "subject": "a/b", "data": { "image": null },
        }),
    );
}

#[actix_rt::test]
async fn gitlab_is_reached_through_a_named_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("regbridge.yaml");
    std::fs::write(
        &config,
        format!("endpoints:\n  gl:\n    dialect: gitlab\n    auth: [\"{GITLAB_AUTH}\"]\n"),
    )
    .unwrap();
    let app = spawn_app_with(Options::default().with("REGBRIDGE_CONFIG", config.to_str().unwrap())).await;
    // GitLab's fork still sends the v1 media type.
    post_cases(&app, "/webhooks/gl", V1, GITLAB_AUTH, "gitlab", &gitlab_cases()).await;
    let headers = [("content-type", V1), ("authorization", GITLAB_AUTH)];

    let body = fixture("other/gitlab/push.gitlab-container-registry-notifications-spec.json");
    let wrong = [("content-type", V1), ("authorization", "Bearer AUTHORIZATIONEXAMPLETOKEN")];
    assert_eq!(app.post("/webhooks/gl", &wrong, body.clone()).await.status, 401);
    assert_eq!(app.post("/webhooks/gl", &[("content-type", V1)], body.clone()).await.status, 401);
    // No built-in `gitlab` endpoint exists.
    assert_eq!(app.post("/webhooks/gitlab", &headers, body).await.status, 404);
    assert_eq!(app.events().len(), 2);
}
