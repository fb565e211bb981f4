//! Google Artifact Registry notifications through the real HTTP stack: Pub/Sub push bodies
//! (wrapped and unwrapped), the token in the push endpoint's query string.

use base64::Engine;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::{assert_event, assert_matches, json_files, post_refused_then_accepted, Credential};

const GAR_TOKEN: &str = "gar-test-token";
const PATH: &str = "/webhooks/gar?token=gar-test-token";
const JSON: (&str, &str) = ("content-type", "application/json");
const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

async fn app() -> TestApp {
    spawn_app_with(Options::default().with("REGBRIDGE_GAR_TOKENS", GAR_TOKEN)).await
}

type Case =
    (&'static str, Option<(&'static str, &'static str)>, &'static str, &'static str, Option<&'static str>);

/// (fixture under `other/gar/`, its message id and publish time if the body carries them (a
/// wrapped message), the host, repository and tag of its references). Every digest in them is a
/// truncated placeholder (`sha256:6ec128e26cd5...`): not published as one.
#[rustfmt::skip]
fn cases() -> Vec<Case> {
    let hello = "my-project/my-repo/hello-world";
    vec![
        ("INSERT.digest-only.gar-docs.json", None, "us-west1-docker.pkg.dev", hello, None),
        ("INSERT.with-tag.gar-docs.json", None, "us-west1-docker.pkg.dev", hello, Some("1.1")),
        ("INSERT.with-tag.image-hooks-testdata.json", None, "gcr.io", "mynamespace/repository", Some("latest")),
        ("converted/INSERT.flux-recv-gcr_payload.message-data-decoded.json", None, "us.gcr.io", "am/am.kebab.api", Some("test")),
        ("converted/pubsub-push.INSERT.flux-recv-gcr_payload.fixed.json", Some(("981636256311680", "2020-01-30T04:18:04.805Z")),
         "us.gcr.io", "am/am.kebab.api", Some("test")),
    ]
}

/// An `INSERT`: unwrapped without metadata headers, it has no id but the body's digest and no time.
fn expected(
    body: &[u8],
    message: Option<(&str, &str)>,
    host: &str,
    repository: &str,
    tag: Option<&str>,
) -> Value {
    let subject = tag.map_or(repository.to_owned(), |t| format!("{repository}:{t}"));
    let time = message.map(|m| m.1);
    let mut e = json!({
        "specversion": "1.0",
        "id": message.map_or_else(|| digest_id("gar", body), |m| m.0.to_owned()),
        "type": "dev.regbridge.artifact.pushed.v1",
        "source": format!("https://{host}"),
        "subject": subject,
        "datacontenttype": "application/json",
        "registry": "gar",
        "origtype": "INSERT",
        "partitionkey": repository,
        "data": {
            "registry": "gar", "host": host, "repository": repository, "tag": tag, "digest": null,
            // Without a tag or a real digest there is nothing to pull by.
            "image": tag.map(|_| format!("{host}/{subject}")),
            "platform": { "os": null, "architecture": null }, "actor": null, "occurred_at": time, "scan": null,
            "original": serde_json::from_slice::<Value>(body).unwrap(),
        }
    });
    if let Some(t) = time {
        e["time"] = t.into();
    }
    e
}

#[actix_rt::test]
async fn every_fixture_normalizes_attribute_by_attribute() {
    let app = app().await;
    let cases = cases();
    let token = Credential::Query("token", GAR_TOKEN.into());
    for (i, &(file, message, host, repository, tag)) in cases.iter().enumerate() {
        let body = fixture(&format!("other/gar/{file}"));
        let reply =
            post_refused_then_accepted(&app, file, "/webhooks/gar", &[JSON], &token, "nope", &body).await;
        assert_eq!(reply.status, 200, "{file}: {:?}", reply.body);
        let events = app.events();
        assert_eq!(events.len(), i + 1, "{file}");
        let want = expected(&body, message, host, repository, tag);
        let actual = &events[i];
        std::panic::catch_unwind(|| assert_event(actual, &want))
            .unwrap_or_else(|_| panic!("{file} does not normalize as expected:\n{actual:#}"));
        assert_eq!(reply.body["events"][0]["id"], want["id"], "{file}");
    }

    // Google's generic push sample is a well-formed Pub/Sub message, but no notification.
    let file = "pubsub-push.generic.functions-framework-nodejs-docs.json";
    let generic = fixture(&format!("other/gar/{file}"));
    let reply =
        post_refused_then_accepted(&app, file, "/webhooks/gar", &[JSON], &token, "nope", &generic).await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    assert_eq!(reply.body["reason"], "unmapped_type");
    assert_eq!(reply.body["origtype"], "google.cloud.pubsub.topic.v1.messagePublished");
    // flux-recv's capture as published has a stray closing brace.
    let stray = fixture("other/gar/pubsub-push.INSERT.flux-recv-gcr_payload.invalid-json.txt");
    let reply = app.post(PATH, &[JSON], stray).await;
    assert_eq!((reply.status, reply.body["reason"].as_str()), (400, Some("invalid_json")));
    assert_eq!(app.events().len(), cases.len(), "nothing more was published");

    for name in json_files("other/gar").into_iter().filter(|n| !n.contains("generic")) {
        assert!(cases.iter().any(|c| c.0 == name), "fixture {name} has no test case");
    }
}

#[actix_rt::test]
async fn a_wrapped_delete_keeps_its_message_id_across_redeliveries() {
    let app = app().await;
    let note = format!(
        r#"{{"action":"DELETE","digest":"europe-west4-docker.pkg.dev/acme/images/api@{DIGEST}","tag":"europe-west4-docker.pkg.dev/acme/images/api:1.4"}}"#
    );
    let body = json!({
        "message": { "data": base64::engine::general_purpose::STANDARD.encode(&note), "attributes": {},
                     "messageId": "13052946442356", "publishTime": "2024-05-01T10:00:00.5Z" },
        "subscription": "projects/acme/subscriptions/regbridge",
    })
    .to_string();
    let first = app.post(PATH, &[JSON], body.clone()).await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    // Pub/Sub redelivers the same message when it saw no 2xx; with push authentication on, it
    // also sends its own OIDC token in `Authorization`, which the query token outranks.
    let again =
        app.post(PATH, &[JSON, ("authorization", "Bearer eyJhbGciOiJSUzI1NiIs.e30.c2ln")], body).await;
    assert_eq!(again.status, 200, "{:?}", again.body);
    let events = app.events();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["id"], events[1]["id"]);
    assert_matches(
        &events[0],
        &json!({
            "id": "13052946442356", "type": "dev.regbridge.artifact.deleted.v1", "origtype": "DELETE",
            "source": "https://europe-west4-docker.pkg.dev", "subject": "acme/images/api:1.4",
            "time": "2024-05-01T10:00:00.500Z",
            "data": { "host": "europe-west4-docker.pkg.dev", "repository": "acme/images/api", "tag": "1.4",
                      "digest": DIGEST, "image": "europe-west4-docker.pkg.dev/acme/images/api:1.4" },
        }),
    );
}

#[actix_rt::test]
async fn an_unwrapped_push_takes_the_metadata_headers() {
    let app = app().await;
    let body = fixture("other/gar/INSERT.with-tag.gar-docs.json");
    let headers = [
        JSON,
        ("x-goog-pubsub-message-id", "8001"),
        ("x-goog-pubsub-publish-time", "2024-05-01T10:00:00Z"),
        ("x-goog-pubsub-subscription-name", "projects/p/subscriptions/s"),
    ];
    let reply = app.post(PATH, &headers, body).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let ev = app.events().pop().unwrap();
    assert_matches(
        &ev,
        &json!({ "id": "8001", "time": "2024-05-01T10:00:00Z", "subject": "my-project/my-repo/hello-world:1.1" }),
    );
}

#[actix_rt::test]
async fn a_wrong_or_missing_token_is_refused_and_publishes_nothing() {
    let app = app().await;
    let body = fixture("other/gar/converted/pubsub-push.INSERT.flux-recv-gcr_payload.fixed.json");
    for (path, reason) in [
        ("/webhooks/gar?token=nope", "invalid_credential"),
        ("/webhooks/gar", "missing_credential"),
        ("/webhooks/gar?tok=gar-test-token", "missing_credential"),
    ] {
        let reply = app.post(path, &[JSON], body.clone()).await;
        assert_eq!((reply.status, reply.body["reason"].as_str()), (401, Some(reason)), "{path}");
    }
    // Another registry's payload, even with the right token, is not a notification.
    let harbor = fixture("harbor/push_artifact.default.json");
    let reply = app.post(PATH, &[JSON], harbor).await;
    assert_eq!((reply.status, reply.body["reason"].as_str()), (400, Some("missing_field")));
    assert!(app.events().is_empty());
}
