//! CloudEvents senders through the real HTTP stack: Zot in binary and structured mode (with the
//! `Authorization` its HTTP sink sends), Harbor's and ACR's CloudEvents, batches, and the types
//! regbridge does not know (unmapped, or forwarded by a `passthrough` endpoint).

use base64::Engine;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::{assert_event, assert_matches, json_files, post_refused_then_accepted, Credential};

const STRUCTURED: &str = "application/cloudevents+json";
const BATCH: &str = "application/cloudevents-batch+json";
const ZOT_ID: &str = "0b6a1f3e-0000-4000-8000-000000000002";
const ZOT_TIME: &str = "2025-06-01T12:00:00.123456789Z";

/// Zot's HTTP sink with `username`/`password` set sends `Basic base64(user:pass)` (the docs'
/// example credentials).
fn zot_auth() -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("webhook-user:webhook-password"))
}

async fn app() -> TestApp {
    spawn_app_with(Options::default().with("REGBRIDGE_CLOUDEVENTS_AUTH", &zot_auth())).await
}

/// Posts one Zot event in binary mode, as sdk-go sends it.
async fn post_binary(app: &TestApp, path: &str, auth: &str, ty: &str, body: Vec<u8>) -> Reply {
    let headers = [
        ("content-type", "application/json"),
        ("authorization", auth),
        ("ce-specversion", "1.0"),
        ("ce-id", ZOT_ID),
        ("ce-source", "zotregistry.dev"),
        ("ce-type", ty),
        ("ce-time", ZOT_TIME),
    ];
    app.post(path, &headers, body).await
}

fn vuln_scan() -> Value {
    json!({
        "type": "vulnerability", "status": null, "severity": "HIGH", "total": 4, "fixable": 2,
        "summary": { "unknown": 0, "low": 1, "medium": 1, "high": 2, "critical": 0 },
        "scanner": null, "report_id": null, "started_at": null, "completed_at": null,
        "sbom_digest": null, "error": null,
    })
}

/// A Zot event from its default `source` (`zotregistry.dev`), which names no instance: no host, so
/// no pullable `image`, and the endpoint's `source`.
#[allow(clippy::too_many_arguments)]
fn zot(
    id: &str,
    kind: &str,
    ty: &str,
    repository: &str,
    tag: &str,
    digest: Option<&str>,
    actor: Option<&str>,
    time: &str,
    scan: Value,
) -> Value {
    json!({
        "specversion": "1.0", "id": id, "type": format!("dev.regbridge.{kind}.v1"),
        "source": "urn:regbridge:endpoint:cloudevents", "subject": format!("{repository}:{tag}"), "time": time,
        "datacontenttype": "application/json", "registry": "cloudevents", "origtype": ty, "partitionkey": repository,
        "data": { "registry": "cloudevents", "host": null, "repository": repository, "tag": tag, "digest": digest,
                  "image": null, "platform": { "os": null, "architecture": null }, "actor": actor,
                  "occurred_at": time, "scan": scan } })
}

/// (fixture under `other/`, the type it is sent as in binary mode with [`post_binary`]'s headers,
/// `None` for a structured-mode event as the file holds it; the expected event without
/// `data.original`).
#[rustfmt::skip]
fn cases() -> Vec<(&'static str, Option<&'static str>, Value)> {
    let updated = "zotregistry.image.updated";
    let scanned = "zotregistry.image.scanned";
    let golang = format!("sha256:{}", "b".repeat(64));
    vec![
        ("synthetic/zot.image-updated.structured-ce.json", None, zot("0b6a1f3e-0000-4000-8000-000000000001",
            "artifact.pushed", updated, "golang", "latest", Some(&golang), None, "2025-06-01T12:00:00Z", Value::Null)),
        // The docs' `sha256:abc...` is a placeholder, not a digest.
        ("zot/payload-metadata.data-fragment.zot-docs.json", Some(updated), zot(ZOT_ID, "artifact.pushed", updated,
            "space/my-image", "latest", None, Some("john"), ZOT_TIME, Value::Null)),
        ("zot/image.scanned.data-fragment.zot-docs.json", Some(scanned), zot(ZOT_ID, "scan.completed", scanned,
            "space/my-image", "latest", None, None, ZOT_TIME, vuln_scan())),
    ]
}

#[actix_rt::test]
async fn every_zot_fixture_in_structured_or_binary_mode() {
    let app = app().await;
    let cases = cases();
    let auth = Credential::Header("authorization", zot_auth());
    for (i, (file, binary, want)) in cases.iter().enumerate() {
        let body = fixture(&format!("other/{file}"));
        let headers: Vec<(&str, &str)> = match binary {
            None => vec![("content-type", STRUCTURED)],
            Some(ty) => vec![
                ("content-type", "application/json"),
                ("ce-specversion", "1.0"),
                ("ce-id", ZOT_ID),
                ("ce-source", "zotregistry.dev"),
                ("ce-type", ty),
                ("ce-time", ZOT_TIME),
            ],
        };
        let wrong = "Basic d3Jvbmc6d3Jvbmc=";
        let reply =
            post_refused_then_accepted(&app, file, "/webhooks/cloudevents", &headers, &auth, wrong, &body)
                .await;
        assert_eq!(reply.status, 200, "{file}: {:?}", reply.body);
        let events = app.events();
        assert_eq!(events.len(), i + 1, "{file}");
        let data = serde_json::from_slice::<Value>(&body).unwrap();
        let mut want = want.clone();
        // In binary mode, `data.original` is the event in structured mode: its attributes came as
        // headers.
        want["data"]["original"] = match binary {
            None => data,
            Some(ty) => json!({"specversion": "1.0", "id": ZOT_ID, "source": "zotregistry.dev", "type": ty,
                "time": ZOT_TIME, "datacontenttype": "application/json", "data": data}),
        };
        let actual = &events[i];
        std::panic::catch_unwind(|| assert_event(actual, &want))
            .unwrap_or_else(|_| panic!("{file} does not normalize as expected:\n{actual:#}"));
    }
    for dir in ["zot", "synthetic"] {
        for name in
            json_files(&format!("other/{dir}")).into_iter().filter(|n| dir == "zot" || n.contains("zot"))
        {
            let name = format!("{dir}/{name}");
            assert!(cases.iter().any(|c| c.0 == name), "fixture {name} has no test case");
        }
    }
}

#[actix_rt::test]
async fn harbor_and_acr_cloudevents_are_read_as_their_dialects_read_them() {
    let app = app().await;
    let auth = zot_auth();
    let harbor = fixture("harbor/push_artifact.cloudevents.fixed.json");
    let reply = app
        .post("/webhooks/cloudevents", &[("content-type", STRUCTURED), ("authorization", &auth)], harbor)
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let acr = fixture("other/synthetic/acr.eventgrid-cloudevents.image-pushed.json");
    let reply =
        app.post("/webhooks/cloudevents", &[("content-type", BATCH), ("authorization", &auth)], acr).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let events = app.events();
    assert_eq!(events.len(), 2);
    assert_matches(
        &events[0],
        &json!({
            "id": "66e18103-09c1-41f6-982f-37df223f3eeb", "type": "dev.regbridge.artifact.pushed.v1",
            "source": "https://localhost", "subject": "harbor/alpine@sha256:954b378c375d852eb3c63ab88978f640b4348b01c1b3456a024a81536dafbbf4",
            "time": "2023-04-03T06:04:46Z", "registry": "cloudevents", "origtype": "harbor.artifact.pushed",
            "data": { "host": "localhost", "repository": "harbor/alpine", "tag": null, "actor": "harbor-jobservice" }
        }),
    );
    assert_matches(
        &events[1],
        &json!({
            "id": "00000000-0000-4000-8000-00000000aaaa", "type": "dev.regbridge.artifact.pushed.v1",
            "source": "https://myreg.azurecr.io", "subject": "app:1.0", "time": "2025-06-01T12:00:00Z",
            "registry": "cloudevents", "origtype": "Microsoft.ContainerRegistry.ImagePushed",
            "data": { "host": "myreg.azurecr.io", "image": "myreg.azurecr.io/app:1.0" }
        }),
    );
}

#[actix_rt::test]
async fn unknown_types_are_ignored_unless_the_endpoint_passes_them_through() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("regbridge.yaml");
    let yaml = "endpoints:\n  knative:\n    dialect: cloudevents\n    auth: [\"Bearer knative\"]\n    passthrough: true\n";
    std::fs::write(&config, yaml).unwrap();
    let app = spawn_app_with(
        Options::default()
            .with("REGBRIDGE_CLOUDEVENTS_AUTH", &zot_auth())
            .with("REGBRIDGE_CONFIG", config.to_str().unwrap()),
    )
    .await;
    let ping = json!({"specversion": "1.0", "id": "p-1", "source": "/apis/v1/namespaces/default/pingsources/ping",
        "type": "dev.knative.sources.ping", "subject": "ping-1", "time": "2025-01-01T00:00:00Z",
        "datacontenttype": "application/json", "data": {"message": "hello"}});
    let auth = zot_auth();
    let reply = app
        .post(
            "/webhooks/cloudevents",
            &[("content-type", STRUCTURED), ("authorization", &auth)],
            ping.to_string(),
        )
        .await;
    assert_eq!((reply.status, &reply.body["reason"]), (202, &json!("unmapped_type")));
    assert!(app.events().is_empty());

    let reply = app
        .post(
            "/webhooks/knative",
            &[("content-type", STRUCTURED), ("authorization", "Bearer knative")],
            ping.to_string(),
        )
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let events = app.events();
    assert_eq!(events.len(), 1);
    assert_matches(
        &events[0],
        &json!({
            "id": "p-1", "type": "dev.regbridge.cloudevent.forwarded.v1",
            "source": "/apis/v1/namespaces/default/pingsources/ping", "subject": "ping-1",
            "time": "2025-01-01T00:00:00Z", "registry": "cloudevents", "origtype": "dev.knative.sources.ping",
            "partitionkey": "ping-1",
            // The sender's subject is not a repository.
            "data": { "host": null, "repository": null, "tag": null, "digest": null, "image": null,
                      "actor": null, "scan": null, "original": ping }
        }),
    );
    // A Zot type it knows is still normalized there.
    let data = fixture("other/zot/payload-metadata.data-fragment.zot-docs.json");
    let reply =
        post_binary(&app, "/webhooks/knative", "Bearer knative", "zotregistry.image.updated", data).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_matches(
        &app.events()[1],
        &json!({"type": "dev.regbridge.artifact.pushed.v1", "registry": "cloudevents"}),
    );
}

#[actix_rt::test]
async fn wrong_or_missing_credentials_are_refused_and_publish_nothing() {
    let app = app().await;
    let data = fixture("other/zot/payload-metadata.data-fragment.zot-docs.json");
    for auth in ["Basic d3Jvbmc6d3Jvbmc=", "Bearer optional-bearer-token"] {
        let reply =
            post_binary(&app, "/webhooks/cloudevents", auth, "zotregistry.image.updated", data.clone()).await;
        assert_eq!(reply.status, 401, "{auth}");
    }
    let body = fixture("other/synthetic/zot.image-updated.structured-ce.json");
    assert_eq!(app.post("/webhooks/cloudevents", &[("content-type", STRUCTURED)], body).await.status, 401);
    assert!(app.events().is_empty());
}

#[actix_rt::test]
async fn what_is_not_a_cloudevent_is_refused() {
    let app = app().await;
    let auth = zot_auth();
    let json = [("content-type", "application/json"), ("authorization", auth.as_str())];
    // Zot's data alone, without its `ce-*` headers; other vendors' payloads.
    for file in [
        "other/zot/payload-metadata.data-fragment.zot-docs.json",
        "harbor/push_artifact.default.json",
        "other/acr/ImagePushed.eventgrid-schema.azure-docs.json",
        "other/synthetic/dockerhub.push.json",
    ] {
        let reply = app.post("/webhooks/cloudevents", &json, fixture(file)).await;
        assert_eq!((reply.status, &reply.body["reason"]), (400, &json!("missing_field")), "{file}");
    }
    let no_id =
        r#"{"specversion":"1.0","source":"s","type":"zotregistry.image.updated","data":{"name":"a"}}"#;
    assert_eq!(app.post("/webhooks/cloudevents", &json, no_id).await.status, 400);
    assert!(app.events().is_empty());
}
