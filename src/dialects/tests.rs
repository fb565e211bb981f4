use chrono::DateTime;

use super::*;

#[test]
fn references_split_like_docker() {
    let r = parse_reference("localhost/harbor/alpine:3.8");
    assert_eq!(r.host.as_deref(), Some("localhost"));
    assert_eq!(r.repository.as_deref(), Some("harbor/alpine"));
    assert_eq!(r.tag.as_deref(), Some("3.8"));
    assert_eq!(r.digest, None);

    let r = parse_reference("127.0.0.1:5000/library/nginx@sha256:abc");
    assert_eq!(r.host.as_deref(), Some("127.0.0.1:5000"));
    assert_eq!(r.repository.as_deref(), Some("library/nginx"));
    assert_eq!(r.tag, None);
    assert_eq!(r.digest.as_deref(), Some("sha256:abc"));

    let r = parse_reference("foo/bar:latest");
    assert_eq!(r.host, None);
    assert_eq!(r.repository.as_deref(), Some("foo/bar"));
    assert_eq!(r.tag.as_deref(), Some("latest"));

    let r = parse_reference("harbor.example.test/team/app:");
    assert_eq!(r.repository.as_deref(), Some("team/app"));
    assert_eq!(r.tag, None);

    let r = parse_reference("https://harbor.example.test/chartrepo/library/charts/c-0.1.0.tgz");
    assert_eq!(r.host.as_deref(), Some("harbor.example.test"));
    assert_eq!(r.repository.as_deref(), Some("chartrepo/library/charts/c-0.1.0.tgz"));
}

#[test]
fn ids_are_stable_and_fan_out_is_indexed() {
    assert_eq!(digest_id("harbor", b"{}"), digest_id("harbor", b"{}"));
    assert_ne!(digest_id("harbor", b"{}"), digest_id("harbor-eu", b"{}"));
    assert_eq!(fan_out_id("x", 0, 1), "x");
    assert_eq!(fan_out_id("x", 1, 3), "x#1");
}

#[test]
fn attribute_fields_refuse_control_characters() {
    let kind = crate::event::kinds::ARTIFACT_PUSHED;
    let ok = Occurrence::new(kind, "id-1", "TAG_PUSH");
    assert!(check_attribute_text(&ok).is_ok());
    type Spoil = fn(&mut Occurrence);
    let cases: [(&str, Spoil); 4] = [
        ("id", |o| o.id.push('\u{7}')),
        ("repository", |o| o.repository = Some("a\nb".into())),
        ("tag", |o| o.tag = Some("v1\r".into())),
        ("source", |o| o.source = Some("https://r.example\u{85}".into())),
    ];
    for (field, spoil) in cases {
        let mut occ = Occurrence::new(kind, "id-1", "TAG_PUSH");
        spoil(&mut occ);
        match check_attribute_text(&occ) {
            Err(DialectError::Invalid { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    // Only attribute fields: text that stays inside `data` is JSON-escaped and may hold anything.
    let mut occ = Occurrence::new(kind, "id-1", "TAG_PUSH");
    occ.actor = Some("line\nbreak".into());
    assert!(check_attribute_text(&occ).is_ok());
}

#[test]
fn unknown_dialect_lists_valid_ones() {
    let err = by_name("artifactory").unwrap_err();
    assert!(err.contains("root, harbor, msr, distribution, gitlab, dockerhub"), "{err}");
}

/// The README's mapping table is the users' reference: every vendor type a dialect maps must
/// stand in the row of its normalized kind.
#[test]
fn readme_mapping_table_lists_every_vendor_type() {
    let readme = include_str!("../../README.md");
    let row = |kind: crate::event::Kind| {
        let key = format!("| {}.{} |", kind.noun, kind.verb);
        readme.lines().find(|l| l.starts_with(&key)).unwrap_or_else(|| panic!("README lacks a row for {key}"))
    };
    let mut checked = 0;
    for (default, legacy, ce, kind) in harbor::EVENT_TYPES {
        let r = row(*kind);
        assert!(r.contains(&format!(" {default} ")), "{default} missing in: {r}");
        assert!(r.contains(&format!("({legacy})")), "{legacy} missing in: {r}");
        if let Some(ce) = ce {
            assert!(r.contains(ce), "{ce} missing in: {r}");
        }
        checked += 1;
    }
    for (name, kind) in msr::EVENT_TYPES {
        let r = row(*kind);
        assert!(r.contains(name), "{name} missing in: {r}");
        checked += 1;
    }
    assert!(row(crate::event::kinds::ARTIFACT_PUSHED).contains("io.root.cr.image.created.v1"));
    assert_eq!(checked, 13 + 18);
}

/// The further registries' table: each vendor's types stand in its own entry (`Label `type`, …`)
/// of the row of their kind.
#[test]
fn readme_further_registries_table_lists_every_vendor_type() {
    let readme = include_str!("../../README.md");
    let table = readme
        .split_once("#### Further registries")
        .and_then(|(_, rest)| rest.split("\n\n").find(|block| block.starts_with('|')))
        .expect("README has a further registries table");
    let entry = |label: &str, kind: crate::event::Kind| {
        let key = format!("| {}.{} |", kind.noun, kind.verb);
        let row = table.lines().find(|l| l.starts_with(&key)).unwrap_or_else(|| panic!("no row {key}"));
        let cell = row[key.len()..].trim_end_matches(" |");
        let found = cell.split("; ").map(str::trim).find(|e| e.starts_with(&format!("{label} `")));
        found.unwrap_or_else(|| panic!("{label} missing in: {row}")).to_owned()
    };
    let simple: [(&str, &[(&str, crate::event::Kind)]); 9] = [
        ("Distribution/GitLab", distribution::EVENT_TYPES),
        ("Docker Hub", dockerhub::EVENT_TYPES),
        ("Quay", quay::EVENT_TYPES),
        ("GitHub", github::EVENT_TYPES),
        ("JFrog", jfrog::EVENT_TYPES),
        ("Nexus", nexus::EVENT_TYPES),
        ("GAR", gar::EVENT_TYPES),
        ("ECR", ecr::EVENT_TYPES),
        ("CloudEvents", cloudevents::EVENT_TYPES),
    ];
    let mut checked = 0;
    for (label, types) in simple {
        for (name, kind) in types {
            let e = entry(label, *kind);
            assert!(e.contains(&format!("`{name}`")), "{name} missing in: {e}");
            checked += 1;
        }
    }
    for (action, grid, kind) in acr::EVENT_TYPES {
        let e = entry("ACR", *kind);
        assert!(e.contains(&format!("`{action}` (`{grid}`)")), "{action} ({grid}) missing in: {e}");
        checked += 1;
    }
    assert_eq!(checked, 5 + 1 + 10 + 5 + 3 + 6 + 2 + 9 + 4 + 4);
}

#[test]
fn times_outside_the_years_rfc3339_can_write_are_refused() {
    let kind = crate::event::kinds::ARTIFACT_PUSHED;
    let mut occ = Occurrence::new(kind, "id-1", "PUSH_ARTIFACT");
    occ.time = DateTime::from_timestamp(253_402_300_800, 0); // 10000-01-01
    match check_attribute_text(&occ) {
        Err(DialectError::Invalid { field: "time", .. }) => {}
        other => panic!("{other:?}"),
    }
    occ.time = DateTime::from_timestamp(253_402_300_799, 0); // 9999-12-31T23:59:59Z
    assert!(check_attribute_text(&occ).is_ok());
}

/// A mixed batch publishes what it maps and counts the rest: unmapped entries and blobs alike.
#[test]
fn mixed_batches_count_what_they_leave_out() {
    use crate::verify::{UnverifiedRequest, Verifier};
    let run = |name: &str, body: &str| {
        let req = UnverifiedRequest {
            headers: &Default::default(),
            query: "",
            media: MediaType::Json,
            body: bytes::Bytes::copy_from_slice(body.as_bytes()),
            now: 0,
        };
        let verified = Verifier::Unauthenticated.verify(req).unwrap();
        normalize(by_name(name).unwrap(), name, &verified, false, Reading::default()).unwrap()
    };
    let manifest = r#"{"action":"push","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","repository":"a/b","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","tag":"v1"}}"#;
    let blob = r#"{"action":"push","target":{"mediaType":"application/octet-stream","repository":"a/b","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","url":"https://r/v2/a/b/blobs/sha256:1111111111111111111111111111111111111111111111111111111111111111"}}"#;
    let mount = r#"{"action":"mount","target":{"repository":"a/b"}}"#;
    let odd = r#"{"action":"archive","target":{"repository":"a/b","tag":"v1"}}"#;
    let n = run("distribution", &format!(r#"{{"events":[{manifest},{blob},{odd},{odd}]}}"#));
    assert!(matches!(&n.normalized, Normalized::Events(e) if e.len() == 1), "{n:?}");
    assert_eq!((n.skipped, n.unmapped), (1, 2));
    let n = run("distribution", &format!(r#"{{"events":[{odd},{odd}]}}"#));
    assert!(matches!(n.normalized, Normalized::Unmapped { .. }));
    assert_eq!((n.skipped, n.unmapped), (0, 2));
    let n = run("distribution", &format!(r#"{{"events":[{mount}]}}"#));
    assert!(matches!(&n.normalized, Normalized::Events(e) if e.is_empty()), "{n:?}");
    assert_eq!((n.skipped, n.unmapped), (1, 0));
    // A single unmapped payload counts once.
    let n = run("msr", r#"{"type":"SOMETHING_NEW","createdAt":"2024-01-01T00:00:00Z","contents":{}}"#);
    assert!(matches!(n.normalized, Normalized::Unmapped { .. }), "{n:?}");
    assert_eq!(n.unmapped, 1);
}
