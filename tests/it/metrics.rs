//! `/metrics` after a mix of accepted and rejected webhooks. The exposition is also saved for
//! `scripts/check-deploy`, which checks that every metric the dashboard queries is exported.

use std::io::Write;

use crate::brokers;
use crate::helpers::*;

/// The value of the sample `name{labels…}` (labels in any order, extra labels not allowed).
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, "}"));
        if metric != name {
            return None;
        }
        let mut have: Vec<&str> = rest.trim_end_matches('}').split(',').filter(|s| !s.is_empty()).collect();
        let mut want: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        have.sort_unstable();
        want.sort_unstable();
        (have == want).then(|| value.parse().ok()).flatten()
    })
}

#[actix_rt::test]
async fn counters_follow_accepted_and_rejected_requests() {
    // A named endpoint of its own keeps these series apart from other tests in this process.
    let endpoint = brokers::unique("metrics");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("regbridge.yaml");
    std::fs::write(
        &config,
        format!("endpoints:\n  {endpoint}:\n    dialect: harbor\n    auth: [\"{HARBOR_AUTH}\"]\n"),
    )
    .unwrap();
    // The outbox on (it is by default only with a broker), so its series are exported too.
    let app = spawn_app_with(
        Options::default().with("REGBRIDGE_CONFIG", config.to_str().unwrap()).with("REGBRIDGE_OUTBOX", "on"),
    )
    .await;
    let path = format!("/webhooks/{endpoint}");
    let json = ("content-type", "application/json");
    let auth = ("authorization", HARBOR_AUTH);
    for file in ["harbor/push_artifact.default.json", "harbor/scanning_completed.default.json"] {
        assert_eq!(app.post(&path, &[json, auth], fixture(file)).await.status, 200);
    }
    let unmapped = br#"{"type":"NEW_KIND","occur_at":1,"event_data":{}}"#.to_vec();
    assert_eq!(app.post(&path, &[json, auth], unmapped).await.status, 202);
    let bad_auth = ("authorization", "Bearer nope");
    assert_eq!(
        app.post(&path, &[json, bad_auth], fixture("harbor/push_artifact.default.json")).await.status,
        401
    );
    assert_eq!(app.post(&path, &[("content-type", "text/xml"), auth], "<x/>").await.status, 415);
    assert_eq!(app.post(&path, &[json, auth], "{").await.status, 400);
    assert_eq!(app.post("/webhooks/nope", &[json], "{}").await.status, 404);

    let (status, text) = app.get("/metrics").await;
    assert_eq!(status, 200);
    let e = endpoint.as_str();
    let requests = |status: &str, reason: &str| {
        sample(&text, "regbridge_requests_total", &[("endpoint", e), ("status", status), ("reason", reason)])
    };
    assert_eq!(requests("2xx", "accepted"), Some(3.0), "{text}");
    assert_eq!(requests("4xx", "invalid_credential"), Some(1.0));
    assert_eq!(requests("4xx", "unsupported_media_type"), Some(1.0));
    assert_eq!(requests("4xx", "invalid_json"), Some(1.0));
    assert_eq!(sample(&text, "regbridge_request_duration_seconds_count", &[("endpoint", e)]), Some(6.0));
    let unknown = sample(
        &text,
        "regbridge_requests_total",
        &[("endpoint", "unknown"), ("status", "4xx"), ("reason", "unknown_endpoint")],
    );
    assert!(unknown.is_some_and(|n| n >= 1.0), "unknown endpoints share one label");
    assert!(!text.contains("endpoint=\"nope\""), "unknown names never become labels");
    for kind in ["artifact.pushed", "scan.completed"] {
        let ty = format!("dev.regbridge.{kind}.v1");
        let n = sample(
            &text,
            "regbridge_events_total",
            &[("registry", "harbor"), ("type", &ty), ("routed", "true")],
        );
        assert!(n.is_some_and(|n| n >= 1.0), "{ty}");
    }
    assert!(
        sample(&text, "regbridge_events_unmapped_total", &[("registry", "harbor")]).is_some_and(|n| n >= 1.0)
    );
    assert!(sample(&text, "regbridge_publish_total", &[("sink", "file"), ("outcome", "ok")])
        .is_some_and(|n| n >= 2.0));
    assert!(sample(&text, "regbridge_publish_duration_seconds_count", &[("sink", "file")])
        .is_some_and(|n| n >= 2.0));
    assert_eq!(sample(&text, "regbridge_sink_ready", &[("sink", "file")]), Some(1.0));
    assert!(sample(&text, "regbridge_requests_in_flight", &[]).is_some());
    // Process-wide series that other tests' apps also set: present, whatever their values.
    for name in [
        "regbridge_outbox_events",
        "regbridge_outbox_bytes",
        "regbridge_outbox_oldest_age_seconds",
        "regbridge_outbox_dead_letters",
        "regbridge_outbox_spooled_total",
        "regbridge_outbox_replayed_total",
        "regbridge_outbox_dead_lettered_total",
    ] {
        assert!(sample(&text, name, &[("sink", "file")]).is_some(), "{name}");
    }
    assert!(sample(&text, "regbridge_outbox_disk_bytes", &[]).is_some());
    assert!(sample(&text, "regbridge_outbox_capacity_bytes", &[]).is_some());
    assert!(!text.contains(HARBOR_AUTH), "no secret in metrics");

    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("exported-metrics.prom");
    std::fs::File::create(&out).unwrap().write_all(text.as_bytes()).unwrap();
}

/// A rotation: the old secret ends by itself at its `not_after`, and the metric tells, per
/// credential label and Root signature mode, which ones senders still use.
#[actix_rt::test]
async fn an_ended_secret_is_refused_and_matches_are_counted_per_credential_and_mode() {
    let (harbor, root) = (brokers::unique("rotating-harbor"), brokers::unique("rotating-root"));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("regbridge.yaml");
    std::fs::write(
        &config,
        format!(
            "endpoints:\n  {harbor}:\n    dialect: harbor\n    auth:\n      - {{ value: \"Bearer old\", label: old, not_after: \"2020-01-01T00:00:00Z\" }}\n      - {{ value: \"Bearer new\", label: new }}\n      - \"Bearer spare\"\n  {root}:\n    dialect: root\n    secrets: [\"{ROOT_SECRET}\"]\n"
        ),
    )
    .unwrap();
    let app = spawn_app_with(Options::default().with("REGBRIDGE_CONFIG", config.to_str().unwrap())).await;
    let body = fixture("harbor/push_artifact.default.json");
    let post = |auth: &'static str| {
        let (app, body, path) = (&app, body.clone(), format!("/webhooks/{harbor}"));
        async move {
            app.post(&path, &[("content-type", "application/json"), ("authorization", auth)], body).await
        }
    };
    let r = post("Bearer old").await;
    assert_eq!(r.status, 401, "{:?}", r.body);
    assert_eq!(r.body["reason"], "expired_credential");
    assert_eq!(post("Bearer new").await.status, 200);
    assert_eq!(post("Bearer new").await.status, 200);

    let event = fixture("root/image-created.e2e-rendered.json");
    for (id, hex) in [("m1", false), ("m2", true), ("m3", true)] {
        let ts = chrono::Utc::now().timestamp().to_string();
        let sig = if hex {
            sign_hex(ROOT_SECRET, id, &ts, &event)
        } else {
            sign_standard(ROOT_SECRET, id, &ts, &event)
        };
        let headers = [
            ("content-type", "application/cloudevents+json"),
            ("webhook-id", id),
            ("webhook-timestamp", ts.as_str()),
            ("webhook-signature", sig.as_str()),
        ];
        let r = app.post(&format!("/webhooks/{root}"), &headers, event.clone()).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }

    let (_, text) = app.get("/metrics").await;
    let matches = |endpoint: &str, credential: &str, mode: &str| {
        sample(
            &text,
            "regbridge_credential_matches_total",
            &[("endpoint", endpoint), ("credential", credential), ("mode", mode)],
        )
    };
    assert_eq!(matches(&harbor, "new", "header"), Some(2.0), "{text}");
    assert_eq!(matches(&harbor, "#3", "header"), Some(0.0), "unused, and shown as such");
    // The ended one matched, but was refused: not counted as a use.
    assert_eq!(matches(&harbor, "old", "header"), Some(0.0));
    assert_eq!(matches(&root, "#1", "standard"), Some(1.0));
    assert_eq!(matches(&root, "#1", "hex"), Some(2.0));
    assert!(!text.contains("Bearer new") && !text.contains(ROOT_SECRET), "no secret in metrics");
}
