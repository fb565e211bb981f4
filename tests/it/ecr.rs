//! Amazon ECR events through the real HTTP stack, as an EventBridge API destination posts them:
//! the connection's `Authorization` on the built-in endpoint, an API-key header on a configured one.

use serde_json::{json, Value};

use crate::helpers::*;
use crate::{assert_event, assert_matches, json_files, post_refused_then_accepted, Credential};

/// What an API destination connection with Basic authorization (`eventbridge:s3cr3t`) sends.
const ECR_AUTH: &str = "Basic ZXZlbnRicmlkZ2U6czNjcjN0";
const JSON: (&str, &str) = ("content-type", "application/json");
const AUTH: (&str, &str) = ("authorization", ECR_AUTH);

/// The docs' "Event for a completed image scan (basic scanning)".
const BASIC_SCAN: &str = r#"{
    "version": "0", "id": "85fc3613-e913-7fc4-a80c-a3753e4aa9ae", "detail-type": "ECR Image Scan",
    "source": "aws.ecr", "account": "123456789012", "time": "2019-10-29T02:36:48Z", "region": "us-east-1",
    "resources": ["arn:aws:ecr:us-east-1:123456789012:repository/my-repository-name"],
    "detail": { "scan-status": "COMPLETE", "repository-name": "my-repository-name",
        "finding-severity-counts": { "CRITICAL": 10, "MEDIUM": 9 },
        "image-digest": "sha256:7f5b2640fe6fb4f46592dfd3410c4a79dac4f89e4782432e0378abcd1234", "image-tags": [] } }"#;

async fn app() -> TestApp {
    spawn_app_with(Options::default().with("REGBRIDGE_ECR_AUTH", ECR_AUTH)).await
}

fn scan(v: Value) -> Value {
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

fn inspector() -> Value {
    json!({ "name": "Amazon Inspector", "vendor": "Amazon Web Services", "version": null })
}

/// One event about `repository` in the registry at `host` (built from the envelope's `account` and
/// `region`), at the envelope's `time`: no actor, platform or scan unless the case adds them.
/// Every digest in the samples is a placeholder (60 hex digits, or `…EXAMPLE`): none is published.
fn event(
    id: &str,
    kind: &str,
    origtype: &str,
    host: &str,
    time: &str,
    repository: &str,
    tag: Option<&str>,
) -> Value {
    let subject = tag.map_or(repository.to_owned(), |t| format!("{repository}:{t}"));
    json!({
        "specversion": "1.0", "id": id, "type": format!("dev.regbridge.{kind}.v1"), "source": format!("https://{host}"),
        "subject": subject, "time": time, "datacontenttype": "application/json", "registry": "ecr",
        "origtype": origtype, "partitionkey": repository,
        "data": { "registry": "ecr", "host": host, "repository": repository, "tag": tag, "digest": null,
                  "image": tag.map(|_| format!("{host}/{subject}")), "platform": { "os": null, "architecture": null },
                  "actor": null, "occurred_at": time, "scan": null } })
}

/// (fixture under `other/ecr/`, the expected events without `data.original`).
#[rustfmt::skip]
fn cases() -> Vec<(&'static str, Vec<Value>)> {
    let us_west_2 = "123456789012.dkr.ecr.us-west-2.amazonaws.com";
    let us_east_2 = "123456789012.dkr.ecr.us-east-2.amazonaws.com";
    let us_east_1 = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
    let ecs_sample = "amazon/amazon-ecs-sample";
    let repo_change = |i: usize| event(
        &format!("0c18352a-a4d4-6853-ef53-0ab8638973bf#{i}"), "repository.updated", "ECR Scan Resource Change",
        us_east_1, "2021-10-14T20:53:46Z", &format!("repository-{}", i + 1), None);
    let mut scan_complete = event("739c0d3c-4f02-85c7-5a88-94a9EXAMPLE", "scan.completed", "Inspector2 Scan", us_east_2,
        "2021-12-03T18:03:16Z", ecs_sample, Some("latest"));
    // `TOTAL` is the total, not a severity.
    scan_complete["data"]["scan"] = scan(json!({ "status": "INITIAL_SCAN_COMPLETE", "severity": "critical", "total": 158,
        "summary": { "critical": 7, "high": 61, "medium": 62 }, "scanner": inspector() }));
    let mut finding = event("42dbea55-45ad-b2b4-87a8-afaEXAMPLE", "vulnerability.found", "Inspector2 Finding", us_east_2,
        "2021-12-03T18:02:30Z", ecs_sample, Some("latest"));
    finding["data"]["platform"]["architecture"] = "amd64".into();
    // `firstObservedAt`/`lastObservedAt` are `Dec 3, 2021, 6:02:30 PM`; no `fixAvailable`.
    finding["data"]["scan"] = scan(json!({ "status": "ACTIVE", "severity": "medium", "total": 1, "summary": { "medium": 1 },
        "scanner": inspector(),
        "report_id": "arn:aws:inspector2:us-east-2:123456789012:finding/be674aaddd0f75ac632055EXAMPLE",
        "started_at": "2021-12-03T18:02:30Z", "completed_at": "2021-12-03T18:02:30Z" }));
    vec![
        ("ImageAction.PUSH.aws-ecr-user-guide.json", vec![event("13cde686-328b-6117-af20-0e5566167482", "artifact.pushed",
            "ECR Image Action", us_west_2, "2019-11-16T01:54:34Z", "my-repository-name", Some("latest"))]),
        ("ImageAction.DELETE.aws-ecr-user-guide.json", vec![event("dd3b46cb-2c74-f49e-393b-28286b67279d", "artifact.deleted",
            "ECR Image Action", us_west_2, "2019-11-16T02:01:05Z", "my-repository-name", Some("latest"))]),
        ("Inspector2Scan.enhanced.aws-ecr-user-guide.json", vec![scan_complete]),
        ("Inspector2Finding.enhanced.aws-ecr-user-guide.json", vec![finding]),
        ("ScanResourceChange.enhanced.aws-ecr-user-guide.json", (0..3).map(repo_change).collect()),
    ]
}

#[actix_rt::test]
async fn every_fixture_normalizes_attribute_by_attribute() {
    let app = app().await;
    let cases = cases();
    let mut published = 0;
    let auth = Credential::Header("authorization", ECR_AUTH.into());
    for (file, wants) in &cases {
        let body = fixture(&format!("other/ecr/{file}"));
        let wrong = "Basic ZXZlbnRicmlkZ2U6bm9wZQ==";
        let reply =
            post_refused_then_accepted(&app, file, "/webhooks/ecr", &[JSON], &auth, wrong, &body).await;
        assert_eq!(reply.status, 200, "{file}: {:?}", reply.body);
        let events = app.events();
        assert_eq!(events.len(), published + wants.len(), "{file}");
        let whole: Value = serde_json::from_slice(&body).unwrap();
        for (i, want) in wants.iter().enumerate() {
            let mut want = want.clone();
            // A fanned-out event carries the event with its own repository alone.
            want["data"]["original"] = match wants.len() {
                1 => whole.clone(),
                _ => {
                    let mut part = whole.clone();
                    part["detail"]["repositories"] = json!([whole["detail"]["repositories"][i]]);
                    part
                }
            };
            let actual = &events[published + i];
            std::panic::catch_unwind(|| assert_event(actual, &want))
                .unwrap_or_else(|_| panic!("{file} does not normalize as expected:\n{actual:#}"));
        }
        published += wants.len();
    }
    for name in json_files("other/ecr") {
        assert!(cases.iter().any(|(f, _)| *f == name), "fixture {name} has no test case");
    }
}

#[actix_rt::test]
async fn basic_scan_and_what_is_not_mapped() {
    let app = app().await;
    let reply = app.post("/webhooks/ecr", &[JSON, AUTH], BASIC_SCAN).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let host = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
    assert_matches(
        &app.events()[0],
        &json!({
            "id": "85fc3613-e913-7fc4-a80c-a3753e4aa9ae", "type": "dev.regbridge.scan.completed.v1",
            "origtype": "ECR Image Scan", "subject": "my-repository-name", "time": "2019-10-29T02:36:48Z",
            "data": { "host": host, "repository": "my-repository-name", "tag": null, "digest": null, "image": null,
                      "scan": scan(json!({ "status": "COMPLETE", "severity": "critical", "total": 19,
                                           "summary": { "critical": 10, "medium": 9 } })) },
        }),
    );
    // A failed push, an event type regbridge does not map: acknowledged, not retried for ever.
    let failed = fixture("other/ecr/ImageAction.PUSH.aws-ecr-user-guide.json");
    let failed = String::from_utf8(failed).unwrap().replace("\"SUCCESS\"", "\"FAILURE\"");
    let cache = r#"{"version":"0","id":"p-1","detail-type":"ECR Pull Through Cache Action","source":"aws.ecr",
        "account":"123456789012","time":"2024-05-01T10:00:00Z","region":"us-east-1","resources":[],
        "detail":{"repository-name":"docker-hub/library/nginx","sync-status":"SUCCESS"}}"#;
    for (body, origtype) in [(failed.as_str(), "ECR Image Action"), (cache, "ECR Pull Through Cache Action")]
    {
        let reply = app.post("/webhooks/ecr", &[JSON, AUTH], body.to_owned()).await;
        assert_eq!(reply.status, 202, "{:?}", reply.body);
        assert_eq!(
            (reply.body["reason"].as_str(), reply.body["origtype"].as_str()),
            (Some("unmapped_type"), Some(origtype))
        );
    }
    // Another registry's payload is malformed here.
    let reply = app.post("/webhooks/ecr", &[JSON, AUTH], fixture("harbor/push_artifact.default.json")).await;
    assert_eq!((reply.status, reply.body["reason"].as_str()), (400, Some("missing_field")));
    assert_eq!(app.events().len(), 1);
}

#[actix_rt::test]
async fn a_wrong_or_missing_authorization_is_refused_and_publishes_nothing() {
    let app = app().await;
    let body = fixture("other/ecr/ImageAction.PUSH.aws-ecr-user-guide.json");
    for (headers, reason) in [
        (vec![JSON, ("authorization", "Basic ZXZlbnRicmlkZ2U6bm9wZQ==")], "invalid_credential"),
        (vec![JSON], "missing_credential"),
        // The value belongs in `Authorization`, not in an API-key header.
        (vec![JSON, ("x-api-key", ECR_AUTH)], "missing_credential"),
    ] {
        let reply = app.post("/webhooks/ecr", &headers, body.clone()).await;
        assert_eq!((reply.status, reply.body["reason"].as_str()), (401, Some(reason)), "{headers:?}");
    }
    assert!(app.events().is_empty());
}

/// An API destination connection with API-key authorization sends the key in the header it names;
/// the config file's `header:` tells the endpoint which one.
#[actix_rt::test]
async fn a_configured_endpoint_reads_its_api_key_header() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("regbridge.yaml");
    std::fs::write(
        &config,
        "endpoints:\n  ecr-prod:\n    dialect: ecr\n    header: x-api-key\n    credentials: [\"${ECR_API_KEY}\"]\n",
    )
    .unwrap();
    let app = spawn_app_with(
        Options::default()
            .with("REGBRIDGE_CONFIG", config.to_str().unwrap())
            .with("ECR_API_KEY", "k-8f3a61c2"),
    )
    .await;
    let body = fixture("other/ecr/ImageAction.PUSH.aws-ecr-user-guide.json");
    for (headers, reason) in [
        (vec![JSON, ("x-api-key", "k-8f3a61")], "invalid_credential"),
        (vec![JSON], "missing_credential"),
        (vec![JSON, ("authorization", "k-8f3a61c2")], "missing_credential"),
    ] {
        let reply = app.post("/webhooks/ecr-prod", &headers, body.clone()).await;
        assert_eq!((reply.status, reply.body["reason"].as_str()), (401, Some(reason)), "{headers:?}");
    }
    assert!(app.events().is_empty());
    // The built-in endpoint is not enabled by the file.
    assert_eq!(
        app.post("/webhooks/ecr", &[JSON, ("x-api-key", "k-8f3a61c2")], body.clone()).await.status,
        404
    );

    let reply = app.post("/webhooks/ecr-prod", &[JSON, ("x-api-key", "k-8f3a61c2")], body).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let events = app.events();
    assert_eq!(events.len(), 1);
    assert_matches(
        &events[0],
        &json!({
            "id": "13cde686-328b-6117-af20-0e5566167482", "type": "dev.regbridge.artifact.pushed.v1",
            "registry": "ecr", "source": "https://123456789012.dkr.ecr.us-west-2.amazonaws.com",
            "data": { "image": "123456789012.dkr.ecr.us-west-2.amazonaws.com/my-repository-name:latest" },
        }),
    );
}
