//! Every Docker Hub fixture through the real HTTP stack, token in the query string (Docker Hub
//! signs nothing and sends no header of its own).

use serde_json::{json, Value};

use crate::helpers::*;
use crate::{assert_event, json_files, post_refused_then_accepted, Credential};

const TOKEN: &str = "dockerhub-test-token";

/// `(fixture, repository, tag, pusher, pushed_at as RFC 3339)`.
#[rustfmt::skip]
const CASES: &[(&str, &str, Option<&str>, &str, &str)] = &[
    ("dockerhub/push.docker-docs.json", "svendowideit/testhook", Some("latest"), "trustedbuilder", "2014-12-03T00:22:41Z"),
    ("dockerhub/push.docker-docs-legacy-with-images.json", "svendowideit/testhook", Some("latest"), "trustedbuilder", "2014-12-03T00:22:41Z"),
    ("dockerhub/push.own-repository.jenkins-dockerhub-notification-plugin.json", "csanchez/jenkins-swarm-slave", None, "csanchez", "2015-04-14T16:15:58Z"),
    ("keel-testdata/dockerhub.fakeRequest.json", "karolisr/keel", Some("0.1.7"), "karolisr", "2017-06-14T19:14:20Z"),
    ("synthetic/dockerhub.push.json", "acme/app", Some("1.0"), "acme-ci", "2024-06-01T12:00:00Z"),
];

fn expected(body: &[u8], repository: &str, tag: Option<&str>, pusher: &str, time: &str) -> Value {
    let subject = tag.map_or(repository.to_owned(), |t| format!("{repository}:{t}"));
    json!({
        "specversion": "1.0",
        "id": digest_id("dockerhub", body),
        "type": "dev.regbridge.artifact.pushed.v1",
        "source": "https://hub.docker.com",
        "subject": subject,
        "time": time,
        "datacontenttype": "application/json",
        "registry": "dockerhub",
        "origtype": "push",
        "partitionkey": repository,
        "data": {
            "registry": "dockerhub",
            "host": "docker.io",
            "repository": repository,
            "tag": tag,
            "digest": null,
            // Without a tag there is nothing to pull by.
            "image": tag.map(|_| format!("docker.io/{subject}")),
            "platform": { "os": null, "architecture": null },
            "actor": pusher,
            "occurred_at": time,
            "scan": null,
            "original": serde_json::from_slice::<Value>(body).unwrap(),
        }
    })
}

async fn app() -> TestApp {
    spawn_app_with(Options::default().with("REGBRIDGE_DOCKERHUB_TOKENS", TOKEN)).await
}

const JSON: (&str, &str) = ("content-type", "application/json");

#[actix_rt::test]
async fn every_fixture_normalizes_attribute_by_attribute() {
    let app = app().await;
    for (i, &(file, repository, tag, pusher, time)) in CASES.iter().enumerate() {
        let body = fixture(&format!("other/{file}"));
        let token = Credential::Query("token", TOKEN.into());
        let reply =
            post_refused_then_accepted(&app, file, "/webhooks/dockerhub", &[JSON], &token, "nope", &body)
                .await;
        assert_eq!(reply.status, 200, "{file}: {:?}", reply.body);
        let events = app.events();
        assert_eq!(events.len(), i + 1, "{file}");
        let want = expected(&body, repository, tag, pusher, time);
        std::panic::catch_unwind(|| assert_event(&events[i], &want))
            .unwrap_or_else(|_| panic!("{file} does not normalize as expected:\n{:#}", events[i]));
    }
    for name in json_files("other/dockerhub") {
        let name = format!("dockerhub/{name}");
        assert!(CASES.iter().any(|c| c.0 == name), "fixture {name} has no test case");
    }
}

#[actix_rt::test]
async fn official_images_pull_from_library() {
    let app = app().await;
    // The shape of the plugin's public-repository payload: no namespace in `repo_name`, no tag.
    let body = br#"{"push_data":{"pushed_at":1429028158,"images":["imagehash1"],"pusher":"tianon"},
        "callback_url":"https://registry.hub.docker.com/_/busybox/hook/x/",
        "repository":{"status":"Active","is_official":true,"repo_name":"busybox","namespace":"library",
        "name":"busybox","repo_url":"https://registry.hub.docker.com/_/busybox/","owner":"library"}}"#;
    let reply = app.post(&format!("/webhooks/dockerhub?token={TOKEN}"), &[JSON], body.to_vec()).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let want = expected(body, "library/busybox", None, "tianon", "2015-04-14T16:15:58Z");
    assert_event(&app.events()[0], &want);
}

#[actix_rt::test]
async fn wrong_or_missing_tokens_are_refused_and_redelivery_keeps_the_id() {
    let app = app().await;
    let body = fixture("other/dockerhub/push.docker-docs.json");
    for path in ["/webhooks/dockerhub?token=nope", "/webhooks/dockerhub"] {
        let reply = app.post(path, &[JSON], body.clone()).await;
        assert_eq!(reply.status, 401, "{path}: {:?}", reply.body);
    }
    assert!(app.events().is_empty(), "nothing refused is published");

    let path = format!("/webhooks/dockerhub?token={TOKEN}");
    let first = app.post(&path, &[JSON], body.clone()).await;
    let again = app.post(&path, &[JSON], body.clone()).await;
    assert_eq!((first.status, again.status), (200, 200));
    let events = app.events();
    assert_eq!(events[0]["id"], events[1]["id"]);

    // Another vendor's payload is not a Docker Hub push.
    for other in [fixture("other/quay/repo_push.quay-docs.json"), fixture("msr/tag_push.dtr-2.4-docs.json")] {
        assert_eq!(app.post(&path, &[JSON], other).await.status, 400);
    }
    assert_eq!(app.events().len(), 2);
}
