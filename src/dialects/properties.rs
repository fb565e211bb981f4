//! Property test: every fixture of every dialect, mutated the ways a hostile or broken sender
//! would (flipped and inserted bytes, bytes that are not UTF-8, unpaired surrogate escapes, cuts,
//! repeats). Whatever the body, each event that would be published is valid UTF-8 JSON that
//! parses as a CloudEvent, its `data` (the binary-mode body) parses as JSON, and its attributes
//! hold no control character.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde_json::Value;

use super::rng::Rng;
use super::{normalize, MediaType, Normalized, REGISTRY};
use crate::event::{self, Envelope};
use crate::verify::{UnverifiedRequest, Verifier};

/// Mutated bodies tried per fixture; every run tries the same ones (fixed seed).
const CASES: usize = 400;

/// Byte sequences a sender might slip in: not UTF-8, a lone surrogate escape, control
/// characters raw and escaped, structure.
const SPOILERS: &[&[u8]] = &[
    b"\xff",
    b"\xe9",
    b"\xc4",
    b"\xed\xa0\x80",
    b"\\ud800",
    b"\\udfff",
    b"\\u0000",
    b"\n",
    b"\x01",
    b"\"",
    b"\\",
    b"{",
    b"}",
    b",",
];

fn mutate(rng: &mut Rng, body: &[u8]) -> Vec<u8> {
    let mut b = body.to_vec();
    for _ in 0..1 + rng.below(3) {
        let at = rng.below(b.len() + 1);
        match rng.below(6) {
            0 if !b.is_empty() => {
                let i = at.min(b.len() - 1);
                b[i] = rng.next() as u8;
            }
            1 => {
                let spoiler = *rng.pick(SPOILERS);
                b.splice(at..at, spoiler.iter().copied());
            }
            2 => {
                // Right after an opening quote: inside a string the dialect may not read.
                if let Some(q) = b.iter().skip(at).position(|&c| c == b'"').map(|q| q + at + 1) {
                    let spoiler = SPOILERS[rng.below(5)];
                    b.splice(q..q, spoiler.iter().copied());
                }
            }
            3 => {
                let end = (at + rng.below(16)).min(b.len());
                b.drain(at..end);
            }
            4 => {
                let end = (at + rng.below(32)).min(b.len());
                let copy = b[at..end].to_vec();
                b.splice(at..at, copy);
            }
            _ => b.truncate(at),
        }
    }
    b
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

/// Where a dialect's fixtures are, under `tests/fixtures`.
fn fixture_dirs(dialect: &str) -> Vec<String> {
    match dialect {
        "root" | "harbor" | "msr" => vec![dialect.to_owned()],
        // Any CloudEvents sender: the synthetic structured ones, and Harbor's.
        "cloudevents" => vec!["other/synthetic".into(), "harbor".into()],
        other => vec![format!("other/{other}")],
    }
}

#[track_caller]
fn assert_publishable(ev: &event::CloudEvent, what: &str) {
    let json = ev.to_json();
    let text = std::str::from_utf8(&json).unwrap_or_else(|e| panic!("{what}: event is not UTF-8: {e}"));
    let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{what}: event is not JSON: {e}"));
    for attr in ["specversion", "id", "type", "source"] {
        assert!(v[attr].is_string(), "{what}: `{attr}` missing: {text}");
    }
    assert!(v["data"].is_object(), "{what}: `data` is not an object");
    let data: Value =
        serde_json::from_slice(ev.data()).unwrap_or_else(|e| panic!("{what}: data is not JSON: {e}"));
    assert_eq!(data, v["data"], "{what}");
    for (a, value) in ev.attributes() {
        assert!(!value.chars().any(char::is_control), "{what}: `{}` holds a control character", a.name);
    }
}

/// A dialect's fixtures, sorted: those under its directories (for `cloudevents`, only the
/// structured CloudEvents among them: the Zot fixtures are data fragments).
fn dialect_fixtures(dialect: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut files = Vec::new();
    for dir in fixture_dirs(dialect) {
        fixtures(&root.join(dir), &mut files);
    }
    if dialect == "cloudevents" {
        files.retain(|f| std::fs::read_to_string(f).is_ok_and(|t| t.contains("\"specversion\"")));
    }
    files.sort();
    assert!(!files.is_empty(), "{dialect}: no fixtures");
    files
}

/// The media type a fixture is sent with.
fn media_of(dialect: &str, file: &Path) -> MediaType {
    let name = file.file_name().unwrap().to_string_lossy();
    if dialect == "root" || name.contains("cloudevents") {
        MediaType::CloudEvents
    } else {
        MediaType::Json
    }
}

/// Normalizes `body` as `dialect` would on an unauthenticated endpoint, `data.original` kept.
pub(super) fn run(
    dialect: &super::DialectSpec,
    media: MediaType,
    body: &[u8],
) -> Result<super::Normalization, super::DialectError> {
    let req = UnverifiedRequest {
        headers: &Default::default(),
        query: "",
        media,
        body: Bytes::copy_from_slice(body),
        now: 0,
    };
    let verified = Verifier::Unauthenticated.verify(req).unwrap();
    normalize(dialect, dialect.name, &verified, true, super::Reading::default())
}

#[test]
fn whatever_the_body_every_published_event_is_a_valid_cloudevent() {
    let mut rng = Rng(0x5EED_2026);
    for dialect in REGISTRY {
        let (mut tried, mut accepted) = (0usize, 0usize);
        for file in dialect_fixtures(dialect.name) {
            let body = std::fs::read(&file).unwrap();
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            let media = media_of(dialect.name, &file);
            for case in 0..CASES {
                let mutated = mutate(&mut rng, &body);
                let req = UnverifiedRequest {
                    headers: &Default::default(),
                    query: "",
                    media,
                    body: Bytes::from(mutated.clone()),
                    now: 0,
                };
                let verified = Verifier::Unauthenticated.verify(req).unwrap();
                tried += 1;
                let Ok(super::Normalization {
                    normalized: Normalized::Events(occurrences), original, ..
                }) = normalize(dialect, dialect.name, &verified, true, super::Reading::default())
                else {
                    continue;
                };
                accepted += 1;
                let what =
                    format!("{} {name} case {case} ({:?})", dialect.name, String::from_utf8_lossy(&mutated));
                assert!(std::str::from_utf8(&mutated).is_ok(), "{what}: accepted a body that is not UTF-8");
                let env = Envelope { endpoint: dialect.name, registry: dialect.name, ..Envelope::default() };
                for occ in &occurrences {
                    assert_publishable(&event::build(occ, &env, original.as_ref()), &what);
                }
            }
        }
        // The mutations must leave room for acceptance, or the test would prove nothing.
        assert!(
            accepted * 20 > tried,
            "{}: only {accepted} of {tried} mutated bodies were accepted",
            dialect.name
        );
    }
}

/// The first fixture of each dialect that it turns into events, with its media type.
fn first_accepted(dialect: &super::DialectSpec) -> (String, Vec<u8>, MediaType) {
    for file in dialect_fixtures(dialect.name) {
        let body = std::fs::read(&file).unwrap();
        let media = media_of(dialect.name, &file);
        if matches!(run(dialect, media, &body), Ok(super::Normalization { normalized: Normalized::Events(ref o), .. }) if !o.is_empty())
        {
            return (file.file_name().unwrap().to_string_lossy().into_owned(), body, media);
        }
    }
    panic!("{}: no fixture is accepted", dialect.name)
}

/// Where each string value (not member name) of a JSON text starts: the index just past its
/// opening quote.
fn string_values(json: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i < json.len() {
        if json[i] != b'"' {
            i += 1;
            continue;
        }
        let open = i + 1;
        i = open;
        while json[i] != b'"' {
            i += if json[i] == b'\\' { 2 } else { 1 };
        }
        i += 1;
        let next = json[i..].iter().find(|b| !b.is_ascii_whitespace());
        if next != Some(&b':') {
            starts.push(open);
        }
    }
    starts
}

#[test]
fn bytes_that_are_not_utf8_are_refused_by_every_dialect_naming_the_offset() {
    let mut covered = Vec::new();
    for dialect in REGISTRY {
        let (name, body, media) = first_accepted(dialect);
        let what = format!("{} {name}", dialect.name);
        // Inside the first string value, raw: "caf" then an ISO 8859-1 `é`, a blank and 0xFF.
        let at = *string_values(&body).first().unwrap_or_else(|| panic!("{what}: no string value"));
        let bad = [&body[..at], b"caf\xe9 \xff", &body[at..]].concat();
        let offset = at + 3;
        assert_eq!(std::str::from_utf8(&bad).unwrap_err().valid_up_to(), offset, "{what}");
        match run(dialect, media, &bad) {
            Err(e @ super::DialectError::NotUtf8 { offset: got }) => {
                assert_eq!(got, offset, "{what}");
                assert_eq!(e.reason(), "invalid_json", "{what}");
                assert!(e.to_string().contains(&format!("byte {offset} ")), "{what}: {e}");
            }
            other => panic!("{what}: {other:?}"),
        }
        covered.push(dialect.name);
    }
    assert_eq!(covered.len(), REGISTRY.len(), "dialects covered: {covered:?}");
}

#[test]
fn unpaired_surrogate_escapes_are_refused_by_every_dialect() {
    let mut covered = Vec::new();
    for dialect in REGISTRY {
        let (name, body, media) = first_accepted(dialect);
        // In every string value in turn: those the dialect reads, and those it only carries
        // along in `data.original`.
        let starts = string_values(&body);
        assert!(!starts.is_empty(), "{} {name}: no string value", dialect.name);
        for at in starts {
            for lone in [&b"\\ud800"[..], b"\\udc00 x", b"\\ud800\\u0041"] {
                let bad = [&body[..at], lone, &body[at..]].concat();
                let what = format!("{} {name}, {} at byte {at}", dialect.name, String::from_utf8_lossy(lone));
                match run(dialect, media, &bad) {
                    Err(e) => assert_eq!(e.reason(), "invalid_json", "{what}: {e}"),
                    Ok(other) => panic!("{what}: accepted {other:?}"),
                }
            }
        }
        covered.push(dialect.name);
    }
    assert_eq!(covered.len(), REGISTRY.len(), "dialects covered: {covered:?}");
}

#[test]
fn bytes_that_are_not_utf8_are_refused_in_fields_a_dialect_skips_or_reads() {
    // `@` marks where the raw bytes go (a raw string literal cannot hold them).
    let bodies: [(&str, &str, &[u8], MediaType); 4] = [
        (
            "root",
            r#"{"specversion":"1.0","type":"io.root.cr.image.created.v1","source":"https://cr.root.io","id":"e1","x-note":"@","data":{"image_repo":"python","image_tag":"3.13"}}"#,
            b"caf\xe9 \xff",
            MediaType::CloudEvents,
        ),
        (
            "root",
            r#"{"specversion":"1.0","type":"io.root.cr.image.created.v1","source":"https://cr.root.io","id":"e1","datacontenttype":"@","data":{"image_repo":"python","image_tag":"3.13"}}"#,
            b"appl\xc4cation/json",
            MediaType::CloudEvents,
        ),
        (
            "harbor",
            r#"{"type":"PUSH_ARTIFACT","occur_at":1,"note":"@","event_data":{"resources":[{"tag":"v1"}],"repository":{"repo_full_name":"a/b"}}}"#,
            b"\xff",
            MediaType::Json,
        ),
        (
            "msr",
            r#"{"type":"TAG_PUSH","createdAt":"2026-01-01T00:00:00Z","note":"@","contents":{"namespace":"a","repository":"b","tag":"v1"}}"#,
            b"\xff",
            MediaType::Json,
        ),
    ];
    for (name, template, bad, media) in bodies {
        let (head, tail) = template.split_once('@').unwrap();
        let body = [head.as_bytes(), bad, tail.as_bytes()].concat();
        let body = body.as_slice();
        let dialect = super::by_name(name).unwrap();
        let offset = std::str::from_utf8(body).unwrap_err().valid_up_to();
        match run(dialect, media, body) {
            Err(e @ super::DialectError::NotUtf8 { .. }) => {
                assert_eq!(e.reason(), "invalid_json");
                assert!(e.to_string().contains(&format!("byte {offset}")), "{e}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn unpaired_surrogate_escapes_are_refused_in_either_harbor_mode() {
    let bodies: [(&str, &[u8], MediaType); 4] = [
        ("root", br#"{"specversion":"1.0","type":"io.root.cr.image.created.v1","source":"https://cr.root.io","id":"e1","x-note":"\ud800","data":{"image_repo":"python","image_tag":"3.13"}}"#, MediaType::CloudEvents),
        ("harbor", br#"{"type":"PUSH_ARTIFACT","occur_at":1,"note":"\udc00 x","event_data":{"resources":[{"tag":"v1"}],"repository":{"repo_full_name":"a/b"}}}"#, MediaType::Json),
        ("harbor", br#"{"specversion":"1.0","type":"harbor.artifact.pushed","source":"/projects/1/webhook/policies/1","id":"e2","note":"\ud800\u0041","data":{"resources":[{"tag":"v1"}],"repository":{"repo_full_name":"a/b"}}}"#, MediaType::CloudEvents),
        ("msr", br#"{"type":"TAG_PUSH","createdAt":"2026-01-01T00:00:00Z","note":"\ud83d","contents":{"namespace":"a","repository":"b","tag":"v1"}}"#, MediaType::Json),
    ];
    for (name, body, media) in bodies {
        let dialect = super::by_name(name).unwrap();
        let req = UnverifiedRequest {
            headers: &Default::default(),
            query: "",
            media,
            body: Bytes::from_static(body),
            now: 0,
        };
        let verified = Verifier::Unauthenticated.verify(req).unwrap();
        match normalize(dialect, name, &verified, true, super::Reading::default()) {
            Err(e) => assert_eq!(e.reason(), "invalid_json", "{name}: {e}"),
            Ok(other) => panic!("{name}: accepted {other:?}"),
        }
    }
}
