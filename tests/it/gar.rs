//! Google Artifact Registry notifications through the real HTTP stack: Pub/Sub push bodies
//! (wrapped and unwrapped), the token in the push endpoint's query string.

use base64::Engine;
use serde_json::{json, Value};

use crate::assert_matches;
use crate::helpers::*;

const GAR_TOKEN: &str = "gar-test-token";
const PATH: &str = "/webhooks/gar?token=gar-test-token";
const JSON: (&str, &str) = ("content-type", "application/json");
const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

async fn app() -> TestApp {
    spawn_app_with(Options::default().with("REGBRIDGE_GAR_TOKENS", GAR_TOKEN)).await
}

/// (fixture under `other/gar/`, its message id if the body carries one, the expected event).
#[rustfmt::skip]
fn cases() -> Vec<(&'static str, Option<&'static str>, Value)> {
    let hello = "us-west1-docker.pkg.dev/my-project/my-repo/hello-world";
    vec![
        ("INSERT.digest-only.gar-docs.json", None, json!({
            "type": "dev.regbridge.artifact.pushed.v1", "source": "https://us-west1-docker.pkg.dev",
            "subject": "my-project/my-repo/hello-world", "origtype": "INSERT", "partitionkey": "my-project/my-repo/hello-world",
            // The docs' digest is a truncated placeholder: not published as one.
            "data": { "host": "us-west1-docker.pkg.dev", "repository": "my-project/my-repo/hello-world", "tag": null,
                      "digest": null, "image": null, "platform": { "os": null, "architecture": null },
                      "actor": null, "occurred_at": null, "scan": null } })),
        ("INSERT.with-tag.gar-docs.json", None, json!({
            "type": "dev.regbridge.artifact.pushed.v1", "source": "https://us-west1-docker.pkg.dev",
            "subject": "my-project/my-repo/hello-world:1.1", "origtype": "INSERT",
            "data": { "host": "us-west1-docker.pkg.dev", "repository": "my-project/my-repo/hello-world", "tag": "1.1",
                      "digest": null, "image": format!("{hello}:1.1"), "occurred_at": null } })),
        ("INSERT.with-tag.image-hooks-testdata.json", None, json!({
            "type": "dev.regbridge.artifact.pushed.v1", "source": "https://gcr.io", "subject": "mynamespace/repository:latest",
            "data": { "host": "gcr.io", "repository": "mynamespace/repository", "tag": "latest", "digest": null,
                      "image": "gcr.io/mynamespace/repository:latest" } })),
        ("converted/INSERT.flux-recv-gcr_payload.message-data-decoded.json", None, json!({
            "type": "dev.regbridge.artifact.pushed.v1", "source": "https://us.gcr.io", "subject": "am/am.kebab.api:test",
            "data": { "host": "us.gcr.io", "repository": "am/am.kebab.api", "tag": "test", "digest": null,
                      "image": "us.gcr.io/am/am.kebab.api:test" } })),
        ("converted/pubsub-push.INSERT.flux-recv-gcr_payload.fixed.json", Some("981636256311680"), json!({
            "type": "dev.regbridge.artifact.pushed.v1", "source": "https://us.gcr.io", "subject": "am/am.kebab.api:test",
            "time": "2020-01-30T04:18:04.805Z", "origtype": "INSERT", "partitionkey": "am/am.kebab.api",
            "data": { "host": "us.gcr.io", "repository": "am/am.kebab.api", "tag": "test", "digest": null,
                      "image": "us.gcr.io/am/am.kebab.api:test", "occurred_at": "2020-01-30T04:18:04.805Z" } })),
    ]
}

#[actix_rt::test]
async fn every_fixture_normalizes_attribute_by_attribute() {
    let app = app().await;
    let cases = cases();
    for (i, (file, id, want)) in cases.iter().enumerate() {
        let body = fixture(&format!("other/gar/{file}"));
        let reply = app.post(PATH, &[JSON], body.clone()).await;
        assert_eq!(reply.status, 200, "{file}: {:?}", reply.body);
        let events = app.events();
        assert_eq!(events.len(), i + 1, "{file}");
        let mut want = want.clone();
        want["specversion"] = "1.0".into();
        want["id"] = id.map_or_else(|| digest_id("gar", &body), str::to_owned).into();
        want["datacontenttype"] = "application/json".into();
        want["registry"] = "gar".into();
        want["data"]["registry"] = "gar".into();
        want["data"]["original"] = serde_json::from_slice(&body).unwrap();
        let actual = &events[i];
        std::panic::catch_unwind(|| assert_matches(actual, &want))
            .unwrap_or_else(|_| panic!("{file} does not normalize as expected:\n{actual:#}"));
        assert_eq!(reply.body["events"][0]["id"], want["id"], "{file}");
    }

    // Google's generic push sample is a well-formed Pub/Sub message, but no notification.
    let generic = fixture("other/gar/pubsub-push.generic.functions-framework-nodejs-docs.json");
    let reply = app.post(PATH, &[JSON], generic).await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    assert_eq!(reply.body["reason"], "unmapped_type");
    assert_eq!(reply.body["origtype"], "google.cloud.pubsub.topic.v1.messagePublished");
    // flux-recv's capture as published has a stray closing brace.
    let stray = fixture("other/gar/pubsub-push.INSERT.flux-recv-gcr_payload.invalid-json.txt");
    let reply = app.post(PATH, &[JSON], stray).await;
    assert_eq!((reply.status, reply.body["reason"].as_str()), (400, Some("invalid_json")));
    assert_eq!(app.events().len(), cases.len(), "nothing more was published");

    for dir in ["", "converted/"] {
        let path = format!("{}/tests/fixtures/other/gar/{dir}", env!("CARGO_MANIFEST_DIR"));
        for entry in std::fs::read_dir(path).unwrap() {
            let name = format!("{dir}{}", entry.unwrap().file_name().into_string().unwrap());
            if name.ends_with(".json") && !name.contains("generic") {
                assert!(cases.iter().any(|(f, _, _)| *f == name), "fixture {name} has no test case");
            }
        }
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
