//! Every ACR fixture (native webhooks, Event Grid in both schemas, the validation handshake)
//! through the real HTTP stack, with the custom `Authorization` header the webhook is set up with.

use serde_json::{json, Value};

use crate::helpers::*;
use crate::{assert_event, assert_matches, json_files, post_refused_then_accepted, Credential};

const AUTH: &str = "Bearer acr-test-token";
const JSON: &str = "application/json";
const BATCH: &str = "application/cloudevents-batch+json";
const STRUCTURED: &str = "application/cloudevents+json";

const HELLO_WORLD: &str = "sha256:80f0d5c8786bb9e621a45ece0db56d11cdc624ad20da9fe62e9d25490f331d7d";
const ACI_HELLOWORLD: &str = "sha256:213bbc182920ab41e18edc2001e06abcca6735d87782d9cef68abd83941cf0e5";
const MYCHART: &str = "sha256:7f060075264b5ba7c14c23672698152ae6a3ebac1c47916e4efe19cd624d5fab";

/// What a fixture's one event must carry.
#[derive(Clone)]
struct Want {
    id: &'static str,
    kind: &'static str,
    origtype: &'static str,
    host: Option<&'static str>,
    repository: &'static str,
    tag: Option<&'static str>,
    digest: Option<&'static str>,
    time: &'static str,
}

fn expected(w: &Want, original: &Value) -> Value {
    let subject = match (w.tag, w.digest) {
        (Some(t), _) => format!("{}:{t}", w.repository),
        (None, Some(d)) => format!("{}@{d}", w.repository),
        (None, None) => w.repository.to_owned(),
    };
    let source = w.host.map_or("urn:regbridge:endpoint:acr".to_owned(), |h| format!("https://{h}"));
    json!({
        "specversion": "1.0",
        "id": w.id,
        "type": format!("dev.regbridge.{}.v1", w.kind),
        "source": source,
        "subject": subject,
        "time": w.time,
        "datacontenttype": "application/json",
        "registry": "acr",
        "origtype": w.origtype,
        "partitionkey": w.repository,
        "data": {
            "registry": "acr",
            "host": w.host,
            "repository": w.repository,
            "tag": w.tag,
            "digest": w.digest,
            // Pullable only by a tag or a digest.
            "image": w.host.filter(|_| w.tag.is_some() || w.digest.is_some()).map(|h| format!("{h}/{subject}")),
            "platform": { "os": null, "architecture": null },
            "actor": null,
            "occurred_at": w.time,
            "scan": null,
            "original": original,
        }
    })
}

#[rustfmt::skip]
fn cases() -> Vec<(&'static str, Want)> {
    let push = Want {
        id: "cb8c3971-9adc-488b-xxxx-43cbb4974ff5", kind: "artifact.pushed", origtype: "push",
        host: Some("myregistry.azurecr.io"), repository: "hello-world", tag: Some("v1"),
        // The current docs redact the digest: not one to pull by.
        digest: None, time: "2023-11-17T16:52:01.343145347Z",
    };
    let delete = Want {
        id: "afc359ce-df7f-4e32-xxxx-1ff8aa80927b", kind: "artifact.deleted", origtype: "delete", tag: None,
        time: "2023-11-17T16:54:53.657764628Z", ..push.clone()
    };
    let chart = Want {
        id: "6356e9e0-627f-4fed-xxxx-d9059b5143ac", kind: "chart.uploaded", origtype: "chart_push", host: None,
        repository: "repo/wordpress", tag: Some("5.4.0"), digest: None, time: "2023-03-05T23:45:31.261426700Z",
    };
    let image_pushed = Want {
        id: "831e1650-001e-001b-66ab-eeb76e069631", kind: "artifact.pushed", origtype: "ImagePushed",
        host: Some("demo.azurecr.io"), repository: "aci-helloworld", tag: Some("v1"), digest: Some(ACI_HELLOWORLD),
        time: "2018-04-25T21:39:47.276585742Z",
    };
    let image_deleted = Want {
        id: "f06e3921-301f-42ec-b368-212f7d5354bd", kind: "artifact.deleted", origtype: "ImageDeleted", tag: None,
        time: "2018-04-26T17:56:00.996603117Z", ..image_pushed.clone()
    };
    let chart_pushed = Want {
        id: "ea3a9c28-5b17-40f6-a500-3f02b6829277", kind: "chart.uploaded",
        origtype: "Microsoft.ContainerRegistry.ChartPushed", host: None, repository: "repo/mychart",
        tag: Some("1.0.0"), digest: Some(MYCHART), time: "2019-03-12T22:16:31.008749600Z",
    };
    vec![
        ("acr/push.acr-webhook-reference.json", push.clone()),
        ("keel-testdata/azure.fakeAzureWebhook.json", Want {
            id: "cb8c3971-9adc-488b-bdd8-43cbb4974ff5", digest: Some(HELLO_WORLD),
            time: "2017-11-17T16:52:01.343145347Z", ..push.clone()
        }),
        ("acr/push.jenkins-dockerhub-notification-plugin.json", Want {
            id: "52ba983c-67d6-11e8-8c71-4a0006ae5a20",
            digest: Some("sha256:f5233545e43561214ca4891fd1157e1c3c563316ed8e237750d59bde73361e77"),
            time: "2018-06-04T09:04:00Z", ..push
        }),
        ("acr/delete.acr-webhook-reference.json", delete.clone()),
        ("acr/delete.acr-webhook-reference-2017-unredacted.json", Want {
            id: "afc359ce-df7f-4e32-bdde-1ff8aa80927b", digest: Some(HELLO_WORLD),
            time: "2017-11-17T16:54:53.657764628Z", ..delete
        }),
        ("acr/chart_push.acr-webhook-reference.json", chart.clone()),
        ("acr/chart_delete.acr-webhook-reference.json", Want {
            id: "338a3ef7-ad68-4128-xxxx-fdd3af8e8f67", kind: "chart.deleted", origtype: "chart_delete",
            time: "2023-03-06T00:10:48.127075400Z", ..chart
        }),
        ("acr/ImagePushed.eventgrid-schema.azure-docs.json", image_pushed.clone()),
        ("acr/ImagePushed.cloudevents-schema.azure-docs.json", image_pushed),
        ("acr/ImageDeleted.eventgrid-schema.azure-docs.json", image_deleted.clone()),
        ("acr/ImageDeleted.cloudevents-schema.azure-docs.json", image_deleted),
        ("acr/ChartPushed.eventgrid-schema.azure-docs.json", chart_pushed.clone()),
        ("acr/ChartPushed.cloudevents-schema.azure-docs.json", chart_pushed.clone()),
        // Its `eventTime` is malformed (`019-03-12…`); the registry's `timestamp` is what counts.
        ("acr/ChartDeleted.eventgrid-schema.azure-docs.json", Want {
            id: "39136b3a-1a7e-416f-a09e-5c85d5402fca", kind: "chart.deleted",
            origtype: "Microsoft.ContainerRegistry.ChartDeleted", time: "2019-03-12T22:42:08.378377500Z",
            ..chart_pushed
        }),
        ("synthetic/acr.eventgrid-cloudevents.image-pushed.json", Want {
            id: "00000000-0000-4000-8000-00000000aaaa", kind: "artifact.pushed",
            origtype: "Microsoft.ContainerRegistry.ImagePushed", host: Some("myreg.azurecr.io"), repository: "app",
            tag: Some("1.0"), digest: Some("sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"),
            time: "2025-06-01T12:00:00Z",
        }),
    ]
}

/// Posts `body` (refused first without the `Authorization` header and with a wrong one) and checks
/// its one event against `want`.
async fn post_one(app: &TestApp, what: &str, content_type: &str, body: Vec<u8>, want: &Want) {
    let before = app.events().len();
    let headers = [("content-type", content_type)];
    let auth = Credential::Header("authorization", AUTH.into());
    let reply =
        post_refused_then_accepted(app, what, "/webhooks/acr", &headers, &auth, "Bearer nope", &body).await;
    assert_eq!(reply.status, 200, "{what}: {:?}", reply.body);
    let events = app.events();
    assert_eq!(events.len(), before + 1, "{what}");
    let want = expected(want, &serde_json::from_slice(&body).unwrap());
    std::panic::catch_unwind(|| assert_event(&events[before], &want))
        .unwrap_or_else(|_| panic!("{what} does not normalize as expected:\n{:#}", events[before]));
}

#[actix_rt::test]
async fn every_fixture_normalizes_attribute_by_attribute() {
    let app = spawn_app_with(Options::default().with("REGBRIDGE_ACR_AUTH", AUTH)).await;
    let cases = cases();
    for (file, want) in &cases {
        let body = fixture(&format!("other/{file}"));
        if file.contains("cloudevents") {
            // Event Grid batches CloudEvents; unbatched, each comes alone in structured mode.
            post_one(&app, file, BATCH, body.clone(), want).await;
            let entry: Value = serde_json::from_slice::<Value>(&body).unwrap()[0].take();
            post_one(&app, file, STRUCTURED, entry.to_string().into_bytes(), want).await;
        } else {
            post_one(&app, file, JSON, body, want).await;
        }
    }
    for name in json_files("other/acr").into_iter().filter(|n| !n.contains("Subscription")) {
        let name = format!("acr/{name}");
        assert!(cases.iter().any(|(f, _)| *f == name), "fixture {name} has no test case");
    }
}

#[actix_rt::test]
async fn event_grid_subscription_validation_is_answered_and_publishes_nothing() {
    let app = spawn_app_with(Options::default().with("REGBRIDGE_ACR_AUTH", AUTH)).await;
    let body = fixture("other/acr/SubscriptionValidationEvent.eventgrid-schema.azure-docs.json");
    let headers =
        [("content-type", JSON), ("authorization", AUTH), ("aeg-event-type", "SubscriptionValidation")];
    let reply = app.post("/webhooks/acr", &headers, body).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.body,
        fixture_json("other/acr/SubscriptionValidationResponse.response-body.azure-docs.json")
    );
    assert!(app.events().is_empty());
}

#[actix_rt::test]
async fn a_batch_fans_out_each_event_with_its_own_id_and_entry() {
    let app = spawn_app_with(Options::default().with("REGBRIDGE_ACR_AUTH", AUTH)).await;
    let pushed: Value = fixture_json("other/acr/ImagePushed.eventgrid-schema.azure-docs.json")[0].clone();
    let deleted: Value = fixture_json("other/acr/ImageDeleted.eventgrid-schema.azure-docs.json")[0].clone();
    let body = json!([pushed, deleted]).to_string();
    let reply = app.post("/webhooks/acr", &[("content-type", JSON), ("authorization", AUTH)], body).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let events = app.events();
    assert_eq!(events.len(), 2);
    assert_matches(
        &events[0],
        &json!({"id": pushed["id"], "type": "dev.regbridge.artifact.pushed.v1",
        "subject": "aci-helloworld:v1", "data": {"original": pushed}}),
    );
    assert_matches(
        &events[1],
        &json!({"id": deleted["id"], "type": "dev.regbridge.artifact.deleted.v1",
        "subject": format!("aci-helloworld@{ACI_HELLOWORLD}"), "data": {"original": deleted}}),
    );
}

#[actix_rt::test]
async fn wrong_or_missing_credentials_are_refused_and_publish_nothing() {
    let app = spawn_app_with(Options::default().with("REGBRIDGE_ACR_AUTH", AUTH)).await;
    let body = fixture("other/acr/push.acr-webhook-reference.json");
    let wrong =
        app.post("/webhooks/acr", &[("content-type", JSON), ("authorization", "Bearer nope")], body.clone());
    assert_eq!(wrong.await.status, 401);
    assert_eq!(app.post("/webhooks/acr", &[("content-type", JSON)], body.clone()).await.status, 401);
    let batch = fixture("other/acr/ImagePushed.cloudevents-schema.azure-docs.json");
    assert_eq!(app.post("/webhooks/acr", &[("content-type", BATCH)], batch).await.status, 401);
    let validation = fixture("other/acr/SubscriptionValidationEvent.eventgrid-schema.azure-docs.json");
    assert_eq!(app.post("/webhooks/acr", &[("content-type", JSON)], validation).await.status, 401);
    assert!(app.events().is_empty());
}

#[actix_rt::test]
async fn unknown_types_are_ignored_and_other_vendors_payloads_refused() {
    let app = spawn_app_with(Options::default().with("REGBRIDGE_ACR_AUTH", AUTH)).await;
    let headers = [("content-type", JSON), ("authorization", AUTH)];
    let quarantine = r#"{"id":"q1","timestamp":"2024-01-01T00:00:00Z","action":"quarantine","target":{}}"#;
    let reply = app.post("/webhooks/acr", &headers, quarantine).await;
    assert_eq!((reply.status, &reply.body["reason"]), (202, &json!("unmapped_type")));
    let deleted = r#"[{"id":"d1","eventType":"Microsoft.EventGrid.SubscriptionDeletedEvent","data":{}}]"#;
    assert_eq!(app.post("/webhooks/acr", &headers, deleted).await.status, 202);
    for file in [
        "harbor/push_artifact.default.json",
        "harbor/push_artifact.cloudevents.fixed.json",
        "msr/tag_push.dtr-2.4-docs.json",
    ] {
        let reply = app.post("/webhooks/acr", &headers, fixture(file)).await;
        assert_eq!(reply.status, 400, "{file}: {:?}", reply.body);
    }
    assert!(app.events().is_empty());
}
