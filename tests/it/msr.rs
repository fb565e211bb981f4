//! Every MSR 2.x/3.x fixture through the real HTTP stack, token in the query string.

use serde_json::{json, Value};

use crate::assert_matches;
use crate::helpers::*;

const DIGEST_B5: &str = "sha256:b5bb9d8014a0f9b1d61e21e796d78dccdf1352f23cd32812f4850b878ae4944c";
const DIGEST_AA: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

fn msr_scan(v: Value) -> Value {
    let mut s = json!({
        "type": "vulnerability", "status": null, "severity": null, "total": null, "fixable": null,
        "summary": null, "scanner": null, "report_id": null, "started_at": null,
        "completed_at": null, "sbom_digest": null, "error": null,
    });
    for (k, x) in v.as_object().unwrap() {
        s[k] = x.clone();
    }
    s
}

#[rustfmt::skip]
fn cases() -> Vec<(&'static str, Value)> {
    vec![
        ("tag_push.dtr-2.4-docs.json", json!({
            "type": "dev.regbridge.artifact.pushed.v1", "source": "https://example.com", "subject": "foo/bar:latest",
            "time": "2017-06-20T01:29:53.046620425Z", "partitionkey": "foo/bar",
            "data": { "host": "example.com", "repository": "foo/bar", "tag": "latest", "digest": DIGEST_B5,
                      "image": "example.com/foo/bar:latest", "platform": { "os": "linux", "architecture": "amd64" },
                      "actor": null, "occurred_at": "2017-06-20T01:29:53.046620425Z", "scan": null } })),
        ("tag_push.dtr-docs-use-the-web-ui.json", json!({
            "type": "dev.regbridge.artifact.pushed.v1", "source": "urn:regbridge:endpoint:msr", "subject": "foo/bar:latest",
            "time": "2019-05-15T19:39:40.607337713Z",
            "data": { "host": null, "repository": "foo/bar", "tag": "latest", "digest": DIGEST_B5, "image": null,
                      "platform": { "os": "linux", "architecture": "amd64" } } })),
        ("synthetic/manifest_push.json", json!({
            "type": "dev.regbridge.artifact.pushed.v1", "source": "https://msr.example.test", "subject": format!("acme/api@{DIGEST_AA}"),
            "time": "2024-05-01T10:01:00.500Z",
            "data": { "host": "msr.example.test", "repository": "acme/api", "tag": null, "digest": DIGEST_AA,
                      "image": format!("msr.example.test/acme/api@{DIGEST_AA}"), "actor": "ci-bot" } })),
        ("synthetic/repo_created.json", json!({
            "type": "dev.regbridge.repository.created.v1", "subject": "acme/api", "time": "2024-05-01T09:00:00Z", "partitionkey": "acme/api",
            "data": { "repository": "acme/api", "tag": null, "digest": null, "image": null, "actor": "admin" } })),
        ("synthetic/scan_completed.json", json!({
            "type": "dev.regbridge.scan.completed.v1", "subject": "acme/api:1.2.3", "time": "2024-05-01T10:05:00Z",
            "data": { "host": "msr.example.test", "repository": "acme/api", "tag": "1.2.3",
                      "scan": msr_scan(json!({ "status": "completed", "summary": { "critical": 2, "major": 5, "minor": 11 },
                                               "total": 18, "completed_at": "2024-05-01T10:04:59Z" })) } })),
        ("synthetic/scan_failed.json", json!({
            "type": "dev.regbridge.scan.failed.v1", "subject": "acme/api:1.2.4", "time": "2024-05-01T10:06:00Z",
            "data": { "repository": "acme/api", "tag": "1.2.4", "digest": DIGEST_AA,
                      "scan": msr_scan(json!({ "status": "failed", "error": "layer extraction failed" })) } })),
        ("synthetic/scanner_update_completed.json", json!({
            "type": "dev.regbridge.scanner.updated.v1", "source": "urn:regbridge:endpoint:msr",
            "partitionkey": "urn:regbridge:endpoint:msr", "time": "2024-05-01T03:00:00Z",
            "data": { "repository": null, "tag": null, "image": null } })),
        ("synthetic/tag_delete.json", json!({
            "type": "dev.regbridge.artifact.deleted.v1", "subject": "acme/api:1.2.3", "time": "2024-05-01T10:00:00.123456789Z",
            "data": { "host": "msr.example.test", "digest": DIGEST_AA, "actor": "ci-bot",
                      "platform": { "os": "linux", "architecture": "amd64" } } })),
        ("synthetic/tag_pull.json", json!({
            "type": "dev.regbridge.artifact.pulled.v1", "subject": "acme/api:1.2.3", "time": "2024-05-01T10:02:00Z",
            "data": { "image": "msr.example.test/acme/api:1.2.3" } })),
    ]
}

#[actix_rt::test]
async fn every_fixture_normalizes_attribute_by_attribute() {
    let app = spawn_app().await;
    let cases = cases();
    for (i, (file, want)) in cases.iter().enumerate() {
        let body = fixture(&format!("msr/{file}"));
        let reply = app.post_msr(&body).await;
        assert_eq!(reply.status, 200, "{file}: {:?}", reply.body);
        let events = app.events();
        assert_eq!(events.len(), i + 1, "{file}");
        let original: Value = serde_json::from_slice(&body).unwrap();
        let mut want = want.clone();
        want["specversion"] = "1.0".into();
        want["id"] = digest_id("msr", &body).into();
        want["datacontenttype"] = "application/json".into();
        want["registry"] = "msr".into();
        want["origtype"] = original["type"].clone();
        want["data"]["registry"] = "msr".into();
        want["data"]["original"] = original;
        let actual = &events[i];
        std::panic::catch_unwind(|| assert_matches(actual, &want))
            .unwrap_or_else(|_| panic!("{file} does not normalize as expected:\n{actual:#}"));
    }
    for dir in ["", "synthetic/"] {
        for entry in
            std::fs::read_dir(format!("{}/tests/fixtures/msr/{dir}", env!("CARGO_MANIFEST_DIR"))).unwrap()
        {
            let name = format!("{dir}{}", entry.unwrap().file_name().into_string().unwrap());
            if name.ends_with(".json") {
                assert!(cases.iter().any(|(f, _)| *f == name), "fixture {name} has no test case");
            }
        }
    }
}

#[actix_rt::test]
async fn token_may_come_from_a_proxy_header_and_redelivery_keeps_the_id() {
    let app = spawn_app().await;
    let body = fixture("msr/synthetic/tag_pull.json");
    let bearer = format!("Bearer {MSR_TOKEN}");
    let headers = [("content-type", "application/json"), ("authorization", bearer.as_str())];
    let first = app.post("/webhooks/msr", &headers, body.clone()).await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    let again = app.post_msr(&body).await;
    assert_eq!(first.body["events"], again.body["events"]);
}

#[actix_rt::test]
async fn undocumented_types_still_map() {
    let app = spawn_app().await;
    for (ty, kind) in [
        ("PROMOTION", "artifact.promoted"),
        ("PUSH_MIRRORING", "artifact.replicated"),
        ("POLL_MIRRORING", "artifact.replicated"),
        ("MANIFEST_PULL", "artifact.pulled"),
        ("MANIFEST_DELETE", "artifact.deleted"),
        ("REPO_UPDATED", "repository.updated"),
        ("REPO_DELETED", "repository.deleted"),
        ("CHART_PUSH", "chart.uploaded"),
        ("CHART_PULL", "chart.downloaded"),
        ("CHART_DELETE", "chart.deleted"),
    ] {
        let body = format!(
            r#"{{"type":"{ty}","createdAt":"2024-05-01T10:00:00Z","contents":{{"namespace":"acme","repository":"api"}}}}"#
        );
        let reply = app.post_msr(body.as_bytes()).await;
        assert_eq!(reply.status, 200, "{ty}: {:?}", reply.body);
        let ev = app.events().pop().unwrap();
        assert_eq!(ev["type"], format!("dev.regbridge.{kind}.v1"), "{ty}");
        assert_eq!(ev["origtype"], ty);
        assert_eq!(ev["data"]["repository"], "acme/api");
    }
    let reply =
        app.post_msr(br#"{"type":"NEW_THING","createdAt":"2024-05-01T10:00:00Z","contents":{}}"#).await;
    assert_eq!(reply.status, 202);
}
