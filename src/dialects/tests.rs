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
    let err = by_name("quay").unwrap_err();
    assert!(err.contains("root, harbor, msr"), "{err}");
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
