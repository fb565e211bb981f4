//! Every JFrog Artifactory docker fixture through the real HTTP stack, authenticated each way
//! `X-JFrog-Event-Auth` is used in the wild: the secret itself, hex HMAC-SHA256 of the body, and
//! `sha1=` + hex HMAC-SHA1 of the body (computed here independently).

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha1::Sha1;
use sha2::Sha256;

use crate::assert_matches;
use crate::helpers::*;

const SECRET: &str = "jfrog-event-secret";
const UBUNTU: &str = "sha256:35c4a2c15539c6c1e4e5fa4e554dac323ad0107d8eb5c582d6ff386b383b7dce";

fn hmac_sha256(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn hmac_sha1(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha1={}", hex::encode(mac.finalize().into_bytes()))
}

#[test]
fn the_test_signers_reproduce_rfc_2202_and_4231_vectors() {
    // RFC 2202 test case 2 (HMAC-SHA1) and RFC 4231 test case 2 (HMAC-SHA256): key "Jefe".
    let data = b"what do ya want for nothing?";
    assert_eq!(hmac_sha1("Jefe", data), "sha1=effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    assert_eq!(hmac_sha256("Jefe", data), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

/// The three ways of authenticating, taken in turn.
fn auth(i: usize, body: &[u8]) -> String {
    match i % 3 {
        0 => SECRET.to_owned(),
        1 => hmac_sha256(SECRET, body),
        _ => hmac_sha1(SECRET, body),
    }
}

async fn jfrog_app() -> TestApp {
    spawn_app_with(Options::default().with("REGBRIDGE_JFROG_SECRETS", SECRET)).await
}

async fn post(app: &TestApp, body: &[u8], auth: Option<&str>) -> Reply {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(a) = auth {
        headers.push(("x-jfrog-event-auth", a));
    }
    app.post("/webhooks/jfrog", &headers, body.to_vec()).await
}

/// JFrog's documented placeholders (Telegraf's mocks, the flattened doc samples): swapped
/// platform values are read as named, "sample_checksum" is no digest, no instance is named.
fn placeholders(kind: &str) -> Value {
    json!({
        "type": format!("dev.regbridge.artifact.{kind}.v1"), "source": "urn:regbridge:endpoint:jfrog",
        "subject": "sample_repo/sample_arch:sample_image", "partitionkey": "sample_repo/sample_arch",
        "data": { "host": null, "repository": "sample_repo/sample_arch", "tag": "sample_image", "digest": null,
                  "image": null, "platform": { "os": "sample_tag", "architecture": "sample_os" },
                  "actor": null, "occurred_at": null, "scan": null } })
}

/// The hidden promoted mock: Telegraf's deleted one with another event type.
fn promoted_mock() -> Vec<u8> {
    let text = String::from_utf8(fixture("other/jfrog/docker.deleted.telegraf-mock.json")).unwrap();
    text.replace("\"deleted\"", "\"promoted\"").into_bytes()
}

#[rustfmt::skip]
fn cases() -> Vec<(&'static str, Vec<u8>, &'static str, Value)> {
    let f = |p: &str| fixture(&format!("other/{p}"));
    vec![
        ("jfrog/docker.pushed.telegraf-mock.json", f("jfrog/docker.pushed.telegraf-mock.json"), "docker.pushed", placeholders("pushed")),
        ("jfrog/docker.deleted.telegraf-mock.json", f("jfrog/docker.deleted.telegraf-mock.json"), "docker.deleted", placeholders("deleted")),
        ("docker.promoted mock", promoted_mock(), "docker.promoted", placeholders("promoted")),
        ("jfrog/converted/docker.deleted.jfrog-docs-domain-docker-flattened.json",
         f("jfrog/converted/docker.deleted.jfrog-docs-domain-docker-flattened.json"), "docker.deleted", placeholders("deleted")),
        ("jfrog/converted/docker.pushed.jfrog-docs-domain-docker-flattened.json",
         f("jfrog/converted/docker.pushed.jfrog-docs-domain-docker-flattened.json"), "docker.pushed", json!({
            "type": "dev.regbridge.artifact.pushed.v1", "source": "urn:regbridge:endpoint:jfrog",
            "subject": "docker-remote-cache/library/ubuntu:latest", "partitionkey": "docker-remote-cache/library/ubuntu",
            "data": { "host": null, "repository": "docker-remote-cache/library/ubuntu", "tag": "latest", "digest": UBUNTU,
                      "image": null, "platform": { "os": null, "architecture": null }, "actor": null } })),
        ("keel-testdata/jfrog.fakeJfrogWebhook.json", f("keel-testdata/jfrog.fakeJfrogWebhook.json"), "docker.pushed", json!({
            "type": "dev.regbridge.artifact.pushed.v1", "source": "https://example.jfrog.io",
            "subject": "docker-remote-cache/library/ubuntu:latest",
            "data": { "host": "example.jfrog.io", "repository": "docker-remote-cache/library/ubuntu", "tag": "latest",
                      "digest": UBUNTU, "image": "example.jfrog.io/docker-remote-cache/library/ubuntu:latest",
                      "platform": { "os": null, "architecture": null }, "actor": "user@example.com", "occurred_at": null } })),
        ("synthetic/jfrog.docker-pushed.json", f("synthetic/jfrog.docker-pushed.json"), "docker.pushed", json!({
            "type": "dev.regbridge.artifact.pushed.v1", "source": "https://acme.jfrog.io",
            "subject": "docker-local/acme/app:1.0", "partitionkey": "docker-local/acme/app",
            "data": { "host": "acme.jfrog.io", "repository": "docker-local/acme/app", "tag": "1.0",
                      "digest": format!("sha256:{}", "b".repeat(64)), "image": "acme.jfrog.io/docker-local/acme/app:1.0",
                      "platform": { "os": "linux", "architecture": "amd64" }, "actor": "acme" } })),
    ]
}

#[actix_rt::test]
async fn every_fixture_normalizes_attribute_by_attribute_whichever_way_it_authenticates() {
    let app = jfrog_app().await;
    let cases = cases();
    for (i, (file, body, origtype, want)) in cases.iter().enumerate() {
        let reply = post(&app, body, Some(&auth(i, body))).await;
        assert_eq!(reply.status, 200, "{file}: {:?}", reply.body);
        let events = app.events();
        assert_eq!(events.len(), i + 1, "{file}");
        let mut want = want.clone();
        want["specversion"] = "1.0".into();
        want["id"] = digest_id("jfrog", body).into();
        want["datacontenttype"] = "application/json".into();
        want["registry"] = "jfrog".into();
        want["origtype"] = (*origtype).into();
        want["data"]["registry"] = "jfrog".into();
        want["data"]["original"] = serde_json::from_slice(body).unwrap();
        let actual = &events[i];
        std::panic::catch_unwind(|| assert_matches(actual, &want))
            .unwrap_or_else(|_| panic!("{file} does not normalize as expected:\n{actual:#}"));
        assert!(actual.get("time").is_none(), "{file}: JFrog payloads carry no time");
    }
    // Each fixture in each of the three forms: the same event id (no vendor id; the body's digest).
    for (file, body, _, _) in &cases[..1] {
        for i in 0..3 {
            let reply = post(&app, body, Some(&auth(i, body))).await;
            assert_eq!(reply.status, 200, "{file} form {i}");
            assert_eq!(reply.body["events"][0]["id"], digest_id("jfrog", body));
        }
    }
    for dir in ["jfrog", "jfrog/converted"] {
        let path = format!("{}/tests/fixtures/other/{dir}", env!("CARGO_MANIFEST_DIR"));
        for entry in std::fs::read_dir(path).unwrap() {
            let name = format!("{dir}/{}", entry.unwrap().file_name().into_string().unwrap());
            if name.ends_with(".json") {
                assert!(cases.iter().any(|(f, ..)| *f == name), "fixture {name} has no test case");
            }
        }
    }
}

#[actix_rt::test]
async fn other_domains_are_acknowledged_as_unmapped() {
    let app = jfrog_app().await;
    let body = br#"{"domain":"artifact","event_type":"deployed","data":{"repo_key":"generic-local","path":"a/b.txt","name":"b.txt","sha256":"x","size":0},"subscription_key":"k","jpd_origin":"https://acme.jfrog.io","source":"jfrog/admin"}"#;
    let reply = post(&app, body, Some(&hmac_sha256(SECRET, body))).await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    assert_eq!(reply.body["origtype"], "artifact.deployed");
    let reply = post(&app, br#"{"type":"PUSH_ARTIFACT","event_data":{}}"#, Some(SECRET)).await;
    assert_eq!(reply.status, 400, "a Harbor body is no JFrog payload: {:?}", reply.body);
    assert!(app.events().is_empty());
}

#[actix_rt::test]
async fn wrong_or_missing_credentials_are_refused_and_publish_nothing() {
    let app = jfrog_app().await;
    let body = fixture("other/keel-testdata/jfrog.fakeJfrogWebhook.json");
    let sha256_wrong_key = hmac_sha256("not-the-secret", &body);
    let sha1_wrong_key = hmac_sha1("not-the-secret", &body);
    let sha256_other_body = hmac_sha256(SECRET, b"{}");
    let sha1_unprefixed = hmac_sha1(SECRET, &body).trim_start_matches("sha1=").to_owned();
    let sha256_prefixed = format!("sha256={}", hmac_sha256(SECRET, &body));
    for (what, value) in [
        ("wrong token", Some("not-the-secret")),
        ("sha256, wrong key", Some(sha256_wrong_key.as_str())),
        ("sha1, wrong key", Some(sha1_wrong_key.as_str())),
        ("sha256 of another body", Some(sha256_other_body.as_str())),
        ("sha1 without its prefix", Some(sha1_unprefixed.as_str())),
        ("sha256 with a prefix JFrog never sends", Some(sha256_prefixed.as_str())),
        ("missing", None),
    ] {
        let reply = post(&app, &body, value).await;
        assert_eq!(reply.status, 401, "{what}: {:?}", reply.body);
        let reason = if value.is_none() { "missing_signature" } else { "invalid_signature" };
        assert_eq!(reply.body["reason"], reason, "{what}");
    }
    assert!(app.events().is_empty());
}
