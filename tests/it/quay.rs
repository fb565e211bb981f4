//! Every Quay fixture through the real HTTP stack, token in the query string (Quay sends no
//! header of its own; its client certificate is the TLS layer's business).

use serde_json::{json, Value};

use crate::helpers::*;
use crate::{assert_event, assert_matches, json_files, post_refused_then_accepted, Credential};

const TOKEN: &str = "quay-test-token";
const JSON: (&str, &str) = ("content-type", "application/json");

/// One published event: `(type, origtype, repository, tag, actor)`; repository, host and source
/// come from quay.io payload fields when the payload has them.
type Want = (&'static str, &'static str, Option<&'static str>, Option<&'static str>, Option<&'static str>);

const PUSHED: &str = "artifact.pushed";

#[rustfmt::skip]
fn cases() -> Vec<(&'static str, Vec<Want>)> {
    let dg = Some("dgangaia/test");
    let mine = Some("mynamespace/repository");
    vec![
        ("quay/repo_push.quay-docs.json", vec![(PUSHED, "repo_push", dg, Some("latest"), None)]),
        ("quay/repo_push.coreos-quay-docs.json", vec![(PUSHED, "repo_push", mine, Some("latest"), None)]),
        ("keel-testdata/quay.fakeQuayWebhook.json", vec![(PUSHED, "repo_push", mine, Some("1.2.3"), None)]),
        ("synthetic/quay.repo-push.json", vec![(PUSHED, "repo_push", Some("acme/app"), Some("1.0"), None)]),
        ("quay/vulnerability_found.quay-docs.json", vec![("vulnerability.found", "vulnerability_found", Some("dgangaia/repository"), Some("latest"), None)]),
        ("quay/vulnerability_found.coreos-quay-docs.json", vec![("vulnerability.found", "vulnerability_found", mine, Some("latest"), None)]),
        ("quay/converted/build_queued.quay-docs.json", vec![("build.queued", "build_queued", dg, Some("master"), Some("dgangaia"))]),
        ("quay/converted/build_start.quay-docs.json", vec![("build.started", "build_start", dg, Some("master"), Some("dgangaia"))]),
        ("quay/converted/build_success.quay-docs.json", vec![("build.succeeded", "build_success", dg, Some("master"), Some("dgangaia"))]),
        ("quay/converted/build_failure.quay-docs.json", vec![("build.failed", "build_failure", dg, Some("master"), Some("dgangaia"))]),
        // Quay sends a cancellation with exactly a start's fields (see `cancellations_need_a_declaring_endpoint`).
        ("quay/build_cancelled.quay-docs.json", vec![("build.started", "build_start", dg, Some("master"), Some("dgangaia"))]),
        ("quay/converted/build_queued.coreos-quay-docs.json", vec![("build.queued", "build_queued", mine, Some("latest"), Some("fakeauthor"))]),
        ("quay/converted/build_start.coreos-quay-docs.json", vec![("build.started", "build_start", mine, Some("latest"), Some("fakeauthor"))]),
        ("quay/converted/build_failure.coreos-quay-docs.json", vec![("build.failed", "build_failure", mine, Some("latest"), Some("fakeauthor"))]),
        // This old sample has neither `image_id` nor `manifest_digests`: it reads as a start.
        ("quay/converted/build_success.coreos-quay-docs.json", vec![("build.started", "build_start", mine, Some("latest"), Some("fakeauthor"))]),
        // Quay's "Test Notification" extra data, as the files hold it (without the repository fields).
        ("quay/converted/repo_push.quay-get_sample_data-extra_data.json", vec![
            (PUSHED, "repo_push", None, Some("latest"), None), (PUSHED, "repo_push", None, Some("foo"), None)]),
        ("quay/converted/build_start.quay-get_sample_data-extra_data.json", vec![("build.started", "build_start", None, Some("latest"), None)]),
        ("quay/converted/build_success.quay-get_sample_data-extra_data.json", vec![("build.succeeded", "build_success", None, Some("latest"), None)]),
        ("quay/converted/build_cancelled.quay-get_sample_data-extra_data.json", vec![("build.succeeded", "build_success", None, Some("latest"), None)]),
        ("quay/converted/quota_warning.quay-get_sample_data-extra_data.json", vec![("quota.warning", "quota_warning", None, None, None)]),
        ("quay/converted/quota_error.quay-get_sample_data-extra_data.json", vec![("quota.exceeded", "quota_error", None, None, None)]),
        // Acknowledged as unmapped: the three mirror events carry the same `message` alone.
        ("quay/converted/repo_mirror_sync_started.quay-get_sample_data-extra_data.json", vec![]),
        ("quay/converted/repo_mirror_sync_success.quay-get_sample_data-extra_data.json", vec![]),
        ("quay/converted/repo_mirror_sync_failed.quay-get_sample_data-extra_data.json", vec![]),
    ]
}

fn expected(endpoint: &str, body: &[u8], index: usize, total: usize, w: &Want) -> Value {
    let &(kind, origtype, repository, tag, actor) = w;
    let original: Value = serde_json::from_slice(body).unwrap();
    let host = original["docker_url"].as_str().map(|u| u.split('/').next().unwrap().to_owned());
    // The origin of `homepage`.
    let source = original["homepage"].as_str().map_or(format!("urn:regbridge:endpoint:{endpoint}"), |h| {
        let (scheme, rest) = h.split_once("://").unwrap();
        format!("{scheme}://{}", rest.split('/').next().unwrap())
    });
    let subject = repository.map(|r| tag.map_or(r.to_owned(), |t| format!("{r}:{t}")));
    let image = match (&host, &subject, tag) {
        (Some(h), Some(s), Some(_)) => Some(format!("{h}/{s}")),
        _ => None,
    };
    let base = digest_id(endpoint, body);
    let mut original = original;
    if total > 1 {
        original["updated_tags"] = json!([tag]);
    }
    let mut e = json!({
        "specversion": "1.0",
        "id": if total > 1 { format!("{base}#{index}") } else { base },
        "type": format!("dev.regbridge.{kind}.v1"),
        "source": source,
        "datacontenttype": "application/json",
        "registry": "quay",
        "origtype": origtype,
        "partitionkey": repository.map_or(source.clone(), str::to_owned),
        "data": {
            "registry": "quay",
            "host": host,
            "repository": repository,
            "tag": tag,
            "digest": null,
            "image": image,
            "platform": { "os": null, "architecture": null },
            "actor": actor,
            // Quay says nothing about when (and `time` is absent).
            "occurred_at": null,
            "scan": if kind == "vulnerability.found" { vulnerability_scan() } else { Value::Null },
            "original": original,
        }
    });
    if let Some(s) = subject {
        e["subject"] = s.into();
    }
    e
}

/// Both vulnerability samples' one finding: `priority` Critical, `has_fix` true.
fn vulnerability_scan() -> Value {
    json!({
        "type": "vulnerability", "status": null, "severity": "Critical", "total": 1, "fixable": 1,
        "summary": { "critical": 1 }, "scanner": null, "report_id": null, "started_at": null,
        "completed_at": null, "sbom_digest": null, "error": null,
    })
}

async fn app() -> TestApp {
    spawn_app_with(Options::default().with("REGBRIDGE_QUAY_TOKENS", TOKEN)).await
}

#[actix_rt::test]
async fn every_fixture_normalizes_attribute_by_attribute() {
    let app = app().await;
    let cases = cases();
    for (file, wants) in &cases {
        let before = app.events().len();
        let body = fixture(&format!("other/{file}"));
        let token = Credential::Query("token", TOKEN.into());
        let reply =
            post_refused_then_accepted(&app, file, "/webhooks/quay", &[JSON], &token, "nope", &body).await;
        if wants.is_empty() {
            assert_eq!(reply.status, 202, "{file}: {:?}", reply.body);
            assert_eq!(reply.body["origtype"], "repo_mirror_sync", "{file}");
        } else {
            assert_eq!(reply.status, 200, "{file}: {:?}", reply.body);
        }
        let events = app.events();
        assert_eq!(events.len(), before + wants.len(), "{file}");
        for (i, (actual, w)) in events[before..].iter().zip(wants).enumerate() {
            let want = expected("quay", &body, i, wants.len(), w);
            std::panic::catch_unwind(|| assert_event(actual, &want))
                .unwrap_or_else(|_| panic!("{file} does not normalize as expected:\n{actual:#}"));
        }
    }
    for name in json_files("other/quay") {
        let name = format!("quay/{name}");
        assert!(cases.iter().any(|(f, _)| *f == name), "fixture {name} has no test case");
    }
}

#[actix_rt::test]
async fn vulnerability_found_carries_the_scan_summary() {
    let app = app().await;
    let body = fixture("other/quay/vulnerability_found.quay-docs.json");
    let reply = app.post(&format!("/webhooks/quay?token={TOKEN}"), &[JSON], body).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_matches(&app.events()[0], &json!({ "data": { "scan": vulnerability_scan() } }));
}

#[actix_rt::test]
async fn cancellations_and_mirror_results_are_declared_by_the_url() {
    let app = app().await;
    let path = format!("/webhooks/quay?token={TOKEN}&event=build_cancelled");
    let body = fixture("other/quay/build_cancelled.quay-docs.json");
    let reply = app.post(&path, &[JSON], body.clone()).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let want =
        ("build.cancelled", "build_cancelled", Some("dgangaia/test"), Some("master"), Some("dgangaia"));
    let mut want = expected("quay", &body, 0, 1, &want);
    // The same body as a build start: the declaration keeps the two apart.
    want["id"] = digest_id("quay?event=build_cancelled", &body).into();
    assert_event(&app.events()[0], &want);
    // A push sent there is a misconfigured notification, and so is an event Quay does not have.
    let push = fixture("other/quay/repo_push.quay-docs.json");
    let reply = app.post(&path, &[JSON], push.clone()).await;
    assert_eq!((reply.status, &reply.body["reason"]), (400, &json!("invalid_field")), "{:?}", reply.body);
    assert!(reply.body["detail"].as_str().unwrap().starts_with("`event` is invalid"), "{:?}", reply.body);
    let reply = app.post(&format!("/webhooks/quay?token={TOKEN}&event=push"), &[JSON], push).await;
    assert_eq!(reply.status, 400, "{:?}", reply.body);

    let path = format!("/webhooks/quay?event=repo_mirror_sync_success&token={TOKEN}");
    let body = fixture("other/quay/converted/repo_mirror_sync_success.quay-get_sample_data-extra_data.json");
    assert_eq!(app.post(&path, &[JSON], body).await.status, 200);
    assert_matches(
        &app.events()[1],
        &json!({ "type": "dev.regbridge.artifact.replicated.v1", "origtype": "repo_mirror_sync_success" }),
    );
    assert_eq!(app.events().len(), 2);
}

#[actix_rt::test]
async fn wrong_or_missing_tokens_are_refused_and_other_payloads_are_errors() {
    let app = app().await;
    let body = fixture("other/quay/repo_push.quay-docs.json");
    for path in ["/webhooks/quay?token=nope", "/webhooks/quay"] {
        let reply = app.post(path, &[JSON], body.clone()).await;
        assert_eq!(reply.status, 401, "{path}: {:?}", reply.body);
    }
    let path = format!("/webhooks/quay?token={TOKEN}");
    for other in [
        fixture("other/dockerhub/push.docker-docs.json"),
        fixture("harbor/push_artifact.default.json"),
        fixture("other/distribution/envelope.manifest-pull.json"),
        b"{}".to_vec(),
    ] {
        let reply = app.post(&path, &[JSON], other).await;
        assert_eq!(reply.status, 400, "{:?}", reply.body);
    }
    assert!(app.events().is_empty(), "nothing refused is published");
}
