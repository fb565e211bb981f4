//! Every Nexus Repository fixture through the real HTTP stack, signed the way Nexus signs
//! (`X-Nexus-Webhook-Signature: <hex HMAC-SHA1 of the body>`): the published flux-recv vector
//! byte for byte, and signatures computed here independently.

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha1::Sha1;

use crate::helpers::*;
use crate::{assert_event, assert_not_an_artifact, json_files, post_refused_then_accepted, Credential};

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

/// A docker component event: Nexus names no host (`host`, `image` null, the endpoint's `source`);
/// `initiator` before `/` is the actor.
fn component(
    id: &str,
    verb: &str,
    action: &str,
    repository: &str,
    tag: &str,
    actor: Option<&str>,
    time: &str,
) -> Value {
    json!({
        "specversion": "1.0", "id": id, "type": format!("dev.regbridge.artifact.{verb}.v1"),
        "source": "urn:regbridge:endpoint:nexus", "subject": format!("{repository}:{tag}"), "time": time,
        "datacontenttype": "application/json", "partitionkey": repository,
        "registry": "nexus", "origtype": format!("rm:repository:component.{action}"),
        "data": { "registry": "nexus", "host": null, "repository": repository, "tag": tag, "digest": null,
                  "image": null, "platform": { "os": null, "architecture": null }, "actor": actor,
                  "occurred_at": time, "scan": null } })
}

type Case = (&'static str, &'static str, &'static str, Option<&'static str>, Option<Value>);

/// (fixture under `other/nexus/`, the secret that signs it, `X-Nexus-Webhook-Id`,
/// `X-Nexus-Webhook-Delivery`, the expected event without `data.original`; `None`: acknowledged
/// as no artifact, nothing published).
#[rustfmt::skip]
fn cases() -> Vec<Case> {
    let updated = fixture("other/nexus/component.UPDATED.docker.ibdm-test.json");
    vec![
        ("component.CREATED.docker.flux-recv.json", FLUX_KEY, "rm:repository:component", Some(FLUX_DELIVERY),
         Some(component(FLUX_DELIVERY, "pushed", "CREATED", "app1/alpine", "3.4", Some("admin"), "2020-04-05T21:49:44.219Z"))),
        // ibdm's deliveries carry no delivery id: the body's digest is the id.
        ("component.UPDATED.docker.ibdm-test.json", IBDM_SECRET, "rm:repository:component", None,
         Some(component(&digest_id("nexus", &updated), "pushed", "UPDATED", "my-image", "1.0.0", None, "2025-03-01T12:00:00Z"))),
        // Sonatype's documented npm asset: acknowledged, counted, not published.
        ("asset.CREATED.npm.sonatype-docs.json", FLUX_KEY, "rm:repository:asset", Some("7f4a6dde-5c68-4999-bcc0-a62f3fb8ae48"), None),
    ]
}

#[actix_rt::test]
async fn every_fixture_normalizes_attribute_by_attribute() {
    let app = nexus_app().await;
    let cases = cases();
    let mut published = 0;
    for (file, secret, hook, delivery, want) in &cases {
        let body = fixture(&format!("other/nexus/{file}"));
        let mut headers = vec![
            ("content-type", "application/json; charset=UTF-8"),
            ("user-agent", "Nexus/3.22.0-02 (OSS)"),
            ("x-nexus-webhook-id", *hook),
        ];
        headers.extend(delivery.map(|d| ("x-nexus-webhook-delivery", d)));
        let signature = Credential::Header("x-nexus-webhook-signature", hmac_sha1(secret, &body));
        let wrong = hmac_sha1("not-the-secret", &body);
        let reply =
            post_refused_then_accepted(&app, file, "/webhooks/nexus", &headers, &signature, &wrong, &body)
                .await;
        let Some(want) = want else {
            assert_not_an_artifact(&app, file, &reply, published);
            continue;
        };
        assert_eq!(reply.status, 200, "{file}: {:?}", reply.body);
        let events = app.events();
        published += 1;
        assert_eq!(events.len(), published, "{file}");
        let mut want = want.clone();
        want["data"]["original"] = serde_json::from_slice(&body).unwrap();
        let actual = &events[published - 1];
        std::panic::catch_unwind(|| assert_event(actual, &want))
            .unwrap_or_else(|_| panic!("{file} does not normalize as expected:\n{actual:#}"));
    }
    for name in json_files("other/nexus") {
        assert!(cases.iter().any(|c| c.0 == name), "fixture {name} has no test case");
    }
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
    let mut want = cases()[0].4.clone().unwrap();
    want["data"]["original"] = serde_json::from_slice(&body).unwrap();
    assert_event(&events[0], &want);
}

#[actix_rt::test]
async fn updated_and_deleted_components() {
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
        let time = "2025-03-01T12:00:00Z";
        let mut want = component(&digest_id("nexus", body), verb, action, "my-image", "1.0.0", None, time);
        want["data"]["original"] = serde_json::from_slice(body).unwrap();
        assert_event(&events[i], &want);
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
