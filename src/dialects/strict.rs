//! Only a well-formed payload of a dialect may be "unmapped": every fixture of every other
//! registry, posted to each dialect's endpoint, is refused as malformed (400), never acknowledged
//! as an unmapped type (202), which would tell its sender all is well while nothing is published.

use std::path::{Path, PathBuf};

use super::{DialectSpec, MediaType, Normalized, REGISTRY};

/// Every JSON fixture, with the registry it is a payload of (its folder, or for the shared
/// folders the vendor its name starts with).
fn fixtures() -> Vec<(String, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut dirs = vec![root.clone()];
    let mut out = Vec::new();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                let rel = path.strip_prefix(&root).unwrap().to_string_lossy().into_owned();
                let mut parts = rel.split('/');
                let vendor = match (parts.next(), parts.next()) {
                    (Some("other"), Some("synthetic" | "keel-testdata")) => {
                        path.file_name().unwrap().to_string_lossy().split('.').next().unwrap().to_owned()
                    }
                    (Some("other"), Some(vendor)) => vendor.to_owned(),
                    (Some(top), _) => top.to_owned(),
                    (None, _) => unreachable!(),
                };
                out.push((vendor, path));
            }
        }
    }
    out.sort();
    out
}

/// Whether a payload of `vendor` is a payload of `dialect` too: the vendors that share a wire
/// format with it.
fn shares_format(dialect: &str, vendor: &str, body: &[u8]) -> bool {
    let is_cloudevent = String::from_utf8_lossy(body).contains("\"specversion\"");
    match dialect {
        d if d == vendor => true,
        // GitLab's registry is Distribution's notifications with a few fields more.
        "distribution" | "gitlab" => matches!(vendor, "distribution" | "gitlab"),
        // Any CloudEvent is one for the CloudEvents endpoint; Harbor's and ACR's Event Grid
        // CloudEvents are read by their own endpoints as well.
        "cloudevents" => is_cloudevent,
        "acr" => vendor == "azure",
        _ => false,
    }
}

/// What `dialect` makes of `body`, or `None` when it refuses it.
fn run(dialect: &DialectSpec, media: MediaType, body: &[u8]) -> Option<Normalized> {
    super::properties::run(dialect, media, body).ok().map(|n| n.normalized)
}

#[test]
fn another_registrys_payload_is_malformed_not_unmapped() {
    let fixtures = fixtures();
    assert!(fixtures.len() > 100, "{}", fixtures.len());
    let mut wrong = Vec::new();
    for dialect in REGISTRY {
        for (vendor, path) in &fixtures {
            let body = std::fs::read(path).unwrap();
            if shares_format(dialect.name, vendor, &body) {
                continue;
            }
            for media in [MediaType::Json, MediaType::CloudEvents] {
                if let Some(n @ (Normalized::Unmapped { .. } | Normalized::Events(_))) =
                    run(dialect, media, &body)
                {
                    let what = match n {
                        Normalized::Unmapped { origtype } => format!("unmapped {origtype}"),
                        _ => "events".to_owned(),
                    };
                    wrong.push(format!("{} <- {} ({media:?}): {what}", dialect.name, path.display()));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{} foreign payloads accepted:\n{}", wrong.len(), wrong.join("\n"));
}

/// Bodies that hold a type and little else: not a payload of any dialect.
#[test]
fn a_bare_type_is_malformed_everywhere() {
    let probes = [
        r#"{}"#,
        r#"{"type":"TAG_PUSH"}"#,
        r#"{"type":"x","id":"1"}"#,
        r#"{"eventType":"x"}"#,
        r#"{"action":"x"}"#,
        r#"{"event":"x"}"#,
        r#"{"detail-type":"x"}"#,
        r#"{"events":[{"action":"x"}]}"#,
        r#"[{"eventType":"x"}]"#,
        r#"{"message":{}}"#,
        r#"[]"#,
    ];
    let mut wrong = Vec::new();
    for dialect in REGISTRY {
        for probe in probes {
            for media in [MediaType::Json, MediaType::CloudEvents] {
                match run(dialect, media, probe.as_bytes()) {
                    None => {}
                    Some(n) => wrong.push(format!("{} <- {probe} ({media:?}): {n:?}", dialect.name)),
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{} bare bodies accepted:\n{}", wrong.len(), wrong.join("\n"));
}
