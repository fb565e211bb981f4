//! Criterion benchmarks of how the per-request CPU cost grows with the work, one group per axis:
//!
//! - `scaling/route_rules`: one event routed by a rule set of 1, 10, 100 and 1,000 rules; the
//!   event matches only the last rule, the worst case for a scan over the rules.
//! - `scaling/payload`: verify + normalize + build of a signed Root event of 1 KiB, 64 KiB and
//!   1 MiB (the HMAC, the JSON parse and the `data.original` copy all read the whole body).
//! - `scaling/harbor_resources`: normalize + build of one Harbor push naming 1, 10 and 100
//!   artifacts (one event each, each with its own part of the payload).
//! - `scaling/sinks`: route + encode of one event bound for 1, 2 and 3 sinks (Kafka; + NATS;
//!   + AMQP), each target with its sink's encoder.
//!
//! As in `hot_path`, everything is pure and in-process, every input is prepared outside the timed
//! closures, and each setup asserts that the scenario takes the intended path (a valid
//! signature, the expected number of events or targets), so no size silently measures an early
//! error. Compare the sizes of a group with each other, not with absolute numbers elsewhere.
//!
//! `cargo bench --bench scaling -- --warm-up-time 1 --measurement-time 3` runs it in about a
//! minute; `-- --quick` runs every size in about ten seconds (CI); a filter such as
//! `-- scaling/payload` runs one group.

mod common;

use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::Value;
use sha2::{Digest, Sha256};

use common::{
    normalize_and_build, padded_root, request, root_event, sign_standard, unauthenticated, webhook_headers,
    HARBOR_DEFAULT, SECRET,
};
use regbridge::dialects::{self, MediaType};
use regbridge::event::{kinds, CloudEvent};
use regbridge::route::{RouteInput, Router};
use regbridge::sinks::{self, amqp, kafka, nats, Delivery, SinkSpec};
use regbridge::verify::{SignatureMode, StandardWebhooks, Verifier};

/// Every sink a rules file may name, as the service passes its configured sinks.
fn all_sinks() -> Vec<&'static SinkSpec> {
    ["kafka", "nats", "amqp", "file"].into_iter().map(|n| sinks::by_name(n).expect("built-in")).collect()
}

// ---------------------------------------------------------------------------------------------
// scaling/route_rules
// ---------------------------------------------------------------------------------------------

/// `n` rules as a platform team might write them, one per team: each matches its own repository
/// tree `team-<i>/**`; half also filter on the `type` (one glob or a list of two), two in three
/// on the registry or the endpoint, one in ten on a release `tag`. Most send to a Kafka topic of
/// the team's, one in five (and the last) to a NATS subject as well.
fn team_rules(n: usize) -> String {
    let mut yaml = String::from("routes:\n");
    for i in 0..n {
        let mut criteria = vec![format!("repository: 'team-{i}/**'")];
        match i % 4 {
            0 => criteria.push("type: 'dev.regbridge.artifact.*'".into()),
            1 => criteria.push("type: ['dev.regbridge.artifact.pushed.*', 'dev.regbridge.chart.*']".into()),
            _ => {}
        }
        match i % 3 {
            0 => criteria.push("registry: [harbor, root]".into()),
            1 => criteria.push("endpoint: [harbor-prod, harbor-dr]".into()),
            _ => {}
        }
        if i % 10 == 9 {
            criteria.push(r"tag: '^v[0-9]+\.[0-9]+'".into());
        }
        let mut to = format!("{{ sink: kafka, topic: 'team-{i}.{{registry}}.{{noun}}' }}");
        if i % 5 == 4 || i + 1 == n {
            write!(to, ", {{ sink: nats, subject: 'team-{i}.{{noun}}.{{verb}}' }}").expect("to a String");
        }
        writeln!(yaml, "  - name: team-{i}\n    match: {{ {} }}\n    to: [{to}]", criteria.join(", "))
            .expect("to a String");
    }
    yaml
}

/// `Router::route` for a Harbor push of `team-<n-1>/app/api:v1.27.0` from endpoint `harbor-prod`.
/// The event passes every rule's endpoint, registry, type and tag criteria, so only the
/// repository glob tells the rules apart and each of them is evaluated up to it; only the last
/// rule matches (Kafka + NATS: two targets, at every size). One event per iteration.
fn bench_route_rules(c: &mut Criterion) {
    let mut g = c.benchmark_group("scaling/route_rules");
    g.throughput(Throughput::Elements(1));
    let sinks = all_sinks();
    let pushed = kinds::ARTIFACT_PUSHED;
    for n in [1usize, 10, 100, 1_000] {
        let router = Router::from_yaml(&team_rules(n), &sinks).expect("the generated rules compile");
        let repository = format!("team-{}/app/api", n - 1);
        let input = RouteInput {
            endpoint: "harbor-prod",
            registry: "harbor",
            ty: pushed.type_name(),
            noun: pushed.noun,
            verb: pushed.verb,
            repository: Some(&repository),
            tag: Some("v1.27.0"),
        };
        let targets = router.route(&input);
        let names: Vec<_> = targets.iter().map(|(sink, t)| (*sink, t.name.as_str())).collect();
        let (kafka_topic, nats_subject) =
            (format!("team-{}.harbor.artifact", n - 1), format!("team-{}.artifact.pushed", n - 1));
        assert_eq!(names, [("kafka", kafka_topic.as_str()), ("nats", nats_subject.as_str())], "{n} rules");
        g.bench_with_input(BenchmarkId::from_parameter(n), &input, |b, input| {
            b.iter(|| router.route(black_box(input)))
        });
    }
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// scaling/payload
// ---------------------------------------------------------------------------------------------

/// A Root request signed the specification's way (one secret, `SignatureMode::Auto`) with its
/// body padded to 1 KiB, 64 KiB and 1 MiB, through `Verifier::verify` and then normalize + build
/// with `data.original` on (the default). HMAC-SHA256, the JSON parse of the padding string and
/// the compaction of the body into `data.original` are each linear in the body; throughput in
/// body bytes.
fn bench_payload(c: &mut Criterion) {
    let mut g = c.benchmark_group("scaling/payload");
    let root = dialects::by_name("root").expect("built-in dialect");
    let verifier = Verifier::StandardWebhooks(
        StandardWebhooks::new([SECRET], SignatureMode::Auto, 300).expect("valid secret"),
    );
    for (size, len) in [("1KiB", 1usize << 10), ("64KiB", 64 << 10), ("1MiB", 1 << 20)] {
        let body = padded_root(len);
        let headers = webhook_headers(&sign_standard(SECRET, &body));
        let run = |body: &Bytes| {
            let verified = verifier
                .verify(request(&headers, "", MediaType::CloudEvents, body))
                .expect("setup signs validly");
            normalize_and_build(root, root.name, &verified, true)
        };
        let events = run(&body);
        assert_eq!(events.len(), 1, "{size}");
        assert!(events[0].data().len() > len, "{size}: `data.original` holds the whole body");
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &body, |b, body| {
            b.iter(|| run(black_box(body)))
        });
    }
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// scaling/harbor_resources
// ---------------------------------------------------------------------------------------------

/// Harbor's Default-format PUSH_ARTIFACT fixture with `n` resources: `harbor/alpine:v1.<i>.0`,
/// each with a digest of its own, as Harbor sends them (compact JSON).
fn harbor_push(n: usize) -> Bytes {
    let mut payload: Value = serde_json::from_slice(HARBOR_DEFAULT).expect("JSON fixture");
    let resources = &mut payload["event_data"]["resources"];
    let template = resources[0].clone();
    *resources = Value::Array(
        (0..n)
            .map(|i| {
                let mut r = template.clone();
                let digest = format!("sha256:{}", hex::encode(Sha256::digest(format!("alpine-{i}"))));
                r["resource_url"] = format!("localhost/harbor/alpine:v1.{i}.0").into();
                r["digest"] = digest.into();
                r["tag"] = format!("v1.{i}.0").into();
                r
            })
            .collect(),
    );
    Bytes::from(serde_json::to_vec(&payload).expect("a JSON tree serializes"))
}

/// Normalize + build of one Harbor push naming 1, 10 and 100 artifacts, `data.original` on: one
/// JSON parse of the body, then per resource an occurrence, its own part of the payload (the
/// payload around the resources once, then each resource) and a CloudEvent. Throughput in events.
fn bench_harbor_resources(c: &mut Criterion) {
    let mut g = c.benchmark_group("scaling/harbor_resources");
    let harbor = dialects::by_name("harbor").expect("built-in dialect");
    for n in [1usize, 10, 100] {
        let verified = unauthenticated(MediaType::Json, harbor_push(n));
        let events = normalize_and_build(harbor, harbor.name, &verified, true);
        let subjects: Vec<_> = events.iter().map(|e| e.subject().expect("a subject")).collect();
        let want: Vec<_> = (0..n).map(|i| format!("harbor/alpine:v1.{i}.0")).collect();
        assert_eq!(subjects, want, "{n} resources: one event each, in order");
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &verified, |b, verified| {
            b.iter(|| normalize_and_build(harbor, harbor.name, black_box(verified), true))
        });
    }
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// scaling/sinks
// ---------------------------------------------------------------------------------------------

/// The README's default destinations of each sink, in the order the group adds them.
const SINK_TARGETS: [&str; 3] = [
    "{ sink: kafka, topic: 'registry.{registry}.{noun}' }",
    "{ sink: nats, subject: 'registry.{registry}.{noun}.{verb}' }",
    "{ sink: amqp, exchange: registry-events, routing_key: '{registry}.{noun}.{verb}' }",
];

/// What the handler does per event once it is built: route it, then for each target a `Delivery`
/// (the event's `Arc` and the rendered target) encoded by its sink (binary mode). Returns the
/// number of messages.
fn route_and_encode(router: &Router, input: &RouteInput<'_>, event: &Arc<CloudEvent>) -> usize {
    let targets = router.route(input);
    let messages = targets.len();
    for (sink, target) in targets {
        let d = Delivery { event: event.clone(), target };
        match sink {
            "kafka" => {
                black_box(kafka::record(&d).expect("the event has data"));
            }
            "nats" => {
                black_box(nats::message(&d));
            }
            "amqp" => {
                black_box(amqp::encode(&d).expect("names fit AMQP short strings"));
            }
            other => unreachable!("no encoder for sink `{other}`"),
        }
    }
    messages
}

/// The normalized Root e2e event routed by one rule to 1, 2 and 3 sinks (Kafka; Kafka + NATS;
/// Kafka + NATS + AMQP) and encoded for each: the cost of each further sink an event fans out
/// to. Throughput in messages (targets).
fn bench_sinks(c: &mut Criterion) {
    let mut g = c.benchmark_group("scaling/sinks");
    let sinks = all_sinks();
    let (event, occ) = root_event();
    let input = RouteInput::of("root", "root", event.ty(), &occ);
    for n in 1..=SINK_TARGETS.len() {
        let rules = format!("routes:\n  - name: fan-out\n    to: [{}]\n", SINK_TARGETS[..n].join(", "));
        let router = Router::from_yaml(&rules, &sinks).expect("the rules compile");
        let routed: Vec<_> = router.route(&input).into_iter().map(|(sink, _)| sink).collect();
        assert_eq!(routed, ["kafka", "nats", "amqp"][..n], "{n} sinks");
        assert_eq!(route_and_encode(&router, &input, &event), n);
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &input, |b, input| {
            b.iter(|| route_and_encode(&router, black_box(input), &event))
        });
    }
    g.finish();
}

criterion_group! {
    name = scaling;
    config = common::short_config();
    targets = bench_route_rules, bench_payload, bench_harbor_resources, bench_sinks
}
criterion_main!(scaling);
