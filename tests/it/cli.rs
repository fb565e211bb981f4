//! The binary itself: start-up with a bad variable fails and names it; check-config masks secrets.

use std::process::Command;

fn regbridge(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_regbridge"));
    cmd.args(args).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("binary runs")
}

#[test]
fn bad_variables_stop_start_up_naming_the_variable() {
    let cases = [
        ("REGBRIDGE_LISTEN", "not-an-address"),
        ("REGBRIDGE_BODY_LIMIT", "lots"),
        ("REGBRIDGE_PUBLISH_TIMEOUT", "2 fortnights"),
        ("REGBRIDGE_RATE_LIMIT", "-1"),
        ("REGBRIDGE_ROOT_SIGNATURE_MODE", "sha1"),
        ("REGBRIDGE_INCLUDE_ORIGINAL", "maybe"),
        ("REGBRIDGE_ROUTES", "/nonexistent/routes.yaml"),
        ("REGBRIDGE_CONFIG", "/nonexistent/regbridge.yaml"),
    ];
    for (var, value) in cases {
        for args in [&["serve"][..], &[][..], &["check-config"][..]] {
            let out = regbridge(args, &[(var, value), ("REGBRIDGE_FILE_SINK", "/dev/null")]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{var}={value} {args:?} should fail");
            assert!(stderr.contains(var), "{var} not named in: {stderr}");
        }
    }
}

#[test]
fn check_config_prints_the_effective_configuration_with_secrets_masked() {
    let secret = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let out = regbridge(
        &["check-config"],
        &[
            ("REGBRIDGE_ROOT_SECRETS", secret),
            ("REGBRIDGE_HARBOR_AUTH", "Bearer hunter2"),
            ("REGBRIDGE_FILE_SINK", "/tmp/x.jsonl"),
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains(secret) && !text.contains("hunter2"), "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let root = v["endpoints"].as_array().unwrap().iter().find(|e| e["name"] == "root").unwrap();
    assert_eq!(root["enabled"], true);
    assert_eq!(root["credentials"], "1 configured (redacted)");
    let msr = v["endpoints"].as_array().unwrap().iter().find(|e| e["name"] == "msr").unwrap();
    assert_eq!(msr["enabled"], false);
    assert_eq!(v["sinks"][0]["type"], "file");
}

#[test]
fn a_misspelled_variable_fails_check_config_naming_it_and_the_one_meant() {
    let env = [
        ("REGBRIDGE_HARBOUR_AUTH", "Bearer hunter2"),
        ("REGBRIDGE_FILE_SINK", "/tmp/x.jsonl"),
        // Passed through on purpose: not typos.
        ("REGBRIDGE_KAFKA_SASL_MECHANISM", "PLAIN"),
        ("REGBRIDGE_ROOT_TOLERANCE", "60"),
    ];
    let out = regbridge(&["check-config"], &env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("unknown variable REGBRIDGE_HARBOUR_AUTH (did you mean REGBRIDGE_HARBOR_AUTH?)"),
        "{stderr}"
    );
    assert!(!stderr.contains("KAFKA_SASL") && !stderr.contains("TOLERANCE"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "a value is never printed: {stderr}");
    let fixed =
        regbridge(&["check-config"], &[("REGBRIDGE_HARBOR_AUTH", "Bearer hunter2"), env[1], env[2], env[3]]);
    assert!(fixed.status.success(), "{}", String::from_utf8_lossy(&fixed.stderr));
}

#[test]
fn help_lists_the_commands() {
    let out = regbridge(&["--help"], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("serve") && text.contains("check-config"), "{text}");
}

/// JSON logs: one line per rejected webhook with its reason and trace id, and no credential in
/// any line (MSR's token rides in the query string, Harbor's in a header).
#[actix_rt::test]
async fn rejections_are_logged_once_as_json_without_secrets() {
    let port = crate::brokers::free_port();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_regbridge"))
        .env_clear()
        .env("REGBRIDGE_LISTEN", format!("127.0.0.1:{port}"))
        .env("REGBRIDGE_HARBOR_AUTH", "Bearer harbor-secret-value")
        .env("REGBRIDGE_MSR_TOKENS", "msr-secret-value")
        .env("REGBRIDGE_FILE_SINK", dir.path().join("events.jsonl"))
        .env("REGBRIDGE_LOG_FORMAT", "json")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = awc::Client::default();
    crate::helpers::wait_ready(&client, &base).await;
    let json = ("content-type", "application/json");
    let body = crate::helpers::fixture("msr/tag_push.dtr-2.4-docs.json");
    // A token that is wrong but secret-looking, and the right one on a malformed body.
    let wrong = client.post(format!("{base}/webhooks/msr?token=msr-secret-valuX")).insert_header(json);
    assert_eq!(wrong.send_body(body.clone()).await.unwrap().status().as_u16(), 401);
    let malformed = client.post(format!("{base}/webhooks/msr?token=msr-secret-value")).insert_header(json);
    assert_eq!(malformed.send_body("{").await.unwrap().status().as_u16(), 400);
    let harbor = client
        .post(format!("{base}/webhooks/harbor"))
        .insert_header(json)
        .insert_header(("authorization", "Bearer harbor-secret-valuX"));
    assert_eq!(harbor.send_body(body).await.unwrap().status().as_u16(), 401);

    crate::helpers::sigterm(&child);
    assert!(crate::helpers::wait_exit(&mut child).await.success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("secret-valu"), "a credential reached the log:\n{text}");
    let rejected: Vec<serde_json::Value> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))
        })
        .filter(|v| v["message"] == "webhook rejected")
        .collect();
    let reasons: Vec<&str> = rejected.iter().map(|v| v["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons, ["invalid_credential", "invalid_json", "invalid_credential"]);
    for v in &rejected {
        assert_eq!(v["level"], "WARN");
        assert!(v["trace_id"].as_str().is_some_and(|t| t.len() == 32), "{v}");
    }
}

/// One fixture per vendor through `regbridge normalize --verify` with the vendor's credential:
/// the event it becomes and where it would go; the same without the credential is refused.
#[test]
fn normalize_explains_a_payload_of_each_vendor() {
    use hmac::{Hmac, KeyInit, Mac};

    fn hex_hmac<M: Mac + KeyInit>(secret: &str, body: &[u8]) -> String {
        let mut mac = <M as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("regbridge.yaml");
    std::fs::write(&config, "endpoints:\n  gl:\n    dialect: gitlab\n    auth: [\"gitlab-token\"]\n")
        .unwrap();
    let zot = format!("Basic {}", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "u:p"));
    let env = [
        ("REGBRIDGE_CONFIG", config.to_str().unwrap()),
        ("REGBRIDGE_KAFKA_BROKERS", "127.0.0.1:9"),
        ("REGBRIDGE_DISTRIBUTION_AUTH", "Bearer dist"),
        ("REGBRIDGE_DOCKERHUB_TOKENS", "hub"),
        ("REGBRIDGE_QUAY_TOKENS", "quay"),
        ("REGBRIDGE_GITHUB_SECRETS", "gh-secret"),
        ("REGBRIDGE_JFROG_SECRETS", "jf-secret"),
        ("REGBRIDGE_NEXUS_SECRETS", "nx-secret"),
        ("REGBRIDGE_ACR_AUTH", "Bearer acr"),
        ("REGBRIDGE_GAR_TOKENS", "gar"),
        ("REGBRIDGE_ECR_AUTH", "Bearer ecr"),
        ("REGBRIDGE_CLOUDEVENTS_AUTH", &zot),
    ];
    let path = |f: &str| format!("{}/tests/fixtures/other/{f}", env!("CARGO_MANIFEST_DIR"));
    let body = |f: &str| std::fs::read(path(f)).unwrap();
    let github = "github/package.published.docker.octokit-webhooks.json";
    let jfrog = "jfrog/docker.pushed.telegraf-mock.json";
    let nexus = "nexus/component.CREATED.docker.flux-recv.json";
    let github_sig =
        format!("X-Hub-Signature-256: sha256={}", hex_hmac::<Hmac<sha2::Sha256>>("gh-secret", &body(github)));
    let jfrog_sig =
        format!("X-JFrog-Event-Auth: {}", hex_hmac::<Hmac<sha2::Sha256>>("jf-secret", &body(jfrog)));
    let nexus_sig =
        format!("X-Nexus-Webhook-Signature: {}", hex_hmac::<Hmac<sha1::Sha1>>("nx-secret", &body(nexus)));
    let zot_header = format!("Authorization: {zot}");
    /// Endpoint, fixture, credential header, other headers, query, the kind it becomes.
    type Case<'a> = (&'a str, &'a str, Option<&'a str>, &'a [&'a str], &'a str, &'a str);
    let cases: [Case; 12] = [
        (
            "distribution",
            "distribution/push.event-test-go.json",
            Some("Authorization: Bearer dist"),
            &["Content-Type: application/vnd.docker.distribution.events.v2+json"],
            "",
            "artifact.pushed",
        ),
        (
            "gl",
            "gitlab/push.gitlab-event-test-go.json",
            Some("Authorization: gitlab-token"),
            &[],
            "",
            "artifact.pushed",
        ),
        ("dockerhub", "dockerhub/push.docker-docs.json", None, &[], "token=hub", "artifact.pushed"),
        (
            "quay",
            "quay/build_cancelled.quay-docs.json",
            None,
            &[],
            "token=quay&event=build_cancelled",
            "build.cancelled",
        ),
        (
            "github",
            github,
            Some(&github_sig),
            &["X-GitHub-Event: package", "X-GitHub-Delivery: d-1"],
            "",
            "artifact.pushed",
        ),
        ("jfrog", jfrog, Some(&jfrog_sig), &[], "", "artifact.pushed"),
        ("nexus", nexus, Some(&nexus_sig), &["X-Nexus-Webhook-Delivery: n-1"], "", "artifact.pushed"),
        (
            "acr",
            "acr/push.acr-webhook-reference.json",
            Some("Authorization: Bearer acr"),
            &[],
            "",
            "artifact.pushed",
        ),
        (
            "acr",
            "acr/ImageDeleted.cloudevents-schema.azure-docs.json",
            Some("Authorization: Bearer acr"),
            &["Content-Type: application/cloudevents+json"],
            "",
            "artifact.deleted",
        ),
        (
            "gar",
            "gar/converted/pubsub-push.INSERT.flux-recv-gcr_payload.fixed.json",
            None,
            &[],
            "token=gar",
            "artifact.pushed",
        ),
        (
            "ecr",
            "ecr/ImageAction.PUSH.aws-ecr-user-guide.json",
            Some("Authorization: Bearer ecr"),
            &[],
            "",
            "artifact.pushed",
        ),
        (
            "cloudevents",
            "synthetic/zot.image-updated.structured-ce.json",
            Some(&zot_header),
            &["Content-Type: application/cloudevents+json"],
            "",
            "artifact.pushed",
        ),
    ];
    for (endpoint, file, credential, headers, query, kind) in cases {
        let run = |credential: Option<&str>, query: &str| {
            let mut args =
                vec!["normalize".to_owned(), path(file), "-e".into(), endpoint.into(), "--verify".into()];
            for h in headers.iter().copied().chain(credential) {
                args.extend(["-H".to_owned(), h.to_owned()]);
            }
            args.extend(["--query".to_owned(), query.to_owned()]);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            regbridge(&args, &env)
        };
        let out = run(credential, query);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{file}: {text}{}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            (&v["verification"], &v["outcome"]),
            (&"passed".into(), &"events".into()),
            "{file}: {v:#}"
        );
        let first = &v["events"][0];
        assert_eq!(first["event"]["type"], format!("dev.regbridge.{kind}.v1"), "{file}: {v:#}");
        let registry = if endpoint == "gl" { "gitlab" } else { endpoint };
        assert_eq!(first["event"]["registry"], registry, "{file}");
        // Routed by the default rule to the configured broker, with its binding's headers.
        let route = &first["routes"][0];
        assert_eq!(route["sink"], "kafka", "{file}: {v:#}");
        assert_eq!(route["headers"]["ce_type"], first["event"]["type"], "{file}: {v:#}");

        // Without the credential: refused, and nothing is normalized.
        let bare_query = query.split('&').filter(|p| !p.starts_with("token=")).collect::<Vec<_>>().join("&");
        let out = run(None, &bare_query);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(!out.status.success(), "{file}: {v:#}");
        let refused = ["missing_credential", "missing_signature", "invalid_credential"];
        assert!(refused.contains(&v["reason"].as_str().unwrap_or_default()), "{file}: {v:#}");
        assert!(v.get("events").is_none(), "{file}");
    }
}
