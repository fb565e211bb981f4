//! Property test of the handler through the real HTTP stack: for arbitrary bodies and headers,
//! every answer is 2xx or 4xx (with the file sink nothing is a server error, and no connection is
//! dropped), and the events file grows only with a 2xx: what was refused was never published. An
//! `accepted` answer lists exactly the events appended.
//!
//! A fixed-seed generator (the same cases on every run) posts to every built-in endpoint, each
//! configured with a credential built from its dialect's own scheme, plus a disabled and an
//! unknown one. Bodies: fixtures of the endpoint's dialect as they are or mutated (flipped,
//! inserted and cut bytes, bytes that are not UTF-8), another dialect's fixtures, random bytes,
//! deep nesting. Headers: the valid credential most of the time, else a wrong, missing, stale or
//! duplicated one; content types right, wrong or odd; headers dialects read, with random values.

use std::path::{Path, PathBuf};

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use regbridge::dialects::{DialectSpec, REGISTRY};
use regbridge::verify::{Algorithm, Scheme};
use sha1::Sha1;
use sha2::Sha256;

use crate::helpers::*;

/// Requests per run; a few seconds with the debug build.
const CASES: usize = 1200;
/// The app's clock, so Root's signatures are fresh and the same on every run.
const NOW: i64 = 1_774_791_612;

#[path = "../../src/dialects/rng.rs"]
mod rng;
use rng::Rng;

/// The credential each dialect's built-in endpoint is configured with.
fn credential(d: &DialectSpec) -> String {
    match d.scheme {
        Scheme::StandardWebhooks => ROOT_SECRET.to_owned(),
        Scheme::Authorization => format!("Bearer prop-{}", d.name),
        _ => format!("prop-{}", d.name),
    }
}

fn fixtures(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            fixtures(&p, out);
        } else if p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
}

/// A dialect's own fixtures (as the unit property test finds them), with their media type.
fn own_fixtures(dialect: &str) -> Vec<(Vec<u8>, &'static str)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let dirs = match dialect {
        "root" | "harbor" | "msr" => vec![dialect.to_owned()],
        "cloudevents" => vec!["other/synthetic".into()],
        other => vec![format!("other/{other}")],
    };
    let mut files = Vec::new();
    for dir in dirs.iter().map(|d| root.join(d)).filter(|d| d.is_dir()) {
        fixtures(&dir, &mut files);
    }
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            let ce = dialect == "root" || name.contains("cloudevents") || name.contains("structured-ce");
            (std::fs::read(&f).unwrap(), if ce { "application/cloudevents+json" } else { "application/json" })
        })
        .collect()
}

/// Flipped, inserted, cut and repeated bytes, some of them not UTF-8.
fn mutate(rng: &mut Rng, body: &mut Vec<u8>) {
    const SPOILERS: &[&[u8]] =
        &[b"\xff", b"\xc3", b"\\ud800", b"\\u0000", b"\n", b"\"", b"{", b"]", b",", b"null"];
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(body.len() + 1);
        match rng.below(5) {
            0 if !body.is_empty() => {
                let i = at.min(body.len() - 1);
                body[i] = rng.next() as u8;
            }
            1 => drop(body.splice(at..at, rng.pick(SPOILERS).iter().copied())),
            2 => drop(body.drain(at..(at + rng.below(24)).min(body.len()))),
            3 => {
                let copy = body[at..(at + rng.below(48)).min(body.len())].to_vec();
                body.splice(at..at, copy);
            }
            _ => body.truncate(at),
        }
    }
}

/// Nesting as deep as a hostile sender likes, alone or in a fixture's place.
fn deep(rng: &mut Rng) -> Vec<u8> {
    let depth = 1 + rng.below(4000);
    let (open, close) = if rng.chance(50) { ("[", "]") } else { (r#"{"a":"#, "}") };
    let mut body = open.repeat(depth);
    body.push_str(if rng.chance(50) { "1" } else { r#"{"specversion":"1.0"}"# });
    if rng.chance(80) {
        body.push_str(&close.repeat(depth));
    }
    body.into_bytes()
}

/// Printable text of up to `max` characters (valid in a header value).
fn text(rng: &mut Rng, max: usize) -> String {
    (0..rng.below(max + 1)).map(|_| char::from(b' ' + rng.below(95) as u8)).collect()
}

fn hex_hmac(algorithm: Algorithm, key: &[u8], body: &[u8]) -> String {
    match algorithm {
        Algorithm::Sha1 => {
            let mut m = Hmac::<Sha1>::new_from_slice(key).unwrap();
            m.update(body);
            hex::encode(m.finalize().into_bytes())
        }
        Algorithm::Sha256 => {
            let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
            m.update(body);
            hex::encode(m.finalize().into_bytes())
        }
    }
}

/// One request: path (with query), headers (repeats kept, in order) and body.
#[derive(Debug)]
struct Case {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// The credential of `d` for `body`, as headers and query parameters; `valid: false` gives a
/// wrong one of the same shape.
fn sign(rng: &mut Rng, d: &DialectSpec, body: &[u8], valid: bool) -> (Vec<(String, String)>, Vec<String>) {
    let secret = if valid { credential(d) } else { format!("{}x", credential(d)) };
    let h = |k: &str, v: String| (vec![(k.to_owned(), v)], vec![]);
    match d.scheme {
        Scheme::StandardWebhooks => {
            // Now, or outside the 300 s tolerance.
            let ts = if valid || rng.chance(50) { NOW } else { NOW - 301 - rng.below(10_000) as i64 };
            let ts = ts.to_string();
            let id = format!("msg_{}", rng.below(50));
            let sig = if rng.chance(50) {
                sign_standard(ROOT_SECRET, &id, &ts, body)
            } else {
                sign_hex(ROOT_SECRET, &id, &ts, body)
            };
            let sig = if valid {
                sig
            } else {
                format!("v1,{}", base64::engine::general_purpose::STANDARD.encode([rng.next() as u8; 32]))
            };
            let headers = [("webhook-id", id), ("webhook-timestamp", ts), ("webhook-signature", sig)];
            (headers.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(), vec![])
        }
        Scheme::Authorization => h(d.auth_header, secret),
        Scheme::Token => (vec![], vec![format!("token={secret}")]),
        Scheme::Hmac => {
            let spec = d.hmac.expect("an hmac dialect has its spec");
            let form = rng.pick(spec.forms);
            let value = if spec.token_too && rng.chance(30) {
                secret
            } else {
                format!("{}{}", form.prefix, hex_hmac(form.algorithm, secret.as_bytes(), body))
            };
            h(spec.header, value)
        }
        Scheme::None => (vec![], vec![]),
    }
}

const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/cloudevents+json",
    "application/cloudevents-batch+json",
    "application/vnd.docker.distribution.events.v2+json",
    "application/json; charset=utf-8",
    "APPLICATION/JSON",
    "application/+json",
    "text/plain",
    "multipart/form-data; boundary=x",
    "json",
    "",
];

/// Headers some dialects read, given random or plausible values.
const READ_HEADERS: &[(&str, &[&str])] = &[
    ("ce-specversion", &["1.0", "0.3"]),
    ("ce-id", &["e-1"]),
    ("ce-type", &["dev.example.image.pushed", "com.example.other"]),
    ("ce-source", &["/registry"]),
    ("ce-time", &["2026-03-29T13:40:12Z", "not a time"]),
    ("x-github-event", &["package", "registry_package", "ping", "push"]),
    ("x-github-delivery", &["d-1"]),
    ("x-nexus-webhook-id", &["rm:repository:component", "rm:repository:asset", "rm:global:audit"]),
    ("x-goog-pubsub-message-id", &["m-1"]),
    ("x-goog-pubsub-publish-time", &["2026-03-29T13:40:12.123Z", "yesterday"]),
    ("aeg-event-type", &["Notification", "SubscriptionValidation"]),
    ("traceparent", &["00-fc1da72ecc3a6b52559ca3cb74e02834-18205349f7b6687d-01", "00-zz"]),
    ("webhook-request-origin", &["eventgrid.azure.net"]),
];

fn generate(
    rng: &mut Rng,
    d: &DialectSpec,
    own: &[(Vec<u8>, &'static str)],
    any: &[(Vec<u8>, &'static str)],
) -> Case {
    let (mut body, mut content_type) = match rng.below(10) {
        0..=5 if !own.is_empty() => rng.pick(own).clone(),
        0..=6 => rng.pick(any).clone(),
        7 => ((0..rng.below(600)).map(|_| rng.next() as u8).collect(), *rng.pick(CONTENT_TYPES)),
        8 => (deep(rng), "application/json"),
        _ => (Vec::new(), "application/json"),
    };
    if rng.chance(50) {
        mutate(rng, &mut body);
    }
    if rng.chance(20) {
        content_type = *rng.pick(CONTENT_TYPES);
    }
    let mut headers = Vec::new();
    if !rng.chance(5) {
        headers.push(("content-type".to_owned(), content_type.to_owned()));
    }
    let (mut query, valid) = (Vec::new(), rng.chance(75));
    if !rng.chance(5) {
        let (h, q) = sign(rng, d, &body, valid);
        // Sometimes the credential twice, or a wrong one beside it (before or after).
        if rng.chance(10) {
            let (wrong, wq) = sign(rng, d, &body, false);
            let both = if rng.chance(50) { [h.clone(), wrong] } else { [wrong, h.clone()] };
            headers.extend(both.into_iter().flatten());
            query.extend(wq);
        } else if rng.chance(5) {
            headers.extend(h.iter().cloned().chain(h.iter().cloned()));
        } else {
            headers.extend(h);
        }
        query.extend(q);
    }
    for _ in 0..rng.below(3) {
        let (name, values) = rng.pick(READ_HEADERS);
        let value = if rng.chance(70) { (*rng.pick(values)).to_owned() } else { text(rng, 40) };
        headers.push(((*name).to_owned(), value));
    }
    if rng.chance(10) {
        let event: String = form_urlencoded::byte_serialize(text(rng, 12).as_bytes()).collect();
        query.push(format!("event={event}"));
    }
    let query = if query.is_empty() { String::new() } else { format!("?{}", query.join("&")) };
    Case { path: format!("/webhooks/{}{query}", d.name), headers, body }
}

/// Posts a case (headers appended, so repeats reach the server). `Err`: no answer at all.
async fn post(app: &TestApp, case: &Case) -> Result<(u16, serde_json::Value), String> {
    let mut req = app.client.post(format!("{}{}", app.base, case.path));
    for (k, v) in &case.headers {
        req = req.append_header((k.as_str(), v.as_str()));
    }
    let mut res = req.send_body(case.body.clone()).await.map_err(|e| e.to_string())?;
    let bytes = res.body().limit(4 << 20).await.map_err(|e| e.to_string())?;
    Ok((res.status().as_u16(), serde_json::from_slice(&bytes).unwrap_or_default()))
}

fn lines(path: &Path) -> usize {
    std::fs::read(path).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
}

#[actix_rt::test]
async fn whatever_is_posted_the_answer_is_2xx_or_4xx_and_only_2xx_publishes() {
    let enabled: Vec<&DialectSpec> = REGISTRY.iter().copied().filter(|d| d.env.is_some()).collect();
    let mut opts = Options::default().clock(NOW).with("REGBRIDGE_RATE_LIMIT", "0");
    for d in &enabled {
        opts = opts.with(d.env.unwrap(), &credential(d));
    }
    let app = spawn_app_with(opts).await;

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut all = Vec::new();
    fixtures(&root, &mut all);
    all.sort();
    let any: Vec<_> = all.iter().map(|f| (std::fs::read(f).unwrap(), "application/json")).collect();
    let own: Vec<_> = enabled.iter().map(|d| own_fixtures(d.name)).collect();
    // A dialect without a variable has no built-in endpoint (404), and neither has an unknown name.
    let disabled: Vec<&DialectSpec> = REGISTRY.iter().copied().filter(|d| d.env.is_none()).collect();

    let mut rng = Rng(0x0BAD_5EED_2026);
    let mut accepted = vec![0usize; enabled.len()];
    let mut statuses = std::collections::BTreeMap::new();
    for n in 0..CASES {
        let i = rng.below(enabled.len() + 1);
        let d = enabled.get(i).copied().unwrap_or_else(|| *rng.pick(&disabled));
        let mut case = generate(&mut rng, d, own.get(i).map_or(&[][..], Vec::as_slice), &any);
        if i == enabled.len() && rng.chance(50) {
            case.path = case.path.replacen("/webhooks/", "/webhooks/no-such-", 1);
        }
        let before = lines(&app.events_path);
        let (status, answer) =
            post(&app, &case).await.unwrap_or_else(|e| panic!("case {n}: no answer ({e}): {case:?}"));
        let added = lines(&app.events_path) - before;
        *statuses.entry(status).or_insert(0usize) += 1;
        let what = || format!("case {n}: {status} {answer} for {case:?}");
        assert!((200..300).contains(&status) || (400..500).contains(&status), "{}", what());
        if !(200..300).contains(&status) {
            assert_eq!(added, 0, "refused but published: {}", what());
        } else if answer["status"] == "accepted" {
            let events = answer["events"].as_array().map_or(0, Vec::len);
            assert_eq!(added, events, "accepted {events} events, published {added}: {}", what());
            if let Some(count) = accepted.get_mut(i) {
                *count += usize::from(events > 0);
            }
        } else {
            assert_eq!(added, 0, "answered {} but published: {}", answer["status"], what());
        }
    }
    // The cases must reach acceptance everywhere, or the test would prove little.
    for (d, count) in enabled.iter().zip(&accepted) {
        assert!(*count > 0, "{}: nothing accepted in {CASES} cases ({statuses:?})", d.name);
    }
    assert_eq!(app.get("/healthz").await.0, 200);
}
