//! Every dialect's normalizer on arbitrary bodies, through the public path the handler takes:
//! `Verifier::verify` (unauthenticated) → `dialects::normalize` → `event::build` → routing →
//! each sink's encoding, both content modes, and the outbox's stored form.
//!
//! Input: byte 0 picks the dialect (`REGISTRY[b % len]`); byte 1 the reading: bits 0-1 the media
//! type (JSON, CloudEvents, batch, JSON), bits 2-4 a set of headers (and a query) some dialects
//! read, bit 5 drops `data.original`, bit 6 passthrough, bit 7 small bounds. The rest is the body.
//! Seeds: every fixture, prefixed by its dialect's bytes (`fuzz/seed`).
//!
//! Beyond "never panics": an accepted body is UTF-8 and reads the same a second time, the events
//! stay within the bounds, each event is CloudEvents JSON with JSON `data` and attributes free of
//! control characters, and the stored form reads back as the same event.
#![no_main]

use std::sync::{Arc, LazyLock};

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use regbridge::dialects::{self, Bounds, MediaType, Normalization, Normalized, Reading, REGISTRY};
use regbridge::event::{self, stored, CloudEvent, Envelope};
use regbridge::route::{RouteInput, Router};
use regbridge::sinks::{self, amqp, file, kafka, nats, ContentMode, Delivery, Target};
use regbridge::verify::{UnverifiedRequest, Verifier};
use serde_json::Value;

const MEDIA: [MediaType; 4] =
    [MediaType::Json, MediaType::CloudEvents, MediaType::CloudEventsBatch, MediaType::Json];

/// Headers and a query string that steer dialects which read them (GitHub's and Nexus's event
/// headers, CloudEvents' binary mode, Pub/Sub's message id, Quay's `?event=`).
type Preset = (&'static [(&'static str, &'static str)], &'static str);
const PRESETS: [Preset; 8] = [
    (&[], ""),
    (&[("x-github-event", "package"), ("x-github-delivery", "d-1")], ""),
    (&[("x-github-event", "registry_package"), ("x-github-delivery", "d-1")], ""),
    (&[("x-nexus-webhook-id", "rm:repository:component"), ("x-nexus-webhook-delivery", "d-1")], ""),
    (
        &[
            ("ce-specversion", "1.0"),
            ("ce-type", "dev.example.image.pushed"),
            ("ce-id", "e%2D1"),
            ("ce-source", "/registry"),
            ("ce-time", "2026-01-01T00:00:00Z"),
            ("content-type", "application/json"),
        ],
        "",
    ),
    (&[("x-goog-pubsub-message-id", "m-1"), ("x-goog-pubsub-publish-time", "2026-01-01T00:00:00.123Z")], ""),
    (&[("x-github-event", "ping")], ""),
    (&[], "event=repo_push"),
];

/// Every sink, with templates that use every placeholder (so substitution and character
/// replacement run on the payload's own values).
const RULES: &str = r#"
routes:
  - name: all
    to:
      - { sink: kafka, topic: "registry.{registry}.{noun}.{repository}" }
      - { sink: nats, subject: "registry.{endpoint}.{noun}.{verb}.{tag}" }
      - { sink: amqp, exchange: "ex-{registry}", routing_key: "{registry}.{repository}.{tag}.{verb}" }
      - { sink: file }
"#;

static ROUTER: LazyLock<Router> =
    LazyLock::new(|| Router::from_yaml(RULES, sinks::REGISTRY).expect("the fuzz rules are valid"));

fuzz_target!(|data: &[u8]| {
    let [dialect, options, body @ ..] = data else { return };
    let dialect = REGISTRY[usize::from(*dialect) % REGISTRY.len()];
    let media = MEDIA[usize::from(options & 3)];
    let (preset, query) = PRESETS[usize::from(options >> 2 & 7)];
    let keep_original = options & 0x20 == 0;
    let passthrough = options & 0x40 != 0;
    let bounds =
        if options & 0x80 != 0 { Bounds { max_events: 3, max_output: 512 } } else { Bounds::default() };

    let mut headers = HeaderMap::new();
    for (name, value) in preset {
        headers.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
    }
    let req =
        UnverifiedRequest { headers: &headers, query, media, body: Bytes::copy_from_slice(body), now: 0 };
    let verified = Verifier::Unauthenticated.verify(req).expect("unauthenticated accepts everything");
    let reading = Reading { bounds, passthrough };
    let Ok(Normalization { normalized, original, .. }) =
        dialects::normalize(dialect, dialect.name, &verified, keep_original, reading)
    else {
        return;
    };
    assert!(std::str::from_utf8(body).is_ok(), "accepted a body that is not UTF-8");
    // A sender's retry is the same delivery: the same events, ids included (replay suppression
    // and JetStream's duplicate window rely on it).
    let again = dialects::normalize(dialect, dialect.name, &verified, keep_original, reading);
    assert_eq!(again.map(|n| n.normalized).ok().as_ref(), Some(&normalized), "a second reading differs");
    let Normalized::Events(occurrences) = normalized else { return };
    assert!(occurrences.len() <= bounds.max_events, "{} events over the bound", occurrences.len());

    let env = Envelope { endpoint: dialect.name, registry: dialect.name, ..Envelope::default() };
    for occ in &occurrences {
        let ev = Arc::new(event::build(occ, &env, original.as_ref()));
        check_event(&ev);
        let ty = ev.ty().to_owned();
        for (sink, target) in ROUTER.route(&RouteInput::of(dialect.name, dialect.name, &ty, occ)) {
            for mode in [ContentMode::Binary, ContentMode::Structured] {
                let target = Target { mode, ..target.clone() };
                encode(sink, &Delivery { event: ev.clone(), target });
            }
        }
        let mut bytes = Vec::new();
        stored::encode(&ev, &mut bytes);
        let back = stored::decode(&mut stored::Reader(&bytes)).expect("a stored event reads back");
        assert_eq!(&back, ev.as_ref(), "the stored event differs");
    }
});

/// What the property test holds every published event to (`src/dialects/properties.rs`).
fn check_event(ev: &CloudEvent) {
    let json = ev.to_json();
    let v: Value = serde_json::from_slice(&json).expect("the event is JSON");
    for attr in ["specversion", "id", "type", "source"] {
        assert!(v[attr].is_string(), "`{attr}` missing");
    }
    let data: Value = serde_json::from_slice(ev.data()).expect("`data` is JSON");
    assert_eq!(data, v["data"]);
    for (a, value) in ev.attributes() {
        assert!(!value.chars().any(char::is_control), "`{}` holds a control character", a.name);
    }
}

/// The delivery as each sink's binding would send it (no broker involved).
fn encode(sink: &str, d: &Delivery) {
    match sink {
        "kafka" => drop(kafka::record(d).expect("every event has data")),
        "nats" => drop(nats::message(d)),
        // A routing key over AMQP's 255 bytes is refused, not a panic.
        "amqp" => drop(amqp::encode(d)),
        "file" => {
            let line = file::lines(std::slice::from_ref(d));
            serde_json::from_slice::<Value>(&line).expect("the file line is JSON");
        }
        other => panic!("unexpected sink {other}"),
    }
}
