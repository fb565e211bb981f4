//! Every JFrog Artifactory docker fixture through the real HTTP stack, authenticated each way
//! `X-JFrog-Event-Auth` is used in the wild: the secret itself, hex HMAC-SHA256 of the body, and
//! `sha1=` + hex HMAC-SHA1 of the body (computed here independently).

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha1::Sha1;
use sha2::Sha256;

use crate::helpers::*;
use crate::{assert_event, json_files, post_refused_then_accepted, Credential};

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

/// One docker event: `jpd_origin` (the source, and the host images are pulled from),
/// `<repo_key>/<image_name>`, `tag`, the digest, the one platform of `platforms` as
/// `(os, architecture)`, and `source` without `jfrog/`. JFrog says nothing about when: no `time`.
struct Docker {
    kind: &'static str,
    origin: Option<&'static str>,
    repository: &'static str,
    tag: &'static str,
    digest: Option<String>,
    platform: (Option<&'static str>, Option<&'static str>),
    actor: Option<&'static str>,
}

fn expected(d: &Docker) -> Value {
    let host = d.origin.map(|o| o.trim_start_matches("https://"));
    let subject = format!("{}:{}", d.repository, d.tag);
    json!({
        "type": format!("dev.regbridge.artifact.{}.v1", d.kind),
        "source": d.origin.unwrap_or("urn:regbridge:endpoint:jfrog"),
        "subject": subject, "partitionkey": d.repository,
        "data": { "host": host, "repository": d.repository, "tag": d.tag, "digest": d.digest,
                  "image": host.map(|h| format!("{h}/{subject}")),
                  "platform": { "os": d.platform.0, "architecture": d.platform.1 },
                  "actor": d.actor, "occurred_at": null, "scan": null } })
}

/// JFrog's documented placeholders (Telegraf's mocks, the flattened doc samples): swapped
/// platform values are read as named, "sample_checksum" is no digest, no instance is named.
fn placeholders(kind: &'static str) -> Value {
    expected(&Docker {
        kind,
        origin: None,
        repository: "sample_repo/sample_arch",
        tag: "sample_image",
        digest: None,
        platform: (Some("sample_tag"), Some("sample_os")),
        actor: None,
    })
}

/// The hidden promoted mock: Telegraf's deleted one with another event type.
fn promoted_mock() -> Vec<u8> {
    let text = String::from_utf8(fixture("other/jfrog/docker.deleted.telegraf-mock.json")).unwrap();
    text.replace("\"deleted\"", "\"promoted\"").into_bytes()
}

#[rustfmt::skip]
fn cases() -> Vec<(&'static str, Vec<u8>, &'static str, Value)> {
    let f = |p: &str| fixture(&format!("other/{p}"));
    let ubuntu = || Docker {
        kind: "pushed", origin: None, repository: "docker-remote-cache/library/ubuntu", tag: "latest",
        digest: Some(UBUNTU.into()), platform: (None, None), actor: None,
    };
    vec![
        ("jfrog/docker.pushed.telegraf-mock.json", f("jfrog/docker.pushed.telegraf-mock.json"), "docker.pushed", placeholders("pushed")),
        ("jfrog/docker.deleted.telegraf-mock.json", f("jfrog/docker.deleted.telegraf-mock.json"), "docker.deleted", placeholders("deleted")),
        ("docker.promoted mock", promoted_mock(), "docker.promoted", placeholders("promoted")),
        ("jfrog/converted/docker.deleted.jfrog-docs-domain-docker-flattened.json",
         f("jfrog/converted/docker.deleted.jfrog-docs-domain-docker-flattened.json"), "docker.deleted", placeholders("deleted")),
        // A manifest list of five platforms: no one platform.
        ("jfrog/converted/docker.pushed.jfrog-docs-domain-docker-flattened.json",
         f("jfrog/converted/docker.pushed.jfrog-docs-domain-docker-flattened.json"), "docker.pushed", expected(&ubuntu())),
        ("keel-testdata/jfrog.fakeJfrogWebhook.json", f("keel-testdata/jfrog.fakeJfrogWebhook.json"), "docker.pushed",
         expected(&Docker { origin: Some("https://example.jfrog.io"), actor: Some("user@example.com"), ..ubuntu() })),
        ("synthetic/jfrog.docker-pushed.json", f("synthetic/jfrog.docker-pushed.json"), "docker.pushed", expected(&Docker {
            kind: "pushed", origin: Some("https://acme.jfrog.io"), repository: "docker-local/acme/app", tag: "1.0",
            digest: Some(format!("sha256:{}", "b".repeat(64))), platform: (Some("linux"), Some("amd64")),
            actor: Some("acme"),
        })),
    ]
}

#[actix_rt::test]
async fn every_fixture_normalizes_attribute_by_attribute_whichever_way_it_authenticates() {
    let app = jfrog_app().await;
    let cases = cases();
    for (i, (file, body, origtype, want)) in cases.iter().enumerate() {
        let secret = Credential::Header("x-jfrog-event-auth", auth(i, body));
        let wrong = hmac_sha256("not-the-secret", body);
        let headers = [("content-type", "application/json")];
        let reply =
            post_refused_then_accepted(&app, file, "/webhooks/jfrog", &headers, &secret, &wrong, body).await;
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
        std::panic::catch_unwind(|| assert_event(actual, &want))
            .unwrap_or_else(|_| panic!("{file} does not normalize as expected:\n{actual:#}"));
    }
    // Each fixture in each of the three forms: the same event id (no vendor id; the body's digest).
    for (file, body, _, _) in &cases {
        for i in 0..3 {
            let reply = post(&app, body, Some(&auth(i, body))).await;
            assert_eq!(reply.status, 200, "{file} form {i}");
            assert_eq!(reply.body["events"][0]["id"], digest_id("jfrog", body));
        }
    }
    for name in json_files("other/jfrog") {
        let name = format!("jfrog/{name}");
        assert!(cases.iter().any(|(f, ..)| *f == name), "fixture {name} has no test case");
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
