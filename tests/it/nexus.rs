//! Every Nexus Repository fixture through the real HTTP stack, signed the way Nexus signs
//! (`X-Nexus-Webhook-Signature: <hex HMAC-SHA1 of the body>`): the published flux-recv vector
//! byte for byte, and signatures computed here independently.

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha1::Sha1;

use crate::assert_matches;
use crate::helpers::*;

/// fluxcd/flux-recv test/fixtures/nexus_key (a public test key).
const FLUX_KEY: &str = "gk0qp4u98xy0vntojv81i8zcjr4zw7xd6c4ugzad";
const FLUX_SIGNATURE: &str = "d06eea380d4631e8c1180b689d10d9ba83ab68f6";
const FLUX_DELIVERY: &str = "bd9e6aef-0e27-4570-980d-f639c49ab5ed";
/// mia-platform/ibdm's test secret.
const IBDM_SECRET: &str = "mysecret";

fn hmac_sha1(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

async fn nexus_app() -> TestApp {
    spawn_app_with(Options::default().with("REGBRIDGE_NEXUS_SECRETS", &format!("{FLUX_KEY},{IBDM_SECRET}")))
        .await
}

async fn post(app: &TestApp, body: &[u8], headers: &[(&str, &str)]) -> Reply {
    let mut all =
        vec![("content-type", "application/json; charset=UTF-8"), ("user-agent", "Nexus/3.22.0-02 (OSS)")];
    all.extend_from_slice(headers);
    app.post("/webhooks/nexus", &all, body.to_vec()).await
}

#[test]
fn the_test_signer_reproduces_the_published_vectors() {
    let flux = fixture("other/nexus/component.CREATED.docker.flux-recv.json");
    assert_eq!(hmac_sha1(FLUX_KEY, &flux), FLUX_SIGNATURE);
    let ibdm = fixture("other/nexus/component.UPDATED.docker.ibdm-test.json");
    assert_eq!(hmac_sha1(IBDM_SECRET, &ibdm), "7c7a109bc1227f8eea5682c6aee76e27fd5edbc0");
    // RFC 2202 test case 2.
    assert_eq!(
        hmac_sha1("Jefe", b"what do ya want for nothing?"),
        "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
    );
}

#[actix_rt::test]
async fn the_signed_flux_recv_vector_verifies_and_its_bogus_signature_does_not() {
    let app = nexus_app().await;
    let body = fixture("other/nexus/component.CREATED.docker.flux-recv.json");
    let vector = |signature: &'static str| {
        [
            ("x-nexus-webhook-id", "rm:repository:component"),
            ("x-nexus-webhook-delivery", FLUX_DELIVERY),
            ("x-nexus-webhook-signature", signature),
        ]
    };
    let reply = post(&app, &body, &vector("BOGUS")).await;
    assert_eq!(reply.status, 401, "{:?}", reply.body);
    assert_eq!(reply.body["reason"], "invalid_signature");
    assert!(app.events().is_empty());

    let reply = post(&app, &body, &vector(FLUX_SIGNATURE)).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body["events"][0]["id"], FLUX_DELIVERY);
    let events = app.events();
    assert_eq!(events.len(), 1);
    let want = json!({
        "specversion": "1.0", "id": FLUX_DELIVERY, "type": "dev.regbridge.artifact.pushed.v1",
        "source": "urn:regbridge:endpoint:nexus", "subject": "app1/alpine:3.4", "time": "2020-04-05T21:49:44.219Z",
        "datacontenttype": "application/json", "partitionkey": "app1/alpine",
        "registry": "nexus", "origtype": "rm:repository:component.CREATED",
        "data": { "registry": "nexus", "host": null, "repository": "app1/alpine", "tag": "3.4", "digest": null,
                  "image": null, "platform": { "os": null, "architecture": null }, "actor": "admin",
                  "occurred_at": "2020-04-05T21:49:44.219Z", "scan": null,
                  "original": serde_json::from_slice::<Value>(&body).unwrap() } });
    assert_matches(&events[0], &want);
}

#[actix_rt::test]
async fn updated_deleted_and_skipped_entries() {
    let app = nexus_app().await;
    let updated = fixture("other/nexus/component.UPDATED.docker.ibdm-test.json");
    // The hidden ibdm DELETED body (TestWebhookHandlerValidSignatureKnownEventDeleted).
    let deleted = br#"{"timestamp":"2025-03-01T12:00:00Z","action":"DELETED","repositoryName":"docker-hosted","component":{"id":"08909bf0","componentId":"comp-del-id","format":"docker","name":"my-image","group":"","version":"1.0.0"}}"#.to_vec();
    for (i, (body, verb, action)) in
        [(&updated, "pushed", "UPDATED"), (&deleted, "deleted", "DELETED")].into_iter().enumerate()
    {
        let sig = hmac_sha1(IBDM_SECRET, body);
        // ibdm's deliveries carry no delivery id: the body's digest is the id.
        let reply = post(
            &app,
            body,
            &[("x-nexus-webhook-id", "rm:repository:component"), ("x-nexus-webhook-signature", &sig)],
        )
        .await;
        assert_eq!(reply.status, 200, "{action}: {:?}", reply.body);
        let events = app.events();
        assert_eq!(events.len(), i + 1);
        let want = json!({
            "id": digest_id("nexus", body), "type": format!("dev.regbridge.artifact.{verb}.v1"),
            "origtype": format!("rm:repository:component.{action}"), "subject": "my-image:1.0.0",
            "time": "2025-03-01T12:00:00Z", "partitionkey": "my-image",
            "data": { "repository": "my-image", "tag": "1.0.0", "digest": null, "image": null, "actor": null,
                      "original": serde_json::from_slice::<Value>(body).unwrap() } });
        assert_matches(&events[i], &want);
    }

    // Sonatype's documented npm asset: acknowledged, counted, not published.
    let npm = fixture("other/nexus/asset.CREATED.npm.sonatype-docs.json");
    let sig = hmac_sha1(FLUX_KEY, &npm);
    let headers = [
        ("x-nexus-webhook-id", "rm:repository:asset"),
        ("x-nexus-webhook-delivery", "7f4a6dde-5c68-4999-bcc0-a62f3fb8ae48"),
        ("x-nexus-webhook-signature", sig.as_str()),
    ];
    let reply = post(&app, &npm, &headers).await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    assert_eq!(reply.body, json!({ "status": "ignored", "reason": "not_an_artifact", "skipped": 1 }));
    assert_eq!(app.events().len(), 2);

    for entry in
        std::fs::read_dir(format!("{}/tests/fixtures/other/nexus", env!("CARGO_MANIFEST_DIR"))).unwrap()
    {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let covered = ["flux-recv", "ibdm-test", "sonatype-docs"].iter().any(|f| name.contains(f));
        assert!(!name.ends_with(".json") || covered, "fixture {name} has no test case");
    }
}

#[actix_rt::test]
async fn wrong_or_missing_signatures_are_refused_and_publish_nothing() {
    let app = nexus_app().await;
    let body = fixture("other/nexus/component.UPDATED.docker.ibdm-test.json");
    let wrong_key = hmac_sha1("not-the-secret", &body);
    let other_body = hmac_sha1(IBDM_SECRET, b"{}");
    let prefixed = format!("sha1={}", hmac_sha1(IBDM_SECRET, &body));
    for (what, sig) in [
        ("wrong key", Some(wrong_key.as_str())),
        ("another body's signature", Some(other_body.as_str())),
        ("a prefix Nexus never sends", Some(prefixed.as_str())),
        ("missing", None),
    ] {
        let mut headers = vec![("x-nexus-webhook-id", "rm:repository:component")];
        headers.extend(sig.map(|s| ("x-nexus-webhook-signature", s)));
        let reply = post(&app, &body, &headers).await;
        assert_eq!(reply.status, 401, "{what}: {:?}", reply.body);
        let reason = if sig.is_none() { "missing_signature" } else { "invalid_signature" };
        assert_eq!(reply.body["reason"], reason, "{what}");
    }
    assert!(app.events().is_empty());
}
