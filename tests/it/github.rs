//! Every GitHub Packages fixture through the real HTTP stack, signed the way GitHub signs
//! (`X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`), computed here independently.

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::helpers::*;
use crate::{assert_event, assert_not_an_artifact, json_files, post_refused_then_accepted, Credential};

const SECRET: &str = "github-webhook-secret";
const D3DA: &str = "sha256:3da1996a8115d7616457760d9920b815241d0a03b34cf5f04e9a0e9d8de37498";
const D7D3: &str = "sha256:7d3848ba2f2e7f69bebb4b576e5fad0379b64a0b1512aee6ad0ec9e7c6319fed";

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn github_app() -> TestApp {
    // Two active secrets (rotation): either signs.
    spawn_app_with(Options::default().with("REGBRIDGE_GITHUB_SECRETS", &format!("previous-secret,{SECRET}")))
        .await
}

async fn post(app: &TestApp, event: &str, delivery: &str, body: &[u8], signature: Option<&str>) -> Reply {
    let signed = sign(SECRET, body);
    let mut headers = vec![
        ("content-type", "application/json"),
        ("user-agent", "GitHub-Hookshot/044aadd"),
        ("x-github-event", event),
        ("x-github-delivery", delivery),
        ("x-github-hook-id", "292430182"),
    ];
    match signature {
        Some("") => {}
        Some(sig) => headers.push(("x-hub-signature-256", sig)),
        None => headers.push(("x-hub-signature-256", &signed)),
    }
    app.post("/webhooks/github", &headers, body.to_vec()).await
}

#[test]
fn the_test_signer_reproduces_githubs_documented_vector() {
    // docs.github.com, "Validating webhook deliveries": secret "It's a Secret to Everybody",
    // payload "Hello, World!".
    assert_eq!(
        sign("It's a Secret to Everybody", b"Hello, World!"),
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    );
}

/// The hidden `registry_package` octokit example is the `package` one under another key.
fn registry_package_variant() -> Vec<u8> {
    let text =
        String::from_utf8(fixture("other/github/package.published.docker.octokit-webhooks.json")).unwrap();
    text.replacen("\"package\":", "\"registry_package\":", 1).into_bytes()
}

type Case = (&'static str, Vec<u8>, &'static str, &'static str, Option<Value>);

/// (what, body, `X-GitHub-Event`, origtype, the expected event without what every case shares;
/// `None`: acknowledged as no artifact, nothing published).
#[rustfmt::skip]
fn cases() -> Vec<Case> {
    let octokit = json!({
        "type": "dev.regbridge.artifact.pushed.v1", "source": "https://ghcr.io",
        "subject": format!("codertocat/hello-world-npm@{D3DA}"), "time": "2019-05-09T23:28:29Z",
        "partitionkey": "codertocat/hello-world-npm",
        "data": { "host": "ghcr.io", "repository": "codertocat/hello-world-npm", "tag": null, "digest": D3DA,
                  "image": format!("ghcr.io/codertocat/hello-world-npm@{D3DA}"),
                  "platform": { "os": null, "architecture": null }, "actor": "Codertocat",
                  "occurred_at": "2019-05-09T23:28:29Z", "scan": null } });
    vec![
        ("other/github/package.published.docker.octokit-webhooks.json",
         fixture("other/github/package.published.docker.octokit-webhooks.json"), "package", "package.published",
         Some(octokit.clone())),
        ("registry_package variant of the octokit example", registry_package_variant(), "registry_package",
         "registry_package.published", Some(octokit)),
        // Not a container: acknowledged, counted, not published.
        ("other/github/package.published.npm.octokit-webhooks.json",
         fixture("other/github/package.published.npm.octokit-webhooks.json"), "package", "package.published", None),
        ("other/keel-testdata/github.fakeGithubPackageWebhook.json",
         fixture("other/keel-testdata/github.fakeGithubPackageWebhook.json"), "registry_package", "registry_package.published", Some(json!({
            "type": "dev.regbridge.artifact.pushed.v1", "source": "https://ghcr.io", "subject": "dingggu/server:1.2.3",
            // `package_version.updated_at`.
            "time": "2019-11-01T05:30:31Z", "partitionkey": "dingggu/server",
            "data": { "host": "ghcr.io", "repository": "dingggu/server", "tag": "1.2.3", "digest": null,
                      "image": "ghcr.io/dingggu/server:1.2.3", "platform": { "os": null, "architecture": null },
                      "actor": "DingGGu", "occurred_at": "2019-11-01T05:30:31Z", "scan": null } }))),
        ("other/keel-testdata/github.fakeGithubContainerRegistryWebhook.json",
         fixture("other/keel-testdata/github.fakeGithubContainerRegistryWebhook.json"), "package_v2", "package_v2.create", Some(json!({
            // Every time in it is Go's zero time: no `time`.
            "type": "dev.regbridge.artifact.pushed.v1", "source": "https://ghcr.io",
            "subject": "utaitebox/utaitebox-server:3.2.1", "partitionkey": "utaitebox/utaitebox-server",
            "data": { "host": "ghcr.io", "repository": "utaitebox/utaitebox-server", "tag": "3.2.1", "digest": D7D3,
                      "image": "ghcr.io/utaitebox/utaitebox-server:3.2.1", "platform": { "os": null, "architecture": null },
                      "actor": "DingGGu", "occurred_at": null, "scan": null } }))),
    ]
}

#[actix_rt::test]
async fn every_container_fixture_normalizes_attribute_by_attribute() {
    let app = github_app().await;
    let cases = cases();
    let mut published = 0;
    for (i, (file, body, event, origtype, want)) in cases.iter().enumerate() {
        let delivery = format!("6b1a2c3d-0000-11ef-8000-00000000000{i}");
        let headers = [
            ("content-type", "application/json"),
            ("user-agent", "GitHub-Hookshot/044aadd"),
            ("x-github-event", event),
            ("x-github-delivery", &delivery),
            ("x-github-hook-id", "292430182"),
        ];
        let signature = Credential::Header("x-hub-signature-256", sign(SECRET, body));
        let wrong = sign("not-the-secret", body);
        let reply =
            post_refused_then_accepted(&app, file, "/webhooks/github", &headers, &signature, &wrong, body)
                .await;
        let Some(want) = want else {
            assert_not_an_artifact(&app, file, &reply, published);
            continue;
        };
        assert_eq!(reply.status, 200, "{file}: {:?}", reply.body);
        assert_eq!(reply.body["events"][0]["id"], delivery.as_str(), "{file}");
        let events = app.events();
        published += 1;
        assert_eq!(events.len(), published, "{file}");
        let mut want = want.clone();
        want["specversion"] = "1.0".into();
        want["id"] = delivery.as_str().into();
        want["datacontenttype"] = "application/json".into();
        want["registry"] = "github".into();
        want["origtype"] = (*origtype).into();
        want["data"]["registry"] = "github".into();
        want["data"]["original"] = serde_json::from_slice(body).unwrap();
        let actual = &events[published - 1];
        std::panic::catch_unwind(|| assert_event(actual, &want))
            .unwrap_or_else(|_| panic!("{file} does not normalize as expected:\n{actual:#}"));
    }
    // Every GitHub fixture has its case.
    for name in json_files("other/github") {
        let name = format!("other/github/{name}");
        assert!(cases.iter().any(|c| c.0 == name), "fixture {name} has no test case");
    }
}

#[actix_rt::test]
async fn ping_is_answered_and_other_events_are_unmapped() {
    let app = github_app().await;
    let ping = br#"{"zen":"Keep it logically awesome.","hook_id":292430182,"hook":{"type":"Organization","id":292430182,"events":["package","registry_package"],"active":true}}"#;
    let reply = post(&app, "ping", "b2c3d4e5-0000-11ef-8000-000000000001", ping, None).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        reply.body,
        json!({ "status": "pong", "zen": "Keep it logically awesome.", "hook_id": 292430182 })
    );
    let push = br#"{"ref":"refs/heads/main","before":"0000","after":"1111","sender":{"login":"octocat"}}"#;
    let reply = post(&app, "push", "b2c3d4e5-0000-11ef-8000-000000000002", push, None).await;
    assert_eq!(reply.status, 202, "{:?}", reply.body);
    assert_eq!(reply.body["reason"], "unmapped_type");
    assert_eq!(reply.body["origtype"], "push");
    assert!(app.events().is_empty());
}

#[actix_rt::test]
async fn a_redelivery_keeps_the_id() {
    let app = github_app().await;
    let body = fixture("other/keel-testdata/github.fakeGithubPackageWebhook.json");
    let delivery = "c3d4e5f6-0000-11ef-8000-000000000001";
    let first = post(&app, "registry_package", delivery, &body, None).await;
    let again = post(&app, "registry_package", delivery, &body, None).await;
    assert_eq!((first.status, again.status), (200, 200));
    assert_eq!(first.body["events"], again.body["events"]);
    let events = app.events();
    assert_eq!((events[0]["id"].as_str(), events[1]["id"].as_str()), (Some(delivery), Some(delivery)));
}

#[actix_rt::test]
async fn wrong_or_missing_signatures_are_refused_and_publish_nothing() {
    let app = github_app().await;
    let body = fixture("other/github/package.published.docker.octokit-webhooks.json");
    let delivery = "d4e5f6a7-0000-11ef-8000-000000000001";
    let wrong_key = sign("not-the-secret", &body);
    let bare_hex = sign(SECRET, &body).trim_start_matches("sha256=").to_owned();
    let other_body = sign(SECRET, b"{}");
    for (what, sig) in [
        ("wrong key", wrong_key.as_str()),
        ("no sha256= prefix", bare_hex.as_str()),
        ("another body's signature", other_body.as_str()),
        ("garbage", "sha256=BOGUS"),
        ("missing", ""),
    ] {
        let reply = post(&app, "package", delivery, &body, Some(sig)).await;
        assert_eq!(reply.status, 401, "{what}: {:?}", reply.body);
        let reason = if sig.is_empty() { "missing_signature" } else { "invalid_signature" };
        assert_eq!(reply.body["reason"], reason, "{what}");
    }
    // The body altered after signing.
    let signed = sign(SECRET, &body);
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    let reply = post(&app, "package", delivery, &tampered, Some(&signed)).await;
    assert_eq!(reply.status, 401);
    assert!(app.events().is_empty());
}
