//! Every Harbor fixture, Default and CloudEvents format, through the real HTTP stack.

use serde_json::{json, Value};

use crate::assert_matches;
use crate::helpers::*;

const ALPINE_954: &str = "sha256:954b378c375d852eb3c63ab88978f640b4348b01c1b3456a024a81536dafbbf4";
const ALPINE_2BB: &str = "sha256:2bb501e6173d9d006e56de5bce2720eb06396803300fe1687b58a7ff32bf4c14";
const KEEL: &str = "sha256:b4758aaed11c155a476b9857e1178f157759c99cb04c907a04993f5481eff848";
const BUSYBOX: &str = "sha256:dde8e930c7b6a490f728e66292bc9bce42efc9bbb5278bae40e4f30f6e00fe8c";

/// One fixture and what its single event must look like. `id: None` means the digest id of an
/// id-less format; `extra` is merged into the expectation for fields particular to the case.
struct Case {
    file: &'static str,
    kind: &'static str,
    id: Option<&'static str>,
    time: &'static str,
    host: Option<&'static str>,
    repository: Option<&'static str>,
    tag: Option<&'static str>,
    digest: Option<&'static str>,
    actor: Option<&'static str>,
    extra: Value,
}

fn expected(c: &Case, body: &[u8]) -> Value {
    let original: Value = serde_json::from_slice(body).unwrap();
    let origtype = original["type"].clone();
    let id = c.id.map_or_else(|| digest_id("harbor", body), str::to_owned);
    let subject = match (c.repository, c.tag, c.digest) {
        (Some(r), Some(t), _) => Some(format!("{r}:{t}")),
        (Some(r), None, Some(d)) => Some(format!("{r}@{d}")),
        _ => None,
    };
    let source = c.host.map_or("urn:regbridge:endpoint:harbor".to_owned(), |h| format!("https://{h}"));
    let image = match (c.host, &subject) {
        (Some(h), Some(s)) => Value::from(format!("{h}/{s}")),
        _ => Value::Null,
    };
    let mut e = json!({
        "specversion": "1.0",
        "id": id,
        "type": format!("dev.regbridge.{}.v1", c.kind),
        "source": source,
        "time": c.time,
        "datacontenttype": "application/json",
        "registry": "harbor",
        "origtype": origtype,
        "partitionkey": c.repository.map_or(source.clone(), str::to_owned),
        "data": {
            "registry": "harbor",
            "host": c.host,
            "repository": c.repository,
            "tag": c.tag,
            "digest": c.digest,
            "image": image,
            "platform": { "os": null, "architecture": null },
            "actor": c.actor,
            "occurred_at": c.time,
            "original": original,
        }
    });
    if let Some(s) = subject {
        e["subject"] = s.into();
    }
    merge(&mut e, &c.extra);
    e
}

fn merge(into: &mut Value, from: &Value) {
    if let (Value::Object(a), Value::Object(b)) = (into, from) {
        for (k, v) in b {
            match a.get_mut(k) {
                Some(slot @ Value::Object(_)) if v.is_object() => merge(slot, v),
                _ => {
                    a.insert(k.clone(), v.clone());
                }
            }
        }
    }
}

fn scan(v: Value) -> Value {
    let mut s = json!({
        "type": "vulnerability", "status": null, "severity": null, "total": null, "fixable": null,
        "summary": null, "scanner": null, "report_id": null, "started_at": null,
        "completed_at": null, "sbom_digest": null, "error": null,
    });
    merge(&mut s, &v);
    json!({ "data": { "scan": s } })
}

fn trivy(version: &str) -> Value {
    json!({ "name": "Trivy", "vendor": "Aqua Security", "version": version })
}

#[rustfmt::skip]
fn cases() -> Vec<Case> {
    let none = Value::Null;
    let alpine_scan_ok = scan(json!({
        "status": "Success", "severity": "None", "total": 0, "fixable": 0, "summary": {},
        "scanner": trivy("v0.37.2"), "report_id": "af0546c1-67dc-4e9d-927e-372900ead0df",
        "started_at": "2023-04-03T06:12:47Z", "completed_at": "2023-04-03T06:12:55Z",
    }));
    let alpine_scan_failed = scan(json!({
        "status": "Error", "report_id": "a2573415-c727-4723-bc92-376c1d978637",
        "started_at": "2023-04-03T07:11:15Z", "completed_at": "2023-04-03T07:11:25Z",
    }));
    let alpine_scan_stopped = scan(json!({
        "status": "Stopped", "report_id": "bf92700b-fa5e-4fe4-891c-42b730c81151",
        "started_at": "2023-04-03T06:12:09Z", "completed_at": "2023-04-03T06:12:14Z",
    }));
    let nginx_vulns = scan(json!({
        "status": "Success", "severity": "Critical", "total": 12, "fixable": 7,
        "summary": { "critical": 2, "high": 4, "medium": 5, "low": 1 }, "scanner": trivy("v0.50.1"),
        "report_id": "00000000-0000-4000-8000-000000000001",
        "started_at": "2023-11-14T22:13:11Z", "completed_at": "2023-11-14T22:13:20Z",
    }));
    let robot = "robot$harbor+wHSYCuGD-Trivy-8e2e7505-d1e6-11ed-9e71-0242ac130009";
    let c = |file, kind, id, time, host, repository, tag, digest, actor, extra| Case { file, kind, id, time, host, repository, tag, digest, actor, extra };
    vec![
        c("delete_artifact.cloudevents.json", "artifact.deleted", Some("343f1623-7cba-487c-88f1-c5ebf55e93aa"), "2023-04-03T06:16:38Z", Some("localhost"), Some("harbor/alpine"), Some("3.8"), Some(ALPINE_2BB), Some("harbor-jobservice"), none.clone()),
        c("delete_artifact.default.json", "artifact.deleted", None, "2023-04-03T06:16:38Z", Some("localhost"), Some("harbor/alpine"), Some("3.8"), Some(ALPINE_2BB), Some("harbor-jobservice"), none.clone()),
        c("pull_artifact.cloudevents.fixed.json", "artifact.pulled", Some("718eab63-2efa-4f88-8c27-8bcacc34929b"), "2023-04-03T06:12:52Z", Some("localhost"), Some("harbor/alpine"), None, Some(ALPINE_954), Some(robot), none.clone()),
        c("pull_artifact.cloudevents.from-harbor-src-cloudevents.go.json", "artifact.pulled", Some("4b2f89a6-548d-4c12-9993-a1f5790b97d2"), "2023-03-06T06:08:43Z", Some("harbor.dev"), Some("library/busybox"), None, Some(BUSYBOX), Some("robot$library+scanner-Trivy-51fe4548-bbe5-11ed-9217-0242ac14000d"), none.clone()),
        c("pull_artifact.default.from-harbor-src-default.go.json", "artifact.pulled", None, "2023-03-06T05:58:23Z", Some("harbor.dev"), Some("library/busybox"), None, Some(BUSYBOX), Some("admin"), none.clone()),
        c("pull_artifact.default.json", "artifact.pulled", None, "2023-04-03T06:12:52Z", Some("localhost"), Some("harbor/alpine"), None, Some(ALPINE_954), Some(robot), none.clone()),
        c("push_artifact.cloudevents.fixed.json", "artifact.pushed", Some("66e18103-09c1-41f6-982f-37df223f3eeb"), "2023-04-03T06:04:46Z", Some("localhost"), Some("harbor/alpine"), None, Some(ALPINE_954), Some("harbor-jobservice"), none.clone()),
        c("push_artifact.default.harbor-v2.0-docs.json", "artifact.pushed", None, "2020-04-15T03:45:08Z", Some("hub.harbor.com"), Some("test-webhook/debian"), Some("latest"), Some("sha256:8a9e9863dbb6e10edb5adfe917c00da84e1700fa76e7ed02476aa6e6fb8ee0d8"), Some("admin"), none.clone()),
        c("push_artifact.default.json", "artifact.pushed", None, "2023-04-03T06:04:53Z", Some("localhost"), Some("harbor/alpine"), None, Some(ALPINE_954), Some("harbor-jobservice"), none.clone()),
        c("quota_exceed.cloudevents.json", "quota.exceeded", Some("81f243ce-699c-44d6-9dbe-b2ee5f10237a"), "2023-04-03T07:04:44Z", None, Some("harbor/alpine"), None, Some("sha256:402d21757a03a114d273bbe372fa4b9eca567e8b6c332fa7ebf982b902207242"), None, none.clone()),
        c("quota_exceed.default.json", "quota.exceeded", None, "2023-04-03T07:04:44Z", None, Some("harbor/alpine"), None, Some("sha256:402d21757a03a114d273bbe372fa4b9eca567e8b6c332fa7ebf982b902207242"), None, none.clone()),
        c("quota_warning.cloudevents.json", "quota.warning", Some("1267b437-ea5a-4e06-bbe5-75e6fde733d3"), "2023-04-03T07:07:33Z", None, Some("harbor/alpine"), None, Some("sha256:514ec80ffbe1a2ab1d9a3d5e6082296296a1d8b6870246edf897228e5df2367d"), None, none.clone()),
        c("quota_warning.default.json", "quota.warning", None, "2023-04-03T07:07:33Z", None, Some("harbor/alpine"), None, Some("sha256:514ec80ffbe1a2ab1d9a3d5e6082296296a1d8b6870246edf897228e5df2367d"), None, none.clone()),
        c("replication.cloudevents.json", "artifact.replicated", Some("e3005250-ffa8-4a10-af92-91fe25cca22c"), "2023-04-03T06:05:04Z", Some("localhost"), None, None, None, Some("MANUAL"), none.clone()),
        c("replication.default.json", "artifact.replicated", None, "2023-04-03T06:05:04Z", Some("localhost"), None, None, None, Some("MANUAL"), none.clone()),
        c("scanning_completed.cloudevents.json", "scan.completed", Some("64bce2fe-6159-454d-8389-852d01ef1e9d"), "2023-04-03T06:12:55Z", Some("localhost"), Some("harbor/alpine"), None, Some(ALPINE_954), Some("auto"), alpine_scan_ok.clone()),
        c("scanning_completed.default.json", "scan.completed", None, "2023-04-03T06:12:55Z", Some("localhost"), Some("harbor/alpine"), None, Some(ALPINE_954), Some("auto"), alpine_scan_ok),
        c("scanning_failed.cloudevents.json", "scan.failed", Some("bdfe1de3-c069-4efc-b4f4-1a75c9a148c4"), "2023-04-03T07:11:25Z", Some("localhost"), Some("harbor/alpine"), None, Some("sha256:dabea2944dcc2b86482b4f0b0fb62da80e0673e900c46c0e03b45919881a5d84"), Some("auto"), alpine_scan_failed.clone()),
        c("scanning_failed.default.json", "scan.failed", None, "2023-04-03T07:11:25Z", Some("localhost"), Some("harbor/alpine"), None, Some("sha256:dabea2944dcc2b86482b4f0b0fb62da80e0673e900c46c0e03b45919881a5d84"), Some("auto"), alpine_scan_failed),
        c("scanning_stopped.cloudevents.json", "scan.stopped", Some("a8a03301-9e31-433f-ace3-240ac16f17b7"), "2023-04-03T06:12:14Z", Some("localhost"), Some("harbor/alpine"), None, Some("sha256:e802987f152d7826cf929ad4999fb3bb956ce7a30966aeb46c749f9120eaf22c"), Some("auto"), alpine_scan_stopped.clone()),
        c("scanning_stopped.default.json", "scan.stopped", None, "2023-04-03T06:12:14Z", Some("localhost"), Some("harbor/alpine"), None, Some("sha256:e802987f152d7826cf929ad4999fb3bb956ce7a30966aeb46c749f9120eaf22c"), Some("auto"), alpine_scan_stopped),
        c("tag_retention.cloudevents.json", "retention.completed", Some("a8618595-6fa0-4cf4-afdc-870459b1d7f6"), "2023-04-03T06:16:38Z", Some("localhost"), None, None, None, Some("MANUAL"), none.clone()),
        c("tag_retention.default.json", "retention.completed", None, "2023-04-03T06:16:38Z", Some("localhost"), None, None, None, Some("MANUAL"), none.clone()),
        c("synthetic/scanning_completed.cloudevents.scheduled-empty-scan.json", "scan.completed", Some("00000000-0000-4000-8000-0000000000cc"), "2025-07-29T03:00:23Z", Some("harbor.example.test"), Some("library/app"), Some("latest"), Some("sha256:3333333333333333333333333333333333333333333333333333333333333333"), Some("harbor-jobservice"), scan(json!({ "type": null }))),
        c("synthetic/scanning_completed.cloudevents.with-vulns.json", "scan.completed", Some("00000000-0000-4000-8000-0000000000aa"), "2023-11-14T22:13:20Z", Some("harbor.example.test"), Some("library/nginx"), Some("1.25.4"), Some("sha256:1111111111111111111111111111111111111111111111111111111111111111"), Some("auto"), nginx_vulns.clone()),
        c("synthetic/scanning_completed.default.with-vulns.json", "scan.completed", None, "2023-11-14T22:13:20Z", Some("harbor.example.test"), Some("library/nginx"), Some("1.25.4"), Some("sha256:1111111111111111111111111111111111111111111111111111111111111111"), Some("auto"), nginx_vulns),
        c("synthetic/scanning_completed.default.legacy-native-mime.json", "scan.completed", None, "2023-11-14T22:13:20Z", Some("harbor.example.test"), Some("team/app"), None, Some("sha256:2222222222222222222222222222222222222222222222222222222222222222"), Some("auto"), scan(json!({
            "status": "Success", "severity": "High", "total": 4, "fixable": 4, "summary": { "high": 3, "medium": 1 },
            "scanner": trivy("v0.16.0"), "report_id": "00000000-0000-4000-8000-000000000002",
            "started_at": "2021-03-16T07:42:43.132206Z", "completed_at": "2021-03-16T07:42:52.265765Z",
        }))),
        c("synthetic/scanning_completed.default.sbom.json", "scan.completed", None, "2023-11-14T22:15:00Z", Some("harbor.example.test"), Some("library/nginx"), Some("1.25.4"), Some("sha256:1111111111111111111111111111111111111111111111111111111111111111"), Some("admin"), scan(json!({
            "type": "sbom", "status": "Success", "sbom_digest": "sha256:4444444444444444444444444444444444444444444444444444444444444444",
            "started_at": "2023-11-14T22:15:00Z", "completed_at": "2023-11-14T22:15:03Z",
        }))),
        c("synthetic/upload_chart.default.pre-v2.8.json", "chart.uploaded", None, "2022-04-15T05:20:00Z", Some("harbor.example.test"), Some("library/mychart"), Some("0.1.0"), None, Some("admin"), none.clone()),
        // Keel's test payloads: a legacy name; a `resource_url` whose host and tag disagree with the
        // resource's (the resource's own fields win, the host is the URL's); one without a host.
        c("other/keel-testdata/harbor.fakeHarborWebhook.json", "artifact.pushed", None, "2020-02-25T14:24:48Z", Some("harbor.mydomain.com"), Some("library/ai-rag"), Some("1.2.3"), Some(KEEL), Some("user"), none.clone()),
        c("other/keel-testdata/harbor.fakeHarborWebhook2.json", "artifact.pushed", None, "2020-02-25T14:24:48Z", Some("quay.io"), Some("mynamespace/repository"), Some("latest"), Some(KEEL), Some("user"), none.clone()),
        c("other/keel-testdata/harbor.fakeHarborWebhookMalformed.json", "artifact.pushed", None, "2020-02-25T14:24:48Z", None, Some("mynamespace/repository"), Some("1.2.3"), Some(KEEL), Some("user"), none),
    ]
}

#[actix_rt::test]
async fn every_fixture_normalizes_attribute_by_attribute() {
    let app = spawn_app().await;
    let cases = cases();
    for (i, c) in cases.iter().enumerate() {
        // Harbor payloads other projects captured live with their vendor's.
        let path =
            if c.file.starts_with("other/") { c.file.to_owned() } else { format!("harbor/{}", c.file) };
        let body = fixture(&path);
        let media = if c.file.contains(".cloudevents.") {
            "application/cloudevents+json"
        } else {
            "application/json"
        };
        let reply = app.post_harbor(&body, media).await;
        assert_eq!(reply.status, 200, "{}: {:?}", c.file, reply.body);
        let events = app.events();
        assert_eq!(events.len(), i + 1, "{}: one event per payload", c.file);
        let actual = &events[i];
        let want = expected(c, &body);
        std::panic::catch_unwind(|| assert_matches(actual, &want))
            .unwrap_or_else(|_| panic!("{} does not normalize as expected:\n{actual:#}", c.file));
        if c.repository.is_none() {
            assert!(actual.get("subject").is_none(), "{}: no subject without a repository", c.file);
        }
    }
    // Every Harbor fixture file is covered.
    let mut files: Vec<String> = Vec::new();
    for dir in ["", "synthetic/"] {
        for entry in
            std::fs::read_dir(format!("{}/tests/fixtures/harbor/{dir}", env!("CARGO_MANIFEST_DIR"))).unwrap()
        {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name.ends_with(".json") {
                files.push(format!("{dir}{name}"));
            }
        }
    }
    for f in files {
        assert!(cases.iter().any(|c| c.file == f), "fixture {f} has no test case");
    }
}

#[actix_rt::test]
async fn cloudevents_format_is_detected_without_its_content_type() {
    let app = spawn_app().await;
    let reply =
        app.post_harbor(&fixture("harbor/push_artifact.cloudevents.fixed.json"), "application/json").await;
    assert_eq!(reply.status, 200);
    assert_eq!(app.events()[0]["id"], "66e18103-09c1-41f6-982f-37df223f3eeb");
}

#[actix_rt::test]
async fn several_resources_fan_out_and_legacy_names_map() {
    let app = spawn_app().await;
    let body = br#"{"type":"pushImage","occur_at":1586922308,"operator":"admin","event_data":{
        "resources":[
          {"digest":"sha256:aaa","tag":"v1","resource_url":"hub.harbor.com/lib/app:v1"},
          {"digest":"sha256:bbb","tag":"v2","resource_url":"hub.harbor.com/lib/app:v2"}],
        "repository":{"name":"app","namespace":"lib","repo_full_name":"lib/app","repo_type":"private"}}}"#;
    let reply = app.post_harbor(body, "application/json").await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let base = digest_id("harbor", body);
    let events = app.events();
    assert_eq!(events.len(), 2);
    for (i, (ev, tag)) in events.iter().zip(["v1", "v2"]).enumerate() {
        assert_matches(
            ev,
            &json!({
                "id": format!("{base}#{i}"),
                "type": "dev.regbridge.artifact.pushed.v1",
                "origtype": "pushImage",
                "subject": format!("lib/app:{tag}"),
                "data": { "tag": tag, "image": format!("hub.harbor.com/lib/app:{tag}") },
            }),
        );
    }
    // The same delivery again yields the same ids.
    let again = app.post_harbor(body, "application/json").await;
    assert_eq!(reply.body["events"], again.body["events"]);
}

#[actix_rt::test]
async fn configured_source_wins_and_original_can_be_dropped() {
    let app = spawn_app_with(
        Options::default()
            .with("REGBRIDGE_HARBOR_SOURCE", "https://harbor.prod.example.com")
            .with("REGBRIDGE_INCLUDE_ORIGINAL", "false"),
    )
    .await;
    assert_eq!(
        app.post_harbor(&fixture("harbor/quota_warning.default.json"), "application/json").await.status,
        200
    );
    let ev = &app.events()[0];
    assert_eq!(ev["source"], "https://harbor.prod.example.com");
    assert_eq!(ev["data"]["original"], Value::Null);
}

#[actix_rt::test]
async fn unknown_harbor_type_is_acknowledged_and_counted() {
    let app = spawn_app().await;
    let body = br#"{"type":"SOMETHING_NEW","occur_at":1,"operator":"x","event_data":{}}"#;
    let reply = app.post_harbor(body, "application/json").await;
    assert_eq!(reply.status, 202);
    assert_eq!(reply.body["reason"], "unmapped_type");
    assert!(app.events().is_empty());
    let (_, metrics) = app.get("/metrics").await;
    assert!(metrics.contains("regbridge_events_unmapped_total{registry=\"harbor\"}"), "{metrics}");
}
