//! Criterion micro-benchmarks of the per-request CPU work of regbridge, stage by stage, in the
//! order the webhook handler runs them: `verify` → `normalize` (parse + build CloudEvents) →
//! `route` → `encode` (the sink's protocol binding).
//!
//! Everything here is pure and in-process: no HTTP, no broker, no disk. Fixtures, keys, verifiers,
//! the router and the events the encoders read are prepared once outside the timed closures, and
//! each setup asserts that the scenario really takes the intended path (a valid signature, one
//! event, the expected number of targets), so no benchmark silently measures an early error.
//!
//! `cargo bench --bench hot_path -- --warm-up-time 1 --measurement-time 2` runs it in about a
//! minute and a half; a filter such as `-- verify/` runs one group.

mod common;

use std::hint::black_box;

use actix_web::http::header::HeaderMap;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use common::{
    headers, hmac_tag, normalize_and_build, padded_root, request, root_event, sign_standard, unauthenticated,
    webhook_headers, HARBOR_DEFAULT, ROOT_E2E, SECRET,
};
use regbridge::dialects::{self, DialectSpec, MediaType, Normalized};
use regbridge::event::kinds;
use regbridge::route::{RouteInput, Router};
use regbridge::sinks::{self, amqp, file, kafka, nats, ContentMode, Delivery, Target};
use regbridge::verify::{
    AuthorizationHeader, QueryToken, SignatureMode, StandardWebhooks, VerifiedRequest, Verifier,
};

// ---------------------------------------------------------------------------------------------
// Fixtures and constants shared by the groups (Root's e2e event, Harbor's Default push, the
// signing secret: `common`).
// ---------------------------------------------------------------------------------------------

const HARBOR_CE: &[u8] = include_bytes!("../tests/fixtures/harbor/push_artifact.cloudevents.fixed.json");
const HARBOR_SCAN: &[u8] =
    include_bytes!("../tests/fixtures/harbor/synthetic/scanning_completed.default.with-vulns.json");
const MSR_TAG_PUSH: &[u8] = include_bytes!("../tests/fixtures/msr/tag_push.dtr-2.4-docs.json");

/// The README's example rules ("Routing"), verbatim: a 3-sink fan-out, a `final` rule, a catch-all.
const README_RULES: &str = r#"
routes:
  - name: pushes-to-mirror
    match: { registry: [harbor, root], type: "dev.regbridge.artifact.*", repository: "library/*", tag: "^v[0-9]" }
    to:
      - { sink: kafka, topic: "registry.{registry}.{noun}" }
      - { sink: nats, subject: "registry.{registry}.{noun}.{verb}" }
      - { sink: amqp, exchange: "registry-events", routing_key: "{registry}.{noun}.{verb}", mode: structured }
  - name: scans
    match: { type: "dev.regbridge.scan.*" }
    final: true
    to: [{ sink: kafka, topic: scans }]
  - name: audit
    to: [{ sink: file }]
"#;

/// Size of the padded Root body: the load harness (`benches/load`) sends ~1 KB Root webhooks.
const PADDED_LEN: usize = 1024;

// ---------------------------------------------------------------------------------------------
// Setup helpers (never called inside a timed closure); the shared ones are in `common`.
// ---------------------------------------------------------------------------------------------

/// `v1,<hex>` as Root's reference receiver expects it: keyed with the whole secret string.
fn sign_root_hex(secret: &str, body: &[u8]) -> String {
    format!("v1,{}", hex::encode(hmac_tag(secret.as_bytes(), body)))
}

/// A distinct, valid-looking secret (32 bytes of `seed`), e.g. a sender's previous key.
fn other_secret(seed: u8) -> String {
    format!("whsec_{}", B64.encode([seed; 32]))
}

/// One of the normalize cases: a dialect, its built-in endpoint name and an already verified body.
struct Case {
    id: &'static str,
    dialect: &'static DialectSpec,
    endpoint: &'static str,
    verified: VerifiedRequest<'static>,
    len: usize,
}

fn case(id: &'static str, dialect: &str, media: MediaType, body: &'static [u8]) -> Case {
    let dialect = dialects::by_name(dialect).expect("built-in dialect");
    let verified = unauthenticated(media, Bytes::from_static(body));
    Case { id, dialect, endpoint: dialect.name, verified, len: body.len() }
}

// ---------------------------------------------------------------------------------------------
// verify
// ---------------------------------------------------------------------------------------------

/// Signature and credential checks through the public `Verifier::verify`, the way the ingress
/// calls it. For Standard Webhooks the cost is dominated by HMAC-SHA256 over
/// `id.timestamp.body` (linear in the body), plus one constant-time compare per `v1,` entry;
/// hence throughput in body bytes and the 309 B vs 1 KiB pair. Verifiers use the default
/// `SignatureMode::Auto`: the shape of each entry selects the key, so the standard (base64) and
/// Root (hex) cases each compute exactly one HMAC per secret.
fn bench_verify(c: &mut Criterion) {
    let mut g = c.benchmark_group("verify");
    let bodies = [("309B", Bytes::from_static(ROOT_E2E)), ("1KiB", padded_root(PADDED_LEN))];
    let previous = [other_secret(1), other_secret(2), other_secret(3)];

    for (size, body) in &bodies {
        // (a) The specification's mode: base64-decoded key, base64 tag; one secret.
        let standard = Verifier::StandardWebhooks(
            StandardWebhooks::new([SECRET], SignatureMode::Auto, 300).expect("valid secret"),
        );
        let standard_headers = webhook_headers(&sign_standard(SECRET, body));

        // (b) Root's reference receiver: the whole secret string as key, lowercase hex tag.
        let root_hex_headers = webhook_headers(&sign_root_hex(SECRET, body));

        // (c) A sender mid-rotation: three signatures from keys we do not hold, ours last. Every
        // entry is parsed and compared (no early exit), but all are base64, so still one HMAC.
        let mut entries: Vec<String> = previous.iter().map(|s| sign_standard(s, body)).collect();
        entries.push(sign_standard(SECRET, body));
        let decoy_headers = webhook_headers(&entries.join(" "));

        // (d) Our own rotation: two active secrets, the sender signs with the second. Every key is
        // tried (constant time), so this costs two HMACs over the body.
        let rotating = Verifier::StandardWebhooks(
            StandardWebhooks::new([previous[0].as_str(), SECRET], SignatureMode::Auto, 300)
                .expect("valid secrets"),
        );

        let cases = [
            ("standard_b64", &standard, &standard_headers),
            ("root_hex", &standard, &root_hex_headers),
            ("3_decoys_valid_last", &standard, &decoy_headers),
            ("2_secrets_second_matches", &rotating, &standard_headers),
        ];
        g.throughput(Throughput::Bytes(body.len() as u64));
        for (name, verifier, h) in cases {
            verifier.verify(request(h, "", MediaType::CloudEvents, body)).expect("setup signs validly");
            g.bench_with_input(BenchmarkId::new(name, size), body, |b, body| {
                b.iter(|| verifier.verify(request(h, "", MediaType::CloudEvents, black_box(body))))
            });
        }
    }

    // Fixed shared credentials: one SHA-256 of the presented value (a few dozen bytes) and a
    // constant-time compare per accepted value; the body is not read, so one element per request.
    g.throughput(Throughput::Elements(1));
    let harbor_body = Bytes::from_static(HARBOR_DEFAULT);
    let harbor = Verifier::Authorization(AuthorizationHeader::new(["Bearer harbor-0f3c9a7e5b21d864"]));
    let harbor_headers = headers(&[("authorization", "Bearer harbor-0f3c9a7e5b21d864")]);
    harbor.verify(request(&harbor_headers, "", MediaType::Json, &harbor_body)).expect("matching header");
    g.bench_function("harbor_authorization", |b| {
        b.iter(|| harbor.verify(request(black_box(&harbor_headers), "", MediaType::Json, &harbor_body)))
    });

    // MSR: the token rides in the query string, which is percent-decoded before hashing.
    let msr_body = Bytes::from_static(MSR_TAG_PUSH);
    let msr = Verifier::Token(QueryToken::new(["msr-7d1e4b2a9c0f/83"]));
    let no_headers = HeaderMap::new();
    let query = "token=msr-7d1e4b2a9c0f%2F83";
    msr.verify(request(&no_headers, query, MediaType::Json, &msr_body)).expect("matching token");
    g.bench_function("msr_query_token", |b| {
        b.iter(|| msr.verify(request(&no_headers, black_box(query), MediaType::Json, &msr_body)))
    });
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// normalize
// ---------------------------------------------------------------------------------------------

/// Everything a request does between verification and routing: `serde_json` parses the body
/// once, the dialect extracts its occurrences, and `event::build` assembles one CloudEvent each,
/// with the parsed payload in `data.original` (the default). Throughput is in body bytes because
/// parsing (and dropping or copying the parsed tree) scales with the payload.
fn bench_normalize(c: &mut Criterion) {
    let mut g = c.benchmark_group("normalize");
    let cases = [
        case("root", "root", MediaType::CloudEvents, ROOT_E2E),
        case("harbor_default", "harbor", MediaType::Json, HARBOR_DEFAULT),
        case("harbor_cloudevents", "harbor", MediaType::CloudEvents, HARBOR_CE),
        case("harbor_scan_vulns", "harbor", MediaType::Json, HARBOR_SCAN),
        case("msr", "msr", MediaType::Json, MSR_TAG_PUSH),
    ];
    for k in &cases {
        assert_eq!(normalize_and_build(k.dialect, k.endpoint, &k.verified, true).len(), 1, "{}", k.id);
        g.throughput(Throughput::Bytes(k.len as u64));
        g.bench_function(k.id, |b| {
            b.iter(|| normalize_and_build(k.dialect, k.endpoint, black_box(&k.verified), true))
        });
    }

    // The same Root request with `include_original` off: no compaction, `data.original` is null.
    let root = &cases[0];
    g.throughput(Throughput::Bytes(root.len as u64));
    g.bench_function("root_original_off", |b| {
        b.iter(|| normalize_and_build(root.dialect, root.endpoint, black_box(&root.verified), false))
    });
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// encode
// ---------------------------------------------------------------------------------------------

/// One normalized Root event (with `data.original` and a `traceparent`) turned into each sink's
/// wire form, without a broker: header list + body for Kafka and NATS, AMQP properties + body,
/// and the file sink's JSON line. Binary mode shares the event's `data` bytes and renders every
/// attribute as a header; structured mode writes the whole event into the body. One event per
/// iteration.
fn bench_encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(1));
    let (event, _) = root_event();
    // Targets as the README's default destinations render for this event.
    let delivery = |name: &str, key: Option<&str>, mode: ContentMode| Delivery {
        event: event.clone(),
        target: Target { name: name.to_owned(), key: key.map(str::to_owned), mode },
    };
    let kafka_binary = delivery("registry-events", None, ContentMode::Binary);
    let kafka_structured = delivery("registry-events", None, ContentMode::Structured);
    let nats_binary = delivery("registry.root.artifact.pushed", None, ContentMode::Binary);
    let amqp_binary = delivery("registry-events", Some("root.artifact.pushed"), ContentMode::Binary);
    let amqp_structured = delivery("registry-events", Some("root.artifact.pushed"), ContentMode::Structured);
    let file_line = delivery("", None, ContentMode::Binary);

    for (id, d) in [("kafka_binary", &kafka_binary), ("kafka_structured", &kafka_structured)] {
        kafka::record(d).expect("the event has data");
        g.bench_function(id, |b| b.iter(|| kafka::record(black_box(d))));
    }
    g.bench_function("nats_binary", |b| b.iter(|| nats::message(black_box(&nats_binary))));
    for (id, d) in [("amqp_binary", &amqp_binary), ("amqp_structured", &amqp_structured)] {
        amqp::encode(d).expect("names fit AMQP short strings");
        g.bench_function(id, |b| b.iter(|| amqp::encode(black_box(d))));
    }
    let batch = std::slice::from_ref(&file_line);
    g.bench_function("file_line", |b| b.iter(|| file::lines(black_box(batch))));
    g.finish();
}

// ---------------------------------------------------------------------------------------------
// route
// ---------------------------------------------------------------------------------------------

/// `Router::route` with the README's three rules, compiled once: every rule's exact-name and
/// glob/regex matchers are evaluated in order, and each matching target's templates are rendered
/// (with per-sink character sanitizing) into owned `Target`s and de-duplicated. One event per
/// iteration; the three inputs take the three shapes of the rule set.
fn bench_route(c: &mut Criterion) {
    let mut g = c.benchmark_group("route");
    g.throughput(Throughput::Elements(1));
    let used: Vec<&'static sinks::SinkSpec> =
        ["kafka", "nats", "amqp", "file"].into_iter().map(|n| sinks::by_name(n).expect("built-in")).collect();
    let router = Router::from_yaml(README_RULES, &used).expect("the README's rules compile");

    // The Root e2e event (`python:3.13`): not `library/*`, not a scan, so only `audit` matches.
    let (root_event, root_occ) = root_event();
    let root = RouteInput {
        endpoint: "root",
        registry: "root",
        ty: root_event.ty(),
        noun: root_occ.kind.noun,
        verb: root_occ.kind.verb,
        repository: root_occ.repository.as_deref(),
        tag: root_occ.tag.as_deref(),
    };

    // A Harbor push of `library/nginx:v1.27.0`: every criterion of `pushes-to-mirror` holds, so it
    // fans out to Kafka, NATS and AMQP, then `audit` adds the file sink. No fixture has such a
    // tag, so this input is synthetic; it is the most work the README's rules can ask for.
    let pushed = kinds::ARTIFACT_PUSHED.type_name();
    let fan_out = RouteInput {
        endpoint: "harbor",
        registry: "harbor",
        ty: pushed,
        noun: kinds::ARTIFACT_PUSHED.noun,
        verb: kinds::ARTIFACT_PUSHED.verb,
        repository: Some("library/nginx"),
        tag: Some("v1.27.0"),
    };

    // The Harbor scan fixture: fails the first rule on `type`, matches `scans`, which is final.
    let scan_case = case("harbor_scan_vulns", "harbor", MediaType::Json, HARBOR_SCAN);
    let normalized = dialects::normalize(
        scan_case.dialect,
        scan_case.endpoint,
        &scan_case.verified,
        false,
        dialects::Reading::default(),
    )
    .expect("fixture")
    .normalized;
    let Normalized::Events(scan_occs) = normalized else { panic!("scan maps to events") };
    let scan_occ = &scan_occs[0];
    let scan_ty = scan_occ.kind.type_name();
    let scan = RouteInput {
        endpoint: "harbor",
        registry: "harbor",
        ty: scan_ty,
        noun: scan_occ.kind.noun,
        verb: scan_occ.kind.verb,
        repository: scan_occ.repository.as_deref(),
        tag: scan_occ.tag.as_deref(),
    };

    for (id, input, targets) in [
        ("root_audit_only", &root, 1),
        ("harbor_push_fan_out_4", &fan_out, 4),
        ("harbor_scan_final", &scan, 1),
    ] {
        assert_eq!(router.route(input).len(), targets, "{id}");
        g.bench_function(id, |b| b.iter(|| router.route(black_box(input))));
    }
    g.finish();
}

criterion_group! {
    name = hot_path;
    config = common::short_config();
    targets = bench_verify, bench_normalize, bench_encode, bench_route
}
criterion_main!(hot_path);
