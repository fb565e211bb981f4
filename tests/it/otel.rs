//! OpenTelemetry: a regbridge process exporting OTLP/HTTP (JSON) to a receiver inside this test.
//! Asserts the span tree of one webhook, that an incoming `traceparent` is continued, and that
//! the trace reaches the CloudEvent and the Kafka headers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::Value;

use crate::brokers;
use crate::helpers::*;

const PARENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN: &str = "00f067aa0ba902b7";

type Received = Arc<Mutex<Vec<(String, Value)>>>;

/// An OTLP/HTTP receiver: keeps every JSON export request body by path.
async fn receiver() -> (String, Received) {
    let got: Received = Arc::default();
    let data = web::Data::new(got.clone());
    let server = HttpServer::new(move || {
        App::new().app_data(data.clone()).default_service(web::to(
            |req: actix_web::HttpRequest, body: web::Bytes, got: web::Data<Received>| async move {
                if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                    got.lock().unwrap().push((req.path().to_owned(), v));
                }
                HttpResponse::Ok().content_type("application/json").body("{}")
            },
        ))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let url = format!("http://{}", server.addrs()[0]);
    actix_rt::spawn(server.run());
    (url, got)
}

/// Every span of every export, flattened.
fn spans(got: &Received) -> Vec<Value> {
    let got = got.lock().unwrap();
    got.iter()
        .filter(|(path, _)| path == "/v1/traces")
        .flat_map(|(_, v)| v["resourceSpans"].as_array().cloned().unwrap_or_default())
        .flat_map(|rs| rs["scopeSpans"].as_array().cloned().unwrap_or_default())
        .flat_map(|ss| ss["spans"].as_array().cloned().unwrap_or_default())
        .collect()
}

fn attr<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    let kv = span["attributes"].as_array()?.iter().find(|a| a["key"] == key)?;
    kv["value"].as_object()?.values().next()
}

fn attr_str<'a>(span: &'a Value, key: &str) -> Option<&'a str> {
    attr(span, key).and_then(Value::as_str)
}

fn id(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_ascii_lowercase()
}

#[actix_rt::test]
async fn webhook_span_tree_continues_the_callers_trace_into_events_and_messages() {
    let kafka = brokers::kafka();
    let topic = brokers::unique("it-otel");
    brokers::create_topic(&kafka, &topic).await;
    let (otlp, got) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let events_file = dir.path().join("events.jsonl");
    let routes = brokers::routes_file(
        dir.path(),
        &format!("routes:\n  - name: t\n    to: [{{ sink: kafka, topic: {topic} }}, {{ sink: file }}]\n"),
    );
    let events = events_file.display().to_string();
    let (mut child, base) = start_binary(
        &[
            ("REGBRIDGE_ROOT_SECRETS", ROOT_SECRET),
            ("REGBRIDGE_KAFKA_BROKERS", &kafka),
            ("REGBRIDGE_FILE_SINK", &events),
            ("REGBRIDGE_ROUTES", &routes),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &otlp),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "500"),
        ],
        dir.path(),
    )
    .await;
    let client = awc::Client::default();

    let body = fixture("root/image-created.e2e-rendered.json");
    let ts = chrono::Utc::now().timestamp().to_string();
    let sig = sign_standard(ROOT_SECRET, "whmsg_otel", &ts, &body);
    let res = client
        .post(format!("{base}/webhooks/root"))
        .insert_header(("content-type", "application/cloudevents+json"))
        .insert_header(("webhook-id", "whmsg_otel"))
        .insert_header(("webhook-timestamp", ts.as_str()))
        .insert_header(("webhook-signature", sig.as_str()))
        .insert_header(("traceparent", format!("00-{PARENT_TRACE}-{PARENT_SPAN}-01")))
        .send_body(body)
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);

    // SIGTERM flushes the exporters on the way out.
    sigterm(&child);
    wait_exit(&mut child).await;

    let spans = spans(&got);
    let find = |name: &str| {
        spans
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no span `{name}` in {spans:#?}"))
            .clone()
    };
    let server = find("POST /webhooks/{endpoint}");
    assert_eq!(id(&server["traceId"]), PARENT_TRACE, "the caller's trace continues");
    assert_eq!(id(&server["parentSpanId"]), PARENT_SPAN);
    assert_eq!(server["kind"], 2, "SPAN_KIND_SERVER");
    assert_eq!(attr_str(&server, "http.request.method"), Some("POST"));
    assert_eq!(attr_str(&server, "http.route"), Some("/webhooks/{endpoint}"));
    assert_eq!(attr_str(&server, "url.path"), Some("/webhooks/root"));
    assert_eq!(attr_str(&server, "regbridge.endpoint"), Some("root"));
    assert_eq!(attr_str(&server, "regbridge.outcome"), Some("accepted"));
    let status = attr(&server, "http.response.status_code").unwrap();
    assert!(status == "200" || status == 200, "{status}");
    let server_id = id(&server["spanId"]);

    for name in ["verify", "normalize", "route", "publish kafka", "publish file"] {
        let s = find(name);
        assert_eq!(id(&s["traceId"]), PARENT_TRACE, "{name}");
        assert_eq!(id(&s["parentSpanId"]), server_id, "{name} is a child of the server span");
    }
    let publish = find("publish kafka");
    assert_eq!(publish["kind"], 4, "SPAN_KIND_PRODUCER");
    assert_eq!(attr_str(&publish, "messaging.system"), Some("kafka"));
    assert_eq!(attr_str(&publish, "messaging.destination.name"), Some(topic.as_str()));
    assert_eq!(attr_str(&publish, "messaging.operation.type"), Some("send"));
    assert_eq!(attr_str(&publish, "messaging.message.id"), Some("e2e_1234567890:amd64"));
    assert_eq!(attr_str(&find("normalize"), "regbridge.origtype"), Some("io.root.cr.image.created.v1"));
    let all = serde_json::to_string(&spans).unwrap();
    assert!(!all.contains(ROOT_SECRET) && !all.contains("webhook-signature"), "no secret in spans");

    // The event carries the server span's context; the Kafka message's own header the publish span's.
    let line = std::fs::read_to_string(&events_file).unwrap();
    let ev: Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    assert_eq!(ev["traceparent"], format!("00-{PARENT_TRACE}-{server_id}-01"));
    let (k, t) = (kafka.clone(), topic.clone());
    let records =
        tokio::task::spawn_blocking(move || brokers::read_topic(&k, &t, 1, Duration::from_secs(20)))
            .await
            .unwrap();
    assert_eq!(records[0].header("ce_traceparent"), ev["traceparent"].as_str());
    let publish_id = id(&publish["spanId"]);
    assert_eq!(records[0].header("traceparent"), Some(format!("00-{PARENT_TRACE}-{publish_id}-01").as_str()));

    // Metrics went out over OTLP too.
    let metrics = got
        .lock()
        .unwrap()
        .iter()
        .filter(|(p, _)| p == "/v1/metrics")
        .map(|(_, v)| v.to_string())
        .collect::<String>();
    assert!(metrics.contains("regbridge_requests_total"), "no OTLP metrics received");
    assert!(metrics.contains("regbridge_publish_duration_seconds"));
}
