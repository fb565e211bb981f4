//! Setup shared by the criterion benchmarks (`hot_path`, `scaling`): the fixtures, Standard
//! Webhooks signing, the request the ingress hands the verifier, and normalize + build as the
//! handler runs it. Each bench file is its own crate and includes this module with `mod common;`
//! (a `benches/<dir>/mod.rs` is not a bench target of its own). Everything here is setup, except
//! [`request`] and [`normalize_and_build`], which are meant to run inside the timed closures.

use std::sync::{Arc, LazyLock};

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use regbridge::dialects::{self, DialectSpec, MediaType, Normalized};
use regbridge::event::{self, CloudEvent, Envelope, Occurrence};
use regbridge::verify::{UnverifiedRequest, VerifiedRequest, Verifier};

/// Root's structured CloudEvent as its e2e workflow sends it (309 bytes).
pub const ROOT_E2E: &[u8] = include_bytes!("../../tests/fixtures/root/image-created.e2e-rendered.json");
/// Harbor's Default-format PUSH_ARTIFACT, one resource.
pub const HARBOR_DEFAULT: &[u8] = include_bytes!("../../tests/fixtures/harbor/push_artifact.default.json");

/// The dummy secret of `tests/fixtures/root/signed-requests.json`, and its message id/timestamp.
pub const SECRET: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const MSG_ID: &str = "whmsg_e2e_1234567890";
pub const TIMESTAMP: i64 = 1_774_791_612;
/// Every real request carries a W3C trace context (incoming or freshly started), which
/// `event::build` copies into the `traceparent` extension; the benchmarks do the same.
const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA256 over Standard Webhooks' signed content `<id>.<timestamp>.<body>`.
pub fn hmac_tag(key: &[u8], body: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(format!("{MSG_ID}.{TIMESTAMP}.").as_bytes());
    mac.update(body);
    mac.finalize().into_bytes().into()
}

/// The specification's key: the secret after `whsec_`, base64-decoded.
fn standard_key(secret: &str) -> Vec<u8> {
    B64.decode(secret.strip_prefix("whsec_").unwrap_or(secret)).expect("test secrets are base64")
}

/// `v1,<base64>` as the specification (and its official libraries) send it.
pub fn sign_standard(secret: &str, body: &[u8]) -> String {
    format!("v1,{}", B64.encode(hmac_tag(&standard_key(secret), body)))
}

pub fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in pairs {
        h.insert(HeaderName::from_static(name), HeaderValue::from_str(value).expect("ASCII header value"));
    }
    h
}

pub fn webhook_headers(signature: &str) -> HeaderMap {
    let ts = TIMESTAMP.to_string();
    headers(&[("webhook-id", MSG_ID), ("webhook-timestamp", &ts), ("webhook-signature", signature)])
}

/// The Root fixture padded to exactly `len` bytes with an extra `data.padding` string, so it
/// stays a valid Root event (the dialect ignores unknown fields).
pub fn padded_root(len: usize) -> Bytes {
    let text = std::str::from_utf8(ROOT_E2E).expect("UTF-8 fixture").trim_end();
    let head = text.strip_suffix("}}").expect("the fixture ends with `data` and the event closing");
    let frame = head.len() + r#","padding":""}}"#.len();
    let padding = len.checked_sub(frame).expect("the padded length holds the fixture");
    let body = format!(r#"{head},"padding":"{}"}}}}"#, "x".repeat(padding));
    assert_eq!(body.len(), len);
    serde_json::from_str::<serde_json::Value>(&body).expect("padded body is still JSON");
    Bytes::from(body)
}

/// A request as the ingress hands it to the verifier. Building it is a few pointer copies and
/// (for owned bodies) one reference-count increment, so it is done inside the timed closures.
pub fn request<'a>(
    headers: &'a HeaderMap,
    query: &'a str,
    media: MediaType,
    body: &Bytes,
) -> UnverifiedRequest<'a> {
    UnverifiedRequest { headers, query, media, body: body.clone(), now: TIMESTAMP }
}

/// The headers of the unauthenticated requests: none.
static NO_HEADERS: LazyLock<HeaderMap> = LazyLock::new(HeaderMap::new);

/// `body` as an already verified request without headers. `Unauthenticated` is the only public
/// way to a `VerifiedRequest` without signing the body.
pub fn unauthenticated(media: MediaType, body: Bytes) -> VerifiedRequest<'static> {
    Verifier::Unauthenticated
        .verify(request(&NO_HEADERS, "", media, &body))
        .expect("an unauthenticated endpoint accepts everything")
}

/// What the ingress handler runs per verified request: the dialect reads the body (Root straight
/// into its structs, the others through one JSON tree), then one CloudEvent per occurrence,
/// wrapped in `Arc` for routing. With `include_original` the body is compacted once into
/// `data.original` and spliced into every event's `data` (Harbor fan-outs: each its own part).
pub fn normalize_and_build(
    dialect: &DialectSpec,
    endpoint: &str,
    verified: &VerifiedRequest<'_>,
    include_original: bool,
) -> Vec<Arc<CloudEvent>> {
    let dialects::Normalization { normalized, original, .. } =
        dialects::normalize(dialect, endpoint, verified, include_original, dialects::Reading::default())
            .expect("fixture normalizes");
    let Normalized::Events(occurrences) = normalized else { panic!("fixture maps to events") };
    let envelope = Envelope {
        endpoint,
        registry: dialect.name,
        source: None,
        traceparent: Some(TRACEPARENT),
        tracestate: None,
    };
    occurrences.iter().map(|occ| Arc::new(event::build(occ, &envelope, original.as_ref()))).collect()
}

/// The normalized Root e2e event (original on, trace context set), plus its occurrence.
pub fn root_event() -> (Arc<CloudEvent>, Occurrence) {
    let root = dialects::by_name("root").expect("built-in dialect");
    let verified = unauthenticated(MediaType::CloudEvents, Bytes::from_static(ROOT_E2E));
    let normalized = dialects::normalize(root, root.name, &verified, false, dialects::Reading::default())
        .expect("fixture")
        .normalized;
    let Normalized::Events(mut occurrences) = normalized else { panic!("Root maps to events") };
    let events = normalize_and_build(root, root.name, &verified, true);
    assert_eq!((events.len(), occurrences.len()), (1, 1));
    (events[0].clone(), occurrences.remove(0))
}

/// Short defaults shared by the criterion files: 50 samples after 1 s of warm-up over 2 s give
/// stable medians for sub-10 µs routines, and the largest sizes (a 1 MiB body, 100 events) run
/// for milliseconds, where criterion switches to flat sampling. Command-line options override
/// all of these (`--quick` in CI).
pub fn short_config() -> criterion::Criterion {
    criterion::Criterion::default()
        .sample_size(50)
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(2))
}
