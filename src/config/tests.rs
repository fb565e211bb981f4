use std::io::Write;

use super::*;

fn env(pairs: &[(&str, &str)]) -> Env {
    pairs.iter().map(|(k, v)| (*k, *v)).collect()
}

fn err(pairs: &[(&str, &str)]) -> String {
    Config::load(&env(pairs)).unwrap_err().to_string()
}

fn load(pairs: &[(&str, &str)]) -> Config {
    Config::load(&env(pairs)).unwrap()
}

fn endpoint<'a>(c: &'a Config, name: &str) -> &'a Endpoint {
    c.endpoints.iter().find(|e| e.name == name).unwrap()
}

#[test]
fn defaults_give_the_file_sink_and_disabled_endpoints() {
    let c = Config::load(&env(&[])).unwrap();
    assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
    assert_eq!(c.body_limit, 1024 * 1024);
    assert_eq!(c.publish_timeout, Duration::from_secs(2));
    assert_eq!(c.sinks.len(), 1);
    assert_eq!(c.sinks[0].spec().name, "file");
    assert_eq!(c.sinks[0].describe()["path"], file_sink::DEFAULT_PATH);
    assert!(c.endpoints.iter().all(|e| e.verifier.is_none()));
}

#[test]
fn variables_configure_built_in_endpoints() {
    let c = Config::load(&env(&[
        ("REGBRIDGE_ROOT_SECRETS", "whsec_AAECAwQF, whsec_BgcICQoL"),
        ("REGBRIDGE_ROOT_TOLERANCE", "60s"),
        ("REGBRIDGE_HARBOR_AUTH", "Bearer a"),
        ("REGBRIDGE_MSR_SOURCE", "https://msr.example.com"),
        ("REGBRIDGE_UNAUTHENTICATED", "msr"),
        ("REGBRIDGE_RATE_LIMIT", "0"),
    ]))
    .unwrap();
    let root = endpoint(&c, "root");
    assert_eq!(root.credential_count, 2);
    match &root.verifier {
        Some(Verifier::StandardWebhooks(v)) => assert_eq!(v.tolerance(), 60),
        other => panic!("{other:?}"),
    }
    assert!(matches!(endpoint(&c, "harbor").verifier, Some(Verifier::Authorization(_))));
    let msr = endpoint(&c, "msr");
    assert!(matches!(msr.verifier, Some(Verifier::Unauthenticated)));
    assert_eq!(msr.source.as_deref(), Some("https://msr.example.com"));
    assert!(c.endpoints.iter().all(|e| e.rate_limit.is_none()));
}

#[test]
fn file_declares_named_endpoints_and_variables_override_it() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    write!(
        f,
        r#"
listen: "127.0.0.1:9000"
body_limit: 512KiB
publish_timeout: 1500ms
endpoints:
  harbor-eu:
    dialect: harbor
    auth: ["${{EU_TOKEN}}"]
    source: https://harbor.eu.example.com
    rate_limit: 5
  msr-old:
    dialect: msr
    tokens: [t1]
  root:
    secrets: [whsec_AAECAwQF]
sinks:
  file:
    path: /tmp/from-file.jsonl
"#
    )
    .unwrap();
    let path = f.path().to_str().unwrap();
    let c = Config::load(&env(&[
        ("REGBRIDGE_CONFIG", path),
        ("EU_TOKEN", "Bearer eu"),
        ("REGBRIDGE_LISTEN", "127.0.0.1:9001"),
    ]))
    .unwrap();
    assert_eq!(c.listen.port(), 9001, "the variable wins over the file");
    assert_eq!(c.body_limit, 512 * 1024);
    assert_eq!(c.publish_timeout, Duration::from_millis(1500));
    let eu = endpoint(&c, "harbor-eu");
    assert_eq!(eu.dialect.name, "harbor");
    assert_eq!(eu.rate_limit, Some((5, 5)));
    assert_eq!(eu.source.as_deref(), Some("https://harbor.eu.example.com"));
    assert!(matches!(endpoint(&c, "msr-old").verifier, Some(Verifier::Token(_))));
    assert_eq!(endpoint(&c, "root").credential_count, 1);
    assert_eq!(c.sinks[0].describe()["path"], "/tmp/from-file.jsonl");
    assert!(!format!("{c:?}").contains("Bearer eu"), "secrets never reach Debug");

    let missing = err(&[("REGBRIDGE_CONFIG", path)]);
    assert!(missing.contains("REGBRIDGE_CONFIG") && missing.contains("EU_TOKEN"), "{missing}");
}

#[test]
fn bad_values_name_their_variable_or_key() {
    for (var, value, needle) in [
        ("REGBRIDGE_LISTEN", "localhost", "host:port"),
        ("REGBRIDGE_BODY_LIMIT", "0", "greater than 0"),
        ("REGBRIDGE_BODY_LIMIT", "1TB", "unit"),
        ("REGBRIDGE_OUTBOX", "maybe", "boolean"),
        ("REGBRIDGE_OUTBOX_MAX_BYTES", "0", "greater than 0"),
        ("REGBRIDGE_OUTBOX_MAX_BYTES", "lots", "size"),
        ("REGBRIDGE_OUTBOX_MAX_ATTEMPTS", "0", "at least 1"),
        ("REGBRIDGE_BODY_TIMEOUT", "0s", "greater than 0"),
        ("REGBRIDGE_HEADER_TIMEOUT", "later", "duration"),
        ("REGBRIDGE_MAX_UPLOADS", "0", "greater than 0"),
        ("REGBRIDGE_MAX_UPLOADS_PER_ADDRESS", "many", "number"),
        ("REGBRIDGE_MAX_CONNECTIONS_PER_ADDRESS", "0", "greater than 0"),
        ("REGBRIDGE_PUBLISH_TIMEOUT", "0s", "greater than 0"),
        ("REGBRIDGE_SHUTDOWN_TIMEOUT", "soon", "duration"),
        ("REGBRIDGE_ROOT_SIGNATURE_MODE", "v2", "auto, standard, hex"),
        ("REGBRIDGE_ROOT_TOLERANCE", "0", "at least"),
        ("REGBRIDGE_RATE_BURST", "x", "number"),
        ("REGBRIDGE_INCLUDE_ORIGINAL", "2", "boolean"),
        ("REGBRIDGE_CONTENT_MODE", "json", "binary, structured"),
        ("REGBRIDGE_TRUSTED_PROXIES", "10.0.0.0/40", "0-32"),
        ("REGBRIDGE_HARBOR_ALLOW_FROM", "harbor.example.com", "not an address"),
    ] {
        let e = err(&[(var, value)]);
        assert!(e.starts_with(var) && e.contains(needle), "{var}={value}: {e}");
    }
    let e = err(&[("REGBRIDGE_ROOT_SECRETS", "not base64!"), ("REGBRIDGE_ROOT_SIGNATURE_MODE", "standard")]);
    assert!(e.starts_with("REGBRIDGE_ROOT_SECRETS") && !e.contains("not base64!"), "{e}");
}

#[test]
fn file_errors_name_the_key() {
    let cases = [
        ("endpoints:\n  x:\n    auth: [a]\n", "endpoints.x.dialect"),
        ("endpoints:\n  x:\n    dialect: artifactory\n", "valid: root, harbor, msr, distribution"),
        ("endpoints:\n  bad name:\n    dialect: msr\n", "endpoints.bad name"),
        ("sinks:\n  kafkaa: {}\n", "sinks.kafkaa"),
        ("bodylimit: 1\n", "unknown field"),
        ("body_limit: lots\n", "body_limit"),
    ];
    for (yaml, needle) in cases {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(yaml.as_bytes()).unwrap();
        let e = err(&[("REGBRIDGE_CONFIG", f.path().to_str().unwrap())]);
        assert!(e.contains(needle), "{yaml:?}: {e}");
    }
}

#[test]
fn routes_are_compiled_at_load() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(b"routes:\n  - name: r\n    to: [{ sink: kafka, topic: t }]\n").unwrap();
    let e = err(&[("REGBRIDGE_ROUTES", f.path().to_str().unwrap())]);
    assert!(e.starts_with("REGBRIDGE_ROUTES") && e.contains("route `r`") && e.contains("kafka"), "{e}");
}

#[test]
fn value_parsers() {
    assert_eq!(env::duration("250ms").unwrap(), Duration::from_millis(250));
    assert_eq!(env::duration("3").unwrap(), Duration::from_secs(3));
    assert_eq!(env::duration("1m").unwrap(), Duration::from_secs(60));
    assert_eq!(env::size("2MiB").unwrap(), 2 * 1024 * 1024);
    assert_eq!(env::list(" a, ,b ,"), vec!["a", "b"]);
    assert!(env::boolean("yes").unwrap() && !env::boolean("off").unwrap());
}

#[test]
fn durations_too_long_for_a_deadline_are_refused_at_load() {
    // Each was accepted once, and then actix added it to `Instant::now()` on every connection
    // (or the shutdown did, once): an overflow panic instead of a start-up error.
    for var in [
        "REGBRIDGE_HEADER_TIMEOUT",
        "REGBRIDGE_KEEP_ALIVE",
        "REGBRIDGE_BODY_TIMEOUT",
        "REGBRIDGE_PUBLISH_TIMEOUT",
        "REGBRIDGE_SHUTDOWN_TIMEOUT",
    ] {
        let e = err(&[(var, "9999999999999999999")]);
        assert!(e.starts_with(var) && e.contains("too long a duration"), "{e}");
    }
    assert!(env::duration("2562047788015216h").is_err());
    let century = Duration::from_secs(100 * 365 * 24 * 3600);
    assert_eq!(env::duration("876000h").unwrap(), century);
    assert!(std::time::Instant::now().checked_add(century).is_some());
}

#[test]
fn counts_that_become_semaphore_permits_are_bounded_at_load() {
    // Each passed check-config once, and then tokio's `Semaphore::new` panicked at start-up.
    let max = tokio::sync::Semaphore::MAX_PERMITS;
    for var in ["REGBRIDGE_MAX_IN_FLIGHT", "REGBRIDGE_MAX_UPLOADS", "REGBRIDGE_MAX_EVENTS_PER_REQUEST"] {
        let e = err(&[(var, &(max + 1).to_string())]);
        assert!(e.starts_with(var) && e.contains(&format!("at most {max}")), "{e}");
        let c = load(&[(var, &max.to_string())]);
        assert!(c.max_in_flight == max || c.max_uploads == max || c.max_events_per_request == max);
    }
}

#[test]
fn the_limits_on_slow_senders_have_defaults_and_come_from_env_or_file() {
    let c = load(&[]);
    assert_eq!(
        (c.body_timeout, c.header_timeout, c.keep_alive),
        (DEFAULT_BODY_TIMEOUT, DEFAULT_HEADER_TIMEOUT, DEFAULT_KEEP_ALIVE)
    );
    assert_eq!((c.max_uploads, c.max_uploads_per_address, c.max_connections_per_address), (1024, 64, 256));
    let c = load(&[("REGBRIDGE_BODY_TIMEOUT", "2500ms"), ("REGBRIDGE_MAX_UPLOADS_PER_ADDRESS", "8")]);
    assert_eq!((c.body_timeout, c.max_uploads_per_address), (Duration::from_millis(2500), 8));
    assert_eq!(c.describe()["body_timeout_ms"], 2500);
}

#[test]
fn the_outbox_is_on_by_default_with_a_broker_and_can_be_switched() {
    let broker = ("REGBRIDGE_NATS_URL", "nats://127.0.0.1:4222");
    let on = load(&[broker]).outbox.expect("a broker sink: the outbox is on");
    assert_eq!(on.dir, std::path::PathBuf::from(crate::outbox::DEFAULT_DIR));
    assert_eq!((on.max_bytes, on.max_attempts), (1 << 30, 5));
    assert!(load(&[]).outbox.is_none(), "the file sink alone: off");
    assert!(load(&[broker, ("REGBRIDGE_OUTBOX", "off")]).outbox.is_none());
    let forced = load(&[
        ("REGBRIDGE_OUTBOX", "on"),
        ("REGBRIDGE_OUTBOX_DIR", "/var/lib/rb"),
        ("REGBRIDGE_OUTBOX_MAX_BYTES", "2GiB"),
    ])
    .outbox
    .unwrap();
    assert_eq!((forced.dir.to_str(), forced.max_bytes), (Some("/var/lib/rb"), 2 << 30));
    assert_eq!(load(&[broker]).describe()["outbox"]["max_attempts"], 5);
}

#[test]
fn allowlists_and_trusted_proxies_come_from_variables_or_the_file() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    write!(
        f,
        "trusted_proxies: [10.0.0.0/8]\nendpoints:\n  harbor-prod:\n    dialect: harbor\n    credentials: [\"Bearer a\"]\n    allow_from: [192.0.2.0/24, \"2001:db8::/32\"]\n"
    )
    .unwrap();
    let path = f.path().to_str().unwrap();
    let c = load(&[("REGBRIDGE_CONFIG", path)]);
    let prod = endpoint(&c, "harbor-prod");
    let allowed = prod.allow_from.as_ref().unwrap();
    assert!(
        allowed.contains("192.0.2.9".parse().unwrap()) && !allowed.contains("192.0.3.9".parse().unwrap())
    );
    assert!(endpoint(&c, "harbor").allow_from.is_none(), "no list: anyone");
    assert!(c.trusted_proxies.contains("10.1.2.3".parse().unwrap()));
    // Variables win over the file.
    let c = load(&[
        ("REGBRIDGE_CONFIG", path),
        ("REGBRIDGE_HARBOR_PROD_ALLOW_FROM", "198.51.100.7"),
        ("REGBRIDGE_TRUSTED_PROXIES", "172.16.0.0/12"),
    ]);
    let allowed = endpoint(&c, "harbor-prod").allow_from.clone().unwrap();
    assert_eq!(allowed.describe(), ["198.51.100.7/32"]);
    assert_eq!(c.trusted_proxies.describe(), ["172.16.0.0/12"]);
    assert_eq!(c.describe()["trusted_proxies"][0], "172.16.0.0/12");
}

#[test]
fn file_credentials_may_carry_a_label_and_an_end() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    write!(
        f,
        "endpoints:\n  msr:\n    tokens:\n      - {{ value: t-old, label: before-rotation, not_after: \"2026-01-31T00:00:00Z\" }}\n      - t-new\n"
    )
    .unwrap();
    let c = load(&[("REGBRIDGE_CONFIG", f.path().to_str().unwrap())]);
    let msr = endpoint(&c, "msr");
    assert_eq!(msr.credential_count, 2);
    let all = c.describe();
    let described = &all["endpoints"].as_array().unwrap().iter().find(|e| e["name"] == "msr").unwrap()
        ["credential_labels"];
    assert_eq!(
        described,
        &serde_json::json!([
            { "label": "before-rotation", "not_after": "2026-01-31T00:00:00+00:00" },
            { "label": "#2", "not_after": null },
        ])
    );
    assert!(!c.describe().to_string().contains("t-old"), "values stay out of check-config");
    let headers = actix_web::http::header::HeaderMap::new();
    let check = |query: &str, now: i64| msr.verifier.as_ref().unwrap().check_head(&headers, query, now);
    let end = 1_769_817_600; // 2026-01-31T00:00:00Z
    assert_eq!(check("token=t-old", end), Ok(()));
    assert_eq!(check("token=t-old", end + 1), Err(crate::verify::VerifyError::ExpiredCredential));
    assert_eq!(check("token=t-new", end + 1), Ok(()));

    let mut bad = tempfile::NamedTempFile::new().unwrap();
    write!(bad, "endpoints:\n  msr:\n    tokens: [{{ value: t, not_after: tomorrow }}]\n").unwrap();
    let e = err(&[("REGBRIDGE_CONFIG", bad.path().to_str().unwrap())]);
    assert!(e.starts_with("endpoints.msr.credentials[0].not_after") && e.contains("RFC 3339"), "{e}");
}
